"""MIDI in: controllers, keyboards, pads and a MIDI clock as signals on the bus.

Ports are chosen in the show by name substring and watched: a port that is missing
at start or unplugged during the show is reported once and reopened when it comes
back. Messages are parsed by mido (on python-rtmidi) and written as signals,
normalised to 0..1:

    midi:cc/N            control change N, value / 127
    midi:note/N          note N's velocity / 127 while held, 0 after note off
    midi:note/N/on       trigger: a pulse (1 then 0) on each note on
    midi:bend            pitch bend, 0..1 with the centre at 0.5
    midi:pressure        channel aftertouch, value / 127
    midi:pressure/N      polyphonic aftertouch of note N, value / 127
    midi:program         program change, program / 127
    midi:program/N       trigger: a pulse on each change to program N (0-based)
    midi:clock/beat      beats counted by MIDI clock (24 ticks a beat); 0 at Start
    midi:clock/bpm       tempo measured from the clock ticks (beats per minute)
    midi:clock/running   1 after Start/Continue, 0 after Stop

Every channel message is written twice: once for any channel (`midi:cc/1`) and once
under its channel, numbered 1..16 as on a controller (`midi:ch2/cc/1`). A port named
with an alias in the show also writes both under its alias (`midi:pads/note/36`,
`midi:pads/ch10/note/36`); without aliases, every port writes the shared names.

    [inputs.midi]
    ports = ["nanoKONTROL", "LPD8"]   # name substrings; "*" (the default) = every port
    # or, with aliases:  ports = { knobs = "nanoKONTROL", pads = "LPD8" }
    api = "auto"                      # auto | alsa | jack | coremidi | windows
    poll_s = 1.0                      # how often to look for ports coming and going
    # file = "performance.mid"        # replay a MIDI file instead (live and offline)
    # loop = true                     # ...from the start again when it ends
"""

from __future__ import annotations

import bisect
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import mido

from runtime.config import Table
from runtime.errors import InputError
from runtime.signals import SignalBus

log = logging.getLogger(__name__)

#: MIDI clock resolution: ticks per quarter-note beat.
TICKS_PER_BEAT = 24
#: Ticks used to measure the tempo: four beats keep it within about 0.1% against
#: the few milliseconds of jitter a port adds to each tick.
CLOCK_WINDOW_TICKS = 96
#: Ticks needed before a tempo is written (half a beat).
CLOCK_MIN_TICKS = 12
#: The last beat's tempo differing from the window's by more than this is a tempo
#: change: the window restarts from that beat, so a step is followed within a beat.
CLOCK_STEP = 0.03
#: A gap between ticks longer than this (below 5 bpm) starts a new measurement.
CLOCK_GAP_S = 0.5

#: The show's `api` names and python-rtmidi's names for them (None: the platform's own).
APIS = {
    "auto": None,
    "alsa": "LINUX_ALSA",
    "jack": "UNIX_JACK",
    "coremidi": "MACOSX_CORE",
    "windows": "WINDOWS_MM",
}

#: Called with each message and when it arrived (perf_counter seconds); must not raise.
MessageCallback = Callable[[mido.Message, float], None]

#: How often the reader drains open rtmidi ports while messages flow: the most it
#: adds to a message's latency.
READ_INTERVAL_S = 0.001
#: ...and after a second without any: polling every 1 ms costs a few percent of a
#: core, and only the first message of a burst waits this long.
IDLE_READ_INTERVAL_S = 0.005


class PortBackend(Protocol):
    """Where ports are listed and opened (python-rtmidi, or a port subclass in tests)."""

    label: str

    def input_names(self) -> list[str]:
        """Input port names now present. Raises InputError when the MIDI system is
        absent. Thread: the port watcher."""
        ...

    def open_input(self, name: str, callback: MessageCallback) -> Any:
        """Open a port that calls `callback` for each message (on a thread of the
        backend's) and has `close()`. Raises InputError. Thread: the port watcher."""
        ...

    def close(self) -> None:
        """Close what is open and release what listing holds. Thread: main."""
        ...


