"""The take format: one file format for everything an input gave a show, for
capturing a performance (runtime/capture.py), rendering it again
(runtime/take_render.py) and recording hand landmarks (runtime/inputs/hands/).

A take is a folder (by habit named `NAME.take`):

    take.jsonl   one JSON object per line, appended as the show plays
    audio.f32    the live sound, raw float32 mono little-endian (only with audio)

The first line of take.jsonl is the header, `{"format": "latentstage-take",
"version": 1, "started": ISO time, ...}` with what the writer knows about where the
take came from (the show, its hash and mapping files, the generator and output
settings). Every later line is a record with a kind `k`:

    {"k": "f", "i": 12, "t": 0.40, "dt": 0.033, "e": [["osc:/level", 0.5]],
     "x": [["osc:/prompt", "a red city"]], "v": "9c1f...", "a": 19200}
        one frame as the mapping saw it: its index, time and step (seconds), every
        bus write since the previous frame in order (`e`), the texts taken (`x`; a
        blob as {"b64": ...}), a digest of the mapped values (`v`) and the audio
        samples written before it (`a`). The first frame may carry `s`: values the
        bus already held when the capture began.
    {"k": "p", "i": 12, "p": "0badf00d"}   a digest of frame 12's pixels (optional)
    {"k": "a", "rate_hz": 48000}            audio.f32's sample rate
    {"k": "h", "t": 0.40, "hands": [...]}   hand landmarks (runtime/inputs/hands/)

Each line is written whole and flushed, so a take cut short by a crash or SIGKILL
keeps every complete line: a last line without its newline is ignored (with a
warning); a broken line anywhere else is an error naming the file and line.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from runtime.errors import ConfigError

log = logging.getLogger(__name__)

TAKE_FORMAT = "latentstage-take"
TAKE_VERSION = 1
EVENTS_FILE = "take.jsonl"
AUDIO_FILE = "audio.f32"


@dataclass(frozen=True)
class FrameRecord:
    """One captured frame: what the mapping saw.

    Attributes:
        frame: the live frame index.
        t_s, dt_s: the frame's time and step.
        events: every bus write since the previous frame, oldest first.
        texts: the texts taken on this frame, (source, str or bytes).
        values_digest: `values_digest` of the live mapped values, or "".
        audio_samples: samples in audio.f32 before this frame (0 without audio).
        start_values: values the bus held before the capture began (first frame).
        pixels_digest: `pixels_digest` of the live frame, or "" when not captured.
        line: the line it came from (for messages).
    """

    frame: int
    t_s: float
    dt_s: float
    events: tuple[tuple[str, float], ...]
    texts: tuple[tuple[str, str | bytes], ...] = ()
    values_digest: str = ""
    audio_samples: int = 0
    start_values: Mapping[str, float] = field(default_factory=dict)
    pixels_digest: str = ""
    line: int = 0


@dataclass(frozen=True)
class Take:
    """A take as read back.

    Attributes:
        path: the take folder.
        header: the first line's object.
        frames: the frame records in order.
        records: every other record (kinds other than "f", "p", "a"), with its line
            number, in order.
        audio_rate_hz: audio.f32's sample rate, or None without audio.
        complete: False when the last line was cut short (a crash).
    """

    path: Path
    header: Mapping[str, Any]
    frames: tuple[FrameRecord, ...]
    records: tuple[tuple[int, dict[str, Any]], ...]
    audio_rate_hz: int | None
    complete: bool

    @property
    def events_path(self) -> Path:
        """The take's take.jsonl. Thread: any."""
        return self.path / EVENTS_FILE

    def audio(self) -> np.ndarray | None:
        """The captured sound, float32 mono (a partial last sample is dropped), or
        None when the take has none. Thread: any."""
        path = self.path / AUDIO_FILE
        if self.audio_rate_hz is None or not path.exists():
            return None
        data = path.read_bytes()
        return np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4")


