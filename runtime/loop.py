"""The frame loops: live (a window, a fixed frame budget, never waiting on the
generator) and offline (frame-exact, t = frame / fps, as fast as it goes).

Both report frame time p50/p99, late frames and generator fps: on the HUD, in the
log every ten seconds, and in the summary at the end. Both stop gracefully on
SIGTERM, SIGINT and SIGHUP (runtime/shutdown.py): a flag read once per frame.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import moderngl
import numpy as np
import torch

from runtime.capture import open_capture
from runtime.generators.base import Params
from runtime.generators.worker import FrameResult
from runtime.health import HealthServer, Vitals
from runtime.inputs.audio import AudioInput
from runtime.notify import BEAT_S, Lifeline
from runtime.player import Player
from runtime.render.compositor import Compositor
from runtime.render.headless import headless_context
from runtime.render.live_record import LiveRecorder
from runtime.render.ndi import NdiOutput
from runtime.render.recorder import open_recorder
from runtime.schedule import Clock, Fade, OpeningHours
from runtime.show import Show
from runtime.shutdown import StopFlag

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 300
RELOAD_EVERY_S = 0.5
HUD_EVERY_S = 0.25
LOG_EVERY_S = 10.0
HEALTH_EVERY_S = 0.5
#: Closed and dark, the loop draws black this often (it still beats and polls events).
REST_FRAME_S = 0.1


@dataclass
class FrameStats:
    """Frame timing over a sliding window.

    Attributes:
        budget_ms: 1000 / fps.
        work_ms: the loop's own work per frame (everything but the wait).
        frames, late: totals; a frame is late when its work overran the budget or
            it started after its deadline.
    """

    budget_ms: float
    work_ms: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    frames: int = 0
    late: int = 0

    def record(self, work_ms: float, late: bool) -> None:
        """Count one frame. Thread: main."""
        self.work_ms.append(work_ms)
        self.frames += 1
        self.late += int(late)

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile of recent work times. Thread: main."""
        return float(np.percentile(self.work_ms, q)) if self.work_ms else 0.0

    def line(self) -> str:
        """'frame p50 4.1 ms  p99 9.8 ms  late 3/1200' for HUD and log. Thread: main."""
        p50, p99 = np.percentile(self.work_ms, [50, 99]) if self.work_ms else (0.0, 0.0)
        return (
            f"frame p50 {p50:.1f} ms  p99 {p99:.1f} ms"
            f"  (budget {self.budget_ms:.1f})  late {self.late}/{self.frames}"
        )


def generator_line(player: Player) -> str:
    """'generator cppn cpu 256x256  11.8 fps | dream 3 steps 42 ms | style 18 ms' for
    HUD and log: the generator and what each neural stage did on the last frame.

    Thread: main.
    """
    g = player.generator
    device = "gl" if player.draws_in_gl else g.device.type
    if player.uploads is not None and player.uploads.problem is None:
        device += " interop"  # frames reach GL device to device (runtime/cuda_gl.py)
    line = (
        f"generator {g.kind} {device} {g.size_px[0]}x{g.size_px[1]}  {player.worker.fps():.1f} fps"
    )
    for stat in player.last_stages:
        steps = f" {stat.steps} steps" if stat.steps else ""
        line += f" | {stat.name}{steps} {stat.ms:.0f} ms"
    return line if player.decks is None else player.decks.line(line)


