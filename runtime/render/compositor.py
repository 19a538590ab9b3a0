"""The compositor: the generated frame as a texture, then the show's chain of GLSL
passes at canvas size, then presentation on a window (letterboxed) or a read-back.

Every annotated uniform of a pass is a mapping target; pass files hot-reload, and a
pass that fails to compile keeps its last good program while the error is shown.
With two decks (runtime/decks.py) a `DeckMixer` blends deck B's frame into deck A's
with the crossfade pass, and the chain reads the blend as its generated frame.
Frames arrive as numpy arrays: this module imports no torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import moderngl
import numpy as np

from runtime.errors import ShaderError
from runtime.files import stamp
from runtime.render.shaders import COMMON_PATH, Uniform, compile_program, read_uniforms
from runtime.show import SHADER_DIR, EffectConfig

log = logging.getLogger(__name__)

FIT_PATH = SHADER_DIR / "fit.glsl"
HUD_PATH = SHADER_DIR / "hud.glsl"
_UNIT_INPUT, _UNIT_SOURCE, _UNIT_PREV = 0, 1, 2


class _Pass:
    """One effect: its program, its output texture(s) and its last-compiled stamp."""

    def __init__(
        self, ctx: moderngl.Context, effect: EffectConfig, size_px: tuple[int, int], dtype: str
    ) -> None:
        self.ctx = ctx
        self.effect = effect
        self.program = compile_program(ctx, effect.shader_path)
        self.uniforms: tuple[Uniform, ...] = read_uniforms(effect.shader_path)
        self.vao = ctx.vertex_array(self.program, [])
        self.stamp = stamp(effect.shader_path)
        self.error: str | None = None
        # A pass that reads its own last output (u_prev) ping-pongs two targets.
        count = 2 if self.program.get("u_prev", None) is not None else 1
        self.textures = [_texture(ctx, size_px, 4, dtype) for _ in range(count)]
        self.fbos = [ctx.framebuffer(color_attachments=[t]) for t in self.textures]
        for fbo in self.fbos:
            fbo.clear(0.0, 0.0, 0.0, 1.0)
        self.current = 0

    def reload(self) -> str | None:
        now = stamp(self.effect.shader_path)
        if now == self.stamp:
            return None
        self.stamp = now
        try:
            program = compile_program(self.ctx, self.effect.shader_path)
            uniforms = read_uniforms(self.effect.shader_path)
        except ShaderError as exc:
            self.error = f"shader not reloaded, keeping the last good one: {exc}"
            log.error("%s", self.error)
            return self.error
        self.vao.release()
        self.program.release()
        self.program, self.uniforms = program, uniforms
        self.vao = self.ctx.vertex_array(program, [])
        self.error = None
        log.info("shader reloaded: %s", self.effect.shader_path)
        return f"shader {self.effect.name} reloaded"

    def run(
        self,
        inputs: dict[str, tuple[moderngl.Texture, tuple[int, int]]],
        values: Mapping[str, float],
        t_s: float,
        size_px: tuple[int, int],
    ) -> moderngl.Texture:
        prog = self.program
        previous = self.textures[self.current]
        if len(self.textures) == 2:
            self.current ^= 1
        _set(prog, "u_time", t_s)
        _set(prog, "u_resolution", size_px)
        for name, unit in (("input", _UNIT_INPUT), ("source", _UNIT_SOURCE)):
            texture, texture_px = inputs[name]
            sampler = prog.get(f"u_{name}", None)
            if sampler is not None:
                texture.use(unit)
                sampler.value = unit
            _set(prog, f"u_{name}_resolution", texture_px)
        sampler = prog.get("u_prev", None)
        if sampler is not None:
            previous.use(_UNIT_PREV)
            sampler.value = _UNIT_PREV
        prefix = f"shader.{self.effect.name}."
        for u in self.uniforms:
            value = values.get(prefix + u.name, u.default)
            _set(prog, f"u_{u.name}", round(value) if u.glsl_type == "int" else value)
        fbo = self.fbos[self.current]
        fbo.use()
        self.vao.render(moderngl.TRIANGLES, vertices=3)
        return self.textures[self.current]

    def release(self) -> None:
        for obj in (*self.fbos, *self.textures, self.vao, self.program):
            obj.release()


class Compositor:
    """Runs the pass chain.

    Args:
        ctx: the GL context (window or headless).
        effects: the show's passes in order; an empty chain letterboxes the frame.
        canvas_px: (width, height) every pass renders at.
    Raises:
        ShaderError: a pass does not compile at start.
    Thread: the thread that owns `ctx` (main).
    """

    def __init__(
        self, ctx: moderngl.Context, effects: tuple[EffectConfig, ...], canvas_px: tuple[int, int]
    ) -> None:
        self.ctx = ctx
        self.canvas_px = canvas_px
        self.slot = SourceSlot(ctx)
        chain = effects or (EffectConfig("fit", FIT_PATH),)
        # Passes in between keep half floats (trails fade smoothly without 8-bit
        # banding); the last one writes 8 bits, ready to show or read back.
        self.passes = [
            _Pass(ctx, e, canvas_px, "f1" if i == len(chain) - 1 else "f2")
            for i, e in enumerate(chain)
        ]
        self.present_program = compile_program(ctx, FIT_PATH)
        self.present_vao = ctx.vertex_array(self.present_program, [])
        self.hud_program = compile_program(ctx, HUD_PATH)
        self.hud_vao = ctx.vertex_array(self.hud_program, [])
        self.output: moderngl.Texture = self.passes[-1].textures[0]
        # One read-back target per size asked for (the video's, CLIP's).
        self._readbacks: dict[tuple[int, int], moderngl.Framebuffer] = {}
        self._common_stamp = stamp(COMMON_PATH)

    @property
    def errors(self) -> list[str]:
        """Current shader errors (a failed reload per pass). Thread: main."""
        return [p.error for p in self.passes if p.error]

    @property
    def source(self) -> moderngl.Texture:
        """The generated frame's texture (deck A's). Thread: main."""
        return self.slot.texture

    @property
    def source_px(self) -> tuple[int, int]:
        """Its (width, height). Thread: main."""
        return self.slot.size_px

    def upload(self, frame: np.ndarray) -> None:
        """Upload a generated frame (see `SourceSlot.upload`). Thread: main."""
        self.slot.upload(frame)

    def use_source(self, texture: moderngl.Texture) -> None:
        """Take a texture drawn on the GL side as the frame (see `SourceSlot.use_source`).

        Thread: main.
        """
        self.slot.use_source(texture)

    def render(
        self,
        values: Mapping[str, float],
        t_s: float,
        *,
        source: tuple[moderngl.Texture, tuple[int, int]] | None = None,
    ) -> moderngl.Texture:
        """Run every pass for one frame.

        Args:
            values: target values (`shader.EFFECT.NAME`); missing ones take defaults.
            t_s: the frame's time.
            source: (texture, size) the passes read instead of the generated frame
                (two decks' mix, runtime/decks.py); None: the generated frame.
        Returns:
            The canvas texture (RGBA8, canvas_px).
        Thread: main.
        """
        source = (self.source, self.source_px) if source is None else source
        current = source
        for p in self.passes:
            texture = p.run({"input": current, "source": source}, values, t_s, self.canvas_px)
            current = (texture, self.canvas_px)
        self.output = current[0]
        return self.output

    def render_timed(
        self, values: Mapping[str, float], t_s: float
    ) -> list[tuple[str, float, float | None]]:
        """Run every pass like `render`, timing each one alone (for `bench`).

        Each pass is fenced (the GL queue drained before and after it), so its wall
        time is its whole cost; a GL timer query times it too. Mesa's llvmpipe
        rasterises after the query ends, so there the query times only the command
        submission and the fenced time is the one to read.

        Returns:
            One (pass name, fenced ms, timer-query ms or None) per pass, in order.
        Thread: main.
        """
        source = (self.source, self.source_px)
        current = source
        rows = []
        for p in self.passes:
            query = self.ctx.query(time=True)
            self.ctx.finish()
            start = time.perf_counter()
            with query:
                texture = p.run({"input": current, "source": source}, values, t_s, self.canvas_px)
            self.ctx.finish()
            fenced_ms = (time.perf_counter() - start) * 1000.0
            rows.append((p.effect.name, fenced_ms, query.elapsed / 1e6))
            current = (texture, self.canvas_px)
        self.output = current[0]
        return rows

    def present(
        self, fbo: moderngl.Framebuffer, viewport_px: tuple[int, int], *, crop: bool = False
    ) -> None:
        """Letterbox the last rendered canvas into a framebuffer of another size
        (or, with `crop`, fill it, cutting what sticks out).

        Thread: main.
        """
        fbo.use()
        self.ctx.viewport = (0, 0, *viewport_px)
        fbo.clear(0.0, 0.0, 0.0, 1.0)
        self.output.use(_UNIT_INPUT)
        prog = self.present_program
        prog["u_input"].value = _UNIT_INPUT
        _set(prog, "u_input_resolution", self.canvas_px)
        _set(prog, "u_resolution", viewport_px)
        _set(prog, "u_mode", 1.0 if crop else 0.0)
        _set(prog, "u_zoom", 1.0)
        self.present_vao.render(moderngl.TRIANGLES, vertices=3)

    def draw_overlay(self, texture: moderngl.Texture, viewport: tuple[int, int, int, int]) -> None:
        """Blend an RGBA texture (the HUD) over the bound framebuffer in `viewport`.

        Thread: main.
        """
        self.ctx.viewport = viewport
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        texture.use(_UNIT_INPUT)
        self.hud_program["u_input"].value = _UNIT_INPUT
        self.hud_vao.render(moderngl.TRIANGLES, vertices=3)
        self.ctx.disable(moderngl.BLEND)

    def read(self, size_px: tuple[int, int] | None = None, *, crop: bool = False) -> np.ndarray:
        """The last rendered canvas as (H, W, 3) uint8, top row first.

        Args:
            size_px: the size wanted (a video's, or CLIP's input); the canvas is
                presented (scaled, letterboxed) at that size first when it differs.
                None: the canvas.
            crop: fill `size_px` instead of letterboxing (for CLIP's square input).
        Thread: main.
        """
        texture = self._at_size(size_px, crop)
        width, height = texture.size
        rgba = np.frombuffer(texture.read(alignment=1), np.uint8).reshape(height, width, 4)
        return np.ascontiguousarray(rgba[::-1, :, :3])

    def read_rgba(self, size_px: tuple[int, int] | None = None) -> bytes:
        """The last rendered canvas as GL holds it: RGBA bytes, bottom row first,
        letterboxed at `size_px` (None: the canvas). Cheaper than `read` by the flip
        and the copy (0.6 ms against 10 ms at 1280x720 on llvmpipe): for a consumer
        that flips elsewhere (a live recording's ffmpeg).

        Thread: main.
        """
        return self._at_size(size_px, False).read(alignment=1)

    def _at_size(self, size_px: tuple[int, int] | None, crop: bool) -> moderngl.Texture:
        if size_px is None or size_px == self.canvas_px:
            return self.output
        readback = self._readbacks.get(size_px)
        if readback is None:
            readback = self.ctx.framebuffer(
                color_attachments=[_texture(self.ctx, size_px, 4, "f1")]
            )
            self._readbacks[size_px] = readback
        self.present(readback, size_px, crop=crop)
        return readback.color_attachments[0]

    def reload_if_changed(self) -> list[str]:
        """Recompile pass files that changed on disk (all of them when common.glsl
        changed); a failure keeps that pass's last good program.

        Returns:
            One message per pass reloaded or failed.
        Thread: main.
        """
        common = stamp(COMMON_PATH)
        if common != self._common_stamp:
            self._common_stamp = common
            for p in self.passes:
                p.stamp = None
        return [m for m in (p.reload() for p in self.passes) if m]

    def release(self) -> None:
        """Free every GL object. Thread: main."""
        for p in self.passes:
            p.release()
        for readback in self._readbacks.values():
            readback.color_attachments[0].release()
            readback.release()
        self.slot.release()
        for obj in (
            self.present_vao,
            self.present_program,
            self.hud_vao,
            self.hud_program,
        ):
            obj.release()


class SourceSlot:
    """Where a generated frame lives on the GL side: a texture frames are uploaded
    into, or a texture a GL generator draws (owned by it).

    Args:
        ctx: the GL context.
    Thread: the thread that owns `ctx` (main).
    """

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.size_px = (16, 16)
        self.texture = _texture(ctx, self.size_px, 3, "f1")
        self._own = True  # False while the texture is a GL generator's

    def upload(self, frame: np.ndarray) -> None:
        """Upload a generated frame.

        Args:
            frame: (H, W, 3) uint8, top row first.
        Thread: main.
        """
        height, width, _ = frame.shape
        if (width, height) != self.size_px or not self._own:
            if self._own:
                self.texture.release()
            self.size_px = (width, height)
            self.texture = _texture(self.ctx, self.size_px, 3, "f1")
            self._own = True
        # GL's rows run bottom-up: flip once here so every pass samples upright.
        self.texture.write(np.ascontiguousarray(frame[::-1]))

    def use_source(self, texture: moderngl.Texture) -> None:
        """Take a texture drawn on the GL side (a generator drawn by its own shader) as
        the frame, instead of an uploaded one.

        Args:
            texture: rows bottom-up, as an uploaded frame's are; its owner keeps it.
        Thread: main.
        """
        if self._own:
            self.texture.release()
            self._own = False
        self.texture = texture
        self.size_px = texture.size

    def release(self) -> None:
        """Free the texture if it is this slot's own. Thread: main."""
        if self._own:
            self.texture.release()


class DeckMixer:
    """Two decks' frames into one with the crossfade pass (shaders/crossfade.glsl):
    deck A's frame is its input, deck B's its source (fitted into A's frame by the
    pass's `fit`), at deck A's frame size; the show's chain then reads the result as
    its generated frame.

    Args:
        ctx: the GL context.
    Thread: the thread that owns `ctx` (main).
    """

    EFFECT = EffectConfig("deck", SHADER_DIR / "crossfade.glsl")

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.slot_b = SourceSlot(ctx)
        self._pass: _Pass | None = None
        self._size_px: tuple[int, int] | None = None

    def mix(
        self,
        a: tuple[moderngl.Texture, tuple[int, int]],
        amount: float,
        mode: float,
        fit: float,
    ) -> tuple[moderngl.Texture, tuple[int, int]]:
        """Blend deck B's frame into deck A's.

        Args:
            a: deck A's frame and its size.
            amount, mode, fit: the crossfade pass's uniforms (0..1; 0 mix, 1 add,
                2 screen, 3 multiply, 4 difference; 0 letterbox, 1 crop, 2 stretch).
        Returns:
            The blended frame (RGBA8, A's size) and its size.
        Thread: main.
        """
        blend = self._pass
        if blend is None or a[1] != self._size_px:
            if blend is not None:
                blend.release()
            blend = self._pass = _Pass(self.ctx, self.EFFECT, a[1], "f1")
            self._size_px = a[1]
        values = {"shader.deck.amount": amount, "shader.deck.mode": mode, "shader.deck.fit": fit}
        b = (self.slot_b.texture, self.slot_b.size_px)
        return blend.run({"input": a, "source": b}, values, 0.0, a[1]), a[1]

    def release(self) -> None:
        """Free every GL object. Thread: main."""
        self.slot_b.release()
        if self._pass is not None:
            self._pass.release()


def _texture(
    ctx: moderngl.Context, size_px: tuple[int, int], components: int, dtype: str
) -> moderngl.Texture:
    texture = ctx.texture(size_px, components, dtype=dtype, alignment=1)
    texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
    texture.repeat_x = texture.repeat_y = False
    return texture


def _set(prog: moderngl.Program, name: str, value) -> None:
    # `get`, not `in`: moderngl's Program has no __contains__, and `in` walks every
    # member (a few hundred steps a frame across the passes).
    member = prog.get(name, None)
    if member is not None:
        member.value = value
