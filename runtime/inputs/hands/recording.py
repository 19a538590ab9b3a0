"""Landmark recordings: reading and writing them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ConfigError
from runtime.inputs.hands.geometry import N_LANDMARKS, Frame, Hand

RECORDING_FORMAT = "latentstage-hands"
RECORDING_VERSION = 1

# -- landmark recordings -----------------------------------------------------------------
#
# JSON lines. The first line is a header; each later line one frame (an empty `hands`
# list is a frame with no hand in it, which matters for `present`):
#
#   {"format": "latentstage-hands", "version": 1, "size_px": [640, 480], "source": "camera 0"}
#   {"t_s": 0.0, "hands": [{"image": [[x, y, z], ... 21], "world": [[x, y, z], ... 21],
#                           "handedness": "Right", "score": 0.97}]}


@dataclass(frozen=True)
class Recording:
    """A landmark recording: the source frame size and the frames, oldest first."""

    size_px: tuple[int, int]
    frames: tuple[Frame, ...]

    @property
    def duration_s(self) -> float:
        """Time from the first frame to one frame period past the last. Thread: any."""
        if not self.frames:
            return 0.0
        times = [f.t_s for f in self.frames]
        period_s = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0 / 30
        return times[-1] - times[0] + period_s


def read_recording(path: Path) -> Recording:
    """Read a landmark recording.

    Args:
        path: the .jsonl file.
    Returns:
        The recording.
    Raises:
        ConfigError: missing file or a malformed line (named by file and line).
    Thread: any.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    rows = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise ConfigError(f"{path}: empty; expected a '{RECORDING_FORMAT}' header line")
    header = _json_line(path, *rows[0])
    if header.get("format") != RECORDING_FORMAT or header.get("version") != RECORDING_VERSION:
        raise ConfigError(
            f"{path}:{rows[0][0]}: expected a header with format '{RECORDING_FORMAT}' "
            f"and version {RECORDING_VERSION}, got {rows[0][1][:80]!r}"
        )
    size = header.get("size_px")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        raise ConfigError(f"{path}:{rows[0][0]}: 'size_px' must be [width, height]")
    frames = []
    last_t_s = -math.inf
    for number, line in rows[1:]:
        row = _json_line(path, number, line)
        t_s = row.get("t_s")
        if not _is_number(t_s) or t_s <= last_t_s:
            raise ConfigError(f"{path}:{number}: 't_s' must be a number above the last frame's")
        hands = row.get("hands")
        if not isinstance(hands, list):
            raise ConfigError(f"{path}:{number}: 'hands' must be a list")
        frames.append(Frame(float(t_s), tuple(_hand(path, number, h) for h in hands)))
        last_t_s = t_s
    return Recording((int(size[0]), int(size[1])), tuple(frames))


class RecordingWriter:
    """Writes a landmark recording frame by frame (flushed per frame, so a recording
    cut short by Ctrl-C or a crash keeps what it had).

    Args:
        path: the .jsonl file to write.
        size_px: the source frame's (width, height).
        source: a description of the source, kept in the header.
    Thread: one thread.
    """

    def __init__(self, path: Path, size_px: tuple[int, int], source: str) -> None:
        self.path = Path(path)
        self.frames = 0
        self._file = self.path.open("w", encoding="utf-8")
        header = {
            "format": RECORDING_FORMAT,
            "version": RECORDING_VERSION,
            "size_px": list(size_px),
            "source": source,
        }
        self._file.write(json.dumps(header) + "\n")

    def write(self, t_s: float, hands: Sequence[Hand]) -> None:
        """Append one frame. Thread: owner."""
        row = {"t_s": round(t_s, 6), "hands": [_hand_json(h) for h in hands]}
        self._file.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._file.flush()
        self.frames += 1

    def close(self) -> None:
        """Close the file. Thread: owner."""
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{path}:{number}: expected a JSON object")
    return row


def _hand(path: Path, number: int, data: Any) -> Hand:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:{number}: each hand must be an object")
    arrays = {}
    for key in ("image", "world"):
        if data.get(key) is None and key == "world":
            arrays[key] = None
            continue
        try:
            arrays[key] = np.asarray(data.get(key), dtype=np.float64)
        except (TypeError, ValueError):
            arrays[key] = None
        if arrays[key] is None or arrays[key].shape != (N_LANDMARKS, 3):
            raise ConfigError(f"{path}:{number}: '{key}' must be {N_LANDMARKS} [x, y, z] triples")
        if not np.isfinite(arrays[key]).all():
            raise ConfigError(f"{path}:{number}: '{key}' holds a value that is not finite")
    score = data.get("score", 1.0)
    handedness = data.get("handedness", "")
    if not _is_number(score) or not isinstance(handedness, str):
        raise ConfigError(f"{path}:{number}: 'score' must be a number, 'handedness' a string")
    return Hand(arrays["image"], arrays["world"], handedness, float(score))


def _hand_json(hand: Hand) -> dict[str, Any]:
    row: dict[str, Any] = {"image": np.round(hand.image, 5).tolist()}
    if hand.world is not None:
        row["world"] = np.round(hand.world, 5).tolist()
    row["handedness"] = hand.handedness
    row["score"] = round(float(hand.score), 4)
    return row


def recording_frames(recording: Recording, loop: bool) -> Iterator[Frame]:
    """The recording's frames with times from 0, forever when `loop` (times keep
    rising across loops). Thread: the caller's."""
    if not recording.frames:
        return
    t0_s = recording.frames[0].t_s
    offset_s = 0.0
    while True:
        for frame in recording.frames:
            yield Frame(offset_s + frame.t_s - t0_s, frame.hands)
        if not loop:
            return
        offset_s += recording.duration_s


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
