"""Latent steering: each generator hands out the latent it renders from, renders any
latent differentiably, and adds a steering offset to its own latent.

Every family answers the same questions: the latent's shape; `render_latent` of
`steer_latent` is `render`; a zero offset changes nothing; an offset is the same as
rendering the moved latent; gradients reach the latent and are good enough for a few
steps of gradient descent to pull the picture towards another frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from runtime.errors import GeneratorError
from runtime.generators import build_generator
from runtime.generators.base import Params
from runtime.generators.biggan import build as build_biggan
from runtime.generators.cppn import LATENT_DIM, CppnGenerator
from runtime.generators.stylegan import StyleGANGenerator
from runtime.generators.stylegan_load import export_safetensors
from runtime.show import load_show
from tests.test_biggan import generator_config, write_folder
from tests.test_stylegan import _checkpoint, _gen, _random_sg2

CPU = torch.device("cpu")
TOLERANCE = 1e-5  # render_latent(steer_latent(p), p) against render(p), float32 CPU


@dataclass
class Case:
    """One generator under test.

    Attributes:
        gen: the generator.
        shape: what `steer_latent` returns.
        params: a frame with non-default controls of every kind the family has.
        other: a frame elsewhere on the walk: the target of the descent test.
        offset_scale: a visible but moderate offset size for this latent space.
        lr: the descent test's Adam step (BigGAN's latent is steep: a small one).
    """

    gen: Any
    shape: tuple[int, ...]
    params: Params
    other: Params
    offset_scale: float
    lr: float


def _cppn(_factory, _fixtures) -> Case:
    gen = CppnGenerator(seed=3, size_px=(40, 32), device=CPU)
    values = {"latent.phase": 0.4, "latent.direction.1": 0.7, "gen.zoom": 1.5, "gen.warp": 0.6}
    return Case(
        gen,
        (LATENT_DIM,),
        Params(3, 1.25, values),
        Params(3, 1.25, {**values, "latent.phase": 2.6}),
        offset_scale=0.5,
        lr=0.1,
    )


def _stylegan(name: str, options: str, lr: float) -> Callable[..., Case]:
    def make(factory, fixtures: Path) -> Case:
        path = _checkpoint(name, fixtures, factory)
        # 48 px frames from a 32 px network: the fit to the show's size is in the path.
        gen = _gen(factory.mktemp(name), path, "keyframes = [0, 1, 2]\n" + options, size=48)
        assert isinstance(gen, StyleGANGenerator)
        if gen.noise_mode != "none":
            # The fixture's learned noise strengths are 0 (upstream's init): give the
            # noise inputs weight so the frame's noise must match too.
            for layer in gen.network.synthesis.noise_layers():
                layer.noise_strength.data.fill_(0.3)
        values = {"latent.phase": 0.3, "gen.truncation": 0.8, "latent.direction.0": 1.0}
        if gen.family == "stylegan3":
            values.update({"gen.rotate": 0.3, "gen.shift.x": 0.1})
        return Case(
            gen,
            (gen.network.num_ws, gen.network.w_dim),
            Params(5, 0.2, values),
            Params(5, 0.2, {**values, "latent.phase": 1.5}),
            offset_scale=0.3,
            lr=lr,
        )

    return make


def _biggan(factory, _fixtures) -> Case:
    # A random 32 px BigGAN-deep (the fixture is 128 px: slower, and its numbers are
    # tested in test_biggan).
    folder = write_folder(factory.mktemp("biggan") / "tiny")
    gen = build_biggan(generator_config(folder, classes=["goldfinch", 207], seeds=[1, 2, 3]), CPU)
    values = {"latent.phase": 0.6, "gen.truncation": 0.5, "class.1.weight": 0.4}
    return Case(
        gen,
        (gen.net.config.z_dim + gen.net.config.num_classes,),
        Params(0, 0.0, values),
        Params(0, 0.0, {**values, "latent.phase": 1.7}),
        offset_scale=0.1,
        lr=0.001,
    )


FAMILIES = {
    "cppn": _cppn,
    "sg2": _stylegan("sg2-tiny", "noise = 'random'\n", lr=0.05),
    "sg3": _stylegan("sg3t-tiny", "", lr=0.01),
    "biggan": _biggan,
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def case(request: pytest.FixtureRequest, tmp_path_factory, fixtures_dir: Path) -> Case:
    return FAMILIES[request.param](tmp_path_factory, fixtures_dir)


def _offset(case: Case, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(case.shape, generator=g) * case.offset_scale


def _with(params: Params, offset: torch.Tensor | None) -> Params:
    return Params(params.frame, params.t_s, params.values, offset)


def test_steer_latent_has_the_documented_shape(case: Case) -> None:
    latent = case.gen.steer_latent(case.params)
    assert tuple(latent.shape) == case.shape
    assert latent.dtype == torch.float32 and latent.device == case.gen.device
    assert not latent.requires_grad and torch.isfinite(latent).all()
    other = case.gen.steer_latent(case.other)
    assert (latent - other).abs().max() > 1e-3  # the walk moves it


def test_render_latent_of_steer_latent_is_render(case: Case) -> None:
    frame = case.gen.render(case.params)
    again = case.gen.render_latent(case.gen.steer_latent(case.params), case.params)
    width, height = case.gen.size_px
    assert again.shape == frame.shape == (3, height, width)
    assert again.min() >= 0.0 and again.max() <= 1.0
    assert (again - frame).abs().max() <= TOLERANCE


def test_zero_offset_renders_exactly_as_none(case: Case) -> None:
    frame = case.gen.render(case.params)
    zero = case.gen.render(_with(case.params, torch.zeros(case.shape)))
    assert torch.equal(zero, frame)


def test_offset_is_render_latent_of_the_moved_latent(case: Case) -> None:
    offset = _offset(case)
    moved = case.gen.render(_with(case.params, offset))
    expected = case.gen.render_latent(case.gen.steer_latent(case.params) + offset, case.params)
    assert (moved - expected).abs().max() <= TOLERANCE
    assert (moved - case.gen.render(case.params)).abs().max() > 1e-3  # it shows


def test_batches_take_each_frames_own_offset(case: Case) -> None:
    if not hasattr(case.gen, "render_batch"):
        pytest.skip(f"{case.gen.kind} has no render_batch")
    frames = [case.params, _with(case.other, _offset(case, 1)), _with(case.params, _offset(case))]
    batch = case.gen.render_batch(frames)
    for i, p in enumerate(frames):
        assert (batch[i] - case.gen.render(p)).abs().max() <= TOLERANCE, i


def test_wrong_latent_or_offset_shape_is_a_generator_error(case: Case) -> None:
    with pytest.raises(GeneratorError, match="shape"):
        case.gen.render(_with(case.params, torch.zeros(3)))
    with pytest.raises(GeneratorError, match="shape"):
        case.gen.render_latent(torch.zeros(3), case.params)


def test_gradient_reaches_the_latent(case: Case) -> None:
    latent = case.gen.steer_latent(case.params).requires_grad_(True)
    image = case.gen.render_latent(latent, case.params)  # (3, H, W)
    (image - 0.5).square().mean().backward()
    assert latent.grad is not None and latent.grad.shape == latent.shape
    assert torch.isfinite(latent.grad).all()
    assert latent.grad.abs().max() > 0


def test_gradient_descent_pulls_towards_another_frame(case: Case) -> None:
    target = case.gen.render(case.other)
    start = case.gen.steer_latent(case.params)
    latent = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=case.lr)
    losses = []
    for _ in range(8):
        optimiser.zero_grad()
        loss = (case.gen.render_latent(latent, case.params) - target).square().mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    final = (case.gen.render_latent(latent.detach(), case.params) - target).square().mean()
    assert final.item() < 0.6 * losses[0], losses
    # The steering worker hands the result back as an offset: render shows it.
    steered = case.gen.render(_with(case.params, latent.detach() - start))
    assert (steered - target).square().mean().item() == pytest.approx(final.item(), abs=1e-6)


def test_stylegan_preset_saves_the_steered_latent(tmp_path_factory, fixtures_dir: Path) -> None:
    case = _stylegan("sg3t-tiny", "presets = 'looks.npz'\n", lr=0.01)(
        tmp_path_factory, fixtures_dir
    )
    offset = _offset(case)
    case.gen.save_preset("steered", _with(case.params, offset))
    saved = case.gen.latents.presets.presets["steered"]
    assert torch.allclose(saved, case.gen.steer_latent(case.params) + offset, atol=1e-6)


@pytest.mark.gpu
def test_cuda_graphs_and_float16_keep_steering_exact_and_differentiable(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cuda = torch.device("cuda")
    weights = tmp_path / "sg2.safetensors"
    export_safetensors(_random_sg2(num_fp16_res=2), weights)
    show = tmp_path / "show.toml"
    show.write_text(
        f'[generator]\nkind = "stylegan"\nweights = "{weights}"\nsize = 32\n'
        'device = "cuda"\ndirections = 0\n'
    )
    stylegan = build_generator(load_show(show).generator)
    assert isinstance(stylegan, StyleGANGenerator)
    assert stylegan.speed == "graph" and stylegan.network.fp16
    folder = write_folder(tmp_path / "biggan")
    biggan = build_biggan(generator_config(folder, classes=["goldfinch"], seeds=[1, 2]), cuda)
    assert biggan.net.rgb_w.dtype == torch.float16
    for gen, scale in ((stylegan, 0.3), (biggan, 0.1)):
        params = Params(0, 0.0, {"latent.phase": 0.3})
        latent = gen.steer_latent(params)
        assert latent.device.type == "cuda" and latent.dtype == torch.float32
        for seed in (0, 1):  # a second offset replays the captured graph
            g = torch.Generator(device=cuda).manual_seed(seed)
            offset = torch.randn(latent.shape, generator=g, device=cuda) * scale
            frame = gen.render(Params(0, 0.0, params.values, offset))
            expected = gen.render_latent(latent + offset, params)
            assert (frame - expected).abs().max() < 2e-3, gen.kind
        steered = latent.clone().requires_grad_(True)
        (gen.render_latent(steered, params) - 0.5).square().mean().backward()
        assert torch.isfinite(steered.grad).all() and steered.grad.abs().max() > 0, gen.kind
