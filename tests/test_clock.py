"""The tempo clock: fixed, tap, MIDI clock, audio beat and Link sources."""

from __future__ import annotations

import math
import random
import sys
import tomllib
from pathlib import Path

import mido
import pytest

from runtime.config import Table
from runtime.errors import ConfigError
from runtime.inputs import clock as clock_mod
from runtime.inputs.clock import Clock
from runtime.inputs.midi import MidiDecoder, MidiFilePlayer
from runtime.signals import SignalBus
from tests.test_midi import need_openmsx


class FrameTime:
    """The live time source, stepped by the test instead of the wall clock."""

    def __init__(self, t_s: float = 1000.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


def run_frames(clock: Clock, bus: SignalBus, *, seconds: float, fps: float, t0_s: float = 0.0):
    """Step the clock; returns per frame (t, values) and the tick counts."""
    frames = []
    ticks: dict[str, int] = {}
    for i in range(round(seconds * fps)):
        t = t0_s + i / fps
        clock.update(bus, t)
        snap = bus.snapshot()
        frames.append((t, snap.values))
        for e in snap.events:
            if e.name.startswith("clock:tick/") and e.value == 1.0:
                ticks[e.name] = ticks.get(e.name, 0) + 1
    return frames, ticks


def test_fixed_clock_is_a_pure_function_of_frame_time():
    bus = SignalBus()
    clock = Clock(source="fixed", bpm=90.0, ticks=(0.5, 1.0, 4.0), offline=True)
    frames, ticks = run_frames(clock, bus, seconds=10.0, fps=60)
    t, values = frames[-1]
    assert values["clock:beat"] == pytest.approx(t * 1.5)
    assert values["clock:bar"] == pytest.approx(t * 1.5 / 4)
    assert values["clock:phase"] == pytest.approx((t * 1.5) % 1)
    assert values["clock:bpm"] == 90.0
    # 10 s at 90 bpm is 15 beats: ticks at beats 0..14, eighths at 0..14.5, bars 0, 4, 8, 12.
    assert ticks == {"clock:tick/1": 15, "clock:tick/0.5": 30, "clock:tick/4": 4}
    again = Clock(source="fixed", bpm=90.0, offline=True)
    again.update(bus, 7.3)
    assert bus.get("clock:beat") == pytest.approx(7.3 * 1.5)


def test_ticks_fire_on_the_frame_after_each_beat():
    bus = SignalBus()
    clock = Clock(source="fixed", bpm=120.0, ticks=(1.0,), offline=True)
    fire_times = []
    for i in range(4 * 25):
        clock.update(bus, i / 25)
        if bus.snapshot().events_for("clock:tick/1") == [1.0, 0.0]:
            fire_times.append(i / 25)
    # Beats at 0, 0.5, 1.0 ... s; frames every 0.04 s: the first frame at or past each.
    assert fire_times == pytest.approx([math.ceil(k * 0.5 / 0.04 - 1e-9) * 0.04 for k in range(8)])


def tap_at(bus: SignalBus, clock: Clock, now: FrameTime, times_s, signal="osc:/tap"):
    """Press and release `signal` at each time (OSC 1 then 0), stepping frames at 60 fps."""
    for t in times_s:
        now.t_s = t
        bus.set(signal, 1.0, t)
        clock.update(bus, t)
        now.t_s = t + 0.05
        bus.set(signal, 0.0, t + 0.05)
        clock.update(bus, t + 0.05)


def test_tap_tempo_within_tolerance_and_on_the_beat():
    rng = random.Random(3)
    now = FrameTime()
    bus = SignalBus()
    clock = Clock(source="tap", bpm=120.0, tap="osc:/tap", now=now)
    clock.update(bus, 0.0)
    period_s = 60 / 128
    # A human tapping 128 bpm with +-10 ms of scatter, eight taps.
    taps = [1001.0 + i * period_s + rng.uniform(-0.01, 0.01) for i in range(8)]
    tap_at(bus, clock, now, taps)
    assert clock.bpm == pytest.approx(128.0, rel=0.01)
    # The first tap was a downbeat, each later one the next beat; the last frame
    # was 50 ms after the last tap.
    assert bus.get("clock:beat") == clock.beat
    assert clock.beat % 4 == pytest.approx(3.0 + 0.05 * 128 / 60, abs=0.03)
    # Half a beat later the phase is 0.5.
    now.t_s = taps[-1] + period_s / 2
    clock.update(bus, 0.0)
    assert bus.get("clock:phase") == pytest.approx(0.5, abs=0.03)


def test_tap_from_a_midi_note_through_the_decoder():
    now = FrameTime()
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    clock = Clock(source="tap", bpm=120.0, tap="midi:note/60/on", now=now)
    period_s = 60 / 95
    for i in range(6):
        t = 1001.0 + i * period_s
        decoder.feed(mido.Message("note_on", note=60, velocity=30), t_s=t)
        decoder.feed(mido.Message("note_off", note=60), t_s=t + 0.02)
        now.t_s = t + 0.03  # press and release both before the next frame
        clock.update(bus, 0.0)
    assert clock.bpm == pytest.approx(95.0, rel=0.001)


def test_a_pause_starts_a_new_tap_count():
    now = FrameTime()
    bus = SignalBus()
    clock = Clock(source="tap", bpm=120.0, tap="osc:/tap", tap_reset_s=2.0, now=now)
    tap_at(bus, clock, now, [1001.0 + i * 0.5 for i in range(4)])
    assert clock.bpm == pytest.approx(120.0)
    tap_at(bus, clock, now, [1010.0 + i * 0.6 for i in range(4)])
    assert clock.bpm == pytest.approx(100.0)
    assert clock.beat % 4 == pytest.approx(3.0 + 0.05 * 100 / 60)


def test_midi_clock_drives_the_beat():
    now = FrameTime()
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    clock = Clock(source="midi", bpm=120.0, now=now)
    clock.update(bus, 0.0)
    assert "no MIDI clock yet" in clock.status()
    decoder.feed(mido.Message("start"), t_s=1000.0)
    tick_s = 60 / 140 / 24
    seen_phases = []
    n_ticks = 24 * 8
    for i in range(n_ticks):
        t = 1000.01 + i * tick_s
        decoder.feed(mido.Message("clock"), t_s=t)
        if i % 3 == 2:  # a frame every third tick (a 60 fps loop at 140 bpm)
            now.t_s = t + tick_s / 2
            clock.update(bus, 0.0)
            seen_phases.append(bus.get("clock:phase"))
    assert bus.get("clock:bpm") == pytest.approx(140.0, rel=0.002)
    last_tick_beat = (n_ticks - 1) / 24
    assert bus.get("clock:beat") == pytest.approx(last_tick_beat + 0.5 / 24)
    # MIDI Start again: the clock follows back to beat 0 (a jump, not held).
    decoder.feed(mido.Message("start"), t_s=now.t_s + 0.01)
    decoder.feed(mido.Message("clock"), t_s=now.t_s + 0.02)
    now.t_s += 0.021
    clock.update(bus, 0.0)
    assert bus.get("clock:beat") < 0.05
    assert bus.snapshot().events_for("clock:tick/1")[-2:] == [1.0, 0.0]


def test_clock_follows_a_replayed_midi_file_offline():
    path = need_openmsx()
    bus = SignalBus()
    player = MidiFilePlayer(bus, path)
    clock = Clock(source="midi", offline=True)
    for frame in range(0, 300):
        t = frame / 30
        player.update(bus, t)
        clock.update(bus, t)
    bpm = 60e6 / 566037
    assert bus.get("clock:bpm") == pytest.approx(bpm)
    assert bus.get("clock:beat") == pytest.approx(299 / 30 * bpm / 60)


def test_audio_beat_tracker_sets_tempo_and_pulls_the_phase():
    now = FrameTime()
    bus = SignalBus()
    clock = Clock(source="audio", bpm=120.0, now=now)
    bus.set("audio:bpm", 100.0, now.t_s)
    clock.update(bus, 0.0)
    period_s = 0.6
    # The tracker's beats fall a quarter beat after the clock's: each pulls half way.
    first = 1000.0 + 0.25 * period_s
    errors = []
    for i in range(8):
        t = first + i * period_s
        bus.set("audio:beat", 1.0, t)
        bus.set("audio:beat", 0.0, t)
        now.t_s = t + 0.005
        clock.update(bus, 0.0)
        beat = clock.beat - 0.005 / period_s
        errors.append(abs(beat - round(beat)))
    assert clock.bpm == 100.0
    assert errors[0] == pytest.approx(0.125, abs=0.01)
    assert errors[-1] < 0.01


def test_link_when_aalink_is_installed():
    pytest.importorskip("aalink", reason="aalink (Ableton Link) not installed")
    bus = SignalBus()
    clock = Clock(source="link", bpm=133.0)
    try:
        clock.update(bus, 0.0)
        first = bus.get("clock:beat")
        import time

        time.sleep(0.2)
        clock.update(bus, 0.2)
        assert bus.get("clock:bpm") == pytest.approx(133.0)
        assert bus.get("clock:beat") - first == pytest.approx(0.2 * 133 / 60, abs=0.05)
        assert "Link" in clock.status()
    finally:
        clock.stop()


def test_link_without_aalink_says_so_and_plays_fixed(monkeypatch):
    monkeypatch.setitem(sys.modules, "aalink", None)  # an import of it now fails
    now = FrameTime()
    bus = SignalBus()
    clock = Clock(source="link", bpm=100.0, now=now)
    clock.update(bus, 0.0)
    now.t_s += 0.6
    clock.update(bus, 0.6)
    assert "aalink is not installed" in clock.status()
    assert bus.get("clock:beat") == pytest.approx(1.0)
    assert not clock_mod.link_available()


def table(text: str, tmp_path: Path) -> Table:
    path = tmp_path / "show.toml"
    path.write_text(text)
    data = tomllib.loads(text)["inputs"]["clock"]
    return Table(data, file=path, text=text, name="inputs.clock", header="inputs.clock")


def test_build_reads_its_table_strictly(tmp_path):
    clock = clock_mod.build(
        table(
            '[inputs.clock]\nsource = "tap"\ntap = "midi:note/60"\nbeats_per_bar = 3\n', tmp_path
        ),
        SignalBus(),
        folder=tmp_path,
        offline=False,
    )
    assert clock.source == "tap" and clock.ticks == (1.0, 3.0)
    cases = {
        '[inputs.clock]\nsource = "tapp"\n': "expected one of fixed, tap",
        '[inputs.clock]\nsource = "tap"\n': "needs 'tap'",
        '[inputs.clock]\ntap = "osc:/tap"\n': "read only with source = 'tap'",
        "[inputs.clock]\nbpm = 1000\n": r"show.toml:2: \[inputs.clock\] 'bpm': expected 20..400",
        "[inputs.clock]\nticks = [0]\n": "positive beat counts",
        "[inputs.clock]\nbmp = 120\n": "did you mean 'bpm'",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            clock_mod.build(table(text, tmp_path), SignalBus(), folder=tmp_path, offline=False)


def test_offline_tap_plays_the_fixed_tempo(tmp_path):
    clock = clock_mod.build(
        table('[inputs.clock]\nsource = "tap"\ntap = "osc:/tap"\nbpm = 60\n', tmp_path),
        SignalBus(),
        folder=tmp_path,
        offline=True,
    )
    bus = SignalBus()
    clock.update(bus, 12.5)
    assert bus.get("clock:beat") == 12.5
