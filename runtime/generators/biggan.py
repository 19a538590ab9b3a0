"""BigGAN-deep as a generator: ImageNet classes, truncation and noise walks.

Reads the pytorch-pretrained-biggan layout: a folder holding `config.json` and
`pytorch_model.bin` (a state dict, loaded with `torch.load(weights_only=True)`, so no
code from the file ever runs). The 128, 256 and 512 px releases and random-weight
networks of any width load the same way. The network is written here from the
architecture (Brock et al. 2019, "deep" variant); at load, spectral norms are folded
into the weights and every class-conditional batch norm of the network is gathered
into one matrix, so a frame costs one small GEMM for all the conditioning.

Options (in `[generator]`; `weights` is the folder):
    classes     ImageNet classes by name ("goldfinch") or index (11); each one's
                weight in the blend is a target `class.N.weight` (default: one class
                picked by the seed)
    seeds       noise keyframes as seeds (default: `keyframes` seeds from the seed);
                seed S gives the vector pytorch-pretrained-biggan's
                `truncated_noise_sample(seed=S)` gives, before truncation
    keyframes   number of seeds when `seeds` is not given (default 6)
    directions  noise directions as targets `latent.direction.N` (default 4)
    fp16        half precision on CUDA (default true; falls back to float32 by itself
                when a frame comes out non-finite)
    batchnorm_stats  "upstream" (default: the truncation statistics exactly as
                pytorch-pretrained-biggan blends them, for identical images) or
                "linear" (a blend that is continuous in truncation, for live sweeps)

Targets: `gen.truncation`; the walk `latent.speed` (integrates into `latent.phase`),
`latent.position`, `latent.hop` (steps `latent.phase`); `latent.direction.N`;
`class.N.weight`. Frames come at the network's own size (128, 256 or 512 px square):
the show's `size` does not resize them, the compositor scales. `render_batch` renders
many frames in one call for offline renders.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runtime.config import suggest
from runtime.errors import GeneratorError
from runtime.generators.base import Control, Params, defaults
from runtime.generators.latent import loop_coordinate, slerp, walk_controls
from runtime.show import GeneratorConfig

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
#: BigGAN noise is a normal truncated to [-Z_BOUND, Z_BOUND], then scaled by truncation.
Z_BOUND = 2.0
#: The smallest truncation: 0 would give every seed the same image.
MIN_TRUNCATION = 0.02
DIRECTION_SCALE = 0.25  # a direction of coefficient 1 moves z by a quarter of sqrt(z_dim)
STATS_MODES = ("upstream", "linear")

# Buffers that stay float32 in half precision: small, and the variances need range.
_CONDITIONING = frozenset(
    {"embed_w", "gen_z_w", "gen_z_b", "mod_w", "mod_base", "means", "variances"}
)

# torch.load reports a damaged file through many unrelated exception types.
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    OSError,
    zipfile.BadZipFile,
)

# BigGAN-deep's stages per released resolution: (in, out) channel multipliers of
# channel_width; each stage is a block at that size and an upsampling block.
_STAGES = {
    128: ((16, 16), (16, 8), (8, 4), (4, 2), (2, 1)),
    256: ((16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)),
    512: ((16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1), (1, 1)),
}


@dataclass(frozen=True)
class BigGanConfig:
    """A network's shape, as in a pytorch-pretrained-biggan `config.json`.

    Attributes:
        output_dim: image side in px.
        z_dim: noise dimensions (the class embedding has as many).
        channel_width: the base channel count every block multiplies.
        num_classes: classes of the one-hot class vector.
        layers: per block (upsamples, in multiplier, out multiplier).
        attention_layer_position: the block index the self-attention comes before.
        eps: batch norm epsilon.
        n_stats: batch norm statistics stored per truncation, on a grid over 0..1.
    """

    output_dim: int = 128
    z_dim: int = 128
    channel_width: int = 128
    num_classes: int = 1000
    layers: tuple[tuple[bool, int, int], ...] = ()
    attention_layer_position: int = 8
    eps: float = 1e-4
    n_stats: int = 51

    def problem(self) -> str | None:
        """What makes this shape impossible to build, or None. Thread: any."""
        if not self.layers:
            return "'layers' is empty"
        ups = sum(1 for up, _, _ in self.layers if up)
        if 4 * 2**ups != self.output_dim:
            return (
                f"{ups} upsampling layers make {4 * 2**ups} px, not 'output_dim' {self.output_dim}"
            )
        # The first block takes the 16 * width channels of the noise projection, the
        # last hands width channels to the output convolution, and each block keeps
        # its input's channels or drops half of them.
        channels = 16
        for i, (_, c_in, c_out) in enumerate(self.layers):
            if c_in != channels:
                return f"'layers' entry {i} takes {c_in} x width channels, not {channels}"
            if c_out not in (c_in, c_in / 2):
                return f"'layers' entry {i} goes from {c_in} to {c_out}: blocks keep or halve"
            channels = c_out
        if channels != 1:
            return f"the last layer gives {channels} x width channels, not 1 x width"
        if not 0 <= self.attention_layer_position <= len(self.layers):
            return "'attention_layer_position' is outside 'layers'"
        if self.n_stats < 2:
            return "'n_stats' should be 2 or more"
        return None

    def to_json(self) -> dict[str, Any]:
        """The config as pytorch-pretrained-biggan writes it. Thread: any."""
        return {
            "output_dim": self.output_dim,
            "z_dim": self.z_dim,
            "class_embed_dim": self.z_dim,
            "channel_width": self.channel_width,
            "num_classes": self.num_classes,
            "layers": [list(layer) for layer in self.layers],
            "attention_layer_position": self.attention_layer_position,
            "eps": self.eps,
            "n_stats": self.n_stats,
        }


def standard_config(resolution: int, *, channel_width: int = 128) -> BigGanConfig:
    """The shape of the released BigGAN-deep network at `resolution`.

    Args:
        resolution: 128, 256 or 512.
        channel_width: 128 for the releases; smaller makes fast random networks.
    Returns:
        The config.
    Raises:
        ValueError: no release at that resolution.
    Thread: any.
    """
    if resolution not in _STAGES:
        raise ValueError(f"BigGAN-deep comes at 128, 256 or 512 px, not {resolution}")
    layers = tuple(block for a, b in _STAGES[resolution] for block in ((False, a, a), (True, a, b)))
    return BigGanConfig(output_dim=resolution, channel_width=channel_width, layers=layers)


def read_config(path: Path) -> BigGanConfig:
    """Read and check a `config.json`.

    Args:
        path: the file.
    Returns:
        The config.
    Raises:
        GeneratorError: missing, not JSON, or a key missing or of the wrong type,
            naming the file and the key.
    Thread: any.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GeneratorError(
            f"{path}: file not found; a BigGAN weights folder holds {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (the pytorch-pretrained-biggan layout)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeneratorError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise GeneratorError(f"{path}: expected a JSON object of BigGAN settings")

    def get(key: str, kind: type, default: Any = None) -> Any:
        value = data.get(key, default)
        if value is None:
            raise GeneratorError(f"{path}: missing '{key}'")
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise GeneratorError(f"{path}: '{key}' should be {kind.__name__}, got {value!r}")
        return value

    layers_raw = get("layers", list)
    layers = []
    for i, layer in enumerate(layers_raw):
        ok = (
            isinstance(layer, list)
            and len(layer) == 3
            and isinstance(layer[0], bool)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in layer[1:])
        )
        if not ok:
            raise GeneratorError(
                f"{path}: 'layers' entry {i} should be [upsample, in, out], got {layer!r}"
            )
        layers.append((layer[0], layer[1], layer[2]))
    config = BigGanConfig(
        output_dim=get("output_dim", int),
        z_dim=get("z_dim", int),
        channel_width=get("channel_width", int),
        num_classes=get("num_classes", int),
        layers=tuple(layers),
        attention_layer_position=get("attention_layer_position", int),
        eps=get("eps", float, 1e-4),
        n_stats=get("n_stats", int, 51),
    )
    embed = data.get("class_embed_dim", config.z_dim)
    if embed != config.z_dim:
        # The noise and the class embedding are concatenated and every conditional
        # layer expects 2 * z_dim inputs: the layout has no room for other sizes.
        raise GeneratorError(f"{path}: 'class_embed_dim' {embed} differs from 'z_dim'")
    problem = config.problem()
    if problem:
        raise GeneratorError(f"{path}: {problem}")
    return config


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict without running any code from the file.

    Args:
        path: a `pytorch_model.bin`.
    Returns:
        Parameter name -> tensor, on the CPU.
    Raises:
        GeneratorError: missing, damaged, or not a state dict, naming the file.
    Thread: any.
    """
    if not path.is_file():
        raise GeneratorError(
            f"{path}: file not found; a BigGAN weights folder holds {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (the pytorch-pretrained-biggan layout)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GeneratorError(
            f"{path}: not a readable PyTorch state dict ({first_line}); expected the "
            f"{WEIGHTS_NAME} of a pytorch-pretrained-biggan folder"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise GeneratorError(
            f"{path}: expected a state dict (parameter names to tensors), "
            f"got {type(state).__name__}"
        )
    return dict(state)


class _Weights:
    """Reads named tensors out of a state dict, with errors naming what is missing."""

    def __init__(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        self.state = state
        self.source = source

    def get(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        tensor = self.state.get(name)
        if tensor is None:
            raise GeneratorError(f"{self.source}: missing tensor '{name}'")
        if tuple(tensor.shape) != shape:
            raise GeneratorError(
                f"{self.source}: tensor '{name}' has shape {tuple(tensor.shape)}, "
                f"expected {shape} for this config.json"
            )
        return tensor.float()

    def spectral(self, prefix: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A spectrally normalised weight, folded: W / sigma with sigma = u . (W v).

        Upstream evaluates the stored singular vectors without a power iteration in
        eval mode, so folding them once gives the same weight.
        """
        if f"{prefix}.weight" in self.state:  # already folded (spectral norm removed)
            return self.get(f"{prefix}.weight", shape)
        w = self.get(f"{prefix}.weight_orig", shape)
        u = self.get(f"{prefix}.weight_u", (shape[0],))
        v = self.get(f"{prefix}.weight_v", (math.prod(shape[1:]),))
        sigma = torch.dot(u, w.reshape(shape[0], -1) @ v)
        if not torch.isfinite(sigma) or sigma.abs() < 1e-12:
            raise GeneratorError(f"{self.source}: '{prefix}' has a degenerate spectral norm")
        return w / sigma


