"""What comes from outside is not always a number, or a packet: NaN, +-inf and 1e308
from OSC, MIDI, audio and hands, and garbage on the wire. None of it may reach a
control, stop an input or flood the log, and the next valid value must work at once
(issue 9: one NaN froze a gallery's picture for good)."""

from __future__ import annotations

import logging
import math
import random
import socket
import struct
import threading
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from runtime.filters import Envelope, OneEuro, Smooth
from runtime.inputs import midi, osc
from runtime.inputs.audio import AudioConfig, AudioInput
from runtime.inputs.audio_features import SIGNALS as AUDIO_SIGNALS
from runtime.inputs.hands.geometry import Hand
from runtime.inputs.hands.tracker import HandTracker
from runtime.inputs.midi import MidiInput, PortSpec
from runtime.inputs.osc import OscInput
from runtime.loop import FrameStats, _hud_lines
from runtime.mapping import MappingEngine, Target
from runtime.signals import TEXT_CAPACITY, Event, SignalBus, Snapshot
from tests.midi_ports import wait_until
from tests.test_hands import image_hand, settings

BAD = (math.nan, math.inf, -math.inf)
HUGE = 1e308
DT_S = 1 / 60


# -- the bus: the one edge every input passes ------------------------------------------


def test_the_bus_drops_non_finite_values_counts_them_per_source_and_logs_once(caplog):
    bus = SignalBus()
    for name in ("osc:/fader/1", "midi:cc/1", "audio:rms", "hand:0/x", "sensor:/t"):
        bus.set(name, 0.5)
    bus.snapshot()
    caplog.set_level(logging.WARNING, logger="runtime.signals")
    for _ in range(3):
        for value in (*BAD, np.float32("nan"), 10**400):
            bus.set("osc:/fader/1", value)
            bus.set("osc:/fader/2", value)
    for name in ("midi:cc/1", "audio:rms", "hand:0/x", "sensor:/t"):
        bus.set(name, math.nan)
    snap = bus.snapshot()
    assert snap.events == ()  # nothing was written
    assert snap.values["osc:/fader/1"] == 0.5 and "osc:/fader/2" not in snap.values
    assert bus.rejected() == {"osc": 30, "midi": 1, "audio": 1, "hand": 1, "sensor": 1}
    assert len(caplog.records) == 5  # one per source kind
    assert "osc:/fader/1" in caplog.records[0].getMessage()
    bus.set("osc:/fader/1", 1e308)  # huge but finite: the mapping's business
    assert bus.get("osc:/fader/1") == 1e308


def test_the_text_queue_is_bounded():
    bus = SignalBus()
    for i in range(10 * TEXT_CAPACITY):
        bus.texts.put("osc:/prompt", f"text {i}")
    texts = bus.texts.take()
    assert len(texts) == TEXT_CAPACITY and texts[-1] == (
        "osc:/prompt",
        f"text {10 * TEXT_CAPACITY - 1}",
    )


def test_the_hud_says_what_was_rejected():
    bus = SignalBus()
    player = SimpleNamespace(
        show=SimpleNamespace(name="gallery"),
        generator=SimpleNamespace(kind="cppn", device=SimpleNamespace(type="cpu"), size_px=(8, 8)),
        worker=SimpleNamespace(fps=lambda: 10.0),
        draws_in_gl=False,
        uploads=None,
        last_stages=[],
        inputs=[],
        clip=None,
        controller_lines=list,
        capture=None,
        decks=None,
        bus=bus,
    )
    stats = FrameStats(budget_ms=16.7)
    assert not any("rejected" in line for line in _hud_lines(player, stats, 60))
    for _ in range(12):
        bus.set("osc:/fader/1", math.nan)
    bus.set("audio:rms", math.inf)
    assert "rejected non-finite: audio 1, osc 12" in _hud_lines(player, stats, 60)


# -- filters: a sample that is not finite never enters the state ----------------------


