"""`run_show.py hands record`: landmarks of a camera or a video into a recording."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from runtime.config import Table
from runtime.errors import InputError
from runtime.inputs.hands.camera import Landmarker, VideoSource
from runtime.inputs.hands.recording import RecordingWriter
from runtime.inputs.hands.settings import HandsSettings, read_settings

log = logging.getLogger(__name__)


def record(
    settings: HandsSettings,
    out: Path,
    *,
    seconds: float | None = None,
    stop: threading.Event | None = None,
) -> RecordingWriter:
    """Record the landmarks of a camera or video into a landmark recording.

    A video is read as fast as the landmarker goes, with the file's frame times; a
    camera is read at its rate until `seconds` have passed or `stop` is set.

    Args:
        settings: the source (camera or a video `file`), model and max_hands.
        out: the take folder to write.
        seconds: stop after this much source time; None runs to the video's end (a
            video is never looped here) or until `stop`.
        stop: an event that ends the recording.
    Returns:
        The closed writer (its `frames` says how many were written).
    Raises:
        InputError: mediapipe, the model, OpenCV or the source is missing.
    Thread: main.
    """
    if settings.is_recording:
        raise InputError(f"{settings.file}: already a landmark recording")
    settings = replace(settings, loop=False)
    landmarker = Landmarker(
        settings.model, max_hands=settings.max_hands, min_confidence=settings.min_confidence
    )
    source = VideoSource(settings)
    writer: RecordingWriter | None = None
    try:
        for t_s, rgb in source.frames():
            if writer is None:
                size_px = (rgb.shape[1], rgb.shape[0])
                writer = RecordingWriter(out, size_px, settings.source_name)
            if (seconds is not None and t_s > seconds) or (stop is not None and stop.is_set()):
                break
            writer.write(t_s, landmarker.detect(rgb, t_s))
    finally:
        source.close()
        landmarker.close()
        if writer is not None:
            writer.close()
    if writer is None:
        raise InputError(f"{settings.source_name}: gave no frames")
    return writer


def record_command(
    out: Path,
    *,
    camera: str | None = None,
    video: Path | None = None,
    seconds: float | None = None,
    model: Path | None = None,
    max_hands: int = 2,
) -> str:
    """`run_show.py hands record`: record a camera (the default, camera 0) or a video.

    Args:
        out: the take folder to write.
        camera: a camera index ("1") or device path; None and no video for camera 0.
        video: a video file instead of a camera.
        seconds: stop after this much source time (a camera otherwise runs to Ctrl-C).
        model: the hand_landmarker.task; None for the cache.
        max_hands: most hands to track, 1..4.
    Returns:
        One line saying what was written.
    Raises:
        ConfigError: a bad argument (a missing video, max_hands out of range).
        InputError: mediapipe, the model, OpenCV or the source is missing.
        KeyboardInterrupt: Ctrl-C; the recording keeps the frames written so far.
    Thread: main.
    """
    data: dict[str, Any] = {"max_hands": max_hands}
    if video is not None:
        data["file"] = str(video)
    elif camera is not None:
        data["camera"] = int(camera) if camera.isdigit() else camera
    if model is not None:
        data["model"] = str(model)
    settings = read_settings(
        Table(data, file=Path("<command line>"), text="", name="hands record"), Path.cwd()
    )
    log.info("recording %s to %s (Ctrl-C stops)", settings.source_name, out)
    writer = record(settings, out, seconds=seconds)
    return f"{out}: {writer.frames} frames"
