"""Hand tracking: MediaPipe hand landmarks from a camera, a video file or a landmark
recording, smoothed with the one-euro filter and turned into a few signals per hand.

    [inputs.hands]
    camera = 0                 # a camera index or device path (the default source) ...
    # file = "hands.jsonl"     # ... or a video file, or a landmark recording (.jsonl)
    loop = true                # files start again at their end
    max_hands = 2              # 1..4 hand slots
    model = "hand_landmarker.task"   # default: the cache (`run_show.py hands model`)
    mirror = true              # x as in a mirror: your hand moving to your right raises x
    min_confidence = 0.5       # MediaPipe's detection, presence and tracking thresholds
    min_cutoff_hz = 1.0        # one-euro smoothing of the landmarks (runtime.filters)
    beta = 10.0
    d_cutoff_hz = 1.0
    hold_s = 0.2               # a hand missing for less than this stays present
    depth_range = [0.05, 0.4]  # palm length in frame heights at z = 0 and at z = 1
    camera_size = [640, 480]   # ask the camera for this size (default: its own)

Signals, for each hand slot N in 0..max_hands-1 (docs/SENSORS.md):

    hand:N/present   1 while the hand is tracked, 0 once it has been gone for hold_s
    hand:N/x         0..1 palm centre, left to right (mirrored when `mirror`)
    hand:N/y         0..1 palm centre, bottom to top
    hand:N/z         0..1 nearness: palm length mapped through depth_range (0 far, 1 near)
    hand:N/pinch     0..1 thumb tip to index tip: 1 touching, 0 apart (ratio >= 0.8)
    hand:N/openness  0..1 fingertips to wrist: 0 a fist, 1 a flat open hand
    hand:count       hands present

A hand keeps its slot while it is tracked (new detections go to the nearest slot's
last palm centre); a new hand takes the lowest free slot. x, y, z, pinch and openness
keep their last values while a hand is absent: gate on `present`.

The input thread runs at the source's rate: a camera's frame rate, a file's frame
times (frames it cannot keep up with are skipped, not queued). An offline render
(`offline=True`) steps a file by the frame clock instead (a FrameFeed), so a render
with a recording or a video is repeatable. A missing camera, model file or mediapipe
package is reported once and the show plays on (a camera is retried).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime.config import Table
from runtime.errors import ConfigError, InputError
from runtime.filters import OneEuro
from runtime.inputs.hands_model import default_task_path
from runtime.signals import SignalBus

log = logging.getLogger(__name__)

#: Landmarks per hand (MediaPipe's hand model).
N_LANDMARKS = 21
WRIST, THUMB_TIP, INDEX_TIP, MIDDLE_MCP = 0, 4, 8, 9
#: The wrist and the four knuckles: their mean is the palm centre.
PALM = (0, 5, 9, 13, 17)
#: Index, middle, ring and little fingertips (the thumb moves on its own axis).
FINGERTIPS = (8, 12, 16, 20)
#: Thumb-to-index distance over palm length: touching at or below TOUCH, apart at or
#: above APART. A flat open hand measures 0.75..1.1 (opencv-doc's hand photos).
PINCH_TOUCH_RATIO = 0.2
PINCH_APART_RATIO = 0.8
#: Mean fingertip-to-wrist distance over palm length: a fist about 0.9, a flat open
#: hand 1.72..1.76 (opencv-doc's hand photos, MediaPipe world landmarks).
FIST_RATIO = 0.9
OPEN_RATIO = 1.7
#: Seconds between tries to open a missing camera.
RETRY_S = 2.0
RECORDING_FORMAT = "latentstage-hands"
RECORDING_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: What `run_show.py signals` lists for this input (N is the hand slot).
SIGNALS = (
    ("hand:N/present", "1 while hand N is tracked, 0 once it has been gone for hold_s"),
    ("hand:N/x", "palm centre 0..1, left to right (as in a mirror when `mirror`)"),
    ("hand:N/y", "palm centre 0..1, bottom to top"),
    ("hand:N/z", "nearness 0..1: palm length through depth_range (0 far, 1 near)"),
    ("hand:N/pinch", "0..1: 1 when thumb and index tips touch"),
    ("hand:N/openness", "0..1: 0 a fist, 1 a flat open hand"),
    ("hand:count", "hands present"),
)


# -- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hand:
    """One detected hand in one frame.

    Attributes:
        image: (21, 3) landmarks: x and y in 0..1 of the frame's width and height
            (y down), z the depth relative to the wrist in about x's scale (MediaPipe's
            convention; smaller is nearer the camera).
        world: (21, 3) landmarks in metres around the hand's centre, or None.
        handedness: "Left" or "Right" as MediaPipe reports it ("" when unknown).
        score: detection confidence 0..1.
    """

    image: np.ndarray
    world: np.ndarray | None = None
    handedness: str = ""
    score: float = 1.0


@dataclass(frozen=True)
class Frame:
    """The hands seen in one frame, at `t_s` seconds into the source."""

    t_s: float
    hands: tuple[Hand, ...]


@dataclass(frozen=True)
class Recording:
    """A landmark recording: the source frame size and the frames, oldest first."""

    size_px: tuple[int, int]
    frames: tuple[Frame, ...]

    @property
    def duration_s(self) -> float:
        """Time from the first frame to one frame period past the last. Thread: any."""
        if not self.frames:
            return 0.0
        times = [f.t_s for f in self.frames]
        period_s = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0 / 30
        return times[-1] - times[0] + period_s


@dataclass(frozen=True)
class HandValues:
    """The signals derived from one hand (see the module docstring for meanings)."""

    x: float
    y: float
    z: float
    pinch: float
    openness: float


@dataclass(frozen=True)
class HandsSettings:
    """The `[inputs.hands]` table, read strictly (module docstring for each key)."""

    camera: int | str | None
    file: Path | None
    loop: bool
    max_hands: int
    model: Path
    mirror: bool
    min_confidence: float
    min_cutoff_hz: float
    beta: float
    d_cutoff_hz: float
    hold_s: float
    depth_range: tuple[float, float]
    camera_size: tuple[int, int] | None

    @property
    def source_name(self) -> str:
        """'camera 0' or the file name, for messages. Thread: any."""
        return f"camera {self.camera}" if self.file is None else self.file.name

    @property
    def is_recording(self) -> bool:
        """True when the source is a landmark recording. Thread: any."""
        return self.file is not None and self.file.suffix.lower() == ".jsonl"


def read_settings(table: Table, folder: Path) -> HandsSettings:
    """Read `[inputs.hands]` strictly.

    Args:
        table: the table.
        folder: the show's folder; relative paths resolve here.
    Returns:
        The settings.
    Raises:
        ConfigError: an unknown key, a wrong type or range, both `camera` and `file`,
            or a `file` that does not exist or is neither a video nor a recording.
    Thread: main.
    """
    if "camera" in table.data and "file" in table.data:
        raise table.error("file", "give either 'camera' or 'file', not both")
    camera = table.take("camera", (int, str), None, check=_camera_check)
    file_s = table.take("file", str, None)
    file = None
    if file_s is not None:
        file = folder / file_s
        suffixes = (*VIDEO_SUFFIXES, ".jsonl")
        if file.suffix.lower() not in suffixes:
            raise table.error(
                "file",
                f"expected a video ({', '.join(VIDEO_SUFFIXES)}) or a landmark recording "
                f"(.jsonl), got {file_s!r}",
            )
        if not file.is_file():
            raise table.error("file", f"file not found: {file}")
    elif camera is None:
        camera = 0
    model_s = table.take("model", str, None)
    settings = HandsSettings(
        camera=camera,
        file=file,
        loop=table.take("loop", bool, True),
        max_hands=table.take("max_hands", int, 2, check=_range(1, 4)),
        model=folder / model_s if model_s else default_task_path(),
        mirror=table.take("mirror", bool, True),
        min_confidence=table.take("min_confidence", float, 0.5, check=_range(0.0, 1.0)),
        min_cutoff_hz=table.take("min_cutoff_hz", float, 1.0, check=_positive),
        beta=table.take("beta", float, 10.0, check=_range(0.0, math.inf)),
        d_cutoff_hz=table.take("d_cutoff_hz", float, 1.0, check=_positive),
        hold_s=table.take("hold_s", float, 0.2, check=_range(0.0, 60.0)),
        depth_range=_pair(table, "depth_range", (0.05, 0.4)),
        camera_size=_camera_size(table),
    )
    table.finish()
    return settings


# -- derivations -------------------------------------------------------------------------


def uniform_points(image: np.ndarray, aspect: float) -> np.ndarray:
    """Image landmarks in one scale on every axis: x and z times the frame's aspect,
    so distances are in frame heights.

    Args:
        image: (21, 3) normalised landmarks.
        aspect: frame width / height.
    Returns:
        (21, 3) points.
    Thread: any.
    """
    return image * np.array([aspect, 1.0, aspect])  # (21, 3)


def palm_length(points: np.ndarray) -> float:
    """Wrist to middle knuckle: the hand's size, steady whatever the fingers do.

    Args:
        points: (21, 3) landmarks in a uniform scale (world, or `uniform_points`).
    Thread: any.
    """
    return float(np.linalg.norm(points[MIDDLE_MCP] - points[WRIST]))


def pinch_amount(points: np.ndarray) -> float:
    """How closed the thumb-index pinch is: 1 when the tips touch, 0 when apart.

    The thumb-to-index tip distance over palm length, mapped linearly from
    PINCH_APART_RATIO (0) to PINCH_TOUCH_RATIO (1) and clamped.

    Args:
        points: (21, 3) landmarks in a uniform scale.
    Returns:
        0..1 (0 for a degenerate hand of zero size).
    Thread: any.
    """
    size = palm_length(points)
    if size <= 0.0:
        return 0.0
    ratio = float(np.linalg.norm(points[THUMB_TIP] - points[INDEX_TIP])) / size
    return _clamp01((PINCH_APART_RATIO - ratio) / (PINCH_APART_RATIO - PINCH_TOUCH_RATIO))


def openness_amount(points: np.ndarray) -> float:
    """How open the hand is: 0 a fist, 1 a flat open hand.

    The mean distance from the four fingertips to the wrist over palm length, mapped
    linearly from FIST_RATIO (0) to OPEN_RATIO (1) and clamped.

    Args:
        points: (21, 3) landmarks in a uniform scale.
    Returns:
        0..1 (0 for a degenerate hand of zero size).
    Thread: any.
    """
    size = palm_length(points)
    if size <= 0.0:
        return 0.0
    tips = points[list(FINGERTIPS)]  # (4, 3)
    ratio = float(np.linalg.norm(tips - points[WRIST], axis=1).mean()) / size
    return _clamp01((ratio - FIST_RATIO) / (OPEN_RATIO - FIST_RATIO))


def derive(
    image: np.ndarray,
    world: np.ndarray | None,
    *,
    aspect: float,
    mirror: bool,
    depth_range: tuple[float, float],
) -> HandValues:
    """The signals of one hand from its landmarks.

    x and y are the palm centre (mean of wrist and knuckles) in the frame, y turned
    to grow upwards; z maps the palm length in frame heights through `depth_range`;
    pinch and openness come from the world landmarks when given (true 3D, in any
    pose), else from the image landmarks in a uniform scale.

    Args:
        image: (21, 3) normalised image landmarks.
        world: (21, 3) world landmarks in metres, or None.
        aspect: frame width / height.
        mirror: flip x, as in a mirror.
        depth_range: palm length (frame heights) at z = 0 and at z = 1.
    Returns:
        HandValues, each in 0..1.
    Thread: any.
    """
    centre = image[list(PALM), :2].mean(axis=0)  # (2,)
    x = float(centre[0])
    points = uniform_points(image, aspect)
    far, near = depth_range
    shape = world if world is not None else points
    return HandValues(
        x=_clamp01(1.0 - x if mirror else x),
        y=_clamp01(1.0 - float(centre[1])),
        z=_clamp01((palm_length(points) - far) / (near - far)),
        pinch=pinch_amount(shape),
        openness=openness_amount(shape),
    )


# -- the tracker: slots, smoothing, signals ----------------------------------------------


class _Slot:
    def __init__(self, settings: HandsSettings) -> None:
        args = (settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
        self.image_filter = OneEuro(*args)
        self.world_filter = OneEuro(*args)
        self.active = False
        self.last_t_s = 0.0
        self.centre = np.zeros(2)

    def release(self) -> None:
        self.active = False
        self.image_filter.reset()
        self.world_filter.reset()


class HandTracker:
    """Keeps hands in their slots, smooths their landmarks and writes their signals.

    Args:
        bus: where the signals go.
        settings: the input's settings (slots, smoothing, mirror, depth range).
    Thread: one thread at a time (the input thread, or the frame loop offline).
    """

    def __init__(self, bus: SignalBus, settings: HandsSettings) -> None:
        self.bus = bus
        self.settings = settings
        self.slots = [_Slot(settings) for _ in range(settings.max_hands)]
        self._count = 0
        for n in range(settings.max_hands):
            bus.set(f"hand:{n}/present", 0.0)
        bus.set("hand:count", 0.0)

    @property
    def count(self) -> int:
        """Hands present now. Thread: any."""
        return self._count

    def update(self, hands: Sequence[Hand], t_s: float, aspect: float) -> None:
        """Take one frame's detections.

        Args:
            hands: the hands found in the frame (any order; extra hands beyond
                max_hands are dropped, lowest score first).
            t_s: the frame's time in seconds (source time: it sets the filters' steps).
            aspect: the frame's width / height.
        Thread: the owner (see the class).
        """
        hands = sorted(hands, key=lambda h: -h.score)[: len(self.slots)]
        centres = [h.image[list(PALM), :2].mean(axis=0) for h in hands]  # (2,) each
        seen = self._assign(centres)
        for n, j in seen.items():
            self._track(n, hands[j], centres[j], t_s, aspect)
        for n, slot in enumerate(self.slots):
            if slot.active and n not in seen and t_s - slot.last_t_s > self.settings.hold_s:
                slot.release()
                self.bus.set(f"hand:{n}/present", 0.0)
        self._set_count()

    def release_all(self) -> None:
        """Mark every hand gone (the source stopped or was lost). Thread: the owner."""
        for n, slot in enumerate(self.slots):
            if slot.active:
                slot.release()
                self.bus.set(f"hand:{n}/present", 0.0)
        self._set_count()

    def _set_count(self) -> None:
        count = sum(slot.active for slot in self.slots)
        if count != self._count:
            self._count = count
            self.bus.set("hand:count", float(count))

    def _assign(self, centres: list[np.ndarray]) -> dict[int, int]:
        # Greedy nearest pairs between active slots and detections, then new hands
        # into the lowest free slots. With at most four hands this is exact enough.
        pairs = sorted(
            (float(np.linalg.norm(slot.centre - c)), n, j)
            for n, slot in enumerate(self.slots)
            if slot.active
            for j, c in enumerate(centres)
        )
        slot_of: dict[int, int] = {}
        taken: set[int] = set()
        for _, n, j in pairs:
            if n not in slot_of and j not in taken:
                slot_of[n] = j
                taken.add(j)
        free = [n for n, slot in enumerate(self.slots) if not slot.active]
        for j in range(len(centres)):
            if j not in taken:
                slot_of[free.pop(0)] = j
        return slot_of

    def _track(self, n: int, hand: Hand, centre: np.ndarray, t_s: float, aspect: float) -> None:
        slot = self.slots[n]
        dt_s = t_s - slot.last_t_s if slot.active else 0.0
        if not slot.active:
            slot.active = True
            self.bus.set(f"hand:{n}/present", 1.0)
        slot.last_t_s = t_s
        slot.centre = centre
        image = slot.image_filter(hand.image, dt_s)  # (21, 3)
        world = None if hand.world is None else slot.world_filter(hand.world, dt_s)
        values = derive(
            image,
            world,
            aspect=aspect,
            mirror=self.settings.mirror,
            depth_range=self.settings.depth_range,
        )
        for name in ("x", "y", "z", "pinch", "openness"):
            self.bus.set(f"hand:{n}/{name}", getattr(values, name))


# -- landmark recordings -----------------------------------------------------------------
#
# JSON lines. The first line is a header; each later line one frame (an empty `hands`
# list is a frame with no hand in it, which matters for `present`):
#
#   {"format": "latentstage-hands", "version": 1, "size_px": [640, 480], "source": "camera 0"}
#   {"t_s": 0.0, "hands": [{"image": [[x, y, z], ... 21], "world": [[x, y, z], ... 21],
#                           "handedness": "Right", "score": 0.97}]}


def read_recording(path: Path) -> Recording:
    """Read a landmark recording.

    Args:
        path: the .jsonl file.
    Returns:
        The recording.
    Raises:
        ConfigError: missing file or a malformed line (named by file and line).
    Thread: any.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    rows = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise ConfigError(f"{path}: empty; expected a '{RECORDING_FORMAT}' header line")
    header = _json_line(path, *rows[0])
    if header.get("format") != RECORDING_FORMAT or header.get("version") != RECORDING_VERSION:
        raise ConfigError(
            f"{path}:{rows[0][0]}: expected a header with format '{RECORDING_FORMAT}' "
            f"and version {RECORDING_VERSION}, got {rows[0][1][:80]!r}"
        )
    size = header.get("size_px")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        raise ConfigError(f"{path}:{rows[0][0]}: 'size_px' must be [width, height]")
    frames = []
    last_t_s = -math.inf
    for number, line in rows[1:]:
        row = _json_line(path, number, line)
        t_s = row.get("t_s")
        if not _is_number(t_s) or t_s <= last_t_s:
            raise ConfigError(f"{path}:{number}: 't_s' must be a number above the last frame's")
        hands = row.get("hands")
        if not isinstance(hands, list):
            raise ConfigError(f"{path}:{number}: 'hands' must be a list")
        frames.append(Frame(float(t_s), tuple(_hand(path, number, h) for h in hands)))
        last_t_s = t_s
    return Recording((int(size[0]), int(size[1])), tuple(frames))


