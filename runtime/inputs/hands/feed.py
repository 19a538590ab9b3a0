"""The offline hand source: a recording or a video stepped by the frame clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from runtime.errors import InputError
from runtime.inputs.hands.camera import Landmarker, VideoSource
from runtime.inputs.hands.recording import Recording, recording_frames
from runtime.inputs.hands.settings import HandsSettings
from runtime.inputs.hands.tracker import HandTracker
from runtime.signals import SignalBus

log = logging.getLogger(__name__)


class HandsFeed:
    """The offline hand source: a recording or a video stepped by the frame clock, so
    a render is repeatable. A camera cannot drive a render: it is reported once and
    every hand stays absent.

    Args:
        settings: `[inputs.hands]`.
        bus: where signals go.
        recording: the landmark recording when the source is one.
    Thread: main (the frame loop).
    """

    name = "hands"

    def __init__(
        self, settings: HandsSettings, bus: SignalBus, recording: Recording | None = None
    ) -> None:
        self.settings = settings
        self.tracker = HandTracker(bus, settings)
        self.problem: str | None = None
        self._aspect = 1.0
        self._pending: tuple[float, Any] | None = None
        self._landmarker: Landmarker | None = None
        self._frames: Iterator[tuple[float, Any]] | None = None
        if recording is not None:
            self._aspect = recording.size_px[0] / recording.size_px[1]
            self._frames = ((f.t_s, f.hands) for f in recording_frames(recording, settings.loop))
        elif settings.file is None:
            self._fail(
                f"camera {settings.camera} cannot drive an offline render; record it with "
                "`python run_show.py hands record` and name the recording in 'file'"
            )
        else:
            try:
                landmarker = Landmarker(
                    settings.model,
                    max_hands=settings.max_hands,
                    min_confidence=settings.min_confidence,
                )
            except InputError as exc:
                self._fail(str(exc))
                return
            try:
                self._frames = VideoSource(settings).frames()
            except InputError as exc:
                landmarker.close()
                self._fail(str(exc))
                return
            self._landmarker = landmarker

    def stop(self) -> None:
        """Release the landmarker and the video. Thread: main."""
        self._frames = None
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def update(self, bus: SignalBus, t_s: float) -> None:
        """Feed every source frame up to `t_s` (seconds into the render) to the
        tracker. Thread: main."""
        if self._frames is None:
            return
        while True:
            if self._pending is None:
                self._pending = next(self._frames, None)
                if self._pending is None:
                    self._frames = None
                    self.tracker.release_all()
                    return
            frame_t_s, item = self._pending
            if frame_t_s > t_s:
                return
            self._pending = None
            if self._landmarker is not None:
                self._aspect = item.shape[1] / item.shape[0]
                item = self._landmarker.detect(item, frame_t_s)
            self.tracker.update(item, frame_t_s, self._aspect)

    def _fail(self, message: str) -> None:
        log.warning("hands: %s", message)
        self.problem = message
