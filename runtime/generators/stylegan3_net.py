"""StyleGAN3 (alias-free; configs T and R) in plain PyTorch.

Parameter and buffer names follow NVlabs' networks, so an upstream state dict loads
as is. The layer schedule (cutoffs, stopbands, sampling rates, sizes, channels) is
derived from the configuration the way the paper describes, and checked against the
layer names a checkpoint carries. Filters are buffers of the checkpoint; a fresh
(random) network designs them with scipy (Kaiser windowed sinc, or jinc for the
radial filters of config R).

Modulated convolutions scale activations by the styles before a fixed-weight
convolution and by the demodulation coefficients after it (see stylegan2_net), and
the nonlinearity is `stylegan_ops.filtered_lrelu`. Layers whose sampling rate is
high enough run in float16 on CUDA, as upstream's `num_fp16_res` says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runtime.errors import GeneratorError
from runtime.generators.stylegan2_net import FullyConnected, MappingNetwork
from runtime.generators.stylegan_ops import SQRT2, filtered_lrelu

_LAYER_NAME = re.compile(r"^synthesis\.(L(\d+)_(\d+)_(\d+))\.weight$")


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer's derived settings (sizes are square, in pixels)."""

    name: str
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: float
    out_sampling_rate: float
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    tmp_sampling_rate: float
    padding: tuple[int, int, int, int]