class RecordingWriter:
    """Writes a landmark recording frame by frame (flushed per frame, so a recording
    cut short by Ctrl-C or a crash keeps what it had).

    Args:
        path: the .jsonl file to write.
        size_px: the source frame's (width, height).
        source: a description of the source, kept in the header.
    Thread: one thread.
    """

    def __init__(self, path: Path, size_px: tuple[int, int], source: str) -> None:
        self.path = Path(path)
        self.frames = 0
        self._file = self.path.open("w", encoding="utf-8")
        header = {
            "format": RECORDING_FORMAT,
            "version": RECORDING_VERSION,
            "size_px": list(size_px),
            "source": source,
        }
        self._file.write(json.dumps(header) + "\n")

    def write(self, t_s: float, hands: Sequence[Hand]) -> None:
        """Append one frame. Thread: owner."""
        row = {"t_s": round(t_s, 6), "hands": [_hand_json(h) for h in hands]}
        self._file.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._file.flush()
        self.frames += 1

    def close(self) -> None:
        """Close the file. Thread: owner."""
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{path}:{number}: expected a JSON object")
    return row


def _hand(path: Path, number: int, data: Any) -> Hand:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:{number}: each hand must be an object")
    arrays = {}
    for key in ("image", "world"):
        if data.get(key) is None and key == "world":
            arrays[key] = None
            continue
        try:
            arrays[key] = np.asarray(data.get(key), dtype=np.float64)
        except (TypeError, ValueError):
            arrays[key] = None
        if arrays[key] is None or arrays[key].shape != (N_LANDMARKS, 3):
            raise ConfigError(f"{path}:{number}: '{key}' must be {N_LANDMARKS} [x, y, z] triples")
        if not np.isfinite(arrays[key]).all():
            raise ConfigError(f"{path}:{number}: '{key}' holds a value that is not finite")
    score = data.get("score", 1.0)
    handedness = data.get("handedness", "")
    if not _is_number(score) or not isinstance(handedness, str):
        raise ConfigError(f"{path}:{number}: 'score' must be a number, 'handedness' a string")
    return Hand(arrays["image"], arrays["world"], handedness, float(score))


