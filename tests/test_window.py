"""The live window under a real X server (Xvfb): plays, goes fullscreen on a chosen
monitor filling it, quits on q, explains a missing display, plays on the primary
monitor when the chosen one is missing, and goes back to a monitor that returns."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import xdisplay
from runtime import PROJECT_ROOT
from xdisplay import run_show

pytestmark = pytest.mark.gl

display = xdisplay.display  # the Xvfb fixture

SHOW = PROJECT_ROOT / "tests" / "shows" / "tiny.toml"


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


def test_a_missing_monitor_plays_on_the_primary_one_with_a_warning(display):
    proc = run_show([str(SHOW), "--fullscreen", "--monitor", "3", "--seconds", "1"], display)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "no monitor 3: 1 connected" in out and "playing on the primary monitor" in out
    assert "played" in out


def test_no_display_is_explained():
    proc = run_show([str(SHOW)], None)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no display" in out and "--headless" in out


def test_a_monitor_that_comes_back_gets_the_show_back_in_fullscreen(
    display, monkeypatch, caplog, request
):
    if xdisplay.in_a_fresh_process(request):
        return
    import glfw

    from runtime.render.window import Window

    # Xvfb cannot unplug its monitor: GLFW's view of the monitors is patched for the
    # time it is gone, and the window's own callback is called as GLFW would.
    monkeypatch.setenv("DISPLAY", display)
    window = Window("test", (96, 64), fullscreen=True, monitor=0, vsync=False)
    try:
        monitor = glfw.get_monitors()[0]
        assert window.on_monitor == window.monitor_name == "screen"
        # Unplugged: GLFW takes the window off the monitor and calls back.
        glfw.set_window_monitor(window.window, None, 0, 0, 96, 64, 0)
        with monkeypatch.context() as unplugged:
            unplugged.setattr(glfw, "get_monitors", lambda: [])
            unplugged.setattr(glfw, "get_primary_monitor", lambda: None)
            window._on_monitor(monitor, glfw.DISCONNECTED)
            window.swap()
        assert window.on_monitor is None
        assert "no monitor 0 (screen): 0 connected" in caplog.text
        # Plugged in again: fullscreen on it.
        window._on_monitor(monitor, glfw.CONNECTED)
        window.swap()
        assert window.on_monitor == "screen" and window.fullscreen
        mode = glfw.get_video_mode(monitor)
        assert glfw.get_window_size(window.window) == (mode.size.width, mode.size.height)
    finally:
        window.close()


def test_keys_reach_the_show_by_name_with_their_modifiers(display, monkeypatch, request):
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is not installed (install.sh --dev installs it)")
    if xdisplay.in_a_fresh_process(request):
        return
    from runtime.render.window import Window

    monkeypatch.setenv("DISPLAY", display)
    window = Window("keys", (96, 64), vsync=False)
    heard: list[tuple[str, bool]] = []
    window.on_key = lambda name, down: heard.append((name, down))
    try:
        window.swap()
        wid = subprocess.run(
            ["xdotool", "search", "--name", "^keys$"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        for keys in ("r", "shift+1", "space", "F5", "h"):  # h: the window's own HUD key
            subprocess.run(["xdotool", "key", "--window", wid, keys], check=True)
        deadline = time.monotonic() + 10
        while len(heard) < 8 and time.monotonic() < deadline:
            window.swap()
            time.sleep(0.01)
        # Shift+1 is "1" with shift held, whatever the layout prints for it.
        assert heard == [
            ("r", True), ("r", False), ("shift+1", True), ("shift+1", False),
            ("space", True), ("space", False), ("f5", True), ("f5", False),
        ]  # fmt: skip
        assert window.show_hud_toggled
    finally:
        window.close()