@pytest.mark.parametrize(
    "make", [lambda: OneEuro(1.0, 0.5), lambda: Envelope(0.05, 0.3), lambda: Smooth(0.2)]
)
def test_filters_ignore_non_finite_samples_and_survive_huge_ones(make):
    clean, dirty = make(), make()
    for f in (clean, dirty):
        f(0.2, DT_S)
    last = dirty(0.4, DT_S)
    clean(0.4, DT_S)
    for bad in BAD:
        assert dirty(bad, DT_S) == last
    # The state is untouched: the next valid sample gives what it gives without them.
    assert dirty(0.6, DT_S) == clean(0.6, DT_S)
    for huge in (HUGE, -HUGE, HUGE, -HUGE):
        assert math.isfinite(dirty(huge, DT_S))
    assert math.isfinite(dirty(0.5, DT_S))


def test_one_euro_on_arrays_skips_a_frame_with_a_nan_landmark():
    f = OneEuro(1.0, 0.5)
    assert np.isnan(f(np.array([np.nan, 1.0]), DT_S)).any()  # nothing to hold yet: passed on
    first = f(np.array([0.1, 0.2]), DT_S)
    assert np.array_equal(first, [0.1, 0.2])  # the NaN never entered: this passes through
    assert np.array_equal(f(np.array([0.5, np.inf]), DT_S), first)
    assert np.isfinite(f(np.array([HUGE, -HUGE]), DT_S)).all()
    assert np.isfinite(f(np.array([-HUGE, HUGE]), DT_S)).all()


# -- the mapping engine: every stage finite, every target in range ----------------------


TARGETS = {
    name: Target(name, 0.0, lo, hi)
    for name, lo, hi in (
        ("t.linear", 0.0, 1.0),
        ("t.exp", 0.0, 10.0),
        ("t.power", -5.0, 5.0),
        ("t.log", -5.0, 5.0),
        ("t.smoothstep", -5.0, 5.0),
        ("t.ease", -5.0, 5.0),
        ("t.product", 0.0, 1.0),
        ("t.sum", 0.0, 1.0),
        ("t.mean_free", -3.0, 3.0),
        ("t.one_euro", 0.0, 1.0),
        ("t.envelope", 0.0, 1.0),
        ("t.smooth", 0.0, 1.0),
        ("t.smooth_free", 0.0, 1.0),
        ("t.trigger", 0.0, 1.0),
        ("t.quantized", 0.0, 4.0),
        ("t.both", 0.0, 2.0),
    )
} | {"latent.speed": Target("latent.speed", 0.0, -4.0, 4.0, integrates="latent.phase")}

MAPPING = """
[[map]]
source = "osc:/a"
target = "t.linear"

[[map]]
source = "osc:/a"
target = "t.exp"
curve = "exp"
clamp = false

[[map]]
source = "osc:/a"
target = "t.power"
curve = 3.0
clamp = false
out = [0.0, 5.0]

[[map]]
source = "osc:/a"
target = "t.log"
curve = "log"
clamp = false
out = [0.0, 5.0]

[[map]]
source = "osc:/a"
target = "t.smoothstep"
curve = "smoothstep"
clamp = false
out = [0.0, 5.0]

[[map]]
source = "osc:/a"
target = "t.ease"
curve = "ease_out"
clamp = false
invert = true
out = [0.0, 5.0]

[[map]]
sources = ["osc:/a", "osc:/b"]
combine = "product"
target = "t.product"

[[map]]
sources = ["osc:/a", "osc:/b"]
target = "t.sum"
in = [0.0, 2.0]

[[map]]
sources = ["osc:/a", "osc:/b"]
combine = "mean"
target = "t.mean_free"
clamp = false
in = [-1e300, 1e300]

[[map]]
source = "osc:/a"
target = "t.one_euro"
one_euro = { min_cutoff_hz = 1.0, beta = 0.5 }

[[map]]
source = "osc:/a"
target = "t.envelope"
envelope = { attack_s = 0.05, release_s = 0.3 }

[[map]]
source = "osc:/a"
target = "t.smooth"
smooth_s = 0.2

[[map]]
source = "osc:/a"
target = "t.smooth_free"
smooth_s = 0.2
clamp = false

[[map]]
source = "osc:/a"
target = "t.trigger"
trigger = 0.5
envelope = { attack_s = 0.0, release_s = 0.2 }

[[map]]
source = "osc:/a"
target = "t.quantized"
quantize = 0.25

[[map]]
source = "osc:/a"
target = "t.both"
clamp = false

[[map]]
source = "osc:/b"
target = "t.both"
out = [-1.0, 0.0]

[[map]]
source = "osc:/a"
target = "latent.speed"
clamp = false
"""

