"""The cppn generator's frame time: the torch path beside the GLSL path, one run.

    python benchmarks/bench_cppn_gl.py                       # 256x256, 448x252 (the demo), 1280x720
    python benchmarks/bench_cppn_gl.py --sizes 448x252 --frames 30
    python benchmarks/bench_cppn_gl.py --torch-threads 2 --width 64 --depth 6
    python benchmarks/bench_cppn_gl.py --sizes 1920x1080 --device cuda   # a GPU machine

torch renders as the generator worker does (render, then the uint8 conversion and
the copy to host memory), on the CPU with the thread count a live show gives it
(the cores less one), or on CUDA with --device.
GL renders on a headless EGL context (Mesa llvmpipe on a machine without a GPU):
the frame's uniforms, the draw, and glFinish; the read-back to numpy, which the
frame loop does not need, is timed apart. The two alternate frame by frame, so a
busy machine slows both alike; each row gives medians, fps, and the ratio as the
median of each frame pair's (steadier than the ratio of medians when the machine's
load changes during the run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.generators.base import Params
from runtime.generators.cppn import CppnGenerator
from runtime.render.gl_generator import GLGenerator
from runtime.render.headless import headless_context


def frame_params(frame: int) -> Params:
    """A moving frame: the walk, the warp's drift and a slow turn all change."""
    t_s = frame / 30
    return Params(frame, t_s, {"latent.phase": 0.08 * t_s, "gen.rotate": 0.05 * t_s})


def torch_frame(generator: CppnGenerator, params: Params) -> None:
    """Render and convert as runtime/generators/worker.py does."""
    image = generator.render(params)  # (3, H, W)
    pixels = (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    pixels.permute(1, 2, 0).contiguous().cpu().numpy()  # (H, W, 3)


def bench_size(ctx, args: argparse.Namespace, size_px: tuple[int, int]) -> None:
    generator = CppnGenerator(
        seed=args.seed,
        size_px=size_px,
        device=torch.device(args.device),
        width=args.width,
        depth=args.depth,
    )
    t0 = time.perf_counter()
    gl = GLGenerator(ctx, generator.gl_program(), storage=args.storage)
    gl.render(generator.gl_uniforms(frame_params(0)))
    ctx.finish()  # llvmpipe compiles the shader at its first draw
    first_s = time.perf_counter() - t0
    torch_frame(generator, frame_params(0))

    torch_s, gl_s, read_s = [], [], []
    for frame in range(1, args.frames + 1):
        params = frame_params(frame)
        t0 = time.perf_counter()
        torch_frame(generator, params)
        torch_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gl.render(generator.gl_uniforms(params))
        ctx.finish()
        gl_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gl.read()
        read_s.append(time.perf_counter() - t0)
    torch_ms = 1000 * statistics.median(torch_s)
    gl_ms = 1000 * statistics.median(gl_s)
    speedup = statistics.median(t / g for t, g in zip(torch_s, gl_s))
    print(
        f"{size_px[0]:>5}x{size_px[1]:<5} torch {torch_ms:8.1f} ms {1000 / torch_ms:6.1f} fps | "
        f"gl {gl_ms:7.1f} ms {1000 / gl_ms:6.1f} fps ({gl.storage}) | "
        f"gl speed-up {speedup:5.2f}x | read-back {1000 * statistics.median(read_s):5.1f} ms"
        f" | gl build + first frame {first_s:.1f} s",
        flush=True,
    )
    gl.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x256,448x252,1280x720")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per size")
    parser.add_argument("--seed", type=int, default=2, help="the demo's seed")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="torch's threads (default: the cores less one, as a live show sets them)",
    )
    parser.add_argument("--storage", default="auto", help="GL weight storage (see GLGenerator)")
    parser.add_argument("--device", default="cpu", help="torch's device: cpu or cuda[:N]")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    ctx = headless_context()
    print(
        f"cppn seed {args.seed}, width {args.width}, depth {args.depth}; torch on "
        + (
            f"the CPU with {args.torch_threads} thread(s)"
            if args.device == "cpu"
            else torch.cuda.get_device_name(args.device)
        )
        + f"; GL on {ctx.info['GL_RENDERER']}; "
        f"medians of {args.frames} frames"
    )
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        bench_size(ctx, args, (width, height))
    ctx.release()


if __name__ == "__main__":
    main()
