"""Neural stages' speed: ms per frame of DeepDream and AdaIN style, side by side in one run.

    python benchmarks/bench_neural.py                          # CPU, 256 and 512 px
    python benchmarks/bench_neural.py --device cuda            # fp16, channels-last
    python benchmarks/bench_neural.py --sizes 256 --frames 5

Random-weight networks of the real architectures (googlenet to each layer; AdaIN's
VGG-19 encoder to relu4_1 and its decoder), so the arithmetic is that of the real
weights. Each stage runs exactly as a show runs it offline (the full, fixed work of
every frame): on the CPU in float32, on CUDA in float16 with channels-last (the
stages' own path there). Frames are square, `size` x `size` px.

Every row prints ms per frame, frames per second, and its cost in frame budgets at
30 and 60 fps; the `vs 1x1` column is how many times faster each dream row is than
one step at one octave, measured in the same run (below 1: slower).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.neural import dream, style
from runtime.neural.base import StageRun
from runtime.neural.chain import warp
from runtime.show import load_show


def timed_ms(fn: Callable[[], object], device: torch.device, frames: int) -> float:
    """Median ms of `frames` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(frames):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def write_nets(folder: Path) -> None:
    """Random-weight googlenet and AdaIN state dicts, and two textures for styles."""
    torch.manual_seed(0)
    googlenet = torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=True, transform_input=True
    )
    torch.save(googlenet.state_dict(), folder / "googlenet.pth")
    (folder / "adain").mkdir()
    torch.save(style.make_encoder().state_dict(), folder / "adain" / style.ENCODER_FILE)
    torch.save(style.make_decoder().state_dict(), folder / "adain" / style.DECODER_FILE)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        pixels = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}.png")


def build_stages(folder: Path, device: torch.device):
    show = folder / "bench.toml"
    show.write_text(
        f"""[[neural]]
kind = "dream"
weights = "{folder / "googlenet.pth"}"

[[neural]]
kind = "style"
weights = "{folder / "adain"}"
styles = ["{folder / "a.png"}", "{folder / "b.png"}"]
style_size = 256
"""
    )
    configs = load_show(show).neural
    dreamer, styler = dream.build(configs[0]), style.build(configs[1])
    dreamer.load(device)
    styler.load(device)
    return dreamer, styler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=3, help="timed frames per row")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = "fp16 channels-last" if device.type == "cuda" else "fp32"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"neural stages on {name} ({precision}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {args.frames} frames"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_nets(folder)
        dreamer, styler = build_stages(folder, device)
    layer = float(dream.GOOGLENET_LAYERS.index(dream.DEFAULT_LAYER))
    header = (
        f"{'stage':34} {'size':>6} {'ms/frame':>9} {'fps':>7} {'vs 1x1':>6} "
        f"{'@30fps':>7} {'@60fps':>7}"
    )
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        g = torch.Generator().manual_seed(size)
        frame = torch.rand(1, 3, size, size, generator=g).to(device)  # (1, 3, S, S)
        base_ms = None
        rows: list[tuple[str, float, float | None]] = []
        for octaves in (1, 3):
            for steps in (1, 2, 4):
                values = {
                    "dream.octaves": octaves,
                    "dream.steps": steps,
                    "dream.layer": layer,
                    "dream.step": 0.02,
                    "dream.jitter": 8.0,
                }
                run = StageRun(frame=0, t_s=0.0, seed=0)
                ms = timed_ms(
                    functools.partial(dreamer.process, frame, values, run), device, args.frames
                )
                base_ms = base_ms or ms
                label = f"dream inception4c {octaves} oct x {steps} steps"
                rows.append((label, ms, base_ms / ms))
        values = {"style.strength": 1.0, "style.select": 0.5}
        run = StageRun(frame=0, t_s=0.0, seed=0)
        rows.append(
            (
                "style (AdaIN, 2-style blend)",
                timed_ms(
                    functools.partial(styler.process, frame, values, run), device, args.frames
                ),
                None,
            )
        )
        rows.append(
            (
                "feedback warp (zoom + turn)",
                timed_ms(
                    functools.partial(warp, frame, zoom_per_s=0.1, rotate_per_s=0.2, dt_s=1 / 30),
                    device,
                    args.frames,
                ),
                None,
            )
        )
        for label, ms, ratio in rows:
            ratio_s = f"{ratio:6.2f}" if ratio is not None else f"{'':6}"
            print(
                f"{label:34} {size:>6} {ms:9.1f} {1000.0 / ms:7.1f} {ratio_s} "
                f"{ms / (1000 / 30):7.2f} {ms / (1000 / 60):7.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
