"""Hand landmarks and what is derived from them: palm centre, nearness, pinch,
openness (no devices, no files)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
class HandValues:
    """The signals derived from one hand (see the module docstring for meanings)."""

    x: float
    y: float
    z: float
    pinch: float
    openness: float


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


def _clamp01(x: float) -> float:
    return min(max(x, 0.0), 1.0)