class BigGanNet(nn.Module):
    """The BigGAN-deep generator network with spectral norms and batch norms folded.

    Every batch norm (the conditional ones of the blocks and the final one) becomes a
    per-sample scale and shift `x * a + b`; all of their conditioning is one matrix
    (`mod_w`) and all of their truncation statistics are one table (`means`,
    `variances`), so the whole conditioning is two small matrix products per frame.

    Args:
        config: the network's shape.
        state: a state dict in the pytorch-pretrained-biggan layout.
        source: names the weights in error messages.
    Raises:
        GeneratorError: an impossible shape, or a tensor missing or of the wrong shape.
    Thread: build anywhere; call on one thread at a time.
    """

    def __init__(
        self, config: BigGanConfig, state: Mapping[str, torch.Tensor], source: str = "weights"
    ) -> None:
        super().__init__()
        problem = config.problem()
        if problem:
            raise GeneratorError(f"{source}: {problem}")
        self.config = config
        self.channels_last = False
        self._float32: dict[str, torch.Tensor] | None = None
        ch, z_dim, n_stats = config.channel_width, config.z_dim, config.n_stats
        cond_dim = 2 * z_dim
        w = _Weights(state, source)
        self.register_buffer("embed_w", w.get("embeddings.weight", (z_dim, config.num_classes)))
        self.register_buffer("gen_z_w", w.spectral("generator.gen_z", (4 * 4 * 16 * ch, cond_dim)))
        self.register_buffer("gen_z_b", w.get("generator.gen_z.bias", (4 * 4 * 16 * ch,)))

        # Gather every batch norm: its features, scale/shift projections, statistics.
        gains, shifts, base_gain, base_shift, means, variances = [], [], [], [], [], []

        def add_norm(prefix: str, features: int, conditional: bool) -> slice:
            start = sum(m.shape[1] for m in means)
            means.append(w.get(f"{prefix}.running_means", (n_stats, features)))
            variances.append(w.get(f"{prefix}.running_vars", (n_stats, features)))
            if conditional:
                gains.append(w.spectral(f"{prefix}.scale", (features, cond_dim)))
                shifts.append(w.spectral(f"{prefix}.offset", (features, cond_dim)))
                base_gain.append(torch.ones(features))
                base_shift.append(torch.zeros(features))
            else:
                gains.append(torch.zeros(features, cond_dim))
                shifts.append(torch.zeros(features, cond_dim))
                base_gain.append(w.get(f"{prefix}.weight", (features,)))
                base_shift.append(w.get(f"{prefix}.bias", (features,)))
            return slice(start, start + features)

        self.blocks: list[dict[str, Any]] = []
        self.attention_at = config.attention_layer_position
        index = 0  # the module index in the state dict: the attention takes one slot
        for i, (up, mult_in, mult_out) in enumerate(config.layers):
            if i == self.attention_at:
                self._load_attention(w, f"generator.layers.{index}", ch * mult_in)
                index += 1
            c_in, c_out = ch * mult_in, ch * mult_out
            mid = c_in // 4
            p = f"generator.layers.{index}"
            block = {"up": up, "out": c_out, "norms": [], "convs": []}
            for j, (c_norm, conv_shape) in enumerate(
                (
                    (c_in, (mid, c_in, 1, 1)),
                    (mid, (mid, mid, 3, 3)),
                    (mid, (mid, mid, 3, 3)),
                    (mid, (c_out, mid, 1, 1)),
                )
            ):
                block["norms"].append(add_norm(f"{p}.bn_{j}", c_norm, conditional=True))
                weight = w.spectral(f"{p}.conv_{j}", conv_shape)
                bias = w.get(f"{p}.conv_{j}.bias", (conv_shape[0],))
                name = f"block{i}_conv{j}"
                self.register_buffer(f"{name}_w", weight)
                self.register_buffer(f"{name}_b", bias)
                block["convs"].append(name)
            self.blocks.append(block)
            index += 1
        if self.attention_at == len(config.layers):
            self._load_attention(w, f"generator.layers.{index}", ch * config.layers[-1][2])
        self.final_norm = add_norm("generator.bn", ch, conditional=False)
        # Only the first three output channels are kept: skip computing the rest.
        rgb_w = w.spectral("generator.conv_to_rgb", (ch, ch, 3, 3))
        self.register_buffer("rgb_w", rgb_w[:3].contiguous())
        self.register_buffer("rgb_b", w.get("generator.conv_to_rgb.bias", (ch,))[:3].clone())

        self.register_buffer("mod_w", torch.cat(gains + shifts, 0))  # (2T, cond)
        self.register_buffer("mod_base", torch.cat(base_gain + base_shift))  # (2T,)
        self.register_buffer("means", torch.cat(means, 1))  # (S, T)
        self.register_buffer("variances", torch.cat(variances, 1))  # (S, T)

    def _load_attention(self, w: _Weights, prefix: str, channels: int) -> None:
        c8, c2 = channels // 8, channels // 2
        theta = w.spectral(f"{prefix}.snconv1x1_theta", (c8, channels, 1, 1))
        phi = w.spectral(f"{prefix}.snconv1x1_phi", (c8, channels, 1, 1))
        g = w.spectral(f"{prefix}.snconv1x1_g", (c2, channels, 1, 1))
        out = w.spectral(f"{prefix}.snconv1x1_o_conv", (channels, c2, 1, 1))
        gamma = w.get(f"{prefix}.gamma", (1,))
        # One 1x1 convolution computes the query, key and value projections together;
        # the residual weight gamma is folded into the output projection.
        self.register_buffer("attn_qkv_w", torch.cat([theta, phi, g], 0))
        self.register_buffer("attn_out_w", out * gamma)
        self.attn_split = (c8, c8, c2)

    @property
    def resolution(self) -> int:
        """Output side in px. Thread: any."""
        return self.config.output_dim

    def set_precision(self, *, half: bool, channels_last: bool) -> None:
        """Choose how the image path runs; the conditioning always stays float32.

        Args:
            half: convolutions and activations in float16.
            channels_last: convolution weights in NHWC layout (CUDA's fast path; the
                activations follow the weights).
        Thread: the thread that owns the network.
        """
        self.channels_last = channels_last
        dtype = torch.float16 if half else torch.float32
        if half and self._float32 is None:
            # float16 loses range and digits for good: keep the float32 weights (on
            # the host) so a fall back to float32 gets them back exactly.
            self._float32 = {
                name: buffer.detach().cpu().clone()
                for name, buffer in self.named_buffers()
                if name not in _CONDITIONING
            }
        for name, buffer in list(self.named_buffers()):
            if name in _CONDITIONING:
                continue
            if not half and self._float32 is not None:
                buffer = self._float32[name].to(buffer.device)
            buffer = buffer.to(dtype)
            if buffer.dim() == 4:
                memory = torch.channels_last if channels_last else torch.contiguous_format
                buffer = buffer.contiguous(memory_format=memory)
            setattr(self, name, buffer)

    def stats_weights(self, truncations: Sequence[float], mode: str = "upstream") -> torch.Tensor:
        """How each sample blends the per-truncation batch norm statistics.

        Args:
            truncations: one truncation per sample, in (0, 1].
            mode: "upstream" reproduces pytorch-pretrained-biggan exactly: for
                t / step = k + f it weights entry k by f and entry k + 1 by 1 - f
                (entry k alone when f is 0), which jumps at each grid point;
                "linear" weights k by 1 - f and k + 1 by f, continuous in t.
        Returns:
            (N, n_stats) float32 on the CPU.
        Raises:
            ValueError: a truncation outside (0, 1].
        Thread: any.
        """
        n = self.config.n_stats
        step = 1.0 / (n - 1)
        weights = torch.zeros(len(truncations), n)
        for row, t in enumerate(truncations):
            if not 0.0 < t <= 1.0:
                raise ValueError(f"truncation {t} is outside (0, 1]")
            frac, whole = math.modf(t / step)
            k = int(whole)
            if mode == "linear":
                k, frac = min(k, n - 2), t / step - min(k, n - 2)
                weights[row, k] += 1.0 - frac
                weights[row, k + 1] += frac
            elif frac == 0.0:
                weights[row, k] = 1.0
            else:
                weights[row, k] = frac
                weights[row, k + 1] = 1.0 - frac
        return weights

    def forward(
        self,
        z: torch.Tensor,
        class_vectors: torch.Tensor,
        truncation: float | Sequence[float],
        *,
        stats: str = "upstream",
    ) -> torch.Tensor:
        """Render images.

        Args:
            z: (N, z_dim) noise, already truncated and scaled by truncation.
            class_vectors: (N, num_classes) class weights (one-hot or a blend).
            truncation: one value for all samples or one per sample, in (0, 1].
            stats: how truncation statistics blend (see `stats_weights`).
        Returns:
            (N, 3, H, W) float32 in [-1, 1].
        Raises:
            ValueError: a truncation outside (0, 1].
        Thread: the thread that owns the network.
        """
        n = z.shape[0]
        truncations = (
            [float(truncation)] * n
            if isinstance(truncation, float | int)
            else [float(t) for t in truncation]
        )
        device, dtype = self.rgb_w.device, self.rgb_w.dtype
        f32 = torch.float32
        blend = self.stats_weights(truncations, stats).to(device)  # (N, S)
        embed = class_vectors.to(device, f32) @ self.embed_w.T  # (N, Z)
        cond = torch.cat([z.to(device, f32), embed], 1)  # (N, 2Z)
        mods = torch.addmm(self.mod_base, cond, self.mod_w.T)  # (N, 2T)
        gain, shift = mods.chunk(2, 1)  # (N, T) each
        mean = blend @ self.means  # (N, T)
        var = blend @ self.variances  # (N, T)
        scale = gain / torch.sqrt(var + self.config.eps)  # (N, T)
        offset = shift - mean * scale  # (N, T)
        scale, offset = scale.to(dtype)[:, :, None, None], offset.to(dtype)[:, :, None, None]

        x = torch.addmm(self.gen_z_b, cond, self.gen_z_w.T)  # (N, 16*16*ch)
        # The linear layer's output is laid out height, width, channels (TensorFlow's
        # order): viewed so, then permuted, it is already a channels-last NCHW tensor.
        x = x.to(dtype).view(n, 4, 4, -1).permute(0, 3, 1, 2)  # (N, 16ch, 4, 4)
        if not self.channels_last:
            x = x.contiguous()
        for i, block in enumerate(self.blocks):
            if i == self.attention_at:
                x = self._attention(x)
            x = self._block(x, block, scale, offset)
        if self.attention_at == len(self.blocks):
            x = self._attention(x)
        s = self.final_norm
        x = torch.relu(torch.addcmul(offset[:, s], x, scale[:, s]))  # (N, ch, H, W)
        rgb = F.conv2d(x, self.rgb_w, self.rgb_b, padding=1)  # (N, 3, H, W)
        return torch.tanh(rgb.float())

    def _block(
        self, x: torch.Tensor, block: dict[str, Any], scale: torch.Tensor, offset: torch.Tensor
    ) -> torch.Tensor:
        h = x
        for j, (norm, name) in enumerate(zip(block["norms"], block["convs"])):
            h = torch.relu(torch.addcmul(offset[:, norm], h, scale[:, norm]))
            if j == 1 and block["up"]:
                h = F.interpolate(h, scale_factor=2, mode="nearest")  # (N, C, 2H, 2W)
            weight = getattr(self, f"{name}_w")
            h = F.conv2d(h, weight, getattr(self, f"{name}_b"), padding=weight.shape[-1] // 2)
        skip = x[:, : block["out"]]  # channel drop: keep the first group
        if block["up"]:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        c8, _, c2 = self.attn_split
        qkv = F.conv2d(x, self.attn_qkv_w)  # (N, c/8 + c/8 + c/2, H, W)
        theta, phi_g = qkv.split([c8, c8 + c2], 1)
        phi_g = F.max_pool2d(phi_g, 2)  # (N, c/8 + c/2, H/2, W/2)
        phi, g = phi_g.split([c8, c2], 1)
        q = theta.flatten(2).transpose(1, 2).unsqueeze(1)  # (N, 1, HW, c/8)
        k = phi.flatten(2).transpose(1, 2).unsqueeze(1)  # (N, 1, HW/4, c/8)
        v = g.flatten(2).transpose(1, 2).unsqueeze(1)  # (N, 1, HW/4, c/2)
        # BigGAN's attention has no 1/sqrt(d) temperature.
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (N, 1, HW, c/2)
        o = o.squeeze(1).transpose(1, 2).reshape(n, c2, height, width)  # (N, c/2, H, W)
        return x + F.conv2d(o, self.attn_out_w)


def load_folder(folder: Path) -> BigGanNet:
    """Load a pytorch-pretrained-biggan folder (config.json + pytorch_model.bin).

    Args:
        folder: the weights folder.
    Returns:
        The network on the CPU in float32.
    Raises:
        GeneratorError: the folder, a file or a tensor is missing or damaged, naming
            the file and what was expected.
    Thread: any.
    """
    if folder.is_file():
        raise GeneratorError(
            f"{folder}: BigGAN weights are a folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(the pytorch-pretrained-biggan layout), not a single file"
        )
    if not folder.is_dir():
        raise GeneratorError(
            f"{folder}: folder not found; BigGAN weights are a folder holding "
            f"{CONFIG_NAME} and {WEIGHTS_NAME} (the pytorch-pretrained-biggan layout)"
        )
    config = read_config(folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    state = load_state_dict(weights)
    return BigGanNet(config, state, source=str(weights))


def random_state_dict(config: BigGanConfig, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-weight network in the pytorch-pretrained-biggan layout.

    For tests and benchmarks: every tensor (biases, attention gain, batch norm
    statistics, final norm) is random, so no part of the network is idle.

    Args:
        config: the network's shape.
        seed: fixes every value.
    Returns:
        The state dict (spectral norm tensors included).
    Thread: any.
    """
    g = torch.Generator().manual_seed(seed)
    ch, z_dim, n_stats = config.channel_width, config.z_dim, config.n_stats
    cond_dim = 2 * z_dim
    state: dict[str, torch.Tensor] = {}

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def spectral(prefix: str, shape: tuple[int, ...], bias: bool = True) -> None:
        weight = randn(*shape)
        # Singular vectors as trained networks store them (near the top pair), so the
        # folded weights have unit spectral norm and activations stay in range.
        matrix = weight.reshape(shape[0], -1)
        v = F.normalize(randn(matrix.shape[1]), dim=0)
        for _ in range(15):
            u = F.normalize(matrix @ v, dim=0)
            v = F.normalize(matrix.T @ u, dim=0)
        state[f"{prefix}.weight_orig"] = weight
        state[f"{prefix}.weight_u"] = u
        state[f"{prefix}.weight_v"] = v
        if bias:
            state[f"{prefix}.bias"] = randn(shape[0], std=0.1)

    def norm(prefix: str, features: int, conditional: bool) -> None:
        state[f"{prefix}.running_means"] = randn(n_stats, features, std=0.1)
        state[f"{prefix}.running_vars"] = 0.5 + torch.rand(n_stats, features, generator=g)
        if conditional:
            spectral(f"{prefix}.scale", (features, cond_dim), bias=False)
            spectral(f"{prefix}.offset", (features, cond_dim), bias=False)
        else:
            state[f"{prefix}.weight"] = 1.0 + randn(features, std=0.1)
            state[f"{prefix}.bias"] = randn(features, std=0.1)

    state["embeddings.weight"] = randn(z_dim, config.num_classes, std=0.5)
    spectral("generator.gen_z", (4 * 4 * 16 * ch, cond_dim))
    index = 0
    for i, (_, mult_in, mult_out) in enumerate(config.layers):
        if i == config.attention_layer_position:
            _random_attention(spectral, state, f"generator.layers.{index}", ch * mult_in, g)
            index += 1
        c_in, c_out, mid = ch * mult_in, ch * mult_out, ch * mult_in // 4
        p = f"generator.layers.{index}"
        for j, (c_norm, shape) in enumerate(
            (
                (c_in, (mid, c_in, 1, 1)),
                (mid, (mid, mid, 3, 3)),
                (mid, (mid, mid, 3, 3)),
                (mid, (c_out, mid, 1, 1)),
            )
        ):
            norm(f"{p}.bn_{j}", c_norm, conditional=True)
            spectral(f"{p}.conv_{j}", shape)
        index += 1
    if config.attention_layer_position == len(config.layers):
        channels = ch * config.layers[-1][2]
        _random_attention(spectral, state, f"generator.layers.{index}", channels, g)
    norm("generator.bn", ch, conditional=False)
    spectral("generator.conv_to_rgb", (ch, ch, 3, 3))
    return state


def _random_attention(spectral, state, prefix: str, channels: int, g: torch.Generator) -> None:
    c8, c2 = channels // 8, channels // 2
    spectral(f"{prefix}.snconv1x1_theta", (c8, channels, 1, 1), bias=False)
    spectral(f"{prefix}.snconv1x1_phi", (c8, channels, 1, 1), bias=False)
    spectral(f"{prefix}.snconv1x1_g", (c2, channels, 1, 1), bias=False)
    spectral(f"{prefix}.snconv1x1_o_conv", (channels, c2, 1, 1), bias=False)
    state[f"{prefix}.gamma"] = 0.5 + torch.rand(1, generator=g)


# ImageNet classes ----------------------------------------------------------------


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in index order (torchvision's bundled list).

    Thread: any.
    """
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def class_index(entry: str | int, names: Sequence[str]) -> int:
    """The index of an ImageNet class given by name (any case) or by index.

    Args:
        entry: a class name such as "goldfinch" or an index 0..999.
        names: the class names in index order (see `imagenet_classes`).
    Returns:
        The index.
    Raises:
        ValueError: an unknown name (with the nearest name), a name that matches
            two classes but for case (with both), or an index out of range.
    Thread: any.
    """
    if isinstance(entry, int) and not isinstance(entry, bool):
        if 0 <= entry < len(names):
            return entry
        raise ValueError(f"class index {entry} is outside 0..{len(names) - 1}")
    if not isinstance(entry, str):
        raise ValueError(f"expected a class name or index, got {entry!r}")
    spaced = " ".join(entry.split())
    if spaced in names:  # exact case first: "Cardigan" (the corgi) is not "cardigan"
        return list(names).index(spaced)
    wanted = spaced.lower()
    lowered = [name.lower() for name in names]
    hits = [i for i, name in enumerate(lowered) if name == wanted]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        options = ", ".join(f"'{names[i]}' ({i})" for i in hits)
        raise ValueError(f"class name '{entry}' could be {options}: write it exactly or by index")
    raise ValueError(f"unknown ImageNet class '{entry}'{suggest(wanted, lowered)}")


def truncated_noise(seed: int, z_dim: int = 128) -> torch.Tensor:
    """The noise vector for a seed: a normal truncated to [-2, 2], not yet scaled.

    It equals pytorch-pretrained-biggan's `truncated_noise_sample(seed=seed)` divided
    by its truncation: uniform draws from numpy's RandomState(seed) mapped through the
    inverse normal CDF restricted to [-2, 2].

    Args:
        seed: the seed.
        z_dim: dimensions.
    Returns:
        (z_dim,) float32.
    Thread: any.
    """
    uniform = torch.from_numpy(np.random.RandomState(seed).uniform(size=z_dim))  # (Z,) f64
    lo = torch.special.ndtr(torch.tensor(-Z_BOUND, dtype=torch.float64))
    hi = torch.special.ndtr(torch.tensor(Z_BOUND, dtype=torch.float64))
    return torch.special.ndtri(lo + uniform * (hi - lo)).float()  # (Z,)


# The generator ---------------------------------------------------------------------


class BigGanGenerator:
    """BigGAN-deep behind the generator protocol: classes, truncation, noise walks.

    Args:
        net: the network (on the CPU; moved to `device` here).
        device: where to render.
        classes: class indices in the blend, in show order.
        class_names: each class's display name, for the target docs.
        seeds: noise keyframe seeds, walked as a closed loop.
        seed: fixes the noise directions.
        directions: how many noise directions are targets.
        fp16: render in half precision on CUDA.
        batchnorm_stats: "upstream" or "linear" (see `BigGanNet.stats_weights`).
    Thread: build anywhere; render on the generator worker.
    """

    kind = "biggan"

    def __init__(
        self,
        net: BigGanNet,
        *,
        device: torch.device,
        classes: Sequence[int],
        class_names: Sequence[str],
        seeds: Sequence[int],
        seed: int = 0,
        directions: int = 4,
        fp16: bool = True,
        batchnorm_stats: str = "upstream",
    ) -> None:
        if not classes:
            raise GeneratorError("BigGAN needs at least one class")
        if len(seeds) < 2:
            raise GeneratorError("BigGAN needs at least two noise keyframes to walk between")
        self.device = device
        side = net.resolution
        self.size_px = (side, side)
        self.classes = tuple(classes)
        self.stats_mode = batchnorm_stats
        self._half = fp16 and device.type == "cuda"
        if device.type == "cuda":
            # Frames keep one shape for the whole show: let cuDNN pick its fastest
            # convolution once. The generator worker owns the device.
            torch.backends.cudnn.benchmark = True
        self.net = net.to(device)
        self.net.set_precision(half=self._half, channels_last=device.type == "cuda")
        z_dim = net.config.z_dim
        self.keys = torch.stack([truncated_noise(s, z_dim) for s in seeds]).to(device)  # (K, Z)
        g = torch.Generator().manual_seed(seed)
        basis = torch.linalg.qr(torch.randn(z_dim, max(directions, 1), generator=g))[0]
        self.directions = (basis.T[:directions] * math.sqrt(z_dim) * DIRECTION_SCALE).to(device)
        self.class_onehots = F.one_hot(
            torch.tensor(self.classes), net.config.num_classes
        ).float()  # (C, num_classes)
        self.controls = (
            Control(
                "gen.truncation",
                0.4,
                MIN_TRUNCATION,
                1.0,
                "truncation: low is typical and clean, 1 is varied and wild",
            ),
            *walk_controls(speed=0.1, glide_s=0.4, keyframe="noise keyframe"),
            *(
                Control(
                    f"latent.direction.{i}", 0.0, -3.0, 3.0, f"push the noise along direction {i}"
                )
                for i in range(directions)
            ),
            *(
                Control(
                    f"class.{i}.weight",
                    1.0 if i == 0 else 0.0,
                    0.0,
                    1.0,
                    f"weight of class '{name}' ({index}) in the blend",
                )
                for i, (index, name) in enumerate(zip(self.classes, class_names))
            ),
        )
        self._defaults = defaults(self.controls)

    def inputs(self, params: Params) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The network inputs for one frame.

        Args:
            params: control values; missing controls take their defaults.
        Returns:
            (z, class_vector, truncation): (z_dim,) truncated and scaled noise,
            (num_classes,) class blend, the truncation.
        Thread: any.
        """
        value = {**self._defaults, **params.values}
        truncation = min(max(value["gen.truncation"], MIN_TRUNCATION), 1.0)
        i, frac = loop_coordinate(
            value.get("latent.phase", 0.0), value["latent.position"], self.keys.shape[0]
        )
        z = slerp(self.keys[i], self.keys[(i + 1) % self.keys.shape[0]], frac)  # (Z,)
        if self.directions.shape[0]:
            coeffs = torch.tensor(
                [value[f"latent.direction.{j}"] for j in range(self.directions.shape[0])],
                device=self.device,
            )
            z = z + coeffs @ self.directions  # (Z,)
        z = z.clamp(-Z_BOUND, Z_BOUND) * truncation
        weights = torch.tensor(
            [min(max(value[f"class.{j}.weight"], 0.0), 1.0) for j in range(len(self.classes))]
        )
        # A blend sums to at most 1: beyond that the embedding leaves the trained
        # range; below 1 the class fades towards the unconditioned middle.
        weights = weights / max(1.0, float(weights.sum()))
        class_vector = weights @ self.class_onehots  # (num_classes,)
        return z, class_vector, truncation

    def steer_latent(self, params: Params) -> torch.Tensor:
        """The latent `render` feeds the network for these params, before
        `params.latent_offset` is added: the noise exactly as the network takes it
        (clamped and scaled by truncation), then the class vector.

        Args:
            params: control values; missing controls take their defaults.
        Returns:
            (z_dim + num_classes,) float32 on `device`, detached.
        Thread: the thread that owns this generator.
        """
        z, class_vector, _ = self.inputs(params)
        return torch.cat([z, class_vector.to(z.device)]).float().detach()  # (Z + classes,)

    def render_latent(self, latent: torch.Tensor, params: Params) -> torch.Tensor:
        """Render with `latent` as the noise and class vector, differentiably.

        The truncation (and so the batch norm statistics) comes from `params` as in
        `render`; `params.latent_offset` is ignored (add it to `latent`), so
        `render_latent(steer_latent(p), p)` equals `render(p)` for an offset-free p.
        The noise part is not clamped again. On CUDA the image path runs in float16
        as `render`'s does, and gradients flow through it; a non-finite frame falls
        back to float32 for good, as in `render`.

        Args:
            latent: (z_dim + num_classes,) float tensor; gradients flow back to it.
            params: every other control value.
        Returns:
            (3, H, W) float32 in [0, 1] on `device`.
        Raises:
            GeneratorError: the latent has the wrong shape, or the frame is not
                finite even in float32.
        Thread: the thread that owns this generator.
        """
        z_dim, size = self.net.config.z_dim, self._latent_size()
        if tuple(latent.shape) != (size,):
            raise GeneratorError(f"latent has shape {tuple(latent.shape)}, expected ({size},)")
        latent = latent.to(self.device, torch.float32)
        truncation = self.inputs(params)[2]
        return self._render(latent[None, :z_dim], latent[None, z_dim:], [truncation])[0]

    def render(self, params: Params) -> torch.Tensor:
        """Render one frame: (3, H, W) float in [0, 1] on `device`.

        Args:
            params: control values; `latent_offset`, when set, is a
                (z_dim + num_classes,) offset added to the network's noise and class
                vector (the space `steer_latent` returns).
        Raises:
            GeneratorError: the frame is not finite even in float32, or the offset
                has the wrong shape.
        Thread: generator worker.
        """
        return self.render_batch([params])[0]

    @torch.no_grad()
    def render_batch(self, params: Sequence[Params]) -> torch.Tensor:
        """Render several frames at once (offline renders).

        Args:
            params: one Params per frame, each with its own `latent_offset` or none.
        Returns:
            (N, 3, H, W) float32 in [0, 1] on `device`.
        Raises:
            GeneratorError: a frame is not finite even in float32, or an offset has
                the wrong shape.
        Thread: generator worker.
        """
        zs, classes, truncations = zip(*(self.inputs(p) for p in params))
        z = torch.stack(zs)  # (N, Z)
        class_vectors = torch.stack(classes)  # (N, num_classes)
        if any(p.latent_offset is not None for p in params):
            offsets = torch.stack([self._offset(p) for p in params])  # (N, Z + classes)
            z = z + offsets[:, : z.shape[1]]
            class_vectors = class_vectors.to(self.device) + offsets[:, z.shape[1] :]
        return self._render(z, class_vectors, list(truncations))

    def _render(
        self, z: torch.Tensor, class_vectors: torch.Tensor, truncations: list[float]
    ) -> torch.Tensor:
        """Network inputs -> (N, 3, H, W) in [0, 1], falling back to float32 for good
        when a float16 frame is not finite. Differentiable where autograd records."""
        img = self.net(z, class_vectors, truncations, stats=self.stats_mode)
        if not torch.isfinite(img).all():
            if not self._half:
                raise GeneratorError("BigGAN rendered a non-finite frame")
            log.warning("BigGAN fp16 frame was not finite: rendering in float32 from now on")
            self._half = False
            self.net.set_precision(half=False, channels_last=self.device.type == "cuda")
            img = self.net(z, class_vectors, truncations, stats=self.stats_mode)
        # Out of place: an in-place clamp would break the backward pass of steering.
        return ((img + 1.0) * 0.5).clamp(0.0, 1.0)  # (N, 3, H, W)

    def _latent_size(self) -> int:
        return self.net.config.z_dim + self.net.config.num_classes

    def _offset(self, params: Params) -> torch.Tensor:
        """`params.latent_offset` checked, detached, as float32 on `device` (zeros
        when there is none): (z_dim + num_classes,)."""
        size = self._latent_size()
        offset = params.latent_offset
        if offset is None:
            return torch.zeros(size, device=self.device)
        if tuple(offset.shape) != (size,):
            raise GeneratorError(
                f"latent offset has shape {tuple(offset.shape)}, expected ({size},) "
                "(z_dim + num_classes)"
            )
        return offset.detach().to(self.device, torch.float32)


def build(config: GeneratorConfig, device: torch.device) -> BigGanGenerator:
    """Build from a show's `[generator]` table (`weights` is the folder).

    Raises:
        ConfigError: an unknown or bad option, naming the key.
        GeneratorError: missing or damaged weights, naming the file.
    Thread: any.
    """
    t = config.options
    classes_raw = t.take("classes", list, None, check=_class_entries)
    seeds = t.take("seeds", list, None, check=_seed_list)
    keyframes = t.take(
        "keyframes", int, None, check=lambda v: None if 2 <= v <= 256 else "expected 2..256"
    )
    directions = t.take(
        "directions", int, 4, check=lambda v: None if 0 <= v <= 32 else "expected 0..32"
    )
    fp16 = t.take("fp16", bool, True)
    stats = t.take(
        "batchnorm_stats",
        str,
        "upstream",
        check=lambda v: None if v in STATS_MODES else f"expected one of {', '.join(STATS_MODES)}",
    )
    if seeds is not None and keyframes is not None:
        raise t.error("keyframes", "give either 'seeds' or 'keyframes', not both")
    t.finish()
    if seeds is None:
        seeds = [config.seed + i for i in range(keyframes or 6)]

    if config.weights is None:
        raise GeneratorError("BigGAN needs 'weights': a pytorch-pretrained-biggan folder")
    net = load_folder(config.weights)
    names = imagenet_classes()
    if net.config.num_classes != len(names):
        raise GeneratorError(
            f"{config.weights}: {net.config.num_classes} classes, not the 1000 ImageNet classes"
        )
    if classes_raw is None:
        classes_raw = [config.seed % len(names)]
    classes = []
    for entry in classes_raw:
        try:
            classes.append(class_index(entry, names))
        except ValueError as exc:
            raise t.error("classes", str(exc)) from None
    return BigGanGenerator(
        net,
        device=device,
        classes=classes,
        class_names=[names[i] for i in classes],
        seeds=seeds,
        seed=config.seed,
        directions=directions,
        fp16=fp16,
        batchnorm_stats=stats,
    )


def _class_entries(value: list) -> str | None:
    if not value:
        return "expected at least one class"
    if all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
        return None
    return "expected class names (strings) or indices (integers)"


def _seed_list(value: list) -> str | None:
    if len(value) < 2:
        return "expected at least two seeds to walk between"
    if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in value):
        return None
    return "expected seeds as integers 0..2**32-1"
