"""CLIP's speed: steering steps per second per generator family, and the clip: signal's
latency, side by side in one run.

    python benchmarks/bench_clip.py                        # CPU: cppn, StyleGAN2, BigGAN
    python benchmarks/bench_clip.py --device cuda          # the same on a GPU (fp16)
    python benchmarks/bench_clip.py --families cppn --clip ViT-B-16

Random-weight networks of the real architectures: CLIP (open_clip's ViT-B-32 by
default) at its 224 px input; the weightless cppn at 256 px; a StyleGAN2 of NVlabs'
256 px configuration; BigGAN-deep at 128 px (the released width). A steering step is
what the live worker and an offline render do per step: render the latent
differentiably, cut `--cutouts` views, embed them, backpropagate to the latent, one
Adam step. The signal is what the watcher does per measurement: embed one 224 px
picture, compare it with every prompt, write the clip: signals.

Each row prints ms per step (or per measurement) and its rate; the ratio column is
the step's cost over the generator's own forward at the same size, measured in the
same run (how much steering costs beyond rendering).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_stylegan import random_network
from runtime.clip.model import ClipModel
from runtime.clip.prompts import PromptBook
from runtime.clip.steer import Steering
from runtime.clip.watch import Watcher
from runtime.generators import build_generator
from runtime.generators.base import Params
from runtime.generators.biggan import random_state_dict, standard_config
from runtime.generators.stylegan_load import export_safetensors
from runtime.show import load_show
from runtime.signals import SignalBus

PROMPTS = {"forest": "a misty forest at dawn", "city": "a red neon city at night"}


def median_ms(fn: Callable[[int], object], device: torch.device, calls: int) -> float:
    """Median ms of `calls` calls after one warm-up call."""
    fn(0)
    times = []
    for i in range(calls):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn(i + 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def write_show(folder: Path, args: argparse.Namespace, key: str, generator: str) -> Path:
    path = folder / f"{key}.toml"
    path.write_text(
        f"""{generator}
device = "{args.device}"

[clip]
model = "{args.clip}"
weights = "{folder / "clip.safetensors"}"
device = "{args.device}"
cutouts = {args.cutouts}

[clip.prompts]
{chr(10).join(f'{k} = "{v}"' for k, v in PROMPTS.items())}
"""
    )
    return path


def generators(folder: Path, families: list[str]) -> dict[str, str]:
    """[generator] tables of each family, with random weights written into `folder`."""
    tables = {}
    if "cppn" in families:
        tables["cppn 256 px"] = '[generator]\nkind = "cppn"\nsize = 256'
    if "stylegan" in families:
        net, _ = random_network("sg2", 256, 512)
        export_safetensors(net, folder / "sg2.safetensors")
        tables["StyleGAN2 256 px"] = (
            f'[generator]\nkind = "stylegan"\nweights = "{folder / "sg2.safetensors"}"\n'
            "size = 256\ndirections = 0"
        )
    if "biggan" in families:
        config = standard_config(128)
        (folder / "biggan").mkdir()
        (folder / "biggan" / "config.json").write_text(json.dumps(config.to_json()))
        torch.save(random_state_dict(config), folder / "biggan" / "pytorch_model.bin")
        tables["BigGAN-deep 128 px"] = (
            f'[generator]\nkind = "biggan"\nweights = "{folder / "biggan"}"\n'
            'classes = ["goldfinch"]'
        )
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--clip", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument(
        "--families", nargs="+", default=["cppn", "stylegan", "biggan"], help="generators"
    )
    parser.add_argument("--cutouts", type=int, default=8, help="views per steering step")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per row")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    import open_clip

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    precision = "fp16 autocast" if device.type == "cuda" else "fp32"
    print(
        f"CLIP {args.clip} on {name} ({precision}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.cutouts} views per step; "
        f"median of {args.calls} calls"
    )
    header = f"{'what':44} {'ms':>9} {'per s':>8} {'x forward':>10}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        from safetensors.torch import save_file

        model = open_clip.create_model(args.clip, pretrained=None)
        save_file(model.state_dict(), str(folder / "clip.safetensors"))
        del model
        clip = None
        for n, (label, table) in enumerate(generators(folder, args.families).items()):
            show = load_show(write_show(folder, args, f"show{n}", table))
            assert show.clip is not None
            if clip is None:
                clip = ClipModel(show.clip, device)
                book = PromptBook(show.clip.prompts, address="/prompt")
                book.refresh(clip)
                watcher = Watcher(clip, book, SignalBus(), watch_range=(0.15, 0.35))
                side = clip.image_px
                pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), np.uint8)
                ms = median_ms(lambda i, w=watcher, p=pixels: w.measure(p), device, args.calls)
                print(
                    f"{f'clip: signal, {side} px, {len(PROMPTS)} prompts':44} {ms:9.1f} "
                    f"{1000 / ms:8.2f} {'':>10}"
                )
            gen = build_generator(show.generator)
            steering = Steering(clip, book, gen, show.clip, fps=30, offline=True, seed=0)

            def frame(i: int) -> Params:
                return Params(i, i / 30, {"latent.phase": 0.05 * i})

            with torch.no_grad():
                forward_ms = median_ms(lambda i, g=gen: g.render(frame(i)), device, args.calls)
            step_ms = median_ms(lambda i, s=steering: s.step(frame(i), i), device, args.calls)
            print(f"{label + ' forward':44} {forward_ms:9.1f} {1000 / forward_ms:8.2f} {1.0:10.2f}")
            print(
                f"{label + ' steering step':44} {step_ms:9.1f} {1000 / step_ms:8.2f} "
                f"{step_ms / forward_ms:10.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
