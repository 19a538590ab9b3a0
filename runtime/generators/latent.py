"""Latent-space paths shared by every generator: keyframe walks and interpolation.

A walk position is `phase + position * K` keyframes around a closed loop of K
keyframes: `phase` is the integral of `latent.speed` (keyframes per second), and
`position` (0..1) places the performer anywhere on the loop.
"""

from __future__ import annotations

import math

import torch

from runtime.generators.base import Control


def walk_controls(
    *, speed: float = 0.1, glide_s: float = 0.4, keyframe: str = "keyframe"
) -> tuple[Control, Control, Control]:
    """The keyframe-walk controls every generator shares: `latent.position`,
    `latent.speed` (integrated into `latent.phase`) and `latent.hop` (steps it).

    Args:
        speed: the default walk speed, keyframes per second.
        glide_s: how long a hop glides.
        keyframe: what a keyframe is called in the docs ("noise keyframe").
    Returns:
        The three controls.
    Thread: any.
    """
    return (
        Control(
            "latent.position",
            0.0,
            0.0,
            1.0,
            f"place on the {keyframe} loop, as a fraction of the loop",
        ),
        Control(
            "latent.speed",
            speed,
            -4.0,
            4.0,
            f"walk speed, {keyframe}s per second",
            integrates="latent.phase",
        ),
        Control(
            "latent.hop",
            0.0,
            0.0,
            1.0,
            f"glide to the next {keyframe} (beat-synced hops)",
            steps="latent.phase",
            glide_s=glide_s,
        ),
    )


def loop_coordinate(phase: float, position: float, count: int) -> tuple[int, float]:
    """Where a walk stands on a loop of `count` keyframes.

    Args:
        phase: integrated walk, in keyframes.
        position: offset as a fraction of the whole loop (0..1).
        count: number of keyframes (>= 1).
    Returns:
        (i, frac): the keyframe just passed and the fraction towards the next.
    Thread: any.
    """
    u = (phase + position * count) % count
    i = math.floor(u)
    return i % count, u - math.floor(u)


def catmull_rom(keys: torch.Tensor, phase: float, position: float) -> torch.Tensor:
    """A smooth closed curve through keyframes (continuous velocity at each key).

    Args:
        keys: (K, D) keyframe vectors.
        phase, position: see `loop_coordinate`.
    Returns:
        (D,) the point on the curve.
    Thread: any.
    """
    count = keys.shape[0]
    i, f = loop_coordinate(phase, position, count)
    p0, p1, p2, p3 = (keys[(i + k) % count] for k in (-1, 0, 1, 2))  # (D,) each
    f2, f3 = f * f, f * f * f
    return 0.5 * (
        2 * p1
        + (p2 - p0) * f
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f2
        + (3 * p1 - p0 - 3 * p2 + p3) * f3
    )


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between two vectors (for Gaussian latents).

    Args:
        a, b: (..., D) vectors.
        t: 0 gives a, 1 gives b.
    Returns:
        (..., D), with the norm interpolated linearly.
    Thread: any.
    """
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-8), b / nb.clamp_min(1e-8)
    dot = (ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return direction * (na + (nb - na) * t)
