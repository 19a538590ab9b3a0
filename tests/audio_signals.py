"""Synthetic audio with known answers for the audio tests."""

from __future__ import annotations

import numpy as np

SR = 48000
BLOCK = 512


def pulse_train(
    *, bpm: float = 120.0, seconds: float = 20.0, sr: int = SR, start_s: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks (3 ms decaying noise bursts) on every beat. Returns (samples, click times)."""
    rng = np.random.default_rng(0)
    n = int(0.003 * sr)
    click = 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.0008 * sr))
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    times = np.arange(start_s, seconds - 0.05, 60.0 / bpm)
    for t in times:
        i = round(t * sr)
        y[i : i + n] += click.astype(np.float32)
    return y, times


def sine(freq_hz: float, *, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
