"""Mapping transforms and the engine, against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from runtime.errors import MappingError
from runtime.filters import Envelope, OneEuro, Smooth
from runtime.mapping import MappingEngine, Target
from runtime.mapping.sources import Lfo
from runtime.signals import Event, SignalBus, Snapshot

TARGETS = {
    "a": Target("a", 0.25, 0.0, 10.0),
    "b": Target("b", 0.0, -1.0, 1.0),
    "speed": Target("speed", 0.0, -2.0, 2.0, integrates="phase"),
    "hop": Target("hop", 0.0, 0.0, 1.0, steps="phase", glide_s=0.4),
}


def engine(tmp_path: Path, text: str, targets=TARGETS) -> MappingEngine:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return MappingEngine((path,), targets)


def snap(values: dict[str, float], events: list[tuple[str, float]] = ()) -> Snapshot:
    return Snapshot(values, tuple(Event(n, v, 0.0) for n, v in events))


def test_range_invert_clamp_and_curves(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "osc:/x"
target = "a"
in = [0, 100]
out = [2, 6]

[[map]]
source = "osc:/y"
target = "b"
in = [0, 1]
out = [0, 1]
invert = true
curve = 2.0
""",
    )
    v = e.evaluate(snap({"osc:/x": 25.0, "osc:/y": 0.2}), 0.0, 1 / 30)
    assert v["a"] == pytest.approx(3.0)  # 25/100 -> 0.25 -> 2 + 0.25 * 4
    assert v["b"] == pytest.approx(0.64)  # 1 - 0.2 = 0.8, squared
    v = e.evaluate(snap({"osc:/x": 250.0, "osc:/y": -3.0}), 0.0, 1 / 30)
    assert v["a"] == pytest.approx(6.0)  # clamped at the top
    assert v["b"] == pytest.approx(1.0)  # inverted -3 -> 4, clamped to 1


@pytest.mark.parametrize(
    ("curve", "x", "expected"),
    [
        ('"smoothstep"', 0.25, 0.25 * 0.25 * (3 - 0.5)),
        ('"ease_in"', 0.5, 0.25),
        ('"ease_out"', 0.5, 0.75),
        ('"exp"', 0.5, (math.exp(2) - 1) / (math.exp(4) - 1)),
        ('"log"', 0.5, math.log1p((math.e - 1) * 0.5)),
        ("0.5", 0.25, 0.5),
    ],
)
def test_named_curves(tmp_path, curve, x, expected):
    e = engine(
        tmp_path,
        f"""
[[map]]
source = "osc:/x"
target = "b"
out = [0, 1]
curve = {curve}
""",
    )
    assert e.evaluate(snap({"osc:/x": x}), 0.0, 0.1)["b"] == pytest.approx(expected)


def test_quantize_and_combine(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
sources = ["osc:/p", "osc:/q"]
combine = "product"
target = "a"
out = [0, 10]
quantize = 2.0

[[map]]
sources = ["osc:/p", "osc:/q"]
combine = "max"
target = "b"
out = [0, 1]
""",
    )
    v = e.evaluate(snap({"osc:/p": 0.5, "osc:/q": 0.7}), 0.0, 0.1)
    assert v["a"] == pytest.approx(4.0)  # 0.35 * 10 = 3.5 -> nearest step of 2 is 4
    assert v["b"] == pytest.approx(0.7)


def test_untouched_source_leaves_set_value_and_maps_on_one_target_sum(tmp_path):
    e = engine(
        tmp_path,
        """
[set]
a = 5.0

[[map]]
source = "osc:/x"
target = "a"
out = [0, 1]

[[map]]
source = "osc:/y"
target = "a"
out = [0, 2]
""",
    )
    assert e.evaluate(snap({}), 0.0, 0.1)["a"] == 5.0
    assert e.evaluate(snap({"osc:/x": 0.5}), 0.0, 0.1)["a"] == pytest.approx(0.5)
    v = e.evaluate(snap({"osc:/x": 0.5, "osc:/y": 0.5}), 0.0, 0.1)
    assert v["a"] == pytest.approx(1.5)
    assert v["b"] == 0.0  # a target nothing maps keeps its default


def test_trigger_sees_events_between_frames_and_rearms(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "midi:note/36"
target = "b"
trigger = 0.5
out = [0, 1]
""",
    )
    # A note on and off within one frame: the latest value is 0, the event rose.
    assert (
        e.evaluate(
            snap({"midi:note/36": 0.0}, [("midi:note/36", 0.9), ("midi:note/36", 0.0)]), 0, 0.1
        )["b"]
        == 1.0
    )
    assert e.evaluate(snap({"midi:note/36": 0.0}), 0, 0.1)["b"] == 0.0
    # Held high: fires once, not every frame.
    assert e.evaluate(snap({"midi:note/36": 0.8}), 0, 0.1)["b"] == 1.0
    assert e.evaluate(snap({"midi:note/36": 0.8}), 0, 0.1)["b"] == 0.0
    # Dipping only to 0.47 (within the hysteresis) does not re-arm it.
    assert e.evaluate(snap({"midi:note/36": 0.47}), 0, 0.1)["b"] == 0.0
    assert e.evaluate(snap({"midi:note/36": 0.8}), 0, 0.1)["b"] == 0.0
    assert e.evaluate(snap({"midi:note/36": 0.1}), 0, 0.1)["b"] == 0.0
    assert e.evaluate(snap({"midi:note/36": 0.8}), 0, 0.1)["b"] == 1.0


