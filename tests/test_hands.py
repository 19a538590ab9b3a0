"""Hand tracking: the one-euro filter, the derivations on hand-made landmark sets,
recordings through the real input thread, absent camera/model/package, and the real
MediaPipe landmarker on real hand photos when it is installed."""

from __future__ import annotations

import itertools
import logging
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from runtime import PROJECT_ROOT
from runtime.config import Table
from runtime.errors import ConfigError, InputError
from runtime.filters import OneEuro, smoothing_alpha
from runtime.inputs import build_inputs, hands
from runtime.inputs.hands import live as hands_live
from runtime.inputs.hands.camera import Landmarker
from runtime.inputs.hands.feed import HandsFeed
from runtime.inputs.hands.geometry import Hand, derive, openness_amount, pinch_amount
from runtime.inputs.hands.live import HandsInput
from runtime.inputs.hands.model import (
    ALIGN_BYTES,
    MODELS,
    build_hand_task,
    check_hand_task,
    default_task_path,
)
from runtime.inputs.hands.recording import Recording, RecordingWriter, read_recording
from runtime.inputs.hands.settings import read_settings
from runtime.inputs.hands.tracker import HandTracker
from runtime.show import load_show
from runtime.signals import SignalBus

DATA = Path(__file__).parent / "data" / "hands"


def table(data: dict) -> Table:
    return Table(data, file=Path("show.toml"), text="", name="inputs.hands")


def settings(**data):
    return read_settings(table(data), Path.cwd())


def points(**where: tuple[float, float, float]) -> np.ndarray:
    """A (21, 3) landmark set: zeros except the named landmarks (p0, p4, ...)."""
    out = np.zeros((21, 3))
    for name, xyz in where.items():
        out[int(name[1:])] = xyz
    return out


def image_hand(cx: float, cy: float, size: float = 0.2) -> np.ndarray:
    """Image landmarks of an open hand whose palm centre is (cx, cy) and whose palm
    length (wrist to middle knuckle) is `size` frame heights at aspect 1."""
    p = np.zeros((21, 3))
    p[:, 0], p[:, 1] = cx, cy
    # Palm: wrist below the centre, the four knuckles above it, mean exactly (cx, cy).
    p[0] = (cx, cy + 0.4 * size, 0)
    p[5] = (cx - 0.05, cy - 0.1 * size, 0)
    p[9] = (cx, cy - 0.6 * size, 0)
    p[13] = (cx + 0.05, cy - 0.1 * size, 0)
    p[17] = (cx, cy + 0.4 * size, 0)
    return p


# -- one-euro filter ---------------------------------------------------------------------


def test_smoothing_alpha_by_hand():
    # tau = 1 / (2 pi 1 Hz) = 0.1591549; alpha = 1 / (1 + tau / 0.1) = 1 / 2.591549
    assert smoothing_alpha(1.0, 0.1) == pytest.approx(0.3858695, abs=1e-7)


def test_one_euro_against_hand_computed_values():
    f = OneEuro(min_cutoff_hz=1.0, beta=1.0, d_cutoff_hz=1.0)
    assert f(0.0, 0.1) == 0.0  # the first sample passes through
    # Step to 1 after 0.1 s: dx = 10/s; dx_hat = 0.3858695 * 10 = 3.858695;
    # cutoff = 1 + 3.858695 = 4.858695 Hz; tau = 1/(2 pi 4.858695) = 0.0327566;
    # alpha = 1 / (1 + 0.327566) = 0.7532584; x_hat = 0.7532584.
    assert f(1.0, 0.1) == pytest.approx(0.7532584, abs=1e-6)
    # Hold 1 for another 0.1 s: dx = (1 - 0.7532584) / 0.1 = 2.467416;
    # dx_hat = 3.858695 + 0.3858695 (2.467416 - 3.858695) = 3.321840;
    # cutoff = 4.321840 Hz; tau = 0.0368258; alpha = 1 / 1.368258 = 0.7308560;
    # x_hat = 0.7532584 + 0.7308560 * 0.2467416 = 0.9335913.
    assert f(1.0, 0.1) == pytest.approx(0.9335913, abs=1e-6)


