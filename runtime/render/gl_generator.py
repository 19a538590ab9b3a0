"""A generator drawn by a GLSL fragment shader on the frame loop's GL context: the
first pass of the chain, with no worker thread and no upload.

The generator describes itself as plain data (`GLProgram`: a shader, generated
functions, a static table of vec4; per frame a dict of uniforms with `u_frame`,
its per-frame table). This module compiles and draws it and knows no torch. It
chooses where the static table lives:

- "constant": baked into the source as a const array. Only for code whose table
  indices are all constants (the generator says so); the fastest on Mesa's
  llvmpipe, where every uniform or texel read is a per-lane gather, and good on
  GPUs. The shader is then specific to the weights (one compile per seed).
- "uniform": a uniform block, when it fits the context's block size.
- "texture": an RGBA32F texture read with texelFetch, for any size.

The per-frame table is a uniform block, or a texture along with the static one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import moderngl
import numpy as np

from runtime.errors import ShaderError
from runtime.render.shaders import compile_program

# The generator's description, `runtime.generators.base.GLProgram`, read by its
# attributes: the render side imports nothing of the generators (tests/test_imports.py).
GLProgram = Any

STORAGES = ("constant", "uniform", "texture")
# The most static rows baked into the source: the const array's text grows with it
# (about 60 bytes a row) and so does the compile.
CONSTANT_ROWS = 4096
# Texels per row of a table texture: within every GL 3.3 context's size limit.
TABLE_ROW = 1024
FRAME_TABLE = "u_frame"
_UNIT_STATIC, _UNIT_FRAME = 0, 1
_BLOCK_STATIC, _BLOCK_FRAME = 0, 1


class GLGenerator:
    """Compiles a generator's program on a context and renders its frames there.

    Args:
        ctx: the GL context the frames are drawn on (the frame loop's).
        program: the generator's description, a `GLProgram` (e.g.
            `CppnGenerator.gl_program()`).
        storage: where the static table lives, one of `STORAGES`, or "auto":
            constants when the program allows it and the table is small, else a
            uniform block when both tables fit one, else textures.
    Raises:
        ShaderError: the shader does not compile (naming its file and line), or
            the storage asked for cannot hold this program's tables.
    Thread: the thread that owns `ctx` (main).
    """

    def __init__(self, ctx: moderngl.Context, program: GLProgram, *, storage: str = "auto") -> None:
        self.ctx = ctx
        self.size_px = program.size_px
        self.frame_vecs = program.frame_vecs
        static = _rows(program.static)  # (S, 4)
        self.storage = _choose(ctx, program, static, storage)
        self.program = compile_program(ctx, program.shader_path, _prelude(program, self.storage))
        self.vao = ctx.vertex_array(self.program, [])
        self._static: moderngl.Texture | moderngl.Buffer | None = None
        if self.storage == "texture":
            self._static = _table_texture(ctx, len(static), static)
            self._frame = _table_texture(ctx, self.frame_vecs)
        else:
            self._frame = ctx.buffer(reserve=16 * max(self.frame_vecs, 1))
            if self.storage == "uniform":
                self._static = ctx.buffer(static.tobytes())
        for name, value in program.uniforms.items():
            self._set(name, value)
        self.texture = ctx.texture(self.size_px, 4, dtype="f1")
        # Sampled like the compositor's uploaded frame: linear, clamped at the edges.
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.repeat_x = self.texture.repeat_y = False
        self.fbo = ctx.framebuffer(color_attachments=[self.texture])
        # llvmpipe compiles a program at its first draw (seconds for the default
        # network, the first time; Mesa keeps it on disk): draw once now, at start,
        # rather than in the first frame of the show.
        self._draw()

    def render(
        self, uniforms: Mapping[str, float | tuple[float, ...] | np.ndarray]
    ) -> moderngl.Texture:
        """Draw one frame.

        Args:
            uniforms: the frame's values by uniform name (the generator's
                `gl_uniforms`); `u_frame`, (frame_vecs, 4) float32, is the
                per-frame table. Uniforms the shader does not use are skipped.
        Returns:
            The frame: RGBA8 at `size_px`, rows bottom-up as GL keeps them (the
            layout the compositor's upload gives a frame), so passes sample it
            upright. The next `render` draws over it.
        Raises:
            ShaderError: `u_frame` has the wrong shape.
        Thread: main.
        """
        for name, value in uniforms.items():
            if name == FRAME_TABLE:
                self._write_frame_table(value)
            else:
                self._set(name, value)
        self._draw()
        return self.texture

    def read(self) -> np.ndarray:
        """The last frame as (H, W, 3) uint8, top row first (for tests and tools).

        Thread: main.
        """
        width, height = self.size_px
        rgba = np.frombuffer(self.texture.read(alignment=1), np.uint8).reshape(height, width, 4)
        return np.ascontiguousarray(rgba[::-1, :, :3])

    def release(self) -> None:
        """Free every GL object. Thread: main."""
        tables = [t for t in (self._static, self._frame) if t is not None]
        for obj in (self.fbo, self.texture, *tables, self.vao, self.program):
            obj.release()

    def _draw(self) -> None:
        if self.storage == "texture":
            self._static.use(_UNIT_STATIC)
            self._frame.use(_UNIT_FRAME)
            self._set("u_static", _UNIT_STATIC)
            self._set("u_frame", _UNIT_FRAME)
        else:
            # Binding points belong to the context, not the program: bind at each draw.
            self._bind("FrameTable", self._frame, _BLOCK_FRAME)
            if self._static is not None:
                self._bind("StaticTable", self._static, _BLOCK_STATIC)
        self.fbo.use()
        self.vao.render(moderngl.TRIANGLES, vertices=3)

    def _write_frame_table(self, value: np.ndarray) -> None:
        table = _rows(value)
        if table.shape[0] != self.frame_vecs:
            raise ShaderError(
                f"per-frame table has {table.shape[0]} rows, the program expects {self.frame_vecs}"
            )
        self._frame.write(_texture_rows(table) if self.storage == "texture" else table.tobytes())

    def _bind(self, block: str, buffer: moderngl.Buffer, binding: int) -> None:
        # A table the shader does not read is optimised out with its block.
        member = self.program.get(block, None)
        if member is not None:
            member.binding = binding
            buffer.bind_to_uniform_block(binding)

    def _set(self, name: str, value) -> None:
        member = self.program.get(name, None)  # `in` walks every member (no __contains__)
        if member is not None:
            member.value = value


def _choose(ctx: moderngl.Context, program: GLProgram, static: np.ndarray, storage: str) -> str:
    """The storage for this program's static table (see `GLGenerator`)."""
    block_bytes = int(ctx.info["GL_MAX_UNIFORM_BLOCK_SIZE"])
    frame_fits = 16 * program.frame_vecs <= block_bytes
    possible = {
        "constant": program.constant_indices and len(static) <= CONSTANT_ROWS and frame_fits,
        "uniform": 16 * len(static) <= block_bytes and frame_fits,
        "texture": True,
    }
    if storage == "auto":
        return next(s for s in STORAGES if possible[s])
    if storage not in possible:
        raise ShaderError(f"unknown table storage '{storage}', expected auto or one of {STORAGES}")
    if not possible[storage]:
        raise ShaderError(
            f"{program.shader_path}: a static table of {len(static)} vec4 and a per-frame "
            f"one of {program.frame_vecs} cannot be stored as {storage} here"
        )
    return storage


def _prelude(program: GLProgram, storage: str) -> str:
    """The program's defines, its tables' declarations and accessors
    (`static_vec(i)`, `frame_vec(i)`) and its generated functions."""
    lines = [f"#define {name} {value}" for name, value in program.defines.items()]
    rows, frame_rows = len(program.static), max(program.frame_vecs, 1)
    if storage == "texture":
        lines += [
            "uniform sampler2D u_static;",
            "uniform sampler2D u_frame;",
            f"vec4 static_vec(int i) {{ return texelFetch(u_static, "
            f"ivec2(i % {TABLE_ROW}, i / {TABLE_ROW}), 0); }}",
            f"vec4 frame_vec(int i) {{ return texelFetch(u_frame, "
            f"ivec2(i % {TABLE_ROW}, i / {TABLE_ROW}), 0); }}",
        ]
    else:
        lines += [
            f"layout(std140) uniform FrameTable {{ vec4 u_frame[{frame_rows}]; }};",
            "#define frame_vec(i) u_frame[i]",
        ]
        if storage == "uniform":
            lines += [
                f"layout(std140) uniform StaticTable {{ vec4 u_static[{rows}]; }};",
                "#define static_vec(i) u_static[i]",
            ]
        else:
            values = ",\n".join(
                "vec4(" + ", ".join(str(x) for x in row) + ")" for row in program.static
            )
            lines += [
                f"const vec4 STATIC_TABLE[{rows}] = vec4[{rows}](\n{values});",
                "#define static_vec(i) STATIC_TABLE[i]",
            ]
    return "\n".join([*lines, program.functions])


def _rows(table: np.ndarray) -> np.ndarray:
    """A table as contiguous (N, 4) float32 (std140 vec4 arrays are exactly this)."""
    array = np.ascontiguousarray(table, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ShaderError(f"a generator table must be (N, 4) float32, got {array.shape}")
    return array


def _texture_rows(table: np.ndarray) -> bytes:
    """(N, 4) rows laid out TABLE_ROW texels a row, zero-padded to whole rows."""
    padded = np.zeros((max(1, -(-len(table) // TABLE_ROW)) * TABLE_ROW, 4), np.float32)
    padded[: len(table)] = table
    return padded.tobytes()


def _table_texture(
    ctx: moderngl.Context, count: int, table: np.ndarray | None = None
) -> moderngl.Texture:
    """An RGBA32F texture with room for `count` rows (holding `table` when given),
    read with texelFetch: nearest, no mipmaps (a mipmap filter would leave it
    incomplete, and an incomplete texture reads as zeros)."""
    texture = ctx.texture((TABLE_ROW, max(1, -(-count // TABLE_ROW))), 4, dtype="f4")
    texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
    if table is not None:
        texture.write(_texture_rows(table))
    return texture
