"""The weightless default generator: a latent-conditioned neural field (CPPN).

Every pixel's coordinates, lifted by random Fourier features, run through a small
MLP whose layers are modulated (FiLM) by a latent vector. The seed fixes every
weight and a loop of keyframe latents; walking the loop morphs the image smoothly.
It needs no weights file and runs on CUDA when present, else on the CPU; or, as a
GLSL fragment shader (shaders/generators/cppn.glsl), on the frame loop's GL
context: `gl_program` and `gl_uniforms` describe it for runtime/render/gl_generator.py,
and it draws the same picture.

Options (in `[generator]`): `keyframes` (latents on the walk loop, default 6),
`width` (hidden units, default 32), `depth` (hidden layers, default 4).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from runtime.errors import GeneratorError
from runtime.generators.base import Control, GLProgram, Params, defaults
from runtime.generators.latent import catmull_rom, walk_controls
from runtime.show import SHADER_DIR, GeneratorConfig

GL_SHADER_PATH = SHADER_DIR / "generators" / "cppn.glsl"
# Networks whose static table has at most this many vec4 rows (the default, 32 x 4,
# has about 1000) get their layers written out with constant table indices: the
# render side may then bake the weights into the code, which llvmpipe runs about
# four times faster than reading them (each read there is a per-lane gather).
# Bigger ones loop, keeping the code small.
UNROLL_ROWS = 2048

LATENT_DIM = 16
FOURIER_FEATURES = 12
DIRECTIONS = 4

CONTROLS = (
    *walk_controls(speed=0.08, glide_s=0.4),
    *(
        Control(f"latent.direction.{i}", 0.0, -3.0, 3.0, f"push along latent direction {i}")
        for i in range(DIRECTIONS)
    ),
    *(
        Control(
            f"latent.plane.{axis}",
            0.0,
            -2.0,
            2.0,
            f"move across the plane of keyframes: 1 adds keyframe {i + 1} minus keyframe 0",
        )
        for i, axis in enumerate("xyz")
    ),
    Control("gen.zoom", 1.0, 0.1, 8.0, "zoom into the field (>1 magnifies)"),
    Control("gen.rotate", 0.0, -math.pi, math.pi, "rotate the field, radians"),
    Control("gen.warp", 0.35, 0.0, 2.0, "domain warp amount"),
    Control("gen.detail", 1.0, 0.25, 4.0, "spatial frequency of the field"),
    Control("gen.flow", 0.1, 0.0, 2.0, "how fast the warp drifts with time, per second"),
)


class CppnGenerator:
    """A seeded random CPPN with a keyframe latent loop.

    Args:
        seed: fixes every weight and keyframe.
        size_px: (width, height) of frames.
        device: where to render.
        keyframes: latents on the walk loop.
        width: hidden units per layer.
        depth: hidden layers.
    Thread: build anywhere; render on the generator worker.
    """

    kind = "cppn"
    controls = CONTROLS

    def __init__(
        self,
        *,
        seed: int,
        size_px: tuple[int, int],
        device: torch.device,
        keyframes: int = 6,
        width: int = 32,
        depth: int = 4,
    ) -> None:
        self.device = device
        self.size_px = size_px
        self.width = width
        self.depth = depth
        self._defaults = defaults(CONTROLS)
        g = torch.Generator().manual_seed(seed)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g)

        in_dim = 3 + 2 * FOURIER_FEATURES  # x, y, r + sin/cos features
        # Fourier frequencies spread over octaves: coarse shapes and fine detail.
        octaves = 2.0 ** torch.linspace(-0.5, 2.0, FOURIER_FEATURES)
        self.freqs = (randn(2, FOURIER_FEATURES) * octaves).to(device)  # (2, F)
        self.warp_dirs = randn(2, 2).to(device)  # (2, 2)
        dims = [in_dim] + [width] * depth
        self.weights = [
            (randn(a, b) * (1.6 / math.sqrt(a))).to(device) for a, b in itertools.pairwise(dims)
        ]
        self.biases = [(randn(b) * 0.5).to(device) for b in dims[1:]]
        self.film = [
            (randn(LATENT_DIM, 2 * width) * (0.35 / math.sqrt(LATENT_DIM))).to(device)
            for _ in range(depth)
        ]
        self.out = (randn(width, 3) * (2.5 / math.sqrt(width))).to(device)  # (W, 3)
        # Colour: a cosine palette per seed (offset, amplitude, frequency, phase per
        # channel), shifted by the latent so the walk moves through hues.
        self.palette_phase = torch.rand(3, generator=g).to(device)  # (3,)
        self.palette_freq = (0.6 + 0.8 * torch.rand(3, generator=g)).to(device)  # (3,)
        self.palette_hue = (randn(LATENT_DIM) * (0.25 / math.sqrt(LATENT_DIM))).to(device)
        self.keys = randn(keyframes, LATENT_DIM).to(device)  # (K, D)
        directions = torch.linalg.qr(randn(LATENT_DIM, DIRECTIONS))[0].T  # (4, D) orthonormal
        directions = directions * math.sqrt(LATENT_DIM) * 0.5
        # The plane for hands: spanned by the first keyframes' differences (an axis
        # with no keyframe to span it stays still).
        plane = torch.zeros(3, LATENT_DIM)
        span = self.keys[1:4].cpu() - self.keys[0].cpu()  # (<= 3, D)
        plane[: len(span)] = span
        self.axes = torch.cat([directions, plane]).to(device)  # (4 + 3, D)
        self._grid_key: tuple[int, int] | None = None
        self._grid = torch.empty(0)

    def render(self, params: Params) -> torch.Tensor:
        """Render one frame: (3, H, W) float in [0, 1].

        Args:
            params: control values; `latent_offset`, when set, is added to the latent
                (a (LATENT_DIM,) tensor, as `steer_latent` returns).
        Returns:
            (3, H, W) float32 in [0, 1] on `device`.
        Raises:
            GeneratorError: the offset has the wrong shape.
        Thread: generator worker.
        """
        value = {**self._defaults, **params.values}
        return self._render_z(self._frame_latent(params, value), value, params.t_s)

    def steer_latent(self, params: Params) -> torch.Tensor:
        """The latent the walk gives for these params (walk, directions and plane),
        the one `render` feeds the field before adding `params.latent_offset`.

        Args:
            params: control values; missing controls take their defaults.
        Returns:
            (LATENT_DIM,) float32 on `device`, detached.
        Thread: the thread that owns this generator.
        """
        return self._latent({**self._defaults, **params.values}).detach()

    def render_latent(self, latent: torch.Tensor, params: Params) -> torch.Tensor:
        """Render with `latent` in place of the walk's latent, differentiably.

        Every other control (zoom, warp, time, ...) comes from `params` as in
        `render`; `params.latent_offset` is ignored (add it to `latent`), so
        `render_latent(steer_latent(p), p)` equals `render(p)` for an offset-free p.

        Args:
            latent: (LATENT_DIM,) float tensor; gradients flow back to it.
            params: every other control value.
        Returns:
            (3, H, W) float32 in [0, 1] on `device`.
        Raises:
            GeneratorError: the latent has the wrong shape.
        Thread: the thread that owns this generator.
        """
        if tuple(latent.shape) != (LATENT_DIM,):
            raise GeneratorError(
                f"cppn latent has shape {tuple(latent.shape)}, expected ({LATENT_DIM},)"
            )
        value = {**self._defaults, **params.values}
        return self._render_z(latent.to(self.device, torch.float32), value, params.t_s)

    def gl_program(self) -> GLProgram:
        """This field as a GLSL fragment shader (shaders/generators/cppn.glsl): its
        weights packed into a table of vec4 and its layers as generated GLSL.

        The static table holds, at the offsets the defines name: the warp
        directions (w00, w01, w10, w11); the palette (frequency * 0.6, phase); the
        Fourier frequencies, x then y, four features a row; the output weights;
        then per layer its biases and weights. Weights from `ni` input vec4s to
        `no` output vec4s are stored output block by output block, each as `ni`
        mat4 (four columns: one input unit to four output units). Units are padded
        to fours with zeros (exact: a zero unit stays zero). Layer 0's rows follow
        the shader's feature order: (x, y, r, 0), the sines, then the cosines.

        Returns:
            The program; frames need `gl_uniforms` for their per-frame values.
        Thread: any (reads the weights, on any device).
        """
        width4 = _fours(self.width)
        features4 = _fours(FOURIER_FEATURES)
        in4 = 1 + 2 * features4
        freqs = _pad_cols(self.freqs, 4 * features4)  # (2, 4 * F4)
        first = torch.zeros(4 * in4, self.width)  # layer 0's rows in the shader's order
        first[:3] = self.weights[0][:3].cpu()
        sines, cosines = 4, 4 + 4 * features4
        first[sines : sines + FOURIER_FEATURES] = self.weights[0][3 : 3 + FOURIER_FEATURES].cpu()
        first[cosines : cosines + FOURIER_FEATURES] = self.weights[0][3 + FOURIER_FEATURES :].cpu()
        palette = torch.stack([self.palette_freq * 0.6, self.palette_phase])  # (2, 3)
        head = {
            "CPPN_OFF_WARP": _pad_cols(self.warp_dirs.reshape(1, 4), 4),
            "CPPN_OFF_PALETTE": _pad_cols(palette, 4),
            # Row 2b: x's frequencies of features 4b..4b+3; row 2b + 1: y's.
            "CPPN_OFF_FREQ": freqs.reshape(2, features4, 4).transpose(0, 1).reshape(-1, 4),
            "CPPN_OFF_OUT": _mat4_blocks(self.out, 1),
        }
        layers = [
            torch.cat([_pad_cols(b[None], 4 * width4).reshape(width4, 4), _mat4_blocks(w, width4)])
            for w, b in zip([first, *self.weights[1:]], self.biases)
        ]
        defines = {}
        offset = 0
        for name, block in head.items():
            defines[name] = offset
            offset += block.shape[0]
        static = torch.cat([*head.values(), *layers]).numpy()  # (S, 4)
        unrolled = len(static) <= UNROLL_ROWS
        shape = _Shape(
            features4=features4,
            width4=width4,
            depth=self.depth,
            freq=defines.pop("CPPN_OFF_FREQ"),
            out=defines.pop("CPPN_OFF_OUT"),
            layer0=offset,
            layer0_rows=len(layers[0]),
        )
        width, height = self.size_px
        aspect = width / height
        return GLProgram(
            shader_path=GL_SHADER_PATH,
            size_px=self.size_px,
            defines=defines,
            functions=_field_glsl(shape, unrolled=unrolled),
            static=static,
            constant_indices=unrolled,
            frame_vecs=2 * width4 * self.depth,
            uniforms={
                "u_size": (float(width), float(height)),
                "u_grid_x": _linspace_terms(-aspect, aspect, width),
                "u_grid_y": _linspace_terms(1.0, -1.0, height),
            },
        )

    def gl_uniforms(self, params: Params) -> dict[str, float | tuple[float, ...] | np.ndarray]:
        """The per-frame values of `gl_program`'s shader for these params, computed as
        `render` computes them (the same float32 latent, FiLM and palette shift).

        Args:
            params: control values and time; `latent_offset` is added as in `render`.
        Returns:
            Uniform values by name; `u_frame` is the per-frame table,
            (frame_vecs, 4) float32: per layer the FiLM gain (1 + scale) then the
            shift, four units a row, zero-padded.
        Raises:
            GeneratorError: the offset has the wrong shape.
        Thread: the frame loop (a few small CPU ops; cheap).
        """
        value = {**self._defaults, **params.values}
        film, hue_shift = self._modulation(self._frame_latent(params, value))
        width4 = _fours(self.width)
        frame = torch.cat(
            [_pad_cols(t[None], 4 * width4).reshape(width4, 4) for pair in film for t in pair]
        )  # (2 * W4 * depth, 4)
        c, s, zoom, warp, drift = _view(value, t_s=params.t_s)
        return {
            "u_frame": frame.numpy(),
            "u_rotate": (c, s, -s, c),
            "u_zoom": zoom,
            "u_warp": warp,
            "u_drift": drift,
            "u_detail": value["gen.detail"],
            "u_hue_shift": float(hue_shift),
        }

    def _frame_latent(self, params: Params, value: dict[str, float]) -> torch.Tensor:
        """The walk's latent plus `params.latent_offset`: (D,)."""
        z = self._latent(value)  # (D,)
        if params.latent_offset is not None:
            z = z + _offset(params.latent_offset, z)
        return z

    def _modulation(
        self, z: torch.Tensor
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """What latent z (D,) sets: each layer's FiLM gain (1 + scale) and shift,
        (W,) each, and the palette's hue shift ()."""
        film = []
        for matrix in self.film:
            scale, shift = (z @ matrix).chunk(2)  # (W,), (W,)
            film.append((1.0 + scale, shift))
        return film, z @ self.palette_hue

    def _render_z(self, z: torch.Tensor, value: dict[str, float], t_s: float) -> torch.Tensor:
        """The field for latent z (D,) at control values `value`: (3, H, W) in [0, 1]."""
        xy = self._coords(value, t_s)  # (N, 2)
        h = self._features(xy, value["gen.detail"])  # (N, in_dim)
        film, hue_shift = self._modulation(z)
        for layer, (w, b, (gain, shift)) in enumerate(zip(self.weights, self.biases, film)):
            pre = (h @ w + b) * gain + shift  # (N, W)
            # A periodic first layer makes repeating motifs; tanh after it makes
            # crisp-edged shapes.
            h = torch.sin(pre) if layer == 0 else torch.tanh(pre)
        hue, light, chroma = torch.tanh(h @ self.out).unbind(1)  # (N,) each, in -1..1
        # At most about one turn around the palette: gradients, not banding.
        phase = (
            self.palette_freq[:, None] * 0.6 * hue[None] + self.palette_phase[:, None] + hue_shift
        )
        colour = 0.5 + 0.5 * torch.cos(2 * math.pi * phase)  # (3, N)
        grey = colour.mean(0, keepdim=True)  # (1, N)
        colour = grey + (colour - grey) * (1.0 + 0.35 * chroma)  # saturation
        colour = colour * (0.7 + 0.35 * light)  # light and shade
        width, height = self.size_px
        return colour.clamp(0.0, 1.0).reshape(3, height, width)

    def _latent(self, value: dict[str, float]) -> torch.Tensor:
        z = catmull_rom(self.keys, value.get("latent.phase", 0.0), value["latent.position"])
        coeffs = torch.tensor(
            [value[f"latent.direction.{i}"] for i in range(DIRECTIONS)]
            + [value[f"latent.plane.{axis}"] for axis in "xyz"],
            device=self.device,
        )
        return z + coeffs @ self.axes  # (D,)

    def _coords(self, value: dict[str, float], t_s: float) -> torch.Tensor:
        width, height = self.size_px
        if self._grid_key != (width, height):
            aspect = width / height
            ys = torch.linspace(1.0, -1.0, height, device=self.device)
            xs = torch.linspace(-aspect, aspect, width, device=self.device)
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            self._grid = torch.stack([gx, gy], -1).reshape(-1, 2)  # (N, 2)
            self._grid_key = (width, height)
        c, s, zoom, warp, drift = _view(value, t_s=t_s)
        rot = torch.tensor([[c, s], [-s, c]], device=self.device)
        xy = (self._grid @ rot) / zoom  # (N, 2)
        if warp > 0:
            xy = xy + warp * torch.sin(xy @ self.warp_dirs * 2.0 + drift)[:, [1, 0]]
        return xy

    def _features(self, xy: torch.Tensor, detail: float) -> torch.Tensor:
        r = xy.norm(dim=1, keepdim=True)  # (N, 1)
        proj = xy @ self.freqs * detail  # (N, F)
        return torch.cat([xy, r, torch.sin(proj), torch.cos(proj)], 1)  # (N, 3 + 2F)


def _view(value: dict[str, float], *, t_s: float) -> tuple[float, float, float, float, float]:
    """How the field is looked at: cos and sin of the rotation, the zoom divisor,
    the warp amount and its drift (radians) at time t_s."""
    angle = value["gen.rotate"]
    drift = t_s * value["gen.flow"]
    return math.cos(angle), math.sin(angle), max(value["gen.zoom"], 1e-3), value["gen.warp"], drift


def _fours(n: int) -> int:
    """How many vec4 hold n values."""
    return -(-n // 4)


def _pad_cols(t: torch.Tensor, cols: int) -> torch.Tensor:
    """(R, C) -> (R, cols) float32 on the CPU, zero-padded on the right."""
    return torch.nn.functional.pad(t.detach().cpu().float(), (0, cols - t.shape[1]))


def _mat4_blocks(w: torch.Tensor, out4: int) -> torch.Tensor:
    """Weights (I, O) as the shader's mat4 columns: for each output block j, each
    input block i, each input unit k of it, the row w[4i + k, 4j : 4j + 4];
    zero-padded to 4 * out4 outputs and to whole input blocks.

    Returns:
        (out4 * in4 * 4, 4) float32, in4 = ceil(I / 4).
    """
    in4 = _fours(w.shape[0])
    padded = torch.zeros(4 * in4, 4 * out4)
    padded[: w.shape[0], : w.shape[1]] = w.detach().cpu().float()
    # (i, k, j, c) -> (j, i, k, c): output block, input block, input unit, output lane.
    return padded.reshape(in4, 4, out4, 4).permute(2, 0, 1, 3).reshape(-1, 4)


@dataclass(frozen=True)
class _Shape:
    """The network as the generated GLSL sees it: vec4 counts and table rows."""

    features4: int  # vec4s of Fourier features (sines, and as many cosines)
    width4: int  # hidden vec4s per layer
    depth: int
    freq: int  # the Fourier frequencies' row
    out: int  # the output weights' row
    layer0: int  # layer 0's row (its biases, then its weights)
    layer0_rows: int  # where layer 1 starts, after layer 0

    @property
    def in4(self) -> int:
        """Feature vec4s: (x, y, r, 0), the sines, the cosines."""
        return 1 + 2 * self.features4

    @property
    def stride(self) -> int:
        """Rows per layer after the first: biases, then width4 x width4 mat4."""
        return self.width4 + 4 * self.width4 * self.width4


def _field_glsl(shape: _Shape, *, unrolled: bool) -> str:
    """GLSL for `vec3 cppn_field(vec2 xy, float detail)`: the features of the
    (rotated, zoomed, warped) coordinates, every layer with its FiLM, then the
    output's tanh (hue, light, chroma), reading the tables `gl_program` lays out.
    It computes what `_features` and `_render_z` do: pre = (h @ w + b) * gain + shift.

    Unrolled, every loop is written out and every table index is a constant;
    otherwise loops over layers, output blocks and input blocks keep it small.
    """
    w4, f4 = shape.width4, shape.features4

    def repeat(var: str, count: int, body) -> str:
        if unrolled:
            return "".join(body(n) for n in range(count))
        return f"for (int {var} = 0; {var} < {count}; ++{var}) {{\n{body(var)}}}\n"

    def dense(out: str, inp: str, in4: int, base: list, film: list, act: str, j) -> str:
        # out[j] = act((sum_i W_ji inp[i] + b_j) * gain_j + shift_j), W_ji a mat4.
        def term(i) -> str:
            columns = ", ".join(
                f"static_vec({_index(*base, (1, w4), (4 * in4, j), (4, i), (1, k))})"
                for k in range(4)
            )
            return f"acc += mat4({columns}) * {inp}[{i}];\n"

        bias = f"static_vec({_index(*base, (1, j))})"
        gain = f"frame_vec({_index(*film, (1, j))})"
        shift = f"frame_vec({_index(*film, (1, w4), (1, j))})"
        return (
            "acc = vec4(0.0);\n"
            + repeat("i", in4, term)
            + f"{out}[{_index((1, j))}] = {act}((acc + {bias}) * {gain} + {shift});\n"
        )

    def layer(index, inp: str, out: str) -> str:
        # Layers after the first share a shape: row layer0 + layer0_rows + (l - 1) * stride.
        start = shape.layer0 + shape.layer0_rows - shape.stride
        base = [(1, start), (shape.stride, index)]
        film = [(2 * w4, index)]
        return repeat("j", w4, lambda j: dense(out, inp, w4, base, film, "tanh", j))

    def features(b) -> str:
        fx = f"static_vec({_index((1, shape.freq), (2, b))})"
        fy = f"static_vec({_index((1, shape.freq + 1), (2, b))})"
        return (
            f"acc = (xy.x * {fx} + xy.y * {fy}) * detail;\n"
            f"features[{_index((1, 1), (1, b))}] = sin(acc);\n"
            f"features[{_index((1, 1 + f4), (1, b))}] = cos(acc);\n"
        )

    lines = [
        "vec3 cppn_field(vec2 xy, float detail) {",
        "vec4 acc;",
        f"vec4 features[{shape.in4}];",
        "features[0] = vec4(xy, length(xy), 0.0);",
        repeat("b", f4, features),
        f"vec4 h0[{w4}];",
    ]
    # Layer 0 is periodic (sin), over the features.
    first = [(1, shape.layer0)]
    lines.append(repeat("j", w4, lambda j: dense("h0", "features", shape.in4, first, [], "sin", j)))
    if unrolled:
        for index in range(1, shape.depth):
            lines += [f"vec4 h{index}[{w4}];", layer(index, f"h{index - 1}", f"h{index}")]
        last = f"h{shape.depth - 1}"
    else:
        body = f"vec4 next[{w4}];\n{layer('l', 'h0', 'next')}h0 = next;\n"
        lines.append(f"for (int l = 1; l < {shape.depth}; ++l) {{\n{body}}}")
        last = "h0"

    def output(i) -> str:
        columns = ", ".join(
            f"static_vec({_index((1, shape.out), (4, i), (1, k))})" for k in range(4)
        )
        return f"acc += mat4({columns}) * {last}[{i}];\n"

    lines += ["acc = vec4(0.0);", repeat("i", w4, output), "return tanh(acc.xyz);", "}"]
    return "\n".join(lines) + "\n"


def _index(*parts: tuple[int, int | str]) -> str:
    """sum(coefficient * term) as GLSL: numbers folded into one constant, loop
    variables kept."""
    constant = sum(c * t for c, t in parts if isinstance(t, int))
    terms = [t if c == 1 else f"{c} * {t}" for c, t in parts if isinstance(t, str) and c]
    if constant or not terms:
        terms.append(str(constant))
    return " + ".join(terms).replace("+ -", "- ")


def _linspace_terms(start: float, end: float, steps: int) -> tuple[float, float, float, float]:
    """torch.linspace's float32 terms for the shader to recompute it per pixel:
    (start, end, step, halfway). Before `halfway` a value is start + step * i, from
    it end - step * (steps - 1 - i) (torch fuses these into one rounding; the
    shader may not, a difference of at most an ulp)."""
    first, last = np.float32(start), np.float32(end)
    if steps == 1:
        return float(first), float(first), 0.0, 1.0
    step = np.float32((last - first) / np.float32(steps - 1))
    return float(first), float(last), float(step), float(steps // 2)


def _offset(offset: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A latent offset checked against z's shape, detached, on z's device and dtype."""
    if tuple(offset.shape) != tuple(z.shape):
        raise GeneratorError(
            f"cppn latent offset has shape {tuple(offset.shape)}, expected {tuple(z.shape)}"
        )
    return offset.detach().to(z.device, z.dtype)


def build(config: GeneratorConfig, device: torch.device) -> CppnGenerator:
    """Build from a show's `[generator]` table.

    Raises:
        ConfigError: an unknown or bad option, naming the key.
    Thread: any.
    """
    t = config.options
    keyframes = t.take(
        "keyframes", int, 6, check=lambda v: None if 2 <= v <= 64 else "expected 2..64 keyframes"
    )
    width = t.take(
        "width", int, 32, check=lambda v: None if 4 <= v <= 256 else "expected 4..256 hidden units"
    )
    depth = t.take(
        "depth", int, 4, check=lambda v: None if 1 <= v <= 12 else "expected 1..12 layers"
    )
    t.finish()
    return CppnGenerator(
        seed=config.seed,
        size_px=config.size_px,
        device=device,
        keyframes=keyframes,
        width=width,
        depth=depth,
    )
