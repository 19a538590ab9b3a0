"""StyleGAN2 (and StyleGAN2-ADA) in plain PyTorch: mapping network and synthesis.

Parameter and buffer names follow NVlabs' networks, so an upstream state dict loads
as is. The forward pass computes what upstream computes, arranged for inference:

- Modulated convolutions scale the activations by the styles before a convolution
  with the fixed weight and by the demodulation coefficients after it, instead of
  building a weight per sample. The weight never changes, so its squared norms
  (for demodulation), its fp16 copy and its memory layout are prepared once
  (`prepare`), and a batch of latents is one ordinary convolution.
- Blocks at the `num_fp16_res` highest resolutions run in float16 on CUDA (as
  upstream), optionally channels-last; everything else in float32.

Noise is an input: `synthesize` takes one unit-variance field per noise layer (the
generator decides const, random or animated), scaled here by each layer's learned
`noise_strength`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runtime.errors import GeneratorError
from runtime.generators.stylegan_ops import SQRT2, bias_act, upfirdn2d

# Activation name -> (leaky slope, gain), as upstream's bias_act defines them.
ACTIVATIONS = {"linear": (1.0, 1.0), "lrelu": (0.2, SQRT2), "relu": (0.0, SQRT2)}


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    """Scale each row to unit root mean square. Thread: generator worker."""
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


def fir_filter(taps: Sequence[float]) -> torch.Tensor:
    """A normalised 2D FIR filter from 1D taps (outer product), as upstream sets up
    its resampling filter. Thread: any."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(f, f) if f.numel() < 8 else f
    return f / f.sum()


class FullyConnected(nn.Module):
    """A dense layer with equalised learning rate (runtime weight and bias gains).

    Args:
        in_features, out_features: sizes.
        activation: "linear", "lrelu" or "relu".
        lr_multiplier: the learning-rate multiplier the network was trained with.
        weight_init, bias_init: initial values for a fresh (random) network.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        weight_init: float = 1.0,
        bias_init: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        self.slope, self.act_gain = ACTIVATIONS[activation]
        self.weight = nn.Parameter(
            torch.randn(out_features, in_features) * (weight_init / lr_multiplier)
        )
        bias = torch.as_tensor(bias_init, dtype=torch.float32).broadcast_to(out_features)
        self.bias = nn.Parameter(bias / lr_multiplier)
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) -> (N, out). Thread: generator worker."""
        w = self.weight * self.weight_gain  # (out, in)
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias  # (out,)
        if self.slope == 1.0:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, slope=self.slope, gain=self.act_gain)


