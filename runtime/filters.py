"""Small stateful filters on scalar signals, shared by the mapping engine and inputs.

Each filter takes (value, dt_s) per step and keeps its own state; none allocates per
step, so they are safe in input threads and in the frame loop.
"""

from __future__ import annotations

import math


def smoothing_alpha(cutoff_hz: float, dt_s: float) -> float:
    """The exponential-smoothing weight of a one-pole low-pass at `cutoff_hz`.

    Thread: any.
    """
    tau_s = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau_s / dt_s)


class OneEuro:
    """The one-euro filter (Casiez, Roussel, Vogel 2012): little lag when the input
    moves fast, little jitter when it is still.

    Args:
        min_cutoff_hz: cutoff when still (lower: smoother).
        beta: how much speed raises the cutoff (higher: less lag).
        d_cutoff_hz: cutoff for the speed estimate.
    Thread: one thread per instance.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.0, d_cutoff_hz: float = 1.0):
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self._x: float | None = None
        self._dx = 0.0

    def __call__(self, x: float, dt_s: float) -> float:
        """Filter one sample taken `dt_s` after the previous one. Thread: owner."""
        if self._x is None or dt_s <= 0.0:
            if self._x is None:
                self._x = x
            return self._x
        dx = (x - self._x) / dt_s
        self._dx += smoothing_alpha(self.d_cutoff_hz, dt_s) * (dx - self._dx)
        cutoff_hz = self.min_cutoff_hz + self.beta * abs(self._dx)
        self._x += smoothing_alpha(cutoff_hz, dt_s) * (x - self._x)
        return self._x


class Envelope:
    """An attack/release follower: rises towards the input with time constant
    `attack_s`, falls with `release_s` (exponential, like an analogue follower).

    Thread: one thread per instance.
    """

    def __init__(self, attack_s: float, release_s: float):
        self.attack_s = attack_s
        self.release_s = release_s
        self._y = 0.0

    def __call__(self, x: float, dt_s: float) -> float:
        """Follow one sample. Thread: owner."""
        tau_s = self.attack_s if x > self._y else self.release_s
        self._y += (x - self._y) * (1.0 - math.exp(-dt_s / tau_s)) if tau_s > 0 else x - self._y
        return self._y


class Smooth:
    """Exponential smoothing with time constant `tau_s` (63% of a step in tau_s).

    Thread: one thread per instance.
    """

    def __init__(self, tau_s: float):
        self.tau_s = tau_s
        self._y: float | None = None

    def __call__(self, x: float, dt_s: float) -> float:
        """Smooth one sample. Thread: owner."""
        if self._y is None:
            self._y = x
        else:
            self._y += (x - self._y) * (1.0 - math.exp(-dt_s / self.tau_s))
        return self._y
