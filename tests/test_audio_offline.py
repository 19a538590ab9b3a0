"""The offline analysis (librosa) on a 120 BPM pulse train with known answers, the
FrameFeed an offline render steps, and `run_show.py analyze`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from runtime import PROJECT_ROOT
from runtime.cli import main
from runtime.inputs.audio_features import LEVELS, SIGNALS
from runtime.inputs.audio_offline import OfflineAudioFeed, analyze_file, beat_phase
from runtime.signals import SignalBus
from tests.audio_signals import SR, pulse_train


@pytest.fixture(scope="module")
def pulses(tmp_path_factory) -> tuple[Path, np.ndarray]:
    y, times = pulse_train(seconds=20.0)
    path = tmp_path_factory.mktemp("pulses") / "pulses.wav"
    soundfile.write(path, y, SR)
    return path, times


@pytest.fixture(scope="module")
def analysis(pulses):
    return analyze_file(pulses[0])


def test_pulse_train_offline_tempo_onsets_and_beats(analysis, pulses):
    _, clicks = pulses
    frame_s = 512 / SR
    assert analysis.bpm == pytest.approx(120.0, rel=0.01)
    assert analysis.duration_s == pytest.approx(20.0)
    assert analysis.onset_times_s.size == clicks.size
    assert np.all(np.abs(analysis.onset_times_s - clicks) <= 1.5 * frame_s)
    beats = analysis.beat_times_s
    assert beats.size >= clicks.size - 2
    nearest = np.min(np.abs(beats[:, None] - clicks[None, :]), axis=1)
    assert np.all(nearest <= 2 * frame_s)


def test_offline_curves_cover_every_continuous_signal(analysis):
    triggers = {"audio:onset", "audio:beat"}
    assert set(analysis.curves) == set(SIGNALS) - triggers
    for name, curve in analysis.curves.items():
        assert curve.shape == (analysis.frames,), name
        assert np.all(np.isfinite(curve)), name
    assert analysis.frames == 1 + int(20.0 * SR) // 512


def test_beat_phase_is_a_ramp_between_beats():
    phase = beat_phase(np.array([10, 20, 40]), 50)
    assert phase[10] == 0.0
    assert phase[15] == pytest.approx(0.5)
    assert phase[30] == pytest.approx(0.5)  # the second interval is 20 frames
    assert phase[5] == pytest.approx(0.5)  # extrapolated before the first beat
    assert phase[45] == pytest.approx(0.25)  # and after the last


def test_feed_fires_each_beat_and_onset_once_at_30_fps(analysis):
    feed = OfflineAudioFeed(analysis)
    bus = SignalBus()
    beats = onsets = 0
    for frame in range(int(20.0 * 30)):
        feed.update(bus, frame / 30)
        snap = bus.snapshot()
        beats += sum(snap.events_for("audio:beat"))
        onsets += sum(snap.events_for("audio:onset"))
    assert beats == analysis.beat_times_s.size
    assert onsets == analysis.onset_times_s.size  # clicks are 0.5 s apart: one per frame


def test_feed_writes_the_frame_nearest_its_time_and_silence_after_the_end(analysis):
    feed = OfflineAudioFeed(analysis)
    bus = SignalBus()
    j = 400
    feed.update(bus, j * 512 / SR)
    for name in ("audio:rms", "audio:flux", "audio:chroma/3", "audio:beat_phase"):
        assert bus.get(name) == pytest.approx(float(analysis.curves[name][j]))
    feed.update(bus, 25.0)
    for name in LEVELS:
        assert bus.get(name) == 0.0
    assert bus.get("audio:bpm") == pytest.approx(analysis.bpm)


def test_feed_starts_over_when_time_goes_back(analysis):
    feed = OfflineAudioFeed(analysis)
    bus = SignalBus()
    first = analysis.beat_times_s[0]
    feed.update(bus, first + 0.01)
    assert bus.get("audio:beat") == 1.0
    feed.update(bus, first + 0.02)
    assert bus.get("audio:beat") == 0.0
    feed.update(bus, first + 0.01)  # a second render pass from the start
    assert bus.get("audio:beat") == 1.0


def test_analyze_command_prints_the_summary_and_plots(pulses, tmp_path, capsys):
    png = tmp_path / "features.png"
    assert main(["analyze", str(pulses[0]), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "duration  20.00 s (48000 Hz, block 512 = 10.7 ms" in out
    assert "tempo     120." in out or "tempo     119." in out
    assert "beats     " in out
    assert f"onsets    {pulses[1].size}" in out
    with Image.open(png) as image:
        assert image.size[0] > 1000
        assert np.unique(np.asarray(image.convert("L"))).size > 20  # drawn, not blank


def test_analyze_command_reports_a_missing_file(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.flac")]) == 1
    assert "nope.flac: file not found" in capsys.readouterr().err


def test_analyze_command_refuses_an_unsupported_block(pulses, capsys):
    assert main(["analyze", str(pulses[0]), "--block", "64"]) == 1
    assert "--block: expected a block of 256, 512, 1024, 2048 samples" in capsys.readouterr().err


def test_analyze_command_reports_a_file_that_is_not_audio(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main(["analyze", str(bad)]) == 1
    assert "bad.wav: cannot read audio" in capsys.readouterr().err


def test_audio_modules_import_neither_torch_nor_gl():
    code = (
        "import sys, runtime.inputs.audio, runtime.inputs.audio_offline, "
        "runtime.inputs.audio_features\n"
        "bad = [m for m in ('torch', 'moderngl', 'glfw') if m in sys.modules]\n"
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    )
    assert done.stdout.strip() == "[]"
