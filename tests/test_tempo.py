"""Tempo: LFOs locked to the clock's beat (`rate_beats`) and triggers synced to the
next beat or bar (`sync`), driven by real clock sources (MIDI clock messages through
the MIDI decoder, the fixed clock) and real MIDI note messages."""

from __future__ import annotations

import re
import time
from pathlib import Path

import mido
import pytest

from runtime.errors import ConfigError
from runtime.inputs.clock import Clock
from runtime.inputs.midi import MidiDecoder
from runtime.mapping import MappingEngine, Target
from runtime.mapping.sources import Lfo
from runtime.signals import SignalBus
from tests.test_clock import FrameTime

TARGETS = {
    "a": Target("a", 0.0, 0.0, 1.0),
    "b": Target("b", 0.0, 0.0, 1.0),
    "c": Target("c", 0.0, 0.0, 1.0),
    "d": Target("d", 0.0, 0.0, 1.0),
}


def engine(tmp_path: Path, text: str) -> MappingEngine:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return MappingEngine((path,), TARGETS)


def test_beat_locked_lfo_follows_a_midi_clock_tempo_change_without_a_jump(tmp_path):
    e = engine(
        tmp_path,
        """
[lfo.two]
shape = "saw"
rate_beats = 0.5   # one cycle every two beats

[[map]]
source = "lfo:two"
target = "a"
""",
    )
    now = FrameTime()
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    clock = Clock(source="midi", bpm=120.0, now=now)
    decoder.feed(mido.Message("start"), t_s=now.t_s)
    fps = 60.0
    # Four bars at 120 bpm, then four at 90: MIDI clock ticks, a frame every 1/60 s.
    ticks_s, t = [], now.t_s + 0.001
    for bpm in (120.0, 90.0):
        for _ in range(24 * 16):
            ticks_s.append(t)
            t += 60.0 / bpm / 24
    frame_t = now.t_s + 0.002
    values, beats, tick_frames = [], [], []
    i = 0
    while frame_t < ticks_s[-1]:
        while i < len(ticks_s) and ticks_s[i] <= frame_t:
            decoder.feed(mido.Message("clock"), t_s=ticks_s[i])
            i += 1
        now.t_s = frame_t
        clock.update(bus, frame_t)
        snap = bus.snapshot()
        values.append(e.evaluate(snap, frame_t, 1 / fps)["a"])
        beats.append(snap.values["clock:beat"])
        if 1.0 in snap.events_for("clock:tick/1"):
            tick_frames.append(len(values) - 1)
        frame_t += 1 / fps
    assert bus.get("clock:bpm") == pytest.approx(90.0, rel=0.01)
    # Locked: the LFO is the clock's beat, halved, on every frame.
    for v, beat in zip(values, beats):
        assert v == pytest.approx((beat * 0.5) % 1.0, abs=1e-9)
    # Continuous across the tempo change: each step is the beat's own advance (at most
    # a 120-bpm frame's half beat, plus the MIDI lead), except the wrap every 2 beats.
    steps = [b - a for a, b in zip(values, values[1:])]
    wraps = [k + 1 for k, s in enumerate(steps) if s < -0.5]
    assert all(0.0 <= s <= 0.5 * (2.0 / fps + 1 / 24) for s in steps if s >= -0.5)
    # Slower after the change: the frame step shrinks to 90/120 of what it was.
    early = [s for s in steps[10:200] if s >= 0]
    late = [s for s in steps[-200:] if s >= 0]
    assert sum(late) / len(late) == pytest.approx(0.75 * sum(early) / len(early), rel=0.05)
    # Aligned to the beat: every new cycle starts on a frame whose beat tick fires
    # (every other beat tick), 16 cycles in 32 beats.
    assert len(wraps) == 15
    assert set(wraps) <= set(tick_frames)
    assert all(round(beats[k]) % 2 == 0 for k in wraps)


def test_beat_locked_lfo_without_a_clock_counts_120_bpm():
    lfo = Lfo("l", "saw", rate_beats=0.25)
    assert lfo.value(1.0) == pytest.approx(0.5)  # 2 beats at 120 bpm: half a cycle
    assert lfo.value(1.0, beat=3.0) == pytest.approx(0.75)
    assert lfo.value(5.0, beat=3.0) == pytest.approx(0.75)  # the beat, not the time


def run(e: MappingEngine, clock: Clock, bus: SignalBus, decoder, presses, frames, fps=30.0):
    """Step clock and engine offline; press a MIDI note at the given frames.
    Returns each frame's 'a' and 'b' and the frames the beat and bar ticks fired on."""
    out, beat_ticks, bar_ticks = [], [], []
    for frame in range(frames):
        t = frame / fps
        if frame in presses:
            decoder.feed(mido.Message("note_on", note=36, velocity=100), t_s=t)
            decoder.feed(mido.Message("note_off", note=36), t_s=t)
        clock.update(bus, t)
        snap = bus.snapshot()
        v = e.evaluate(snap, t, 1 / fps)
        out.append((v["a"], v["b"], v["c"]))
        if 1.0 in snap.events_for("clock:tick/1"):
            beat_ticks.append(frame)
        if 1.0 in snap.events_for("clock:tick/4"):
            bar_ticks.append(frame)
    return out, beat_ticks, bar_ticks


