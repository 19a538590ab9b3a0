"""OSC input (python-osc): every address becomes a signal.

`/fader/1 0.5` sets `osc:/fader/1`; a message with several arguments also sets
`osc:/path[N]` for its N-th argument (0-based), so `/hand 0.1 0.7` gives
`osc:/hand[0]` (also `osc:/hand`) and `osc:/hand[1]`. Booleans count as 0/1.
Strings and blobs are text, not signals: they go to the bus's text queue as
(`osc:/ADDRESS`, text), where a show's CLIP prompts pick them up. A message without
arguments is a trigger: it writes 1.0. Malformed packets (a string that is not
UTF-8 among them) are dropped and counted, never raised into the show.

    [inputs.osc]
    host = "127.0.0.1"   # only this machine; "0.0.0.0" listens on every network
    port = 9000          # 0 takes any free port (tests)
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from runtime.config import Table
from runtime.signals import SignalBus

log = logging.getLogger(__name__)

#: What `run_show.py signals` lists for this input.
SIGNALS = (
    ("osc:/ADDRESS", "first argument of each message to ADDRESS (1.0 for none)"),
    ("osc:/ADDRESS[N]", "N-th argument (0-based) of a message with several"),
)


class _CountingDispatcher(Dispatcher):
    """Parses each packet itself so bad packets are counted (python-osc's own
    dispatcher drops them silently) and bundles are applied at once (no sleeping in
    the server thread for future time tags)."""

    def __init__(self, osc: OscInput) -> None:
        super().__init__()
        self.osc = osc

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        try:
            packet = osc_packet.OscPacket(data)
        except osc_packet.ParseError as exc:
            self.osc.reject(f"malformed OSC packet from {client_address[0]}: {exc}")
            return []
        except UnicodeDecodeError:
            self.osc.reject(
                f"OSC packet from {client_address[0]}{_address_of(data)}: a string argument"
                " is not UTF-8"
            )
            return []
        for timed in packet.messages:
            self.osc.receive(timed.message.address, timed.message.params)
        return []


class _Server(BlockingOSCUDPServer):
    """Lets every datagram reach the dispatcher: python-osc's own check would drop
    non-OSC data before it could be counted."""

    def verify_request(self, request, client_address) -> bool:
        return True


class OscInput:
    """An OSC server thread writing `osc:` signals.

    Args:
        bus: where to write.
        host: the address to bind (127.0.0.1 unless the show says otherwise).
        port: UDP port; 0 picks a free one (see `port` after `start`).
    Thread: start/stop/status from main; the server runs on its own thread.
    """

    name = "osc"

    def __init__(self, bus: SignalBus, *, host: str = "127.0.0.1", port: int = 9000) -> None:
        self.bus = bus
        self.host = host
        self.port = port
        self.messages = 0
        self.bad_packets = 0
        self.error: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._seen_errors: set[str] = set()

    def start(self) -> None:
        """Bind and serve; a port in use is reported and the show plays without OSC.

        Thread: main.
        """
        try:
            self._server = _Server((self.host, self.port), _CountingDispatcher(self))
        except OSError as exc:
            self.error = f"OSC cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            log.error("%s; playing on without OSC", self.error)
            return
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="osc",
            daemon=True,
        )
        self._thread.start()
        log.info("OSC listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket. Thread: main."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def status(self) -> str:
        """One HUD line. Thread: any."""
        if self.error:
            return f"osc: {self.error}"
        bad = f", {self.bad_packets} bad" if self.bad_packets else ""
        return f"osc {self.host}:{self.port}  {self.messages} msgs{bad}"

    def receive(self, address: str, params: list) -> None:
        """Write one message's arguments as signals. Thread: the OSC server."""
        self.messages += 1
        numbers = [_number(p) for p in params]
        if not params:
            self.bus.set(f"osc:{address}", 1.0)
            return
        for p in params:
            if isinstance(p, str | bytes):
                self.bus.texts.put(f"osc:{address}", p)
        first = True
        for index, value in enumerate(numbers):
            if value is None:
                continue
            if first:
                self.bus.set(f"osc:{address}", value)
                first = False
            if len(numbers) > 1:
                self.bus.set(f"osc:{address}[{index}]", value)

    def reject(self, message: str) -> None:
        """Count a bad packet; log each kind once. Thread: the OSC server."""
        self.bad_packets += 1
        kind = message.split(":")[-1]
        if kind not in self._seen_errors:
            self._seen_errors.add(kind)
            log.warning("%s (dropped; further ones are counted on the HUD)", message)


def _address_of(data: bytes) -> str:
    """' (to /ADDRESS)' when the packet starts with a readable address, else ''."""
    end = data.find(b"\0")
    if not data.startswith(b"/") or end < 0:
        return ""
    try:
        return f" (to {data[:end].decode('utf-8')})"
    except UnicodeDecodeError:
        return ""


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def build(table: Table, bus: SignalBus, *, folder: Path, offline: bool) -> OscInput:
    """Read `[inputs.osc]` and make the input (not yet listening).

    Raises:
        ConfigError: a bad key or value.
    Thread: main.
    """
    host = table.take("host", str, "127.0.0.1", check=_host)
    port = table.take(
        "port",
        int,
        9000,
        check=lambda v: None if 0 <= v <= 65535 else f"expected a UDP port 0..65535, got {v}",
    )
    table.finish()
    return OscInput(bus, host=host, port=port)


def _host(value: str) -> str | None:
    try:
        socket.getaddrinfo(value, None, socket.AF_INET)
    except OSError:
        return f"expected an IPv4 address or host name to listen on, got {value!r}"
    return None
