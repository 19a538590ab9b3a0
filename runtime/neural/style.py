"""Arbitrary style transfer as a live stage: AdaIN (Huang & Belongie, 2017).

A VGG-19 encoder (to relu4_1) turns the frame into features; adaptive instance
normalisation gives each feature channel the mean and standard deviation that channel
has in the style image; a trained decoder turns the result back into an image. One
forward pass each way, no optimisation, so it runs every frame.

    [[neural]]
    kind = "style"
    styles = ["styles/starry_night.jpg", "styles/graffiti.jpg"]   # 1..8 images
    style_size = 512          # px of a style image's shorter side for its features

Each style image is encoded once, at load, and only its per-channel feature mean and
std are kept, so switching and blending styles costs nothing. Blending blends those
statistics: AdaIN is linear in them, so this equals the paper's interpolation of
AdaIN outputs.

Targets (prefix = the stage's name, default "style"):
    style.strength     0..1   AdaIN's alpha: 0 the frame untouched, 1 full style
    style.N.weight     0..1   adds style N to the blend
    style.select      -1..S-1 which style, gliding between neighbours at fractions;
                              -1: none (the weights alone)

Weights: a folder holding `vgg_normalised.pth` and `decoder.pth`, the state dicts
published with naoto0804/pytorch-AdaIN (catalogue model "adain"). The networks here
keep that module layout, so those files load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runtime.errors import GeneratorError
from runtime.generators.base import Control
from runtime.neural.base import StageRun
from runtime.neural.weights import load_state_dict, weights_path
from runtime.show import NeuralConfig

DEFAULT_MODEL = "adain"
ENCODER_FILE = "vgg_normalised.pth"
DECODER_FILE = "decoder.pth"
MAX_STYLES = 8
STYLE_SIZE_DEFAULT_PX = 512
STYLE_SIZE_RANGE_PX = (64, 2048)
#: Added to the variance before its square root, as in the paper's code.
EPS = 1e-5
#: relu4_1 is module 30 of the normalised VGG-19; the published file goes to relu5_4.
ENCODER_MODULES = 31
#: Three ceil-mode poolings: the decoder's output is a multiple of 8 px.
STRIDE_PX = 8


def make_encoder() -> nn.Sequential:
    """AdaIN's normalised VGG-19 up to relu4_1, with pytorch-AdaIN's module indices.

    Its input is RGB in 0..1: the first 1x1 convolution does Caffe's preprocessing
    (channel swap, mean subtraction, 0..255 scaling).

    Returns:
        An untrained nn.Sequential of 31 modules; (N, 3, H, W) -> (N, 512, H/8, W/8)
        (rounded up).
    Thread: any.
    """
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    channels = 3
    for spec in (64, 64, "pool", 128, 128, "pool", 256, 256, 256, 256, "pool", 512):
        if isinstance(spec, str):
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, spec, 3), nn.ReLU()]
        channels = spec
    return nn.Sequential(*layers)


def make_decoder() -> nn.Sequential:
    """AdaIN's decoder, the encoder's mirror, with pytorch-AdaIN's module indices.

    Returns:
        An untrained nn.Sequential of 29 modules; (N, 512, h, w) -> (N, 3, 8h, 8w),
        an image in about 0..1.
    Thread: any.
    """
    layers: list[nn.Module] = []
    channels = 512
    for spec in (256, "up", 256, 256, 256, 128, "up", 128, 64, "up", 64, 3):
        if isinstance(spec, str):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, spec, 3)]
        if spec != 3:
            layers.append(nn.ReLU())
        channels = spec
    return nn.Sequential(*layers)


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of feature maps, as AdaIN measures them.

    Args:
        features: (N, C, h, w).
    Returns:
        (mean, std), each (N, C, 1, 1); std = sqrt(biased variance + EPS).
    Thread: any.
    """
    var, mean = torch.var_mean(features, dim=(2, 3), correction=0, keepdim=True)  # (N, C, 1, 1)
    return mean, (var + EPS).sqrt()


def adain(
    content_features: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    *,
    alpha: float = 1.0,
) -> torch.Tensor:
    """Adaptive instance normalisation, mixed with the content by `alpha`.

    t = std * (f - mean(f)) / std(f) + mean, then alpha * t + (1 - alpha) * f.

    Args:
        content_features: f, (N, C, h, w).
        mean: the target per-channel mean, (N or 1, C, 1, 1).
        std: the target per-channel std, (N or 1, C, 1, 1).
        alpha: 0 gives f back, 1 the full AdaIN features.
    Returns:
        (N, C, h, w) features for the decoder.
    Thread: any.
    """
    f_mean, f_std = feature_stats(content_features)  # (N, C, 1, 1)
    t = std * (content_features - f_mean) / f_std + mean  # (N, C, h, w)
    if alpha >= 1.0:
        return t
    return alpha * t + (1.0 - alpha) * content_features