def _hand_json(hand: Hand) -> dict[str, Any]:
    row: dict[str, Any] = {"image": np.round(hand.image, 5).tolist()}
    if hand.world is not None:
        row["world"] = np.round(hand.world, 5).tolist()
    row["handedness"] = hand.handedness
    row["score"] = round(float(hand.score), 4)
    return row


# -- MediaPipe and OpenCV (imported only when a camera or a video is used) ---------------


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


def _recording_frames(recording: Recording, loop: bool) -> Iterator[Frame]:
    if not recording.frames:
        return
    t0_s = recording.frames[0].t_s
    offset_s = 0.0
    while True:
        for frame in recording.frames:
            yield Frame(offset_s + frame.t_s - t0_s, frame.hands)
        if not loop:
            return
        offset_s += recording.duration_s


# -- the live input and the offline feed -------------------------------------------------


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
                    (f.t_s, f.hands) for f in _recording_frames(self.recording, self.settings.loop)
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
            self._frames = ((f.t_s, f.hands) for f in _recording_frames(recording, settings.loop))
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


def build(table: Table, bus: SignalBus, *, folder: Path, offline: bool) -> HandsInput | HandsFeed:
    """Build the hand input from `[inputs.hands]` (see the module docstring).

    Args:
        table: the show's `[inputs.hands]` table, read strictly.
        bus: where signals go.
        folder: the show's folder (relative paths resolve here).
        offline: True for a frame-exact render: a HandsFeed stepped by the frame clock.
    Returns:
        A HandsInput (live, not started) or a HandsFeed (offline).
    Raises:
        ConfigError: a mistake in the table, or a malformed landmark recording.
    Thread: main.
    """
    settings = read_settings(table, folder)
    recording = read_recording(settings.file) if settings.is_recording else None
    if offline:
        return HandsFeed(settings, bus, recording)
    return HandsInput(settings, bus, recording)


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
        out: the .jsonl file to write.
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
        out: the .jsonl to write.
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clamp01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _range(lo: float, hi: float):
    def check(value: Any) -> str | None:
        return None if lo <= value <= hi else f"expected {lo}..{hi}, got {value!r}"

    return check


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"expected a number above 0, got {value!r}"


def _camera_check(value: Any) -> str | None:
    if isinstance(value, int) and value < 0:
        return f"expected a camera index 0 or more, or a device path; got {value!r}"
    return None


def _pair(table: Table, key: str, default: tuple[float, float]) -> tuple[float, float]:
    value = table.take(key, list, list(default))
    if (
        len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] < value[1]
    ):
        raise table.error(key, f"expected [lo, hi] with 0 <= lo < hi, got {value!r}")
    return (float(value[0]), float(value[1]))


def _camera_size(table: Table) -> tuple[int, int] | None:
    value = table.take("camera_size", list, None)
    if value is None:
        return None
    if len(value) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 8192 for v in value
    ):
        raise table.error("camera_size", f"expected [width, height] in px, got {value!r}")
    return (value[0], value[1])
