"""OSC out: the show tells a controller (TouchOSC, Open Stage Control) its state, so
faders and labels follow what the show does.

    [osc_out]
    host = "192.168.1.20"   # the controller (a name is looked up once, at start)
    port = 9000
    max_hz = 30             # per address at most this often (default 30)

What it sends (live only; an offline render sends nothing):

    /ls/TARGET VALUE     a target's base value while a scene glides it (so a fader
                         bound to /ls/gen.zoom both steers and follows)
    /ls/scene NAME       the active scene
    /ls/beat N, /ls/bar N, /ls/bpm X   from the clock input (`clock:*` signals)
    and whatever another part adds to the frame's state (`update`), e.g. the
    recording state.

Each address is sent when its value changes, at most `max_hz` times a second (the
newest value goes out when the time comes, so the last one always arrives).
Sending never blocks the frame loop: one non-blocking UDP socket; a datagram the
kernel cannot take now is dropped and counted, and a failing host is logged once.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pythonosc.osc_message_builder import OscMessageBuilder

from runtime.config import Table
from runtime.errors import OutputError

log = logging.getLogger(__name__)

#: An OSC argument: what `send` and `update` take.
OscValue = float | int | str | bool


@dataclass(frozen=True)
class OscOutConfig:
    """The `[osc_out]` table.

    Attributes:
        host: the controller's address or name.
        port: its UDP port.
        max_hz: per address, at most this many messages a second.
    """

    host: str
    port: int
    max_hz: float = 30.0


def read_osc_out(t: Table) -> OscOutConfig:
    """Read a show's `[osc_out]` table strictly.

    Raises:
        ConfigError: naming the file, line and key.
    Thread: any.
    """
    config = OscOutConfig(
        host=t.take("host", str, check=lambda v: None if v.strip() else "expected a host"),
        port=t.take("port", int, check=lambda v: None if 1 <= v <= 65535 else "expected 1..65535"),
        max_hz=t.take(
            "max_hz",
            float,
            30.0,
            check=lambda v: None if 0.1 <= v <= 1000 else "expected 0.1..1000",
        ),
    )
    t.finish()
    return config


class OscOut:
    """Sends OSC messages to one controller over UDP, never waiting.

    Args:
        config: the show's `[osc_out]`.
        clock: seconds, monotonic (tests may pass their own).
    Raises:
        OutputError: the host cannot be resolved (the show plays on without it:
            `build_osc_out` logs this).
    Thread: main (the frame loop) only.
    """

    def __init__(
        self, config: OscOutConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        try:
            info = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise OutputError(f"[osc_out] host {config.host!r}: {exc.strerror}") from None
        family, _, _, _, self.address = info[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._min_gap_s = 1.0 / config.max_hz
        self._sent: dict[str, tuple[OscValue, ...]] = {}
        self._when: dict[str, float] = {}
        self._pending: dict[str, tuple[OscValue, ...]] = {}
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._failing: str | None = None

    def send(self, address: str, *args: OscValue) -> bool:
        """Send one message now (no rate limit).

        Args:
            address: the OSC address, "/ls/scene".
            args: its arguments (floats, ints, strings, booleans).
        Returns:
            True when the kernel took it; False when dropped (counted).
        Thread: main.
        """
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        data = builder.build().dgram
        try:
            self._sock.sendto(data, self.address)
        except BlockingIOError:
            self.dropped += 1
            return False
        except OSError as exc:
            self.failed += 1
            reason = exc.strerror or str(exc)
            if reason != self._failing:
                self._failing = reason
                log.error(
                    "osc out to %s:%d: %s (further failures are counted on the HUD)",
                    self.config.host,
                    self.config.port,
                    reason,
                )
            return False
        self.sent += 1
        self._failing = None
        return True

    def update(self, state: Mapping[str, OscValue | tuple[OscValue, ...]]) -> None:
        """Send what changed in this frame's state, each address at most `max_hz`.

        Args:
            state: address -> value (or a tuple of arguments); floats that are not
                finite are skipped.
        Thread: main (once a frame).
        """
        now = self._clock()
        for address, value in state.items():
            args = value if isinstance(value, tuple) else (value,)
            if any(isinstance(a, float) and not math.isfinite(a) for a in args):
                continue
            if self._sent.get(address) != args:
                self._pending[address] = args
            else:
                self._pending.pop(address, None)
        for address, args in list(self._pending.items()):
            if now - self._when.get(address, -math.inf) < self._min_gap_s:
                continue
            del self._pending[address]
            if self.send(address, *args):
                self._sent[address] = args
                self._when[address] = now

    def status(self) -> str:
        """'osc out 192.168.1.20:9000  812 sent' (+ dropped, failed) for the HUD.

        Thread: main.
        """
        line = f"osc out {self.config.host}:{self.config.port}  {self.sent} sent"
        if self.dropped:
            line += f", {self.dropped} dropped"
        if self.failed:
            line += f", {self.failed} failed ({self._failing or 'recovered'})"
        return line

    def close(self) -> None:
        """Close the socket. Thread: main."""
        self._sock.close()


def build_osc_out(config: OscOutConfig | None) -> OscOut | None:
    """The show's OSC out, or None (none configured, or its host unknown: logged,
    and the show plays on). Thread: main."""
    if config is None:
        return None
    try:
        return OscOut(config)
    except OutputError as exc:
        log.error("%s; the show plays without OSC out", exc)
        return None


def clock_state(values: Mapping[str, float]) -> dict[str, OscValue]:
    """Beat, bar and tempo for a controller, from the bus's `clock:*` values.

    Args:
        values: the bus snapshot's values.
    Returns:
        {"/ls/beat": int, "/ls/bar": int, "/ls/bpm": float}, for those present.
    Thread: any.
    """
    state: dict[str, OscValue] = {}
    if "clock:beat" in values:
        state["/ls/beat"] = math.floor(values["clock:beat"])
    if "clock:bar" in values:
        state["/ls/bar"] = math.floor(values["clock:bar"])
    if "clock:bpm" in values:
        state["/ls/bpm"] = round(values["clock:bpm"], 2)
    return state
