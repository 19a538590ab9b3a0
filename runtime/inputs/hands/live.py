"""The live hand input: a thread reading a camera, a video or a recording."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from runtime.errors import InputError
from runtime.inputs.hands.camera import Landmarker, VideoSource
from runtime.inputs.hands.recording import Recording, recording_frames
from runtime.inputs.hands.settings import HandsSettings
from runtime.inputs.hands.tracker import HandTracker
from runtime.signals import SignalBus

log = logging.getLogger(__name__)


#: Seconds between tries to open a missing camera.
RETRY_S = 2.0


class HandsInput:
    """The live hand input: one thread reading the source and writing hand signals.

    Args:
        settings: `[inputs.hands]`.
        bus: where signals go.
        recording: the landmark recording when the source is one (read at build).
    Thread: construct, start and stop from main; the work runs in thread "hands".
    """

    name = "hands"

    def __init__(
        self, settings: HandsSettings, bus: SignalBus, recording: Recording | None = None
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.recording = recording
        self.tracker = HandTracker(bus, settings)
        self.problems = 0
        self.skipped = 0
        self._problem: str | None = None
        self._state = "not started"
        self._rate_hz = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; never raises for a missing device. Thread: main."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._state = "starting"
        self._thread = threading.Thread(target=self._run, name="hands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the source; safe to call twice. Thread: main."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def status(self) -> str:
        """One HUD line: source, state, hands, rate and problems. Thread: any."""
        line = f"hands {self.settings.source_name}: {self._state}"
        if self._problem is None and self._state == "running":
            line += f", {self.tracker.count} hands, {self._rate_hz:.1f} fps"
        if self.skipped:
            line += f", {self.skipped} frames skipped"
        return line + (f", {self.problems} problems" if self.problems else "")

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end by itself (a file that does not loop).

        Returns:
            True when it has ended.
        Thread: main.
        """
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        try:
            if self.recording is not None:
                self._state = "running"
                aspect = self.recording.size_px[0] / self.recording.size_px[1]
                frames = (
                    (f.t_s, f.hands) for f in recording_frames(self.recording, self.settings.loop)
                )
                self._play(frames, aspect, None, 1.0 / 30)
                self._state = "stopped" if self._stop.is_set() else "ended"
                return
            try:
                landmarker = Landmarker(
                    self.settings.model,
                    max_hands=self.settings.max_hands,
                    min_confidence=self.settings.min_confidence,
                )
            except InputError as exc:
                # No package or no model: nothing to retry until someone installs it.
                self._report(str(exc))
                self._state = f"off ({exc})"
                return
            try:
                self._run_video(landmarker)
            finally:
                landmarker.close()
        except Exception as exc:  # an input thread never raises into the show
            log.debug("hands: input thread failed", exc_info=True)
            self._report(f"hand input stopped ({exc!r})")
            self._state = "failed"
        finally:
            self.tracker.release_all()

    def _run_video(self, landmarker: Landmarker) -> None:
        while not self._stop.is_set():
            try:
                source = VideoSource(self.settings)
            except InputError as exc:
                if self.settings.file is not None:
                    self._report(str(exc))
                    self._state = "off"
                    return
                self._report(f"{exc}; retrying every {RETRY_S:g} s")
                self._state = "waiting for the camera"
                self._stop.wait(RETRY_S)
                continue
            self._recovered()
            try:
                self._play(source.frames(), None, landmarker, 1.0 / source.fps)
            except Exception as exc:  # an input thread reports, counts and retries
                log.debug("hands: frame loop failed", exc_info=True)
                self._report(f"hand tracking failed ({exc!r}); restarting the source")
            finally:
                source.close()
            if self._stop.is_set() or (self.settings.file is not None and not self.settings.loop):
                self._state = "stopped" if self._stop.is_set() else "ended"
                return
            self.tracker.release_all()
            if self.settings.file is None:
                self._report(f"camera {self.settings.camera} stopped sending frames; retrying")
            self._stop.wait(RETRY_S)

    def _play(
        self,
        frames: Iterator[tuple[float, Any]],
        aspect: float | None,
        landmarker: Landmarker | None,
        period_s: float,
    ) -> None:
        # Files are paced to their own times; a camera paces itself (read blocks).
        paced = self.settings.file is not None
        origin_s: float | None = None
        window_s, window_frames = time.perf_counter(), 0
        self._state = "running"
        for t_s, item in frames:
            if self._stop.is_set():
                return
            if paced:
                now_s = time.perf_counter()
                if origin_s is None:
                    origin_s = now_s - t_s
                wait_s = origin_s + t_s - now_s
                if wait_s > 0.0 and self._stop.wait(wait_s):
                    return
                if landmarker is not None and wait_s < -period_s:
                    self.skipped += 1  # behind the file's clock: drop, do not queue
                    continue
            if landmarker is None:
                hands = item
            else:
                hands = landmarker.detect(item, t_s)
                aspect = item.shape[1] / item.shape[0]
            self.tracker.update(hands, t_s, aspect)
            window_frames += 1
            now_s = time.perf_counter()
            if now_s - window_s >= 1.0:
                self._rate_hz = window_frames / (now_s - window_s)
                window_s, window_frames = now_s, 0

    def _report(self, message: str) -> None:
        if message != self._problem:
            log.warning("hands: %s", message)
            self._problem = message
            self.problems += 1

    def _recovered(self) -> None:
        if self._problem is not None:
            log.info("hands: %s open", self.settings.source_name)
            self._problem = None