class _RtPort:
    """One open rtmidi input, drained by its backend's reader thread."""

    def __init__(self, backend: RtMidiBackend, midi_in: Any, callback: MessageCallback) -> None:
        self._backend = backend
        self.midi_in = midi_in
        self.callback = callback

    def close(self) -> None:
        """Close the port (the reader never touches it again). Thread: any."""
        self._backend._close_port(self)


class RtMidiBackend:
    """Ports of one python-rtmidi API, read by one thread of ours.

    rtmidi queues each port's messages in C; a reader thread drains the queues every
    READ_INTERVAL_S and parses the bytes with mido. rtmidi's own callbacks are not
    used: they run Python on the MIDI system's thread (JACK's realtime thread), and a
    port closed while such a callback waits for the interpreter crashes the process.
    Here a port is only closed between two reads. One rtmidi client lists ports for
    the life of the backend (a client per poll would churn JACK clients).

    Args:
        api: a key of APIS.
    Thread: list and open from the port watcher; `close` from main.
    """

    def __init__(self, api: str = "auto") -> None:
        self.api = api
        self._rt_api = APIS[api]
        self._lister: Any = None
        self.label = f"rtmidi/{self._rt_api or 'default'}"
        self._ports: list[_RtPort] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self.invalid = 0
        self._invalid_kinds: set[str] = set()

    def _api_id(self) -> int:
        import rtmidi

        if self._rt_api is None:
            return rtmidi.API_UNSPECIFIED
        api_id = getattr(rtmidi, f"API_{self._rt_api}")
        if api_id not in rtmidi.get_compiled_api():
            raise InputError(f"python-rtmidi was built without {self._rt_api}")
        return api_id

    def _new_client(self, name: str) -> Any:
        import rtmidi

        api_id = self._api_id()
        alsa = self._rt_api == "LINUX_ALSA" or (
            self._rt_api is None and sys.platform.startswith("linux")
        )
        # Checked first so a machine without MIDI is not asked (and ALSA's library does
        # not print its complaint) once per poll.
        if alsa and not Path("/dev/snd/seq").exists():
            raise InputError("no MIDI device (no ALSA sequencer: /dev/snd/seq is absent)")
        try:
            client = rtmidi.MidiIn(rtapi=api_id, name=name)
        except OSError as exc:
            raise InputError(f"no MIDI device ({self.label}: {exc})") from None
        self.label = f"rtmidi/{rtmidi.get_api_name(client.get_current_api())}"
        return client

    def input_names(self) -> list[str]:
        """Input port names now present.

        Returns:
            The names, as the API spells them.
        Raises:
            InputError: the MIDI system (ALSA sequencer, JACK server...) is absent.
        Thread: the port watcher.
        """
        with self._lock:
            if self._lister is None:
                self._lister = self._new_client("latentstage ports")
            try:
                return list(self._lister.get_ports())
            except OSError as exc:
                self._lister.delete()
                self._lister = None
                raise InputError(f"cannot list MIDI ports ({self.label}: {exc})") from None

    def open_input(self, name: str, callback: MessageCallback) -> _RtPort:
        """Open the input port `name`.

        Args:
            name: a name from `input_names`.
            callback: called with each message and its arrival time, on the reader
                thread; must not raise.
        Returns:
            The open port (`close()` closes it).
        Raises:
            InputError: the port cannot be opened (gone, in use).
        Thread: the port watcher.
        """
        midi_in = self._new_client("latentstage")
        try:
            names = midi_in.get_ports()
            if name not in names:
                raise InputError(f"MIDI port '{name}' is gone")
            midi_in.open_port(names.index(name), name="in")
        except (OSError, ValueError) as exc:
            midi_in.delete()
            raise InputError(f"cannot open MIDI port '{name}': {exc}") from None
        except InputError:
            midi_in.delete()
            raise
        # Keep MIDI clock (timing) messages; sysex and active sensing are not used.
        midi_in.ignore_types(sysex=True, timing=False, active_sense=True)
        port = _RtPort(self, midi_in, callback)
        with self._lock:
            self._ports.append(port)
            if self._reader is None:
                self._stop.clear()
                self._reader = threading.Thread(target=self._read, name="midi-read", daemon=True)
                self._reader.start()
        return port

    def _read(self) -> None:
        last_s = time.perf_counter()
        interval_s = READ_INTERVAL_S
        while not self._stop.wait(interval_s):
            with self._lock:
                for port in self._ports:
                    while (got := port.midi_in.get_message()) is not None:
                        last_s = time.perf_counter()
                        msg = self.parse(got[0])
                        if msg is not None:
                            port.callback(msg, last_s)
            idle = time.perf_counter() - last_s > 1.0
            interval_s = IDLE_READ_INTERVAL_S if idle else READ_INTERVAL_S

    def parse(self, data: list[int] | bytes) -> mido.Message | None:
        """One message from the bytes rtmidi delivered, or None for garbage.

        Garbage (a bad status byte, a data byte above 127, a message cut short) is
        counted in `invalid` and the first of each kind logged; it never raises.

        Args:
            data: the message's bytes.
        Returns:
            The message, or None.
        Thread: the reader (or a test).
        """
        try:
            return mido.Message.from_bytes(data)
        except Exception as exc:  # mido raises IndexError as well as ValueError for a cut message
            self.invalid += 1
            kind = type(exc).__name__
            if kind not in self._invalid_kinds:
                self._invalid_kinds.add(kind)
                log.warning(
                    "midi: unreadable message [%s] (%s: %s); dropped, further ones are counted",
                    " ".join(f"{b:02x}" for b in data[:8]),
                    kind,
                    exc,
                )
            return None

    def _close_port(self, port: _RtPort) -> None:
        with self._lock:
            if port not in self._ports:
                return
            self._ports.remove(port)
            port.midi_in.close_port()
            port.midi_in.delete()

    def close(self) -> None:
        """Stop the reader, close every port and the listing client. Thread: main."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None
        for port in list(self._ports):
            port.close()
        with self._lock:
            if self._lister is not None:
                self._lister.delete()
                self._lister = None


def list_input_ports() -> dict[str, list[str] | str]:
    """Input ports of every rtmidi API this machine has, for `run_show.py devices`.

    Returns:
        API name -> port names, or a sentence saying why that API has none.
    Thread: main.
    """
    import rtmidi

    by_id = {getattr(rtmidi, f"API_{v}"): k for k, v in APIS.items() if v is not None}
    found: dict[str, list[str] | str] = {}
    for api_id in rtmidi.get_compiled_api():
        key = by_id.get(api_id)
        if key is None:
            continue
        backend = RtMidiBackend(key)
        try:
            found[key] = backend.input_names()
        except InputError as exc:
            found[key] = str(exc)
        finally:
            backend.close()
    return found


@dataclass
class _ClockState:
    """MIDI clock of one port: the tick count and recent tick times."""

    ticks: int = 0
    running: bool | None = None
    times_s: deque[float] = field(default_factory=lambda: deque(maxlen=CLOCK_WINDOW_TICKS))

    def tempo_bpm(self) -> float | None:
        """The tempo fitted to the window of tick times, in beats per minute."""
        times = self.times_s
        if len(times) < CLOCK_MIN_TICKS:
            return None
        period_s = fit_period(list(times))
        if len(times) >= 2 * TICKS_PER_BEAT:
            last_beat_s = fit_period(list(times)[-TICKS_PER_BEAT:])
            if abs(last_beat_s / period_s - 1) > CLOCK_STEP:
                for _ in range(len(times) - TICKS_PER_BEAT):
                    times.popleft()
                period_s = last_beat_s
        return 60.0 / (period_s * TICKS_PER_BEAT) if period_s > 0 else None


def fit_period(times_s: list[float]) -> float:
    """Least-squares time between successive, evenly spaced events.

    Args:
        times_s: two or more event times, oldest first (seconds).
    Returns:
        The fitted period in seconds (steadier than the mean of the gaps, which
        depends only on the first and last time).
    Thread: any.
    """
    n = len(times_s)
    mean_i = (n - 1) / 2
    mean_t = sum(times_s) / n
    cov = sum((i - mean_i) * (t - mean_t) for i, t in enumerate(times_s))
    var = sum((i - mean_i) ** 2 for i in range(n))
    return cov / var


class MidiDecoder:
    """Turns mido messages into bus signals (names in the module docstring).

    Args:
        bus: where signals go.
    Thread: `feed` from any thread; the clock state of a port is touched only by that
    port's callback thread.
    """

    def __init__(self, bus: SignalBus) -> None:
        self._bus = bus
        self._clocks: dict[str, _ClockState] = {}
        self.messages = 0
        self.ignored = 0

    def feed(
        self,
        msg: mido.Message,
        *,
        t_s: float | None = None,
        alias: str | None = None,
        port: str = "",
    ) -> None:
        """Write the signals for one message.

        Args:
            msg: a parsed message (meta messages of a file are not fed here).
            t_s: when it arrived (perf_counter seconds); now when None.
            alias: the port's alias from the show, or None.
            port: the port's name (keeps each port's MIDI clock apart).
        Thread: any.
        """
        t = time.perf_counter() if t_s is None else t_s
        self.messages += 1
        kind = msg.type
        bases = ("midi:",) if alias is None else ("midi:", f"midi:{alias}/")
        if hasattr(msg, "channel"):
            ch = f"ch{msg.channel + 1}/"
            bases = (*bases, *(b + ch for b in bases))
        if kind == "control_change":
            self._level(bases, f"cc/{msg.control}", msg.value / 127.0, t)
        elif kind == "note_on" and msg.velocity > 0:
            self._level(bases, f"note/{msg.note}", msg.velocity / 127.0, t)
            self._pulse(bases, f"note/{msg.note}/on", t)
        elif kind in ("note_on", "note_off"):
            self._level(bases, f"note/{msg.note}", 0.0, t)
        elif kind == "pitchwheel":
            self._level(bases, "bend", (msg.pitch + 8192) / 16383.0, t)
        elif kind == "aftertouch":
            self._level(bases, "pressure", msg.value / 127.0, t)
        elif kind == "polytouch":
            self._level(bases, f"pressure/{msg.note}", msg.value / 127.0, t)
        elif kind == "program_change":
            self._level(bases, "program", msg.program / 127.0, t)
            self._pulse(bases, f"program/{msg.program}", t)
        elif kind in ("clock", "start", "stop", "continue", "songpos"):
            self._clock(kind, msg, bases, port, t)
        else:
            self.ignored += 1

    def _level(self, bases: tuple[str, ...], path: str, value: float, t: float) -> None:
        for base in bases:
            self._bus.set(base + path, value, t)

    def _pulse(self, bases: tuple[str, ...], path: str, t: float) -> None:
        for base in bases:
            self._bus.set(base + path, 1.0, t)
            self._bus.set(base + path, 0.0, t)

    def _clock(
        self, kind: str, msg: mido.Message, bases: tuple[str, ...], port: str, t: float
    ) -> None:
        state = self._clocks.get(port)
        if state is None:
            state = self._clocks[port] = _ClockState()
        if kind == "clock":
            times = state.times_s
            if times and t - times[-1] > CLOCK_GAP_S:
                times.clear()
            times.append(t)
            if state.running is not False:
                state.ticks += 1
                self._level(bases, "clock/beat", state.ticks / TICKS_PER_BEAT, t)
            bpm = state.tempo_bpm()
            if bpm is not None:
                self._level(bases, "clock/bpm", bpm, t)
            return
        # After Start or a song position the *next* tick is on the position named, so
        # count from one tick before it; Continue goes on from where Stop left off.
        if kind == "start":
            state.ticks = -1
        elif kind == "songpos":
            state.ticks = msg.pos * (TICKS_PER_BEAT // 4) - 1
        if kind != "songpos":
            state.running = kind != "stop"
            self._level(bases, "clock/running", 1.0 if state.running else 0.0, t)


@dataclass(frozen=True)
class PortSpec:
    """A port the show asks for: a name substring and an optional alias."""

    match: str
    alias: str | None = None

    def describe(self) -> str:
        """'port matching 'X'' or 'MIDI port' (for "*"), for messages. Thread: any."""
        return "MIDI port" if self.match in ("", "*") else f"port matching '{self.match}'"

    def matches(self, name: str) -> bool:
        """True when `name` is one of this spec's ports (case-insensitive). Thread: any."""
        return self.match in ("", "*") or self.match.lower() in name.lower()


