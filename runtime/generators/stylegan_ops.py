"""The StyleGAN building blocks in plain torch: bias + activation, FIR resampling,
filtered leaky ReLU.

These compute what NVlabs' reference ops compute (upfirdn2d: upsample by zero
insertion, pad, convolve with a FIR filter, downsample by dropping samples), but
never materialise the zero-inserted or discarded samples. Upsampling by N is
polyphase: the filter splits into N sub-filters, each a depthwise convolution of
the low-resolution input, and their outputs interleave (pixel shuffle).
Downsampling is a strided depthwise convolution. Every filter is the same for all
channels, so each pass is one grouped convolution (groups = channels): no custom
CUDA, and on the CPU about ten times faster than one-channel convolutions.

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
    # Whether x is a tensor made here, safe to change in place. Never while autograd
    # records (latent steering): leaky_relu_ saves its output for the backward pass,
    # and the in-place scale after it would overwrite that.
    fresh = False
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
        fresh = not x.requires_grad
    if slope != 1.0:
        x = F.leaky_relu_(x, slope) if fresh else F.leaky_relu(x, slope)
        fresh = not x.requires_grad
    if gain != 1.0:
        x = x.mul_(gain) if fresh else x * gain
        fresh = not x.requires_grad
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if fresh else x.clamp(-clamp, clamp)
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
    px0, px1, py0, py1 = padding
    if f is None:
        return _identity_filter(x, up, down, padding, gain)
    if f.ndim == 1:
        taps = f * (gain**0.5)
        x = _fir_axis(x, taps, up, down, px0, px1, axis=3)
        return _fir_axis(x, taps, up, down, py0, py1, axis=2)
    return _fir_2d(x, f * gain, up, down, padding)


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
    # Leaky ReLU commutes with a positive gain, so the gain rides on the filter.
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=float(up * up) * gain)
    x = bias_act(x, slope=slope, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def _fir_axis(
    x: torch.Tensor, taps: torch.Tensor, up: int, down: int, pad0: int, pad1: int, axis: int
) -> torch.Tensor:
    """One separable pass along `axis` (2 = y, 3 = x) of an (N, C, H, W) tensor."""
    c, k, n = x.shape[1], taps.shape[0], x.shape[axis]
    along_x = axis == 3
    if up > 1:
        # Full convolution of the zero-stuffed signal, (n - 1) * up + k samples,
        # then the window the padding asks for.
        full = _polyphase_axis(x, taps, up, along_x)
        y = _crop_or_pad(full, axis, k - 1 - pad0, n * up + pad1)
        if down > 1:
            y = y[:, :, :, ::down] if along_x else y[:, :, ::down, :]
        return y
    if pad0 or pad1:
        x = F.pad(x, (pad0, pad1, 0, 0) if along_x else (0, 0, pad0, pad1))
    shape = (c, 1, 1, k) if along_x else (c, 1, k, 1)
    weight = taps.flip(0).to(x.dtype).reshape(1, 1, -1).expand(shape[0], 1, k).reshape(shape)
    stride = (1, down) if along_x else (down, 1)
    return F.conv2d(x, weight, stride=stride, groups=c)


def _polyphase_axis(x: torch.Tensor, taps: torch.Tensor, up: int, along_x: bool) -> torch.Tensor:
    """Zero-stuff by `up` and convolve with `taps` (full output) along one axis."""
    n, c, h, w = x.shape
    k = taps.shape[0]
    t = -(-k // up)  # taps per phase
    padded = F.pad(taps, (0, t * up - k))
    phases = padded.reshape(t, up).t().flip(1)  # (up, t): phase r holds taps r, r+up, ...
    weight = phases.to(x.dtype).repeat(c, 1)  # (C*up, t)
    if along_x:
        y = F.conv2d(F.pad(x, (t - 1, t - 1, 0, 0)), weight.reshape(c * up, 1, 1, t), groups=c)
        length = y.shape[3]
        y = y.reshape(n, c, up, h, length).permute(0, 1, 3, 4, 2)  # (N, C, H, L, up)
        return y.reshape(n, c, h, length * up)
    y = F.conv2d(F.pad(x, (0, 0, t - 1, t - 1)), weight.reshape(c * up, 1, t, 1), groups=c)
    length = y.shape[2]
    y = y.reshape(n, c, up, length, w).permute(0, 1, 3, 2, 4)  # (N, C, L, up, W)
    return y.reshape(n, c, length * up, w)


def _fir_2d(
    x: torch.Tensor, f: torch.Tensor, up: int, down: int, padding: tuple[int, int, int, int]
) -> torch.Tensor:
    """A non-separable pass over both axes of an (N, C, H, W) tensor."""
    px0, px1, py0, py1 = padding
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = f.shape
    if up > 1:
        th, tw = -(-kh // up), -(-kw // up)
        padded = F.pad(f, (0, tw * up - kw, 0, th * up - kh))
        # Phase (i, j) holds taps (a * up + i, b * up + j); pixel_shuffle puts its
        # output at rows * up + i, columns * up + j.
        phases = padded.reshape(th, up, tw, up).permute(1, 3, 0, 2).flip((2, 3))
        weight = phases.reshape(up * up, 1, th, tw).to(x.dtype).repeat(c, 1, 1, 1)
        y = F.conv2d(F.pad(x, (tw - 1, tw - 1, th - 1, th - 1)), weight, groups=c)
        full = F.pixel_shuffle(y, up)  # (N, C, (H + th - 1) * up, (W + tw - 1) * up)
        y = _crop_or_pad(full, 3, kw - 1 - px0, w * up + px1)
        y = _crop_or_pad(y, 2, kh - 1 - py0, h * up + py1)
        if down > 1:
            y = y[:, :, ::down, ::down]
        return y
    if px0 or px1 or py0 or py1:
        x = F.pad(x, (px0, px1, py0, py1))
    weight = f.flip((0, 1)).to(x.dtype)[None, None].expand(c, 1, kh, kw)
    return F.conv2d(x, weight, stride=down, groups=c)


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
