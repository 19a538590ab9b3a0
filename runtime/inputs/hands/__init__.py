"""Hand tracking: MediaPipe hand landmarks from a camera, a video file or a landmark
recording, smoothed with the one-euro filter and turned into a few signals per hand.

    [inputs.hands]
    camera = 0                 # a camera index or device path (the default source) ...
    # file = "hands.take"      # ... or a video file, or a landmark recording (a take)
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

from pathlib import Path

from runtime.config import Table
from runtime.inputs.hands.feed import HandsFeed
from runtime.inputs.hands.live import HandsInput
from runtime.inputs.hands.recording import read_recording
from runtime.inputs.hands.settings import read_settings
from runtime.signals import SignalBus

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
