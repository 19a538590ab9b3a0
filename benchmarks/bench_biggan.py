"""BigGAN ms/frame: this project's network beside a straightforward reference, one run.

    python benchmarks/bench_biggan.py                       # CPU, 128 px, width 32
    python benchmarks/bench_biggan.py --device cuda         # 128/256/512, fp16 off and on
    python benchmarks/bench_biggan.py --upstream /tmp/ppb:/tmp/ppb-deps

Random-weight networks of the released shapes (`--width 128` is the real size; the
CPU default is narrower so a run takes seconds). The reference is
pytorch-pretrained-biggan's own model when it can be imported (`--upstream` adds
folders to sys.path; it is never a project dependency), else this project's network
in float32, NCHW, one frame per call. Every row prints ms/frame, its ratio to the
reference measured in the same run, and its largest difference from the reference
image.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.generators.biggan import (
    BigGanConfig,
    BigGanNet,
    random_state_dict,
    standard_config,
    truncated_noise,
)


def time_once(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Seconds one call of `fn` takes (GPU time by CUDA events on CUDA)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def upstream_model(config: BigGanConfig, state: dict, device: torch.device):
    """pytorch-pretrained-biggan's BigGAN with `state`, or None when not importable."""
    try:
        from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    except ImportError:
        return None
    model = BigGAN(BigGANConfig.from_dict(config.to_json()))
    model.load_state_dict(state)
    return model.eval().to(device)


def inputs(config: BigGanConfig, batch: int, truncation: float, device: torch.device):
    z = torch.stack([truncated_noise(s, config.z_dim) for s in range(batch)]) * truncation
    classes = torch.nn.functional.one_hot(
        torch.arange(batch) * 37 % config.num_classes, config.num_classes
    ).float()
    return z.to(device), classes.to(device)


def bench_resolution(args: argparse.Namespace, resolution: int, device: torch.device) -> None:
    config = standard_config(resolution, channel_width=args.width)
    state = random_state_dict(config, seed=0)
    t = 0.4
    z1, c1 = inputs(config, 1, t, device)
    zb, cb = inputs(config, args.batch, t, device)

    upstream = upstream_model(config, state, device)
    # Each variant is its own network, prepared once; their calls are interleaved
    # round by round, so a busy machine slows them all alike.
    variants: list[tuple[str, Callable[[], torch.Tensor], int]] = []

    def ours(half: bool, channels_last: bool) -> BigGanNet:
        net = BigGanNet(config, state).eval().to(device)
        net.set_precision(half=half, channels_last=channels_last)
        return net

    if upstream is not None:
        variants.append(("upstream pytorch-pretrained-biggan fp32", lambda: upstream(z1, c1, t), 1))
    fp32 = ours(half=False, channels_last=False)
    variants.append(("ours fp32 NCHW, 1 frame", lambda: fp32(z1, c1, t), 1))
    if args.batch > 1:
        variants.append(
            (f"ours fp32 NCHW, batch of {args.batch}", lambda: fp32(zb, cb, t), args.batch)
        )
    if device.type == "cuda":
        fp32_cl = ours(half=False, channels_last=True)
        variants.append(("ours fp32 channels-last, 1 frame", lambda: fp32_cl(z1, c1, t), 1))
        fp16 = ours(half=True, channels_last=True)
        variants.append(("ours fp16 channels-last, 1 frame", lambda: fp16(z1, c1, t), 1))
        if args.batch > 1:
            name = f"ours fp16 channels-last, batch of {args.batch}"
            variants.append((name, lambda: fp16(zb, cb, t), args.batch))

    with torch.no_grad():
        images = [fn()[:1].float() for _, fn, _ in variants]  # also the warm-up
        for _, fn, _ in variants:
            fn()
        times: list[list[float]] = [[] for _ in variants]
        for _ in range(args.repeats):
            for i, (_, fn, _) in enumerate(variants):
                times[i].append(time_once(fn, device))
    rows = [
        (name, statistics.median(ts) / frames, image)
        for (name, _, frames), ts, image in zip(variants, times, images)
    ]

    ref_name, ref_s, ref_img = rows[0]
    print(f"\n{resolution} px, channel width {args.width}, {device} (reference: {ref_name})")
    print(f"  {'variant':44} {'ms/frame':>9} {'speed-up':>9} {'max |diff|':>11}")
    for name, seconds, image in rows:
        diff = (image - ref_img).abs().max().item()
        print(f"  {name:44} {seconds * 1000:9.1f} {ref_s / seconds:8.2f}x {diff:11.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--resolutions", type=int, nargs="+", help="default: 128 (cpu), all (cuda)")
    parser.add_argument("--width", type=int, help="channel width (128 = released models)")
    parser.add_argument("--batch", type=int, default=8, help="frames per batched call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    parser.add_argument("--upstream", help="folders to add to sys.path, ':'-separated")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.upstream:
        sys.path[:0] = args.upstream.split(":")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.width = args.width or (128 if cuda else 32)
    if cuda:
        torch.backends.cudnn.benchmark = True
        print(torch.cuda.get_device_name(device))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for resolution in args.resolutions or ((128, 256, 512) if cuda else (128,)):
        bench_resolution(args, resolution, device)


if __name__ == "__main__":
    main()
