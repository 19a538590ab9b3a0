"""OSC input (python-osc): every address becomes a signal.

`/fader/1 0.5` sets `osc:/fader/1`; a message with several arguments also sets
`osc:/path[N]` for its N-th argument (0-based), so `/hand 0.1 0.7` gives
`osc:/hand[0]` (also `osc:/hand`) and `osc:/hand[1]`. Booleans count as 0/1.
Strings and blobs are text, not signals: they go to the bus's text queue as
(`osc:/ADDRESS`, text), where a show's CLIP prompts pick them up. A message without
arguments is a trigger: it writes 1.0.

A network can send anything, for months. Every packet that cannot be read whole
(random bytes, a string that is not UTF-8, an argument type python-osc does not
know, a bundle whose sizes do not add up) is dropped and counted; the first of each
kind is logged, the rest only counted (`status`, the HUD), so the log stays a few
lines however noisy the network. Numbers that are not finite (NaN, inf) are
stopped by the bus. An address, a text or the number of signal names beyond sane
limits (below) is refused the same way, so noise cannot grow the bus for ever.

    [inputs.osc]
    host = "127.0.0.1"   # only this machine; "0.0.0.0" listens on every network
    port = 9000          # 0 takes any free port (tests)
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from pathlib import Path

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from runtime.config import Table
from runtime.signals import SignalBus

log = logging.getLogger(__name__)

#: An address longer than this (bytes) is refused.
MAX_ADDRESS_BYTES = 256
#: A string (characters) or blob (bytes) argument longer than this is not queued as
#: text (CLIP reads at most 77 tokens; a longer text would only cost the CLIP thread
#: time to refuse).
MAX_TEXT_LENGTH = 2048
#: Signal names this input creates at most; a message to a new address beyond them
#: is refused (a sender looping over random addresses would grow the bus for ever).
MAX_NAMES = 4096
#: Bundles nested deeper than this are refused (python-osc parses them recursively).
MAX_BUNDLE_DEPTH = 8
#: The largest UDP payload: socketserver's default of 8192 would cut a larger packet.
MAX_PACKET_BYTES = 65535
#: Argument type tags python-osc reads; it skips others with a warning per argument,
#: misreading the rest of the message (OSC 1.0 says to drop such a message).
KNOWN_TYPE_TAGS = frozenset(b"ihfdsbrmtTFN[]")
_BUNDLE = b"#bundle\0"

#: What `run_show.py signals` lists for this input.
SIGNALS = (
    ("osc:/ADDRESS", "first argument of each message to ADDRESS (1.0 for none)"),
    ("osc:/ADDRESS[N]", "N-th argument (0-based) of a message with several"),
)


class _CountingDispatcher(Dispatcher):
    """Parses each packet itself so bad packets are counted (python-osc's own
    dispatcher drops them silently) and bundles are applied at once (no sleeping in
    the server thread for future time tags).

    Packets are checked before python-osc sees them where python-osc would loop for
    ever (a bundle element of negative size) or log on the root logger for each bad
    part (an unknown type tag, a bundle element that is neither message nor bundle).
    """

    def __init__(self, osc: OscInput) -> None:
        super().__init__()
        self.osc = osc

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        """Read one datagram and write its messages; count and drop a bad one.

        Thread: the OSC server.
        """
        self.osc.packets += 1
        problem = _bundle_problem(data, 0) if data.startswith(_BUNDLE) else _message_problem(data)
        if problem is not None:
            self.osc.reject(problem, data, client_address)
            return []
        try:
            packet = osc_packet.OscPacket(data)
        except UnicodeDecodeError:
            self.osc.reject("a string argument is not UTF-8", data, client_address)
            return []
        except osc_packet.ParseError as exc:
            self.osc.reject("malformed OSC packet", data, client_address, str(exc))
            return []
        except Exception as exc:  # whatever else python-osc raises on bad data: count it
            self.osc.reject(
                f"unreadable OSC packet ({type(exc).__name__})", data, client_address, str(exc)
            )
            return []
        for timed in packet.messages:
            self.osc.receive(timed.message.address, timed.message.params)
        return []


class _Server(BlockingOSCUDPServer):
    """Lets every datagram reach the dispatcher (python-osc's own check would drop
    non-OSC data before it could be counted), takes datagrams of any size, and
    counts an error in handling one instead of printing its traceback to stderr."""

    max_packet_size = MAX_PACKET_BYTES

    def __init__(self, address: tuple[str, int], dispatcher: _CountingDispatcher) -> None:
        super().__init__(address, dispatcher)
        self.osc = dispatcher.osc

    def verify_request(self, request, client_address) -> bool:
        """Every datagram is handled (and counted when bad). Thread: the OSC server."""
        return True

    def handle_error(self, request, client_address) -> None:
        """Count and log, once per kind, an error that escaped the dispatcher.

        Thread: the OSC server.
        """
        exc = sys.exc_info()[1]
        self.osc.reject(
            f"error handling an OSC packet ({type(exc).__name__})",
            request[0],
            client_address,
            str(exc),
            exc=exc,
        )


class OscInput:
    """An OSC server thread writing `osc:` signals.

    Args:
        bus: where to write.
        host: the address to bind (127.0.0.1 unless the show says otherwise).
        port: UDP port; 0 picks a free one (see `port` after `start`).
    Attributes:
        packets: datagrams handled; messages: messages read from them.
        bad_packets: datagrams dropped whole; refused: messages or texts refused
            for a limit (names, text length); problems: both, by kind.
    Thread: start/stop/status from main; the server runs on its own thread (the
    only one that writes the counters).
    """

    name = "osc"

    def __init__(self, bus: SignalBus, *, host: str = "127.0.0.1", port: int = 9000) -> None:
        self.bus = bus
        self.host = host
        self.port = port
        self.packets = 0
        self.messages = 0
        self.bad_packets = 0
        self.refused = 0
        self.problems: dict[str, int] = {}
        self.error: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._names: set[str] = set()

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
        refused = f", {self.refused} refused" if self.refused else ""
        return f"osc {self.host}:{self.port}  {self.messages} msgs{bad}{refused}"

    def receive(self, address: str, params: list) -> None:
        """Write one message's arguments as signals (texts to the text queue).

        A message to a new address once MAX_NAMES signal names exist, and a text
        longer than MAX_TEXT_LENGTH, are refused and counted.

        Args:
            address: the OSC address, e.g. "/fader/1".
            params: its arguments as python-osc read them.
        Thread: the OSC server.
        """
        self.messages += 1
        source = f"osc:{address}"
        if not params:
            if self._may_write(source, address):
                self.bus.set(source, 1.0)
            return
        for p in params:
            if isinstance(p, str | bytes):
                if len(p) > MAX_TEXT_LENGTH:
                    self.refused += 1
                    self._problem(f"a text longer than {MAX_TEXT_LENGTH} (not queued)", address)
                else:
                    self.bus.texts.put(source, p)
        numbers = [_number(p) for p in params]
        first = True
        for index, value in enumerate(numbers):
            if value is None:
                continue
            if first:
                if not self._may_write(source, address):
                    return
                self.bus.set(source, value)
                first = False
            if len(numbers) > 1:
                name = f"{source}[{index}]"
                if not self._may_write(name, address):
                    return
                self.bus.set(name, value)

    def reject(
        self,
        kind: str,
        data: bytes,
        client_address: tuple[str, int],
        detail: str = "",
        *,
        exc: BaseException | None = None,
    ) -> None:
        """Count a dropped packet; log the first of each kind.

        Args:
            kind: what is wrong, from a fixed set of phrases (never packet data, so
                the kinds and the log lines they cause stay few).
            data: the packet (its address, when readable, goes into the log line).
            client_address: the sender.
            detail: more about the first one (python-osc's message), or "".
            exc: an exception whose traceback belongs in the log (an error in our
                own handling, not bad data).
        Thread: the OSC server.
        """
        self.bad_packets += 1
        where = f"OSC packet from {client_address[0]}{_address_of(data)}"
        self._problem(kind, where, detail, exc=exc)

    def _problem(
        self, kind: str, where: str, detail: str = "", *, exc: BaseException | None = None
    ) -> None:
        count = self.problems.get(kind, 0) + 1
        self.problems[kind] = count
        if count == 1:
            more = f" ({detail[:200]})" if detail else ""
            log.warning(
                "%s: %s%s; dropped (further ones are counted on the HUD)",
                where,
                kind,
                more,
                exc_info=exc,
            )

    def _may_write(self, name: str, address: str) -> bool:
        if name in self._names:
            return True
        if len(self._names) >= MAX_NAMES:
            self.refused += 1
            self._problem(f"more than {MAX_NAMES} signal names: new addresses refused", address)
            return False
        self._names.add(name)
        return True


def _message_problem(data: bytes) -> str | None:
    """What python-osc would loop on or log about in a message, or None (python-osc
    reports every other problem itself)."""
    if not data.startswith(b"/"):
        return "not an OSC message or bundle"
    end = data.find(b"\0")
    if end > MAX_ADDRESS_BYTES or (end < 0 and len(data) > MAX_ADDRESS_BYTES):
        return f"an address longer than {MAX_ADDRESS_BYTES} bytes"
    if end < 0:
        return None
    tags_at = end + 4 - end % 4  # the address and its 1..4 NULs fill whole 4-byte words
    tags_end = data.find(b"\0", tags_at)
    tags = data[tags_at + 1 : tags_end if tags_end >= 0 else len(data)]
    if data[tags_at : tags_at + 1] == b"," and not KNOWN_TYPE_TAGS.issuperset(tags):
        return "an argument type python-osc does not read"
    return None


def _bundle_problem(data: bytes, depth: int) -> str | None:
    """What python-osc would loop on or log about in a bundle, or None."""
    if depth >= MAX_BUNDLE_DEPTH:
        return f"bundles nested more than {MAX_BUNDLE_DEPTH} deep"
    index = len(_BUNDLE) + 8  # then the 8-byte time tag
    while index < len(data):
        if index + 4 > len(data):
            return "a bundle element's size is cut short"
        size = int.from_bytes(data[index : index + 4], "big", signed=True)
        index += 4
        # python-osc steps back by a negative size and parses the same bytes for ever.
        if not 0 < size <= len(data) - index:
            return "a bundle element's size is out of bounds"
        element = data[index : index + size]
        if element.startswith(_BUNDLE):
            problem = _bundle_problem(element, depth + 1)
        elif element.startswith(b"/"):
            problem = _message_problem(element)
        else:
            problem = "a bundle element is neither a message nor a bundle"
        if problem is not None:
            return problem
        index += size
    return None


def _address_of(data: bytes) -> str:
    """' (to /ADDRESS)' when the packet starts with a readable address, else ''."""
    end = data.find(b"\0", 0, MAX_ADDRESS_BYTES + 1)
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
