"""Signs of life for whoever restarts the show: systemd's notify socket and the
supervisor's heartbeat pipe.

- systemd (`Type=notify`, `WatchdogSec=`): `READY=1` once the first frame is on the
  screen, `WATCHDOG=1` a few times a second, `STOPPING=1` on the way out. This is
  sd_notify(3) written out (one unix datagram per message to `$NOTIFY_SOCKET`, an
  abstract socket when it starts with '@'), so no libsystemd binding is needed.
- `run_show.py supervise` (runtime/supervise.py) hands its child the write end of a
  pipe in `$LATENTSTAGE_HEARTBEAT_FD`; the frame loop writes one byte per beat. The
  first byte means "first frame presented"; silence means a hang.

Writes never block: a full pipe or a busy socket loses a beat, not a frame. Without
either variable every call here is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "LATENTSTAGE_HEARTBEAT_FD"
#: The frame loop beats this often (the supervisor's hang limit is several beats).
BEAT_S = 0.25


class SystemdNotify:
    """sd_notify(3): messages to the service manager over `$NOTIFY_SOCKET`.

    Args:
        environ: where to read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
            (default os.environ).
    Attributes:
        enabled: a notify socket was given.
        watchdog_s: WatchdogSec when the watchdog is on for this process, else None.
    Thread: one thread at a time (the frame loop, or the supervisor's main thread).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        self._sock: socket.socket | None = None
        self._failed = False
        self._name = address
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()  # Linux abstract namespace
        elif address.startswith("/"):
            self._address = address
        self.enabled = self._address is not None
        self.watchdog_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for (sd_watchdog_enabled).
        if self.enabled and usec.isdigit() and int(usec) > 0 and pid in ("", str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    def send(self, *fields: str) -> bool:
        """Send one message of `KEY=value` fields (e.g. "READY=1", "STATUS=playing").

        Returns:
            True when sent; False without a socket or when sending failed (logged
            once: a service manager that went away must not stop the show).
        Thread: see the class.
        """
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("systemd notify socket %s: %s", self._name, exc)
            return False
        return True

    def close(self) -> None:
        """Close the socket. Thread: see the class."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Heartbeat:
    """The write end of the supervisor's heartbeat pipe, from `$LATENTSTAGE_HEARTBEAT_FD`.

    Args:
        environ: where to read the variable (default os.environ; it is removed from
            os.environ so processes the show starts do not inherit it).
    Attributes:
        enabled: a pipe was given.
        supervisor_gone: a beat found the pipe closed: the supervisor died, and a
            show nobody supervises any more should stop rather than run twice.
    Thread: the frame loop.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        value = env.get(HEARTBEAT_ENV, "")
        if environ is None:
            os.environ.pop(HEARTBEAT_ENV, None)
        self._fd: int | None = None
        self.supervisor_gone = False
        if value.isdigit():
            fd = int(value)
            try:
                os.set_blocking(fd, False)
                os.set_inheritable(fd, False)
                self._fd = fd
            except OSError as exc:
                log.warning("%s=%s: not an open pipe (%s); no heartbeat", HEARTBEAT_ENV, value, exc)
        self.enabled = self._fd is not None

    def beat(self) -> None:
        """Write one byte; never blocks. Thread: the frame loop."""
        if self._fd is None:
            return
        try:
            os.write(self._fd, b".")
        except BlockingIOError:
            pass  # the supervisor is behind on reading: it already holds plenty of beats
        except OSError:  # EPIPE: nobody reads the pipe any more
            self.supervisor_gone = True
            self.close()

    def close(self) -> None:
        """Close the pipe (the supervisor sees end of file). Thread: the frame loop."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class Lifeline:
    """The frame loop's signs of life, to systemd and to the supervisor at once.

    Args:
        environ: the environment to read (default os.environ).
    Thread: the frame loop (main).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.systemd = SystemdNotify(environ)
        self.heartbeat = Heartbeat(environ)
        self._ready = False

    @property
    def supervisor_gone(self) -> bool:
        """True once the supervisor's pipe was found closed. Thread: the frame loop."""
        return self.heartbeat.supervisor_gone

    def alive(self) -> None:
        """One beat, every BEAT_S while frames are presented; the first one says
        READY (call it after the first frame was presented). Thread: the frame loop."""
        self.heartbeat.beat()
        if not self._ready:
            self._ready = True
            self.systemd.send("READY=1", "STATUS=playing")
        elif self.systemd.watchdog_s is not None:
            self.systemd.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """A one-line status for `systemctl status`. Thread: the frame loop."""
        if self.systemd.enabled:
            self.systemd.send(f"STATUS={text}")

    def stopping(self) -> None:
        """Say the show is on its way out, and close the pipe. Thread: the frame loop."""
        self.systemd.send("STOPPING=1")
        self.systemd.close()
        self.heartbeat.close()
