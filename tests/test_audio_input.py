"""The live audio input without a sound card: the ring the callback fills, a fake
stream fed numpy blocks for the device faults (absent, stopped, stalled, hung), the
real PortAudio with no device, no PortAudio library, the show's [inputs.audio]
table, and a real-time JACK dummy server when jackd is installed."""

from __future__ import annotations

import importlib.abc
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from itertools import cycle
from pathlib import Path

import numpy as np
import pytest
import soundfile

import runtime.inputs.audio as audio
from runtime import PROJECT_ROOT
from runtime.errors import ConfigError, InputError
from runtime.inputs import build_inputs
from runtime.inputs.audio import AudioConfig, AudioInput, BlockRing
from runtime.inputs.audio_offline import OfflineAudioFeed
from runtime.show import load_show
from runtime.signals import SignalBus

try:
    from sounddevice import PortAudioError
except OSError:  # no PortAudio library: any OSError stands for a device fault
    PortAudioError = OSError

SR = 48000
BLOCK = 512


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# The ring the callback fills.


def test_ring_returns_the_blocks_mixed_to_mono_across_the_wrap():
    ring = BlockRing(4 * BLOCK, 2)
    data = np.random.default_rng(0).standard_normal((20000, 2)).astype(np.float32)
    out = np.zeros(BLOCK, dtype=np.float32)
    taken, pos = [], 0
    for size in cycle([300, 512, 700, 64]):  # callbacks of any size
        if pos + size > data.shape[0]:
            break
        ring.callback(data[pos : pos + size], size, None, None)
        pos += size
        while ring.read_into(out):
            taken.append(out.copy())
    got = np.concatenate(taken)
    assert got.size > 18000
    np.testing.assert_allclose(got, data[: got.size].mean(axis=1), rtol=1e-6)
    assert ring.overruns == 0


def test_callback_allocates_no_sample_buffers():
    block = np.ones((4096, 2), dtype=np.float32)  # one copy would be 32 KiB
    ring = BlockRing(8 * 4096, 2)
    ring.callback(block, 4096, None, None)

    def peak_bytes(call) -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(100):
                call()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    # The measurement sees a copy (so the test can fail) ...
    assert peak_bytes(lambda: block.copy()) >= 32 * 1024
    # ... and the callback makes none.
    assert peak_bytes(lambda: ring.callback(block, 4096, None, None)) < 4096
    assert ring.written == 101 * 4096


def test_callback_counts_overflow_flags():
    ring = BlockRing(4 * BLOCK, 1)
    block = np.zeros((BLOCK, 1), dtype=np.float32)
    ring.callback(block, BLOCK, None, None)
    ring.callback(block, BLOCK, None, True)  # sounddevice's CallbackFlags are truthy on overflow
    assert ring.flagged == 1


def test_a_lapped_reader_skips_to_the_present_and_counts_it():
    ring = BlockRing(8 * BLOCK, 1)
    for k in range(20):  # the producer runs 20 blocks ahead of a stuck analysis
        ring.callback(np.full((BLOCK, 1), k, dtype=np.float32), BLOCK, None, None)
    out = np.zeros(BLOCK, dtype=np.float32)
    assert ring.read_into(out)
    assert ring.overruns == 1
    assert out[0] == 16  # half a ring behind the newest block, not block 0
    while ring.read_into(out):
        pass
    assert out[0] == 19


# A fake sound card: streams whose callback the test feeds.


