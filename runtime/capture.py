"""Capture a live performance into a take (runtime/take.py), to render it again
offline at full quality (runtime/take_render.py).

The capture sits where every input already ends up: the bus, as the mapping sees it
once per frame (`Player.map`). Each frame's record holds its clock and the bus
writes and texts the mapping consumed, whichever input made them (OSC, MIDI, audio
features, hands, clock, keys, scene recalls); the live sound comes through
`AudioInput.listen`. The frame loop only hands references to a bounded queue; a
writer thread turns them into lines and flushes them. A queue that overflows (a
disk that stalls for seconds) drops records and counts them; it never waits.

`key:c` starts and stops capturing during the show: the first take is the one
named by `--capture`, or `takes/SHOW-YYYYmmdd-HHMMSS.take` beside the show; a name
in use gets -2, -3, ...
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import ConfigError
from runtime.signals import Snapshot
from runtime.take import (
    TakeWriter,
    file_sha256,
    pixels_digest,
    text_json,
    values_digest,
)

if TYPE_CHECKING:
    from runtime.player import Player
    from runtime.render.compositor import Compositor
    from runtime.show import Show

log = logging.getLogger(__name__)

#: Records (frames and audio blocks) waiting for the writer; about 30 s of a 60 fps
#: show with audio. Beyond this they are dropped and counted.
QUEUE_RECORDS = 4096
#: The key that starts and stops capturing.
TOGGLE_KEY = "key:c"


def take_header(
    show: Show, live_size_px: tuple[int, int], *, frames_in_step: bool
) -> dict[str, Any]:
    """What a take records about where it came from.

    Args:
        show: the show being played.
        live_size_px: the size the show is presented at.
        frames_in_step: live frame i is drawn from frame i's values (the cppn drawn
            in GL); otherwise the generator runs behind the loop and the live
            pixels cannot be compared with a render's.
    Returns:
        The header fields: show path and sha256, the mapping files' text, the
        generator and output settings.
    Thread: any.
    """
    mappings = {}
    for path in show.mapping_paths:
        try:
            mappings[str(path.resolve())] = path.read_text(encoding="utf-8")
        except OSError as exc:
            mappings[str(path.resolve())] = f"(unreadable: {exc.strerror})"
    g, out = show.generator, show.output
    return {
        "show": str(Path(show.path).resolve()),
        "show_sha256": file_sha256(show.path),
        "mappings": mappings,
        "generator": {
            "kind": g.kind,
            "seed": g.seed,
            "size_px": list(g.size_px),
            "device": g.device,
        },
        "output": {
            "size_px": list(live_size_px),
            "canvas_px": list(out.canvas_px),
            "fps": out.fps,
        },
        "frames_in_step": frames_in_step,
    }


class TakeCapture:
    """One take being written: a bounded queue and its writer thread.

    The folder is made, and the header (`header()`, which may read files) written,
    on the writer thread: starting a take costs the frame loop nothing. A folder that
    cannot be written is reported in `error`, the log and the status line; the
    records are then dropped.

    Args:
        path: the take folder to create (it must not hold a take yet).
        header: gives the header's fields (`take_header`), called on the writer.
        check_frames: also take a digest of every frame's pixels (a read-back per
            frame), so the render can prove it draws the same frames.
    Thread: made on the frame loop; `frame`, `see` from the frame loop; `hear` from
        the audio thread.
    """

    def __init__(
        self, path: Path, header: Callable[[], Mapping[str, Any]], *, check_frames: bool
    ) -> None:
        self.path = Path(path)
        self.check_frames = check_frames
        self._header = header
        self._writer: TakeWriter | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_RECORDS)
        self.frames = 0
        self.dropped = 0
        self.audio_samples = 0
        self.error: str | None = None
        self._ending = threading.Event()
        self._first = True
        self._last_frame: int | None = None
        self._began = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def frame(
        self,
        frame: int,
        t_s: float,
        dt_s: float,
        snapshot: Snapshot,
        texts: Sequence[tuple[str, str | bytes]],
        values: Mapping[str, float],
    ) -> None:
        """Queue one frame as the mapping saw it. Never blocks.

        Args:
            frame, t_s, dt_s: the frame's index, time and step.
            snapshot: the bus snapshot the mapping evaluated.
            texts: the texts taken from the bus this frame.
            values: the mapped values (a copy is kept).
        Thread: the frame loop.
        """
        start = None
        if self._first:
            self._first = False
            # Values the bus held before the capture began (a take started with key c).
            written = {e.name for e in snapshot.events}
            start = {k: v for k, v in snapshot.values.items() if k not in written}
        self._last_frame = frame
        item = (frame, t_s, dt_s, snapshot.events, tuple(texts), dict(values), start)
        self._put(("f", item, self.audio_samples))

    def see(self, compositor: Compositor, size_px: tuple[int, int]) -> bytes | None:
        """With `check_frames`, queue a digest of the frame just drawn.

        Returns:
            The frame as read (`Compositor.read_rgba` at `size_px`), for a recording
            of the same frame to use instead of reading it again; None when not read.
        Thread: the frame loop.
        """
        if self.check_frames and self._last_frame is not None:
            # GL's own layout here (the cheap read); the writer flips it to the
            # frame a render reads back before the digest, off the frame loop.
            rgba = compositor.read_rgba(size_px)
            self._put(("p", self._last_frame, (rgba, size_px)))
            return rgba
        return None

    def hear(self, block: np.ndarray, rate_hz: float) -> None:
        """Queue a block of the live sound (an `AudioInput.listen` listener).

        Thread: the audio analysis thread.
        """
        if self._put(("a", block, rate_hz)):
            self.audio_samples += len(block)

    def _put(self, item: tuple) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        if item[0] == "f":
            self.frames += 1
        return True

    def status(self) -> str:
        """'capture 00:01:23 set.take  4213 frames' for the HUD. Thread: any."""
        elapsed = int(time.perf_counter() - self._began)
        clock = f"{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        if self._writer is None and self.error:
            return f"capture {clock} FAILED: {self.error}"
        line = f"capture {clock} {self.path.name}  {self.frames} frames"
        if self.dropped:
            line += f", {self.dropped} dropped"
        if self.error:
            line += f"  ERROR {self.error}"
        return line

    def end(self) -> None:
        """Stop taking records; the writer writes what is queued, closes the files
        and logs a summary on its own. Never blocks. Thread: the frame loop."""
        self._ending.set()

    def close(self, timeout_s: float = 10.0) -> None:
        """`end`, then wait for the writer to finish (at the end of the show).

        Thread: main.
        """
        self.end()
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            log.error(
                "%s: the capture writer is stuck; the take may lack its last frames", self.path
            )

    def _run(self) -> None:
        try:
            self._writer = TakeWriter(self.path, self._header())
        except ConfigError as exc:
            self.error = str(exc)
            log.error("no capture: %s", exc)
        frame_index = -1
        while True:
            try:
                batch = [self._queue.get(timeout=0.1)]
            except queue.Empty:
                if self._ending.is_set():
                    break
                continue
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self._writer is None:
                self.dropped += len(batch)
                continue
            try:
                for kind, data, extra in batch:
                    if kind == "f":
                        frame_index = data[0]
                        self._writer.write(_frame_record(data, extra))
                    elif kind == "p":
                        rgba, (width, height) = extra
                        rows = np.frombuffer(rgba, np.uint8).reshape(height, width, 4)
                        pixels = rows[::-1, :, :3]  # as Compositor.read gives it
                        self._writer.write({"k": "p", "i": data, "p": pixels_digest(pixels)})
                    else:
                        self._writer.write_audio(data, round(extra))
                self._writer.flush()
            except OSError as exc:  # a full or vanished disk: count, report once, go on
                if self.error is None:
                    self.error = exc.strerror or str(exc)
                    log.error(
                        "%s: cannot write the take at frame %d (%s); frames are dropped",
                        self.path,
                        frame_index,
                        self.error,
                    )
                self.dropped += len(batch)
        if self._writer is None:
            return
        with contextlib.suppress(OSError):
            self._writer.close()
        log.info("captured %d frames (%d dropped) into %s", self.frames, self.dropped, self.path)


def _frame_record(item: tuple, audio_samples: int) -> dict[str, Any]:
    frame, t_s, dt_s, events, texts, values, start = item
    record: dict[str, Any] = {"k": "f", "i": frame, "t": t_s, "dt": dt_s}
    if events:
        record["e"] = [[e.name, e.value] for e in events]
    if texts:
        record["x"] = [[source, text_json(text)] for source, text in texts]
    if start:
        record["s"] = start
    record["v"] = values_digest(values)
    if audio_samples:
        record["a"] = audio_samples
    return record


class CaptureSwitch:
    """A live show's capturing: `key:c` starts and stops takes, the live sound is
    heard, the HUD gets a line.

    Args:
        show: the show.
        live_size_px: the size it is presented at.
        first: the first take's folder (`--capture`), or None for the default name.
        frames_in_step: see `take_header`.
        check_frames: pass to each TakeCapture.
    Thread: main (the frame loop); `hear` from the audio thread.
    """

    def __init__(
        self,
        show: Show,
        live_size_px: tuple[int, int],
        first: Path | None,
        *,
        frames_in_step: bool = False,
        check_frames: bool = False,
    ) -> None:
        self.show = show
        self.frames_in_step = frames_in_step
        self.live_size_px = live_size_px
        self.check_frames = check_frames
        self._base = Path(first) if first is not None else None
        self.take: TakeCapture | None = None
        self._ended: list[TakeCapture] = []
        self._names: set[Path] = set()

    def start(self) -> None:
        """Start a take (a fresh name when the last one is taken). Thread: the frame
        loop (the take's writer thread makes its folder)."""
        if self._base is None:
            self._base = self._default_path()
        # The writer makes the folder later: names handed out count as taken now.
        path = fresh_name(self._base, self._names)
        self._names.add(path)
        self.take = TakeCapture(
            path,
            lambda: take_header(self.show, self.live_size_px, frames_in_step=self.frames_in_step),
            check_frames=self.check_frames,
        )
        log.info("capturing the performance into %s", path)

    def stop(self) -> None:
        """End the take being written, if any, without waiting for its writer.

        Thread: the frame loop.
        """
        if self.take is not None:
            take, self.take = self.take, None
            take.end()
            self._ended.append(take)

    def close(self) -> None:
        """End capturing and wait for every take's writer to finish (the end of the
        show). Thread: main."""
        self.stop()
        for take in self._ended:
            take.close()
        self._ended.clear()

    def frame(
        self,
        frame: int,
        t_s: float,
        dt_s: float,
        snapshot: Snapshot,
        texts: Sequence[tuple[str, str | bytes]],
        values: Mapping[str, float],
    ) -> None:
        """Toggle on `key:c`, then capture the frame when capturing.

        Thread: the frame loop (Player.map).
        """
        for event in snapshot.events:
            if event.name == TOGGLE_KEY and event.value > 0.5:
                if self.take is None:
                    self.start()
                else:
                    self.stop()
        if self.take is not None:
            self.take.frame(frame, t_s, dt_s, snapshot, texts, values)

    def see(self, compositor: Compositor, size_px: tuple[int, int]) -> bytes | None:
        """See TakeCapture.see. Thread: the frame loop."""
        return None if self.take is None else self.take.see(compositor, size_px)

    def hear(self, block: np.ndarray, rate_hz: float) -> None:
        """See TakeCapture.hear. Thread: the audio analysis thread."""
        take = self.take
        if take is not None:
            take.hear(block, rate_hz)

    def status(self) -> str | None:
        """The HUD line, or None while not capturing. Thread: main."""
        return None if self.take is None else self.take.status()

    def _default_path(self) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(self.show.path).parent / "takes" / f"{Path(self.show.path).stem}-{stamp}.take"


def fresh_name(path: Path, taken: Collection[Path] = ()) -> Path:
    """`path`, or `path` with -2, -3 ... before its suffix when it exists already
    or is in `taken`.

    Thread: any.
    """
    path = Path(path)
    n = 1
    candidate = path
    while candidate in taken or candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def open_capture(
    player: Player, live_size_px: tuple[int, int], first: Path | None, *, check_frames: bool
) -> CaptureSwitch:
    """Give a live show its capture switch: it hears the live sound (when the show
    has an audio input) and captures from the first frame when `first` is given.

    Args:
        player: the live show's player (its `capture` is set).
        live_size_px: the size the show is presented at.
        first: `--capture TAKE`, or None (then `key:c` starts a take).
        check_frames: `--capture-frames`: a digest of every frame's pixels too.
    Returns:
        The switch (also `player.capture`).
    Thread: main, before the frame loop.
    """
    switch = CaptureSwitch(
        player.show,
        live_size_px,
        first,
        frames_in_step=player.draws_in_gl,
        check_frames=check_frames,
    )
    for source in player.inputs:
        if hasattr(source, "listen"):
            source.listen(switch.hear)
    if first is not None:
        switch.start()
    player.capture = switch
    return switch
