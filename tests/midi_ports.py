"""MIDI test helpers: a port subclass for absent hardware, and a dummy JACK server.

`FeedBackend` stands in for a machine's MIDI system: the test decides which port
names are present and sends real mido messages into the open ports. `jack_server`
starts `jackd` with its dummy driver, so python-rtmidi's JACK API opens real virtual
ports without a sound card.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import mido
import mido.ports
import pytest

from runtime.devices import quiet_stderr


class FeedPort(mido.ports.BaseInput):
    """A mido input port whose messages come from the test (`send_in`)."""

    def _open(self, callback=None, **kwargs):
        self.callback = callback

    def _close(self):
        self.callback = None

    def send_in(self, msg: mido.Message) -> None:
        """Deliver `msg` as the hardware would: through the port's callback."""
        if self.closed or self.callback is None:
            raise OSError(f"port {self.name!r} is closed")
        self.callback(msg, time.perf_counter())


class FeedBackend:
    """A MIDI system whose ports the test plugs and unplugs."""

    label = "test ports"

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = list(names or [])
        self.ports: dict[str, FeedPort] = {}
        self.available = True

    def input_names(self) -> list[str]:
        from runtime.errors import InputError

        if not self.available:
            raise InputError("no MIDI device (test: MIDI system absent)")
        return list(self.names)

    def open_input(self, name, callback):
        port = FeedPort(name, callback=callback)
        self.ports[name] = port
        return port

    def close(self) -> None:
        pass


class NoJack(RuntimeError):
    """No dummy JACK server could be started here."""


@contextmanager
def dummy_jack(period: int = 256) -> Iterator[str]:
    """Run `jackd` with its dummy driver (48 kHz, `period` frames) for the duration.

    Yields:
        The server's name (also set as JACK_DEFAULT_SERVER for this process, which
        python-rtmidi's JACK API reads when it opens a client).
    Raises:
        NoJack: jackd is not installed or does not come up.
    """
    jackd = shutil.which("jackd")
    if jackd is None:
        raise NoJack("jackd not installed (apt-get install jackd2): no virtual MIDI ports")
    name = f"ls{uuid.uuid4().hex[:8]}"
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    proc = subprocess.Popen(
        [jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", str(period)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    try:
        _wait_for_jack(proc)
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old


@contextmanager
def jack_server(period: int = 256) -> Iterator[str]:
    """`dummy_jack` for a test: skips the test when there is no jackd."""
    with ExitStack() as stack:
        try:
            name = stack.enter_context(dummy_jack(period))
        except NoJack as exc:
            pytest.skip(str(exc))
        yield name


def _die_with_parent() -> None:
    """In the child: ask Linux to end it when the test process dies, even by a crash."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_for_jack(proc: subprocess.Popen) -> None:
    import rtmidi

    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NoJack(f"jackd exited at start (status {proc.returncode})")
        try:
            with quiet_stderr():  # libjack prints each refused try
                rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="probe").delete()
            return
        except OSError:
            time.sleep(0.1)
    raise NoJack("the dummy JACK server did not come up within 10 s")


def wait_until(predicate, timeout_s: float = 3.0) -> bool:
    """Poll `predicate` until it is true or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(0.01)
    return True
