"""Small stateful filters on signals, shared by the mapping engine and inputs.

Each filter takes (value, dt_s) per step and keeps its own state. Values may be
floats or numpy arrays (filtered element by element, e.g. 21 hand landmarks at
once); torch-free, so inputs can use them in their own threads.

A filter's state is always finite: a sample that is not (NaN or +-inf anywhere in
it) is not taken in, the previous output is returned instead (the sample itself
when there is none yet), and a state that overflows on huge finite samples starts
again from the sample. A show running for months never keeps a poisoned state.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

Value = TypeVar("Value", float, np.ndarray)


def is_finite(value: float | np.ndarray) -> bool:
    """True when `value` (a float, or every element of an array) is finite. Thread: any."""
    if isinstance(value, np.ndarray):
        return bool(np.isfinite(value).all())
    return math.isfinite(value)


def smoothing_alpha(cutoff_hz: Value, dt_s: float) -> Value:
    """The exponential-smoothing weight of a one-pole low-pass at `cutoff_hz`.

    Args:
        cutoff_hz: the cutoff frequency (a float, or an array for per-element cutoffs).
        dt_s: the time step; above 0.
    Returns:
        alpha in (0, 1): the share of the new sample in the next output.
    Thread: any.
    """
    tau_s = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau_s / dt_s)


class OneEuro:
    """The one-euro filter (Casiez, Roussel, Vogel, CHI 2012): little lag when the
    input moves fast, little jitter when it is still.

    Per step: the speed `dx = (x - x_prev) / dt` is low-passed at `d_cutoff_hz`,
    the cutoff becomes `min_cutoff_hz + beta * |dx|`, and the output moves towards
    `x` by `smoothing_alpha(cutoff, dt)`. The first sample passes through.

    Args:
        min_cutoff_hz: cutoff when still (lower: smoother, more lag).
        beta: how much speed (units per second) raises the cutoff (higher: less lag
            when moving). It has the units of 1/(value unit): a value in 0..1 moving
            one full range per second with beta 10 gets a cutoff 10 Hz above the
            minimum.
        d_cutoff_hz: cutoff for the speed estimate.
    Thread: one thread per instance.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.0, d_cutoff_hz: float = 1.0):
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self._x: Value | None = None
        self._dx: Value = 0.0

    def reset(self) -> None:
        """Forget the state: the next sample passes through. Thread: owner."""
        self._x = None
        self._dx = 0.0

    def __call__(self, x: Value, dt_s: float) -> Value:
        """Filter one sample taken `dt_s` after the previous one.

        Args:
            x: the sample (a float or an array of one fixed shape).
            dt_s: seconds since the previous sample; at 0 or below the previous
                output is returned unchanged.
        Returns:
            The filtered value, a new object (arrays are never shared with the state);
            the previous output when `x` is not finite (`x` itself before the first
            finite sample).
        Thread: owner.
        """
        if not is_finite(x):
            return _copy(x) if self._x is None else _copy(self._x)
        if self._x is None:
            self._start(x)
            return _copy(self._x)
        if not dt_s > 0.0:  # a NaN step too
            return _copy(self._x)
        with np.errstate(over="ignore", invalid="ignore"):
            dx = (x - self._x) / dt_s
            self._dx = self._dx + smoothing_alpha(self.d_cutoff_hz, dt_s) * (dx - self._dx)
            cutoff_hz = self.min_cutoff_hz + self.beta * abs(self._dx)
            self._x = self._x + smoothing_alpha(cutoff_hz, dt_s) * (x - self._x)
        if not (is_finite(self._x) and is_finite(self._dx)):
            self._start(x)  # overflowed on huge samples: start again from this one
        return _copy(self._x)

    def _start(self, x: Value) -> None:
        self._x = np.array(x, dtype=np.float64) if isinstance(x, np.ndarray) else float(x)
        self._dx = 0.0


def _copy(value: Value) -> Value:
    return value.copy() if isinstance(value, np.ndarray) else value


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
        """Follow one sample.

        Args:
            x: the sample.
            dt_s: seconds since the previous one.
        Returns:
            The envelope; unchanged when `x` is not finite.
        Thread: owner.
        """
        if not math.isfinite(x):
            return self._y
        tau_s = self.attack_s if x > self._y else self.release_s
        self._y += (x - self._y) * (1.0 - math.exp(-dt_s / tau_s)) if tau_s > 0 else x - self._y
        if not math.isfinite(self._y):
            self._y = x  # overflowed on huge samples: start again from this one
        return self._y


class Smooth:
    """Exponential smoothing with time constant `tau_s` (63% of a step in tau_s).

    Thread: one thread per instance.
    """

    def __init__(self, tau_s: float):
        self.tau_s = tau_s
        self._y: float | None = None

    def __call__(self, x: float, dt_s: float) -> float:
        """Smooth one sample.

        Args:
            x: the sample.
            dt_s: seconds since the previous one.
        Returns:
            The smoothed value: the previous one when `x` is not finite (`x` itself
            before the first finite sample).
        Thread: owner.
        """
        if not math.isfinite(x):
            return x if self._y is None else self._y
        if self._y is None:
            self._y = x
        else:
            self._y += (x - self._y) * (1.0 - math.exp(-dt_s / self.tau_s))
            if not math.isfinite(self._y):
                self._y = x  # overflowed on huge samples: start again from this one
        return self._y
