"""Graceful stops: SIGTERM, SIGINT and SIGHUP become a flag the loops read once per
frame, so a show stopped by a service manager, a supervisor or Ctrl-C closes its
inputs, finishes its recording and logs its statistics before it exits with 0.

A second SIGINT while stopping raises KeyboardInterrupt: someone at the keyboard who
presses Ctrl-C twice wants out now.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopFlag:
    """Set by a stop signal (or by `request`), read by the loop.

    Use as a context manager: entering installs the handlers (main thread only:
    Python delivers signals there; elsewhere the flag only answers `request`),
    leaving restores the previous ones.

    Attributes:
        reason: what asked for the stop ("SIGTERM", "the supervisor is gone"), or None.
    Thread: enter, leave and read on the main thread; `request` from any thread.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """True once a stop was asked for. Thread: any."""
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask the loop to stop (the first reason is kept). Thread: any."""
        if self.reason is None:
            self.reason = reason

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # No logging here: the handler may interrupt the main thread inside a log call.
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)
