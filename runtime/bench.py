"""`run_show.py bench`: measured side by side in one run, so the ratios hold on any
machine: the frame loop's own cost (its Python: bus, mapping with 10 and 100 entries,
issuing the passes, the HUD) apart from GL's (the wait for the GPU, each pass timed
alone), the default generator's ms/frame at 256 and 512 px in torch and in GLSL,
headless end-to-end fps, and OSC event-to-bus latency."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import moderngl
import numpy as np
import torch

from runtime.cuda_gl import probe
from runtime.generators.base import Params, pick_device
from runtime.generators.cppn import CppnGenerator
from runtime.loop import render_offline
from runtime.mapping import MappingEngine
from runtime.neural import build_stages
from runtime.player import show_targets
from runtime.render.compositor import Compositor
from runtime.render.gl_generator import GLGenerator
from runtime.render.headless import headless_context
from runtime.render.hud import Hud
from runtime.show import load_show
from runtime.signals import SignalBus


def _median_ms(step: Callable[[], None], frames: int) -> float:
    for _ in range(3):  # warm up: first draws compile and allocate
        step()
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def run_bench(show_path: Path, *, frames: int = 120) -> Iterator[str]:
    """Measure and yield report lines as they are ready.

    Args:
        show_path: the show whose chain and generator are measured.
        frames: frames per measurement.
    Thread: main.
    """
    show = load_show(show_path)
    ctx = headless_context()
    device = pick_device(show.generator.device)
    yield (
        f"latentstage bench: show {show.name}; GL {ctx.info['GL_RENDERER']}; "
        f"torch {torch.__version__} on {device}; {torch.get_num_threads()} CPU threads"
    )
    yield from _loop_cost(show, ctx, frames)
    yield from _generator_speed(show.generator.seed, device, ctx, max(frames // 4, 8))
    problem = probe(ctx, device)
    yield "generated frames into GL: " + (
        "device to device by CUDA-GL interop (benchmarks/bench_cuda_gl.py times it)"
        if problem is None
        else f"through host memory ({problem})"
    )
    yield from _end_to_end(show, max(frames // 2, 10))
    yield from _osc_latency()
    ctx.release()


def _loop_cost(show, ctx: moderngl.Context, frames: int) -> Iterator[str]:
    """The loop's own cost per frame apart from GL's.

    Python: the bus snapshot and the mapping (with 10 and with 100 entries), then
    the calls that upload the frame and issue the passes, the present and the HUD
    blend, timed without waiting for GL, and the HUD's text redraw averaged over
    the frames between two redraws. GL: the wait for the queue after issuing, and
    each pass timed alone (fenced; timer queries beside it).
    """
    from runtime.loop import HUD_EVERY_S, FrameStats

    canvas_px = show.output.canvas_px
    window_px = show.output.size_px
    gen_px = show.generator.size_px
    fps = show.output.fps
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (gen_px[1], gen_px[0], 3), dtype=np.uint8)
    window = ctx.texture(window_px, 4)
    screen = ctx.framebuffer(color_attachments=[window])
    generator = CppnGenerator(seed=0, size_px=(16, 16), device=torch.device("cpu"))
    targets = show_targets(generator, show, build_stages(show))
    compositor = Compositor(ctx, show.effects, canvas_px)
    hud = Hud(ctx)
    stats = FrameStats(budget_ms=1000.0 / fps)
    for i in range(600):
        stats.record(float(i % 17), False)

    map_ms: dict[int, float] = {}
    values: dict[str, float] = {}
    for entries in (10, 100):
        with tempfile.TemporaryDirectory() as folder:
            engine = MappingEngine((_mapping_file(Path(folder), targets, entries),), targets)
        bus = SignalBus()
        clock = {"frame": 0}

        def map_once(engine=engine, bus=bus, clock=clock) -> None:
            i = clock["frame"] = clock["frame"] + 1
            for n in range(0, 100, 7):  # a few controls move every frame
                bus.set(f"osc:/bench/{n}", (i + n) % 50 / 50)
            values.update(engine.evaluate(bus.snapshot(), i / fps, 1 / fps))

        map_ms[entries] = _median_ms(map_once, frames)

    lines = ["bench", stats.line(), "generator cppn cpu 448x252  2.5 fps", "osc 127.0.0.1:9000"]
    hud.update(lines, [], window_px[0])

    def draw(compositor: Compositor, image: np.ndarray, fbo, size_px) -> list[float]:
        """ms per frame to upload, issue every pass, present and blend the HUD, and
        finish; the median over `frames`."""
        times = []
        for i in range(frames + 3):
            start = time.perf_counter()
            compositor.upload(image)
            compositor.render(values, i / fps)
            compositor.present(fbo, size_px)
            compositor.draw_overlay(hud.texture, hud.viewport(size_px))
            ctx.finish()
            if i >= 3:  # the first frames compile and allocate
                times.append((time.perf_counter() - start) * 1000.0)
        return times

    # The same calls on 16 px targets cost what the calls themselves cost (Python and
    # the GL API) with next to no pixels; at the show's sizes the rest is GL's work.
    # (llvmpipe rasterises inside the calls, so wall time alone cannot split them.)
    tiny = Compositor(ctx, show.effects, (16, 16))
    tiny_target = ctx.texture((16, 16), 4)
    tiny_fbo = ctx.framebuffer(color_attachments=[tiny_target])
    calls_ms = float(np.median(draw(tiny, frame[:16, :16].copy(), tiny_fbo, (16, 16))))
    full_ms = float(np.median(draw(compositor, frame, screen, window_px)))
    for obj in (tiny_fbo, tiny_target):
        obj.release()
    tiny.release()
    redraws = itertools.count()

    def redraw() -> None:
        """A HUD redraw as the live loop's: the statistics and the generator's fps
        change from one to the next, the other lines stay."""
        n = next(redraws)
        stats.record(float(n % 23), False)
        changed = [f"{stats.line()} #{n}", f"generator cppn cpu 448x252  {n % 97 / 10:.1f} fps"]
        hud.update([lines[0], *changed, lines[3]], [], window_px[0])

    per_hud_frame = _median_ms(redraw, max(frames // 2, 20)) / max(HUD_EVERY_S * fps, 1.0)

    passes: dict[str, list[tuple[float, float | None]]] = {}
    for i in range(max(frames // 4, 5)):
        for name, fenced_ms, query_ms in compositor.render_timed(values, i / fps):
            passes.setdefault(name, []).append((fenced_ms, query_ms))
        ctx.finish()
        start = time.perf_counter()
        compositor.present(screen, window_px)
        ctx.finish()
        passes.setdefault("present", []).append(((time.perf_counter() - start) * 1000.0, None))

    python_ms = map_ms[100] + calls_ms + per_hud_frame
    gl_ms = max(full_ms - calls_ms, 0.0)
    yield (
        f"loop, Python per frame: map + bus {map_ms[10]:.2f} ms with 10 entries, "
        f"{map_ms[100]:.2f} ms with 100; the calls that upload, run the passes, present "
        f"and blend the HUD {calls_ms:.2f} ms (on 16 px targets); HUD text and frame "
        f"statistics {per_hud_frame:.2f} ms (redrawn {1 / HUD_EVERY_S:g} times a second)"
    )
    per_pass = ", ".join(
        f"{name} {np.median([f for f, _ in rows]):.2f}"
        + (f" ({np.median([q for _, q in rows]):.2f})" if rows[0][1] is not None else "")
        for name, rows in passes.items()
    )
    yield (
        f"loop, GL per frame (canvas {canvas_px[0]}x{canvas_px[1]}, window "
        f"{window_px[0]}x{window_px[1]}): {gl_ms:.2f} ms beyond the calls' own cost; each "
        f"pass alone, fenced ms (timer query ms): {per_pass}"
    )
    software = any(name in ctx.info["GL_RENDERER"] for name in ("llvmpipe", "softpipe"))
    yield (
        f"loop total {python_ms + gl_ms:.2f} ms of a {1000 / fps:.1f} ms budget: Python "
        f"{python_ms:.2f} ms (100 entries), GL {gl_ms:.2f} ms"
        + (
            "; a software rasteriser may work outside a timer query: read the fenced times"
            if software
            else ""
        )
    )
    hud.texture.release()
    for obj in (screen, window):
        obj.release()
    compositor.release()


def _mapping_file(folder: Path, targets: dict, entries: int) -> Path:
    """A mapping file of `entries` entries over the show's targets, each with one of
    the transforms a real mapping uses (smoothing, one-euro, a curve, an envelope)."""
    names = [n for n, t in targets.items() if not (t.steps or t.integrates)]
    stages = (
        "smooth_s = 0.2",
        "one_euro = { min_cutoff_hz = 1.0, beta = 0.5, d_cutoff_hz = 1.0 }",
        'curve = "smoothstep"',
        "envelope = { attack_s = 0.05, release_s = 0.3 }",
    )
    blocks = []
    for i in range(entries):
        target = targets[names[i % len(names)]]
        blocks.append(
            f'[[map]]\nsource = "osc:/bench/{i}"\ntarget = "{target.name}"\n'
            f"out = [{target.lo}, {target.hi}]\n{stages[i % len(stages)]}\n"
        )
    path = folder / f"bench_{entries}.toml"
    path.write_text("\n".join(blocks))
    return path


def _generator_speed(
    seed: int, device: torch.device, ctx: moderngl.Context, frames: int
) -> Iterator[str]:
    """The cppn's frame time in torch (render and wait) and drawn in GLSL (uniforms,
    draw and glFinish), frame for frame at 256 and 512 px."""
    torch_ms, gl_ms = {}, {}
    for size in (256, 512):
        generator = CppnGenerator(seed=seed, size_px=(size, size), device=device)
        drawn = GLGenerator(ctx, generator.gl_program())

        def params() -> Params:
            return Params(0, 0.0, {"latent.phase": time.perf_counter() % 6})

        def step(g=generator) -> None:
            with torch.no_grad():
                g.render(params())
            if device.type == "cuda":
                torch.cuda.synchronize()

        def draw(g=generator, drawn=drawn) -> None:
            drawn.render(g.gl_uniforms(params()))
            ctx.finish()

        draw()  # the first draw compiles the seed's weights into the shader
        torch_ms[size] = _median_ms(step, frames)
        gl_ms[size] = _median_ms(draw, frames)
        drawn.release()
    yield (
        f"generator cppn on {device}: 256 px {torch_ms[256]:.1f} ms/frame "
        f"({1000 / torch_ms[256]:.1f} fps); 512 px {torch_ms[512]:.1f} ms/frame "
        f"({1000 / torch_ms[512]:.1f} fps); ratio 512/256 {torch_ms[512] / torch_ms[256]:.1f}x"
    )
    yield (
        f"generator cppn in GL: 256 px {gl_ms[256]:.1f} ms/frame ({1000 / gl_ms[256]:.1f} fps, "
        f"{torch_ms[256] / gl_ms[256]:.1f}x torch); 512 px {gl_ms[512]:.1f} ms/frame "
        f"({1000 / gl_ms[512]:.1f} fps, {torch_ms[512] / gl_ms[512]:.1f}x torch)"
    )


def _end_to_end(show, frames: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.mp4"
        start = time.perf_counter()
        render_offline(show, frames=frames, out=out, progress=False)
        elapsed = time.perf_counter() - start
    yield (
        f"headless end-to-end ({frames} frames, {show.output.size_px[0]}x"
        f"{show.output.size_px[1]} mp4, start-up included): {frames / elapsed:.1f} fps"
    )


def _osc_latency(count: int = 500) -> Iterator[str]:
    from pythonosc.udp_client import SimpleUDPClient

    from runtime.inputs.osc import OscInput

    bus = SignalBus()
    osc = OscInput(bus, port=0)
    osc.start()
    client = SimpleUDPClient("127.0.0.1", osc.port)
    latencies = []
    for i in range(count):
        sent = time.perf_counter()
        client.send_message("/bench", float(i))
        while bus.get("osc:/bench", -1.0) != float(i):
            if time.perf_counter() - sent > 1.0:
                break
            time.sleep(0.0001)  # a spinning poll would hold the GIL from the server thread
        else:
            latencies.append((bus.last_update_s("osc:/bench") - sent) * 1000.0)
    osc.stop()
    lat = np.array(latencies)
    yield (
        f"osc event-to-bus latency over UDP ({len(lat)}/{count} delivered): "
        f"p50 {np.percentile(lat, 50):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms"
    )