class FakeStream:
    """Stands in for an absent sound card's stream; `feed` plays the callback's part."""

    def __init__(self, ring: BlockRing, *, hang_on_close: threading.Event | None = None):
        self.ring = ring
        self.samplerate = float(SR)
        self.channels = ring.channels
        self.active = False
        self.closed = False
        self.hang_on_close = hang_on_close

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        if self.hang_on_close is not None:
            self.hang_on_close.wait()
        self.active = False

    def close(self) -> None:
        self.closed = True

    def feed(self, y: np.ndarray) -> None:
        """Deliver y block by block, no faster than the analysis takes them."""
        for k in range(y.size // BLOCK):
            while self.ring.available() > 8 * BLOCK:
                time.sleep(0.001)
            self.ring.callback(y[k * BLOCK : (k + 1) * BLOCK, None], BLOCK, None, None)


class FakeOpener:
    """A sound card that is absent for the first `absent` opens."""

    def __init__(self, *, absent: int = 0, hang_on_close: threading.Event | None = None):
        self.absent = absent
        self.hang_on_close = hang_on_close
        self.calls = 0
        self.refreshes = 0
        self.abandoned = False
        self.streams: list[FakeStream] = []

    def open(self, *, device, sample_rate_hz, block):
        self.calls += 1
        if self.calls <= self.absent:
            raise PortAudioError("Error querying device -1")
        ring = BlockRing(block * audio.RING_BLOCKS, 1)
        stream = FakeStream(ring, hang_on_close=self.hang_on_close)
        self.streams.append(stream)
        return stream, "fake card", ring

    def refresh(self) -> None:
        self.refreshes += 1

    def abandon(self) -> None:
        self.abandoned = True


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32)


@pytest.fixture
def fast_retry(monkeypatch):
    monkeypatch.setattr(audio, "RETRY_S", 0.05)
    monkeypatch.setattr(audio, "CLOSE_TIMEOUT_S", 0.2)


def warnings(caplog, text: str) -> int:
    return sum(
        r.levelno == logging.WARNING and text in r.getMessage()
        for r in caplog.records
        if r.name == "runtime.inputs.audio"
    )


