"""Audio input: live features from a sound card, or from a file played in real time.

The `[inputs.audio]` table is read by runtime.inputs.audio_config.

The signals and their scales are listed in runtime.inputs.audio_features and
docs/INPUTS.md. In an offline render the same table gives a FrameFeed with the
librosa analysis of `file` (runtime.inputs.audio_offline).

Threads: the PortAudio callback (or the file feeder) only copies each block into a
preallocated ring; the analysis thread takes blocks from the ring, computes the
features (a few percent of real time) and writes them to the bus, so each block's
features are out before the next block arrives. A missing device, a missing
PortAudio library or a stream that stops is reported once; the device thread retries
every RETRY_S seconds and the show plays on.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from runtime.config import Table
from runtime.errors import InputError
from runtime.inputs.audio_config import MAX_SAMPLE, AudioConfig, read_config
from runtime.inputs.audio_features import (
    LEVELS,
    SIGNALS,
    TRIGGERS,
    BlockAnalyzer,
    Filterbanks,
)
from runtime.signals import SignalBus

log = logging.getLogger(__name__)

#: Seconds between two tries to open an absent device.
RETRY_S = 2.0
#: A stream that delivers nothing for this long counts as dead and is reopened.
STALL_S = 1.0
#: The rate the filterbanks are prepared for when the device's rate is not known yet.
DEFAULT_RATE_HZ = 48000.0
#: A stream that does not close within this time is abandoned.
CLOSE_TIMEOUT_S = 2.0
#: Ring capacity in blocks (about 0.35 s at 512 / 48 kHz).
RING_BLOCKS = 32


def build(table: Table, bus: SignalBus, *, folder: Path, offline: bool):
    """Build the audio input a show's `[inputs.audio]` table describes.

    Args:
        table: the `[inputs.audio]` table.
        bus: where the features go.
        folder: the show's folder.
        offline: True for a frame-exact render: returns a FrameFeed of the offline
            analysis of `file` (which is then required).
    Returns:
        An AudioInput (live or file played in real time), or an OfflineAudioFeed.
    Raises:
        ConfigError: a mistake in the table; offline without `file`; a file that
            cannot be decoded (offline).
    Thread: main.
    """
    config = read_config(table, folder=folder)
    if offline:
        if config.file is None:
            raise table.error(None, "an offline render needs 'file' (the audio to render to)")
        from runtime.inputs.audio_offline import OfflineAudioFeed, analyze_file

        return OfflineAudioFeed(analyze_file(config.file, config=config))
    return AudioInput(config, bus)


class BlockRing:
    """A single-producer single-consumer ring of audio frames, preallocated.

    The producer (the PortAudio callback or the file feeder) calls `callback`, which
    only copies the block in and advances a counter: no allocation of sample
    buffers, no lock, no file access, no logging. The consumer (the analysis thread)
    takes whole blocks, mixed to mono, with `read_into`.

    Args:
        capacity: frames held (a multiple of any block size used).
        channels: channels per frame (1 or 2; more in the input are ignored).
    Thread: `callback` from one producer; `read_into` and `available` from one consumer.
    """

    def __init__(self, capacity: int, channels: int) -> None:
        self.buffer = np.zeros((capacity, channels), dtype=np.float32)
        self.capacity = capacity
        self.channels = channels
        self.written = 0
        self.read = 0
        self.flagged = 0
        self.overruns = 0

    def callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Copy one block in (sounddevice's callback signature).

        Args:
            indata: (frames, channels) float32 samples.
            frames: number of frames.
            time_info: PortAudio timing (unused).
            status: sounddevice CallbackFlags; a true value (an overflow) is counted.
        Thread: the audio callback (real-time: copies only).
        """
        if status:
            self.flagged += 1
        start = self.written % self.capacity
        first = min(frames, self.capacity - start)
        ch = self.channels
        self.buffer[start : start + first] = indata[:first, :ch]
        if first < frames:
            self.buffer[: frames - first] = indata[first:frames, :ch]
        self.written += frames

    def available(self) -> int:
        """Frames written and not yet read. Thread: consumer."""
        return self.written - self.read

    def read_into(self, out: np.ndarray) -> bool:
        """Take the next len(out) frames, mixed to mono, into `out`.

        When the producer has lapped the consumer, the oldest frames are skipped
        (counted in `overruns`) so the analysis catches up with the present.

        Args:
            out: (block,) float32, filled in place.
        Returns:
            True when a whole block was taken, False when not enough had arrived.
        Thread: consumer.
        """
        n = out.shape[0]
        written = self.written
        if written - self.read > self.capacity - n:
            self.overruns += 1
            # Skip whole blocks until half the ring is left to read.
            behind = written - self.read - self.capacity // 2
            self.read += -(-behind // n) * n
        if written - self.read < n:
            return False
        start = self.read % self.capacity
        first = min(n, self.capacity - start)
        np.mean(self.buffer[start : start + first], axis=1, out=out[:first])
        if first < n:
            np.mean(self.buffer[: n - first], axis=1, out=out[first:])
        self.read += n
        return True


@dataclass
class Capture:
    """One open stream's ring and format, handed from a source to the analysis thread.

    Attributes:
        ring: the ring the stream's callback fills.
        sample_rate_hz: the stream's sample rate.
        label: what to show in status ("'Scarlett 2i2' 48000 Hz", "file set.flac").
        live: a device stream (its backlog is skipped when analysis starts).
        finished: set by a file source after its last block.
    """

    ring: BlockRing
    sample_rate_hz: float
    label: str
    live: bool = False
    finished: bool = False


class Stream(Protocol):
    """What the device thread needs of a sounddevice.InputStream."""

    samplerate: float
    channels: int
    active: bool

    def start(self) -> None:
        """Start calling the callback. Thread: the audio device thread."""
        ...

    def stop(self) -> None:
        """Stop calling the callback (may hang on a dead JACK stream). Thread: a helper."""
        ...

    def close(self) -> None:
        """Release the device. Thread: a helper."""
        ...


class StreamOpener(Protocol):
    """Opens device streams for AudioInput (PortAudioOpener; a test's fake where the
    hardware is absent)."""

    def open(
        self, *, device: str | int | None, sample_rate_hz: float | None, block: int
    ) -> tuple[Stream, str, BlockRing]:
        """Open (not start) a stream. Returns (stream, label, the ring its callback
        fills). Raises anything on failure. Thread: the audio device thread."""
        ...

    def refresh(self) -> None:
        """Re-read the device list before a retry. Thread: the audio device thread."""
        ...

    def abandon(self) -> None:
        """Give up on a stream that hangs when closed. Thread: the audio device thread."""
        ...


def load_sounddevice():
    """Import sounddevice, turning a missing PortAudio library into an InputError.

    Returns:
        The sounddevice module.
    Raises:
        InputError: PortAudio (libportaudio2) is not installed.
    Thread: any.
    """
    try:
        import sounddevice
    except OSError as exc:
        raise InputError(f"no audio device: {exc} (install libportaudio2)") from None
    return sounddevice


def find_input_device(sd, device: str | int | None) -> tuple[int | None, dict]:
    """Resolve a device name substring or index to an input device.

    Args:
        sd: the sounddevice module.
        device: name substring (case-insensitive), index, or None for the default.
    Returns:
        (index or None for the default, the device's info dict).
    Raises:
        InputError: no such input device (the message lists the inputs there are).
    Thread: any.
    """
    devices = list(sd.query_devices())
    inputs = [(i, d) for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    listing = ", ".join(f"{i}: {d['name']}" for i, d in inputs) or "none"
    if device is None:
        try:
            info = sd.query_devices(kind="input")
        except sd.PortAudioError as exc:
            raise InputError(f"no default audio input ({exc}); inputs: {listing}") from None
        return None, dict(info)
    if isinstance(device, int):
        for i, d in inputs:
            if i == device:
                return i, dict(d)
        raise InputError(f"no audio input with index {device}; inputs: {listing}")
    for i, d in inputs:
        if device.lower() in d["name"].lower():
            return i, dict(d)
    raise InputError(f"no audio input named like {device!r}; inputs: {listing}")


class PortAudioOpener:
    """Opens sounddevice input streams (the live default).

    Thread: the audio device thread.
    """

    def __init__(self) -> None:
        self.sd = None

    def open(
        self, *, device: str | int | None, sample_rate_hz: float | None, block: int
    ) -> tuple[Stream, str, BlockRing]:
        """Open (not start) an input stream and the ring its callback fills.

        Args:
            device: name substring, index or None (default input).
            sample_rate_hz: requested rate, or None for the device's default.
            block: frames per callback.
        Returns:
            (stream, label for status, ring).
        Raises:
            InputError: no PortAudio, or no such device.
            sounddevice.PortAudioError: the device refused the stream.
        Thread: the audio device thread.
        """
        if self.sd is None:
            self.sd = load_sounddevice()
        index, info = find_input_device(self.sd, device)
        channels = min(2, int(info["max_input_channels"]))
        rate = sample_rate_hz or float(info["default_samplerate"])
        ring = BlockRing(block * RING_BLOCKS, channels)
        stream = self.sd.InputStream(
            device=index,
            samplerate=rate,
            channels=channels,
            blocksize=block,
            dtype="float32",
            callback=ring.callback,
        )
        return stream, f"'{info['name']}' {stream.samplerate:.0f} Hz", ring

    def refresh(self) -> None:
        """Re-read PortAudio's device list (it is fixed at initialisation), so a
        device plugged in after start is found. This ends every PortAudio stream of
        the process, so it is called only while this input has none open.
        Thread: the audio device thread."""
        if self.sd is None:
            return
        for step in (self.sd._terminate, self.sd._initialize):
            try:
                step()
            except Exception as exc:  # a failed refresh only delays the retry
                log.debug("audio: PortAudio refresh failed: %s", exc)

    def abandon(self) -> None:
        """Keep sounddevice's exit handler from closing a stream that hangs (PortAudio's
        JACK backend hangs for good closing a stream whose server died), so the
        process can still exit. Thread: the audio device thread."""
        if self.sd is not None:
            atexit.unregister(self.sd._exit_handler)


class AudioInput:
    """Live audio features on the bus, from a device or a file in real time.

    Args:
        config: the checked `[inputs.audio]` table.
        bus: where the features go.
        realtime: play a file at its own pace (False: as fast as the analysis
            goes, for tests and benchmarks; the same block analysis runs).
        opener: opens device streams (PortAudioOpener by default; a test passes
            a fake for hardware that is absent).
        on_block: called after each block with (block index, values written),
            from the analysis thread (tests, meters).
    Thread: start/stop/status from main; see the module docstring for the rest.
    """

    name = "audio"

    def __init__(
        self,
        config: AudioConfig,
        bus: SignalBus,
        *,
        realtime: bool = True,
        opener: StreamOpener | None = None,
        on_block: Callable[[int, Mapping[str, float]], None] | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.realtime = realtime
        self.opener = opener or PortAudioOpener()
        self.on_block = on_block
        self.gain = 10.0 ** (config.gain_db / 20.0)
        self._capture: Capture | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._problem: str | None = None
        self._reported: set[str] = set()
        self._announced = False
        self._given_up = False
        self._failures = 0
        self._stream_errors = 0
        self._blocks = 0
        self.bad_blocks = 0
        self._last_values: dict[str, float] = {}
        self._banks: dict[float, Filterbanks] = {}
        self._listeners: list[Callable[[np.ndarray, float], None]] = []

    def listen(self, listener: Callable[[np.ndarray, float], None]) -> None:
        """Hear every block the analysis reads: (mono float32 samples before the
        gain, a copy the listener may keep; the sample rate in Hz). A live recording
        or a captured take writes the sound this way.

        Args:
            listener: called from the analysis thread; it must not block (hand the
                block to a bounded queue) and should not raise (a raise is logged
                once and the listener dropped).
        Thread: main, before or after start.
        """
        self._listeners.append(listener)

    # The show's side: start, stop, status.

    def start(self) -> None:
        """Start the source (device or file) and analysis threads; never raises for
        an absent device (reports and retries). Thread: main."""
        if self._threads:
            return
        # librosa's filters load numba code (seconds): build them here for the
        # likely rate, not in the analysis thread while blocks pile up.
        rate = self.config.sample_rate_hz or DEFAULT_RATE_HZ
        if self.config.file is not None:
            import soundfile

            try:
                rate = float(soundfile.info(str(self.config.file)).samplerate)
            except Exception as exc:  # reported again, once, by the file thread
                log.debug("audio: cannot read %s: %s", self.config.file, exc)
        self._banks_for(rate)
        self._stop.clear()
        self._done.clear()
        source = self._run_file if self.config.file is not None else self._run_device
        self._threads = [
            threading.Thread(target=source, name="audio-source", daemon=True),
            threading.Thread(target=self._run_analysis, name="audio-analysis", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads and close the stream; safe to call twice. Thread: main."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLOSE_TIMEOUT_S + 1.0)
        self._threads = []

    def status(self) -> str:
        """One line for the HUD. Thread: any."""
        capture = self._capture
        if self._given_up:
            return f"audio: {self._problem}"
        if self._problem is not None and capture is None:
            return f"audio: {self._problem} ({self._failures} tries, retrying)"
        if capture is None:
            return "audio: starting"
        state = "ended" if self._done.is_set() else f"{self.bus.get('audio:bpm'):.1f} bpm"
        bad = f", {self.bad_blocks} bad blocks" if self.bad_blocks else ""
        return (
            f"audio: {capture.label}, block {self.config.block}, {self._blocks} blocks, "
            f"{state}, {capture.ring.overruns} overruns, {self._stream_errors} stream errors{bad}"
        )

    def wait_done(self, timeout_s: float) -> bool:
        """Wait until a file (not looping) has been played and analysed to its end.

        Returns:
            True when it has, False on timeout.
        Thread: any but the audio threads.
        """
        return self._done.wait(timeout_s)

    # The source threads: a device with retries, or a file feeder.

    def _report(self, problem: str) -> None:
        """Report each kind of failure once until sound flows again; count every one."""
        self._failures += 1
        if problem not in self._reported:
            log.warning("audio: %s; the show plays on", problem)
            self._reported.add(problem)
        self._problem = problem
        self._announced = False

    def _recovered(self, label: str) -> None:
        """Note, once, that a stream delivers sound."""
        if self._announced:
            return
        if self._reported:
            log.info("audio: input %s delivers sound after %d failures", label, self._failures)
        else:
            log.info("audio: input %s delivers sound", label)
        self._reported.clear()
        self._problem = None
        self._announced = True

    def _run_device(self) -> None:
        refresh = False
        while not self._stop.is_set():
            if refresh:
                self.opener.refresh()
            try:
                stream, label, ring = self.opener.open(
                    device=self.config.device,
                    sample_rate_hz=self.config.sample_rate_hz,
                    block=self.config.block,
                )
                stream.start()
            except Exception as exc:  # the device thread must outlive any device fault
                self._report(f"no audio input ({type(exc).__name__}: {exc})")
                refresh = True
                self._stop.wait(RETRY_S)
                continue
            self._capture = Capture(ring, float(stream.samplerate), label, live=True)
            self._watch(stream, ring, label)
            self._capture = None
            if not _close_within(stream, CLOSE_TIMEOUT_S):
                self.opener.abandon()
                self._report(
                    "PortAudio hangs closing the dead stream: audio input off until restart"
                )
                self._given_up = True
                return
            refresh = True

    def _watch(self, stream: Stream, ring: BlockRing, label: str) -> None:
        """Return when the stream dies (inactive, or silent for STALL_S) or on stop."""
        seen, seen_at = ring.written, time.perf_counter()
        while not self._stop.wait(0.1):
            now = time.perf_counter()
            if ring.written != seen:
                seen, seen_at = ring.written, now
                self._recovered(label)
            if not stream.active:
                reason = "stopped"
            elif now - seen_at > STALL_S:
                reason = f"delivered nothing for {STALL_S:g} s"
            else:
                continue
            self._stream_errors += 1
            self._report(f"the audio stream {reason}")
            return

    def _run_file(self) -> None:
        import soundfile

        path = self.config.file
        try:
            sound = soundfile.SoundFile(str(path))
        except Exception as exc:  # a file that cannot be decoded must not stop the show
            self._report(f"cannot read {path} ({exc})")
            self._given_up = True
            self._done.set()
            return
        with sound:
            block = self.config.block
            ring = BlockRing(block * RING_BLOCKS, min(2, sound.channels))
            capture = Capture(ring, float(sound.samplerate), f"file {path.name}")
            self._capture = capture
            buffer = np.zeros((block, sound.channels), dtype=np.float32)
            start = time.perf_counter()
            sent = 0
            while not self._stop.is_set():
                data = sound.read(out=buffer)
                frames = data.shape[0]
                if frames == 0:
                    if not self.config.loop:
                        break
                    sound.seek(0)
                    continue
                if self.realtime:
                    # A sound card hands over a block once its last sample is in.
                    delay = start + (sent + frames) / sound.samplerate - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                else:
                    while ring.available() > ring.capacity - 2 * block and not self._stop.is_set():
                        time.sleep(0.0005)
                ring.callback(data, frames, None, None)
                sent += frames
            capture.finished = True

    # The analysis thread.

    def _run_analysis(self) -> None:
        block = np.zeros(self.config.block, dtype=np.float32)
        current: Capture | None = None
        analyzer: BlockAnalyzer | None = None
        nap_s = 0.005
        while not self._stop.is_set():
            capture = self._capture
            if capture is None:
                time.sleep(0.02)
                continue
            if capture is not current:
                rate = capture.sample_rate_hz
                if analyzer is None or analyzer.settings.sample_rate_hz != rate:
                    analyzer = BlockAnalyzer(self.config.settings(rate), self._banks_for(rate))
                if capture.live:
                    # A new stream's analysis starts at the present.
                    capture.ring.read = capture.ring.written
                current = capture
                nap_s = 0.25 * self.config.block / capture.sample_rate_hz
            if not capture.ring.read_into(block):
                if capture.finished:
                    self._publish_silence()
                    self._done.set()
                    return
                time.sleep(nap_s)
                continue
            for listener in tuple(self._listeners):
                try:
                    listener(block.copy(), capture.sample_rate_hz)
                except Exception as exc:
                    self._listeners.remove(listener)
                    log.error(
                        "audio: a listener failed and was dropped (%s: %s)", type(exc).__name__, exc
                    )
            if self.gain != 1.0:
                block *= self.gain
            if not (np.abs(block) <= MAX_SAMPLE).all():  # NaN fails the test too
                self._silence_bad_samples(block)
            try:
                values = analyzer.step(block).values
            except Exception as exc:  # one bad block must not end the analysis
                self._report(f"analysis failed ({type(exc).__name__}: {exc})")
                continue
            self._publish(values)
            if self.on_block is not None:
                self.on_block(self._blocks, values)
            self._blocks += 1

    def _silence_bad_samples(self, block: np.ndarray) -> None:
        # A NaN, inf or 1e20 sample (a broken driver, a damaged file) makes the
        # features of the blocks around it NaN and stays in the tempo tracker's
        # autocorrelation for good: the tempo would stop following the music.
        self.bad_blocks += 1
        if self.bad_blocks == 1:
            log.warning(
                "audio: a block holds samples that are not finite or beyond +-%g; they are"
                " analysed as silence (further ones are counted on the HUD)",
                MAX_SAMPLE,
            )
        block[~(np.abs(block) <= MAX_SAMPLE)] = 0.0

    def _banks_for(self, rate_hz: float) -> Filterbanks:
        if rate_hz not in self._banks:
            self._banks[rate_hz] = Filterbanks.build(self.config.settings(rate_hz))
        return self._banks[rate_hz]

    def _publish(self, values: Mapping[str, float]) -> None:
        now = time.perf_counter()
        last = self._last_values
        for name in SIGNALS:
            value = values[name]
            # A trigger is written when it changes: the 1 is an event the frame loop
            # sees even if the 0 follows before its next snapshot.
            if name in TRIGGERS and last.get(name) == value:
                continue
            self.bus.set(name, value, now)
            last[name] = value

    def _publish_silence(self) -> None:
        now = time.perf_counter()
        for name in (*LEVELS, *TRIGGERS):
            self.bus.set(name, 0.0, now)


def _close_within(stream: Stream, timeout_s: float) -> bool:
    """Stop and close a stream in a helper thread; False when that hangs."""

    def close() -> None:
        try:
            stream.stop()
            stream.close()
        except Exception as exc:  # closing a dead stream may fail: it is gone either way
            log.debug("audio: closing the stream failed: %s", exc)

    helper = threading.Thread(target=close, name="audio-close", daemon=True)
    helper.start()
    helper.join(timeout_s)
    return not helper.is_alive()
