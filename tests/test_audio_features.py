"""The block analysis on synthetic signals with known answers: a 120 BPM pulse
train, sines, silence, and one signal at two levels."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.inputs.audio_features import (
    SIGNALS,
    AnalysisSettings,
    AutoRange,
    BlockAnalyzer,
    BlockFeatures,
)
from tests.audio_signals import BLOCK, SR, pulse_train, sine


def run_blocks(y: np.ndarray, settings: AnalysisSettings | None = None) -> list[BlockFeatures]:
    settings = settings or AnalysisSettings(sample_rate_hz=SR, block=BLOCK)
    analyzer = BlockAnalyzer(settings)
    n = y.size // settings.block
    return [analyzer.step(y[k * settings.block : (k + 1) * settings.block]) for k in range(n)]


@pytest.fixture(scope="module")
def pulses() -> tuple[np.ndarray, list[BlockFeatures]]:
    y, times = pulse_train()
    return times, run_blocks(y)


def test_every_signal_is_written_each_block(pulses):
    _, feats = pulses
    assert set(feats[0].values) == set(SIGNALS)
    levels = [
        v for f in feats for k, v in f.values.items() if k not in ("audio:bpm", "audio:centroid_hz")
    ]
    assert min(levels) >= 0.0
    assert max(levels) <= 1.0 + 1e-6


def test_pulse_train_has_one_onset_per_click_within_one_block(pulses):
    times, feats = pulses
    onset_blocks = [k for k, f in enumerate(feats) if f.values["audio:onset"]]
    click_blocks = [int(t * SR) // BLOCK for t in times]
    assert len(onset_blocks) == len(click_blocks)
    for click, onset in zip(click_blocks, onset_blocks):
        assert click <= onset <= click + 1


def test_onset_envelope_jumps_at_onsets_and_decays(pulses):
    _, feats = pulses
    env = np.array([f.values["audio:onset_env"] for f in feats])
    onset_blocks = [k for k, f in enumerate(feats) if f.values["audio:onset"]]
    k = onset_blocks[10]
    assert env[k] > 0.5
    # 0.25 s later (onset_decay_s) it has fallen by about 1/e.
    later = k + round(0.25 * SR / BLOCK)
    assert env[later] == pytest.approx(env[k] / np.e, rel=0.05)


def test_pulse_train_tempo_is_120_bpm(pulses):
    _, feats = pulses
    bpm = np.array([f.values["audio:bpm"] for f in feats])
    settled = bpm[int(6.0 * SR / BLOCK) :]
    assert np.all(np.abs(settled - 120.0) < 1.2), (settled.min(), settled.max())


def test_pulse_train_beats_fall_on_the_clicks(pulses):
    times, feats = pulses
    beat_blocks = np.array([k for k, f in enumerate(feats) if f.values["audio:beat"]])
    beats_s = beat_blocks * BLOCK / SR
    settled = beats_s[beats_s > 6.0]
    assert settled.size >= 25
    # Every beat after the tracker settled sits on a click (within 2 blocks)...
    nearest = np.min(np.abs(settled[:, None] - times[None, :]), axis=1)
    assert np.all(nearest <= 2 * BLOCK / SR), nearest.max()
    # ... and none is skipped or doubled.
    assert np.all(np.abs(np.diff(settled) - 0.5) <= 2 * BLOCK / SR)


def test_beat_phase_rises_from_0_at_the_beat_to_1(pulses):
    _, feats = pulses
    phase = np.array([f.values["audio:beat_phase"] for f in feats])
    beat_blocks = [k for k, f in enumerate(feats) if f.values["audio:beat"]]
    for k in beat_blocks[-10:]:
        assert phase[k] < 0.05
        assert phase[k - 1] > 0.9
        mid = k + round(0.25 * SR / BLOCK)  # half a beat later
        assert phase[mid] == pytest.approx(0.5, abs=0.05)


def test_silence_reads_zero_and_has_no_events():
    feats = run_blocks(np.zeros(3 * SR, dtype=np.float32))
    for f in feats:
        for name in ("audio:rms", "audio:band/low", "audio:flux", "audio:onset", "audio:beat"):
            assert f.values[name] == 0.0
        assert f.values["audio:bpm"] == 0.0


def test_band_weights_give_the_mean_square_of_a_sine():
    settings = AnalysisSettings(sample_rate_hz=SR, block=BLOCK)
    analyzer = BlockAnalyzer(settings)
    y = sine(1000.0, amplitude=0.5)
    frame = y[: settings.n_fft] * analyzer.banks.window
    power = np.abs(np.fft.rfft(frame)) ** 2
    low, mid, high = analyzer.banks.bands @ power
    assert mid == pytest.approx(0.5**2 / 2, rel=0.02)  # a sine's mean square is A^2 / 2
    assert low < 1e-3 * mid
    assert high < 1e-3 * mid


def test_low_tone_moves_the_low_band_and_a_high_tone_the_high_band():
    def raw_bands(freq_hz: float) -> np.ndarray:
        feats = run_blocks(np.concatenate([sine(freq_hz, amplitude=0.2), sine(freq_hz)]))
        # The gain of each band follows its own peak: a step up in level reads 1
        # only in the band the tone is in; the others stay near their floor.
        k = int(SR / BLOCK) + 2
        return np.array([feats[k].values[f"audio:band/{b}"] for b in ("low", "mid", "high")])

    assert raw_bands(100.0)[0] == pytest.approx(1.0, abs=0.05)
    assert raw_bands(5000.0)[2] == pytest.approx(1.0, abs=0.05)


def test_a440_is_pitch_class_a():
    feats = run_blocks(sine(440.0))
    chroma = np.array([feats[-1].values[f"audio:chroma/{i}"] for i in range(12)])
    assert int(np.argmax(chroma)) == 9
    assert chroma[9] == 1.0
    assert np.sort(chroma)[-2] < 0.5


def test_centroid_of_a_sine_is_its_frequency():
    feats = run_blocks(sine(1000.0))
    assert feats[-1].values["audio:centroid_hz"] == pytest.approx(1000.0, rel=0.05)


def test_levels_do_not_depend_on_the_input_level():
    # A tone in each band, each swelling at its own rate, over the pulse train: every
    # band stays above the -60 dBFS floor at both levels.
    y, _ = pulse_train(seconds=6.0)
    t = np.arange(y.size) / SR
    for freq_hz, rate_hz in ((100.0, 0.7), (1000.0, 1.1), (5000.0, 1.7)):
        swell = 0.2 * (1.0 + 0.5 * np.sin(2 * np.pi * rate_hz * t))
        y = y + (swell * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    loud = run_blocks(y)
    quiet = run_blocks(y * np.float32(10 ** (-30 / 20)))
    # Each gain starts at its floor and rises at most AGC_RISE_DB_PER_S, so the loud
    # one reaches the music later; once a louder swell has lifted both (by 2 s)
    # they are the same.
    settled = int(2.0 * SR / BLOCK)
    for name in ("audio:rms", "audio:band/low", "audio:band/mid", "audio:band/high"):
        a = np.array([f.values[name] for f in loud[settled:]])
        b = np.array([f.values[name] for f in quiet[settled:]])
        assert np.max(np.abs(a - b)) < 1e-3, name
        assert a.max() - a.min() > 0.3, name  # the curves move: not a flat 1


def test_auto_range_spans_what_it_has_seen_and_keeps_a_minimum_span():
    r = AutoRange(release_s=10.0, min_span=1.0, dt_s=0.01)
    assert r(10.0) == 0.5  # the first value is the middle of a min_span range
    r(12.0)
    assert r(10.0) == pytest.approx(0.0, abs=0.01)
    assert r(12.0) == pytest.approx(1.0, abs=0.01)
    assert r(11.0) == pytest.approx(0.5, abs=0.01)


def test_a_block_of_the_wrong_size_is_refused():
    analyzer = BlockAnalyzer(AnalysisSettings(sample_rate_hz=SR, block=BLOCK))
    with pytest.raises(ValueError, match=r"\(512,\)"):
        analyzer.step(np.zeros(256, dtype=np.float32))
