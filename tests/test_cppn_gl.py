"""The cppn generator's GLSL path draws the torch path's picture: several seeds,
control sets, sizes and network shapes, every table storage, compared with the
worker's 8-bit frame; and its texture sits in the compositor as an uploaded frame
does."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from runtime.errors import GeneratorError, ShaderError
from runtime.generators.base import Params
from runtime.generators.cppn import LATENT_DIM, CppnGenerator
from runtime.render.compositor import Compositor
from runtime.render.gl_generator import GLGenerator

pytestmark = pytest.mark.gl

CPU = torch.device("cpu")

# Control sets: the walk, directions and plane, the view, and the warp's drift.
CASES = [
    Params(0, 0.0, {}),
    Params(1, 2.5, {"latent.phase": 1.37, "latent.position": 0.4}),
    Params(2, 7.0, {"latent.direction.0": 2.5, "latent.direction.3": -1.5, "gen.flow": 1.3}),
    Params(3, 1.0, {"latent.plane.x": 1.2, "latent.plane.y": -0.8, "latent.plane.z": 0.5}),
    Params(4, 3.3, {"gen.zoom": 3.0, "gen.rotate": 2.2, "gen.warp": 0.0}),
    Params(5, 11.0, {"gen.zoom": 0.1, "gen.rotate": -math.pi, "gen.detail": 4.0, "gen.warp": 2.0}),
    Params(6, 4.2, {"gen.detail": 0.25, "gen.warp": 1.1, "gen.flow": 2.0}),
]


def worker_pixels(generator: CppnGenerator, params: Params) -> np.ndarray:
    """The torch frame in 8 bits, converted as runtime/generators/worker.py does."""
    image = generator.render(params)  # (3, H, W)
    pixels = (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    return pixels.permute(1, 2, 0).numpy()  # (H, W, 3)


def assert_same_picture(gl: np.ndarray, reference: np.ndarray, what: str) -> None:
    diff = np.abs(gl.astype(np.int16) - reference.astype(np.int16))  # (H, W, 3)
    mean = float(diff.mean())
    within = float((diff.max(-1) <= 2).mean())  # pixels with every channel within 2
    assert mean < 0.5, f"{what}: mean difference {mean:.4f}/255"
    assert within >= 0.999, f"{what}: only {within:.5f} of pixels within 2/255"


def parity(ctx, generator: CppnGenerator, cases: list[Params], storage: str = "auto") -> str:
    gl = GLGenerator(ctx, generator.gl_program(), storage=storage)
    try:
        for params in cases:
            gl.render(generator.gl_uniforms(params))
            what = f"{storage} {generator.size_px} frame {params.frame}"
            assert_same_picture(gl.read(), worker_pixels(generator, params), what)
        return gl.storage
    finally:
        gl.release()


@pytest.mark.parametrize("seed", [0, 2, 7])
def test_default_network_matches_torch(gl_ctx, seed):
    generator = CppnGenerator(seed=seed, size_px=(64, 40), device=CPU)
    assert parity(gl_ctx, generator, CASES) == "constant"


def test_odd_size_and_latent_offset_match_torch(gl_ctx):
    generator = CppnGenerator(seed=2, size_px=(37, 23), device=CPU)
    offset = torch.linspace(-0.6, 0.6, LATENT_DIM)
    steered = Params(7, 1.5, {"latent.phase": 0.3}, latent_offset=offset)
    parity(gl_ctx, generator, [CASES[0], CASES[5], steered])


@pytest.mark.parametrize(
    ("width", "depth", "size_px", "storage", "expected"),
    [
        (30, 3, (20, 14), "auto", "constant"),  # units padded to fours
        (6, 1, (16, 9), "auto", "constant"),  # a single layer
        (8, 2, (16, 12), "uniform", "uniform"),
        (8, 2, (16, 12), "texture", "texture"),
    ],
)
def test_shapes_and_storages_match_torch(gl_ctx, width, depth, size_px, storage, expected):
    generator = CppnGenerator(seed=3, size_px=size_px, device=CPU, width=width, depth=depth)
    assert parity(gl_ctx, generator, CASES[:2] + CASES[5:6], storage) == expected


@pytest.mark.slow
@pytest.mark.parametrize(("width", "depth", "size_px"), [(64, 6, (24, 16)), (256, 12, (12, 8))])
def test_wide_deep_networks_loop_and_match_torch(gl_ctx, width, depth, size_px):
    generator = CppnGenerator(seed=4, size_px=size_px, device=CPU, width=width, depth=depth)
    program = generator.gl_program()
    assert not program.constant_indices  # too big to write out: loops over a texture
    assert parity(gl_ctx, generator, CASES[1:3]) == "texture"


def test_frame_sits_in_the_compositor_as_an_uploaded_one(gl_ctx):
    generator = CppnGenerator(seed=2, size_px=(48, 30), device=CPU)
    params = CASES[1]
    gl = GLGenerator(gl_ctx, generator.gl_program())
    texture = gl.render(generator.gl_uniforms(params))
    comp = Compositor(gl_ctx, (), (48, 30))
    comp.upload(worker_pixels(generator, params))
    # Both textures hold their rows bottom-up, texel for texel.
    drawn = np.frombuffer(texture.read(alignment=1), np.uint8).reshape(30, 48, 4)[..., :3]
    uploaded = np.frombuffer(comp.source.read(alignment=1), np.uint8).reshape(30, 48, 3)
    assert_same_picture(drawn, uploaded, "texture layout")
    assert np.abs(drawn.astype(int) - uploaded[::-1]).mean() > 10  # not upside down
    assert texture.filter == comp.source.filter
    comp.release()
    gl.release()


def test_bad_storage_and_frame_table_are_errors(gl_ctx):
    generator = CppnGenerator(seed=1, size_px=(8, 8), device=CPU, width=64, depth=6)
    with pytest.raises(ShaderError, match="cannot be stored as constant"):
        GLGenerator(gl_ctx, generator.gl_program(), storage="constant")
    small = CppnGenerator(seed=1, size_px=(8, 8), device=CPU, width=4, depth=1)
    gl = GLGenerator(gl_ctx, small.gl_program())
    uniforms = small.gl_uniforms(CASES[0])
    with pytest.raises(ShaderError, match="per-frame table"):
        gl.render({**uniforms, "u_frame": uniforms["u_frame"][:1]})
    with pytest.raises(GeneratorError, match="offset"):
        small.gl_uniforms(Params(0, 0.0, {}, latent_offset=torch.zeros(3)))
    gl.release()


def test_errors_in_generated_code_name_the_shader(gl_ctx):
    program = CppnGenerator(seed=1, size_px=(8, 8), device=CPU, width=4, depth=1).gl_program()
    broken = dataclasses.replace(
        program, functions="vec3 cppn_field(vec2 xy, float detail) {\n return oops;\n}\n"
    )
    with pytest.raises(ShaderError, match=r"cppn\.glsl.*:\d+: .*oops"):
        GLGenerator(gl_ctx, broken)