def values_digest(values: Mapping[str, float]) -> str:
    """A short digest of a frame's mapped values (name order does not matter).

    Thread: any.
    """
    text = json.dumps(sorted(values.items()), separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def pixels_digest(frame: np.ndarray) -> str:
    """A short digest of a frame's pixels and shape. Thread: any."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(frame.shape).encode())
    h.update(np.ascontiguousarray(frame).data)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, or "" when it cannot be read. Thread: any."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def text_json(text: str | bytes) -> str | dict[str, str]:
    """A text as JSON: a str as is, bytes as {"b64": ...}. Thread: any."""
    if isinstance(text, bytes):
        return {"b64": base64.b64encode(text).decode("ascii")}
    return text


class TakeWriter:
    """Writes a take folder: the header now, records as they come, each line flushed.

    Args:
        path: the take folder; created, and must not hold a take already.
        header: what to put in the header besides format, version and start time.
    Raises:
        ConfigError: the folder cannot be made or already holds a take.
    Thread: one thread at a time (the writer thread of a capture).
    """

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = (self.path / EVENTS_FILE).open("x", encoding="utf-8")
        except FileExistsError:
            raise ConfigError(f"{self.path}: already holds a take; choose another name") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write a take ({exc.strerror})") from None
        self._audio: Any = None
        self.audio_samples = 0
        first = {
            "format": TAKE_FORMAT,
            "version": TAKE_VERSION,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            **header,
        }
        self.write(first)
        self.flush()

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a line (not flushed: see `flush`). Thread: owner."""
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def write_audio(self, block: np.ndarray, rate_hz: int) -> None:
        """Append mono samples to audio.f32 (the first block also writes the rate
        record). Thread: owner."""
        if self._audio is None:
            self._audio = (self.path / AUDIO_FILE).open("xb")
            self.write({"k": "a", "rate_hz": int(rate_hz)})
        self._audio.write(np.asarray(block, dtype="<f4").tobytes())
        self.audio_samples += len(block)

    def flush(self) -> None:
        """Hand what was written to the OS: it survives the process being killed.
        Thread: owner."""
        self._file.flush()
        if self._audio is not None:
            self._audio.flush()

    def close(self) -> None:
        """Flush and close. Thread: owner."""
        self.flush()
        self._file.close()
        if self._audio is not None:
            self._audio.close()


def read_take(path: Path) -> Take:
    """Read a take back, up to its last complete line.

    Args:
        path: the take folder (or its take.jsonl).
    Returns:
        The take.
    Raises:
        ConfigError: no take there, a header of another format, or a broken line
            (named by file and line number).
    Thread: any.
    """
    path = Path(path)
    folder = path.parent if path.name == EVENTS_FILE else path
    events = folder / EVENTS_FILE
    try:
        text = events.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{folder}: not a take (no {EVENTS_FILE} in it)") from None
    except OSError as exc:
        raise ConfigError(f"{events}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{events}: not a take (not UTF-8 text: {exc.reason})") from None
    lines = text.split("\n")
    complete = True
    if lines[-1] != "":  # cut short: the writer died in the middle of a line
        complete = False
        log.warning(
            "%s:%d: the last line is incomplete (the capture was cut short); "
            "reading the %d lines before it",
            events,
            len(lines),
            len(lines) - 1,
        )
    lines = lines[:-1]
    rows = list(_rows(events, lines))
    if not rows:
        raise ConfigError(f"{events}: empty; expected a '{TAKE_FORMAT}' header line")
    number, header = rows[0]
    if header.get("format") != TAKE_FORMAT or header.get("version") != TAKE_VERSION:
        raise ConfigError(
            f"{events}:{number}: expected a header with format '{TAKE_FORMAT}' and "
            f"version {TAKE_VERSION}, got {lines[number - 1][:80]!r}"
        )
    frames: list[FrameRecord] = []
    pixels: dict[int, str] = {}
    others: list[tuple[int, dict[str, Any]]] = []
    rate: int | None = None
    for number, row in rows[1:]:
        kind = row.get("k")
        if kind == "f":
            frames.append(_frame(events, number, row))
        elif kind == "p":
            if not _is_int(row.get("i")) or not isinstance(row.get("p"), str):
                raise ConfigError(f"{events}:{number}: a 'p' record needs 'i' (int), 'p' (str)")
            pixels[row["i"]] = row["p"]
        elif kind == "a":
            if not _is_int(row.get("rate_hz")) or row["rate_hz"] <= 0:
                raise ConfigError(f"{events}:{number}: 'rate_hz' must be a positive integer")
            rate = row["rate_hz"]
        elif isinstance(kind, str):
            others.append((number, row))
        else:
            raise ConfigError(f"{events}:{number}: a record needs a kind 'k' (a string)")
    if pixels:
        frames = [_with_pixels(f, pixels[f.frame]) if f.frame in pixels else f for f in frames]
    return Take(folder, header, tuple(frames), tuple(others), rate, complete)


def _with_pixels(record: FrameRecord, digest: str) -> FrameRecord:
    return replace(record, pixels_digest=digest)


def _rows(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        number = index + 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{number}: expected a JSON object")
        yield number, row


def _frame(path: Path, number: int, row: dict[str, Any]) -> FrameRecord:
    where = f"{path}:{number}"
    i, t_s, dt_s = row.get("i"), row.get("t"), row.get("dt")
    if not _is_int(i) or not _is_number(t_s) or not _is_number(dt_s):
        raise ConfigError(f"{where}: a frame needs 'i' (int), 't' and 'dt' (numbers)")
    events = []
    for item in row.get("e", []):
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and _is_number(item[1])
        ):
            raise ConfigError(f"{where}: each of 'e' must be [name, number], got {item!r:.60}")
        events.append((item[0], float(item[1])))
    texts: list[tuple[str, str | bytes]] = []
    for item in row.get("x", []):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ConfigError(f"{where}: each of 'x' must be [source, text], got {item!r:.60}")
        texts.append((item[0], _text(where, item[1])))
    start = row.get("s", {})
    if not isinstance(start, dict) or not all(_is_number(v) for v in start.values()):
        raise ConfigError(f"{where}: 's' must map signal names to numbers")
    digest, audio = row.get("v", ""), row.get("a", 0)
    if not isinstance(digest, str) or not _is_int(audio):
        raise ConfigError(f"{where}: 'v' must be a string and 'a' an integer")
    return FrameRecord(
        i,
        float(t_s),
        float(dt_s),
        tuple(events),
        tuple(texts),
        digest,
        audio,
        {k: float(v) for k, v in start.items()},
        line=number,
    )


def _text(where: str, value: Any) -> str | bytes:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            pass
    raise ConfigError(f"{where}: a text must be a string or {{'b64': base64}}, got {value!r:.60}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
