"""Render a captured performance (a take, runtime/take.py) offline, frame-exact.

No input is opened: the take feeds the bus. Each live frame is rendered once, at
its own live time `t` and step `dt` (the live frames came irregularly), with
exactly the bus writes and texts the live mapping saw on it, so every frame's
mapped values are the live ones; the render checks them against the digests in
the take and reports any frame that differs (and, for a take captured with
`--capture-frames` rendered at the live size, the pixels too).

Where the frames go:
    a PNG folder   one image per live frame, numbered from 0 in live order;
    a video        at the show's fps: output frame k shows the live frame nearest
                   to time k / fps after the first (a late live frame is held, two
                   live frames within one video frame keep the later), so the
                   video lasts as long as the performance and the captured sound
                   (the soundtrack) stays in sync.

The show may differ from the one played: another output size or canvas
(`--size`, `--canvas`), another generator seed, size or device (edit the show or
pass another show file with the same mapping files). A show or mapping that
changed since the capture is named in a warning; the values check says whether it
matters.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from runtime.errors import ConfigError
from runtime.loop import FrameStats, offline_player, pipelined, say_if_stopped
from runtime.render.recorder import VIDEO_SUFFIXES, open_recorder
from runtime.show import Show
from runtime.shutdown import StopFlag
from runtime.signals import SignalBus
from runtime.take import FrameRecord, Take, file_sha256, pixels_digest, read_take, values_digest

log = logging.getLogger(__name__)

#: Mismatching frames named one by one in the log; beyond this they are only counted.
MISMATCHES_LOGGED = 5


@dataclass
class TakeReport:
    """What a take render did and found.

    Attributes:
        frames: live frames rendered.
        written: frames written (video frames after resampling, or PNGs).
        values_checked, values_differ: frames whose mapped values were compared
            with the live ones, and those that differed (frame indices).
        pixels_checked, pixels_differ: the same for pixel digests.
        gaps: live frames missing from the take (dropped by a slow disk).
    """

    frames: int = 0
    written: int = 0
    values_checked: int = 0
    values_differ: list[int] = field(default_factory=list)
    pixels_checked: int = 0
    pixels_differ: list[int] = field(default_factory=list)
    gaps: int = 0

    def line(self) -> str:
        """'rendered 120 frames ... values 120/120 as live' for the CLI. Thread: any."""
        text = f"rendered {self.frames} live frames ({self.written} written)"
        same = self.values_checked - len(self.values_differ)
        text += f"; mapped values as live on {same}/{self.values_checked} frames"
        if self.pixels_checked:
            same = self.pixels_checked - len(self.pixels_differ)
            text += f"; pixels as live on {same}/{self.pixels_checked} frames"
        if self.gaps:
            text += f"; {self.gaps} live frames missing from the take"
        return text


class TakeFeed:
    """A FrameFeed that writes, each frame, exactly what the live bus held for it:
    the bus writes in order and the texts.

    Args:
        frames: the take's frame records, in the order they will be rendered.
    Thread: main.
    """

    name = "take"

    def __init__(self, frames: tuple[FrameRecord, ...]) -> None:
        self.frames = frames
        self.index = 0

    def update(self, bus: SignalBus, t_s: float) -> None:
        """Write the next frame's record to the bus. Thread: main."""
        record = self.frames[self.index]
        self.index += 1
        for name, value in record.start_values.items():
            bus.set(name, value)
        for name, value in record.events:
            bus.set(name, value)
        for source, text in record.texts:
            bus.texts.put(source, text)

    def stop(self) -> None:
        """Nothing to release. Thread: main."""


def resize_output(
    show: Show, size_px: tuple[int, int] | None, canvas_px: tuple[int, int] | None
) -> Show:
    """The show at another output size or canvas. A new size without a canvas
    scales the canvas by as much (a show played at 256 px on a 128 px canvas
    renders at 1024 px on a 512 px canvas).

    Args:
        show: the show.
        size_px: the new output (window, video) size, or None.
        canvas_px: the new canvas (the passes' size), or None.
    Returns:
        The show with `[output]` changed (the same show when both are None).
    Thread: any.
    """
    out = show.output
    if size_px is not None and canvas_px is None:
        canvas_px = (
            round(out.canvas_px[0] * size_px[0] / out.size_px[0]),
            round(out.canvas_px[1] * size_px[1] / out.size_px[1]),
        )
    return replace(
        show,
        output=replace(out, size_px=size_px or out.size_px, canvas_px=canvas_px or out.canvas_px),
    )


def render_take(
    show: Show,
    take_path: Path,
    *,
    out: Path,
    frames: int | None = None,
    audio: Path | None = None,
    progress: bool = True,
) -> TakeReport:
    """Render a take offline: its frames at their live times, its bus contents,
    its sound as the soundtrack. A stop signal ends it early with a playable file.

    Args:
        show: the show to render with (the one played, or one changed on purpose:
            size, canvas, generator); its inputs are not opened.
        take_path: the take folder.
        out: an .mp4/.mov/.mkv file, or a folder for PNGs.
        frames: render only the take's first `frames` live frames (a preview).
        audio: a soundtrack to use instead of the captured sound.
        progress: show a progress bar.
    Returns:
        The report (also logged).
    Raises:
        ConfigError: the take cannot be read (file and line named) or has no frames.
        OutputError: no EGL, or `out` cannot be written.
    Thread: main.
    """
    take = read_take(take_path)
    if not take.frames:
        raise ConfigError(f"{take.events_path}: no frames were captured")
    if frames is not None:
        take = replace(take, frames=take.frames[: max(frames, 1)])
    _warn_changes(show, take)
    with StopFlag() as stop, tempfile.TemporaryDirectory(prefix="latentstage-take-") as tmp:
        soundtrack = audio or _soundtrack(take, Path(tmp))
        report = _render(show, take, out, soundtrack, progress, stop)
    log.info("%s: %s", take.path, report.line())
    for kind, bad in (("mapped values", report.values_differ), ("pixels", report.pixels_differ)):
        if bad:
            log.warning(
                "%s differ from the live show's on %d frames, first %s",
                kind,
                len(bad),
                ", ".join(map(str, bad[:MISMATCHES_LOGGED])),
            )
    return report