SYNCED = """
[[map]]
source = "midi:note/36"
target = "a"
trigger = 0.5
sync = "beat"

[[map]]
source = "midi:note/36"
target = "b"
trigger = 0.5
sync = "bar"

[[map]]
source = "midi:note/36"
target = "c"
trigger = 0.5
"""


def test_synced_triggers_fire_on_the_next_beat_and_bar_frame(tmp_path):
    e = engine(tmp_path, SYNCED)
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    # 100 bpm at 30 fps: a beat every 18 frames, a bar every 72.
    clock = Clock(source="fixed", bpm=100.0, offline=True)
    out, beat_ticks, bar_ticks = run(e, clock, bus, decoder, presses={5, 40, 80}, frames=200)
    fired = {name: [f for f, v in enumerate(out) if v[k] == 1.0] for k, name in enumerate("abc")}
    assert fired["c"] == [5, 40, 80]  # unsynced: at once
    assert beat_ticks[:6] == [0, 18, 36, 54, 72, 90]
    assert fired["a"] == [18, 54, 90]  # the next beat after each press
    assert bar_ticks[:3] == [0, 72, 144]
    assert fired["b"] == [72, 144]  # presses 5 and 40 wait for one bar; 80 for the next
    assert all(v[0] in (0.0, 1.0) for v in out)


def test_a_press_on_the_beat_frame_fires_on_it(tmp_path):
    e = engine(tmp_path, SYNCED)
    bus = SignalBus()
    clock = Clock(source="fixed", bpm=100.0, offline=True)
    out, beat_ticks, _ = run(e, clock, bus, MidiDecoder(bus), presses={36}, frames=60)
    assert 36 in beat_ticks
    assert [f for f, v in enumerate(out) if v[0] == 1.0] == [36]


def test_synced_triggers_without_a_clock_follow_120_bpm(tmp_path):
    e = engine(tmp_path, SYNCED)
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    fired = []
    for frame in range(100):  # 30 fps at 120 bpm: a beat every 15 frames
        t = frame / 30
        if frame == 3:
            decoder.feed(mido.Message("note_on", note=36, velocity=100), t_s=t)
        v = e.evaluate(bus.snapshot(), t, 1 / 30)
        fired += [(frame, name) for name in "ab" if v[name] == 1.0]
    assert fired == [(15, "a"), (60, "b")]


@pytest.mark.parametrize(
    "text, key, message",
    [
        (
            '[lfo.x]\nrate_hz = 1.0\nrate_beats = 0.5\n[[map]]\nsource = "lfo:x"\ntarget = "a"\n',
            "rate_beats",
            "either 'rate_hz'",
        ),
        ("[lfo.x]\nrate_beats = 0\n", "rate_beats", "above 0"),
        (
            '[[map]]\nsource = "osc:/x"\ntarget = "a"\ntrigger = 0.5\nsync = "bars"\n',
            "sync",
            "beat, bar",
        ),
        ('[[map]]\nsource = "osc:/x"\ntarget = "a"\nsync = "beat"\n', "sync", "'trigger'"),
        (
            '[[map]]\nsource = "osc:/x"\ntarget = "a"\ntrigger = 0.5\nquantize = "bar"\n',
            "quantize",
            "sync = 'bar'",
        ),
    ],
)
def test_tempo_keys_are_checked_naming_file_line_and_key(tmp_path, text, key, message):
    with pytest.raises(ConfigError) as info:
        engine(tmp_path, text)
    text_err = str(info.value)
    assert "m.toml" in text_err and key in text_err and message in text_err
    assert re.search(r"m\.toml:\d+", text_err)


def test_a_synced_trigger_is_deterministic_offline(tmp_path):
    """Two offline runs of the same presses give the same pulses frame by frame."""
    runs = []
    for k in range(2):
        folder = tmp_path / str(k)
        folder.mkdir()
        e = engine(folder, SYNCED)
        bus = SignalBus()
        clock = Clock(source="fixed", bpm=133.0, offline=True)
        out, _, _ = run(e, clock, bus, MidiDecoder(bus), presses={7, 61, 62, 150}, frames=240)
        runs.append(out)
    assert runs[0] == runs[1]
    # Presses 61 and 62 fall within one beat: one pulse, on frame 68 (beat 5.03).
    assert [f for f, v in enumerate(runs[0]) if v[0] == 1.0] == [14, 68, 163]


