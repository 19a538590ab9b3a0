"""The generator worker: latest wins, the caller never waits, failures travel as data."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from runtime.generators.base import Params
from runtime.generators.worker import GeneratorWorker


class SlowGenerator:
    """A real (tiny) generator that takes its time and can be told to fail."""

    kind = "slow"
    device = torch.device("cpu")
    size_px = (8, 4)
    controls = ()

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.rendered: list[int] = []
        self.fail_on: set[int] = set()
        self.nan_on: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()

    def render(self, params: Params) -> torch.Tensor:
        self.gate.wait()
        time.sleep(self.delay_s)
        self.rendered.append(params.frame)
        if params.frame in self.fail_on:
            raise RuntimeError("weights went missing")
        image = torch.full((3, 4, 8), params.get("level", 0.5))
        if params.frame in self.nan_on:
            image[0, 0, 0] = float("nan")
        return image


def wait_result(worker, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = worker.latest()
        if result is not None:
            return result
        time.sleep(0.005)
    raise AssertionError("no result")


def test_latest_wins_and_submit_never_waits():
    gen = SlowGenerator()
    gen.gate.clear()
    worker = GeneratorWorker(gen)
    worker.start()
    try:
        start = time.perf_counter()
        for frame in range(50):
            worker.submit(Params(frame, 0.0, {}))
        assert time.perf_counter() - start < 0.05  # 50 posts while the model is stuck
        assert worker.latest() is None
        gen.gate.set()
        deadline = time.monotonic() + 5
        while 49 not in gen.rendered and time.monotonic() < deadline:
            time.sleep(0.005)
        assert gen.rendered[-1] == 49
        assert len(gen.rendered) <= 2  # at most the one taken before the gate, then the newest
        assert wait_result(worker).frame == 49
        assert worker.latest() is None  # each result is handed out once
    finally:
        worker.stop()


def test_image_conversion_to_uint8():
    worker = GeneratorWorker(SlowGenerator(0.0))
    worker.start()
    try:
        worker.submit(Params(0, 0.0, {"level": 1.0}))
        result = wait_result(worker)
        assert result.image.shape == (4, 8, 3) and result.image.dtype.name == "uint8"
        assert result.image.min() == 255 and result.render_ms >= 0
    finally:
        worker.stop()


def test_a_failing_frame_is_an_error_result_and_the_worker_carries_on(caplog):
    gen = SlowGenerator(0.0)
    gen.fail_on = {1, 2}
    gen.nan_on = {3}
    worker = GeneratorWorker(gen)
    worker.start()
    try:
        results = []
        for frame in range(5):
            worker.submit(Params(frame, 0.0, {}), drop=False)
            results.append(worker.wait_for(frame))
        assert [r.error is None for r in results] == [True, False, False, True, True]
        assert "weights went missing" in results[1].error and results[1].image is None
        assert results[3].image is not None and results[3].image[0, 0, 0] == 0  # NaN -> 0
        assert worker.errors == 3
        logged = [r.message for r in caplog.records if "weights went missing" in r.message]
        assert len(logged) == 1  # reported once, counted every time
    finally:
        worker.stop()


def test_offline_submit_loses_no_frame():
    gen = SlowGenerator(0.01)
    worker = GeneratorWorker(gen)
    worker.start()
    try:
        worker.submit(Params(0, 0.0, {}), drop=False)
        for frame in range(1, 20):
            worker.submit(Params(frame, 0.0, {}), drop=False)
            assert worker.wait_for(frame - 1).frame == frame - 1
        assert worker.wait_for(19).frame == 19
        assert gen.rendered == list(range(20))
    finally:
        worker.stop()


def test_wait_for_times_out_with_a_clear_error():
    gen = SlowGenerator()
    gen.gate.clear()
    worker = GeneratorWorker(gen)
    worker.start()
    try:
        worker.submit(Params(0, 0.0, {}))
        with pytest.raises(TimeoutError, match="frame 0"):
            worker.wait_for(0, timeout_s=0.05)
    finally:
        gen.gate.set()
        worker.stop()