def test_envelope_after_trigger_by_hand(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "audio:onset"
target = "b"
trigger = 0.5
envelope = { attack_s = 0.05, release_s = 0.2 }
out = [0, 1]
""",
    )
    dt = 0.1
    y1 = e.evaluate(snap({"audio:onset": 1.0}), 0, dt)["b"]
    assert y1 == pytest.approx(1 - math.exp(-dt / 0.05))
    y2 = e.evaluate(snap({"audio:onset": 0.0}), 0, dt)["b"]
    assert y2 == pytest.approx(y1 * math.exp(-dt / 0.2))


def test_one_euro_by_hand():
    f = OneEuro(min_cutoff_hz=1.0, beta=0.5, d_cutoff_hz=1.0)
    dt = 0.1
    assert f(0.0, dt) == 0.0
    # Second sample: dx = 10; alpha(1 Hz, 0.1 s) = 1 / (1 + (1 / 2pi) / 0.1)
    a1 = 1 / (1 + 1 / (2 * math.pi) / dt)
    dx_hat = a1 * 10.0
    cutoff = 1.0 + 0.5 * dx_hat
    a = 1 / (1 + 1 / (2 * math.pi * cutoff) / dt)
    assert f(1.0, dt) == pytest.approx(a * 1.0)


def test_one_euro_in_a_map_smooths_jitter(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "hand:0/x"
target = "b"
one_euro = { min_cutoff_hz = 0.5, beta = 0.0 }
out = [0, 1]
""",
    )
    outs = [
        e.evaluate(snap({"hand:0/x": 0.5 + (0.1 if i % 2 else -0.1)}), 0, 1 / 60)["b"]
        for i in range(120)
    ]
    assert max(outs[60:]) - min(outs[60:]) < 0.02  # raw jitter is 0.2 peak to peak


def test_envelope_and_smooth_filters_by_hand():
    env = Envelope(attack_s=0.1, release_s=1.0)
    assert env(1.0, 0.1) == pytest.approx(1 - math.exp(-1))
    up = 1 - math.exp(-1)
    assert env(0.0, 0.5) == pytest.approx(up * math.exp(-0.5))
    s = Smooth(0.5)
    assert s(2.0, 0.1) == 2.0  # the first sample passes through
    assert s(0.0, 0.5) == pytest.approx(2.0 * math.exp(-1))


def test_smooth_s_in_a_map(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "osc:/x"
target = "b"
smooth_s = 0.5
out = [0, 1]
""",
    )
    assert e.evaluate(snap({"osc:/x": 0.0}), 0, 0.1)["b"] == 0.0
    assert e.evaluate(snap({"osc:/x": 1.0}), 0, 0.5)["b"] == pytest.approx(1 - math.exp(-1))


def test_lfos_and_time(tmp_path):
    e = engine(
        tmp_path,
        """
[lfo.tri]
shape = "triangle"
rate_hz = 0.5

[[map]]
source = "lfo:tri"
target = "b"
out = [0, 1]

[[map]]
source = "time"
target = "a"
in = [0, 10]
out = [0, 10]
""",
    )
    v = e.evaluate(snap({}), 0.5, 0.1)  # a quarter cycle of a 0.5 Hz triangle
    assert v["b"] == pytest.approx(0.5)
    assert v["a"] == pytest.approx(0.5)
    assert Lfo("s", "sine", 1.0).value(0.5) == pytest.approx(1.0)
    assert Lfo("s", "saw", 1.0).value(0.25) == pytest.approx(0.25)
    assert Lfo("s", "square", 1.0).value(0.75) == 0.0
    r = Lfo("r", "random", 2.0)
    samples = [r.value(t / 100) for t in range(300)]
    assert all(0.0 <= s <= 1.0 for s in samples)
    assert max(abs(a - b) for a, b in zip(samples, samples[1:])) < 0.05  # smooth
    assert r.value(1.234) == Lfo("r", "random", 2.0).value(1.234)  # pure function of t


def test_rates_integrate_and_steps_glide(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "osc:/speed"
target = "speed"
in = [0, 1]
out = [0, 1]

[[map]]
source = "osc:/hop"
target = "hop"
trigger = 0.5
out = [0, 1]
""",
    )
    for _ in range(10):
        v = e.evaluate(snap({"osc:/speed": 0.5}), 0, 0.1)
    assert v["phase"] == pytest.approx(0.5)  # 0.5 keyframes/s for 1 s
    v = e.evaluate(snap({"osc:/speed": 0.0, "osc:/hop": 1.0}), 0, 0.1)
    glide = 1 - math.exp(-4 / 0.4 * 0.1)
    assert v["phase"] == pytest.approx(0.5 + glide)
    for _ in range(10):
        v = e.evaluate(snap({"osc:/speed": 0.0, "osc:/hop": 0.0}), 0, 0.1)
    assert v["phase"] == pytest.approx(1.5, abs=1e-3)