def play_live(
    show: Show,
    *,
    fullscreen: bool | None = None,
    monitor: int | None = None,
    duration_s: float | None = None,
    hud: bool = True,
    clock: Clock = time.time,
    capture: Path | None = None,
    capture_frames: bool = False,
    record: Path | None = None,
    ndi: str | None = None,
) -> FrameStats:
    """Play a show in a window until the performer quits (Esc or q) or a stop signal
    (SIGTERM, SIGINT, SIGHUP) arrives; either way inputs are closed and the
    statistics logged.

    While it plays, it beats for a supervisor and systemd (runtime/notify.py),
    follows the show's opening hours (runtime/schedule.py) and serves its health
    (runtime/health.py), each a few times a second rather than every frame.

    Args:
        show: the show.
        fullscreen, monitor: override the show's `[output]`.
        duration_s: stop after this long (for rehearsals and tests).
        hud: start with the HUD shown (h toggles it).
        clock: the wall clock the opening hours read (an aware datetime or a UTC
            timestamp); tests inject one.
        capture: capture the performance into this take from the first frame
            (runtime/capture.py); key c starts and stops takes either way.
        capture_frames: also keep a digest of every frame's pixels in the take.
        record: record the output (and live sound) into this file from the first
            frame (runtime/render/live_record.py); `key:r` and OSC `/record` start
            and stop recordings either way.
        ndi: send the frames as an NDI source of this name (overrides the show's
            `[output] ndi`; runtime/render/ndi.py).
    Returns:
        The frame statistics (frames while closed and dark are not counted).
    Raises:
        OutputError: no display.
        ConfigError / ShaderError: the show cannot start.
    Thread: main.
    """
    from runtime.render.hud import Hud
    from runtime.render.window import Window

    # Handlers first: a stop signal while a model loads ends the show at its first frame.
    with StopFlag() as stop:
        out = show.output
        window = Window(
            f"latentstage: {show.name}",
            out.size_px,
            fullscreen=out.fullscreen if fullscreen is None else fullscreen,
            monitor=out.monitor if monitor is None else monitor,
            vsync=out.vsync,
        )
        player = Player(show, window.ctx, offline=False)
        capturing = open_capture(player, out.size_px, capture, check_frames=capture_frames)
        # Keys other than the window's own are signals (`key:r`, `key:shift+1`): 1 held.
        window.on_key = lambda name, down: player.bus.set(f"key:{name}", float(down))
        overlay = Hud(window.ctx)
        shade = _Shade(window.ctx)
        # Input threads wait for the GIL while the frame loop runs Python: hand it over
        # every millisecond (default 5) so an OSC or MIDI message reaches the bus sooner.
        sys.setswitchinterval(0.001)
        # Leave a core to the frame loop and the GL driver: torch's pool on every core
        # (the generator, neural stages, CLIP) would take turns with the loop's own work.
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        budget_s = 1.0 / out.fps
        stats = FrameStats(budget_ms=budget_s * 1000.0)
        lifeline = Lifeline()
        fade = Fade(OpeningHours(show.schedule, clock)) if show.schedule else None
        vitals = Vitals(player, stats)
        health = _health_server(show)
        ndi_name = ndi or out.ndi
        sender = NdiOutput(ndi_name, out.size_px, out.fps) if ndi_name else None
        player.start()
        start = time.perf_counter()
        sound = [s for s in player.inputs if isinstance(s, AudioInput)]
        recording = LiveRecorder(
            show_name=show.name,
            folder=show.folder,
            size_px=out.size_px,
            fps=out.fps,
            origin_s=start,
            path=record,
            sound=bool(sound),
        )
        for source in sound:
            source.listen(recording.hear)
        deadline = start
        last_t = 0.0
        next_reload = next_hud = next_beat = next_health = 0.0
        next_log = LOG_EVERY_S
        frame = 0
        try:
            while not (window.should_close() or stop.requested):
                begin = time.perf_counter()
                t_s = begin - start
                dt_s = t_s - last_t if frame else budget_s
                last_t = t_s
                level = 1.0 if fade is None else fade.update(t_s)
                resting = fade is not None and fade.resting
                window_px = window.framebuffer_px
                rgba = None  # the frame read back, once, for the take and the recording
                if resting:
                    # Closed and dark: keep the bus drained and the feeds in step, but
                    # post nothing to the generator (or CLIP), so the GPU cools.
                    player.map(frame, t_s, dt_s)
                    window.clear()
                else:
                    player.step_live(frame, t_s, dt_s)
                    rgba = capturing.see(player.compositor, out.size_px)
                    player.compositor.present(window.ctx.screen, window_px)
                    if level < 1.0:
                        shade.draw(player.compositor, level, window_px)
                recording.update(player.snapshot.events, t_s)
                if player.osc_out is not None:  # the controller's record button follows
                    player.osc_out.update({"/ls/record": int(recording.active)})
                if t_s >= next_reload:
                    next_reload = t_s + RELOAD_EVERY_S
                    player.reload_if_changed()
                if hud != window.show_hud_toggled:
                    if t_s >= next_hud:
                        next_hud = t_s + HUD_EVERY_S
                        overlay.update(
                            [
                                *_hud_lines(player, stats, out.fps),
                                *recording.hud_lines(),
                                *(sender.hud_lines() if sender else ()),
                            ],
                            player.problems(),
                            window_px[0],
                        )
                    player.compositor.draw_overlay(overlay.texture, overlay.viewport(window_px))
                window.swap()
                if not resting and (recording.active or sender is not None):
                    if rgba is None:  # after the swap: the frame is on screen first
                        rgba = player.compositor.read_rgba(out.size_px)
                    recording.frame(rgba, t_s)
                    if sender is not None:
                        sender.offer(rgba)
                end = time.perf_counter()
                if t_s >= next_beat:
                    # After the swap: the first beat means "first frame presented".
                    next_beat = t_s + BEAT_S
                    lifeline.alive()
                    if lifeline.supervisor_gone:
                        stop.request("the supervisor is gone")
                    if health is not None and t_s >= next_health:
                        next_health = t_s + HEALTH_EVERY_S
                        health.publish(
                            vitals.report(
                                schedule=fade.state if fade else None, monitor=window.on_monitor
                            )
                        )
                if resting:
                    # A few black frames a second keep the window and the beats alive.
                    time.sleep(max(REST_FRAME_S - (end - begin), 0.0))
                    deadline = time.perf_counter()
                else:
                    deadline += budget_s
                    late = end > deadline
                    stats.record((end - begin) * 1000.0, late)
                    if late:
                        deadline = end  # resync: never try to catch up with a burst of frames
                    else:
                        time.sleep(deadline - end)
                if t_s >= next_log:
                    next_log = t_s + LOG_EVERY_S
                    state = f"{fade.state} | " if fade else ""
                    log.info("%s%s | %s", state, stats.line(), generator_line(player))
                    lifeline.status(f"{state}{stats.line()}")
                frame += 1
                if duration_s is not None and t_s >= duration_s:
                    break
        finally:
            if stop.requested:
                log.info("stopping: %s", stop.reason)
            lifeline.stopping()
            was_recording = recording.active
            recording.close(time.perf_counter() - start)
            if was_recording and player.osc_out is not None:
                player.osc_out.send("/ls/record", 0)  # the show ends: so does the recording
            if sender is not None:
                sender.close()
            if health is not None:
                health.close()
            player.stop()
            capturing.close()
            shade.release()
            window.close()
    log.info("played %d frames: %s | %s", stats.frames, stats.line(), generator_line(player))
    return stats