def test_absent_device_is_reported_once_retried_and_then_plays(fast_retry, caplog):
    bus = SignalBus()
    opener = FakeOpener(absent=3)
    blocks: list[int] = []
    inp = AudioInput(AudioConfig(), bus, opener=opener, on_block=lambda i, v: blocks.append(i))
    inp.start()  # an absent device never raises here
    try:
        assert wait_for(lambda: opener.streams)
        assert opener.calls == 4
        assert opener.refreshes == 3  # the device list is re-read before each retry
        assert warnings(caplog, "no audio input (PortAudioError") == 1
        opener.streams[0].feed(noise(1.0))
        # A new stream's analysis starts at the present: the few blocks fed before
        # it began (at most the 8 `feed` lets pile up) are skipped.
        assert wait_for(lambda: len(blocks) >= SR // BLOCK - 9)
        assert bus.get("audio:rms") > 0.0
        assert "fake card" in inp.status()
    finally:
        inp.stop()
    assert opener.streams[0].closed


def test_a_stream_that_stops_is_reported_and_reopened(fast_retry, caplog):
    bus = SignalBus()
    opener = FakeOpener()
    blocks: list[int] = []
    inp = AudioInput(AudioConfig(), bus, opener=opener, on_block=lambda i, v: blocks.append(i))
    inp.start()
    try:
        assert wait_for(lambda: opener.streams)
        opener.streams[0].feed(noise(0.5))
        assert wait_for(lambda: len(blocks) >= 46 - 9)
        before = len(blocks)
        opener.streams[0].active = False  # the device went away mid-show
        assert wait_for(lambda: len(opener.streams) == 2)
        assert opener.streams[0].closed
        assert warnings(caplog, "the audio stream stopped") == 1
        opener.streams[1].feed(noise(0.5, seed=1))
        assert wait_for(lambda: len(blocks) >= before + 46 - 9)
        assert "1 stream errors" in inp.status()
    finally:
        inp.stop()


def test_a_stream_that_delivers_nothing_is_reopened(fast_retry, caplog, monkeypatch):
    monkeypatch.setattr(audio, "STALL_S", 0.3)
    opener = FakeOpener()
    inp = AudioInput(AudioConfig(), SignalBus(), opener=opener)
    inp.start()
    try:
        assert wait_for(lambda: len(opener.streams) >= 3)  # stalled for STALL_S, reopened
        assert warnings(caplog, "delivered nothing") == 1  # once, not per stream
    finally:
        inp.stop()


def test_a_stream_that_hangs_when_closed_is_abandoned(fast_retry):
    release = threading.Event()
    opener = FakeOpener(hang_on_close=release)
    inp = AudioInput(AudioConfig(), SignalBus(), opener=opener)
    inp.start()
    try:
        assert wait_for(lambda: opener.streams)
        opener.streams[0].active = False
        assert wait_for(lambda: opener.abandoned)
        assert "off until restart" in inp.status()
        started = time.perf_counter()
        inp.stop()
        assert time.perf_counter() - started < 1.0
        assert len(opener.streams) == 1  # no retry on a wedged PortAudio
    finally:
        release.set()
        inp.stop()


def test_no_sound_card_with_the_real_portaudio_is_reported(fast_retry):
    sd = pytest.importorskip("sounddevice", exc_type=ImportError)
    if any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        pytest.skip("this machine has an audio input")
    inp = AudioInput(AudioConfig(device="Scarlett"), SignalBus())
    inp.start()
    try:
        assert wait_for(lambda: "no audio input" in inp.status())
        assert "Scarlett" in inp.status()
    finally:
        inp.stop()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """What `import sounddevice` does when libportaudio2 is not installed."""

    def find_spec(self, name, path, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_library_reads_as_no_device(monkeypatch, fast_retry):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(InputError, match=r"no audio device.*PortAudio library not found"):
        audio.load_sounddevice()
    inp = AudioInput(AudioConfig(), SignalBus())
    inp.start()
    try:
        assert wait_for(lambda: "libportaudio2" in inp.status())
    finally:
        inp.stop()


# The show's [inputs.audio] table.


@pytest.fixture
def show_dir(tmp_path) -> Path:
    t = np.arange(SR) / SR
    soundfile.write(tmp_path / "music.wav", 0.3 * np.sin(2 * np.pi * 220 * t), SR)
    return tmp_path


def write_show(folder: Path, audio_table: str) -> Path:
    path = folder / "show.toml"
    path.write_text(f'[show]\nname = "t"\n\n[inputs.audio]\n{audio_table}\n', encoding="utf-8")
    return path


def test_show_builds_a_file_input_live_and_a_feed_offline(show_dir):
    show = load_show(write_show(show_dir, 'file = "music.wav"\nblock = 1024'))
    inputs, feeds = build_inputs(show.inputs, SignalBus(), folder=show.folder, offline=False)
    assert feeds == [] and isinstance(inputs[0], AudioInput)
    assert inputs[0].config.block == 1024
    assert inputs[0].config.file == show_dir / "music.wav"
    inputs, feeds = build_inputs(show.inputs, SignalBus(), folder=show.folder, offline=True)
    assert inputs == [] and isinstance(feeds[0], OfflineAudioFeed)
    assert feeds[0].duration_s == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("blok = 512", r"show.toml:5: \[inputs.audio\] 'blok': unknown key \(did you mean 'block'"),
        ("block = 500", r"'block': expected a block of 256, 512, 1024, 2048 samples, got 500"),
        ('block = "512"', r"'block': expected an integer"),
        ('file = "music.wav"\ndevice = 1', r"'file': give 'device' .* or 'file', not both"),
        ('file = "missing.flac"', r"'file': audio file not found: .*missing.flac"),
        ('file = "show.toml"', r"'file': expected an audio file"),
        ("gain_db = 100", r"'gain_db': expected -60..60"),
    ],
)
def test_mistakes_in_the_table_name_the_key(show_dir, table, message):
    show = load_show(write_show(show_dir, table))
    with pytest.raises(ConfigError, match=message):
        build_inputs(show.inputs, SignalBus(), folder=show.folder, offline=False)


def test_an_offline_render_needs_a_file(show_dir):
    show = load_show(write_show(show_dir, 'device = "Scarlett"'))
    with pytest.raises(ConfigError, match="offline render needs 'file'"):
        build_inputs(show.inputs, SignalBus(), folder=show.folder, offline=True)


