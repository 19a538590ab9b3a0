"""The weightless default generator: deterministic, smooth in its latent walk, and
images with structure and colour (not noise, not flat)."""

from __future__ import annotations

import numpy as np
import torch

from runtime.generators.base import Params
from runtime.generators.cppn import CppnGenerator

CPU = torch.device("cpu")


def render(g: CppnGenerator, **values: float) -> np.ndarray:
    t_s = values.pop("t_s", 0.0)
    return g.render(Params(0, t_s, values)).permute(1, 2, 0).numpy()  # (H, W, 3)


def test_same_seed_same_image_other_seed_other_image():
    a = render(CppnGenerator(seed=1, size_px=(64, 48), device=CPU))
    b = render(CppnGenerator(seed=1, size_px=(64, 48), device=CPU))
    c = render(CppnGenerator(seed=2, size_px=(64, 48), device=CPU))
    assert a.shape == (48, 64, 3)
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05


def test_latent_walk_is_continuous():
    g = CppnGenerator(seed=4, size_px=(64, 64), device=CPU)
    steps = [render(g, **{"latent.phase": 0.3 + k * 0.01}) for k in range(6)]
    small = max(np.abs(a - b).mean() for a, b in zip(steps, steps[1:]))
    far = np.abs(steps[0] - render(g, **{"latent.phase": 2.3})).mean()
    assert small < 0.01  # a hundredth of a keyframe barely moves the picture
    assert far > 10 * small  # while two keyframes on it is another picture


def test_controls_change_the_image():
    g = CppnGenerator(seed=5, size_px=(48, 48), device=CPU)
    base = render(g)
    for name, value in [
        ("gen.zoom", 2.0),
        ("gen.warp", 1.2),
        ("latent.direction.2", 2.0),
        ("gen.rotate", 1.0),
        ("gen.detail", 2.0),
        ("latent.position", 0.5),
        ("latent.plane.x", 1.0),
        ("latent.plane.y", -1.0),
    ]:
        assert np.abs(render(g, **{name: value}) - base).mean() > 0.01, name


def test_images_have_structure_and_colour_not_noise():
    for seed in range(4):
        image = render(CppnGenerator(seed=seed, size_px=(128, 128), device=CPU))
        assert image.min() >= 0.0 and image.max() <= 1.0
        neighbour = np.abs(np.diff(image, axis=1)).mean()
        spread = image.std(axis=(0, 1)).mean()
        # White noise has neighbour differences of about 1.13 spreads; ours are far below.
        assert neighbour < spread / 2, seed
        assert spread > 0.08, seed  # not flat
        chroma = (image.max(-1) - image.min(-1)).mean()
        assert chroma > 0.1, seed  # coloured, not grey
