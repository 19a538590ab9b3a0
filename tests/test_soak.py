"""A minute of the live loop under a storm (benchmarks/soak.py): valid and invalid OSC
over real UDP, mapping and shader edits (half of them broken), generator exceptions,
NaN frames and stalls, scene recalls and `/ls/` messages, with OSC out, a capture and a
recording running. The show keeps rendering, prints no traceback, and leaks no
file descriptors, threads or GL objects; memory stays flat."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from runtime import PROJECT_ROOT
from xdisplay import display  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.gl, pytest.mark.slow]


def test_a_minute_under_a_storm_leaks_nothing(tmp_path, display):  # noqa: F811
    report = tmp_path / "soak.json"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/soak.py",
            "--seconds",
            "60",
            "--warmup-s",
            "20",
            "--json",
            str(report),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["frames"] > 600  # 30 fps for a minute, minus a loaded machine
    assert min(result["injected"].values()) > 0  # every kind of fault happened
    assert result["osc_sent"] > 10_000 and result["file_edits"] > 20
    # The performer's paths ran too: a controller heard scene recalls and the clock,
    # the take and the recording grew.
    assert result["controller_received"] > 50
    assert result["take_mb"] > 0.1 and result["video_mb"] > 0.1
    metrics = result["metrics"]
    assert metrics["fds"]["last"] <= metrics["fds"]["first"]
    assert metrics["threads"]["last"] <= metrics["threads"]["first"]
    assert metrics["gl_dropped"]["last"] == 0  # no GL object dropped without a release
    assert metrics["gl_live"]["last"] <= metrics["gl_live"]["first"] + 2
    rss = metrics["rss_mb"]
    assert rss["last"] - rss["first"] < 0.03 * rss["first"], rss  # flat within 3%
    before, after = result["threads_before_after"]
    assert after <= before  # every thread the show started has ended
