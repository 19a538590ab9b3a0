"""Whole shows, headless: frame-exact renders, OSC over real UDP steering a running
show, and hot reloads that keep the show running."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from pythonosc.udp_client import SimpleUDPClient

from helpers import copy_show
from runtime.loop import render_offline
from runtime.player import Player
from runtime.render.headless import headless_context
from runtime.show import SHADER_DIR, load_show

pytestmark = pytest.mark.gl


def frames_in(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def test_two_headless_renders_of_a_show_are_identical(tmp_path):
    show = load_show(copy_show(tmp_path))
    render_offline(show, frames=12, out=tmp_path / "a", progress=False)
    render_offline(show, frames=12, out=tmp_path / "b", progress=False)
    a, b = frames_in(tmp_path / "a"), frames_in(tmp_path / "b")
    assert len(a) == 12 and a[0].shape == (64, 96, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[-1])  # and the show moves


def test_video_render_has_the_shows_size_and_frame_count(tmp_path):
    import subprocess

    import imageio_ffmpeg

    show = load_show(copy_show(tmp_path))
    out = tmp_path / "clip.mp4"
    render_offline(show, frames=15, out=out, progress=False)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run([ffmpeg, "-i", str(out)], capture_output=True, text=True).stderr
    assert "96x64" in probe and "30 fps" in probe
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (96, 64)
    assert sum(1 for _ in reader) == 15


class LiveHeadless:
    """A show stepped like the live loop, on a headless context."""

    def __init__(self, path):
        self.ctx = headless_context()
        self.player = Player(load_show(path), self.ctx, offline=False)
        self.player.start()
        self.frame = 0

    def step(self, frames: int = 1) -> np.ndarray:
        for _ in range(frames):
            t_s = self.frame / 30
            self.player.step_live(self.frame, t_s, 1 / 30)
            self.frame += 1
        return self.player.compositor.read()

    def settle(self) -> np.ndarray:
        """Step until the generator has delivered at least one frame, then a few more."""
        deadline = time.monotonic() + 30
        while self.player.frames_generated < 2 and time.monotonic() < deadline:
            self.step()
            time.sleep(0.01)
        return self.step(3)

    def close(self):
        self.player.stop()
        self.player.compositor.release()
        self.ctx.release()


def wait_for_signal(player, name, value):
    deadline = time.monotonic() + 5
    while player.bus.get(name, -1.0) != pytest.approx(value) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert player.bus.get(name) == pytest.approx(value)


def test_osc_over_udp_steers_a_running_show(tmp_path):
    show = LiveHeadless(copy_show(tmp_path))
    try:
        baseline = show.settle().astype(float).mean()
        osc = show.player.inputs[0]
        assert osc.port > 0
        client = SimpleUDPClient("127.0.0.1", osc.port)
        # osc:/level -> shader.grade.brightness, out [0, 2]: 0 is black.
        client.send_message("/level", 0.0)
        wait_for_signal(show.player, "osc:/level", 0.0)
        dark = show.step(8)  # the trails' memory fades too
        assert dark.max() <= 2
        client.send_message("/level", 0.75)
        wait_for_signal(show.player, "osc:/level", 0.75)
        bright = show.step(8).astype(float).mean()
        assert bright > baseline * 1.2  # brightness 1.5 against the default 1.0
        # A malformed packet is counted and changes nothing.
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"not osc at all", ("127.0.0.1", osc.port))
        deadline = time.monotonic() + 5
        while osc.bad_packets == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert osc.bad_packets == 1 and "1 bad" in osc.status()
        assert show.step(2).astype(float).mean() == pytest.approx(bright, rel=0.15)
    finally:
        show.close()


def test_broken_mapping_edit_keeps_the_show_running(tmp_path):
    path = copy_show(tmp_path)
    mapping = tmp_path / "tiny_mapping.toml"
    show = LiveHeadless(path)
    try:
        show.settle()
        good = mapping.read_text()
        mapping.write_text(
            good.replace('target = "shader.grade.brightness"', 'target = "shader.grade.brightnes"')
        )
        messages = show.player.reload_if_changed()
        assert any("tiny_mapping.toml:" in m and "brightnes" in m for m in messages)
        assert any("mapping not reloaded" in p for p in show.player.problems())
        frame = show.step(3)
        assert frame.mean() > 5  # still playing with the last good mapping
        mapping.write_text(good.replace("out = [0.0, 2.0]", "out = [0.0, 0.0]"))
        assert show.player.reload_if_changed() == ["mapping reloaded"]
        show.player.bus.set("osc:/level", 1.0)
        assert show.step(8).max() <= 2  # the new mapping took over
        assert show.player.problems() == []
    finally:
        show.close()


def test_broken_shader_edit_keeps_the_show_running(tmp_path):
    path = copy_show(tmp_path)
    shader = tmp_path / "grade.glsl"
    shader.write_text((SHADER_DIR / "grade.glsl").read_text())
    text = path.read_text().replace('shader = "grade"', 'shader = "grade.glsl"')
    path.write_text(text)
    show = LiveHeadless(path)
    try:
        before = show.settle()
        shader.write_text(shader.read_text().replace("void main() {", "void main() { nope;"))
        messages = show.player.reload_if_changed()
        assert any("grade.glsl:" in m and "nope" in m for m in messages)
        after = show.step(2)
        assert after.mean() > 5 and after.shape == before.shape
        assert any("shader not reloaded" in p for p in show.player.problems())
    finally:
        show.close()


def test_a_stylegan_show_plays_an_upstream_checkpoint_end_to_end(tmp_path, fixtures_dir):
    from conftest import need_fixture

    weights = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    path = copy_show(tmp_path)
    text = path.read_text().replace(
        'kind = "cppn"\nseed = 3\nsize = [64, 48]',
        f'kind = "stylegan"\nseed = 3\nsize = [32, 32]\nweights = "{weights}"\ndirections = 2',
    )
    path.write_text(text)
    (tmp_path / "tiny_mapping.toml").write_text(
        '[[map]]\nsource = "lfo:fast"\ntarget = "latent.direction.0"\nout = [-3, 3]\n'
    )
    show = load_show(path)
    render_offline(show, frames=8, out=tmp_path / "a", progress=False)
    render_offline(show, frames=8, out=tmp_path / "b", progress=False)
    a, b = frames_in(tmp_path / "a"), frames_in(tmp_path / "b")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() > 1  # it moves


def test_a_missing_checkpoint_plays_the_default_generator(tmp_path, caplog):
    path = copy_show(tmp_path)
    path.write_text(
        path.read_text().replace('kind = "cppn"', 'kind = "stylegan"\nweights = "nowhere/ffhq.pkl"')
    )
    show = load_show(path)
    render_offline(show, frames=3, out=tmp_path / "out", progress=False)
    assert len(frames_in(tmp_path / "out")) == 3
    warned = " ".join(r.message for r in caplog.records)
    assert "ffhq.pkl" in warned and "playing the default generator (cppn) instead" in warned
