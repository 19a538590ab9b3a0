"""MIDI input: real mido messages through the real parsing path into bus signals."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

import mido
import pytest

from runtime.config import Table
from runtime.errors import ConfigError
from runtime.inputs import midi
from runtime.inputs.midi import MidiDecoder, MidiFilePlayer, MidiInput, PortSpec
from runtime.signals import SignalBus
from tests.midi_ports import FeedBackend, jack_server, wait_until

OPENMSX = Path("/usr/share/games/openttd/baseset/openmsx")
# "tttheme2" from OpenMSX (GPL-2), a human-made arrangement with notes, bends,
# channel aftertouch, program and control changes on 12 channels.
THEME = OPENMSX / "tttheme2.mid"


def need_openmsx() -> Path:
    if not THEME.is_file():
        pytest.skip(f"{THEME} missing: apt-get install openttd-openmsx")
    return THEME


def fed(*messages: mido.Message, alias: str | None = None) -> tuple[SignalBus, MidiDecoder]:
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    for msg in messages:
        decoder.feed(msg, alias=alias)
    return bus, decoder


def test_control_change_is_normalised_and_named_by_channel():
    bus, _ = fed(mido.Message("control_change", channel=1, control=21, value=127))
    assert bus.get("midi:cc/21") == 1.0
    assert bus.get("midi:ch2/cc/21") == 1.0
    bus, _ = fed(mido.Message("control_change", channel=15, control=1, value=64))
    assert bus.get("midi:ch16/cc/1") == pytest.approx(64 / 127)
    assert "midi:ch2/cc/1" not in bus.names()


def test_note_velocity_is_a_level_and_a_trigger():
    bus, _ = fed(mido.Message("note_on", channel=9, note=36, velocity=100))
    snap = bus.snapshot()
    assert snap.values["midi:note/36"] == pytest.approx(100 / 127)
    assert snap.values["midi:ch10/note/36"] == pytest.approx(100 / 127)
    assert snap.events_for("midi:note/36/on") == [1.0, 0.0]
    # Note off, and note on with velocity 0 (running-status style), both release.
    decoder = MidiDecoder(bus)
    decoder.feed(mido.Message("note_off", channel=9, note=36, velocity=40))
    assert bus.get("midi:note/36") == 0.0
    decoder.feed(mido.Message("note_on", note=37, velocity=90))
    decoder.feed(mido.Message("note_on", note=37, velocity=0))
    snap = bus.snapshot()
    assert snap.events_for("midi:note/37") == [pytest.approx(90 / 127), 0.0]
    assert snap.events_for("midi:note/37/on") == [1.0, 0.0]


def test_bend_aftertouch_and_program():
    bus, _ = fed(
        mido.Message("pitchwheel", pitch=-8192),
        mido.Message("aftertouch", channel=2, value=127),
        mido.Message("polytouch", note=60, value=32),
        mido.Message("program_change", program=5),
    )
    assert bus.get("midi:bend") == 0.0
    assert bus.get("midi:pressure") == 1.0
    assert bus.get("midi:ch3/pressure") == 1.0
    assert bus.get("midi:pressure/60") == pytest.approx(32 / 127)
    assert bus.get("midi:program") == pytest.approx(5 / 127)
    assert bus.snapshot().events_for("midi:program/5") == [1.0, 0.0]
    for pitch, expected in ((8191, 1.0), (0, 0.5)):
        bus, _ = fed(mido.Message("pitchwheel", pitch=pitch))
        assert bus.get("midi:bend") == pytest.approx(expected, abs=1e-4)


def test_alias_names_the_port():
    bus, _ = fed(mido.Message("control_change", channel=0, control=7, value=0), alias="knobs")
    assert {n for n in bus.names()} == {
        "midi:cc/7",
        "midi:ch1/cc/7",
        "midi:knobs/cc/7",
        "midi:knobs/ch1/cc/7",
    }


def test_raw_bytes_through_the_parser():
    # Bytes as a port or a serial bridge delivers them: three control changes, a note
    # on, a clock tick, a sysex (ignored) and a centred pitch bend.
    data = bytes(
        [
            *(0xB0, 21, 10, 0xB0, 22, 20, 0xB0, 23, 127),
            *(0x90, 60, 100, 0xF8),
            *(0xF0, 0x7E, 0x01, 0xF7),
            *(0xE0, 0x00, 0x40),
        ]
    )
    parser = mido.Parser()
    parser.feed(data)
    bus, decoder = fed(*parser)
    assert bus.get("midi:cc/21") == pytest.approx(10 / 127)
    assert bus.get("midi:cc/22") == pytest.approx(20 / 127)
    assert bus.get("midi:cc/23") == 1.0
    assert bus.get("midi:note/60") == pytest.approx(100 / 127)
    assert bus.get("midi:bend") == pytest.approx(0.5, abs=1e-4)
    assert bus.get("midi:clock/beat") == pytest.approx(1 / 24)
    assert decoder.messages == 7
    assert decoder.ignored == 1  # the sysex


def clock_bytes_at(bpm: float, beats: float, start_s: float = 100.0, jitter_s: float = 0.0):
    """(time, message) for MIDI clock ticks at `bpm`, with alternating jitter."""
    period_s = 60.0 / bpm / 24
    n = round(beats * 24)
    return [
        (start_s + i * period_s + (jitter_s if i % 2 else -jitter_s), mido.Message("clock"))
        for i in range(n)
    ]


def test_midi_clock_tempo_and_beat():
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    decoder.feed(mido.Message("start"), t_s=99.9)
    assert bus.get("midi:clock/running") == 1.0
    # 1 ms of jitter on every tick, as a USB or JACK port delivers them.
    for t, msg in clock_bytes_at(132.0, beats=4, jitter_s=0.001):
        decoder.feed(msg, t_s=t)
    assert bus.get("midi:clock/bpm") == pytest.approx(132.0, rel=0.005)
    # The first tick after Start is beat 0, so 96 ticks end on beat 95/24.
    assert bus.get("midi:clock/beat") == pytest.approx(95 / 24)
    decoder.feed(mido.Message("stop"), t_s=102.0)
    decoder.feed(mido.Message("clock"), t_s=102.01)
    assert bus.get("midi:clock/beat") == pytest.approx(95 / 24), "stopped: ticks do not count"
    decoder.feed(mido.Message("songpos", pos=16), t_s=102.02)  # bar 2: 16 sixteenths
    decoder.feed(mido.Message("continue"), t_s=102.03)
    decoder.feed(mido.Message("clock"), t_s=102.04)
    assert bus.get("midi:clock/beat") == pytest.approx(4.0)


def test_midi_clock_tempo_change_is_followed_within_two_beats():
    bus = SignalBus()
    decoder = MidiDecoder(bus)
    ticks = clock_bytes_at(100.0, beats=4)
    ticks += clock_bytes_at(150.0, beats=2, start_s=ticks[-1][0] + 60 / 100 / 24)
    for t, msg in ticks:
        decoder.feed(msg, t_s=t)
    assert bus.get("midi:clock/bpm") == pytest.approx(150.0, rel=0.001)


def test_replaying_a_composed_midi_file():
    path = need_openmsx()
    reference = mido.MidiFile(path)
    bus = SignalBus()
    player = MidiFilePlayer(bus, path)
    seen: Counter[str] = Counter()
    bends: list[float] = []
    fps = 30
    for frame in range(int(reference.length * fps) + 2):
        player.update(bus, frame / fps)
        for event in bus.snapshot().events:
            seen[event.name] += 1
            if event.name == "midi:bend":
                bends.append(event.value)
    expected = Counter(m.type for m in reference if not m.is_meta)
    notes_on = sum(1 for m in reference if m.type == "note_on" and m.velocity > 0)
    assert player.decoder.messages == sum(expected.values())
    assert sum(v for k, v in seen.items() if k.startswith("midi:note/") and k.endswith("/on")) == (
        2 * notes_on
    )
    assert seen["midi:bend"] == expected["pitchwheel"]
    assert seen["midi:pressure"] == expected["aftertouch"]
    assert seen["midi:program"] == expected["program_change"]
    assert min(bends) == 0.0 and max(bends) < 1.0
    channels = {k.split("/")[0] for k in seen if k.startswith("midi:ch")}
    assert len(channels) == 12
    # The file's one tempo (566037 us a beat) is its clock.
    assert bus.get("midi:clock/bpm") == pytest.approx(60e6 / 566037)
    beat, _ = player.beat_at(10.0)
    assert beat == pytest.approx(10.0 * 60e6 / 566037 / 60)
    assert bus.get("midi:clock/running") == 0.0, "stopped after its end"


def test_replay_is_frame_exact_and_loops():
    path = need_openmsx()
    runs = []
    for _ in range(2):
        bus = SignalBus()
        player = MidiFilePlayer(bus, path, loop=True)
        player.update(bus, 5.0)
        runs.append(bus.snapshot().values)
    assert runs[0] == runs[1]
    bus = SignalBus()
    player = MidiFilePlayer(bus, path, loop=True)
    player.update(bus, player.length_s - 0.01)
    first_pass = player.decoder.messages
    player.update(bus, player.length_s + 1.0)
    assert player.decoder.messages > first_pass
    assert bus.get("midi:clock/beat") < 3.0, "back near the start"
    assert "pass 2" in player.status()


def test_port_missing_at_start_unplugged_and_replugged(caplog):
    caplog.set_level(logging.INFO, logger="runtime.inputs.midi")
    bus = SignalBus()
    backend = FeedBackend(["Midi Through:Midi Through Port-0 14:0"])
    inp = MidiInput(bus, specs=(PortSpec("nanoKONTROL"),), backend=backend, poll_s=0.02)
    inp.start()
    try:
        assert wait_until(lambda: "waiting for port matching 'nanoKONTROL'" in inp.status())
        name = "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"
        backend.names.append(name)
        assert wait_until(lambda: inp.ports() == [name])
        backend.ports[name].send_in(mido.Message("control_change", control=2, value=127))
        assert bus.get("midi:cc/2") == 1.0
        # Unplug: the name leaves the list; the port is closed, reported, waited for.
        backend.names.remove(name)
        assert wait_until(lambda: inp.ports() == [])
        old_port = backend.ports.pop(name)
        assert old_port.closed
        # Replug under a new ALSA client number: the substring still finds it.
        name2 = "nanoKONTROL2:nanoKONTROL2 MIDI 1 24:0"
        backend.names.append(name2)
        assert wait_until(lambda: inp.ports() == [name2])
        backend.ports[name2].send_in(mido.Message("control_change", control=2, value=0))
        assert bus.get("midi:cc/2") == 0.0
        assert inp.unplugs == 1 and inp.connects == 2
    finally:
        inp.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "no port matching 'nanoKONTROL'" in w]) == 1
    assert len([w for w in warnings if "is gone" in w]) == 1
    assert len(warnings) == 2, warnings


def test_absent_midi_system_is_reported_once_and_recovers(caplog):
    caplog.set_level(logging.INFO, logger="runtime.inputs.midi")
    bus = SignalBus()
    backend = FeedBackend(["LPD8"])
    backend.available = False
    inp = MidiInput(bus, specs=(PortSpec("*"),), backend=backend, poll_s=0.02)
    assert inp.scan() is not None
    assert inp.scan() is not None
    assert inp.status().startswith("midi: no MIDI device")
    backend.available = True
    assert inp.scan() is None
    assert inp.ports() == ["LPD8"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no MIDI device" in warnings[0].getMessage()
    inp.stop()


def test_alsa_without_sequencer_is_no_device_not_a_crash():
    if Path("/dev/snd/seq").exists():
        pytest.skip("this machine has an ALSA sequencer")
    inp = MidiInput(SignalBus(), specs=(PortSpec("*"),), backend=midi.RtMidiBackend("alsa"))
    inp.start()
    try:
        assert wait_until(lambda: "no MIDI device" in inp.status())
    finally:
        inp.stop()


def test_a_bad_message_is_counted_and_the_port_goes_on():
    bus = SignalBus()
    backend = FeedBackend(["pads"])
    inp = MidiInput(bus, specs=(PortSpec("pads"),), backend=backend)
    inp.scan()

    class Broken:
        type = "control_change"
        channel = 0
        control = 1
        value = None  # not a number: the decoder fails on it

    backend.ports["pads"].send_in(Broken())
    backend.ports["pads"].send_in(mido.Message("control_change", control=1, value=127))
    assert inp.errors == 1
    assert bus.get("midi:cc/1") == 1.0
    inp.stop()


def assert_connected(out, bus: SignalBus, value: int) -> None:
    """JACK makes a connection at its next graph change: ping until one arrives."""

    def ping() -> bool:
        out.send(mido.Message("control_change", channel=15, control=127, value=value))
        return wait_until(lambda: bus.get("midi:ch16/cc/127") == value / 127, 0.05)

    assert wait_until(ping, 3.0), "no message crossed the JACK connection"


def test_real_jack_virtual_port_unplug_and_replug():
    with jack_server() as server:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        bus = SignalBus()
        port_name = f"{server}-keys"
        inp = MidiInput(
            bus,
            specs=(PortSpec(port_name, "keys"),),
            backend=midi.RtMidiBackend("jack"),
            poll_s=0.05,
        )
        inp.start()
        try:
            out = backend.open_output(port_name, virtual=True)
            assert wait_until(lambda: len(inp.ports()) == 1), inp.status()
            assert_connected(out, bus, 1)
            bus.snapshot()
            # A knob turned end to end, paced like a 31250 baud DIN cable.
            for value in range(128):
                out.send(mido.Message("control_change", channel=3, control=74, value=value))
                time.sleep(0.001)
            out.send(mido.Message("note_on", note=48, velocity=127))
            assert wait_until(lambda: bus.get("midi:note/48") == 1.0)
            events = bus.snapshot().events_for("midi:keys/ch4/cc/74")
            assert events == [pytest.approx(v / 127) for v in range(128)]
            out.close()  # unplug
            assert wait_until(lambda: inp.ports() == []), inp.status()
            out = backend.open_output(port_name, virtual=True)  # replug
            assert wait_until(lambda: len(inp.ports()) == 1), inp.status()
            assert_connected(out, bus, 2)
            out.send(mido.Message("note_on", note=48, velocity=0))
            assert wait_until(lambda: bus.get("midi:note/48") == 0.0)
            assert inp.unplugs == 1
            out.close()
        finally:
            inp.stop()


def table(text: str, tmp_path: Path) -> Table:
    import tomllib

    path = tmp_path / "show.toml"
    path.write_text(text)
    data = tomllib.loads(text)["inputs"]["midi"]
    return Table(data, file=path, text=text, name="inputs.midi", header="inputs.midi")


def test_build_reads_its_table_strictly(tmp_path):
    built = midi.build(
        table('[inputs.midi]\nports = { pads = "LPD8" }\napi = "jack"\npoll_s = 0.5\n', tmp_path),
        SignalBus(),
        folder=tmp_path,
        offline=False,
    )
    assert built.specs == (PortSpec("LPD8", "pads"),)
    assert built.backend.api == "jack" and built.poll_s == 0.5
    with pytest.raises(ConfigError, match=r"show.toml:3: \[inputs.midi\] 'port'.*did you mean"):
        midi.build(
            table('[inputs.midi]\napi = "alsa"\nport = "x"\n', tmp_path),
            SignalBus(),
            folder=tmp_path,
            offline=False,
        )
    with pytest.raises(ConfigError, match="expected one of auto, alsa, jack"):
        midi.build(
            table('[inputs.midi]\napi = "asla"\n', tmp_path),
            SignalBus(),
            folder=tmp_path,
            offline=False,
        )
    with pytest.raises(ConfigError, match="file not found"):
        midi.build(
            table('[inputs.midi]\nfile = "nope.mid"\n', tmp_path),
            SignalBus(),
            folder=tmp_path,
            offline=True,
        )


def test_offline_live_input_opens_nothing(tmp_path):
    built = midi.build(
        table("[inputs.midi]\n", tmp_path), SignalBus(), folder=tmp_path, offline=True
    )
    built.start()
    assert "off in offline renders" in built.status()
    built.stop()


def test_midi_clock_tempo_through_a_jack_port():
    with jack_server() as server:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        bus = SignalBus()
        port_name = f"{server}-drums"
        inp = MidiInput(
            bus, specs=(PortSpec(port_name),), backend=midi.RtMidiBackend("jack"), poll_s=0.05
        )
        inp.start()
        out = backend.open_output(port_name, virtual=True)
        try:
            assert wait_until(lambda: len(inp.ports()) == 1), inp.status()
            assert_connected(out, bus, 1)
            # A drum machine's clock at 128 bpm for two seconds, each tick sent on time.
            tick_s = 60 / 128 / 24
            start = time.perf_counter()
            out.send(mido.Message("start"))
            for i in range(round(2.0 / tick_s)):
                time.sleep(max(0.0, start + (i + 1) * tick_s - time.perf_counter()))
                out.send(mido.Message("clock"))
            assert wait_until(lambda: bus.get("midi:clock/beat") >= (i - 1) / 24)
        finally:
            out.close()
            inp.stop()
    # Each tick is stamped when JACK hands it over (a 5.3 ms period here); the fit
    # over two beats keeps the tempo within 1%.
    assert bus.get("midi:clock/bpm") == pytest.approx(128.0, rel=0.01)
    assert bus.get("midi:clock/running") == 1.0


def test_ports_close_while_messages_pour_in():
    # A clock master never stops sending: unplugging it, and stopping the show, both
    # close ports with messages in flight. Neither may crash or hang.
    with jack_server(period=64) as server:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        port_name = f"{server}-master"
        for _ in range(4):
            bus = SignalBus()
            inp = MidiInput(
                bus, specs=(PortSpec(port_name),), backend=midi.RtMidiBackend("jack"), poll_s=0.01
            )
            inp.start()
            out = backend.open_output(port_name, virtual=True)
            sending = threading.Event()
            sending.set()

            def master(out=out, sending=sending):
                while sending.is_set():
                    out.send(mido.Message("clock"))
                    time.sleep(0.0002)

            thread = threading.Thread(target=master)
            thread.start()
            try:
                assert wait_until(lambda bus=bus: bus.get("midi:clock/beat") > 0.5), inp.status()
                inp.stop()  # closes the port mid-stream
                inp.start()
                assert wait_until(lambda inp=inp: len(inp.ports()) == 1), inp.status()
            finally:
                sending.clear()
                thread.join()
                out.close()  # unplugged mid-stream: the watcher closes our end
                assert wait_until(lambda inp=inp: inp.ports() == []), inp.status()
                inp.stop()