# A real-time device: the JACK dummy server, started and stopped here.

_JACK_SCENARIO = """
import json, os, subprocess, sys, tempfile, time
name = sys.argv[1]
import runtime.inputs.audio as audio
from runtime.signals import SignalBus
audio.RETRY_S = 0.5
blocks = []
inp = audio.AudioInput(audio.AudioConfig(device="system"), SignalBus(),
                       on_block=lambda i, v: blocks.append(i))
out = {}
jack = None
try:
    inp.start()
    time.sleep(1.0)
    out["before"] = inp.status()
    log = tempfile.TemporaryFile()
    jack = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy",
                             "-r", "48000", "-p", "1024"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 15
    while time.time() < deadline and not blocks and jack.poll() is None:
        time.sleep(0.05)
    if not blocks and jack.poll() is not None:
        log.seek(0)
        said = log.read().decode(errors="replace").splitlines()
        banner = ("jackdmp", "Copyright", "WARRANTY", "free software", "COPYING")
        said = [line for line in said if line.strip() and not any(b in line for b in banner)]
        out["jackd_failed"] = " / ".join(said)[-500:]
        print("RESULT " + json.dumps(out))
        sys.exit(0)
    first = len(blocks)
    time.sleep(2.0)
    out["blocks_in_2_s"] = len(blocks) - first
    out["open"] = inp.status()
    jack.terminate()
    jack.wait(10)
    time.sleep(3.0)
    out["after"] = inp.status()
finally:
    if jack is not None and jack.poll() is None:
        jack.kill()
    inp.stop()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed (apt jackd2)")
def test_jack_dummy_device_comes_plays_and_goes():
    # In a child process: PortAudio's JACK backend hangs for good closing a stream
    # whose server died, and the input abandons that stream.
    name = f"latentstage-test-{os.getpid()}"
    env = {
        **os.environ,
        "JACK_DEFAULT_SERVER": name,
        "JACK_NO_START_SERVER": "1",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", _JACK_SCENARIO, name],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=PROJECT_ROOT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    out = json.loads(lines[0][len("RESULT ") :])
    if "jackd_failed" in out:
        pytest.skip(f"jackd could not start here: {out['jackd_failed']}")
    assert "no audio input" in out["before"]
    assert "'system' 48000 Hz" in out["open"]
    # A real-time device: 48000 / 512 = 93.75 blocks a second.
    assert 150 <= out["blocks_in_2_s"] <= 225
    assert "off until restart" in out["after"] or "no audio input" in out["after"]


def test_a_file_that_cannot_be_decoded_is_reported_and_the_show_plays_on(tmp_path, caplog):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + bytes(100))  # a FLAC header and nothing usable
    inp = AudioInput(AudioConfig(file=bad), SignalBus(), realtime=False)
    inp.start()
    try:
        assert inp.wait_done(5.0)
        assert "cannot read" in inp.status()
        assert "retrying" not in inp.status()
        assert warnings(caplog, "cannot read") == 1
    finally:
        inp.stop()


def test_listeners_hear_every_block_before_the_gain(show_dir):
    bus = SignalBus()
    config = AudioConfig(file=show_dir / "music.wav", gain_db=20.0)
    inp = AudioInput(config, bus, realtime=False)
    heard: list[tuple[np.ndarray, float]] = []
    inp.listen(lambda block, rate_hz: heard.append((block, rate_hz)))
    inp.listen(lambda block, rate_hz: 1 / 0)  # a broken listener is dropped, not fatal
    inp.start()
    try:
        assert inp.wait_done(10.0)
    finally:
        inp.stop()
    samples = np.concatenate([block for block, _ in heard])
    t = np.arange(SR) / SR
    music = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    assert {rate for _, rate in heard} == {SR}
    assert len(samples) == (SR // config.block) * config.block
    # 16-bit PCM in the file: the samples heard are the file's, not gained 10x.
    assert np.abs(samples - music[: len(samples)]).max() < 1e-4
    assert bus.get("audio:rms") is not None
