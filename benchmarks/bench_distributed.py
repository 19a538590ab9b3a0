"""Distributed renders' speed: frames per second of a one-process render and of Ray
renders on 1 and 2 workers, side by side in one run, and what the distribution
costs per frame.

    python benchmarks/bench_distributed.py                    # cppn and StyleGAN2, CPU
    python benchmarks/bench_distributed.py --frames 60 --models cppn
    python benchmarks/bench_distributed.py --cpus 8 --workers 1 2 4 8

Each model renders the same show (its generator, then trails and a grade, PNG
frames) `--frames` frames long: once with `render_offline` (one process, the
generator on a thread), then with `render_distributed` on a local Ray instance
(`--cpus` CPUs, started once) with each worker count. StyleGAN2 is a random-weight
network of upstream's configuration at `--stylegan-px` (weights shipped to the
workers like a real checkpoint); cppn is the weightless generator, so cheap that
what it measures is the distribution's own cost.

Columns: startup (Ray workers started and models loaded; for one process, the
player built), fps while rendering, ms per frame, the workers' own rendering time
per frame (summed over workers), and the driver's own ms per frame (mapping, keeping
frames on disk, compositing and writing). `overhead` is what distribution costs per
frame with 1 worker: its ms per frame less the worker's own rendering time (values
out, the frame back through Ray, the work folder, the worker waiting on the driver);
`vs 1 proc` is its ms per frame less the one-process render's (on a shared machine
mostly noise: other jobs take the cores).
Every render's frames are checked to be the same bytes as the one-process render's.
Every render, and every worker, runs torch with `--threads` CPU threads (default 1:
the workers of a distributed render take the driver's count, since float32 results
on the CPU depend on it, so 1 thread each is what lets 2 workers share 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.distributed import render_distributed, require_ray
from runtime.loop import render_offline
from runtime.show import load_show

EFFECTS = """
[[effects]]
shader = "fit"

[[effects]]
shader = "feedback"
name = "trails"

[[effects]]
shader = "grade"
"""
MAPPING = """
[set]
"shader.fit.mode" = 1
"shader.trails.decay" = 0.6
"latent.speed" = 0.3

[[map]]
source = "lfo:mid"
target = "gen.zoom"
out = [0.8, 1.2]
"""


def write_show(folder: Path, model: str, size_px: int) -> Path:
    """A show for `model` ("cppn" or "stylegan") at `size_px` square, in `folder`."""
    if model == "stylegan":
        from benchmarks.bench_stylegan import random_network
        from runtime.generators.stylegan_load import export_safetensors

        weights = folder / f"sg2-{size_px}.safetensors"
        if not weights.exists():
            export_safetensors(random_network("sg2", size_px, 512)[0], weights)
        generator = (
            f'kind = "stylegan"\nweights = "{weights}"\ndirections = 0\n'
            'fp16 = false\nspeed = "eager"\n'
        )
        mapping = MAPPING.replace('target = "gen.zoom"', 'target = "latent.speed"')
        mapping = mapping.replace("out = [0.8, 1.2]", "out = [0.1, 0.5]")
    else:
        generator = 'kind = "cppn"\n'
        mapping = MAPPING
    (folder / f"{model}_mapping.toml").write_text(mapping)
    show = folder / f"{model}.toml"
    show.write_text(
        f'mappings = ["{model}_mapping.toml"]\n\n[show]\nname = "{model}"\n\n'
        f"[generator]\n{generator}seed = 7\nsize = [{size_px}, {size_px}]\n"
        f'device = "cpu"\n\n[output]\nsize = [{size_px}, {size_px}]\nfps = 30\n{EFFECTS}'
    )
    return show


def png_bytes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("frame_*.png"))]


def bench_model(model: str, size_px: int, args: argparse.Namespace, folder: Path) -> list[str]:
    """Table rows for one model."""
    show = load_show(write_show(folder, model, size_px))
    frames = args.frames
    start = time.perf_counter()
    stats = render_offline(show, frames=frames, out=folder / f"{model}-one", progress=False)
    wall_s = time.perf_counter() - start
    loop_s = sum(stats.work_ms) / 1000.0  # the frame loop alone, without building
    one_ms = loop_s * 1000.0 / frames
    reference = png_bytes(folder / f"{model}-one")
    rows = [
        f"{model:8} {size_px:5} {'1 process':10} {wall_s - loop_s:8.1f} "
        f"{frames / loop_s:7.1f} {one_ms:8.1f} {'':>8} {'':>22}  yes"
    ]
    for workers in args.workers:
        out = folder / f"{model}-ray{workers}"
        report = render_distributed(
            show, frames=frames, out=out, workers=workers, batch=args.batch, progress=False
        )
        ms = report.render_s * 1000.0 / frames
        driver = report.driver_ms
        busy_ms = sum(t.busy_s for t in report.workers) * 1000.0 / frames
        extra = f"{ms - busy_ms:9.1f} {ms - one_ms:+9.1f}" if workers == 1 else ""
        same = "yes" if png_bytes(out) == reference else "NO"
        rows.append(
            f"{'':8} {'':5} {f'{workers} worker' + 's' * (workers > 1):10} "
            f"{report.startup_s:8.1f} {frames / report.render_s:7.1f} {ms:8.1f} "
            f"{busy_ms:8.1f} {driver['map']:6.2f} {driver['store']:6.2f} "
            f"{driver['composite']:8.2f}  {same:4} {extra}"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["cppn", "stylegan"])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--cppn-px", type=int, default=256)
    parser.add_argument("--stylegan-px", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray instance's CPUs")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads of every render (1)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # Ray runs workers at nice 15 by default; the one-process render runs at 0, and on
    # a shared machine other processes would take the workers' cores.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Workers take the driver's thread count (float32 results depend on it).
    torch.set_num_threads(args.threads)
    ray = require_ray()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING)
    print(
        f"{args.frames} frames each, batch {args.batch}, {args.threads} torch thread(s) per "
        f"render or worker, Ray with {args.cpus} CPUs",
        flush=True,
    )
    print(
        f"{'model':8} {'px':>5} {'render':10} {'startup':>8} {'fps':>7} {'ms/frm':>8} "
        f"{'busy ms':>8} {'driver ms: map  store composite':>31}  same {'overhead':>9} "
        f"{'vs 1 proc':>9}"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for model in args.models:
                size_px = args.stylegan_px if model == "stylegan" else args.cppn_px
                for row in bench_model(model, size_px, args, Path(tmp)):
                    print(row, flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
