"""Event-to-bus latency of the live inputs, measured side by side in one run.

    python benchmarks/bench_inputs.py [--messages 2000]

Each measure sends events the way a device would and times each one from just
before it is sent to just after its value is on the bus (a bus subclass notes the
time at the end of `set`). Rows:

- midi parse: raw bytes -> mido.Parser -> MidiDecoder -> bus, in one thread: the
  runtime's own cost per message, without any port.
- midi port (JACK, N frames): a python-rtmidi JACK virtual output -> the MidiInput's
  port (through the dummy JACK server, period N frames at 48 kHz) -> the reader
  thread (drains every 1 ms while messages flow) -> bus: what a performer's
  message costs end to end, at 1000 messages a second. Skipped, with the reason,
  without jackd.
- midi port after quiet: the same, each message after 1.2 s without any, when the
  reader has slowed to its idle interval (5 ms).

Another input adds a function to MEASURES returning a Row (or raising Skip).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mido

from runtime.inputs.midi import MidiDecoder, MidiInput, PortSpec, RtMidiBackend
from runtime.signals import SignalBus
from tests.midi_ports import NoJack, dummy_jack

#: Messages a second when sending through a port: a DIN MIDI cable's top rate.
PORT_RATE_HZ = 1000.0


class Skip(Exception):
    """This measure cannot run here (the message says why)."""


@dataclass
class Row:
    """One measured path: latencies in seconds, and messages lost."""

    name: str
    latencies_s: list[float]
    sent: int

    def cells(self, reference_p50_s: float | None) -> list[str]:
        lat = sorted(self.latencies_s)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        ratio = f"{p50 / reference_p50_s:.0f}x" if reference_p50_s else "1x"
        return [
            self.name,
            f"{len(lat)}/{self.sent}",
            f"{p50 * 1e3:.3f}",
            f"{p99 * 1e3:.3f}",
            f"{lat[-1] * 1e3:.3f}",
            ratio,
        ]


class StampingBus(SignalBus):
    """A bus that notes when each write to `watch` finished (perf_counter seconds)."""

    def __init__(self, watch: str) -> None:
        super().__init__()
        self.watch = watch
        self.done_s: list[float] = []
        self.arrived = threading.Event()

    def set(self, name: str, value: float, t_s: float | None = None) -> None:
        super().set(name, value, t_s)
        if name == self.watch:
            self.done_s.append(time.perf_counter())
            self.arrived.set()


def measure_midi_parse(n: int) -> Row:
    """Bytes through mido's parser and the decoder onto the bus, one at a time."""
    bus = StampingBus("midi:cc/1")
    decoder = MidiDecoder(bus)
    parser = mido.Parser()
    latencies = []
    for i in range(n):
        data = bytes([0xB0, 1, i % 128])
        start = time.perf_counter()
        parser.feed(data)
        for msg in parser:
            decoder.feed(msg)
        latencies.append(bus.done_s[-1] - start)
    return Row("midi parse (no port)", latencies, n)


def measure_midi_port(n: int, period: int) -> Row:
    """Messages through a real JACK virtual port into a started MidiInput."""
    try:
        with dummy_jack(period) as server:
            return _through_jack(n, period, server)
    except NoJack as exc:
        raise Skip(str(exc)) from None


def measure_midi_port_after_quiet(n: int, period: int) -> Row:
    """Single messages 1.2 s apart through a JACK port (the reader's idle interval)."""
    try:
        with dummy_jack(period) as server:
            return _through_jack(min(n, 15), period, server, gap_s=1.2)
    except NoJack as exc:
        raise Skip(str(exc)) from None


def _through_jack(n: int, period: int, server: str, gap_s: float = 1 / PORT_RATE_HZ) -> Row:
    bus = StampingBus("midi:cc/1")
    port_name = f"{server}-bench"
    inp = MidiInput(bus, specs=(PortSpec(port_name),), backend=RtMidiBackend("jack"), poll_s=0.05)
    out = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True).open_output(
        port_name, virtual=True
    )
    inp.start()
    try:
        _wait_connected(out, bus)
        latencies = []
        for i in range(n):
            bus.arrived.clear()
            before = len(bus.done_s)
            start = time.perf_counter()
            out.send(mido.Message("control_change", control=1, value=i % 128))
            # One message in flight at a time, so each latency is its own.
            if bus.arrived.wait(0.5) and len(bus.done_s) > before:
                latencies.append(bus.done_s[before] - start)
            time.sleep(max(0.0, gap_s - (time.perf_counter() - start)))
    finally:
        inp.stop()
        out.close()
    quiet = f", {gap_s:g} s apart" if gap_s > 1 else ""
    return Row(f"midi port (JACK, {period} frames = {period / 48:.1f} ms{quiet})", latencies, n)


def _wait_connected(out, bus: StampingBus) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        out.send(mido.Message("control_change", control=1, value=0))
        if bus.arrived.wait(0.05):
            time.sleep(0.05)  # let any ping still in flight land before timing
            bus.done_s.clear()
            return
    raise Skip("the JACK connection did not come up in 5 s")


#: (label, measure(n) -> Row). OSC and other inputs add theirs here.
MEASURES: list[tuple[str, Callable[[int], Row]]] = [
    ("midi parse", measure_midi_parse),
    ("midi port, JACK 64", lambda n: measure_midi_port(n, 64)),
    ("midi port, JACK 256", lambda n: measure_midi_port(n, 256)),
    ("midi port, JACK 1024", lambda n: measure_midi_port(n, 1024)),
    ("midi port after quiet, JACK 64", lambda n: measure_midi_port_after_quiet(n, 64)),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per measure")
    args = parser.parse_args()
    rows: list[Row] = []
    for label, measure in MEASURES:
        try:
            rows.append(measure(args.messages))
        except Skip as exc:
            print(f"skipped {label}: {exc}")
    reference = statistics.median(rows[0].latencies_s) if rows else None
    header = ["path", "arrived", "p50 ms", "p99 ms", "max ms", "p50 vs first"]
    table = [header] + [r.cells(reference) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
