"""Neural stages in whole shows, on random-weight networks (no downloads): targets are
listed, strength 0 and feedback 0 change nothing, a mapped signal moves the render,
absent weights bypass the stage with the pull to run, offline renders repeat, the
feedback warp is exact, and the live loop keeps its budget while a stage is slower
than it (a real window under Xvfb)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from runtime.cli import main
from runtime.loop import render_offline
from runtime.neural.chain import warp
from runtime.player import Player
from runtime.render.headless import headless_context
from runtime.show import load_show
from tests.test_style import write_style, write_weights
from xdisplay import display, run_show  # noqa: F401  (display: a fixture)

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> Path:
    """Random-weight googlenet and AdaIN files, and two style images."""
    folder = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    googlenet = torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=True, transform_input=True
    )
    torch.save(googlenet.state_dict(), folder / "googlenet.pth")
    write_weights(folder / "adain")
    write_style(folder / "a.png", 1)
    write_style(folder / "b.png", 2)
    return folder


DREAM = """
[[neural]]
kind = "dream"
weights = "{nets}/googlenet.pth"
"""
STYLE = """
[[neural]]
kind = "style"
weights = "{nets}/adain"
styles = ["{nets}/a.png", "{nets}/b.png"]
style_size = 64
"""


def write_show(
    folder: Path, nets: Path, *, stages: str = "", sets: str = "", maps: str = "", fps: int = 10
) -> Path:
    (folder / "map.toml").write_text(f"[set]\n{sets}\n{maps}\n")
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
fps = {fps}
{stages.format(nets=nets)}
"""
    )
    return path


def frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def render(path: Path, out: Path, count: int = 4) -> list[np.ndarray]:
    render_offline(load_show(path), frames=count, out=out, progress=False)
    return frames(out)


def test_targets_list_every_stage_control_with_default_range_and_meaning(nets, tmp_path, capsys):
    path = write_show(tmp_path, nets, stages=DREAM + STYLE)
    assert main(["targets", str(path)]) == 0
    out = capsys.readouterr().out
    for name in (
        "dream.strength",
        "dream.layer",
        "dream.octaves",
        "dream.step",
        "dream.jitter",
        "dream.steps",
        "style.strength",
        "style.0.weight",
        "style.1.weight",
        "style.select",
        "feedback.amount",
        "feedback.zoom",
        "feedback.rotate",
    ):
        assert re.search(rf"^{re.escape(name)} +\S+ +\[\S+, \S+\] +\w", out, re.M), name
    assert "a.png" in out  # a style's weight names its image


def test_strength_zero_and_feedback_zero_are_bit_exact(nets, tmp_path):
    sets = '"dream.strength" = 0.0\n"style.strength" = 0.0\n"feedback.amount" = 0.0'
    staged = render(write_show(tmp_path, nets, stages=DREAM + STYLE, sets=sets), tmp_path / "a")
    plain = render(write_show(tmp_path, nets), tmp_path / "b")
    assert len(staged) == 4 and all(np.array_equal(x, y) for x, y in zip(staged, plain))


def test_a_mapped_signal_moves_the_render(nets, tmp_path):
    """`time` mapped onto dream.strength: frame 0 is untouched, later frames dream."""
    maps = '[[map]]\nsource = "time"\ntarget = "dream.strength"\nin = [0.0, 0.3]\n'
    sets = '"dream.octaves" = 1\n"dream.steps" = 2\n"dream.step" = 0.1'
    dreamed = render(write_show(tmp_path, nets, stages=DREAM, sets=sets, maps=maps), tmp_path / "a")
    plain = render(write_show(tmp_path, nets), tmp_path / "b")
    assert np.array_equal(dreamed[0], plain[0])
    change = [np.abs(d.astype(int) - p.astype(int)).mean() for d, p in zip(dreamed, plain)]
    assert change[1] > 0.1 and change[3] > change[1], change