def test_one_euro_without_beta_is_a_fixed_low_pass():
    f = OneEuro(min_cutoff_hz=1.0, beta=0.0)
    f(0.0, 0.1)
    assert f(1.0, 0.1) == pytest.approx(0.3858695, abs=1e-7)
    assert f(1.0, 0.0) == pytest.approx(0.3858695, abs=1e-7)  # no time passed: unchanged


def test_one_euro_on_arrays_matches_scalars_and_keeps_its_own_state():
    rows = [[0.0, 2.0], [1.0, 2.5], [1.2, 3.0]]
    arrays = OneEuro(1.0, 0.5, 1.0)
    columns = [OneEuro(1.0, 0.5, 1.0), OneEuro(1.0, 0.5, 1.0)]
    buffer = np.zeros(2)
    for row in rows:
        buffer[:] = row
        out = arrays(buffer, 1 / 30)
        buffer[:] = -99.0  # the caller reuses its buffer: the filter must not notice
        expected = [f(v, 1 / 30) for f, v in zip(columns, row)]
        assert out.tolist() == pytest.approx(expected)
    assert out.tolist() != pytest.approx(rows[-1])  # it did smooth


# -- derivations -------------------------------------------------------------------------


def test_pinch_from_hand_made_landmarks():
    # Palm length 0.1 (wrist at 0, middle knuckle at y = 0.1).
    base = {"p0": (0, 0, 0), "p9": (0, 0.1, 0)}
    # tips 0.05 apart: ratio 0.5, pinch = (0.8 - 0.5) / (0.8 - 0.2) = 0.5
    assert pinch_amount(points(**base, p4=(0, 0.15, 0), p8=(0.05, 0.15, 0))) == pytest.approx(0.5)
    # 0.035 apart (in 3D): ratio 0.35, pinch = 0.45 / 0.6 = 0.75
    assert pinch_amount(points(**base, p4=(0, 0.15, 0), p8=(0, 0.15, 0.035))) == pytest.approx(0.75)
    # touching (ratio 0.1, below 0.2) clamps to 1; wide apart (ratio 1.2) clamps to 0
    assert pinch_amount(points(**base, p4=(0, 0.15, 0), p8=(0.01, 0.15, 0))) == 1.0
    assert pinch_amount(points(**base, p4=(-0.06, 0.15, 0), p8=(0.06, 0.15, 0))) == 0.0
    # a degenerate hand of zero size is not a pinch
    assert pinch_amount(np.zeros((21, 3))) == 0.0


def test_openness_from_hand_made_landmarks():
    base = {"p0": (0, 0, 0), "p9": (0, 0.1, 0)}
    # fingertips 0.10, 0.12, 0.14, 0.16 from the wrist: mean ratio 1.3,
    # openness = (1.3 - 0.9) / (1.7 - 0.9) = 0.5
    half = points(**base, p8=(0, 0.10, 0), p12=(0.12, 0, 0), p16=(0, 0, 0.14), p20=(0, -0.16, 0))
    assert openness_amount(half) == pytest.approx(0.5)
    flat = points(**base, p8=(0, 0.17, 0), p12=(0, 0.17, 0), p16=(0, 0.17, 0), p20=(0, 0.17, 0))
    assert openness_amount(flat) == pytest.approx(1.0)
    fist = points(**base, p8=(0, 0.08, 0), p12=(0, 0.08, 0), p16=(0, 0.08, 0), p20=(0, 0.08, 0))
    assert openness_amount(fist) == 0.0


