"""Every show and mapping file the project ships is valid, and --help teaches."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime import PROJECT_ROOT
from runtime.check import check_show
from runtime.errors import GeneratorError
from runtime.mapping import read_mappings
from runtime.neural import build_stages
from runtime.player import show_targets
from runtime.show import load_show

SHOWS = sorted((PROJECT_ROOT / "shows").glob("*.toml"))


@pytest.mark.gl
@pytest.mark.parametrize("path", SHOWS, ids=[p.stem for p in SHOWS])
def test_shipped_show_checks(path, fixtures_dir):
    show = load_show(path)
    audio = show.inputs.get("audio")
    if audio is not None and "file" in audio.data:
        track = show.folder / audio.data["file"]
        if not track.exists():
            pytest.skip(f"the show's audio file is not here: {track} (install.sh --dev)")
    try:
        lines = check_show(path)
    except GeneratorError as exc:
        check_against_the_fixture(show, exc, fixtures_dir)
        return
    assert lines[-1] == "ok"


def check_against_the_fixture(show, problem, fixtures_dir):
    """A StyleGAN show whose model is not here: check its mappings against the tiny
    upstream StyleGAN2 fixture, which offers the same kinds of targets."""
    import dataclasses

    from conftest import need_fixture

    from runtime.generators import build_generator

    if show.generator.kind != "stylegan":
        pytest.skip(f"the show's model is not here: {problem}")
    weights = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    config = dataclasses.replace(show.generator, weights=weights, model=None, device="cpu")
    targets = show_targets(build_generator(config), show, build_stages(show))
    assert read_mappings(show.mapping_paths, targets).maps


def test_mapping_files_no_show_uses_read_against_the_default_generator():
    import torch

    from runtime.generators.cppn import CppnGenerator

    used = {p.resolve() for show in SHOWS for p in load_show(show).mapping_paths}
    spare = [
        p for p in sorted((PROJECT_ROOT / "mappings").glob("*.toml")) if p.resolve() not in used
    ]
    assert spare  # the sensor bridges' mappings
    demo = load_show(PROJECT_ROOT / "shows" / "demo.toml")
    generator = CppnGenerator(seed=0, size_px=(16, 16), device=torch.device("cpu"))
    targets = show_targets(generator, demo, build_stages(demo))
    for path in spare:
        assert read_mappings((path,), targets).maps, path


def test_help_teaches():
    out = subprocess.run(
        [sys.executable, "run_show.py", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for word in (
        "--headless",
        "check",
        "signals",
        "targets",
        "bench",
        "learn",
        "devices",
        "analyze",
        "models",
        "hands",
        "examples:",
    ):
        assert word in out, word
    play = subprocess.run(
        [sys.executable, "run_show.py", "play", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--fullscreen" in play and "--monitor" in play and "--frames" in play
