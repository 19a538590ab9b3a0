"""Shader pass files: their mappable uniforms (read from the text, no GL needed) and
their compilation into programs (with the file's own line numbers in errors).

A pass file is a GLSL fragment shader. `shaders/common.glsl` supplies the vertex
stage and helpers. A uniform becomes a mapping target `shader.EFFECT.NAME` when its
declaration carries an annotation:

    uniform float u_decay;  // 0.9 [0, 0.995] how much of the trail survives
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ShaderError
from runtime.mapping.spec import Target
from runtime.show import SHADER_DIR, EffectConfig

GLSL_VERSION = "#version 330 core"
COMMON_PATH = SHADER_DIR / "common.glsl"

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ANNOTATED = re.compile(
    rf"^\s*uniform\s+(float|int)\s+u_(\w+)\s*;\s*//\s*({_NUM})\s*\[\s*({_NUM})\s*,\s*({_NUM})\s*\]\s*(.*)$"
)
_GL_LINE = re.compile(r"^\s*\d+:(\d+)\(\d+\):\s*(.*)$|^\s*ERROR:\s*\d+:(\d+):\s*(.*)$")


@dataclass(frozen=True)
class Uniform:
    """An annotated uniform: a pass's mappable control."""

    name: str
    glsl_type: str
    default: float
    lo: float
    hi: float
    doc: str


def read_uniforms(path: Path) -> tuple[Uniform, ...]:
    """The annotated uniforms of a pass file.

    Args:
        path: the pass's .glsl file.
    Returns:
        Its mappable uniforms, in file order.
    Raises:
        ShaderError: the file cannot be read, or an annotation's default lies
            outside its range (naming the file and line).
    Thread: any.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ShaderError(f"{path}: cannot read shader ({exc.strerror})") from None
    uniforms = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _ANNOTATED.match(line)
        if not m:
            continue
        glsl_type, name, default, lo, hi, doc = m.groups()
        uniform = Uniform(name, glsl_type, float(default), float(lo), float(hi), doc.strip())
        if not uniform.lo <= uniform.default <= uniform.hi:
            raise ShaderError(
                f"{path}:{number}: u_{name}: default {default} is outside its range [{lo}, {hi}]"
            )
        uniforms.append(uniform)
    return tuple(uniforms)


def shader_targets(effects: tuple[EffectConfig, ...]) -> dict[str, Target]:
    """Every effect's uniforms as mapping targets (`shader.EFFECT.NAME`).

    Raises:
        ShaderError: a pass file cannot be read.
    Thread: any.
    """
    targets = {}
    for effect in effects:
        for u in read_uniforms(effect.shader_path):
            name = f"shader.{effect.name}.{u.name}"
            targets[name] = Target(name, u.default, u.lo, u.hi, u.doc)
    return targets


def program_sources(path: Path, prelude: str = "") -> tuple[str, str]:
    """The vertex and fragment sources for a pass file.

    Args:
        path: the pass file.
        prelude: GLSL placed between common.glsl and the file (a generator's
            constants, tables and generated functions); none for effect passes.
            `#line` directives keep the file's own line numbers.
    Raises:
        ShaderError: a file cannot be read.
    Thread: any.
    """
    try:
        common = COMMON_PATH.read_text(encoding="utf-8")
        body = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ShaderError(f"{exc.filename}: cannot read shader ({exc.strerror})") from None
    vertex = f"{GLSL_VERSION}\n#define VERTEX_SHADER\n#line 1\n{common}"
    fragment = (
        f"{GLSL_VERSION}\n#define FRAGMENT_SHADER\n#line 1 1\n{common}\n"
        f"#line 1 2\n{prelude}\n#line 1 0\n{body}"
    )
    return vertex, fragment


def compile_program(ctx, path: Path, prelude: str = ""):
    """Compile and link a pass file into a moderngl Program.

    Args:
        ctx: a moderngl Context.
        path: the pass file.
        prelude: GLSL placed before the file's own (see `program_sources`).
    Returns:
        The program.
    Raises:
        ShaderError: naming the file and line of the first GLSL error (lines in
            common.glsl and in the prelude are named as such).
    Thread: the thread that owns `ctx`.
    """
    vertex, fragment = program_sources(path, prelude)
    try:
        return ctx.program(vertex_shader=vertex, fragment_shader=fragment)
    except Exception as exc:  # moderngl raises a bare Error with the driver's log
        raise ShaderError(_describe(path, str(exc))) from None


def _describe(path: Path, log: str) -> str:
    """Turn a driver log into 'file:line: message' (first error only)."""
    for raw in log.splitlines():
        m = _GL_LINE.match(raw)
        if m:
            line = m.group(1) or m.group(3)
            message = (m.group(2) or m.group(4)).strip()
            # Source string 1 is common.glsl, 2 the prelude (see program_sources).
            source = raw.lstrip()[:2]
            where = {"1:": COMMON_PATH, "2:": f"{path} (prelude)"}.get(source, path)
            return f"{where}:{line}: {message}"
    first = next((s.strip() for s in log.splitlines() if s.strip()), "unknown GLSL error")
    return f"{path}: {first}"
