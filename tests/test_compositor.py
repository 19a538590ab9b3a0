"""The pass chain on a real headless GL context: uniforms as targets, fit, feedback,
kaleidoscope symmetry, crossfade, and shader hot reload keeping the last good program."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.errors import ShaderError
from runtime.render.compositor import Compositor
from runtime.render.shaders import read_uniforms, shader_targets
from runtime.show import SHADER_DIR, EffectConfig

pytestmark = pytest.mark.gl


def effect(name: str, shader: str | None = None) -> EffectConfig:
    return EffectConfig(name, SHADER_DIR / f"{shader or name}.glsl")


def gradient(width: int = 32, height: int = 32) -> np.ndarray:
    """A frame whose red rises left to right and green top to bottom."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full_like(x, 64)], -1).astype(np.uint8)


def test_every_pass_declares_valid_targets():
    for path in SHADER_DIR.glob("*.glsl"):
        for u in read_uniforms(path):
            assert u.lo <= u.default <= u.hi, (path, u)
    targets = shader_targets((effect("trails", "feedback"),))
    assert targets["shader.trails.decay"].default == 0.9


def test_fit_letterboxes_and_keeps_orientation(gl_ctx):
    comp = Compositor(gl_ctx, (effect("fit"),), (64, 32))
    comp.upload(gradient(32, 32))
    comp.render({}, 0.0)
    out = comp.read()
    assert out.shape == (32, 64, 3)
    assert out[:, :12].max() == 0 and out[:, -12:].max() == 0  # black bars left and right
    middle = out[:, 16:48].astype(int)
    assert middle[:, -1, 0].mean() > middle[:, 0, 0].mean() + 150  # red rises to the right
    assert middle[-1, :, 1].mean() > middle[0, :, 1].mean() + 150  # green rises downwards
    comp.render({"shader.fit.mode": 2.0}, 0.0)  # stretch: no bars
    assert comp.read()[:, :4].max() > 0
    comp.release()


def test_grade_uniforms_are_targets(gl_ctx):
    comp = Compositor(gl_ctx, (effect("fit"), effect("grade")), (32, 32))
    comp.upload(gradient())
    comp.render({"shader.grade.vignette": 0.0}, 0.0)
    base = comp.read().astype(float).mean()
    comp.render({"shader.grade.vignette": 0.0, "shader.grade.brightness": 0.0}, 0.0)
    assert comp.read().max() == 0
    comp.render({"shader.grade.vignette": 0.0, "shader.grade.saturation": 0.0}, 0.0)
    grey = comp.read().astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2  # no colour left
    assert base > 50
    comp.release()


def test_kaleidoscope_is_mirror_symmetric(gl_ctx):
    comp = Compositor(gl_ctx, (effect("fit"), effect("kaleido")), (64, 64))
    comp.upload(gradient(64, 64))
    comp.render({"shader.kaleido.segments": 4.0, "shader.kaleido.spin": 0.0}, 0.0)
    out = comp.read().astype(int)
    # Four wedges mirrored: the picture is symmetric about both axes through the centre.
    assert np.abs(out[:, 1:] - out[:, 1:][:, ::-1]).mean() < 6
    assert np.abs(out[1:] - out[1:][::-1]).mean() < 6
    comp.release()


def test_feedback_leaves_a_trail_that_decays(gl_ctx):
    comp = Compositor(gl_ctx, (effect("fit"), effect("trails", "feedback")), (32, 32))
    white = np.full((32, 32, 3), 255, np.uint8)
    values = {"shader.trails.decay": 0.5, "shader.trails.zoom": 1.0, "shader.fit.mode": 2.0}
    comp.upload(white)
    comp.render(values, 0.0)
    comp.upload(np.zeros_like(white))
    comp.render(values, 1 / 30)
    first = comp.read().astype(float).mean()
    comp.render(values, 2 / 30)
    second = comp.read().astype(float).mean()
    assert first == pytest.approx(127.5, abs=3)  # half the white survives a frame
    assert second == pytest.approx(64, abs=3)  # and half of that the next
    comp.release()