#: Entries with no memory: after any bad value, the next valid one gives exactly what
#: an engine that never saw the bad value gives.
STATELESS = ("t.linear", "t.exp", "t.power", "t.log", "t.smoothstep", "t.ease")
STATELESS += ("t.product", "t.sum", "t.mean_free", "t.quantized", "t.both", "latent.speed")
#: Entries with filters, fed clamped values: a huge value is the top of the range.
CLAMPED_FILTERS = ("t.one_euro", "t.envelope", "t.smooth")


def mapping_engine(tmp_path: Path) -> MappingEngine:
    path = tmp_path / "robust.toml"
    path.write_text(MAPPING)
    return MappingEngine((path,), TARGETS)


def frame(engine: MappingEngine, a: float, b: float, n: int) -> dict[str, float]:
    snapshot = Snapshot({"osc:/a": a, "osc:/b": b}, (Event("osc:/a", a, 0.0),))
    return engine.evaluate(snapshot, n * DT_S, DT_S)


def assert_sane(values: dict[str, float]) -> None:
    for name, value in values.items():
        assert math.isfinite(value), name
        if name in TARGETS:
            assert TARGETS[name].lo <= value <= TARGETS[name].hi, (name, value)


@pytest.mark.parametrize("bad", [*BAD, HUGE, -HUGE], ids=["nan", "inf", "-inf", "1e308", "-1e308"])
def test_every_stage_stays_finite_in_range_and_recovers_at_once(tmp_path, bad):
    dirty, clean = mapping_engine(tmp_path), mapping_engine(tmp_path)
    assert_sane(frame(dirty, 0.3, 0.6, 0))
    frame(clean, 0.3, 0.6, 0)
    for n in range(1, 4):  # a few frames of it, on one source and on both
        assert_sane(frame(dirty, bad, 0.6, n))
        assert_sane(frame(dirty, bad, bad, n))
        assert_sane(frame(dirty, 0.6, bad, n))
    after = frame(dirty, 0.7, 0.2, 4)
    assert_sane(after)
    expected = frame(clean, 0.7, 0.2, 4)
    for name in STATELESS:
        assert after[name] == pytest.approx(expected[name], abs=1e-12), name


@pytest.mark.parametrize("bad", [*BAD, HUGE], ids=["nan", "inf", "-inf", "1e308"])
def test_a_filter_goes_on_from_where_it_was(tmp_path, bad):
    """A value that is not finite is not seen at all (the output holds, the filters
    skip the frame); a huge one is the top of a clamped range. Either way the filters
    go on as after a normal value."""
    dirty, clean = mapping_engine(tmp_path), mapping_engine(tmp_path)
    before = frame(dirty, 0.3, 0.6, 0)
    frame(clean, 0.3, 0.6, 0)
    during = frame(dirty, bad, 0.6, 1)
    if math.isfinite(bad):
        same = frame(clean, 1.0, 0.6, 1)
        assert [during[n] for n in CLAMPED_FILTERS] == [same[n] for n in CLAMPED_FILTERS]
    else:
        assert [during[n] for n in CLAMPED_FILTERS] == [before[n] for n in CLAMPED_FILTERS]
    skipped = 0 if math.isfinite(bad) else 1
    for n in range(2, 6):
        d, c = frame(dirty, 0.7, 0.2, n), frame(clean, 0.7, 0.2, n - skipped)
        assert [d[name] for name in CLAMPED_FILTERS] == [c[name] for name in CLAMPED_FILTERS]


def test_an_unclamped_smoother_is_not_wound_up_by_a_huge_value(tmp_path):
    e = mapping_engine(tmp_path)
    for n in range(60):
        top = frame(e, HUGE, 0.5, n)["t.smooth_free"]
    assert top == 1.0
    # The smoother went at most one target span beyond the range (not to 1e308,
    # where it would stay for 700 time constants): back within 1.5 s at smooth_s 0.2.
    values = [frame(e, 0.5, 0.5, n)["t.smooth_free"] for n in range(60, 150)]
    assert values[20] < 1.0
    assert values[-1] == pytest.approx(0.5, abs=0.01)


