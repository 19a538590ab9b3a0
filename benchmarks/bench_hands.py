"""Hand tracking cost: MediaPipe landmarker time per frame, and the smoothing and
derivation that follow it, each as a share of a 30 fps frame.

    python benchmarks/bench_hands.py [--frames 60]

Needs mediapipe and the bundle from `run_show.py hands model`. Frames are a real hand
photo (tests/data/hands) sliding across a 640x480 frame, so the landmarker tracks
between frames as it does live.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.config import Table
from runtime.inputs.hands.camera import Landmarker
from runtime.inputs.hands.model import default_task_path
from runtime.inputs.hands.settings import read_settings
from runtime.inputs.hands.tracker import HandTracker
from runtime.signals import SignalBus

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "hands" / "open_hand_200.jpg"
FRAME_S = 1.0 / 30


def frames(count: int) -> list[np.ndarray]:
    hand = np.asarray(Image.open(PHOTO).convert("RGB"))
    out = []
    for i in range(count):
        frame = np.full((480, 640, 3), hand[5, 5], np.uint8)
        x = round(i * 420 / max(count - 1, 1))
        frame[140:340, x : x + 200] = hand
        out.append(frame)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    model = default_task_path()
    landmarker = Landmarker(model, max_hands=2, min_confidence=0.5)
    images = frames(args.frames)
    landmarker.detect(images[0], 0.0)  # first call sets up the graph
    detected = []
    start = time.perf_counter()
    for i, image in enumerate(images):
        detected.append(landmarker.detect(image, (i + 1) * FRAME_S))
    detect_s = (time.perf_counter() - start) / len(images)
    landmarker.close()

    settings = read_settings(Table({}, file=Path("bench"), text="", name="hands"), Path.cwd())
    tracker = HandTracker(SignalBus(), settings)
    start = time.perf_counter()
    for i, hands in enumerate(detected):
        tracker.update(hands, i * FRAME_S, 640 / 480)
    track_s = (time.perf_counter() - start) / len(detected)

    found = sum(1 for hands in detected if hands)
    print(f"frames: {len(images)} at 640x480, a hand found in {found}")
    print(
        f"landmarker: {detect_s * 1e3:6.2f} ms/frame = {detect_s / FRAME_S:5.1%} of a 30 fps frame"
    )
    print(f"smooth+derive+bus: {track_s * 1e3:6.3f} ms/frame = {track_s / FRAME_S:5.2%} of a frame")
    print(f"landmarker / tracker cost: {detect_s / track_s:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
