"""Two decks and a crossfader: a second generator (`[deck.b]`) mixed with the first by
`deck.mix` through the crossfade pass. Headless renders on EGL, the real workers, OSC
over real UDP for the live crossfader."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pythonosc.udp_client import SimpleUDPClient

import xdisplay
from runtime.check import list_targets
from runtime.distributed import DistributedError, refuse_unsplittable
from runtime.errors import ConfigError
from runtime.generators.base import Params
from runtime.health import Vitals
from runtime.loop import FrameStats, composite, generator_line, render_offline
from runtime.player import Player
from runtime.render.headless import headless_context
from runtime.show import load_show

pytestmark = pytest.mark.gl

display = xdisplay.display  # the Xvfb fixture

FPS = 30
CPPN = 'kind = "cppn"\nsize = [64, 48]\n'


def write_show(
    folder: Path,
    *,
    a: str = CPPN + 'seed = 3\ndevice = "cpu"',
    b: str | None = CPPN + 'seed = 9\ndevice = "cpu"',
    mapping: str = "",
    effects: tuple[str, ...] = ("fit", "feedback", "grade"),
    inputs: str = "",
    output: str = "[96, 64]",
) -> Path:
    """A small show (`a` and `b` the decks' tables, 96x64 output) and its mapping file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.toml").write_text(mapping)
    deck_b = "" if b is None else f"[deck.b]\n{b}\n"
    passes = "".join(f'[[effects]]\nshader = "{e}"\n' for e in effects)
    path = folder / "show.toml"
    path.write_text(
        'mappings = ["m.toml"]\n[generator]\n'
        f"{a}\n{deck_b}[output]\nsize = {output}\nfps = {FPS}\n{inputs}{passes}"
    )
    return path


def frames_in(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def render(path: Path, out: Path, frames: int = 8) -> list[np.ndarray]:
    render_offline(load_show(path), frames=frames, out=out, progress=False)
    return frames_in(out)


@pytest.mark.parametrize("device", ["cpu", "gl"])
def test_mix_0_is_deck_a_and_mix_1_is_deck_b_bit_for_bit(tmp_path, device):
    a, b = CPPN + f'seed = 3\ndevice = "{device}"', CPPN + f'seed = 9\ndevice = "{device}"'
    # The trails pass carries state from frame to frame: the whole history must match.
    alone_a = render(write_show(tmp_path / "a", a=a, b=None), tmp_path / "a" / "out")
    alone_b = render(write_show(tmp_path / "b", a=b, b=None), tmp_path / "b" / "out")
    mix0 = render(write_show(tmp_path / "m0", a=a, b=b), tmp_path / "m0" / "out")
    mix1 = render(
        write_show(tmp_path / "m1", a=a, b=b, mapping='[set]\n"deck.mix" = 1.0\n'),
        tmp_path / "m1" / "out",
    )
    assert len(mix0) == len(mix1) == 8
    assert all(np.array_equal(x, y) for x, y in zip(mix0, alone_a))
    assert all(np.array_equal(x, y) for x, y in zip(mix1, alone_b))
    assert not np.array_equal(alone_a[-1], alone_b[-1])  # two different decks


def offline(path: Path, frames: int) -> tuple[Player, list[np.ndarray], list[float]]:
    """Drive a Player as the offline loop does (frame i + 1 posted before frame i is
    composited); returns it, the frames and each frame's deck.mix."""
    ctx = headless_context()
    player = Player(load_show(path), ctx, offline=True)
    player.start()
    images, mixes = [], []
    pending: dict[str, float] = {}
    try:
        for frame in range(frames + 1):
            values = pending
            if frame < frames:
                pending = player.map(frame, frame / FPS, 1 / FPS)
                player.submit(Params(frame, frame / FPS, pending), drop=False)
                mixes.append(pending["deck.mix"])
            if frame > 0:
                done = frame - 1
                images.append(composite(player, player.wait_for(done), values, done / FPS))
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()
    return player, images, mixes


RAMP = """
[[map]]
source = "time"
target = "deck.mix"
in = [0.2, 0.5]        # deck A alone until frame 6, a glide to deck B by frame 15
"""


def test_the_mix_glides_and_a_deck_at_weight_0_renders_nothing(tmp_path):
    effects = ("fit",)  # a linear pass: the mix of the outputs is the output of the mix
    n = 20
    ramp = write_show(tmp_path / "ramp", mapping=RAMP, effects=effects)
    player, steps, mixes = offline(ramp, n)
    frames = render(ramp, tmp_path / "ramp_out", n)
    assert all(np.array_equal(x, y) for x, y in zip(frames, steps))  # as the loop's own
    alone_a = render(write_show(tmp_path / "a", b=None, effects=effects), tmp_path / "ao", n)
    alone_b = render(
        write_show(tmp_path / "b", a=CPPN + 'seed = 9\ndevice = "cpu"', b=None, effects=effects),
        tmp_path / "bo",
        n,
    )
    assert mixes[:7] == [0.0] * 7 and mixes[15:] == [1.0] * 5
    assert all(0.0 < m < 1.0 for m in mixes[7:15])
    # Deck B's worker got (and rendered) only the frames where its weight was above 0,
    # deck A's only those where deck A's was.
    assert player.decks.rendered_b == sum(m > 0 for m in mixes) == 13
    assert player.frames_generated == sum(m < 1 for m in mixes) == 15
    # Health counts either deck's frames: deck A resting at mix 1 is not a hung generator.
    assert Vitals(player, FrameStats(1000 / FPS)).report()["generator"]["frames"] == 15 + 13
    for frame, m, a, b in zip(frames, mixes, alone_a, alone_b):
        if m == 0.0:
            assert np.array_equal(frame, a)
        elif m == 1.0:
            assert np.array_equal(frame, b)
        else:
            expected = (1 - m) * a.astype(float) + m * b.astype(float)
            assert np.abs(frame - expected).max() <= 2.5, m
    # The glide moves steadily from A to B.
    distance_to_b = [np.abs(f.astype(float) - b).mean() for f, b in zip(frames, alone_b)]
    assert all(x > y for x, y in zip(distance_to_b[6:15], distance_to_b[7:16]))


def test_in_add_mode_deck_a_keeps_rendering_at_mix_1(tmp_path):
    # Output at the generators' size: the fit pass copies texels (the sum saturates,
    # so interpolating after it would differ from interpolating before).
    same = {"effects": ("fit",), "output": "[64, 48]"}
    mapping = '[set]\n"deck.mix" = 1.0\n"deck.mode" = 1\n'
    player, frames, _ = offline(write_show(tmp_path / "add", mapping=mapping, **same), 4)
    alone_a = render(write_show(tmp_path / "a", b=None, **same), tmp_path / "ao", 4)
    alone_b = render(
        write_show(tmp_path / "b", a=CPPN + 'seed = 9\ndevice = "cpu"', b=None, **same),
        tmp_path / "bo",
        4,
    )
    assert player.frames_generated == 4 and player.decks.rendered_b == 4
    expected = np.minimum(alone_a[-1].astype(float) + alone_b[-1], 255.0)
    assert np.abs(frames[-1] - expected).max() <= 2.5


def test_live_crossfader_over_osc_rests_deck_b_at_0(tmp_path):
    mapping = '[[map]]\nsource = "osc:/mix"\ntarget = "deck.mix"\n'
    path = write_show(tmp_path, mapping=mapping, inputs="[inputs.osc]\nport = 0\n")
    ctx = headless_context()
    player = Player(load_show(path), ctx, offline=False)
    player.start()
    frame = 0

    def step(frames: int) -> None:
        nonlocal frame
        for _ in range(frames):
            player.step_live(frame, frame / FPS, 1 / FPS)
            frame += 1
            time.sleep(0.005)

    def until(condition) -> None:
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            step(1)
        assert condition()

    try:
        client = SimpleUDPClient("127.0.0.1", player.inputs[0].port)
        until(lambda: player.frames_generated >= 2)
        step(5)
        assert player.decks.rendered_b == 0
        assert "| mix 0.00" in generator_line(player) and "(resting)" in generator_line(player)
        client.send_message("/mix", 0.5)
        until(lambda: player.decks.rendered_b >= 3)
        line = generator_line(player)
        assert re.search(
            r"^deck A cppn cpu 64x48 .* \| deck B cppn cpu 64x48 .* \| mix 0\.50", line
        )
        client.send_message("/mix", 0.0)
        until(lambda: player.bus.get("osc:/mix") == 0.0)
        step(1)
        time.sleep(1.0)  # a frame posted before the fader came back may still arrive
        step(1)
        resting_at = player.decks.rendered_b
        step(10)
        assert player.decks.rendered_b == resting_at
        assert "deck B cppn cpu 64x48  0.0 fps (resting)" in generator_line(player)
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()


def test_targets_list_both_decks_and_a_one_deck_show_has_no_deck_targets(tmp_path):
    rows = list_targets(write_show(tmp_path / "two"))
    names = [r.split()[0] for r in rows]
    assert {"deck.mix", "deck.mode", "deck.fit", "gen.zoom", "deck.b.gen.zoom"} <= set(names)
    assert any(r.startswith("deck.b.latent.speed") and "(rate/s)" in r for r in rows)
    one = [r.split()[0] for r in list_targets(write_show(tmp_path / "one", b=None))]
    assert "deck.mix" not in one and "gen.zoom" in one


@pytest.mark.parametrize(
    "show_text, where, message",
    [
        ('[deck.c]\nkind = "cppn"\n', r"show\.toml:3: \[deck\.c\]", "[deck.b] is deck B"),
        ("[deck]\nmix = 0.5\n", r"show\.toml:4: \[deck\] 'mix'", "[deck.b] is deck B"),
        ('[deck.b]\nkind = "cppm"\n', r"show\.toml:\d+: \[deck\.b\] 'kind'", "cppn"),
        ("[deck.b]\nsize = 4\n", r"show\.toml:\d+: \[deck\.b\] 'size'", "16..8192"),
        ('[deck.b]\nkind = "stylegan"\n', r"show\.toml:\d+: \[deck\.b\]", "needs 'weights'"),
    ],
)
def test_deck_b_is_read_strictly(tmp_path, show_text, where, message):
    path = tmp_path / "show.toml"
    path.write_text(f'[generator]\nkind = "cppn"\n{show_text}')
    with pytest.raises(ConfigError) as info:
        load_show(path)
    assert re.search(where, str(info.value)), str(info.value)
    assert message in str(info.value)


def test_an_unknown_deck_b_option_and_target_are_named(tmp_path):
    path = write_show(tmp_path / "opt", b="seed = 9\nwobble = 1")
    with pytest.raises(ConfigError, match=r"show\.toml:\d+: \[deck\.b\] 'wobble'"):
        offline(path, 1)
    mapping = '[[map]]\nsource = "osc:/z"\ntarget = "deck.b.gen.zom"\n'
    path = write_show(tmp_path / "target", mapping=mapping)
    with pytest.raises(ConfigError, match=r"m\.toml:\d+.*'deck\.b\.gen\.zom'.*deck\.b\.gen\.zoom"):
        offline(path, 1)


def test_ray_refuses_two_decks_with_a_clear_message(tmp_path):
    with pytest.raises(DistributedError, match=r"two decks \(\[deck\.b\]\).*without --ray"):
        refuse_unsplittable(load_show(write_show(tmp_path)))


def test_a_stylegan_deck_b_beside_a_cppn_mixes_and_moves(tmp_path, fixtures_dir):
    from conftest import need_fixture

    weights = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    b = f'kind = "stylegan"\nseed = 1\nweights = "{weights}"\ndirections = 2\ndevice = "cpu"'
    mapping = (
        '[set]\n"deck.mix" = 0.5\n[[map]]\nsource = "lfo:fast"\n'
        'target = "deck.b.latent.direction.0"\nout = [-3, 3]\n'
    )
    path = write_show(tmp_path, b=b, mapping=mapping, effects=("fit",))
    player, frames, _ = offline(path, 6)
    assert player.decks.generator.kind == "stylegan" and player.decks.problem is None
    assert player.decks.rendered_b == 6 and player.frames_generated == 6
    assert "deck B stylegan cpu" in generator_line(player)
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 1


def test_a_deck_coming_back_live_shows_no_stale_frame(tmp_path):
    """Back from weight 0, deck B is left out of the mix until its first new frame
    arrives: the frame it showed before resting never flashes."""
    mapping = (
        '[[map]]\nsource = "osc:/mix"\ntarget = "deck.mix"\n'
        '[[map]]\nsource = "osc:/zoom"\ntarget = "deck.b.gen.zoom"\n'
    )
    # Deck B large enough that its frame cannot be ready within one step.
    b = 'kind = "cppn"\nsize = [256, 192]\nseed = 9\ndevice = "cpu"'
    path = write_show(tmp_path, b=b, mapping=mapping, effects=("fit",), output="[64, 48]")
    ctx = headless_context()
    player = Player(load_show(path), ctx, offline=False)
    player.start()
    frame = 0

    def step() -> np.ndarray:
        nonlocal frame
        player.step_live(frame, frame / FPS, 1 / FPS)
        frame += 1
        return player.compositor.read()

    def until(condition) -> np.ndarray:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            step()
            time.sleep(0.005)
        assert condition()
        return step()

    def deck_a_alone() -> np.ndarray:
        player.compositor.render({}, 0.0)
        return player.compositor.read()

    try:
        player.bus.set("osc:/mix", 0.5)
        mixed = until(lambda: player.decks.rendered_b >= 2 and player.frames_generated >= 2)
        assert not np.array_equal(mixed, deck_a_alone())
        player.bus.set("osc:/mix", 0.0)
        step()
        time.sleep(1.0)  # the frame in flight arrives and is taken; then deck B rests
        step()
        rested = player.decks.rendered_b
        player.bus.set("osc:/zoom", 4.0)  # deck B's next frame will differ
        player.bus.set("osc:/mix", 0.5)
        back = step()
        assert player.decks.rendered_b <= rested + 1 and not player.decks.b.fresh
        assert np.array_equal(back, deck_a_alone())  # deck A alone, no stale deck B
        fresh = until(lambda: player.decks.b.fresh)
        assert not np.array_equal(fresh, deck_a_alone())
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()


def test_a_two_deck_show_plays_in_a_window(display, tmp_path):
    """run_show.py under Xvfb: both decks drawn live, the log's last line shows them."""
    path = write_show(
        tmp_path,
        a=CPPN + "seed = 3",
        b=CPPN + "seed = 9",  # device auto: drawn in GL on a machine without CUDA
        mapping='[set]\n"deck.mix" = 0.5\n',
    )
    proc = xdisplay.run_show([str(path), "--seconds", "2"], display)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    played = next(line for line in out.splitlines() if "played" in line)
    assert re.search(
        r"\| deck A cppn \w+ 64x48 .* \| deck B cppn \w+ 64x48 .* \| mix 0\.50", played
    )
    assert "(resting)" not in played