class _Shade:
    """Black over the picture, for the fades into and out of closed hours: a 1x1
    texture whose alpha is rewritten only when it changes."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.texture = ctx.texture((1, 1), 4, data=bytes(4))
        self._alpha = 0

    def draw(self, compositor: Compositor, level: float, window_px: tuple[int, int]) -> None:
        alpha = round((1.0 - level) * 255.0)
        if alpha != self._alpha:
            self._alpha = alpha
            self.texture.write(bytes((0, 0, 0, alpha)))
        compositor.draw_overlay(self.texture, (0, 0, *window_px))

    def release(self) -> None:
        self.texture.release()


def _health_server(show: Show) -> HealthServer | None:
    """The show's health endpoint, or None; a port in use is logged, not fatal: the
    show must play on."""
    if show.health is None:
        return None
    try:
        return HealthServer(show.health)
    except OSError as exc:
        log.error(
            "no health endpoint on %s:%d (%s); the show plays without it",
            show.health.host,
            show.health.port,
            exc.strerror or exc,
        )
        return None


def _hud_lines(player: Player, stats: FrameStats, fps: float) -> list[str]:
    lines = [
        f"{player.show.name}   {fps:g} fps   h: hide   f: fullscreen   q: quit",
        stats.line(),
        generator_line(player),
    ]
    lines.extend(source.status() for source in player.inputs)
    lines.extend(player.controller_lines())
    rejected = player.bus.rejected()
    if rejected:
        counts = ", ".join(f"{source} {count}" for source, count in sorted(rejected.items()))
        lines.append(f"rejected non-finite: {counts}")
    if player.clip is not None:
        lines.extend(player.clip.status())
    capture = player.capture.status() if player.capture is not None else None
    if capture:
        lines.append(capture)
    return lines


def render_offline(
    show: Show, *, frames: int, out: Path, audio: Path | None = None, progress: bool = True
) -> FrameStats:
    """Render a show without a display, frame-exact: frame i is at t = i / fps.

    The generator renders frame i + 1 while the passes and the encoder handle
    frame i. Same show and seed give identical frames.

    A show with an audio file (`[inputs.audio] file`) is a music video: by default
    the render lasts as long as the file and the video carries it as soundtrack.

    A stop signal (SIGTERM, SIGINT, SIGHUP) ends the render early with a playable
    file (or folder) holding the frames so far.

    Args:
        show: the show.
        frames: how many frames; None: the soundtrack's length (300 without one).
        out: an .mp4/.mov/.mkv file, or a folder for PNGs.
        audio: an audio file to mux into a video; None: the show's soundtrack.
        progress: show a progress bar.
    Returns:
        The frame statistics (work per frame, excluding nothing: offline has no wait);
        `frames` is the number written.
    Raises:
        OutputError: no EGL, or `out` cannot be written.
    Thread: main.
    """
    with StopFlag() as stop:
        stats = _render(show, frames=frames, out=out, audio=audio, progress=progress, stop=stop)
    return stats


def render_length(
    player: Player, frames: int | None, audio: Path | None
) -> tuple[int, Path | None]:
    """How many frames an offline render has and which audio its video carries: by
    default the show's soundtrack (`[inputs.audio] file`) sets both.

    Args:
        player: the show's player (its feeds know the soundtrack).
        frames: the frames asked for, or None.
        audio: the audio file asked for, or None.
    Returns:
        (frames, audio): None frames become the soundtrack's length (DEFAULT_FRAMES
        without one); None audio becomes the soundtrack, if any.
    Thread: main.
    """
    soundtrack = next((f.soundtrack for f in player.feeds if hasattr(f, "soundtrack")), None)
    if frames is None:
        fps = player.show.output.fps
        frames = round(soundtrack[1] * fps) if soundtrack else DEFAULT_FRAMES
    if audio is None and soundtrack:
        audio = soundtrack[0]
    return frames, audio


def composite(
    player: Player, result: FrameResult | None, values: Mapping[str, float], t_s: float
) -> np.ndarray:
    """One offline frame after the generator: upload it, run the passes in frame
    order (trails and feedback passes carry state), let CLIP watch, read it back.

    Args:
        player: the show's player.
        result: the generated frame (without an image, or None, the last one stays).
        values: the frame's mapped values.
        t_s: the frame's time.
    Returns:
        (H, W, 3) uint8 at the show's output size, top row first.
    Thread: main.
    """
    player.take_frame(result)
    player.render_passes(values, t_s)
    player.watch(t_s)
    return player.compositor.read(player.show.output.size_px)


@contextmanager
def offline_player(show: Show) -> Iterator[Player]:
    """A started Player on a headless GL context, for an offline render (a show, a
    take, a distributed render's driver); stopped and released however it ends.

    Raises:
        OutputError: no EGL.
    Thread: main.
    """
    ctx = headless_context()
    player = Player(show, ctx, offline=True)
    try:
        player.start()
        yield player
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()


def say_if_stopped(stop: StopFlag, done: int, total: int, out: Path) -> None:
    """Log that an offline render was stopped early, and what it kept (a show's or
    a take's render). Thread: main."""
    if stop.requested:
        log.warning(
            "render stopped by %s after %d of %d frames; %s keeps them",
            stop.reason,
            done,
            total,
            out,
        )


def pipelined(
    player: Player, clocks: Sequence[tuple[int, float, float]], stop: StopFlag
) -> Iterator[tuple[int, dict[str, float], np.ndarray]]:
    """The offline pipeline: frame n is mapped and posted to the generator before
    frame n - 1 is composited and read back, so the passes and the encoder overlap
    the model. Every offline render (a show, a take) runs through it.

    Args:
        player: the show's player, started.
        clocks: each frame's (index, t_s, dt_s), in order.
        stop: ends the pipeline early (before the next frame) when requested.
    Yields:
        (position in `clocks`, the frame's values, its (H, W, 3) uint8 image at the
        show's output size), in order.
    Thread: main.
    """
    pending: tuple[int, dict[str, float]] | None = None
    for n in range(len(clocks) + 1):
        if stop.requested:
            return
        if n < len(clocks):
            frame, t_s, dt_s = clocks[n]
            values = player.map(frame, t_s, dt_s)
            player.submit(Params(frame, t_s, values), drop=False)
        if pending is not None:
            done, done_values = pending
            frame, t_s, _ = clocks[done]
            image = composite(player, player.wait_for(frame), done_values, t_s)
            yield done, done_values, image
        pending = (n, values) if n < len(clocks) else None


def _render(
    show: Show,
    *,
    frames: int | None,
    out: Path,
    audio: Path | None,
    progress: bool,
    stop: StopFlag,
) -> FrameStats:
    """render_offline's work, stopping early when `stop` is set. Thread: main."""
    from tqdm import tqdm

    with offline_player(show) as player:
        fps = show.output.fps
        dt_s = 1.0 / fps
        frames, audio = render_length(player, frames, audio)
        recorder = open_recorder(out, show.output.size_px, fps, audio)
        stats = FrameStats(budget_ms=dt_s * 1000.0)
        bar = tqdm(total=frames, unit="frame", desc=f"render {show.name}", disable=not progress)
        try:
            clocks = [(frame, frame * dt_s, dt_s) for frame in range(frames)]
            begin = time.perf_counter()
            for _, _, image in pipelined(player, clocks, stop):
                recorder.write(image)
                stats.record((time.perf_counter() - begin) * 1000.0, False)
                bar.update(1)
                begin = time.perf_counter()
            say_if_stopped(stop, stats.frames, frames, out)
        finally:
            bar.close()
            recorder.close()
    for problem in player.problems():
        log.warning("%s", problem)
    log.info(
        "rendered %d frames to %s: %s | generator %s",
        stats.frames,
        out,
        stats.line(),
        f"{player.worker.fps():.1f} fps",
    )
    return stats