@dataclass(frozen=True)
class StyleGAN3Config:
    """Everything that shapes a StyleGAN3 generator (upstream's names and defaults).

    `channels`, when given, overrides the channel counts derived from
    `channel_base`/`channel_max` (a bare state dict shows them, not the formula's
    inputs).
    """

    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    mapping_layers: int = 2
    mapping_lr: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256.0
    channels: tuple[int, ...] | None = None

    @property
    def num_ws(self) -> int:
        """How many w vectors the synthesis takes (input + layers + ToRGB). Thread: any."""
        return self.num_layers + 2

    def layers(self) -> list[LayerSpec]:
        """The derived schedule of every layer, L0 to the ToRGB layer. Thread: any."""
        n, res = self.num_layers, self.img_resolution
        last_cutoff = res / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        exponents = np.minimum(np.arange(n + 1) / (n - self.num_critical), 1)
        cutoffs = self.first_cutoff * (last_cutoff / self.first_cutoff) ** exponents
        stopbands = self.first_stopband * (last_stopband / self.first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + self.margin_size * 2
        sizes[-2:] = res
        if self.channels is not None:
            channels = np.asarray(self.channels, dtype=np.float64)
        else:
            channels = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
            channels[-1] = self.img_channels
        specs = []
        for i in range(n + 1):
            prev = max(i - 1, 0)
            is_torgb = i == n
            critical = i >= n - self.num_critical
            in_rate, out_rate = int(rates[prev]), int(rates[i])
            tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else self.lrelu_upsampling)
            up = round(tmp_rate / in_rate)
            down = round(tmp_rate / out_rate)
            up_taps = self.filter_size * up if up > 1 and not is_torgb else 1
            down_taps = self.filter_size * down if down > 1 and not is_torgb else 1
            kernel = 1 if is_torgb else self.conv_kernel
            in_size, out_size = int(sizes[prev]), int(sizes[i])
            # Output size before downsampling minus the upsampled input size, plus
            # what the two filters consume; the symmetric interpretation shifts
            # the low side by half the upsampling factor.
            pad_total = (out_size - 1) * down + 1
            pad_total -= (in_size + kernel - 1) * up
            pad_total += up_taps + down_taps - 2
            pad_lo = (pad_total + up) // 2
            pad_hi = pad_total - pad_lo
            specs.append(
                LayerSpec(
                    name=f"L{i}_{out_size}_{int(channels[i])}",
                    is_torgb=is_torgb,
                    is_critically_sampled=critical,
                    use_fp16=bool(rates[i] * 2**self.num_fp16_res > res),
                    in_channels=int(channels[prev]),
                    out_channels=int(channels[i]),
                    in_size=in_size,
                    out_size=out_size,
                    in_sampling_rate=in_rate,
                    out_sampling_rate=out_rate,
                    in_cutoff=float(cutoffs[prev]),
                    out_cutoff=float(cutoffs[i]),
                    in_half_width=float(half_widths[prev]),
                    out_half_width=float(half_widths[i]),
                    conv_kernel=kernel,
                    up_factor=up,
                    down_factor=down,
                    up_taps=up_taps,
                    down_taps=down_taps,
                    down_radial=self.use_radial_filters and not critical,
                    tmp_sampling_rate=tmp_rate,
                    padding=(pad_lo, pad_hi, pad_lo, pad_hi),
                )
            )
        return specs

    def input_spec(self) -> tuple[int, int, float, float]:
        """(channels, size, sampling_rate, bandwidth) of the Fourier-feature input.

        Thread: any.
        """
        first = self.layers()[0]
        return first.in_channels, first.in_size, first.in_sampling_rate, first.in_cutoff

    def to_kwargs(self) -> dict[str, Any]:
        """The config as plain data (the safetensors metadata). Thread: any."""
        data = asdict(self)
        data["family"] = "stylegan3"
        return data

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> StyleGAN3Config:
        """Inverse of `to_kwargs`. Raises GeneratorError on unknown keys. Thread: any."""
        fields = {k: v for k, v in data.items() if k != "family"}
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise GeneratorError(f"unknown StyleGAN3 settings: {', '.join(sorted(unknown))}")
        if fields.get("channels") is not None:
            fields["channels"] = tuple(fields["channels"])
        return cls(**fields)

    @classmethod
    def from_upstream_kwargs(cls, kwargs: Mapping[str, Any]) -> StyleGAN3Config:
        """The config from an upstream Generator's constructor arguments.

        Raises:
            GeneratorError: a setting this implementation does not know.
        Thread: any.
        """
        top = dict(kwargs)
        mapping = dict(top.pop("mapping_kwargs", {}) or {})
        values: dict[str, Any] = {
            k: top.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
        }
        values["mapping_layers"] = int(mapping.pop("num_layers", 2))
        values["mapping_lr"] = float(mapping.pop("lr_multiplier", 0.01))
        mapping.pop("w_avg_beta", None)
        top.pop("magnitude_ema_beta", None)  # training only
        known = set(cls.__dataclass_fields__) - {"channels", "mapping_layers"}
        for key in list(top):
            if key in known:
                values[key] = top.pop(key)
        left = sorted(set(mapping) | set(top))
        if left:
            raise GeneratorError(f"unsupported StyleGAN3 settings in the checkpoint: {left}")
        if values.get("conv_clamp") is not None:
            values["conv_clamp"] = float(values["conv_clamp"])
        values["use_radial_filters"] = bool(values.get("use_radial_filters", False))
        return cls(**values)

    @classmethod
    def from_state_dict(
        cls, tensors: Mapping[str, torch.Tensor], hints: Mapping[str, Any]
    ) -> StyleGAN3Config:
        """Infer the config from tensor names and shapes (a bare state dict).

        The layer names carry each layer's size and channels; the rest of the
        schedule uses upstream's defaults, and must reproduce those sizes.

        Raises:
            GeneratorError: the tensors are not a StyleGAN3 generator, or its
                schedule differs from the defaults (then the file must carry
                init_kwargs).
        Thread: any.
        """
        layers: dict[int, tuple[str, int, int]] = {}
        for key in tensors:
            m = _LAYER_NAME.match(key)
            if m:
                layers[int(m.group(2))] = (m.group(1), int(m.group(3)), int(m.group(4)))
        try:
            n_fc = sum(1 for k in tensors if k.startswith("mapping.fc") and k.endswith(".weight"))
            fc0 = tensors["mapping.fc0.weight"]
            w_dim = tensors[f"mapping.fc{n_fc - 1}.weight"].shape[0]
            embed = tensors.get("mapping.embed.weight")
            c_dim = embed.shape[1] if embed is not None else 0
            order = [layers[i] for i in range(len(layers))]
            kernel = tensors[f"synthesis.{order[0][0]}.weight"].shape[-1]
        except (KeyError, IndexError) as exc:
            raise GeneratorError(f"not a StyleGAN3 generator state dict (missing {exc})") from None
        radial = any(
            k.endswith(".down_filter") and v.ndim == 2 for k, v in tensors.items() if v is not None
        )
        config = cls(
            z_dim=fc0.shape[1] - (w_dim if c_dim else 0),
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=order[-1][1],
            img_channels=order[-1][2],
            mapping_layers=n_fc,
            mapping_lr=float(hints.get("mapping_lr", 0.01)),
            num_layers=len(order) - 1,
            num_fp16_res=int(hints.get("num_fp16_res", 4)),
            conv_kernel=kernel,
            use_radial_filters=radial,
            conv_clamp=hints.get("conv_clamp", 256.0),
            channels=tuple(c for _, _, c in order),
        )
        if [s.name for s in config.layers()] != [name for name, _, _ in order]:
            raise GeneratorError(
                "this StyleGAN3 state dict's layer schedule differs from the defaults; "
                "save it with its init_kwargs"
            )
        return config