def test_crossfade_blends_chain_with_the_generated_frame(gl_ctx):
    chain = (effect("fit"), effect("grade"), effect("crossfade"))
    comp = Compositor(gl_ctx, chain, (32, 32))
    comp.upload(np.full((32, 32, 3), 200, np.uint8))
    dark = {"shader.grade.brightness": 0.0, "shader.crossfade.fit": 2.0}
    comp.render({**dark, "shader.crossfade.amount": 0.0}, 0.0)
    assert comp.read().max() == 0
    comp.render({**dark, "shader.crossfade.amount": 1.0}, 0.0)
    assert comp.read().mean() == pytest.approx(200, abs=2)
    comp.render({**dark, "shader.crossfade.amount": 0.5}, 0.0)
    assert comp.read().mean() == pytest.approx(100, abs=2)
    comp.release()


def test_broken_shader_reload_keeps_last_good_program(gl_ctx, tmp_path):
    path = tmp_path / "grade.glsl"
    shutil.copy(SHADER_DIR / "grade.glsl", path)
    comp = Compositor(gl_ctx, (effect("fit"), EffectConfig("grade", path)), (32, 32))
    comp.upload(gradient())
    comp.render({"shader.grade.brightness": 0.0}, 0.0)
    assert comp.read().max() == 0
    good = path.read_text()
    path.write_text(good.replace("f_color = vec4(c * u_brightness, 1.0);", "f_color = oops;"))
    messages = comp.reload_if_changed()
    assert len(messages) == 1 and "grade.glsl:" in messages[0] and "oops" in messages[0]
    assert comp.errors == messages
    comp.render({"shader.grade.brightness": 0.0}, 0.0)
    assert comp.read().max() == 0  # the last good program still runs
    path.write_text(good.replace("c * u_brightness", "vec3(1.0, 0.0, 0.0)"))
    assert comp.reload_if_changed() == ["shader grade reloaded"]
    comp.render({}, 0.0)
    assert comp.read()[..., 0].min() == 255 and comp.errors == []
    comp.release()


def test_broken_shader_at_start_names_file_and_line(gl_ctx, tmp_path):
    path = tmp_path / "bad.glsl"
    path.write_text("uniform sampler2D u_input;\n\nvoid main() {\n    f_color = vec4(x);\n}\n")
    with pytest.raises(ShaderError, match=r"bad\.glsl:4: "):
        Compositor(gl_ctx, (EffectConfig("bad", path),), (16, 16))


def test_present_letterboxes_into_a_wider_window(gl_ctx):
    comp = Compositor(gl_ctx, (effect("fit"),), (32, 32))
    comp.upload(np.full((32, 32, 3), 255, np.uint8))
    comp.render({}, 0.0)
    texture = gl_ctx.texture((96, 32), 3)
    fbo = gl_ctx.framebuffer(color_attachments=[texture])
    comp.present(fbo, (96, 32))
    out = np.frombuffer(fbo.read(components=3), np.uint8).reshape(32, 96, 3)
    assert out[:, :30].max() == 0 and out[:, 34:62].min() == 255 and out[:, 66:].max() == 0
    fbo.release()
    texture.release()
    comp.release()


def test_shader_files_parse_and_targets_have_docs():
    for name in ("fit", "feedback", "kaleido", "grade", "crossfade"):
        uniforms = read_uniforms(Path(SHADER_DIR / f"{name}.glsl"))
        assert uniforms, name
        assert all(u.doc for u in uniforms)


def test_a_smaller_canvas_is_read_back_at_the_output_size(gl_ctx):
    comp = Compositor(gl_ctx, (effect("fit"),), (48, 27))
    comp.upload(np.full((32, 32, 3), 255, np.uint8))
    comp.render({"shader.fit.mode": 2.0}, 0.0)
    canvas = comp.read()
    video = comp.read((96, 54))
    assert canvas.shape == (27, 48, 3) and video.shape == (54, 96, 3)
    assert video.min() == 255  # the whole canvas, scaled up
    comp.release()
