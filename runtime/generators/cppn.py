"""The weightless default generator: a latent-conditioned neural field (CPPN).

Every pixel's coordinates, lifted by random Fourier features, run through a small
MLP whose layers are modulated (FiLM) by a latent vector. The seed fixes every
weight and a loop of keyframe latents; walking the loop morphs the image smoothly.
It needs no weights file and runs on CUDA when present, else on the CPU.

Options (in `[generator]`): `keyframes` (latents on the walk loop, default 6),
`width` (hidden units, default 32), `depth` (hidden layers, default 4).
"""

from __future__ import annotations

import itertools
import math

import torch

from runtime.errors import GeneratorError
from runtime.generators.base import Control, Params, defaults
from runtime.generators.latent import catmull_rom, walk_controls
from runtime.show import GeneratorConfig

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
        z = self._latent(value)  # (D,)
        if params.latent_offset is not None:
            z = z + _offset(params.latent_offset, z)
        return self._render_z(z, value, params.t_s)

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

    def _render_z(self, z: torch.Tensor, value: dict[str, float], t_s: float) -> torch.Tensor:
        """The field for latent z (D,) at control values `value`: (3, H, W) in [0, 1]."""
        xy = self._coords(value, t_s)  # (N, 2)
        h = self._features(xy, value["gen.detail"])  # (N, in_dim)
        for layer, (w, b, film) in enumerate(zip(self.weights, self.biases, self.film)):
            scale, shift = (z @ film).chunk(2)  # (W,), (W,)
            pre = (h @ w + b) * (1.0 + scale) + shift  # (N, W)
            # A periodic first layer makes repeating motifs; tanh after it makes
            # crisp-edged shapes.
            h = torch.sin(pre) if layer == 0 else torch.tanh(pre)
        hue, light, chroma = torch.tanh(h @ self.out).unbind(1)  # (N,) each, in -1..1
        # At most about one turn around the palette: gradients, not banding.
        shift = z @ self.palette_hue  # ()
        phase = self.palette_freq[:, None] * 0.6 * hue[None] + self.palette_phase[:, None] + shift
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
        angle = value["gen.rotate"]
        c, s = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[c, s], [-s, c]], device=self.device)
        xy = (self._grid @ rot) / max(value["gen.zoom"], 1e-3)  # (N, 2)
        warp = value["gen.warp"]
        if warp > 0:
            drift = t_s * value["gen.flow"]
            xy = xy + warp * torch.sin(xy @ self.warp_dirs * 2.0 + drift)[:, [1, 0]]
        return xy

    def _features(self, xy: torch.Tensor, detail: float) -> torch.Tensor:
        r = xy.norm(dim=1, keepdim=True)  # (N, 1)
        proj = xy @ self.freqs * detail  # (N, F)
        return torch.cat([xy, r, torch.sin(proj), torch.cos(proj)], 1)  # (N, 3 + 2F)


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
