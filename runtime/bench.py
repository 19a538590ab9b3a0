"""`run_show.py bench`: measured side by side in one run, so the ratios hold on any
machine: the frame loop's own cost over a bare ModernGL blit at the same size, the
default generator's ms/frame at 256 and 512 px, headless end-to-end fps, and OSC
event-to-bus latency."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import moderngl
import numpy as np
import torch

from runtime.generators.base import Params, pick_device
from runtime.generators.cppn import CppnGenerator
from runtime.loop import render_offline
from runtime.mapping import MappingEngine
from runtime.neural import build_stages
from runtime.player import show_targets
from runtime.render.compositor import Compositor
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
    yield from _generator_speed(show.generator.seed, device, max(frames // 4, 8))
    yield from _end_to_end(show, max(frames // 2, 10))
    yield from _osc_latency()
    ctx.release()


def _loop_cost(show, ctx: moderngl.Context, frames: int) -> Iterator[str]:
    """The loop's own work per frame (map, upload, passes, present, HUD) with a
    ready-made generated frame, against the least any GL loop does: upload the
    frame and draw it once at the same size."""
    canvas_px = show.output.canvas_px
    window_px = show.output.size_px
    gen_px = show.generator.size_px
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (gen_px[1], gen_px[0], 3), dtype=np.uint8)
    window = ctx.texture(window_px, 4)
    screen = ctx.framebuffer(color_attachments=[window])

    # A bare blit loop: upload the frame, draw one textured triangle, wait for GL.
    texture = ctx.texture(gen_px, 3, alignment=1)
    program = ctx.program(
        vertex_shader="#version 330 core\nout vec2 uv;\nvoid main() {\n"
        "vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2); uv = p;\n"
        "gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0); }",
        fragment_shader="#version 330 core\nuniform sampler2D t; in vec2 uv; out vec4 c;\n"
        "void main() { c = texture(t, uv); }",
    )
    vao = ctx.vertex_array(program, [])

    def bare() -> None:
        texture.write(frame)
        screen.use()
        texture.use(0)
        vao.render(moderngl.TRIANGLES, vertices=3)
        ctx.finish()

    generator = CppnGenerator(seed=0, size_px=(16, 16), device=torch.device("cpu"))
    engine = MappingEngine(show.mapping_paths, show_targets(generator, show, build_stages(show)))
    bus = SignalBus()
    compositor = Compositor(ctx, show.effects, canvas_px)
    hud = Hud(ctx)
    hud.update(["bench", "frame p50 0.0 ms", "generator"], [], canvas_px[0])
    clock = {"frame": 0}

    def loop() -> None:
        i = clock["frame"] = clock["frame"] + 1
        bus.set("osc:/fader/1", (i % 100) / 100)
        values = engine.evaluate(bus.snapshot(), i / show.output.fps, 1 / show.output.fps)
        compositor.upload(frame)
        compositor.render(values, i / show.output.fps)
        compositor.present(screen, window_px)
        compositor.draw_overlay(hud.texture, hud.viewport(window_px))
        ctx.finish()

    # Alternate the two frame by frame so machine noise hits both alike.
    for _ in range(3):
        bare()
        loop()
    bare_ms, loop_ms = [], []
    for _ in range(frames):
        for step, times in ((bare, bare_ms), (loop, loop_ms)):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1000.0)
    b, lp = float(np.median(bare_ms)), float(np.median(loop_ms))
    passes = ", ".join(e.name for e in show.effects) or "fit"
    yield (
        f"loop cost per frame, canvas {canvas_px[0]}x{canvas_px[1]} ({passes}) presented at "
        f"{window_px[0]}x{window_px[1]} + HUD: "
        f"{lp:.2f} ms; bare blit loop {b:.2f} ms; ratio {lp / b:.1f}x; "
        f"budget at {show.output.fps:g} fps {1000 / show.output.fps:.1f} ms"
    )
    for obj in (vao, program, texture, screen, window):
        obj.release()
    compositor.release()


def _generator_speed(seed: int, device: torch.device, frames: int) -> Iterator[str]:
    results = {}
    for size in (256, 512):
        generator = CppnGenerator(seed=seed, size_px=(size, size), device=device)

        def step(g=generator) -> None:
            with torch.no_grad():
                g.render(Params(0, 0.0, {"latent.phase": time.perf_counter() % 6}))
            if device.type == "cuda":
                torch.cuda.synchronize()

        results[size] = _median_ms(step, frames)
    yield (
        f"generator cppn on {device}: 256 px {results[256]:.1f} ms/frame "
        f"({1000 / results[256]:.1f} fps); 512 px {results[512]:.1f} ms/frame "
        f"({1000 / results[512]:.1f} fps); ratio 512/256 {results[512] / results[256]:.1f}x"
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