class MappingNetwork(nn.Module):
    """z (and an optional class label c) -> w.

    Args:
        z_dim, c_dim, w_dim: latent, label and intermediate latent sizes.
        num_layers: dense layers.
        embed_features: label embedding size (c_dim > 0).
        layer_features: hidden layer size.
        activation: hidden activation.
        lr_multiplier: as trained.
    """

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_layers: int,
        embed_features: int,
        layer_features: int,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_layers = z_dim, c_dim, w_dim, num_layers
        embed = embed_features if c_dim > 0 else 0
        features = [z_dim + embed] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnected(c_dim, embed)
        for i in range(num_layers):
            layer = FullyConnected(
                features[i],
                features[i + 1],
                activation=activation,
                lr_multiplier=lr_multiplier,
            )
            setattr(self, f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """(N, z_dim) [, (N, c_dim)] -> (N, w_dim), before broadcast and truncation.

        Thread: generator worker.
        """
        x = normalize_2nd_moment(z.to(torch.float32))  # (N, z_dim)
        if self.c_dim > 0:
            if c is None:
                raise GeneratorError(f"this model is conditional: it needs a label of {self.c_dim}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))  # (N, embed)
            x = torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class SynthesisLayer(nn.Module):
    """A modulated 3x3 convolution (optionally upsampling by 2), noise, bias, lrelu.

    Args:
        in_channels, out_channels, w_dim: sizes.
        resolution: output resolution.
        up: 1 or 2.
        use_noise: has a noise input.
        activation: "lrelu" as trained.
        conv_clamp: activation clamp, or None.
        resample_filter: 1D taps of the upsampling filter.
        kernel_size: convolution size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.padding = kernel_size // 2
        self.slope, self.act_gain = ACTIVATIONS[activation]
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.half = False
        self.register_buffer("w_exec", torch.empty(0), persistent=False)
        self.register_buffer("w_sq", torch.empty(0), persistent=False)

    def prepare(self, dtype: torch.dtype, memory_format: torch.memory_format) -> None:
        """Derive the execution weight and its squared norms for `dtype`.

        In float16 the weight is pre-normalised per output channel (and the styles
        per sample at run time) so activations stay in range; demodulation cancels
        both scales. Thread: the thread that owns the network.
        """
        w = self.weight.detach().float()  # (O, I, k, k)
        self.half = dtype == torch.float16
        if self.half:
            fan_in = w[0].numel()
            w = w / (math.sqrt(fan_in) * w.abs().amax(dim=(1, 2, 3), keepdim=True))
        self.w_sq = w.square().sum(dim=(2, 3))  # (O, I)
        if self.up > 1:
            w = w.transpose(0, 1)  # (I, O, k, k): conv_transpose2d layout
        self.w_exec = w.to(dtype).contiguous(memory_format=memory_format)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None, gain: float = 1.0
    ) -> torch.Tensor:
        """x (N, I, r, r), w (N, w_dim), noise (N or 1, 1, R, R) -> (N, O, R, R).

        Thread: generator worker.
        """
        styles = self.affine(w)  # (N, I)
        if self.half:
            styles = styles / styles.abs().amax(dim=1, keepdim=True)
        dcoefs = (styles.square() @ self.w_sq.t() + 1e-8).rsqrt()  # (N, O)
        x = x * styles.to(x.dtype)[:, :, None, None]
        if self.up > 1:
            x = F.conv_transpose2d(x, self.w_exec, stride=2)  # (N, O, 2r + 1, 2r + 1)
            x = upfirdn2d(x, self.resample_filter, padding=(1, 1, 1, 1), gain=4.0)
        else:
            x = F.conv2d(x, self.w_exec, padding=self.padding)  # (N, O, R, R)
        x = x * dcoefs.to(x.dtype)[:, :, None, None]
        if noise is not None and self.use_noise:
            x = x + (noise * self.noise_strength).to(x.dtype)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, slope=self.slope, gain=self.act_gain * gain, clamp=clamp)


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to image channels (no demodulation)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, w_dim: int, conv_clamp: float | None
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.register_buffer("w_exec", torch.empty(0), persistent=False)

    def prepare(self, dtype: torch.dtype, memory_format: torch.memory_format) -> None:
        """Cast the weight for execution. Thread: the thread that owns the network."""
        w = self.weight.detach().float().to(dtype)
        self.w_exec = w.contiguous(memory_format=memory_format)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (N, I, R, R), w (N, w_dim) -> (N, C, R, R) float32. Thread: generator worker."""
        styles = self.affine(w) * self.weight_gain  # (N, I)
        x = F.conv2d(x * styles.to(x.dtype)[:, :, None, None], self.w_exec)
        x = bias_act(x, self.bias, clamp=self.conv_clamp)
        return x.to(torch.float32, memory_format=torch.contiguous_format)


class SkipConv(nn.Module):
    """The residual branch of a 'resnet' block: 1x1 convolution, upsample by 2."""

    def __init__(
        self, in_channels: int, out_channels: int, resample_filter: Sequence[float]
    ) -> None:
        super().__init__()
        self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, I, r, r) -> (N, O, 2r, 2r), scaled by sqrt(1/2). Thread: generator worker."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = F.conv2d(x, w)
        x = upfirdn2d(x, self.resample_filter, up=2, padding=(2, 1, 2, 1), gain=4.0)
        return x * math.sqrt(0.5)


class SynthesisBlock(nn.Module):
    """One resolution: (upsampling conv), conv, (to RGB), as the architecture says."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str,
        conv_clamp: float | None,
        resample_filter: Sequence[float],
        use_noise: bool,
        activation: str,
        kernel_size: int,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, architecture
        self.register_buffer("resample_filter", fir_filter(resample_filter))
        layer = {
            "w_dim": w_dim,
            "resolution": resolution,
            "conv_clamp": conv_clamp,
            "resample_filter": resample_filter,
            "use_noise": use_noise,
            "activation": activation,
            "kernel_size": kernel_size,
        }
        self.num_conv = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer)
        self.num_conv += 1
        self.has_torgb = is_last or architecture == "skip"
        self.num_torgb = int(self.has_torgb)
        if self.has_torgb:
            self.torgb = ToRGB(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        if in_channels != 0 and architecture == "resnet":
            self.skip = SkipConv(in_channels, out_channels, resample_filter)
        self.dtype = torch.float32
        self.memory_format = torch.contiguous_format

    def layers(self) -> list[SynthesisLayer]:
        """The noise-carrying layers in order. Thread: any."""
        return [self.conv0, self.conv1] if self.in_channels else [self.conv1]

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise: Sequence[torch.Tensor | None],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (N, I, r, r) or None, img (N, C, r, r) or None, ws (N, k, w_dim).

        Returns:
            (x, img) at this block's resolution.
        Thread: generator worker.
        """
        w = ws.unbind(dim=1)
        if x is None:
            x = self.const.to(self.dtype, memory_format=self.memory_format)
            x = x.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # (N, O, 4, 4)
            x = self.conv1(x, w[0], noise[0])
        else:
            x = x.to(self.dtype, memory_format=self.memory_format)
            if self.architecture == "resnet":
                y = self.skip(x)
                x = self.conv0(x, w[0], noise[0])
                x = self.conv1(x, w[1], noise[1], gain=math.sqrt(0.5))
                x = y + x
            else:
                x = self.conv0(x, w[0], noise[0])
                x = self.conv1(x, w[1], noise[1])
        if img is not None:
            img = upfirdn2d(img, self.resample_filter, up=2, padding=(2, 1, 2, 1), gain=4.0)
        if self.has_torgb:
            y = self.torgb(x, w[self.num_conv])
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, C, R, R), upstream's raw output scale."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        self.block_resolutions = config.block_resolutions
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                config.channels_at(res // 2) if res > 4 else 0,
                config.channels_at(res),
                w_dim=config.w_dim,
                resolution=res,
                img_channels=config.img_channels,
                is_last=res == config.img_resolution,
                architecture=config.architecture,
                conv_clamp=config.conv_clamp,
                resample_filter=config.resample_filter,
                use_noise=config.use_noise,
                activation=config.activation,
                kernel_size=config.kernel_size,
            )
            self.num_ws += block.num_conv + (block.num_torgb if res == config.img_resolution else 0)
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        """Blocks from 4x4 up. Thread: any."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def noise_layers(self) -> list[SynthesisLayer]:
        """Every layer with a noise input, in the order `forward` takes noise. Thread: any."""
        return [layer for block in self.blocks() for layer in block.layers() if layer.use_noise]

    def forward(
        self, ws: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        """ws (N, num_ws, w_dim), noise fields per `noise_layers()` -> (N, C, R, R) float32.

        Thread: generator worker.
        """
        ws = ws.to(torch.float32)
        fields = list(noise) if noise is not None else []
        x = img = None
        w_idx = 0
        for block in self.blocks():
            count = len(block.layers())
            block_noise = fields[:count] if fields else [None] * count
            fields = fields[count:]
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, block_noise)
            w_idx += block.num_conv
        assert img is not None
        return img


@dataclass(frozen=True)
class StyleGAN2Config:
    """Everything that shapes a StyleGAN2 generator.

    Attributes:
        z_dim, c_dim, w_dim: latent, label and intermediate latent sizes.
        img_resolution, img_channels: output size and channels.
        channels: channels per block resolution (4, 8, ..., img_resolution).
        mapping_layers, embed_features, layer_features: mapping network shape.
        mapping_activation, mapping_lr: as trained.
        architecture: "skip", "orig" or "resnet".
        conv_clamp: activation clamp, or None.
        num_fp16_res: how many of the highest resolutions may run in float16.
        resample_filter: 1D taps of the resampling filter.
        use_noise, activation, kernel_size: synthesis layer settings.
        w_avg_beta: kept only to write the config back out.
    """

    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    channels: tuple[int, ...]
    mapping_layers: int = 8
    embed_features: int = 0
    layer_features: int = 0
    mapping_activation: str = "lrelu"
    mapping_lr: float = 0.01
    architecture: str = "skip"
    conv_clamp: float | None = 256.0
    num_fp16_res: int = 4
    resample_filter: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    use_noise: bool = True
    activation: str = "lrelu"
    kernel_size: int = 3
    w_avg_beta: float | None = 0.998

    @property
    def block_resolutions(self) -> list[int]:
        """4, 8, ..., img_resolution. Thread: any."""
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        """How many w vectors the synthesis takes. Thread: any."""
        return 2 * len(self.block_resolutions)

    @property
    def fp16_resolution(self) -> int:
        """The lowest block resolution that may run in float16. Thread: any."""
        log2 = int(math.log2(self.img_resolution))
        return max(2 ** (log2 + 1 - self.num_fp16_res), 8)

    def channels_at(self, res: int) -> int:
        """Channels of the block at `res`. Thread: any."""
        return self.channels[self.block_resolutions.index(res)]

    def to_kwargs(self) -> dict[str, Any]:
        """The config as plain data (the safetensors metadata). Thread: any."""
        data = asdict(self)
        data["family"] = "stylegan2"
        return data

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> StyleGAN2Config:
        """Inverse of `to_kwargs`. Raises GeneratorError on unknown keys. Thread: any."""
        fields = {k: v for k, v in data.items() if k != "family"}
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise GeneratorError(f"unknown StyleGAN2 settings: {', '.join(sorted(unknown))}")
        fields["channels"] = tuple(fields["channels"])
        fields["resample_filter"] = tuple(fields.get("resample_filter", (1, 3, 3, 1)))
        return cls(**fields)

    @classmethod
    def from_upstream_kwargs(cls, kwargs: Mapping[str, Any], *, ada: bool) -> StyleGAN2Config:
        """The config from an upstream Generator's constructor arguments.

        Args:
            kwargs: `Generator.init_kwargs` from the pickle.
            ada: stylegan2-ada-pytorch (synthesis settings in a `synthesis_kwargs`
                dict, conv_clamp off and no fp16 by default) rather than stylegan3's
                copy of StyleGAN2.
        Raises:
            GeneratorError: a setting this implementation does not know.
        Thread: any.
        """
        top = dict(kwargs)
        mapping = dict(top.pop("mapping_kwargs", {}) or {})
        synthesis = dict(top.pop("synthesis_kwargs", {}) or {}) if ada else {}
        names = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
        base = {k: top.pop(k) for k in names}
        synthesis.update(top)
        res = int(base["img_resolution"])
        log2 = int(math.log2(res))
        if 2**log2 != res or res < 4:
            raise GeneratorError(f"img_resolution {res} is not a power of two >= 4")
        channel_base = synthesis.pop("channel_base", 32768)
        channel_max = synthesis.pop("channel_max", 512)
        channels = tuple(min(channel_base // 2**i, channel_max) for i in range(2, log2 + 1))
        w_dim = int(base["w_dim"])
        config = cls(
            z_dim=int(base["z_dim"]),
            c_dim=int(base["c_dim"]),
            w_dim=w_dim,
            img_resolution=res,
            img_channels=int(base["img_channels"]),
            channels=channels,
            mapping_layers=int(mapping.pop("num_layers", 8)),
            embed_features=int(mapping.pop("embed_features", None) or w_dim),
            layer_features=int(mapping.pop("layer_features", None) or w_dim),
            mapping_activation=mapping.pop("activation", "lrelu"),
            mapping_lr=float(mapping.pop("lr_multiplier", 0.01)),
            w_avg_beta=mapping.pop("w_avg_beta", 0.995 if ada else 0.998),
            architecture=synthesis.pop("architecture", "skip"),
            conv_clamp=_float_or_none(synthesis.pop("conv_clamp", None if ada else 256)),
            num_fp16_res=int(synthesis.pop("num_fp16_res", 0 if ada else 4)),
            resample_filter=tuple(float(v) for v in synthesis.pop("resample_filter", (1, 3, 3, 1))),
            use_noise=bool(synthesis.pop("use_noise", True)),
            activation=synthesis.pop("activation", "lrelu"),
            kernel_size=int(synthesis.pop("kernel_size", 3)),
        )
        # Settings that only matter for training or memory layout.
        for key in ("fp16_channels_last", "fused_modconv_default", "channels_last"):
            synthesis.pop(key, None)
        left = sorted(set(mapping) | set(synthesis))
        if left:
            raise GeneratorError(f"unsupported StyleGAN2 settings in the checkpoint: {left}")
        config.check()
        return config

    @classmethod
    def from_state_dict(
        cls, tensors: Mapping[str, torch.Tensor], hints: Mapping[str, Any]
    ) -> StyleGAN2Config:
        """Infer the config from tensor names and shapes (a bare state dict).

        Args:
            tensors: upstream-named tensors.
            hints: settings that shapes cannot show (conv_clamp, num_fp16_res,
                mapping_lr, mapping_activation); upstream's defaults otherwise.
        Raises:
            GeneratorError: the tensors are not a StyleGAN2 generator.
        Thread: any.
        """
        try:
            n_fc = sum(1 for k in tensors if k.startswith("mapping.fc") and k.endswith(".weight"))
            fc0 = tensors["mapping.fc0.weight"]
            fc_last = tensors[f"mapping.fc{n_fc - 1}.weight"]
            embed_w = tensors.get("mapping.embed.weight")
            c_dim = embed_w.shape[1] if embed_w is not None else 0
            embed = embed_w.shape[0] if embed_w is not None else 0
            resolutions = sorted(
                {int(k.split(".")[1][1:]) for k in tensors if k.startswith("synthesis.b")}
            )
            img_res = resolutions[-1]
            channels = tuple(tensors[f"synthesis.b{r}.conv1.weight"].shape[0] for r in resolutions)
            img_channels = tensors[f"synthesis.b{img_res}.torgb.weight"].shape[0]
            kernel = tensors["synthesis.b4.conv1.weight"].shape[-1]
        except (KeyError, IndexError, ValueError) as exc:
            raise GeneratorError(f"not a StyleGAN2 generator state dict (missing {exc})") from None
        if resolutions != [2**i for i in range(2, len(resolutions) + 2)]:
            raise GeneratorError(f"StyleGAN2 blocks at unexpected resolutions {resolutions}")
        if any(k.endswith(".skip.weight") for k in tensors):
            architecture = "resnet"
        elif len(resolutions) > 1 and "synthesis.b4.torgb.weight" in tensors:
            architecture = "skip"
        else:
            architecture = "orig"
        config = cls(
            z_dim=fc0.shape[1] - embed,
            c_dim=c_dim,
            w_dim=fc_last.shape[0],
            img_resolution=img_res,
            img_channels=img_channels,
            channels=channels,
            mapping_layers=n_fc,
            embed_features=embed,
            layer_features=fc0.shape[0] if n_fc > 1 else fc_last.shape[0],
            mapping_activation=hints.get("mapping_activation", "lrelu"),
            mapping_lr=float(hints.get("mapping_lr", 0.01)),
            architecture=architecture,
            conv_clamp=_float_or_none(hints.get("conv_clamp", 256)),
            num_fp16_res=int(hints.get("num_fp16_res", 4)),
            use_noise="synthesis.b4.conv1.noise_strength" in tensors,
            kernel_size=kernel,
        )
        config.check()
        return config

    def check(self) -> None:
        """Raise GeneratorError for settings this implementation cannot run. Thread: any."""
        if self.architecture not in ("skip", "orig", "resnet"):
            raise GeneratorError(f"unknown StyleGAN2 architecture '{self.architecture}'")
        for name in (self.activation, self.mapping_activation):
            if name not in ACTIVATIONS:
                raise GeneratorError(
                    f"unsupported activation '{name}'; known: {', '.join(ACTIVATIONS)}"
                )
        if len(self.channels) != len(self.block_resolutions):
            raise GeneratorError("StyleGAN2 channel list does not match the resolutions")


class StyleGAN2(nn.Module):
    """A StyleGAN2 generator: `mapping` and `synthesis`, with upstream's tensor names.

    Args:
        config: the architecture.
    Thread: build anywhere; run on one thread at a time.
    """

    family = "stylegan2"

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_layers=config.mapping_layers,
            embed_features=config.embed_features or config.w_dim,
            layer_features=config.layer_features or config.w_dim,
            activation=config.mapping_activation,
            lr_multiplier=config.mapping_lr,
        )
        self.fp16 = False
        self.prepare(fp16=False)

    def prepare(self, *, fp16: bool, channels_last: bool = False) -> None:
        """Choose precision and layout, and derive execution weights.

        Args:
            fp16: run the `num_fp16_res` highest-resolution blocks in float16.
            channels_last: use channels-last memory format in those blocks.
        Thread: the thread that owns the network (after loading weights or moving
            it to a device).
        """
        self.fp16 = fp16
        fp16_res = self.config.fp16_resolution
        for block in self.synthesis.blocks():
            half = fp16 and block.resolution >= fp16_res
            block.dtype = torch.float16 if half else torch.float32
            block.memory_format = (
                torch.channels_last if half and channels_last else torch.contiguous_format
            )
            for layer in block.layers():
                layer.prepare(block.dtype, block.memory_format)
            if block.has_torgb:
                block.torgb.prepare(block.dtype, block.memory_format)

    def noise_shapes(self) -> list[int]:
        """The resolution of each noise input, in `synthesize`'s order. Thread: any."""
        return [layer.resolution for layer in self.synthesis.noise_layers()]

    def const_noise(self) -> list[torch.Tensor]:
        """Each noise layer's stored constant field, (1, 1, R, R). Thread: any."""
        return [layer.noise_const[None, None] for layer in self.synthesis.noise_layers()]

    def synthesize(
        self,
        ws: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> (N, C, R, R) float32 in upstream's scale (about -1..1).

        Args:
            ws: per-layer latents.
            noise: unit-variance fields per `noise_shapes()`, or None for no noise.
            transform: unused (StyleGAN3 only).
        Thread: generator worker.
        """
        return self.synthesis(ws, noise)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
