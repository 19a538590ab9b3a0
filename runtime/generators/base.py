"""The generator protocol: controls in, a frame tensor out.

A generator knows torch and nothing of windows or GL. The frame loop sends it a
`Params` (values for its controls, the frame's time) and takes back an image tensor.
Every control is a mapping target; its name is dotted (`latent.position`,
`gen.zoom`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class Control:
    """One mappable generator control.

    Attributes:
        name: the target name, e.g. "latent.speed".
        default: value when nothing maps to it.
        lo, hi: the useful range (mapping output ranges are checked against it;
            values outside are clamped by the generator where it matters).
        doc: one line for `run_show.py targets`.
        integrates: when set, this control is a rate per second: the mapping engine
            integrates it over frame time into a state value of that name (e.g.
            "latent.speed" integrates into "latent.phase"), so motion is frame-rate
            independent and exact offline.
        steps: when set, this control is a trigger: each rise above 0.5 adds 1 to
            the state of that name, glided in over `glide_s` seconds (e.g.
            "latent.hop" steps "latent.phase": a beat-synced hop to the next
            keyframe).
        glide_s: how long a step takes to arrive.
    """

    name: str
    default: float
    lo: float
    hi: float
    doc: str
    integrates: str | None = None
    steps: str | None = None
    glide_s: float = 0.25


@dataclass(frozen=True)
class Params:
    """Control values for one frame.

    Attributes:
        frame: the frame index since the show began.
        t_s: the frame's time in seconds (monotonic live, frame / fps offline).
        values: every control's value, plus integrated states (e.g. "latent.phase").
        latent_offset: an offset added to the generator's latent, in the space its
            `steer_latent` returns (same shape; e.g. a CLIP steering worker's pull
            towards a prompt); None renders exactly as without it.
    """

    frame: int
    t_s: float
    values: Mapping[str, float] = field(default_factory=dict)
    latent_offset: torch.Tensor | None = None

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def get(self, name: str, default: float = 0.0) -> float:
        """The value of `name`, or `default`. Thread: any."""
        return self.values.get(name, default)


@dataclass(frozen=True, eq=False)
class GLProgram:
    """A generator as a GLSL fragment shader, for the render side to draw on its own
    GL context (runtime/render/gl_generator.py) instead of torch on the worker.

    Plain data: the generator knows no GL, the render side no torch. The shader reads
    two tables of vec4 through `static_vec(i)` (data that never changes: weights)
    and `frame_vec(i)` (the per-frame table the generator's `gl_uniforms` gives as
    `u_frame`); the render side declares both, choosing where they live.

    Attributes:
        shader_path: the fragment shader, written like a pass file
            (shaders/common.glsl gives it the vertex stage and `f_color`).
        size_px: (width, height) of frames.
        defines: compile-time integer constants (`#define NAME VALUE`).
        functions: generated GLSL the shader calls (may read both tables).
        static: (S, 4) float32, the static table.
        constant_indices: every `static_vec` index in the code is a compile-time
            constant, so the table may be baked into the source as constants.
        frame_vecs: rows of the per-frame table.
        uniforms: plain uniforms that never change (set once), by name.
    """

    shader_path: Path
    size_px: tuple[int, int]
    defines: Mapping[str, int]
    functions: str
    static: np.ndarray
    constant_indices: bool
    frame_vecs: int
    uniforms: Mapping[str, float | tuple[float, ...]] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """What every generator family provides.

    Attributes:
        kind: the show's `[generator] kind`.
        device: where it renders.
        size_px: (width, height) of its frames.
        controls: its mappable controls.
    """

    kind: str
    device: torch.device
    size_px: tuple[int, int]
    controls: tuple[Control, ...]

    def render(self, params: Params) -> torch.Tensor:
        """Render one frame.

        Args:
            params: control values; missing controls take their defaults.
        Returns:
            (3, H, W) float tensor in [0, 1] on `device`.
        Raises:
            GeneratorError: the model cannot render these params.
        Thread: the generator worker only (the model is not shared).
        """
        ...


def defaults(controls: tuple[Control, ...]) -> dict[str, float]:
    """Each control's default value by name. Thread: any."""
    return {c.name: c.default for c in controls}


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for `name`: "auto" takes CUDA when present, else the CPU;
    "gl" (a cppn drawn in a shader) keeps its weights on the CPU.

    Thread: any.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "gl":
        return torch.device("cpu")
    return torch.device(name)
