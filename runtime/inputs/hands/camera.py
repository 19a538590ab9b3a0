"""MediaPipe's hand landmarker and OpenCV's cameras and videos (imported only when
a camera or a video is used)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from runtime.errors import InputError
from runtime.inputs.hands.geometry import Hand
from runtime.inputs.hands.settings import HandsSettings


class Landmarker:
    """MediaPipe's hand landmarker in video mode (it tracks between frames).

    Args:
        model: the hand_landmarker.task bundle.
        max_hands: most hands to find.
        min_confidence: detection, presence and tracking threshold.
    Raises:
        InputError: mediapipe is not installed, or the model is missing or unloadable.
    Thread: one thread per instance.
    """

    def __init__(self, model: Path, *, max_hands: int, min_confidence: float) -> None:
        if not Path(model).is_file():
            raise InputError(
                f"no hand model at {model}: build it once with `python run_show.py hands model`"
            )
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise InputError(
                "hand tracking needs mediapipe, which is not installed "
                f"({exc.msg}): pip install 'latentstage[hands]'"
            ) from None
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            running_mode=vision.RunningMode.VIDEO,
            num_hands=max_hands,
            min_hand_detection_confidence=min_confidence,
            min_hand_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        try:
            self._task = vision.HandLandmarker.create_from_options(options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise InputError(f"{model}: MediaPipe cannot load this hand model ({exc})") from None
        self._mp = mp
        self._last_ms = -1

    def detect(self, rgb: np.ndarray, t_s: float) -> tuple[Hand, ...]:
        """Find the hands in one frame.

        Args:
            rgb: (H, W, 3) uint8 frame.
            t_s: the frame's time; frames must come in time order (a time not after
                the last is nudged 1 ms on, as MediaPipe requires).
        Returns:
            The hands found.
        Thread: owner.
        """
        t_ms = max(round(t_s * 1000.0), self._last_ms + 1)
        self._last_ms = t_ms
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        result = self._task.detect_for_video(image, t_ms)
        hands = []
        for i, marks in enumerate(result.hand_landmarks):
            world = result.hand_world_landmarks[i] if i < len(result.hand_world_landmarks) else []
            side = result.handedness[i][0] if i < len(result.handedness) else None
            hands.append(
                Hand(
                    image=np.array([(p.x, p.y, p.z) for p in marks]),  # (21, 3)
                    world=np.array([(p.x, p.y, p.z) for p in world]) if world else None,
                    handedness=side.category_name if side else "",
                    score=float(side.score) if side else 1.0,
                )
            )
        return tuple(hands)

    def close(self) -> None:
        """Free the task. Thread: owner."""
        self._task.close()


class VideoSource:
    """Frames from a camera or a video file through OpenCV, as RGB arrays.

    Args:
        settings: the input's settings (camera or file, camera_size, loop).
    Raises:
        InputError: OpenCV is missing, or the camera or file cannot be opened.
    Thread: one thread per instance.
    """

    def __init__(self, settings: HandsSettings) -> None:
        try:
            import cv2
        except ImportError:
            raise InputError(
                "reading a camera or video needs OpenCV (it comes with mediapipe): "
                "pip install 'latentstage[hands]'"
            ) from None
        self._cv2 = cv2
        self.settings = settings
        self.is_camera = settings.file is None
        target = settings.camera if self.is_camera else str(settings.file)
        # OpenCV logs its own warnings on every failed open (every retry, for months
        # in an installation); ours is reported once, so keep it quiet meanwhile.
        cv_log = cv2.utils.logging
        level = cv_log.getLogLevel()
        cv_log.setLogLevel(cv_log.LOG_LEVEL_SILENT)
        try:
            self._capture = cv2.VideoCapture(target)
        finally:
            cv_log.setLogLevel(level)
        if not self._capture.isOpened():
            self._capture.release()
            if self.is_camera:
                linux = sys.platform.startswith("linux") and isinstance(target, int)
                device = f"/dev/video{target}" if linux else "it"
                raise InputError(f"no camera {target} ({device} cannot be opened)")
            raise InputError(f"{settings.file}: OpenCV cannot open this video")
        if self.is_camera:
            # Keep one frame queued: a slow landmarker then sees the newest frame.
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if settings.camera_size:
                self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, settings.camera_size[0])
                self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.camera_size[1])
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """(t_s, (H, W, 3) RGB frame) pairs: a camera's until it fails, a file's to its
        end (forever when looping; times keep rising across loops). Thread: owner."""
        cv2 = self._cv2
        start_s = time.perf_counter()
        offset_s, index = 0.0, 0
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                if self.is_camera or not self.settings.loop or index == 0:
                    return
                offset_s += index / self.fps
                index = 0
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            t_s = time.perf_counter() - start_s if self.is_camera else offset_s + index / self.fps
            index += 1
            yield t_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Release the camera or file. Thread: owner."""
        self._capture.release()
