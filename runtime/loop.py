"""The frame loops: live (a window, a fixed frame budget, never waiting on the
generator) and offline (frame-exact, t = frame / fps, as fast as it goes).

Both report frame time p50/p99, late frames and generator fps: on the HUD, in the
log every ten seconds, and in the summary at the end.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from runtime.generators.base import Params
from runtime.player import Player
from runtime.render.headless import headless_context
from runtime.render.recorder import open_recorder
from runtime.show import Show

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 300
RELOAD_EVERY_S = 0.5
HUD_EVERY_S = 0.25
LOG_EVERY_S = 10.0


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
        return (
            f"frame p50 {self.percentile_ms(50):.1f} ms  p99 {self.percentile_ms(99):.1f} ms"
            f"  (budget {self.budget_ms:.1f})  late {self.late}/{self.frames}"
        )


def generator_line(player: Player) -> str:
    """'generator cppn cpu 256x256  11.8 fps | dream 3 steps 42 ms | style 18 ms' for
    HUD and log: the generator and what each neural stage did on the last frame.

    Thread: main.
    """
    g = player.generator
    line = (
        f"generator {g.kind} {g.device.type} {g.size_px[0]}x{g.size_px[1]}"
        f"  {player.worker.fps():.1f} fps"
    )
    for stat in player.last_stages:
        steps = f" {stat.steps} steps" if stat.steps else ""
        line += f" | {stat.name}{steps} {stat.ms:.0f} ms"
    return line


def play_live(
    show: Show,
    *,
    fullscreen: bool | None = None,
    monitor: int | None = None,
    duration_s: float | None = None,
    hud: bool = True,
) -> FrameStats:
    """Play a show in a window until the performer quits (Esc or q).

    Args:
        show: the show.
        fullscreen, monitor: override the show's `[output]`.
        duration_s: stop after this long (for rehearsals and tests).
        hud: start with the HUD shown (h toggles it).
    Returns:
        The frame statistics.
    Raises:
        OutputError: no display or no such monitor.
        ConfigError / ShaderError: the show cannot start.
    Thread: main.
    """
    from runtime.render.hud import Hud
    from runtime.render.window import Window

    out = show.output
    window = Window(
        f"latentstage: {show.name}",
        out.size_px,
        fullscreen=out.fullscreen if fullscreen is None else fullscreen,
        monitor=out.monitor if monitor is None else monitor,
        vsync=out.vsync,
    )
    player = Player(show, window.ctx, offline=False)
    overlay = Hud(window.ctx)
    # Input threads wait for the GIL while the frame loop runs Python: hand it over
    # every millisecond (default 5) so an OSC or MIDI message reaches the bus sooner.
    sys.setswitchinterval(0.001)
    # Leave a core to the frame loop and the GL driver: torch's pool on every core
    # (the generator, neural stages, CLIP) would take turns with the loop's own work.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    budget_s = 1.0 / out.fps
    stats = FrameStats(budget_ms=budget_s * 1000.0)
    player.start()
    start = time.perf_counter()
    deadline = start
    last_t = 0.0
    next_reload = next_hud = 0.0
    next_log = LOG_EVERY_S
    frame = 0
    try:
        while not window.should_close():
            begin = time.perf_counter()
            t_s = begin - start
            player.step_live(frame, t_s, t_s - last_t if frame else budget_s)
            last_t = t_s
            window_px = window.framebuffer_px
            player.compositor.present(window.ctx.screen, window_px)
            if t_s >= next_reload:
                next_reload = t_s + RELOAD_EVERY_S
                player.reload_if_changed()
            if hud != window.show_hud_toggled:
                if t_s >= next_hud:
                    next_hud = t_s + HUD_EVERY_S
                    overlay.update(
                        _hud_lines(player, stats, out.fps), player.problems(), window_px[0]
                    )
                player.compositor.draw_overlay(overlay.texture, overlay.viewport(window_px))
            window.swap()
            end = time.perf_counter()
            deadline += budget_s
            late = end > deadline
            stats.record((end - begin) * 1000.0, late)
            if late:
                deadline = end  # resync: never try to catch up with a burst of frames
            else:
                time.sleep(deadline - end)
            if t_s >= next_log:
                next_log = t_s + LOG_EVERY_S
                log.info("%s | %s", stats.line(), generator_line(player))
            frame += 1
            if duration_s is not None and t_s >= duration_s:
                break
    finally:
        player.stop()
        window.close()
    log.info("played %d frames: %s | %s", stats.frames, stats.line(), generator_line(player))
    return stats


def _hud_lines(player: Player, stats: FrameStats, fps: float) -> list[str]:
    lines = [
        f"{player.show.name}   {fps:g} fps   h: hide   f: fullscreen   q: quit",
        stats.line(),
        generator_line(player),
    ]
    lines.extend(source.status() for source in player.inputs)
    if player.clip is not None:
        lines.extend(player.clip.status())
    return lines


def render_offline(
    show: Show, *, frames: int, out: Path, audio: Path | None = None, progress: bool = True
) -> FrameStats:
    """Render a show without a display, frame-exact: frame i is at t = i / fps.

    The generator renders frame i + 1 while the passes and the encoder handle
    frame i. Same show and seed give identical frames.

    A show with an audio file (`[inputs.audio] file`) is a music video: by default
    the render lasts as long as the file and the video carries it as soundtrack.

    Args:
        show: the show.
        frames: how many frames; None: the soundtrack's length (300 without one).
        out: an .mp4/.mov/.mkv file, or a folder for PNGs.
        audio: an audio file to mux into a video; None: the show's soundtrack.
        progress: show a progress bar.
    Returns:
        The frame statistics (work per frame, excluding nothing: offline has no wait).
    Raises:
        OutputError: no EGL, or `out` cannot be written.
    Thread: main.
    """
    from tqdm import tqdm

    ctx = headless_context()
    player = Player(show, ctx, offline=True)
    fps = show.output.fps
    dt_s = 1.0 / fps
    soundtrack = next((f.soundtrack for f in player.feeds if hasattr(f, "soundtrack")), None)
    if frames is None:
        frames = round(soundtrack[1] * fps) if soundtrack else DEFAULT_FRAMES
    if audio is None and soundtrack:
        audio = soundtrack[0]
    recorder = open_recorder(out, show.output.size_px, fps, audio)
    stats = FrameStats(budget_ms=dt_s * 1000.0)
    player.start()
    bar = tqdm(total=frames, unit="frame", desc=f"render {show.name}", disable=not progress)
    try:
        pending: dict[str, float] | None = None
        for frame in range(frames + 1):
            begin = time.perf_counter()
            if frame < frames:
                values = player.map(frame, frame * dt_s, dt_s)
                player.worker.submit(Params(frame, frame * dt_s, values), drop=False)
            if pending is not None:
                done = frame - 1
                result = player.worker.wait_for(done)
                player.take_frame(result)
                player.compositor.render(pending, done * dt_s)
                player.watch(done * dt_s)
                recorder.write(player.compositor.read(show.output.size_px))
                stats.record((time.perf_counter() - begin) * 1000.0, False)
                bar.update(1)
            pending = values if frame < frames else None
    finally:
        bar.close()
        recorder.close()
        player.stop()
        player.compositor.release()
        ctx.release()
    for problem in player.problems():
        log.warning("%s", problem)
    log.info(
        "rendered %d frames to %s: %s | generator %s",
        frames,
        out,
        stats.line(),
        f"{player.worker.fps():.1f} fps",
    )
    return stats
