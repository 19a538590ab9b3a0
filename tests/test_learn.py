"""MIDI learn writes a correct [[map]] entry and leaves the rest of the file as it was."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

import mido
import pytest

from runtime import learn
from runtime.cli import main
from runtime.errors import MappingError, ShowError
from runtime.signals import Event
from tests.midi_ports import FeedBackend, jack_server

MAPPING = """\
# Knobs for the demo set.   (a comment the performer wrote)
[lfo.slow]            # a slow drift
shape = "sine"
rate_hz = 0.05

[[map]]
source = "midi:cc/1"      # mod wheel
target = "gen.warp"
curve = "exp"             # gentle at the bottom

[set]
"shader.kaleido.segments" = 6   # six-fold
"""


def write_show(tmp_path: Path, midi_table: str = "") -> Path:
    (tmp_path / "mapping.toml").write_text(MAPPING)
    show = tmp_path / "show.toml"
    show.write_text(f'mappings = ["mapping.toml"]\n\n[generator]\nkind = "cppn"\n\n{midi_table}')
    return show


def learn_with(show: Path, target: str, *messages: mido.Message, **kwargs) -> list[str]:
    """Run learn; when it prompts, the controller sends `messages` on its port."""
    backend = FeedBackend(["nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0", "Midi Through Port-0"])
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("Move a control"):
            port = backend.ports["nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"]
            threading.Timer(0.05, lambda: [port.send_in(m) for m in messages]).start()

    kwargs.setdefault("timeout_s", 5.0)
    assert learn.run(show, target, say=say, backend=backend, **kwargs) == 0
    return said


def test_learn_appends_an_entry_and_keeps_the_file(tmp_path):
    show = write_show(tmp_path)
    said = learn_with(
        show,
        "gen.zoom",
        mido.Message("control_change", channel=1, control=21, value=64),
        mido.Message("control_change", channel=1, control=22, value=64),
    )
    text = (tmp_path / "mapping.toml").read_text()
    assert text.startswith(MAPPING), "every byte before the new entry is unchanged"
    maps = tomllib.loads(text)["map"]
    assert maps[0] == {"source": "midi:cc/1", "target": "gen.warp", "curve": "exp"}
    assert maps[1] == {"source": "midi:cc/21", "target": "gen.zoom", "out": [0.1, 8.0]}
    assert said[-1].startswith("added in ") and "midi:cc/21 -> gen.zoom" in said[-1]


def test_learn_names_alias_and_channel_when_asked(tmp_path):
    show = write_show(tmp_path, '[inputs.midi]\nports = { knobs = "nanoKONTROL2" }\n')
    learn_with(
        show,
        "latent.speed",
        mido.Message("pitchwheel", channel=3, pitch=100),
        channel=True,
    )
    entry = tomllib.loads((tmp_path / "mapping.toml").read_text())["map"][-1]
    assert entry == {"source": "midi:knobs/ch4/bend", "target": "latent.speed", "out": [-4.0, 4.0]}


def test_a_trigger_target_learns_the_note_pulse(tmp_path):
    show = write_show(tmp_path)
    learn_with(show, "latent.hop", mido.Message("note_on", channel=9, note=36, velocity=90))
    entry = tomllib.loads((tmp_path / "mapping.toml").read_text())["map"][-1]
    assert entry["source"] == "midi:note/36/on"


def test_relearning_a_target_repoints_its_entry(tmp_path):
    show = write_show(tmp_path)
    said = learn_with(show, "gen.warp", mido.Message("control_change", control=74, value=3))
    text = (tmp_path / "mapping.toml").read_text()
    changed = [
        (old, new)
        for old, new in zip(MAPPING.splitlines(), text.splitlines(), strict=True)
        if old != new
    ]
    assert changed == [
        ('source = "midi:cc/1"      # mod wheel', 'source = "midi:cc/74"      # mod wheel')
    ]
    assert said[-1].startswith("replaced in ")


def test_learn_into_another_mapping_file(tmp_path):
    show = write_show(tmp_path)
    other = tmp_path / "more" / "extra.toml"
    said = learn_with(show, "gen.detail", mido.Message("aftertouch", value=5), mapping=str(other))
    assert tomllib.loads(other.read_text())["map"] == [
        {"source": "midi:pressure", "target": "gen.detail", "out": [0.25, 4.0]}
    ]
    assert (tmp_path / "mapping.toml").read_text() == MAPPING
    assert "does not list" in said[-1]


def test_nothing_moved_times_out_and_writes_nothing(tmp_path):
    show = write_show(tmp_path)
    with pytest.raises(ShowError, match=r"no MIDI control moved within 0.2 s"):
        learn.run(show, "gen.zoom", timeout_s=0.2, say=lambda _: None, backend=FeedBackend())
    assert (tmp_path / "mapping.toml").read_text() == MAPPING


def test_targets_are_checked_against_what_the_show_offers(tmp_path):
    show = write_show(tmp_path)
    backend = FeedBackend(["x"])
    with pytest.raises(MappingError, match=r"'gen.zoon' is not offered by .*'gen.zoom'"):
        learn.run(show, "gen.zoon", timeout_s=0.1, say=print, backend=backend)
    with pytest.raises(MappingError, match="'zoom' is not offered"):
        learn.run(show, "zoom", timeout_s=0.1, say=print, backend=backend)
    with pytest.raises(MappingError, match=r"'shader\.kaleido\.segments' is not offered"):
        learn.run(show, "shader.kaleido.segments", timeout_s=0.1, say=print, backend=backend)


def test_absent_midi_system_fails_at_once(tmp_path):
    show = write_show(tmp_path)
    backend = FeedBackend()
    backend.available = False
    with pytest.raises(ShowError, match=r"no MIDI device.*run_show\.py devices"):
        learn.run(show, "gen.zoom", timeout_s=5, say=print, backend=backend)


def test_learned_source_takes_the_first_message_only():
    t1, t2 = 1.0, 2.0
    events = [
        Event("midi:clock/beat", 0.1, 0.5),
        Event("midi:cc/7", 0.5, t1),
        Event("midi:pads/cc/7", 0.5, t1),
        Event("midi:ch3/cc/7", 0.5, t1),
        Event("midi:pads/ch3/cc/7", 0.5, t1),
        Event("midi:cc/8", 0.5, t2),
    ]
    assert learn.learned_source(events, channel=False, trigger=False) == "midi:pads/cc/7"
    assert learn.learned_source(events, channel=True, trigger=False) == "midi:pads/ch3/cc/7"
    assert learn.learned_source(events[:1], channel=False, trigger=False) is None


def test_cli_learn_through_a_jack_virtual_port(tmp_path, capsys):
    with jack_server() as server:
        port_name = f"{server}-ctl"
        show = write_show(tmp_path, f'[inputs.midi]\napi = "jack"\nports = ["{port_name}"]\n')
        out = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True).open_output(
            port_name, virtual=True
        )
        done = threading.Event()

        def performer():
            # Turns the knob every 50 ms until learn has its answer.
            while not done.wait(0.05):
                out.send(mido.Message("control_change", channel=0, control=16, value=99))

        thread = threading.Thread(target=performer)
        thread.start()
        try:
            status = main(["learn", str(show), "--target", "gen.flow", "--timeout", "10"])
        finally:
            done.set()
            thread.join()
            out.close()
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "Move a control for gen.flow" in printed
    entry = tomllib.loads((tmp_path / "mapping.toml").read_text())["map"][-1]
    assert entry == {"source": "midi:cc/16", "target": "gen.flow", "out": [0.0, 2.0]}


def test_cli_devices_never_crashes(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["devices"]) == 0
    printed = capsys.readouterr().out
    assert "MIDI input ports" in printed
    assert "Audio devices:" in printed
    assert "no display" in printed