def test_hot_reload_keeps_last_good_mapping_and_names_the_line(tmp_path):
    e = engine(
        tmp_path,
        """
[[map]]
source = "osc:/x"
target = "a"
out = [0, 1]
""",
    )
    path = e.paths[0]
    assert e.evaluate(snap({"osc:/x": 1.0}), 0, 0.1)["a"] == 1.0
    path.write_text("""
[[map]]
source = "osc:/x"
target = "a"
out = [0, 1]

[[map]]
source = "osc:/x"
target = "latent.sped"
""")
    message = e.reload_if_changed()
    assert message is not None and "m.toml:9" in message and "latent.sped" in message
    assert e.error is not None
    assert e.evaluate(snap({"osc:/x": 1.0}), 0, 0.1)["a"] == 1.0  # the last good one runs
    path.write_text("""
[[map]]
source = "osc:/x"
target = "a"
out = [0, 3]
""")
    assert e.reload_if_changed() == "mapping reloaded"
    assert e.error is None
    assert e.evaluate(snap({"osc:/x": 1.0}), 0, 0.1)["a"] == 3.0
    assert e.reload_if_changed() is None  # nothing changed since


def test_reload_keeps_state_of_unchanged_entries(tmp_path):
    text = """
[[map]]
source = "osc:/x"
target = "b"
smooth_s = 1.0
out = [0, 1]
"""
    e = engine(tmp_path, text)
    e.evaluate(snap({"osc:/x": 0.0}), 0, 0.1)
    smoothed = e.evaluate(snap({"osc:/x": 1.0}), 0, 0.1)["b"]
    e.paths[0].write_text(text + "\n# a comment\n")
    assert e.reload_if_changed() == "mapping reloaded"
    after = e.evaluate(snap({"osc:/x": 1.0}), 0, 0.1)["b"]
    assert smoothed < after < 1.0  # carried on from its state, not restarted at 1.0


def test_unknown_target_at_start_is_an_error(tmp_path):
    with pytest.raises(MappingError, match=r"m.toml:3: \[map #1\] 'target': unknown target 'c'"):
        engine(tmp_path, '[[map]]\nsource = "osc:/x"\ntarget = "c"\n')


def test_bus_snapshot_hands_events_out_once():
    bus = SignalBus()
    bus.set("osc:/a", 1.0)
    bus.set("osc:/a", 0.0)
    first = bus.snapshot()
    assert first.values == {"osc:/a": 0.0}
    assert first.events_for("osc:/a") == [1.0, 0.0]
    assert bus.snapshot().events == ()


def test_a_key_is_a_source_like_a_pad(tmp_path):
    e = engine(
        tmp_path,
        '[[map]]\nsource = "key:space"\ntarget = "hop"\ntrigger = 0.5\n'
        '[[map]]\nsource = "key:shift+2"\ntarget = "a"\nout = [1, 5]\n',
    )
    bus = SignalBus()
    bus.set("key:space", 1.0)  # pressed and released between two frames: one hop
    bus.set("key:space", 0.0)
    bus.set("key:shift+2", 1.0)  # held
    e.evaluate(bus.snapshot(), 0.0, 1 / 30)
    values = e.evaluate(bus.snapshot(), 1.0, 1.0)
    assert values["phase"] == pytest.approx(1.0, abs=0.05)  # the hop glided to 1
    assert values["a"] == pytest.approx(5.0)


def test_signals_lists_keys(tmp_path):
    from runtime.check import list_signals

    (tmp_path / "show.toml").write_text('[generator]\nkind = "cppn"\nsize = [16, 16]\n')
    assert any(row.startswith("key:NAME") for row in list_signals(tmp_path / "show.toml"))