class MidiInput:
    """Live MIDI from every port the show names, watched for coming and going.

    Args:
        bus: where signals go.
        specs: the ports to open.
        backend: lists and opens ports.
        poll_s: how often the watcher looks at the port list.
        offline: True in a frame-exact render: no live ports are opened.
    Thread: `start`/`stop` from main; the watcher thread opens and closes ports;
    messages arrive on the backend's threads.
    """

    name = "midi"

    def __init__(
        self,
        bus: SignalBus,
        *,
        specs: tuple[PortSpec, ...],
        backend: PortBackend,
        poll_s: float = 1.0,
        offline: bool = False,
    ) -> None:
        self.decoder = MidiDecoder(bus)
        self.specs = specs
        self.backend = backend
        self.poll_s = poll_s
        self.offline = offline
        self._open: dict[str, tuple[Any, PortSpec]] = {}
        self._missing_reported: set[PortSpec] = set()
        self._failed_reported: set[str] = set()
        self._system_problem: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0
        self.unplugs = 0
        self.errors = 0

    def start(self) -> None:
        """Start the port watcher (it opens ports as they appear). Never raises for an
        absent device. Thread: main."""
        if self.offline or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="midi-ports", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and close every port; safe to call twice. Thread: main."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._lock:
            for name in list(self._open):
                self._close_port(name)
        self.backend.close()

    def status(self) -> str:
        """One line for the HUD. Thread: any."""
        if self.offline:
            return "midi: off in offline renders (replay a performance with file = ...)"
        if self._system_problem:
            return f"midi: {self._system_problem}"
        with self._lock:
            open_specs = [(n, s) for n, (_, s) in self._open.items()]
        names = [n if s.alias is None else f"{s.alias}={n}" for n, s in open_specs]
        waiting = [s.describe() for s in self.specs if not any(s.matches(n) for n, _ in open_specs)]
        line = f"midi {self.backend.label}: {', '.join(names) or 'no ports open'}"
        line += f"; {self.decoder.messages} msgs"
        if waiting:
            line += f"; waiting for {', '.join(waiting)}"
        if self.unplugs:
            line += f"; {self.unplugs} unplugged"
        # Only a backend that parses bytes itself (rtmidi) has garbage to count.
        invalid = getattr(self.backend, "invalid", 0)
        if invalid:
            line += f"; {invalid} unreadable"
        return line

    def ports(self) -> list[str]:
        """Names of the ports now open. Thread: any."""
        with self._lock:
            return list(self._open)

    def _watch(self) -> None:
        delay_s = self.poll_s
        while True:
            try:
                problem = self.scan()
            except Exception as exc:  # the watcher must outlive any backend surprise
                self.errors += 1
                problem = f"port watcher error: {exc!r}"
                log.exception("midi: port watcher error; carrying on")
            # An absent MIDI system is asked again less and less often (up to 30 s),
            # since some APIs print to the terminal on every failed try.
            delay_s = min(delay_s * 2, 30.0) if problem else self.poll_s
            if self._stop.wait(delay_s):
                return

    def scan(self) -> str | None:
        """Look at the port list once: close ports that left, open ports that came.

        Returns:
            None, or why there is no MIDI system at all (reported once).
        Thread: the port watcher (or a test, with the watcher not running).
        """
        try:
            present = self.backend.input_names()
        except InputError as exc:
            if self._system_problem != str(exc):
                log.warning("midi: %s; the show plays on and will look again", exc)
            self._system_problem = str(exc)
            with self._lock:
                for name in list(self._open):
                    self._close_port(name)
            return self._system_problem
        if self._system_problem is not None:
            log.info("midi: MIDI system available again (%s)", self.backend.label)
            self._system_problem = None
        with self._lock:
            for name in list(self._open):
                if name not in present:
                    self.unplugs += 1
                    log.warning("midi: port '%s' is gone; it will reopen when it returns", name)
                    self._missing_reported.add(self._open[name][1])
                    self._close_port(name)
            for spec in self.specs:
                found = [n for n in present if spec.matches(n)]
                for name in found:
                    if name not in self._open:
                        self._open_port(name, spec)
                if found:
                    self._missing_reported.discard(spec)
                elif spec not in self._missing_reported:
                    self._missing_reported.add(spec)
                    log.warning(
                        "midi: no %s (ports now: %s); waiting for it",
                        spec.describe(),
                        ", ".join(present) or "none",
                    )
        return None

    def _open_port(self, name: str, spec: PortSpec) -> None:
        decoder = self.decoder
        alias = spec.alias

        def on_message(msg: mido.Message, t_s: float) -> None:
            try:
                decoder.feed(msg, t_s=t_s, alias=alias, port=name)
            except Exception:  # a bad message must not kill the backend's thread
                self.errors += 1
                if self.errors == 1:
                    log.exception("midi: cannot decode %r from '%s'; counting on", msg, name)

        try:
            port = self.backend.open_input(name, on_message)
        except InputError as exc:
            if name not in self._failed_reported:
                self._failed_reported.add(name)
                log.warning("midi: %s; trying again", exc)
            return
        self._failed_reported.discard(name)
        self._open[name] = (port, spec)
        self.connects += 1
        log.info("midi: opened '%s'%s", name, f" as '{alias}'" if alias else "")

    def _close_port(self, name: str) -> None:
        port, _ = self._open.pop(name)
        try:
            port.close()
        except Exception as exc:  # a port that vanished may fail to close; it is gone
            log.debug("midi: closing '%s': %r", name, exc)