class SynthesisInput(nn.Module):
    """Fourier features, rotated and translated by the first w (and a user transform)."""

    def __init__(
        self, *, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float
    ) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = FullyConnected(w_dim, 4, weight_init=0.0, bias_init=[1.0, 0.0, 0.0, 0.0])
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(channels) - 0.5)
        # Sample positions in units of the sampling period, centred on the image.
        coords = (torch.arange(size, dtype=torch.float32) + 0.5 - size / 2) / self.sampling_rate
        grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij")[::-1], dim=-1)
        self.register_buffer("grid", grid, persistent=False)  # (H, W, 2) as (x, y)

    def forward(self, w: torch.Tensor, user: torch.Tensor | None = None) -> torch.Tensor:
        """w (N, w_dim), user (N, 3, 3) inverse transform or None -> (N, C, S, S) float32.

        Thread: generator worker.
        """
        n = w.shape[0]
        t = self.affine(w)  # (N, 4): rotation cos, sin, translation x, y
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        c, s, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        # Inverse rotation then inverse translation, as one matrix.
        m = torch.stack(
            [
                torch.stack([c, -s, -(c * tx) + s * ty], 1),
                torch.stack([s, c, -(s * tx) - c * ty], 1),
                torch.stack([zero, zero, one], 1),
            ],
            1,
        )  # (N, 3, 3)
        base = self.transform if user is None else user
        transforms = m @ base.expand(n, 3, 3)  # (N, 3, 3)
        phases = self.phases + (self.freqs @ transforms[:, :2, 2:]).squeeze(2)  # (N, C)
        freqs = self.freqs @ transforms[:, :2, :2]  # (N, C, 2)
        amplitudes = 1 - (freqs.norm(dim=2) - self.bandwidth) / (
            self.sampling_rate / 2 - self.bandwidth
        )
        amplitudes = amplitudes.clamp(0, 1)  # (N, C)
        x = torch.einsum("hwk,nck->nhwc", self.grid, freqs)  # (N, H, W, C)
        x = torch.sin((x + phases[:, None, None]) * (2 * math.pi)) * amplitudes[:, None, None]
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # (N, H, W, C)
        return x.permute(0, 3, 1, 2)  # (N, C, H, W)