def test_absent_weights_bypass_the_stage_and_say_which_pull(nets, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSTAGE_MODELS", str(tmp_path / "empty-cache"))
    path = write_show(tmp_path, nets, stages='[[neural]]\nkind = "dream"\n', sets="")
    ctx = headless_context()
    player = Player(load_show(path), ctx, offline=True)
    try:
        (problem,) = player.problems()
        assert "dream stage bypassed" in problem
        assert "run_show.py models pull tv-googlenet" in problem
        assert "dream.strength" in player.engine.targets
    finally:
        player.stop()
        player.compositor.release()
        ctx.release()
    bypassed = render(path, tmp_path / "a")
    (tmp_path / "plain").mkdir()
    plain = render(write_show(tmp_path / "plain", nets), tmp_path / "b")
    assert all(np.array_equal(x, y) for x, y in zip(bypassed, plain))


def test_two_renders_with_dream_feedback_and_style_are_identical(nets, tmp_path):
    sets = (
        '"feedback.amount" = 0.7\n"feedback.zoom" = 0.2\n"feedback.rotate" = 0.3\n'
        '"dream.octaves" = 2\n"dream.steps" = 1\n"style.select" = 0.5\n"style.strength" = 0.5'
    )
    path = write_show(tmp_path, nets, stages=DREAM + STYLE, sets=sets)
    a, b = render(path, tmp_path / "a", 5), render(path, tmp_path / "b", 5)
    assert len(a) == 5 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], a[4])


def test_feedback_feeds_the_last_output_back(nets, tmp_path):
    """With every stage at strength 0, feedback alone is a trail: frame n is the new
    frame blended with frame n-1's output, so it differs from the plain render."""
    sets = '"dream.strength" = 0.0\n"feedback.amount" = 0.6\n"feedback.zoom" = 0.0'
    fed = render(write_show(tmp_path, nets, stages=DREAM, sets=sets), tmp_path / "a")
    plain = render(write_show(tmp_path, nets), tmp_path / "b")
    assert np.array_equal(fed[0], plain[0])  # nothing to feed back yet
    expected = 0.4 * plain[1].astype(float) + 0.6 * fed[0].astype(float)
    assert np.abs(fed[1].astype(float) - expected).max() <= 1.0  # 8-bit rounding


def test_warp_is_exact_where_it_can_be():
    frame = torch.rand(1, 3, 32, 32)
    assert warp(frame, zoom_per_s=0.0, rotate_per_s=0.0, dt_s=0.1) is frame
    # A quarter turn of a square frame moves pixels exactly onto the grid.
    turned = warp(frame, zoom_per_s=0.0, rotate_per_s=math.pi / 2, dt_s=1.0)
    assert torch.allclose(turned, torch.rot90(frame, 1, dims=(2, 3)), atol=1e-5) or torch.allclose(
        turned, torch.rot90(frame, -1, dims=(2, 3)), atol=1e-5
    )
    # Zooming in by 2 shows the middle half, scaled up: its centre stays put.
    ramp = torch.linspace(0, 1, 64).repeat(1, 3, 64, 1)  # (1, 3, 64, 64) left to right
    zoomed = warp(ramp, zoom_per_s=1.0, rotate_per_s=0.0, dt_s=1.0)
    assert zoomed[0, 0, 32, 0] == pytest.approx(0.25, abs=0.02)
    assert zoomed[0, 0, 32, -1] == pytest.approx(0.75, abs=0.02)


def test_live_loop_keeps_its_budget_while_a_dream_is_slower(nets, tmp_path, display):  # noqa: F811
    sets = '"dream.octaves" = 2\n"dream.steps" = 4\n"feedback.amount" = 0.8'
    path = write_show(tmp_path, nets, stages=DREAM, sets=sets, fps=30)
    text = path.read_text().replace("size = [64, 48]", "size = [256, 192]", 1)
    path.write_text(text)
    proc = run_show([str(path), "--seconds", "8"], display)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    (line,) = [line for line in out.splitlines() if "played" in line]
    match = re.search(r"p99 ([\d.]+) ms\s+\(budget ([\d.]+)\).*\| dream (\d+) steps (\d+) ms", line)
    assert match, line
    p99_ms, budget_ms, steps, dream_ms = map(float, match.groups())
    assert dream_ms > budget_ms, line  # the stage is slower than the frame budget...
    assert p99_ms <= 1.25 * budget_ms, line  # ...and the loop keeps its budget
    assert 1 <= steps <= 8, line  # the live budget cut the steps (offline: 2 x 4)