@dataclass(frozen=True)
class _TempoSegment:
    start_s: float
    start_beat: float
    bpm: float


class MidiFilePlayer:
    """Replays a MIDI file through the same decoder, stepped by the frame clock.

    Channel messages become the same signals as live ones, at the file's times; the
    file's tempo map gives `midi:clock/bpm` and `midi:clock/beat` (beat 0 at the
    file's start), so a clock can follow a score. Offline it is exact per frame.

    Args:
        bus: where signals go.
        path: the .mid file.
        loop: start again at the end.
    Raises:
        InputError: the file cannot be read as MIDI.
    Thread: build anywhere; `update` from the frame loop.
    """

    name = "midi"

    def __init__(self, bus: SignalBus, path: Path, *, loop: bool = False) -> None:
        try:
            midi = mido.MidiFile(path)
        except (OSError, EOFError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: cannot read as a MIDI file: {exc}") from None
        self.path = path
        self.loop = loop
        self.decoder = MidiDecoder(bus)
        self._bus = bus
        self._times_s: list[float] = []
        self._messages: list[mido.Message] = []
        self._segments: list[_TempoSegment] = []
        self._read(midi)
        self.length_s = midi.length
        self._next = 0
        self._pass = 0

    def _read(self, midi: mido.MidiFile) -> None:
        tempo_us = 500_000  # MIDI's default tempo: 120 bpm until the file says otherwise
        t_s = 0.0
        beat = 0.0
        self._segments.append(_TempoSegment(0.0, 0.0, 60e6 / tempo_us))
        for msg in mido.merge_tracks(midi.tracks):
            dt_beats = msg.time / midi.ticks_per_beat
            t_s += dt_beats * tempo_us / 1e6
            beat += dt_beats
            if msg.type == "set_tempo":
                tempo_us = msg.tempo
                segment = _TempoSegment(t_s, beat, 60e6 / tempo_us)
                if self._segments[-1].start_s == t_s:
                    self._segments[-1] = segment
                else:
                    self._segments.append(segment)
            elif not msg.is_meta and msg.type != "sysex":
                self._times_s.append(t_s)
                self._messages.append(msg)
        self._segment_starts_s = [s.start_s for s in self._segments]

    def beat_at(self, t_s: float) -> tuple[float, float]:
        """(beat, bpm) of the file's tempo map at `t_s` seconds into it. Thread: any."""
        i = bisect.bisect_right(self._segment_starts_s, t_s) - 1
        seg = self._segments[max(i, 0)]
        return seg.start_beat + (t_s - seg.start_s) * seg.bpm / 60.0, seg.bpm

    def stop(self) -> None:
        """Nothing to release: the file was read whole at start. Thread: main."""

    def update(self, bus: SignalBus, t_s: float) -> None:
        """Feed every message due by `t_s` (seconds since the show began).

        Args:
            bus: the show's bus (the one given at construction).
            t_s: the frame's time.
        Thread: the frame loop.
        """
        if self.loop and self.length_s > 0:
            passes, pos_s = divmod(max(t_s, 0.0), self.length_s)
            if int(passes) != self._pass:
                self._flush(len(self._messages))
                self._pass, self._next = int(passes), 0
        else:
            pos_s = t_s
        self._flush(bisect.bisect_right(self._times_s, pos_s))
        beat, bpm = self.beat_at(min(pos_s, self.length_s))
        bus.set("midi:clock/beat", beat)
        bus.set("midi:clock/bpm", bpm)
        bus.set("midi:clock/running", 1.0 if pos_s <= self.length_s else 0.0)

    def _flush(self, end: int) -> None:
        for i in range(self._next, end):
            self.decoder.feed(self._messages[i], port=str(self.path))
        self._next = max(self._next, end)

    def status(self) -> str:
        """One line for the HUD. Thread: any."""
        return f"midi file {self.path.name}: {self._next}/{len(self._messages)} msgs" + (
            f", pass {self._pass + 1}" if self.loop else ""
        )


_ALIAS_RE = re.compile(r"^(?!ch\d+$)[A-Za-z_]\w*$")
# Aliases that would read as a signal path.
_RESERVED = {"cc", "note", "bend", "pressure", "program", "clock"}


def _read_specs(table: Table) -> tuple[PortSpec, ...]:
    value = table.take("ports", (list, dict), ["*"])
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise table.error("ports", "expected port name substrings, e.g. ['nanoKONTROL']")
        return tuple(PortSpec(v) for v in value)
    specs = []
    for alias, match in value.items():
        if not isinstance(match, str) or not _ALIAS_RE.match(alias) or alias in _RESERVED:
            raise table.error(
                "ports",
                f'expected alias = "port substring", the alias of letters, digits and _ '
                f"and not ch1..ch16 or {', '.join(sorted(_RESERVED))}; got {alias} = {match!r}",
            )
        specs.append(PortSpec(match, alias))
    if not specs:
        raise table.error("ports", "expected at least one port")
    return tuple(specs)


def _api_check(value: Any) -> str | None:
    if value in APIS:
        return None
    return f"expected one of {', '.join(APIS)}; got {value!r}"


def _poll_check(value: Any) -> str | None:
    return None if 0.01 <= value <= 60 else f"expected 0.01..60 seconds, got {value!r}"


def build(
    table: Table, bus: SignalBus, *, folder: Path, offline: bool
) -> MidiInput | MidiFilePlayer:
    """Build the show's MIDI input from its `[inputs.midi]` table.

    Args:
        table: the table (keys in the module docstring).
        bus: where signals go.
        folder: the show's folder (a relative `file` resolves here).
        offline: True in a frame-exact render (live ports stay closed).
    Returns:
        A MidiFilePlayer when `file` is given (a FrameFeed), else a MidiInput.
    Raises:
        ConfigError: a mistake in the table.
        InputError: the file cannot be read.
    Thread: main.
    """
    file = table.take("file", str, None)
    if file is not None:
        loop = table.take("loop", bool, False)
        table.finish()
        path = folder / file
        if not path.is_file():
            raise table.error("file", f"file not found: {path}")
        return MidiFilePlayer(bus, path, loop=loop)
    specs = _read_specs(table)
    api = table.take("api", str, "auto", check=_api_check)
    poll_s = table.take("poll_s", float, 1.0, check=_poll_check)
    table.finish()
    return MidiInput(bus, specs=specs, backend=RtMidiBackend(api), poll_s=poll_s, offline=offline)
