"""The live window under a real X server (Xvfb): plays, goes fullscreen on a chosen
monitor filling it, quits on q, and explains a missing display or monitor."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime import PROJECT_ROOT

pytestmark = pytest.mark.gl

SHOW = PROJECT_ROOT / "tests" / "shows" / "tiny.toml"


@pytest.fixture(scope="module")
def display():
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed (install.sh --dev installs it)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            "640x360x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    # Keep the pipe open while Xvfb runs: it may write its display number again, and
    # a write to a closed pipe kills it.
    number = os.read(read_fd, 16).decode().strip()
    # Xvfb names its display before it accepts connections: wait until it does.
    # (-noreset above: by default the server resets whenever its last client leaves,
    # and a client arriving during the reset is turned away.)
    deadline = time.monotonic() + 15
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(f"/tmp/.X11-unix/X{number}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)
    os.close(read_fd)


def run_show(args: list[str], display: str | None, **kwargs) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    if display:
        env["DISPLAY"] = display
    return subprocess.Popen(
        [sys.executable, "run_show.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def screenshot(display: str, path: Path) -> np.ndarray:
    if not shutil.which("import"):
        pytest.skip("imagemagick's import is not installed (install.sh --dev installs it)")
    subprocess.run(["import", "-display", display, "-window", "root", str(path)], check=True)
    return np.asarray(Image.open(path).convert("RGB"))


def test_plays_for_a_while_and_reports_timing(display):
    proc = run_show([str(SHOW), "--seconds", "2"], display)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "played" in out and "frame p50" in out and "generator cppn" in out


def test_fullscreen_fills_the_monitor_and_q_quits(display, tmp_path):
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is not installed (install.sh --dev installs it)")
    proc = run_show([str(SHOW), "--fullscreen", "--monitor", "0", "--no-hud"], display)
    try:
        # Start-up (torch, the first generated frame) takes a while on a busy machine:
        # look until the picture is up.
        deadline = time.monotonic() + 60
        while True:
            shot = screenshot(display, tmp_path / "shot.png")
            middle = shot[:, 60:580].astype(int).sum(-1)
            if (middle[:, 200:440] > 0).mean() > 0.95 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert shot.shape == (360, 640, 3)
        # The 3:2 canvas letterboxed on a 16:9 monitor: picture over the full height in
        # the middle, black bars at the sides.
        assert (middle[:, 200:440] > 0).mean() > 0.95
        assert shot[:, :40].max() == 0 and shot[:, -40:].max() == 0
        subprocess.run(["xdotool", "key", "q"], env={**os.environ, "DISPLAY": display}, check=True)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out


def test_no_such_monitor_is_explained(display):
    proc = run_show([str(SHOW), "--fullscreen", "--monitor", "3"], display)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no monitor 3: 1 connected" in out


def test_no_display_is_explained():
    proc = run_show([str(SHOW)], None)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no display" in out and "--headless" in out
