"""NDI output (runtime/render/ndi.py): without cyndilib the show is told how to
install it; with it, a receiver on this machine finds the source and gets the frames.

There is no mDNS responder here, so the NDI library is pointed at this machine by a
config file (NDI_CONFIG_DIR), set before cyndilib loads: the receiver then finds the
sender as it would a source on another machine named in its config."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import xdisplay
from helpers import copy_show
from runtime.errors import ConfigError
from runtime.render.ndi import NdiOutput
from runtime.show import load_show
from xdisplay import run_show

display = xdisplay.display  # the Xvfb fixture

_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="latentstage-ndi-"))
(_CONFIG_DIR / "ndi-config.v1.json").write_text(
    json.dumps({"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}})
)
os.environ.setdefault("NDI_CONFIG_DIR", str(_CONFIG_DIR))


def receive(name: str, size_px: tuple[int, int], timeout_s: float = 20.0) -> np.ndarray:
    """The first video frame of the source whose name ends in "(NAME)", as
    (H, W, 4) uint8 top row first."""
    from cyndilib.finder import Finder
    from cyndilib.receiver import ReceiveFrameType, Receiver
    from cyndilib.video_frame import VideoRecvFrame
    from cyndilib.wrapper import RecvBandwidth, RecvColorFormat

    deadline = time.monotonic() + timeout_s
    with Finder() as finder:
        while not any(n.endswith(f"({name})") for n in finder.get_source_names()):
            assert time.monotonic() < deadline, f"no source {name}: {finder.get_source_names()}"
            finder.wait_for_sources(0.5)
        source = finder.get_source(next(n for n in finder.get_source_names() if name in n))
        receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
        frame = VideoRecvFrame()
        receiver.set_video_frame(frame)
        receiver.set_source(source)
        try:
            while time.monotonic() < deadline:
                if receiver.receive(ReceiveFrameType.recv_video, 200) & ReceiveFrameType.recv_video:
                    assert frame.get_resolution() == size_px
                    data = np.empty(frame.get_buffer_size(), np.uint8)
                    frame.fill_p_data(data)
                    width, height = size_px
                    return data.reshape(height, width, 4)
        finally:
            receiver.disconnect()
    raise AssertionError(f"no frame from {name} within {timeout_s} s")


def test_the_show_may_name_its_ndi_source(tmp_path):
    show = copy_show(tmp_path)
    text = show.read_text()
    assert load_show(show).output.ndi is None
    show.write_text(text.replace("fps = 30\n", 'fps = 30\nndi = "stage left"\n'))
    assert load_show(show).output.ndi == "stage left"
    show.write_text(text.replace("fps = 30\n", 'fps = 30\nndi = " "\n'))
    with pytest.raises(ConfigError, match=r"tiny\.toml:\d+: \[output\] 'ndi': expected a source"):
        load_show(show)


def test_without_cyndilib_the_show_plays_and_says_how_to_install(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "cyndilib", None)  # as if not installed
    for name in ("cyndilib.sender", "cyndilib.video_frame", "cyndilib.wrapper.ndi_structs"):
        monkeypatch.setitem(sys.modules, name, None)
    out = NdiOutput("missing", (64, 48), 30.0)
    assert out.problem is not None and "pip install -e '.[ndi]'" in out.problem
    assert out.offer(bytes(64 * 48 * 4)) is False
    assert out.hud_lines() == [f"ndi: {out.problem}"]
    assert "the show plays without NDI" in caplog.text
    out.close()


def test_a_receiver_gets_the_frames_upright(tmp_path):
    pytest.importorskip("cyndilib", reason="the [ndi] extra is not installed")
    size = (64, 48)
    picture = np.zeros((48, 64, 4), np.uint8)  # top row first
    picture[:24, :, 0] = 220  # red above
    picture[24:, :, 2] = 220  # blue below
    picture[..., 1] = np.linspace(0, 250, 64, dtype=np.uint8)[None, :]
    picture[..., 3] = 255
    as_gl_reads_it = picture[::-1].tobytes()  # bottom row first
    name = f"ls-test-{os.getpid()}"
    out = NdiOutput(name, size, 30.0)
    assert out.problem is None
    stop = threading.Event()

    def play() -> None:
        while not stop.is_set():
            out.offer(as_gl_reads_it)
            time.sleep(1 / 30)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    try:
        got = receive(name, size)
    finally:
        stop.set()
        player.join()
        out.close()
    # NDI compresses (SpeedHQ): close, not equal.
    error = np.abs(got[..., :3].astype(int) - picture[..., :3]).mean()
    assert error < 6, error
    assert got[2, 10, 0] > 180 and got[2, 10, 2] < 40  # the top is red
    assert got[-3, 10, 2] > 180 and got[-3, 10, 0] < 40  # the bottom blue
    assert out.sent > 0 and out.hud_lines()[0].startswith(f"ndi {name}  ")


@pytest.mark.gl
@pytest.mark.slow
def test_a_live_show_is_an_ndi_source(display, tmp_path):
    pytest.importorskip("cyndilib", reason="the [ndi] extra is not installed")
    show = copy_show(tmp_path)
    name = f"ls-show-{os.getpid()}"
    text = show.read_text().replace("fps = 30\n", f'fps = 30\nndi = "{name}"\n')
    show.write_text(text)
    proc = run_show(
        [str(show), "--seconds", "30"], display, env={"NDI_CONFIG_DIR": str(_CONFIG_DIR)}
    )
    try:
        got = receive(name, (96, 64), timeout_s=60.0)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
    assert f"ndi: sending 96x64 as '{name}'" in output
    assert got[..., :3].std() > 5  # a picture, not a blank
    assert "frames sent" in output
