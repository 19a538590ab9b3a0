"""Landmark recordings: hand landmarks in a take (runtime/take.py), read and written."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ConfigError
from runtime.inputs.hands.geometry import N_LANDMARKS, Frame, Hand
from runtime.take import TakeWriter, read_take

#: The record kind of hand landmarks in a take.
HANDS_RECORD = "h"

# A landmark recording is a take (runtime/take.py) whose header has a `hands` entry
# and whose records are one frame each (an empty `hands` list is a frame with no hand
# in it, which matters for `present`):
#
#   {"format": "latentstage-take", ..., "hands": {"size_px": [640, 480], "source": "camera 0"}}
#   {"k": "h", "t": 0.0, "hands": [{"image": [[x, y, z], ... 21], "world": [[x, y, z], ... 21],
#                                   "handedness": "Right", "score": 0.97}]}


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
    """Read the hand landmarks of a take.

    Args:
        path: the take folder.
    Returns:
        The recording.
    Raises:
        ConfigError: no take there, a take without hand landmarks, or a malformed
            line (named by file and line).
    Thread: any.
    """
    take = read_take(path)
    where = take.events_path
    about = take.header.get("hands")
    size = about.get("size_px") if isinstance(about, dict) else None
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        raise ConfigError(
            f"{where}:1: not a hand landmark recording (the header needs "
            "'hands': {'size_px': [width, height]}; record one with `run_show.py hands record`)"
        )
    frames = []
    last_t_s = -math.inf
    for number, row in take.records:
        if row["k"] != HANDS_RECORD:
            continue
        t_s = row.get("t")
        if not _is_number(t_s) or t_s <= last_t_s:
            raise ConfigError(f"{where}:{number}: 't' must be a number above the last frame's")
        hands = row.get("hands")
        if not isinstance(hands, list):
            raise ConfigError(f"{where}:{number}: 'hands' must be a list")
        frames.append(Frame(float(t_s), tuple(_hand(where, number, h) for h in hands)))
        last_t_s = t_s
    return Recording((int(size[0]), int(size[1])), tuple(frames))


class RecordingWriter:
    """Writes hand landmarks into a take, frame by frame (flushed per frame, so a
    recording cut short by Ctrl-C or a crash keeps what it had).

    Args:
        path: the take folder to write (it must not hold a take yet).
        size_px: the source frame's (width, height).
        source: a description of the source, kept in the header.
    Raises:
        ConfigError: the folder cannot be written or already holds a take.
    Thread: one thread.
    """

    def __init__(self, path: Path, size_px: tuple[int, int], source: str) -> None:
        self.path = Path(path)
        self.frames = 0
        self._take = TakeWriter(self.path, {"hands": {"size_px": list(size_px), "source": source}})

    def write(self, t_s: float, hands: Sequence[Hand]) -> None:
        """Append one frame. Thread: owner."""
        record = {"k": HANDS_RECORD, "t": round(t_s, 6), "hands": [_hand_json(h) for h in hands]}
        self._take.write(record)
        self._take.flush()
        self.frames += 1

    def close(self) -> None:
        """Close the take. Thread: owner."""
        self._take.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