def test_a_drum_machine_over_a_jack_port_drives_the_lfo_and_a_synced_trigger(tmp_path):
    """A MIDI clock master on a real (JACK) port speeds up from 100 to 140 bpm while
    the frame loop runs: the beat-locked LFO stays on the clock's beat without a jump,
    and a pad hit waits for the next beat."""
    import threading

    from runtime.inputs import midi
    from runtime.inputs.midi import MidiInput, PortSpec
    from tests.midi_ports import jack_server, wait_until
    from tests.test_midi import assert_connected

    e = engine(
        tmp_path,
        '[lfo.two]\nshape = "saw"\nrate_beats = 0.5\n'
        '[[map]]\nsource = "lfo:two"\ntarget = "d"\n' + SYNCED,
    )
    with jack_server() as server:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        bus = SignalBus()
        port_name = f"{server}-drums"
        inp = MidiInput(
            bus, specs=(PortSpec(port_name),), backend=midi.RtMidiBackend("jack"), poll_s=0.05
        )
        inp.start()
        out = backend.open_output(port_name, virtual=True)
        clock = Clock(source="midi", bpm=120.0)
        sending = threading.Event()
        sending.set()

        def master() -> None:
            out.send(mido.Message("start"))
            next_s = time.perf_counter()
            for bpm, beats in ((100.0, 4), (140.0, 6)):
                for _ in range(24 * beats):
                    next_s += 60 / bpm / 24
                    time.sleep(max(0.0, next_s - time.perf_counter()))
                    out.send(mido.Message("clock"))
            sending.clear()

        try:
            assert wait_until(lambda: len(inp.ports()) == 1), inp.status()
            assert_connected(out, bus, 1)
            thread = threading.Thread(target=master)
            thread.start()
            rows, hit_at = [], None
            t0 = time.perf_counter()
            while sending.is_set():
                t = time.perf_counter() - t0
                if hit_at is None and bus.get("midi:clock/beat", 0.0) > 5.3:
                    out.send(mido.Message("note_on", note=36, velocity=100))
                    hit_at = len(rows)
                clock.update(bus, t)
                snap = bus.snapshot()
                v = e.evaluate(snap, t, 1 / 60)
                ticked = 1.0 in snap.events_for("clock:tick/1")
                rows.append((t, snap.values["clock:beat"], v["d"], v["a"], ticked))
                time.sleep(1 / 60)
            thread.join()
        finally:
            out.close()
            inp.stop()
    assert bus.get("midi:clock/bpm") == pytest.approx(140.0, rel=0.03)
    assert rows[-1][1] > 9.0
    for _, beat, lfo, _, _ in rows:
        assert lfo == pytest.approx((beat * 0.5) % 1.0, abs=1e-9)
    for (t0_s, _, v0, _, _), (t1_s, _, v1, _, _) in zip(rows, rows[1:]):
        step = v1 - v0
        if step > -0.5:  # not the wrap of the saw: no jump beyond the tempo's own pace
            assert -1e-9 <= step <= 0.5 * (140 / 60 * (t1_s - t0_s) * 1.5 + 2 / 24)
    fired = [k for k, row in enumerate(rows) if row[3] == 1.0]
    assert len(fired) == 1 and fired[0] >= hit_at and rows[fired[0]][4]  # on a beat tick


@pytest.mark.gl
def test_an_offline_render_follows_the_shows_clock(tmp_path):
    """A whole show rendered offline: a square LFO locked to the show's 90 bpm clock
    (not the 120 bpm without one) blacks the picture out on every second half-beat."""
    import numpy as np
    from PIL import Image

    from runtime.check import list_signals
    from runtime.loop import render_offline
    from runtime.show import load_show

    (tmp_path / "m.toml").write_text(
        '[lfo.beat]\nshape = "square"\nrate_beats = 1\n'
        '[[map]]\nsource = "lfo:beat"\ntarget = "shader.grade.brightness"\n'
    )
    (tmp_path / "show.toml").write_text(
        'mappings = ["m.toml"]\n[generator]\nkind = "cppn"\nsize = [32, 32]\n'
        "[output]\nsize = [32, 32]\nfps = 30\n"
        '[inputs.clock]\nsource = "fixed"\nbpm = 90\n'
        '[[effects]]\nshader = "fit"\n[[effects]]\nshader = "grade"\n'
    )
    path = tmp_path / "show.toml"
    assert any("lfo:beat" in row and "1 cycles per beat" in row for row in list_signals(path))
    render_offline(load_show(path), frames=40, out=tmp_path / "out", progress=False)
    frames = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "out").glob("*.png"))]
    lit = [bool(f.max() > 0) for f in frames]
    # 90 bpm at 30 fps: a beat every 20 frames, lit for the first half of each.
    assert lit == [(k % 20) < 10 for k in range(40)]
