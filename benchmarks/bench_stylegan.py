"""StyleGAN speed: ms/frame of each model, measured side by side in one run.

For each model (the upstream-made fixtures at their resolution, plus random-weight
networks built at --sizes with upstream's standard configurations) it times:

- reference: the generator in float32, eager, one frame per call (no float16, no
  CUDA graph, no compile): the straightforward forward every other row is
  compared with;
- fp16 (CUDA): float16 where the model allows, channels-last;
- fp16+graph (CUDA): the same, replayed as a captured CUDA graph (the default
  live path on CUDA);
- compile (--compile): torch.compile of the same forward;
- batch N: render_batch of N frames, per frame (offline renders);
- NVlabs (--upstream DIR): NVlabs' own synthesis network from a stylegan3 checkout,
  with the same weights and the same latents, and the largest difference between
  its image and ours.

Ratios are reference ms / row ms (above 1 is faster than the reference).

    python -m benchmarks.bench_stylegan                       # CPU, small sizes
    python -m benchmarks.bench_stylegan --device cuda --sizes 256 512 1024
    python -m benchmarks.bench_stylegan --upstream /tmp/stylegan3   # + NVlabs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

from runtime import PROJECT_ROOT
from runtime.generators import build_generator
from runtime.generators.base import Params
from runtime.generators.stylegan import StyleGANGenerator
from runtime.generators.stylegan2_net import StyleGAN2, StyleGAN2Config
from runtime.generators.stylegan3_net import StyleGAN3, StyleGAN3Config
from runtime.generators.stylegan_load import StyleGANNetwork, export_safetensors, load_network
from runtime.show import load_show

FAMILIES = ("sg2", "sg3t", "sg3r")


def upstream_kwargs(family: str, size: int, channel_max: int) -> dict:
    """Constructor arguments of upstream's standard configurations at `size`."""
    base = {
        "z_dim": 512,
        "c_dim": 0,
        "w_dim": 512,
        "img_resolution": size,
        "img_channels": 3,
        "channel_base": 32768,
        "channel_max": channel_max,
    }
    if family == "sg2":
        return {**base, "mapping_kwargs": {"num_layers": 8}, "num_fp16_res": 4, "conv_clamp": 256}
    kwargs = {**base, "mapping_kwargs": {"num_layers": 2}, "num_fp16_res": 4, "conv_clamp": 256}
    if family == "sg3r":
        kwargs.update(
            conv_kernel=1,
            use_radial_filters=True,
            channel_base=65536,
            channel_max=2 * channel_max,
        )
    return kwargs


def random_network(family: str, size: int, channel_max: int) -> tuple[StyleGANNetwork, dict]:
    """A random-weight network of upstream's configuration, and its kwargs."""
    torch.manual_seed(0)
    kwargs = upstream_kwargs(family, size, channel_max)
    if family == "sg2":
        return StyleGAN2(StyleGAN2Config.from_upstream_kwargs(kwargs, ada=False)).eval(), kwargs
    return StyleGAN3(StyleGAN3Config.from_upstream_kwargs(kwargs)).eval(), kwargs


def make_generator(
    weights: Path, folder: Path, device: str, *, fp16: bool, speed: str, size: int
) -> StyleGANGenerator:
    """Build through a show file, as a show would."""
    show = folder / f"bench-{fp16}-{speed}.toml"
    show.write_text(
        "[generator]\n"
        'kind = "stylegan"\n'
        f'weights = "{weights}"\n'
        f"size = {size}\n"
        f'device = "{device}"\n'
        "directions = 0\n"
        f"fp16 = {'true' if fp16 else 'false'}\n"
        f'speed = "{speed}"\n'
    )
    gen = build_generator(load_show(show).generator)
    assert isinstance(gen, StyleGANGenerator)
    return gen


def params(i: int) -> Params:
    """A moving latent, so every frame does real work."""
    return Params(i, i / 30, {"latent.phase": 0.07 * i, "latent.speed": 0.0})


def time_interleaved(
    runs: list[Callable[[int], object]], device: torch.device, rounds: int, warmup: int
) -> list[float]:
    """Median ms per call of each run, timed in interleaved rounds (one call of each
    per round), so a change in machine load hits every row alike."""
    for run in runs:
        for i in range(warmup):
            run(i)
    times: list[list[float]] = [[] for _ in runs]
    for r in range(rounds):
        for k, run in enumerate(runs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run(warmup + r)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[k].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def upstream_synthesis(upstream: Path, family: str, kwargs: dict, net: StyleGANNetwork):
    """NVlabs' synthesis network with our weights (imports their code from `upstream`)."""
    if str(upstream) not in sys.path:
        sys.path.insert(0, str(upstream))
    # NVlabs' conv2d_gradfix reads torch's version with pkg_resources, which newer
    # setuptools no longer ship: lend it packaging's parser under that name.
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        from packaging.version import parse

        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)  # type: ignore[assignment]
    if family == "sg2":
        from training.networks_stylegan2 import Generator  # type: ignore[import-not-found]
    else:
        from training.networks_stylegan3 import Generator  # type: ignore[import-not-found]
    g = Generator(**kwargs).eval().requires_grad_(False)
    g.load_state_dict({k: v.cpu() for k, v in net.state_dict().items()}, strict=True)
    return g.synthesis


