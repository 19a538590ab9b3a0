"""`run_show.py supervise SHOW`: keep a show playing for months on a machine without
systemd (docs/INSTALLATION.md has the systemd way).

The supervisor runs `run_show.py play SHOW ...` as a child and restarts it when it
ends or hangs:

- **Heartbeat.** The child gets the write end of a pipe (`$LATENTSTAGE_HEARTBEAT_FD`,
  runtime/notify.py); its frame loop writes a byte four times a second, the first
  one after the first frame is on the screen. No byte for `hang_s` (a wedged GPU
  call, a stopped process) and the child is killed with SIGKILL: a hung process
  answers nothing gentler. No first frame within `start_s` counts as a hang too.
- **Backoff.** A child that ends soon after it started waits 1, 2, 4 ... up to 60 s
  before the next start, so a show that cannot start does not spin; after a child
  has played well for `stable_s`, the next start is immediate again.
- **Crash log.** Each crash or hang appends the time, how it ended and the child's
  last output lines to a file; the child's output also passes through to the
  supervisor's own log.
- **Stopping.** SIGTERM, SIGINT or SIGHUP is forwarded to the child as SIGTERM; the
  supervisor waits for it (SIGKILL after STOP_WAIT_S) and exits with 0. If the
  supervisor itself dies, the child finds the pipe closed and stops.
- **Under systemd** as well, the supervisor is the one that notifies (READY=1 at the
  first frame, WATCHDOG=1 while it watches); the child is not told of the socket.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from runtime import PROJECT_ROOT
from runtime.notify import HEARTBEAT_ENV, SystemdNotify
from runtime.shutdown import StopFlag

log = logging.getLogger(__name__)

#: The child's last output lines kept for the crash log.
CRASH_LINES = 40
#: Backoff: the first wait after a short run, and the longest.
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
#: How long a stopping child may take before it is killed.
STOP_WAIT_S = 15.0
#: The crash log is rotated (one old file kept) beyond this size.
CRASH_LOG_MAX_BYTES = 10_000_000
_TICK_S = 0.25
_SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def next_backoff_s(previous_s: float, *, ran_well: bool) -> float:
    """The wait before the next start.

    Args:
        previous_s: the wait before the child that just ended (0 for the first).
        ran_well: that child played for the stable time.
    Returns:
        0 after a good run; else 1, 2, 4 ... up to MAX_BACKOFF_S.
    Thread: any.
    """
    if ran_well:
        return 0.0
    return min(max(previous_s * 2.0, FIRST_BACKOFF_S), MAX_BACKOFF_S)


def default_crash_log(show: Path, log_file: Path | None) -> Path:
    """Where crashes are recorded by default: beside the log file when there is
    one, else beside the show; named after the show. Thread: any."""
    folder = log_file.parent if log_file is not None else show.parent
    return folder / f"{show.stem}-crashes.log"


class _Child:
    """One run of the show: the process, its heartbeat pipe and its last lines."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                argv,
                env={**env, HEARTBEAT_ENV: str(write_fd)},
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Its own process group: a kill reaches whatever it started, and
                # Ctrl-C in a terminal reaches only the supervisor, which forwards it.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)  # the child's copy is the only one: its death is EOF
        self.beats: int | None = read_fd
        self.started_s = time.monotonic()
        self.first_frame_s: float | None = None
        self.last_beat_s = self.started_s
        self.lines: deque[str] = deque(maxlen=CRASH_LINES)
        self._relay = threading.Thread(target=self._pass_output, name="show-output", daemon=True)
        self._relay.start()

    def _pass_output(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        with stdout:
            for raw in stdout:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                log.info("%s", line, extra={"relayed": True})

    def read_beats(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for heartbeat bytes; True when some came."""
        if self.beats is None:
            time.sleep(timeout_s)
            return False
        ready, _, _ = select.select([self.beats], [], [], timeout_s)
        if not ready:
            return False
        if os.read(self.beats, 4096):
            return True
        self._close_beats()  # end of file: the child closed the pipe or exited
        return False

    def kill(self) -> None:
        """SIGKILL the child's process group (a stopped or wedged child included)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self, wait_s: float) -> None:
        """SIGTERM (and SIGCONT, in case it was stopped), then SIGKILL after `wait_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.send_signal(signal.SIGCONT)
            try:
                self.proc.wait(timeout=wait_s)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                log.warning("the show did not stop in %g s: killed", wait_s)
                self.kill()

    def finish(self) -> None:
        """Collect the last output lines and close the heartbeat pipe (after it
        ended). The relay closes the output pipe itself at its end of file, which a
        process the show started may hold back: it is not waited for beyond 2 s."""
        self._relay.join(timeout=2.0)
        self._close_beats()

    def _close_beats(self) -> None:
        if self.beats is not None:
            os.close(self.beats)
            self.beats = None


class Supervisor:
    """Runs a show as a child process and keeps it running.

    Args:
        show: the show file.
        play_args: options for `run_show.py play` (e.g. ["--fullscreen", "--no-hud"]).
        hang_s: kill a child whose heartbeat stopped for this long.
        start_s: kill a child that has not presented a first frame after this long.
        stable_s: a child that played this long resets the backoff.
        crash_log: the file crashes are appended to.
        verbose: run the child with -v.
    Thread: main (it installs signal handlers).
    """

    def __init__(
        self,
        show: Path,
        play_args: list[str],
        *,
        hang_s: float = 5.0,
        start_s: float = 300.0,
        stable_s: float = 60.0,
        crash_log: Path,
        verbose: bool = False,
    ) -> None:
        self.show = show
        self.argv = [sys.executable, str(PROJECT_ROOT / "run_show.py")]
        self.argv += ["-v"] if verbose else []
        self.argv += ["play", str(show), *play_args]
        self.hang_s = hang_s
        self.start_s = start_s
        self.stable_s = stable_s
        self.crash_log = crash_log
        self.systemd = SystemdNotify()
        self.env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_ENV}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.starts = 0
        self._ready = False
        self._crash_log_failed = False

    def run(self) -> int:
        """Start, watch and restart the show until a stop signal.

        Returns:
            0 (the exit status: a stop asked for is a clean stop).
        Thread: main.
        """
        backoff_s = 0.0
        child: _Child | None = None
        with StopFlag() as stop:
            try:
                while not stop.requested:
                    child = _Child(self.argv, self.env)
                    self.starts += 1
                    log.info("show started: pid %d (start %d)", child.proc.pid, self.starts)
                    ending = self._watch(child, stop)
                    if ending is None:
                        break
                    child.finish()
                    ran_well = (
                        child.first_frame_s is not None
                        and time.monotonic() - child.first_frame_s >= self.stable_s
                    )
                    backoff_s = next_backoff_s(backoff_s, ran_well=ran_well)
                    crashed = child.proc.returncode != 0
                    if crashed:
                        self._record(child, ending, backoff_s)
                    (log.error if crashed else log.info)(
                        "show %s after %.1f s; next start in %g s%s",
                        ending,
                        time.monotonic() - child.started_s,
                        backoff_s,
                        f" (details in {self.crash_log})" if crashed else "",
                    )
                    self._pause(backoff_s, stop)
            finally:
                if child is not None and child.proc.poll() is None:
                    log.info("stopping the show (pid %d)", child.proc.pid)
                    child.terminate(STOP_WAIT_S)
                    child.finish()
                self.systemd.send("STOPPING=1")
                self.systemd.close()
        log.info("supervisor stopped: %s; %d starts", stop.reason or "done", self.starts)
        return 0

    def _watch(self, child: _Child, stop: StopFlag) -> str | None:
        """Watch one child until it ends or hangs. Returns how it ended, or None when
        a stop was asked for (the child still runs)."""
        while not stop.requested:
            beat = child.read_beats(_TICK_S)
            now = time.monotonic()
            if beat:
                child.last_beat_s = now
                if child.first_frame_s is None:
                    child.first_frame_s = now
                    log.info(
                        "first frame after %.1f s (pid %d)", now - child.started_s, child.proc.pid
                    )
                    if not self._ready:
                        self._ready = True
                        self.systemd.send("READY=1")
                    self.systemd.send(f"STATUS=playing (pid {child.proc.pid}, start {self.starts})")
            self._keepalive()
            code = child.proc.poll()
            if code is not None:
                return _describe(code)
            if child.first_frame_s is None:
                if now - child.started_s > self.start_s:
                    child.kill()
                    return f"showed no first frame in {self.start_s:g} s (killed)"
            elif now - child.last_beat_s > self.hang_s:
                child.kill()
                return f"hung: no heartbeat for {self.hang_s:g} s (killed)"
        return None

    def _pause(self, wait_s: float, stop: StopFlag) -> None:
        """Wait before the next start, still answering stops and the watchdog."""
        until = time.monotonic() + wait_s
        while not stop.requested and time.monotonic() < until:
            time.sleep(min(_TICK_S, max(until - time.monotonic(), 0.0)))
            self._keepalive()

    def _keepalive(self) -> None:
        if self.systemd.watchdog_s is not None:
            self.systemd.send("WATCHDOG=1")

    def _record(self, child: _Child, ending: str, backoff_s: float) -> None:
        """Append one crash to the crash log (rotated when large)."""
        now = dt.datetime.now().astimezone()
        first = (
            f"first frame after {child.first_frame_s - child.started_s:.1f} s"
            if child.first_frame_s is not None
            else "no frame presented"
        )
        entry = [
            f"=== {now:%Y-%m-%d %H:%M:%S %z}  {self.show}  pid {child.proc.pid}",
            f"{ending}; ran {time.monotonic() - child.started_s:.1f} s; {first}",
            f"next start in {backoff_s:g} s",
            f"its last {len(child.lines)} output lines:",
            *(f"  {line}" for line in child.lines),
            "",
        ]
        try:
            if self.crash_log.exists() and self.crash_log.stat().st_size > CRASH_LOG_MAX_BYTES:
                self.crash_log.replace(self.crash_log.with_name(self.crash_log.name + ".1"))
            with self.crash_log.open("a", encoding="utf-8") as f:
                f.write("\n".join(entry) + "\n")
        except OSError as exc:
            if not self._crash_log_failed:
                self._crash_log_failed = True
                log.error("cannot write the crash log %s: %s", self.crash_log, exc.strerror or exc)


def _describe(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"