def test_derive_position_depth_and_aspect():
    image = image_hand(0.3, 0.4, size=0.2)
    v = derive(image, None, aspect=1.0, mirror=False, depth_range=(0.05, 0.4))
    assert (v.x, v.y) == pytest.approx((0.3, 0.6))  # y grows upwards
    # palm length 0.2 frame heights: z = (0.2 - 0.05) / (0.4 - 0.05) = 0.4285714
    assert v.z == pytest.approx(0.4285714, abs=1e-6)
    assert derive(image, None, aspect=1.0, mirror=True, depth_range=(0.05, 0.4)).x == (
        pytest.approx(0.7)
    )
    # A sideways palm 0.15 frame widths long on a 4:3 frame is 0.2 frame heights long.
    side = points(p0=(0.5, 0.5, 0), p9=(0.65, 0.5, 0))
    v = derive(side, None, aspect=4 / 3, mirror=False, depth_range=(0.05, 0.4))
    assert v.z == pytest.approx(0.4285714, abs=1e-6)


def test_derive_prefers_world_landmarks_for_hand_shape():
    image = image_hand(0.5, 0.5)
    world = points(p0=(0, 0, 0), p9=(0, 0.1, 0), p4=(0, 0.15, 0), p8=(0.05, 0.15, 0))
    v = derive(image, world, aspect=1.0, mirror=False, depth_range=(0.05, 0.4))
    assert v.pinch == pytest.approx(0.5)
    assert v.pinch != derive(image, None, aspect=1.0, mirror=False, depth_range=(0.05, 0.4)).pinch


# -- the tracker -------------------------------------------------------------------------


def test_hands_keep_their_slots_and_presence_holds_briefly():
    bus = SignalBus()
    tracker = HandTracker(bus, settings(hold_s=0.2, mirror=False))
    left, right = Hand(image_hand(0.2, 0.5)), Hand(image_hand(0.8, 0.5))
    tracker.update([left, right], 0.0, 1.0)
    assert bus.get("hand:0/x") == pytest.approx(0.2)
    assert bus.get("hand:1/x") == pytest.approx(0.8)
    assert bus.get("hand:count") == 2.0
    # Detections come back in the other order, moved a little: each keeps its slot.
    tracker.update([Hand(image_hand(0.78, 0.5)), Hand(image_hand(0.22, 0.5))], 0.1, 1.0)
    assert bus.get("hand:0/x") < 0.5 < bus.get("hand:1/x")
    # The left hand drops out for 0.1 s (< hold_s): still present.
    tracker.update([Hand(image_hand(0.78, 0.5))], 0.2, 1.0)
    assert bus.get("hand:0/present") == 1.0
    assert bus.get("hand:1/x") > 0.5
    # ... and for 0.3 s (> hold_s): gone; the right hand stays in slot 1.
    tracker.update([Hand(image_hand(0.78, 0.5))], 0.4, 1.0)
    assert bus.get("hand:0/present") == 0.0
    assert bus.get("hand:1/present") == 1.0
    assert bus.get("hand:count") == 1.0
    # A new hand takes the free slot 0.
    tracker.update([Hand(image_hand(0.78, 0.5)), Hand(image_hand(0.4, 0.5))], 0.5, 1.0)
    assert bus.get("hand:0/x") == pytest.approx(0.4)  # a fresh filter: no lag from before


def test_more_hands_than_slots_keeps_the_surest():
    bus = SignalBus()
    tracker = HandTracker(bus, settings(max_hands=1, mirror=False))
    tracker.update(
        [Hand(image_hand(0.2, 0.5), score=0.6), Hand(image_hand(0.7, 0.5), score=0.9)], 0, 1
    )
    assert bus.get("hand:0/x") == pytest.approx(0.7)
    assert "hand:1/x" not in bus.names()


# -- recordings --------------------------------------------------------------------------


def moving_hand_recording(path: Path, *, frames: int = 30, rate_hz: float = 100.0) -> Recording:
    """A hand moving from x 0.2 to 0.8 over `frames` frames, then 0.3 s of frames
    with no hand, at `rate_hz`."""
    with RecordingWriter(path, (640, 480), "test") as writer:
        for i in range(frames):
            world = points(p0=(0, 0, 0), p9=(0, 0.1, 0), p4=(0, 0.15, 0), p8=(0.05, 0.15, 0))
            writer.write(i / rate_hz, [Hand(image_hand(0.2 + 0.6 * i / (frames - 1), 0.5), world)])
        for i in range(frames, frames + int(0.3 * rate_hz)):
            writer.write(i / rate_hz, [])
    return read_recording(path)


