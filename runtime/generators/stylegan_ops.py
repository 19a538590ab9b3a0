"""The StyleGAN building blocks in plain torch: bias + activation, FIR resampling,
filtered leaky ReLU.

These compute what NVlabs' reference ops compute (upfirdn2d: upsample by zero
insertion, pad, convolve with a FIR filter, downsample by dropping samples), but
never materialise the zero-inserted or discarded samples: upsampling is a strided
transposed convolution with the filter and downsampling a strided convolution.
Filters are the same for every channel, so channels are folded into the batch and
each pass is a one-channel convolution (no grouped convolutions, no custom CUDA).

Padding is (x_before, x_after, y_before, y_after) relative to the upsampled image;
negative values crop. A filter is a 1D tensor (separable: applied along x, then y)
or a 2D tensor (fh, fw); None is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    slope: float = 1.0,
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias, apply leaky ReLU, scale, clamp.

    Args:
        x: (N, C, ...) activations.
        b: (C,) bias, or None.
        slope: leaky ReLU slope for negatives (1.0 is linear, 0.2 StyleGAN's lrelu).
        gain: scale after the activation.
        clamp: clamp to [-clamp, clamp] after scaling, or None.
    Returns:
        Same shape and dtype as x.
    Thread: generator worker.
    """
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    if slope != 1.0:
        x = F.leaky_relu(x, slope)
    if gain != 1.0:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample, pad, FIR-filter (true convolution) and downsample each channel.

    Args:
        x: (N, C, H, W).
        f: (K,) separable or (Kh, Kw) filter, float32; None for the identity.
        up, down: integer factors, the same on both axes.
        padding: (x0, x1, y0, y1) relative to the upsampled image.
        gain: overall scale (spread evenly over the two passes of a separable filter).
    Returns:
        (N, C, H', W') with W' = (W * up + x0 + x1 - Kw + 1 + down - 1) // down.
    Thread: generator worker.
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if f is None:
        return _identity_filter(x, up, down, padding, gain)
    y = x.reshape(n * c, 1, h, w)
    if f.ndim == 1:
        taps = f * (gain**0.5)
        y = _fir_axis(y, taps, up, down, px0, px1, axis=3)
        y = _fir_axis(y, taps, up, down, py0, py1, axis=2)
    else:
        y = _fir_2d(y, f * gain, up, down, padding)
    return y.reshape(n, c, y.shape[2], y.shape[3])


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = SQRT2,
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """StyleGAN3's alias-free nonlinearity: bias, upsample, leaky ReLU, clamp, downsample.

    Args:
        x: (N, C, H, W).
        fu, fd: upsampling and downsampling filters (1D separable, 2D, or None).
        b: (C,) bias, or None.
        up, down: resampling factors.
        padding: (x0, x1, y0, y1) applied with the upsampling.
        gain, slope, clamp: as in `bias_act`.
    Returns:
        (N, C, H', W'), the dtype of x.
    Thread: generator worker.
    """
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=float(up * up))
    x = bias_act(x, slope=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def _fir_axis(
    y: torch.Tensor, taps: torch.Tensor, up: int, down: int, pad0: int, pad1: int, axis: int
) -> torch.Tensor:
    """One separable pass along `axis` (2 = y, 3 = x) of a (B, 1, H, W) tensor."""
    k = taps.shape[0]
    shape = (1, 1, 1, k) if axis == 3 else (1, 1, k, 1)
    n = y.shape[axis]
    if up > 1:
        stride = (1, up) if axis == 3 else (up, 1)
        weight = taps.to(y.dtype).reshape(shape)
        full = F.conv_transpose2d(y, weight, stride=stride)  # length (n - 1) * up + k
        start = k - 1 - pad0
        stop = n * up + pad1
        y = _crop_or_pad(full, axis, start, stop)
        if down > 1:
            y = y[:, :, :, ::down] if axis == 3 else y[:, :, ::down, :]
        return y
    if pad0 or pad1:
        y = F.pad(y, (pad0, pad1, 0, 0) if axis == 3 else (0, 0, pad0, pad1))
    weight = taps.flip(0).to(y.dtype).reshape(shape)
    stride = (1, down) if axis == 3 else (down, 1)
    return F.conv2d(y, weight, stride=stride)


def _fir_2d(
    y: torch.Tensor, f: torch.Tensor, up: int, down: int, padding: tuple[int, int, int, int]
) -> torch.Tensor:
    """A non-separable pass over both axes of a (B, 1, H, W) tensor."""
    px0, px1, py0, py1 = padding
    kh, kw = f.shape
    h, w = y.shape[2], y.shape[3]
    if up > 1:
        full = F.conv_transpose2d(y, f.to(y.dtype)[None, None], stride=up)
        y = _crop_or_pad(full, 3, kw - 1 - px0, w * up + px1)
        y = _crop_or_pad(y, 2, kh - 1 - py0, h * up + py1)
        if down > 1:
            y = y[:, :, ::down, ::down]
        return y
    if px0 or px1 or py0 or py1:
        y = F.pad(y, (px0, px1, py0, py1))
    return F.conv2d(y, f.flip((0, 1)).to(y.dtype)[None, None], stride=down)


def _identity_filter(
    x: torch.Tensor, up: int, down: int, padding: tuple[int, int, int, int], gain: float
) -> torch.Tensor:
    """upfirdn2d with no filter: zero insertion, pad or crop, sample dropping, gain."""
    if up > 1:
        n, c, h, w = x.shape
        x = F.pad(x.reshape(n, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    if any(padding):
        x = F.pad(x, padding)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x * gain if gain != 1.0 else x


def _crop_or_pad(y: torch.Tensor, axis: int, start: int, stop: int) -> torch.Tensor:
    """y[start:stop] along `axis`, zero-filled where the range leaves the tensor."""
    length = y.shape[axis]
    before, after = max(-start, 0), max(stop - length, 0)
    y = y.narrow(axis, max(start, 0), min(stop, length) - max(start, 0))
    if before or after:
        y = F.pad(y, (before, after, 0, 0) if axis == 3 else (0, 0, before, after))
    return y