class SynthesisLayer(nn.Module):
    """Modulated convolution followed by the filtered leaky ReLU (or the ToRGB layer)."""

    def __init__(self, spec: LayerSpec, *, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.spec = spec
        self.conv_clamp = conv_clamp
        self.is_torgb = spec.is_torgb
        self.gain = 1.0 if spec.is_torgb else SQRT2
        self.slope = 1.0 if spec.is_torgb else 0.2
        k = spec.conv_kernel
        self.affine = FullyConnected(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer(
            "up_filter",
            _lowpass(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate),
        )
        self.register_buffer(
            "down_filter",
            _lowpass(
                spec.down_taps,
                spec.out_cutoff,
                spec.out_half_width * 2,
                spec.tmp_sampling_rate,
                radial=spec.down_radial,
            ),
        )
        self.dtype = torch.float32
        self.register_buffer("w_exec", torch.empty(0), persistent=False)
        self.register_buffer("w_sq", torch.empty(0), persistent=False)

    def prepare(self, dtype: torch.dtype) -> None:
        """Derive the execution weight for `dtype`: normalised (for demodulation),
        with the input magnitude gain folded in. Thread: the owning thread."""
        self.dtype = dtype
        w = self.weight.detach().float()  # (O, I, k, k)
        if not self.is_torgb:
            w = w * w.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
        self.w_sq = w.square().sum(dim=(2, 3))  # (O, I)
        gain = self.magnitude_ema.detach().float().rsqrt()
        self.w_exec = (w * gain).to(dtype).contiguous()

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (N, I, S, S), w (N, w_dim) -> (N, O, S', S'). Thread: generator worker."""
        styles = self.affine(w)  # (N, I)
        x = x.to(self.dtype)
        if self.is_torgb:
            styles = styles * (1.0 / math.sqrt(self.weight[0].numel()))
            dcoefs = None
        else:
            styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
            dcoefs = (styles.square() @ self.w_sq.t() + 1e-8).rsqrt()  # (N, O)
        x = x * styles.to(x.dtype)[:, :, None, None]
        x = F.conv2d(x, self.w_exec, padding=self.spec.conv_kernel - 1)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype)[:, :, None, None]
        return filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            self.bias,
            up=self.spec.up_factor,
            down=self.spec.down_factor,
            padding=self.spec.padding,
            gain=self.gain,
            slope=self.slope,
            clamp=self.conv_clamp,
        )


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, C, R, R)."""

    def __init__(self, config: StyleGAN3Config) -> None:
        super().__init__()
        self.config = config
        self.num_ws = config.num_ws
        self.output_scale = config.output_scale
        channels, size, rate, bandwidth = config.input_spec()
        self.input = SynthesisInput(
            w_dim=config.w_dim,
            channels=channels,
            size=size,
            sampling_rate=rate,
            bandwidth=bandwidth,
        )
        self.specs = config.layers()
        self.layer_names = [spec.name for spec in self.specs]
        for spec in self.specs:
            layer = SynthesisLayer(spec, w_dim=config.w_dim, conv_clamp=config.conv_clamp)
            setattr(self, spec.name, layer)

    def layers(self) -> list[SynthesisLayer]:
        """Layers in order. Thread: any."""
        return [getattr(self, name) for name in self.layer_names]

    def forward(self, ws: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        """ws (N, num_ws, w_dim), transform (N, 3, 3) or None -> (N, C, R, R) float32.

        Thread: generator worker.
        """
        w = ws.to(torch.float32).unbind(dim=1)
        x = self.input(w[0], transform)
        for layer, layer_w in zip(self.layers(), w[1:]):
            x = layer(x, layer_w)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)


class StyleGAN3(nn.Module):
    """A StyleGAN3 generator: `mapping` and `synthesis`, with upstream's tensor names.

    Args:
        config: the architecture.
    Thread: build anywhere; run on one thread at a time.
    """

    family = "stylegan3"

    def __init__(self, config: StyleGAN3Config) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = config.num_ws
        self.mapping = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_layers=config.mapping_layers,
            embed_features=config.w_dim,
            layer_features=config.w_dim,
            activation="lrelu",
            lr_multiplier=config.mapping_lr,
        )
        self.fp16 = False
        self.prepare(fp16=False)

    def prepare(self, *, fp16: bool, channels_last: bool = False) -> None:
        """Choose precision and derive execution weights.

        Args:
            fp16: run the layers upstream marks `use_fp16` in float16.
            channels_last: ignored; the filtered nonlinearity works on contiguous
                planes.
        Thread: the thread that owns the network.
        """
        self.fp16 = fp16
        for layer in self.synthesis.layers():
            layer.prepare(torch.float16 if fp16 and layer.spec.use_fp16 else torch.float32)

    def noise_shapes(self) -> list[int]:
        """StyleGAN3 has no noise inputs. Thread: any."""
        return []

    def const_noise(self) -> list[torch.Tensor]:
        """StyleGAN3 has no noise inputs. Thread: any."""
        return []

    def synthesize(
        self,
        ws: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> (N, C, R, R) float32 in upstream's scale.

        Args:
            ws: per-layer latents.
            noise: unused (no noise inputs).
            transform: (N, 3, 3) inverse image transform (rotate, translate) applied
                to the Fourier features, or None for the stored one.
        Thread: generator worker.
        """
        return self.synthesis(ws, transform)


def _lowpass(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """A Kaiser-windowed low-pass filter (separable 1D, or radial 2D jinc); None for
    one tap. Used only to initialise fresh networks: checkpoints carry their filters.
    """
    if numtaps == 1:
        return None
    import scipy.signal
    import scipy.special

    if not radial:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.as_tensor(taps, dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / np.sum(f), dtype=torch.float32)
