"""CLIP in the loop, on random-weight open_clip models of a small architecture built
here (no downloads): steering raises the similarity to the prompt on every generator
family, strength 0 changes nothing, clip: signals equal a direct computation, prompts
arrive over real UDP OSC (and bad text keeps the old prompt), absent weights leave the
show playing, and offline renders are frame-exact."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pythonosc.udp_client import SimpleUDPClient

from runtime.cli import main
from runtime.clip.model import ClipModel
from runtime.clip.prompts import PromptBook
from runtime.clip.steer import Steering, cutouts
from runtime.generators.base import Params
from runtime.loop import render_offline
from runtime.player import Player
from runtime.render.headless import headless_context
from runtime.show import load_show
from tests.test_steer_latent import FAMILIES

pytestmark = pytest.mark.gl

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
FOREST = "a misty forest at dawn"
CITY = "a red city at night"


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> Path:
    """A tiny open_clip config and a random-weight state dict for it."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    config = folder / "ls_tiny_clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("ls_tiny_clip", pretrained=None)
    torch.save(model.state_dict(), folder / "tiny_clip.pt")
    return folder


def write_show(
    folder: Path,
    clip_files: Path,
    *,
    clip: str = "",
    sets: str = "",
    maps: str = "",
    osc: bool = False,
    weights: bool = True,
) -> Path:
    """A 64x48 cppn show with a [clip] table and a mapping file."""
    weights_line = f'weights = "{clip_files / "tiny_clip.pt"}"' if weights else ""
    (folder / "map.toml").write_text(f"[set]\n{sets}\n{maps}\n")
    osc_table = "[inputs.osc]\nport = 0\n" if osc else ""
    path = folder / "show.toml"
    path.write_text(
        f"""mappings = ["map.toml"]
[generator]
kind = "cppn"
seed = 3
size = [64, 48]
device = "cpu"
[output]
size = [64, 48]
fps = 10
{osc_table}
[clip]
model = "{clip_files / "ls_tiny_clip.json"}"
{weights_line}
device = "cpu"
cutouts = 4
learning_rate = 0.1
{clip}
[clip.prompts]
forest = "{FOREST}"
city = "{CITY}"
"""
    )
    return path