def test_a_huge_speed_integrates_to_a_finite_phase(tmp_path):
    e = mapping_engine(tmp_path)
    # inf is not a number: the first frame has no speed yet, later ones hold the last.
    for n in range(600):
        values = frame(e, HUGE if n % 2 else math.inf, 0.0, n)
    assert values["latent.speed"] == 4.0  # the top of its range, not 1e308
    assert values["latent.phase"] == pytest.approx(4.0 * 599 * DT_S)
    for n in range(600, 660):
        values = frame(e, -HUGE, 0.0, n)
    assert values["latent.speed"] == -4.0
    assert values["latent.phase"] == pytest.approx(4.0 * 539 * DT_S)
    assert frame(e, 0.75, 0.0, 660)["latent.speed"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("curve = nan", "an exponent must be a number above 0"),
        ("curve = inf", "an exponent must be a number above 0"),
        ("trigger = nan", "expected a finite number"),
        ("quantize = inf", "expected a number above 0"),
        ("smooth_s = nan", "expected a number above 0"),
        ("one_euro = { beta = nan }", "'beta': expected a number"),
        ("envelope = { attack_s = inf }", "'attack_s': expected a number"),
        ("in = [-1e308, 1e308]", "too wide"),
        ("out = [nan, 1.0]", "expected two numbers"),
    ],
)
def test_a_mapping_file_cannot_hold_nan_or_inf(tmp_path, entry, message):
    from runtime.errors import ConfigError

    path = tmp_path / "m.toml"
    path.write_text(f'[[map]]\nsource = "osc:/a"\ntarget = "t.linear"\n{entry}\n')
    with pytest.raises(ConfigError, match=message):
        MappingEngine((path,), TARGETS)


def test_an_lfo_cannot_be_nan_or_inf(tmp_path):
    from runtime.errors import ConfigError

    path = tmp_path / "m.toml"
    for table in ("rate_hz = inf", "phase = nan"):
        path.write_text(f"[lfo.wobble]\n{table}\n")
        with pytest.raises(ConfigError, match="expected"):
            MappingEngine((path,), TARGETS)


# -- OSC over real UDP ------------------------------------------------------------------


@pytest.fixture
def osc_input():
    bus = SignalBus()
    inp = OscInput(bus, port=0)
    inp.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        yield inp, sender
    finally:
        sender.close()
        inp.stop()


def message(address: str, *args: tuple[object, str]) -> bytes:
    builder = OscMessageBuilder(address)
    for value, tag in args:
        builder.add_arg(value, tag)
    return builder.build().dgram


def send_and_wait(inp: OscInput, sender: socket.socket, data: bytes) -> None:
    handled = inp.packets
    sender.sendto(data, ("127.0.0.1", inp.port))
    assert wait_until(lambda: inp.packets > handled, 2.0), "the OSC input did not answer"


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        *((v, "f") for v in BAD),
        *((v, "d") for v in BAD),
        (HUGE, "d"),
        (-HUGE, "d"),
    ],
    ids=["f-nan", "f-inf", "f--inf", "d-nan", "d-inf", "d--inf", "d-1e308", "d--1e308"],
)
def test_osc_nan_inf_and_huge_numbers_never_reach_a_control(tmp_path, osc_input, value, tag):
    inp, sender = osc_input
    path = tmp_path / "m.toml"
    path.write_text('[[map]]\nsource = "osc:/fader/1"\ntarget = "latent.speed"\n')
    engine = MappingEngine((path,), TARGETS)
    send_and_wait(inp, sender, message("/fader/1", (0.25, "f")))
    assert engine.evaluate(inp.bus.snapshot(), 0.0, DT_S)["latent.speed"] == -2.0
    for n in range(1, 4):
        send_and_wait(inp, sender, message("/fader/1", (value, tag), (value, tag)))
        values = engine.evaluate(inp.bus.snapshot(), n * DT_S, DT_S)
        assert_sane(values)
        assert values["latent.speed"] == (
            -2.0 if not math.isfinite(value) else math.copysign(4, value)
        )
    assert inp.bus.rejected() == ({} if math.isfinite(value) else {"osc": 9})  # 3 x 3 names
    send_and_wait(inp, sender, message("/fader/1", (0.75, tag)))
    values = engine.evaluate(inp.bus.snapshot(), 4 * DT_S, DT_S)
    assert values["latent.speed"] == 2.0  # the very next frame
    assert math.isfinite(values["latent.phase"])
    assert inp.bad_packets == 0 and inp.messages == 5