def blend_weights(weights: Sequence[float], select: float) -> list[float] | None:
    """The styles' share of the blend.

    w_i = weights[i] + max(0, 1 - |select - i|) when select >= 0, else weights[i];
    then normalised to sum 1.

    Args:
        weights: each style's weight control, 0..1.
        select: the select control: a fractional index glides between two styles;
            below 0 the weights alone count.
    Returns:
        One share per style, summing to 1; None when every share is 0.
    Thread: any.
    """
    shares = [max(0.0, w) for w in weights]
    if select >= 0.0:
        shares = [w + max(0.0, 1.0 - abs(select - i)) for i, w in enumerate(shares)]
    total = sum(shares)
    if total <= 0.0:
        return None
    return [w / total for w in shares]


class StyleStage:
    """AdaIN style transfer on the generator's frame.

    Attributes:
        kind: "style".
        name: the target prefix.
        controls: `NAME.strength`, `NAME.N.weight` (one per style), `NAME.select`.
        style_paths: the style images, in order.
        style_size_px: a style image's shorter side when its features are computed.
        encoder, decoder: the networks (None until `load`).
        style_means, style_stds: (S, 512) float32 relu4_1 statistics of each style
            (None until `load`).
    """

    kind = "style"

    def __init__(
        self, *, config: NeuralConfig, style_paths: Sequence[Path], style_size_px: int
    ) -> None:
        name = config.name
        self.name = name
        self.style_paths = tuple(style_paths)
        self.style_size_px = style_size_px
        self._config = config
        count = len(self.style_paths)
        self.controls: tuple[Control, ...] = (
            Control(
                f"{name}.strength",
                1.0,
                0.0,
                1.0,
                "AdaIN's alpha: 0 the frame as it is, 1 full style",
            ),
            *(
                Control(
                    f"{name}.{i}.weight",
                    0.0,
                    0.0,
                    1.0,
                    f"adds style {i} ({path.name}) to the blend",
                )
                for i, path in enumerate(self.style_paths)
            ),
            Control(
                f"{name}.select",
                0.0,
                -1.0,
                float(count - 1),
                "which style, gliding between neighbours at fractions; -1: none "
                "(the weights alone)",
            ),
        )
        self.encoder: nn.Sequential | None = None
        self.decoder: nn.Sequential | None = None
        self.style_means: torch.Tensor | None = None
        self.style_stds: torch.Tensor | None = None

    def load(self, device: torch.device) -> None:
        """Read both networks, and encode each style image once.

        Args:
            device: where the stage runs.
        Raises:
            GeneratorError: weights missing or not AdaIN's (naming the file and the
                `run_show.py models pull adain` that brings them), or a style image
                that cannot be read (naming it).
        Thread: any, before the first `process`.
        """
        folder = weights_path(self._config, DEFAULT_MODEL)
        if not folder.is_dir():
            raise GeneratorError(
                f"{self.name}: weights must be a folder holding {ENCODER_FILE} and "
                f"{DECODER_FILE}, got {folder} (`run_show.py models pull {DEFAULT_MODEL}` "
                "brings both)"
            )
        encoder = make_encoder()
        state = _read_weights(folder / ENCODER_FILE)
        # The published encoder goes on to relu5_4; AdaIN stops at relu4_1.
        state = {k: v for k, v in state.items() if not _deeper(k)}
        _load_strict(encoder, state, folder / ENCODER_FILE)
        decoder = make_decoder()
        _load_strict(decoder, _read_weights(folder / DECODER_FILE), folder / DECODER_FILE)

        cuda = device.type == "cuda"
        memory_format = torch.channels_last if cuda else torch.contiguous_format
        for net in (encoder, decoder):
            net.eval().requires_grad_(False)
            net.to(device=device, memory_format=memory_format)

        means, stds = [], []
        for path in self.style_paths:
            image = _read_style(path, self.style_size_px, name=self.name).to(device)  # (1, 3, h, w)
            with torch.no_grad():
                mean, std = feature_stats(_forward(encoder, image))  # (1, 512, 1, 1)
            means.append(mean.flatten())
            stds.append(std.flatten())
        # Only a complete load replaces what process uses.
        self.encoder, self.decoder = encoder, decoder
        self.style_means = torch.stack(means)  # (S, 512)
        self.style_stds = torch.stack(stds)  # (S, 512)

    def process(
        self, image: torch.Tensor, values: Mapping[str, float], run: StageRun
    ) -> tuple[torch.Tensor, int]:
        """Restyle one frame.

        Args:
            image: (1, 3, H, W) float32 in 0..1 on the stage's device.
            values: every target's value (missing ones: defaults).
            run: unused: the work is one fixed forward pass per frame.
        Returns:
            ((1, 3, H, W) float32 in 0..1, 0). At strength 0, or with no style in
            the blend, the input tensor itself.
        Raises:
            GeneratorError: `load` has not succeeded.
        Thread: the generator worker.
        """
        encoder, decoder = self.encoder, self.decoder
        style_means, style_stds = self.style_means, self.style_stds
        if encoder is None or decoder is None or style_means is None or style_stds is None:
            raise GeneratorError(f"{self.name}: style stage used before its weights loaded")
        alpha = _clamped(values, self.controls[0])
        if alpha <= 0.0:
            return image, 0
        count = len(self.style_paths)
        shares = blend_weights(
            [_clamped(values, c) for c in self.controls[1 : 1 + count]],
            _clamped(values, self.controls[-1]),
        )
        if shares is None:
            return image, 0

        height, width = image.shape[-2:]
        # Pad to whole pooling cells so the decoder's output lines up with the frame.
        pad_h, pad_w = -height % STRIDE_PX, -width % STRIDE_PX
        # Reflection needs the frame larger than the pad; tiny frames replicate.
        mode = "reflect" if min(height, width) > STRIDE_PX else "replicate"
        # no_grad, not inference_mode: a later stage (a dream) may need autograd on
        # this frame, and inference tensors refuse it.
        with torch.no_grad():
            padded = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)  # (1, 3, H8, W8)
            features = _forward(encoder, padded)  # (1, 512, H8/8, W8/8)
            share = torch.tensor(shares, dtype=torch.float32, device=image.device)  # (S,)
            mean = (share @ style_means).view(1, -1, 1, 1)  # (1, 512, 1, 1)
            std = (share @ style_stds).view(1, -1, 1, 1)  # (1, 512, 1, 1)
            target = adain(features, mean, std, alpha=alpha)  # (1, 512, H8/8, W8/8)
            out = _forward(decoder, target)  # (1, 3, H8, W8)
            out = out[:, :, :height, :width].clamp(0.0, 1.0)  # (1, 3, H, W)
        return out.contiguous(), 0