def bench_model(
    label: str,
    weights: Path,
    family: str,
    kwargs: dict | None,
    args: argparse.Namespace,
    folder: Path,
) -> list[tuple[str, str, float, str]]:
    """Rows (model, variant, ms/frame, note) for one model."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    size = load_network(weights).img_resolution
    ref = make_generator(weights, folder, args.device, fp16=False, speed="eager", size=size)
    # (name, run(i), frames per call, note)
    rows: list[tuple[str, Callable[[int], object], int, str]] = [
        ("reference (fp32 eager)", lambda i: ref.render(params(i)), 1, "")
    ]
    variants: list[tuple[str, bool, str]] = []
    if cuda:
        variants += [("fp16 eager", True, "eager"), ("fp16 + CUDA graph", True, "graph")]
    if args.compile:
        variants.append(("compile" + (" fp16" if cuda else ""), cuda, "compile"))
    best = ref
    for name, fp16, speed in variants:
        gen = make_generator(weights, folder, args.device, fp16=fp16, speed=speed, size=size)
        diff = (gen.render(params(3)) - ref.render(params(3))).abs().max().item()
        note = f"max diff vs reference {diff:.1e} (0..1 scale)"
        rows.append((name, lambda i, g=gen: g.render(params(i)), 1, note))
        if speed == "graph":
            best = gen
    if args.batch > 1:
        n = args.batch

        def run_batch(i: int, g: StyleGANGenerator = best) -> object:
            return g.render_batch([params(i * n + j) for j in range(n)], max_batch=n)

        rows.append((f"batch {n} (per frame)", run_batch, n, ""))
    if args.upstream is not None and kwargs is not None:
        synthesis = upstream_synthesis(args.upstream, family, kwargs, ref.network).to(device)
        noise = [f.to(device) for f in ref.network.const_noise()]

        def run_upstream(i: int) -> torch.Tensor:
            w = ref.latent(params(i))[None].to(device)
            with torch.no_grad():
                if family == "sg2":
                    return synthesis(w, noise_mode="const", force_fp32=not cuda)
                return synthesis(w, force_fp32=not cuda)

        with torch.no_grad():
            ws = ref.latent(params(3))[None].to(device)
            ours = ref.network.synthesize(ws, noise)
        diff = (run_upstream(3) - ours).abs().max().item()
        rows.append(("NVlabs synthesis", run_upstream, 1, f"max diff vs ours {diff:.1e} (raw)"))
    ms = time_interleaved([run for _, run, _, _ in rows], device, args.frames, args.warmup)
    return [(label, name, t / frames, note) for (name, _, frames, note), t in zip(rows, ms)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--channel-max", type=int, default=512, help="upstream's cmax")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    parser.add_argument("--upstream", type=Path, default=None, help="an NVlabs stylegan3 checkout")
    parser.add_argument("--no-fixtures", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if args.sizes is None:
        args.sizes = [256, 512, 1024] if cuda else [64]
    print(
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if cuda else "")
        + f", torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    rows: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.no_fixtures:
            fixtures = PROJECT_ROOT.parent / "shared" / "fixtures" / "stylegan"
            for name, family in (("sg2-tiny", "sg2"), ("sg3t-tiny", "sg3t")):
                path = fixtures / f"{name}.pkl"
                if path.exists():
                    kwargs = _fixture_kwargs(path)
                    rows += bench_model(f"{name} (32px)", path, family, kwargs, args, folder)
                else:
                    print(f"(fixture {path} missing: skipped)")
        for family in args.families:
            for size in args.sizes:
                net, kwargs = random_network(family, size, args.channel_max)
                weights = folder / f"{family}-{size}.safetensors"
                export_safetensors(net, weights)
                del net
                rows += bench_model(
                    f"{family} {size}px random", weights, family, kwargs, args, folder
                )
                weights.unlink()
    print(f"\n{'model':<22} {'variant':<26} {'ms/frame':>10} {'x ref':>7}  note")
    reference = {}
    for model, variant, ms, note in rows:
        if variant.startswith("reference"):
            reference[model] = ms
        ratio = reference[model] / ms
        print(f"{model:<22} {variant:<26} {ms:>10.2f} {ratio:>7.2f}  {note}")
    return 0


def _fixture_kwargs(path: Path) -> dict:
    """The fixture Generator's constructor arguments (for the NVlabs row)."""
    from runtime.generators.checkpoints import read_nvlabs_pickle

    return dict(read_nvlabs_pickle(path)["G_ema"].init_kwargs)


if __name__ == "__main__":
    sys.exit(main())