def test_an_osc_bundle_with_a_negative_element_size_is_dropped_not_looped_on(osc_input, caplog):
    """python-osc steps back by a negative size and parses the same bytes for ever,
    logging each time: one such packet hung the OSC thread and filled the log."""
    inp, sender = osc_input
    caplog.set_level(logging.WARNING)
    for size in (-4, -8, 0, 9999):
        bundle = b"#bundle\0" + bytes(8) + struct.pack(">i", size) + message("/a", (1.0, "f"))
        send_and_wait(inp, sender, bundle)
    nested = message("/deep", (1.0, "f"))
    for _ in range(osc.MAX_BUNDLE_DEPTH):
        nested = b"#bundle\0" + bytes(8) + struct.pack(">i", len(nested)) + nested
    send_and_wait(inp, sender, nested)
    assert inp.bus.get("osc:/deep") == 1.0  # as deep as allowed
    nested = b"#bundle\0" + bytes(8) + struct.pack(">i", len(nested)) + nested
    send_and_wait(inp, sender, nested)
    send_and_wait(inp, sender, message("/ok", (0.5, "f")))
    assert inp.bus.get("osc:/ok") == 0.5 and inp.bus.get("osc:/a", -1.0) == -1.0
    assert inp.bad_packets == 5
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "a bundle element's size is out of bounds; dropped (further ones are counted on the HUD)",
        f"bundles nested more than {osc.MAX_BUNDLE_DEPTH} deep; dropped (further ones are"
        " counted on the HUD)",
    ]


def test_osc_limits_keep_the_bus_small(osc_input, monkeypatch):
    inp, sender = osc_input
    monkeypatch.setattr(osc, "MAX_NAMES", 10)
    for i in range(20):
        send_and_wait(inp, sender, message(f"/n/{i}", (float(i), "f")))
    send_and_wait(inp, sender, message("/n/0", (99.0, "f")))  # known names still work
    send_and_wait(inp, sender, message("/prompt", ("x" * (osc.MAX_TEXT_LENGTH + 1), "s")))
    send_and_wait(inp, sender, message("/" + "a" * osc.MAX_ADDRESS_BYTES, (1.0, "f")))
    assert len(inp.bus.names()) == 10 and inp.bus.get("osc:/n/0") == 99.0
    assert inp.bus.texts.take() == []
    assert inp.refused == 11 and inp.bad_packets == 1
    assert "11 refused" in inp.status() and "1 bad" in inp.status()