def build(config: NeuralConfig) -> StyleStage:
    """Build a style stage from its `[[neural]]` table, without touching weights.

    Args:
        config: the stage's table; options `styles` (1..8 image paths, relative to
            the show file's folder) and `style_size` (px, 64..2048, default 512).
    Returns:
        The stage, to `load` before use.
    Raises:
        ConfigError: an unknown or bad option, or a style image that does not exist,
            naming the key.
    Thread: any.
    """
    t = config.options
    styles = t.take("styles", list, check=_style_list)
    lo, hi = STYLE_SIZE_RANGE_PX
    style_size_px = t.take(
        "style_size",
        int,
        STYLE_SIZE_DEFAULT_PX,
        check=lambda v: None if lo <= v <= hi else f"expected {lo}..{hi} px, got {v}",
    )
    t.finish()
    base = t.file.parent
    paths = [base / s for s in styles]
    for path in paths:
        if not path.is_file():
            raise t.error("styles", f"style image not found: {path}")
    return StyleStage(config=config, style_paths=paths, style_size_px=style_size_px)


def _style_list(value: list[Any]) -> str | None:
    if not 1 <= len(value) <= MAX_STYLES:
        return f"expected 1..{MAX_STYLES} style image paths, got {len(value)}"
    if not all(isinstance(v, str) and v for v in value):
        return "expected an array of image paths (strings)"
    return None


def _clamped(values: Mapping[str, float], control: Control) -> float:
    return min(control.hi, max(control.lo, float(values.get(control.name, control.default))))


def _forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a network, in float16 and channels-last on CUDA; the result is float32 so
    AdaIN's statistics (and the frame handed on) stay in float32."""
    if x.device.type != "cuda":
        return net(x)
    with torch.autocast("cuda", dtype=torch.float16):
        return net(x.contiguous(memory_format=torch.channels_last)).float()


def _deeper(key: str) -> bool:
    index = key.split(".", 1)[0]
    return index.isdigit() and int(index) >= ENCODER_MODULES


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise GeneratorError(
            f"weights file not found: {path} (`run_show.py models pull {DEFAULT_MODEL}` brings it)"
        )
    return load_state_dict(path)


def _load_strict(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load every parameter, or say which do not fit (torch's own message is long)."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    found = (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
    problems = [
        f"{label} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
        for label, keys in found
        if keys
    ]
    if problems:
        raise GeneratorError(
            f"{path}: not AdaIN's {path.name}: {'; '.join(problems)} "
            f"(`run_show.py models pull {DEFAULT_MODEL}` brings the right file)"
        )
    net.load_state_dict(state, strict=True)


def _read_style(path: Path, size_px: int, *, name: str) -> torch.Tensor:
    """A style image as (1, 3, h, w) float32 in 0..1, its shorter side `size_px`."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            # Phone photos store their rotation in EXIF: show the picture upright.
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise GeneratorError(f"{name}: cannot read style image {path}: {exc}") from None
    scale = size_px / min(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)  # (h, w, 3)
    return pixels.permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, 3, h, w)