def frames_in(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def measured_similarity(steering: Steering, params: Params, offset: torch.Tensor | None) -> float:
    """The similarity of fixed views (same crops every time) at walk + offset."""
    latent = steering.generator.steer_latent(params)
    if offset is not None:
        latent = latent + offset
    with torch.no_grad():
        image = steering.generator.render_latent(latent, params)
        views = cutouts(image, count=6, size_px=64, generator=torch.Generator().manual_seed(99))
        target = steering.book.target(params.values)
        return float((steering.clip.encode_images(views) @ target).mean())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_steering_raises_similarity_on_every_family(
    family, clip_files, tmp_path, tmp_path_factory, fixtures_dir
):
    case = FAMILIES[family](tmp_path_factory, fixtures_dir)
    config = load_show(write_show(tmp_path, clip_files)).clip
    clip = ClipModel(config, torch.device("cpu"))
    book = PromptBook({"forest": FOREST}, address="/prompt")
    book.refresh(clip)
    steering = Steering(clip, book, case.gen, config, fps=10, offline=True, seed=1)
    before = measured_similarity(steering, case.params, None)
    seen = [steering.step(case.params, i) for i in range(16)]
    after = measured_similarity(steering, case.params, steering._result)
    assert all(s is not None for s in seen)
    # Random-weight CLIP cosines sit within about +-0.07 of 0: a rise of 0.03 on the
    # same views is clear, and the steps' own (differently cropped) values rise too.
    assert after > before + 0.03, (family, before, after, seen)
    assert sum(seen[-4:]) / 4 > seen[0] + 0.02, (family, seen)
    assert steering.steps == 16 and steering.similarity == seen[-1]
    # The generator renders the result: its frame moved with the offset.
    moved = steering.apply(Params(case.params.frame, case.params.t_s + 5.0, case.params.values))
    assert moved.latent_offset is not None
    assert not torch.equal(case.gen.render(moved), case.gen.render(case.params))


def test_strength_zero_renders_bit_for_bit_as_without_clip(clip_files, tmp_path):
    with_clip = write_show(tmp_path, clip_files, sets='"clip.strength" = 0.0')
    render_offline(load_show(with_clip), frames=4, out=tmp_path / "a", progress=False)
    text = with_clip.read_text()
    plain = tmp_path / "plain.toml"
    plain.write_text(text[: text.index("[clip]")].replace('"map.toml"', '"plain_map.toml"'))
    (tmp_path / "plain_map.toml").write_text("")
    render_offline(load_show(plain), frames=4, out=tmp_path / "b", progress=False)
    a, b = frames_in(tmp_path / "a"), frames_in(tmp_path / "b")
    assert len(a) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_two_steered_renders_are_identical_and_steered(clip_files, tmp_path):
    show = load_show(write_show(tmp_path, clip_files, clip="steps_per_frame = 2\nglide_s = 0.0"))
    render_offline(show, frames=5, out=tmp_path / "a", progress=False)
    render_offline(show, frames=5, out=tmp_path / "b", progress=False)
    a, b = frames_in(tmp_path / "a"), frames_in(tmp_path / "b")
    assert len(a) == 5 and all(np.array_equal(x, y) for x, y in zip(a, b))
    plain = tmp_path / "plain"
    unsteered = write_show(tmp_path, clip_files, sets='"clip.strength" = 0.0')
    render_offline(load_show(unsteered), frames=5, out=plain, progress=False)
    c = frames_in(plain)
    assert not np.array_equal(a[-1], c[-1])  # the steering pulled the picture


def test_clip_signal_equals_a_direct_computation_on_the_same_frame(clip_files, tmp_path):
    show = load_show(write_show(tmp_path, clip_files, sets='"clip.strength" = 0.0'))
    ctx = headless_context()
    player = Player(show, ctx, offline=True)
    player.start()
    try:
        values = player.map(0, 0.0, 0.1)
        player.worker.submit(Params(0, 0.0, values), drop=False)
        player.take_frame(player.worker.wait_for(0))
        player.compositor.render(values, 0.0)
        player.watch(0.0)
        pixels = player.compositor.read((64, 64), crop=True)  # what CLIP was shown
        clip = player.clip.model
        image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            direct = (clip.encode_images(image) @ clip.encode_texts([FOREST, CITY]).T)[0]
        lo, hi = show.clip.watch_range
        for name, raw in zip(("forest", "city"), direct.tolist()):
            assert player.bus.get(f"clip:{name}/raw") == pytest.approx(raw, abs=1e-6)
            expected = min(max((raw - lo) / (hi - lo), 0.0), 1.0)
            assert player.bus.get(f"clip:{name}") == pytest.approx(expected, abs=1e-6)
        assert player.clip.watcher.measurements == 1
        player.watch(0.1)  # within 1 / watch_hz of the last one: not measured again
        assert player.clip.watcher.measurements == 1
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()


def test_a_clip_signal_drives_a_mapping(clip_files, tmp_path):
    """clip:forest mapped onto the walk speed: the value the watcher wrote arrives."""
    maps = '[[map]]\nsource = "clip:forest/raw"\ntarget = "latent.speed"\nin = [-1.0, 1.0]\n'
    show = load_show(write_show(tmp_path, clip_files, maps=maps))
    ctx = headless_context()
    player = Player(show, ctx, offline=True)
    try:
        player.bus.set("clip:forest/raw", 0.5)
        values = player.map(0, 0.0, 0.1)
        assert values["latent.speed"] == pytest.approx(0.75 * 4.0 - (1 - 0.75) * 4.0)
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()


def wait_until(condition, step, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        step()
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_prompts_over_real_udp_osc_and_bad_text_keeps_the_old_one(clip_files, tmp_path, caplog):
    show = load_show(write_show(tmp_path, clip_files, osc=True))
    ctx = headless_context()
    player = Player(show, ctx, offline=False)
    player.start()
    frame = [0]

    def step():
        player.step_live(frame[0], frame[0] / 10, 0.1)
        frame[0] += 1

    try:
        osc = player.inputs[0]
        client = SimpleUDPClient("127.0.0.1", osc.port)
        book = player.clip.book
        caplog.set_level(logging.INFO)
        client.send_message("/prompt", "a blue sea under storm")
        assert wait_until(lambda: book.texts["forest"] == "a blue sea under storm", step)
        client.send_message("/prompt/moon", "the moon over a lake")
        assert wait_until(lambda: book.texts.get("moon") == "the moon over a lake", step)
        assert wait_until(lambda: "moon" in book.names(), step)

        client.send_message("/prompt", "   ")
        client.send_message("/prompt/city", "word " * 90)
        assert wait_until(lambda: book.refused == 2, step)
        assert book.texts["forest"] == "a blue sea under storm"
        assert book.texts["city"] == CITY
        log = caplog.text
        assert "the text is empty" in log and "prompt 'forest' stays" in log
        assert "tokens, CLIP reads at most 77" in log

        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"/prompt\0,s\0\0\xff\xfe\xfd\0", ("127.0.0.1", osc.port))
        raw.close()
        assert wait_until(lambda: osc.bad_packets == 1, step)
        assert "(to /prompt): a string argument is not UTF-8" in caplog.text
        assert book.texts["forest"] == "a blue sea under storm"
        assert osc.messages >= 4  # the show went on reading OSC
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()


def test_absent_weights_leave_the_show_playing_and_say_which_pull(
    clip_files, tmp_path, monkeypatch
):
    monkeypatch.setenv("LATENTSTAGE_MODELS", str(tmp_path / "empty-cache"))
    path = write_show(tmp_path, clip_files, weights=False)
    text = path.read_text().replace(f'model = "{clip_files / "ls_tiny_clip.json"}"', "")
    path.write_text(text)  # the default model, ViT-B-32, whose weights are not cached
    show = load_show(path)
    ctx = headless_context()
    player = Player(show, ctx, offline=True)
    try:
        (problem,) = [p for p in player.problems() if "CLIP" in p]
        assert "run_show.py models pull clip-ViT-B-32-laion2b_s34b_b79k" in problem
        assert player.clip.steering is None and player.clip.watcher is None
        assert "clip.strength" in player.engine.targets  # the mapping's targets stay
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()
    render_offline(show, frames=3, out=tmp_path / "frames", progress=False)
    assert len(frames_in(tmp_path / "frames")) == 3


def test_signals_and_targets_list_clip(clip_files, tmp_path, capsys):
    path = write_show(tmp_path, clip_files)
    assert main(["signals", str(path)]) == 0
    out = capsys.readouterr().out
    assert "clip:forest " in out and "clip:city/raw" in out and FOREST in out
    assert main(["targets", str(path)]) == 0
    out = capsys.readouterr().out
    assert "clip.strength" in out and "clip.speed" in out and "clip.city.weight" in out


def test_bad_clip_tables_name_the_key(clip_files, tmp_path):
    from runtime.errors import ConfigError

    path = write_show(tmp_path, clip_files, clip="cutout = 4")
    with pytest.raises(ConfigError, match=r"\[clip\] 'cutout'.*did you mean 'cutouts'"):
        load_show(path)
    path.write_text(path.read_text().replace("cutout = 4", "").replace(f'"{CITY}"', '""'))
    with pytest.raises(ConfigError, match=r"'city'.*expected the prompt's text"):
        load_show(path)


def test_shared_steers_stylegan_in_w(clip_files, tmp_path, tmp_path_factory, fixtures_dir):
    """`shared = true`: one offset for every StyleGAN layer, and it still climbs."""
    case = FAMILIES["sg2"](tmp_path_factory, fixtures_dir)
    config = load_show(write_show(tmp_path, clip_files, clip="shared = true")).clip
    clip = ClipModel(config, torch.device("cpu"))
    book = PromptBook({"forest": FOREST}, address="/prompt")
    book.refresh(clip)
    steering = Steering(clip, book, case.gen, config, fps=10, offline=True, seed=1)
    before = measured_similarity(steering, case.params, None)
    for i in range(16):
        steering.step(case.params, i)
    result = steering._result
    assert result.shape == case.shape and steering._offset.shape == (1, case.shape[1])
    assert torch.equal(result, result[:1].expand_as(result))  # the same row on every layer
    assert measured_similarity(steering, case.params, result) > before + 0.02