def osc_fuzz_packets(rng: random.Random, count: int) -> list[bytes]:
    """`count` datagrams of every kind a noisy network or a broken sender makes."""

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (4 - len(b) % 4)

    def arg(tag: str) -> bytes:
        if tag in "ir":
            return struct.pack(">i", rng.randint(-(2**31), 2**31 - 1))
        if tag in "ht":
            return struct.pack(">q", rng.randint(-(2**63), 2**63 - 1))
        if tag == "f":
            return struct.pack(">f", rng.choice([*BAD, 3.4e38, -1.0, 0.5, 1e-45]))
        if tag == "d":
            return struct.pack(">d", rng.choice([*BAD, HUGE, -HUGE, 0.5, 5e-324]))
        if tag == "s":
            return pad("é".encode() * rng.randint(0, 40))
        if tag == "b":
            blob = rng.randbytes(rng.randint(0, 40))
            return struct.pack(">i", len(blob)) + blob + bytes(-len(blob) % 4)
        if tag == "m":
            return rng.randbytes(4)
        return b""  # T F N [ ]: no data

    def valid() -> bytes:
        tags = "".join(rng.choice("ihfdsbrmtTFN") for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.1:
            tags = "[" + tags + "]"
        address = f"/fuzz/{rng.randint(0, 5000)}"
        return pad(address.encode()) + pad(("," + tags).encode()) + b"".join(map(arg, tags))

    def bundle(depth: int = 0) -> bytes:
        body = b""
        for _ in range(rng.randint(0, 3)):
            element = bundle(depth + 1) if depth < 10 and rng.random() < 0.3 else valid()
            size = len(element)
            if rng.random() < 0.3:
                size = rng.choice([-4, -8, -size, 0, size + 4, size - 1, 2**31 - 1])
            body += struct.pack(">i", size) + element
        return b"#bundle\0" + rng.randbytes(8) + body

    def mutated() -> bytes:
        data = bytearray(valid())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        return bytes(data)

    def bad_tags() -> bytes:
        tags = "".join(rng.choice("ihfdsbrmtTFNcSI[]x?") for _ in range(rng.randint(1, 8)))
        return pad(b"/tags") + pad(("," + tags).encode()) + rng.randbytes(rng.randint(0, 40))

    def huge() -> bytes:
        size = rng.choice([9000, 30000, 65000])
        kind = rng.randrange(3)
        if kind == 0:  # a huge valid string
            return pad(b"/prompt") + pad(b",s") + pad(b"w" * (size - 20))
        if kind == 1:  # a huge address
            return pad(b"/" + b"a" * (size - 8)) + pad(b",")
        return rng.randbytes(size)

    makers = [
        (lambda: rng.randbytes(rng.randint(0, 64)), 20),
        (lambda: valid()[: rng.randint(0, 40)], 15),
        (mutated, 15),
        (bad_tags, 10),
        (valid, 20),
        (bundle, 15),
        (lambda: pad(b"/" + rng.randbytes(rng.randint(0, 300))), 5),
    ]
    weights = [w for _, w in makers]
    packets = [rng.choices(makers, weights)[0][0]() for _ in range(count)]
    for i in rng.sample(range(count), 60):
        packets[i] = huge()
    return packets


def run_osc_fuzz(inp: OscInput, packets: list[bytes]) -> tuple[int, int]:
    """Send as fast as the input takes them, with few packets in flight (none before a
    large one) so the kernel's receive buffer (about 200 KB) rarely overflows; a
    packet it drops anyway is counted as lost after a pause without progress.

    Returns:
        (sent, lost).
    """
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = lost = 0
    try:
        for data in packets:
            window = 0 if len(data) > 8192 else 64
            waited_s, handled = 0.0, inp.packets
            while sent - lost - inp.packets > window:
                time.sleep(0.0005)
                waited_s = 0.0 if inp.packets != handled else waited_s + 0.0005
                handled = inp.packets
                if waited_s > 0.2:  # nothing for a while: the rest were dropped
                    lost = sent - inp.packets
            sender.sendto(data, ("127.0.0.1", inp.port))
            sent += 1
        wait_until(lambda: inp.packets + lost >= sent, 2.0)
    finally:
        sender.close()
    return sent, sent - inp.packets


@pytest.mark.slow
def test_osc_fuzz_over_real_udp(osc_input, caplog, capfd, monkeypatch):
    inp, sender = osc_input
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    caplog.set_level(logging.WARNING)
    packets = osc_fuzz_packets(random.Random(9), 100_000)
    send_and_wait(inp, sender, message("/fader/1", (0.25, "f")))  # the show's own fader
    sent, lost = run_osc_fuzz(inp, packets)
    # Nearly every packet arrived (loopback drops only on a full buffer) and was counted.
    assert lost < 0.01 * sent
    assert inp.bad_packets > 0.5 * sent and inp.messages > 0.1 * sent
    assert inp.bus.rejected()["osc"] > 1000  # NaN and inf in float and double
    assert inp._thread is not None and inp._thread.is_alive() and not escaped
    # It answers a valid message at once (to an address it knew: the fuzz filled the
    # table of names, so a new one would be refused).
    sender.sendto(message("/fader/1", (0.5, "d")), ("127.0.0.1", inp.port))
    assert wait_until(lambda: inp.bus.get("osc:/fader/1") == 0.5, 1.0)
    # Nothing on stderr, a few log lines (one per kind of problem), none from python-osc.
    assert "Traceback" not in capfd.readouterr().err
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) < 50, [r.getMessage()[:100] for r in records]
    assert not [r for r in records if "pythonosc" in r.pathname]
    # Noise cannot grow the bus: names and texts stay within their limits.
    assert len(inp.bus.names()) <= osc.MAX_NAMES + 1
    assert len(inp.bus.texts.take()) <= TEXT_CAPACITY
    values = inp.bus.snapshot().values
    assert all(math.isfinite(v) for v in values.values())