def test_recording_round_trip(tmp_path):
    rec = moving_hand_recording(tmp_path / "rec.take")
    assert rec.size_px == (640, 480)
    assert len(rec.frames) == 60
    first = rec.frames[0].hands[0]
    assert np.allclose(first.image, image_hand(0.2, 0.5), atol=1e-5)
    assert first.world is not None and first.world[9, 1] == pytest.approx(0.1)
    assert rec.frames[-1].hands == ()
    assert rec.duration_s == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "take.jsonl:2: not JSON"),
        (
            '{"k": "h", "t": 0, "hands": [{"image": [[0, 0, 0]]}]}',
            "take.jsonl:2: 'image' must be 21",
        ),
        ('{"k": "h", "t": "soon", "hands": []}', "take.jsonl:2: 't' must be a number"),
        ('{"k": "h", "t": 0, "hands": {}}', "take.jsonl:2: 'hands' must be a list"),
    ],
)
def test_bad_recording_lines_are_named(tmp_path, line, message):
    path = tmp_path / "rec.take"
    RecordingWriter(path, (4, 3), "test").close()
    with (path / "take.jsonl").open("a") as events:
        events.write(line + "\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        read_recording(path)


def test_a_take_without_hands_is_not_a_recording(tmp_path):
    from runtime.take import TakeWriter

    TakeWriter(tmp_path / "set.take", {"show": "vj.toml"}).close()
    with pytest.raises(
        ConfigError, match=r"set\.take/take\.jsonl:1: not a hand landmark recording"
    ):
        read_recording(tmp_path / "set.take")
    with pytest.raises(ConfigError, match="not a take"):
        read_recording(tmp_path)


def test_recording_drives_the_bus_through_the_input_thread(tmp_path):
    """A show names a recording; the real input thread plays it at its own rate."""
    moving_hand_recording(tmp_path / "rec.take")
    show_path = tmp_path / "show.toml"
    show_path.write_text(
        '[inputs.hands]\nfile = "rec.take"\nloop = false\nmirror = false\nhold_s = 0.1\n'
    )
    show = load_show(show_path)
    bus = SignalBus()
    inputs, feeds = build_inputs(show.inputs, bus, folder=show.folder, offline=False)
    assert feeds == [] and len(inputs) == 1
    live = inputs[0]
    assert isinstance(live, HandsInput)
    live.start()
    assert live.join(5.0), live.status()
    live.stop()
    snap = bus.snapshot()
    xs = snap.events_for("hand:0/x")
    assert len(xs) == 30
    assert all(b > a for a, b in itertools.pairwise(xs))  # smoothed, but moving the same way
    assert 0.2 <= xs[0] < xs[-1] < 0.8  # the one-euro filter lags the last sample
    assert snap.events_for("hand:0/present") == [0.0, 1.0, 0.0]
    assert snap.events_for("hand:0/pinch")[-1] == pytest.approx(0.5)  # from world landmarks
    assert snap.events_for("hand:count") == [0.0, 1.0, 0.0]
    assert "ended" in live.status()

    # The offline feed, stepped by a 50 fps frame clock, computes the same values:
    # smoothing runs on the recording's own times, not on the wall clock.
    offline_bus = SignalBus()
    feed = hands.build(show.inputs["hands"], offline_bus, folder=show.folder, offline=True)
    assert isinstance(feed, HandsFeed)
    for frame in range(40):
        feed.update(offline_bus, frame / 50)
    assert offline_bus.snapshot().events_for("hand:0/x") == xs


def test_offline_feed_loops_a_recording(tmp_path):
    rec_path = tmp_path / "rec.take"
    moving_hand_recording(rec_path)
    bus = SignalBus()
    feed = hands.build(
        Table({"file": "rec.take", "mirror": False}, file=Path("s"), text="", name="h"),
        bus,
        folder=tmp_path,
        offline=True,
    )
    feed.update(bus, 0.1)  # 11 frames (0.00 .. 0.10)
    assert len(bus.snapshot().events_for("hand:0/x")) == 11
    feed.update(bus, 0.6 + 0.05)  # the rest, then the loop's first 6 frames
    snap = bus.snapshot()
    assert snap.events_for("hand:0/present") == [0.0, 1.0]
    assert len(snap.events_for("hand:0/x")) == 19 + 6


# -- config ------------------------------------------------------------------------------


def test_settings_defaults():
    s = settings()
    assert s.camera == 0 and s.file is None and s.max_hands == 2 and s.mirror
    assert s.model == default_task_path()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"camera": 0, "file": "a.mp4"}, "either 'camera' or 'file'"),
        ({"fle": "a.mp4"}, "unknown key \\(did you mean 'file'\\?\\)"),
        ({"file": "missing.mp4"}, "file not found"),
        ({"file": "notes.txt"}, "expected a video"),
        ({"max_hands": 9}, "expected 1..4"),
        ({"depth_range": [0.4, 0.1]}, "0 <= lo < hi"),
        ({"min_cutoff_hz": 0}, "above 0"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        read_settings(table(data), tmp_path)


# -- absent package, model, camera -------------------------------------------------------


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    import time

    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_missing_mediapipe_is_reported_once_and_the_input_stays_quiet(
    tmp_path, monkeypatch, caplog
):
    model = tmp_path / "hand_landmarker.task"
    model.write_bytes(b"present, so the package is the missing part")
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` now fails
    bus = SignalBus()
    live = hands.build(
        table({"camera": 0, "model": str(model)}), bus, folder=tmp_path, offline=False
    )
    with caplog.at_level(logging.WARNING, logger="runtime.inputs.hands"):
        live.start()
        assert live.join(5.0)
        live.stop()
    assert live.problems == 1
    assert "mediapipe, which is not installed" in live.status()
    assert len(caplog.records) == 1
    assert "pip install 'latentstage[hands]'" in caplog.records[0].getMessage()
    assert bus.get("hand:0/present") == 0.0


def test_missing_model_is_reported_and_the_show_plays_on(tmp_path, caplog):
    bus = SignalBus()
    live = hands.build(
        table({"camera": 0, "model": "nowhere.task"}), bus, folder=tmp_path, offline=False
    )
    with caplog.at_level(logging.WARNING, logger="runtime.inputs.hands"):
        live.start()
        assert live.join(5.0)
    assert live.problems == 1
    assert len(caplog.records) == 1
    assert "no hand model at" in caplog.records[0].getMessage()
    assert "run_show.py hands model" in live.status()
    # The offline feed of a video with no model reports and writes nothing.
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    feed = hands.build(
        table({"file": "clip.mp4", "model": "nowhere.task"}), bus, folder=tmp_path, offline=True
    )
    feed.update(bus, 1.0)
    assert "no hand model" in feed.problem


def test_offline_camera_is_reported_not_raised(tmp_path):
    bus = SignalBus()
    feed = hands.build(table({"camera": 0}), bus, folder=tmp_path, offline=True)
    feed.update(bus, 0.5)
    assert "cannot drive an offline render" in feed.problem
    assert bus.get("hand:0/present") == 0.0


def real_model() -> Path:
    pytest.importorskip("mediapipe", reason="mediapipe not installed (pip install '.[hands]')")
    pytest.importorskip("cv2", reason="OpenCV not installed (it comes with mediapipe)")
    path = default_task_path()
    if not path.is_file():
        pytest.skip(f"no hand model at {path}: run `python run_show.py hands model`")
    return path


def test_missing_camera_is_reported_once_and_retried(tmp_path, monkeypatch, caplog):
    real_model()
    monkeypatch.setattr(hands_live, "RETRY_S", 0.05)
    bus = SignalBus()
    live = hands.build(table({"camera": 63}), bus, folder=tmp_path, offline=False)
    with caplog.at_level(logging.WARNING, logger="runtime.inputs.hands"):
        live.start()
        assert wait_for(lambda: "waiting for the camera" in live.status())
        assert not live.join(0.3)  # still retrying (about six tries by now), not ended
        live.stop()
    assert live.join(0.0)
    assert live.problems == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "no camera 63" in messages[0]


# -- the real landmarker -----------------------------------------------------------------


def test_real_landmarker_finds_a_real_hand_and_not_a_blank_wall():
    model = real_model()
    from PIL import Image

    landmarker = Landmarker(model, max_hands=2, min_confidence=0.5)
    try:
        rgb = np.asarray(Image.open(DATA / "open_hand_200.jpg").convert("RGB"))
        found = landmarker.detect(np.ascontiguousarray(rgb), 0.0)
        blank = landmarker.detect(np.full((240, 320, 3), 200, np.uint8), 1.0)
    finally:
        landmarker.close()
    assert len(found) == 1 and blank == ()
    hand = found[0]
    assert hand.image.shape == (21, 3) and hand.world is not None and hand.score > 0.9
    v = derive(hand.image, hand.world, aspect=1.0, mirror=False, depth_range=(0.05, 0.4))
    # The photo: an open hand, fingers up, wrist at the bottom middle.
    assert v.openness > 0.9 and v.pinch < 0.2
    assert 0.3 < v.x < 0.7 and 0.3 < v.y < 0.7
    assert hand.image[0, 1] > hand.image[12, 1]  # wrist below the middle fingertip


@pytest.fixture
def slide_video(tmp_path) -> Path:
    """A real hand photo sliding right across a 480x360 frame: 30 frames at 30 fps."""
    real_model()
    import cv2

    hand = cv2.imread(str(DATA / "open_hand_200.jpg"))
    background = np.full((360, 480, 3), hand[5, 5], np.uint8)
    video = tmp_path / "slide.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (480, 360))
    for i in range(30):
        frame = background.copy()
        x = round(i * 280 / 29)
        frame[80:280, x : x + 200] = hand
        writer.write(frame)
    writer.release()
    return video


def test_real_landmarker_records_a_video_and_the_recording_replays(tmp_path, slide_video):
    from runtime.cli import main

    out = tmp_path / "slide.take"
    assert main(["hands", "record", str(out), "--video", str(slide_video), "--max-hands", "1"]) == 0
    rec = read_recording(out)
    assert rec.size_px == (480, 360) and len(rec.frames) == 30
    seen = [f for f in rec.frames if f.hands]
    assert len(seen) >= 27
    xs = [f.hands[0].image[0, 0] for f in seen]  # the wrist, in image coordinates
    assert xs[-1] - xs[0] == pytest.approx(280 / 480, abs=0.08)
    assert rec.frames[1].t_s == pytest.approx(1 / 30, abs=1e-6)

    bus = SignalBus()
    feed = hands.build(
        table({"file": str(out), "mirror": True}), bus, folder=tmp_path, offline=True
    )
    feed.update(bus, 1.0)
    xs_bus = bus.snapshot().events_for("hand:0/x")
    assert xs_bus[0] > xs_bus[-1]  # mirrored: moving right in the image lowers x


def test_a_hand_video_drives_the_bus_through_the_input_thread(tmp_path, slide_video):
    bus = SignalBus()
    data = {"file": slide_video.name, "loop": False, "mirror": False, "max_hands": 1}
    live = hands.build(table(data), bus, folder=tmp_path, offline=False)
    live.start()
    assert live.join(20.0), live.status()
    snap = bus.snapshot()
    xs = snap.events_for("hand:0/x")
    # Played at the file's 30 fps; frames the landmarker cannot keep up with are
    # skipped (counted), so on a busy machine fewer than 30 frames give values.
    assert len(xs) + live.skipped <= 30
    assert len(xs) >= 5 and xs[-1] - xs[0] > 0.3
    assert snap.events_for("hand:0/present")[:2] == [0.0, 1.0]
    assert bus.get("hand:0/present") == 0.0  # the file ended: hands released
    assert all(v > 0.8 for v in snap.events_for("hand:0/openness"))


def test_a_hand_video_drives_the_offline_feed_frame_by_frame(tmp_path, slide_video):
    bus = SignalBus()
    data = {"file": slide_video.name, "loop": False, "mirror": False, "max_hands": 1}
    feed = hands.build(table(data), bus, folder=tmp_path, offline=True)
    assert feed.problem is None
    for frame in range(16):
        feed.update(bus, frame / 15)  # a 15 fps render takes every second video frame
    snap = bus.snapshot()
    xs = snap.events_for("hand:0/x")
    assert len(xs) >= 27  # every video frame, not every render frame
    assert xs[-1] - xs[0] == pytest.approx(280 / 480, abs=0.15)


# -- the model bundle --------------------------------------------------------------------


def test_bundle_build_checks_hashes_and_aligns_models(tmp_path):
    bad = tmp_path / "mediapipe-0.10.21-bad.whl"
    with zipfile.ZipFile(bad, "w") as wheel:
        for member, _ in MODELS.values():
            wheel.writestr(member, b"not a model")
    with pytest.raises(InputError, match="does not match its sha256"):
        build_hand_task(tmp_path / "x.task", wheel=bad)
    assert not (tmp_path / "x.task").exists()
    with pytest.raises(InputError, match="no such wheel"):
        build_hand_task(tmp_path / "x.task", wheel=tmp_path / "absent.whl")

    built = default_task_path()
    if not built.is_file():
        pytest.skip(f"no bundle at {built} to rebuild from: run `python run_show.py hands model`")
    # Rebuild from a wheel-shaped zip holding the same models: byte-identical bundle.
    wheel_path = tmp_path / "mediapipe-0.10.21-same.whl"
    with zipfile.ZipFile(built) as task, zipfile.ZipFile(wheel_path, "w") as wheel:
        for name, (member, _) in MODELS.items():
            wheel.writestr(member, task.read(name))
    again = build_hand_task(tmp_path / "again.task", wheel=wheel_path)
    check_hand_task(again)
    assert again.read_bytes() == built.read_bytes()
    with zipfile.ZipFile(again) as task:
        for info in task.infolist():
            task.fp.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", task.fp.read(4))
            assert (info.header_offset + 30 + name_len + extra_len) % ALIGN_BYTES == 0


def test_hands_module_imports_neither_torch_nor_gl_nor_mediapipe():
    code = (
        "import sys, runtime.inputs.hands; "
        "bad = [m for m in ('torch', 'moderngl', 'glfw', 'mediapipe', 'cv2') if m in sys.modules]; "
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_hands_model_command_builds_once_then_checks(tmp_path, capsys):
    built = default_task_path()
    if not built.is_file():
        pytest.skip(f"no bundle at {built} to rebuild from: run `python run_show.py hands model`")
    from runtime.cli import main

    wheel_path = tmp_path / "mediapipe-0.10.21-same.whl"
    with zipfile.ZipFile(built) as task, zipfile.ZipFile(wheel_path, "w") as wheel:
        for name, (member, _) in MODELS.items():
            wheel.writestr(member, task.read(name))
    out = tmp_path / "models" / "hand_landmarker.task"
    args = ["hands", "model", "--wheel", str(wheel_path), "--out", str(out)]
    assert main(args) == 0
    assert "7.8 MB, checked" in capsys.readouterr().out
    assert main(args) == 0
    assert "already built and checked" in capsys.readouterr().out
    out.write_bytes(b"truncated")
    assert main(args) == 0
    assert "7.8 MB, checked" in capsys.readouterr().out  # rebuilt, not taken as built
    check_hand_task(out)
    # Without a model, recording is refused with a message, not a traceback.
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    missing = ["hands", "record", str(tmp_path / "r.take"), "--video", str(video)]
    assert main([*missing, "--model", str(tmp_path / "none.task")]) == 1
    assert "no hand model at" in capsys.readouterr().err