def _render(
    show: Show,
    take: Take,
    out: Path,
    soundtrack: Path | None,
    progress: bool,
    stop: StopFlag,
) -> TakeReport:
    from tqdm import tqdm

    # Live inputs are not opened: the take is the only thing writing to the bus.
    show = replace(show, inputs={})
    check_pixels = _pixels_comparable(show, take)
    with offline_player(show) as player:
        player.feeds.append(TakeFeed(take.frames))
        fps = show.output.fps
        video = out.suffix.lower() in VIDEO_SUFFIXES
        recorder = open_recorder(out, show.output.size_px, fps, soundtrack if video else None)
        stats = FrameStats(budget_ms=1000.0 / fps)
        report = TakeReport(gaps=_gaps(take.frames))
        t0 = take.frames[0].t_s
        bar = tqdm(
            total=len(take.frames),
            unit="frame",
            desc=f"take {take.path.name}",
            disable=not progress,
        )
        try:
            frames = take.frames
            clocks = [(record.frame, record.t_s, record.dt_s) for record in frames]
            begin = time.perf_counter()
            for done, values, image in pipelined(player, clocks, stop):
                record = frames[done]
                _check(report, record, values, image, check_pixels)
                repeats = 1
                if video:
                    after = frames[done + 1].t_s if done + 1 < len(frames) else None
                    repeats = _slots(after, t0, fps, record.t_s) - _slots(record.t_s, t0, fps)
                for _ in range(repeats):
                    recorder.write(image)
                report.written += repeats
                report.frames += 1
                stats.record((time.perf_counter() - begin) * 1000.0, False)
                bar.update(1)
                begin = time.perf_counter()
            say_if_stopped(stop, report.frames, len(frames), out)
        finally:
            bar.close()
            recorder.close()
    for problem in player.problems():
        log.warning("%s", problem)
    log.info("rendered take %s to %s: %s", take.path, out, stats.line())
    return report


def _slots(t_s: float | None, t0: float, fps: float, last: float = 0.0) -> int:
    """Video frames before time `t_s` (measured from `t0`), rounding to the nearest
    slot; None: one frame after `last`."""
    if t_s is None:
        return round((last - t0) * fps) + 1
    return round((t_s - t0) * fps)


def _check(
    report: TakeReport,
    record: FrameRecord,
    values: dict[str, float],
    image: np.ndarray,
    check_pixels: bool,
) -> None:
    if record.values_digest:
        report.values_checked += 1
        if values_digest(values) != record.values_digest:
            report.values_differ.append(record.frame)
    if check_pixels and record.pixels_digest:
        report.pixels_checked += 1
        if pixels_digest(image) != record.pixels_digest:
            report.pixels_differ.append(record.frame)


def _pixels_comparable(show: Show, take: Take) -> bool:
    """Whether the live frames' pixel digests can be compared with this render's."""
    if not any(f.pixels_digest for f in take.frames):
        return False
    live_size = tuple(take.header.get("output", {}).get("size_px", ()))
    if show.output.size_px != live_size:
        log.info("pixels not compared with the live ones: the size differs")
        return False
    if not take.header.get("frames_in_step"):
        log.info(
            "pixels not compared with the live ones: the live generator ran behind the "
            "frame loop (only a cppn drawn in GL draws each frame from its own values)"
        )
        return False
    return True


def _gaps(frames: tuple[FrameRecord, ...]) -> int:
    missing = sum(b.frame - a.frame - 1 for a, b in zip(frames, frames[1:]))
    if missing:
        log.warning(
            "%d live frames are missing from the take (dropped while capturing); "
            "the frames after a gap may differ from the live ones",
            missing,
        )
    return missing


def _soundtrack(take: Take, folder: Path) -> Path | None:
    """The captured sound from the take's first frame on, as a WAV in `folder`."""
    samples = take.audio()
    if samples is None or take.audio_rate_hz is None:
        return None
    import soundfile

    start = min(take.frames[0].audio_samples, len(samples))
    path = folder / "soundtrack.wav"
    soundfile.write(path, samples[start:], take.audio_rate_hz, subtype="FLOAT")
    return path


def _warn_changes(show: Show, take: Take) -> None:
    """Name what changed since the capture: the show file, the mapping files."""
    header = take.header
    if header.get("show_sha256") and file_sha256(show.path) != header["show_sha256"]:
        log.warning(
            "%s differs from the show captured (%s): rendering with this one",
            show.path,
            header.get("show", "?"),
        )
    captured = header.get("mappings", {})
    for path in show.mapping_paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        name = str(path.resolve())
        if name in captured and captured[name] != text:
            log.warning("%s changed since the capture: the mapped values may differ", path)
    names = {str(p.resolve()) for p in show.mapping_paths}
    for path in captured:
        if path not in names:
            log.warning("%s was a mapping file of the captured show; this show lacks it", path)