# -- MIDI: garbage through the parsing path ---------------------------------------------


class FakeMidiIn:
    """Stands in for python-rtmidi's MidiIn (no MIDI hardware here): the test queues
    the byte lists a port would deliver."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.queue: deque[tuple[list[int], float]] = deque()

    def get_ports(self) -> list[str]:
        return [self.port]

    def open_port(self, index: int, name: str = "") -> None:
        pass

    def ignore_types(self, **kinds: bool) -> None:
        pass

    def get_message(self) -> tuple[list[int], float] | None:
        return self.queue.popleft() if self.queue else None

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


@pytest.fixture
def rtmidi_input(monkeypatch):
    """A MidiInput on the rtmidi backend, its reader thread running on a fake port."""
    bus = SignalBus()
    backend = midi.RtMidiBackend("auto")
    ports: list[FakeMidiIn] = []

    def new_client(name: str) -> FakeMidiIn:
        ports.append(FakeMidiIn("garbage synth"))
        return ports[-1]

    monkeypatch.setattr(backend, "_new_client", new_client)
    inp = MidiInput(bus, specs=(PortSpec("garbage"),), backend=backend)
    inp.scan()
    try:
        yield inp, ports[-1], bus
    finally:
        inp.stop()


def test_garbage_midi_bytes_are_counted_and_the_next_note_arrives(rtmidi_input, caplog):
    inp, port, bus = rtmidi_input
    caplog.set_level(logging.WARNING)
    garbage = [[], [0xE0], [0xF2, 1], [0x90, 60], [300, 1, 2], [0x90, 200, 1], [0x07]]
    for data in garbage:
        port.queue.append((data, 0.0))
    port.queue.append(([0x90, 60, 100], 0.0))
    assert wait_until(lambda: inp.backend.invalid == len(garbage) and not port.queue)
    assert wait_until(lambda: bus.get("midi:note/60") == pytest.approx(100 / 127))
    assert inp.errors == 0
    assert f"{len(garbage)} unreadable" in inp.status()
    assert len(caplog.records) == 2  # one line for each kind: ValueError, IndexError


def test_midi_fuzz_through_the_reader(rtmidi_input, caplog, monkeypatch):
    inp, port, bus = rtmidi_input
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    caplog.set_level(logging.WARNING)
    rng = random.Random(3)
    count = 100_000
    for _ in range(count):
        size = rng.choice([0, 1, 2, 3, 3, 3, 4, 8])
        data = [rng.choice([rng.randrange(0x80, 0x100), rng.randrange(0x80)]) for _ in range(size)]
        port.queue.append((data, 0.0))
    port.queue.append(([0x99, 36, 127], 0.0))
    assert wait_until(lambda: not port.queue, 30.0)
    assert wait_until(lambda: bus.get("midi:ch10/note/36") == 1.0, 1.0)
    assert inp.backend.invalid + inp.decoder.messages == count + 1
    assert inp.backend.invalid > count // 2
    assert inp.backend._reader is not None and inp.backend._reader.is_alive() and not escaped
    assert inp.errors == 0 and len(caplog.records) < 10
    assert all(math.isfinite(v) for v in bus.snapshot().values.values())


# -- audio and hands: values that come out NaN -------------------------------------------


def test_nan_audio_features_are_dropped_and_counted():
    bus = SignalBus()
    inp = AudioInput(AudioConfig(), bus)
    values = dict.fromkeys(AUDIO_SIGNALS, 0.25)
    inp._publish(values)
    inp._publish(dict.fromkeys(values, math.nan))
    assert bus.rejected() == {"audio": len(values)}
    assert bus.get("audio:rms") == 0.25
    inp._publish(dict.fromkeys(values, 0.5))
    assert bus.get("audio:rms") == 0.5


def test_nan_hand_landmarks_are_dropped_and_counted():
    bus = SignalBus()
    tracker = HandTracker(bus, settings(mirror=False))
    broken = image_hand(0.5, 0.5)
    broken[9, 1] = np.nan
    tracker.update([Hand(broken)], 0.0, 1.0)
    assert bus.rejected()["hand"] > 0
    assert "hand:0/y" not in bus.names()
    tracker.update([Hand(image_hand(0.3, 0.5))], 0.05, 1.0)
    assert bus.get("hand:0/x") == pytest.approx(0.3)  # the NaN never entered the filter
    tracker.update([Hand(broken)], 0.1, 1.0)  # held: the filter gives its last output
    assert bus.get("hand:0/x") == pytest.approx(0.3)
    tracker.update([Hand(image_hand(0.6, 0.5))], 0.15, 1.0)
    assert 0.3 < bus.get("hand:0/x") <= 0.6
    assert all(math.isfinite(v) for v in bus.snapshot().values.values())


def test_nan_audio_samples_are_analysed_as_silence_and_the_analysis_recovers(caplog):
    from tests.test_audio_input import BLOCK, FakeOpener, noise, wait_for

    bus = SignalBus()
    opener = FakeOpener()
    written: list[dict[str, float]] = []
    inp = AudioInput(AudioConfig(), bus, opener=opener, on_block=lambda i, v: written.append(v))
    inp.start()
    try:
        assert wait_for(lambda: opener.streams)
        y = noise(0.5)
        y[10 * BLOCK : 12 * BLOCK] = np.nan  # two blocks of a broken driver
        y[20 * BLOCK + 7] = np.inf
        y[30 * BLOCK + 9] = 1e20  # finite, but it would overflow the spectra
        opener.streams[0].feed(y)
        assert wait_for(lambda: inp.bad_blocks == 4)
        before = len(written)
        opener.streams[0].feed(noise(0.3, seed=1))
        assert wait_for(lambda: len(written) >= before + 20)
        # Read as silence: no feature is NaN, before or after.
        assert all(math.isfinite(v) for values in written for v in values.values())
        assert bus.get("audio:rms") > 0.0 and bus.rejected() == {}
        assert "4 bad blocks" in inp.status()
        assert sum("not finite" in r.getMessage() for r in caplog.records) == 1
    finally:
        inp.stop()


def test_an_audio_file_with_nan_samples_reads_as_silence_there(tmp_path, caplog):
    import soundfile

    from runtime.inputs.audio_offline import load_mono

    y = noise_samples(4800)
    y[100:108] = np.nan
    y[108:110] = 1e30
    soundfile.write(tmp_path / "broken.wav", y, 48000, subtype="FLOAT")
    loaded, _ = load_mono(tmp_path / "broken.wav")
    assert np.isfinite(loaded).all() and (loaded[100:110] == 0).all()
    assert "10 samples are not finite" in caplog.text


def noise_samples(n: int) -> np.ndarray:
    return 0.1 * np.random.default_rng(0).standard_normal(n).astype(np.float32)


def test_an_error_in_handling_a_packet_is_counted_without_a_traceback_on_stderr(
    osc_input, monkeypatch, caplog, capfd
):
    inp, sender = osc_input
    caplog.set_level(logging.WARNING)

    def broken(address: str, params: list) -> None:
        raise RuntimeError("a bug in our own handling")

    monkeypatch.setattr(inp, "receive", broken)
    for _ in range(3):
        send_and_wait(inp, sender, message("/fader/1", (0.5, "f")))
    monkeypatch.undo()
    send_and_wait(inp, sender, message("/fader/1", (0.75, "f")))
    assert inp.bus.get("osc:/fader/1") == 0.75 and inp.bad_packets == 3
    assert "Traceback" not in capfd.readouterr().err
    records = [r for r in caplog.records if r.name == "runtime.inputs.osc"]
    assert len(records) == 1 and records[0].exc_info is not None  # our bug: logged once
