"""StyleGAN2/StyleGAN3 generator: a checkpoint, latent tools as controls, frames out.

The show names the weights (`[generator] weights`, a .pkl/.pt/.safetensors file;
see stylegan_load), which load without running any code from the file. Latent
controls (walk, per-layer groups, style mixing, plane, truncation, directions,
presets) are described in stylegan_latents and listed by `run_show.py targets`.

Options (in `[generator]`):
- `keyframes`: a count of seeds (default 6: seeds seed, seed+1, ...) or a list
  whose entries are seeds (ints), latent files (".npy"/".npz" paths: (w_dim,) or
  (num_ws, w_dim); NVlabs projector output works) or preset names.
- `walk`: "w" (lerp in w, default), "w_smooth" (Catmull-Rom in w), "z" (slerp in
  z; seeds only).
- `truncation` (default psi, 0.7), `truncation_cutoff` (layers truncated; all).
- `noise`: "const" (default), "random" (new noise each frame, seeded by the frame),
  "animated" (a smooth loop through noise fields), "none". StyleGAN2 only.
- `directions`: how many principal directions of w to compute at load (default 8;
  0 for none), from `direction_samples` mapped z (default 10000).
- `direction_files`: .npy directions ((w_dim,) or (num_ws, w_dim)); each becomes
  `latent.direction.<file stem>`.
- `layer_groups`: a table of inclusive layer ranges, e.g.
  `{ coarse = [0, 3], middle = [4, 7], fine = [8, 17] }` (default: StyleGAN's split).
- `plane`: keyframe indices spanning the plane, `[origin, x, y]` or
  `[origin, x, y, z]` (default the first three or four keyframes).
- `presets`: the preset file (default "<show name>.presets.npz" beside the show).
- `class_index`: the label of a conditional model (default 0).
- `fp16` (CUDA: the highest resolutions in float16 as the model allows; default
  true), `channels_last` (default true), `speed`: "auto" (CUDA graphs on CUDA,
  eager on the CPU), "eager", "graph", "compile" (torch.compile).
- `fit`: "crop" (default: centre crop to the frame's aspect, then resize) or
  "stretch".
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from runtime.config import Table
from runtime.errors import ConfigError, GeneratorError
from runtime.generators.base import Control, Params, defaults
from runtime.generators.stylegan_latents import (
    GROUPS,
    WALKS,
    Keyframe,
    LatentSpace,
    PresetStore,
    check_groups,
    default_groups,
    direction_name,
    principal_directions,
    read_latent_array,
    seed_z,
)
from runtime.generators.stylegan_load import StyleGANNetwork, load_network
from runtime.show import GeneratorConfig

log = logging.getLogger(__name__)

NOISE_MODES = ("const", "random", "animated", "none")
SPEED_MODES = ("auto", "eager", "graph", "compile")
FITS = ("crop", "stretch")


class StyleGANGenerator:
    """A StyleGAN2/3 network behind the generator protocol.

    Args:
        network: the loaded network (any device; moved to `device`).
        latents: the latent space (controls -> latents).
        device: where to render.
        size_px: (width, height) of frames.
        seed: fixes random noise per frame and the animated noise fields.
        noise_mode: "const", "random", "animated" or "none" (StyleGAN2).
        fp16: float16 where the model allows (CUDA only).
        channels_last: channels-last layout in the float16 blocks (CUDA only).
        speed: "auto", "eager", "graph" or "compile".
        fit: "crop" or "stretch".
    Thread: build anywhere; render on the generator worker.
    """

    kind = "stylegan"

    def __init__(
        self,
        network: StyleGANNetwork,
        latents: LatentSpace,
        *,
        device: torch.device,
        size_px: tuple[int, int],
        seed: int,
        noise_mode: str = "const",
        fp16: bool = True,
        channels_last: bool = True,
        speed: str = "auto",
        fit: str = "crop",
    ) -> None:
        self.device = device
        self.size_px = size_px
        self.seed = seed
        # Steering differentiates the image with respect to ws only: the weights
        # never need gradients.
        self.network = network.to(device).requires_grad_(False)
        cuda = device.type == "cuda"
        if cuda:
            # Every frame has the same shapes: let cuDNN time its algorithms once.
            torch.backends.cudnn.benchmark = True
        self.network.prepare(fp16=fp16 and cuda, channels_last=channels_last and cuda)
        self.latents = latents
        self.family = network.family
        self.noise_mode = noise_mode if network.noise_shapes() else "none"
        self.fit = fit
        self._const = [f.to(device) for f in network.const_noise()]
        self._alt: list[torch.Tensor] = []
        if self.noise_mode == "animated":
            g = torch.Generator().manual_seed(seed + 7919)
            self._alt = [
                torch.randn(1, 1, r, r, generator=g).to(device) for r in network.noise_shapes()
            ]
        self.controls = latents.controls() + self._image_controls()
        self._defaults = defaults(self.controls)
        self._saves_seen = 0
        self.preset_save_errors = 0
        if speed == "auto":
            speed = "graph" if cuda else "eager"
        if speed == "graph" and not cuda:
            log.info("CUDA graphs need a CUDA device; rendering eagerly on %s", device)
            speed = "eager"
        self.speed = speed
        self._runner = _Runner(self._forward, device, speed)

    # ---- the protocol -------------------------------------------------------------

    def render(self, params: Params) -> torch.Tensor:
        """Render one frame.

        Args:
            params: control values; missing controls take their defaults.
                `latent_offset`, when set, is a (num_ws, w_dim) offset added to the
                per-layer latent (the space `steer_latent` returns).
        Returns:
            (3, H, W) float in [0, 1] on `device`.
        Raises:
            GeneratorError: the model cannot render (e.g. CUDA out of memory), or the
                offset has the wrong shape.
        Thread: generator worker.
        """
        return self.render_batch([params])[0]

    def render_batch(self, params: Sequence[Params], max_batch: int | None = None) -> torch.Tensor:
        """Render several frames at once (offline renders).

        Args:
            params: one Params per frame, in order, each with its own
                `latent_offset` or none.
            max_batch: most frames per network call; default 8 on CUDA and 1 on the
                CPU, where bigger batches were slower per frame for StyleGAN3
                (benchmarks/bench_stylegan.py shows both).
        Returns:
            (N, 3, H, W) float in [0, 1] on `device`.
        Raises:
            GeneratorError: the model cannot render.
        Thread: generator worker.
        """
        if max_batch is None:
            max_batch = 8 if self.device.type == "cuda" else 1
        frames = []
        for start in range(0, len(params), max_batch):
            chunk = params[start : start + max_batch]
            values = [self._values(p) for p in chunk]
            ws = torch.stack([self.latents.ws(v) for v in values])  # (N, L, D)
            if any(p.latent_offset is not None for p in chunk):
                # Added on the device: the runner (and a CUDA graph) takes ws as
                # before, and the offset never makes a round trip to the host.
                ws = ws.to(self.device) + torch.stack([self._offset(p) for p in chunk])
            # The preset trigger saves the latent rendered, offset included.
            for v, w in zip(values, ws):
                self._maybe_save(v, w)
            inputs = (ws, *self._aux_inputs(values, [p.frame for p in chunk]))
            try:
                frames.append(self._runner(*inputs))
            except torch.cuda.OutOfMemoryError as exc:
                raise GeneratorError(f"out of GPU memory rendering {len(chunk)} frames") from exc
        return torch.cat(frames)

    # ---- latents and presets --------------------------------------------------------

    def latent(self, params: Params) -> torch.Tensor:
        """The per-layer latent these params give (without `params.latent_offset`).

        Returns (num_ws, w_dim) on the CPU.
        Thread: generator worker.
        """
        return self.latents.ws(self._values(params))

    def steer_latent(self, params: Params) -> torch.Tensor:
        """The per-layer latent (w+) that `render` feeds the synthesis network for
        these params, after truncation, directions and preset recall, before
        `params.latent_offset` is added.

        Args:
            params: control values; missing controls take their defaults.
        Returns:
            (num_ws, w_dim) float32 on `device`, detached.
        Thread: the thread that owns this generator.
        """
        return self.latent(params).to(self.device, torch.float32).detach()

    def render_latent(self, latent: torch.Tensor, params: Params) -> torch.Tensor:
        """Render with `latent` as the per-layer latent, differentiably.

        Every other control (noise, StyleGAN3's rotate and shift, the fit to
        `size_px`) comes from `params` as in `render`; `params.latent_offset` is
        ignored (add it to `latent`), so `render_latent(steer_latent(p), p)` equals
        `render(p)` for an offset-free p. Runs eagerly (no CUDA graph, no compile);
        on CUDA the float16 layers stay float16 and gradients flow through them.

        Args:
            latent: (num_ws, w_dim) float tensor; gradients flow back to it.
            params: every other control value.
        Returns:
            (3, H, W) float32 in [0, 1] on `device`.
        Raises:
            GeneratorError: the latent has the wrong shape, or CUDA ran out of memory.
        Thread: the thread that owns this generator.
        """
        shape = (self.latents.num_ws, self.latents.w_dim)
        if tuple(latent.shape) != shape:
            raise GeneratorError(f"latent has shape {tuple(latent.shape)}, expected {shape}")
        values = [self._values(params)]
        aux = [t.to(self.device) for t in self._aux_inputs(values, [params.frame])]
        ws = latent.to(self.device, torch.float32)[None]  # (1, L, D)
        try:
            return self._synthesize(ws, *aux)[0]
        except torch.cuda.OutOfMemoryError as exc:
            raise GeneratorError("out of GPU memory rendering a steering frame") from exc

    def save_preset(self, name: str, params: Params) -> None:
        """Save the latent of `params` as preset `name` in the preset file: the one
        rendered, `params.latent_offset` included.

        Raises:
            GeneratorError: a bad name, a wrong offset shape, or the file cannot be
                written.
        Thread: generator worker.
        """
        ws = self.latent(params)
        if params.latent_offset is not None:
            ws = ws + self._offset(params).to(ws.device)
        self.latents.presets.save(name, ws)

    # ---- internals -------------------------------------------------------------------

    def _image_controls(self) -> tuple[Control, ...]:
        out: list[Control] = []
        if self.noise_mode != "none":
            out.append(
                Control(
                    "gen.noise.strength",
                    1.0,
                    0.0,
                    4.0,
                    f"noise amount ({self.noise_mode} noise), 1 as trained",
                )
            )
        if self.noise_mode == "animated":
            out.append(
                Control(
                    "gen.noise.speed",
                    0.25,
                    -4.0,
                    4.0,
                    "animated noise, loops per second (integrates into gen.noise.phase)",
                    integrates="gen.noise.phase",
                )
            )
        if self.family == "stylegan3":
            out += [
                Control("gen.rotate", 0.0, -math.pi, math.pi, "rotate the image, radians"),
                Control("gen.shift.x", 0.0, -1.0, 1.0, "move the image right, in image widths"),
                Control("gen.shift.y", 0.0, -1.0, 1.0, "move the image down, in image heights"),
            ]
        return tuple(out)

    def _values(self, params: Params) -> dict[str, float]:
        return {**self._defaults, **params.values}

    def _offset(self, params: Params) -> torch.Tensor:
        """`params.latent_offset` checked, detached, as float32 on `device` (zeros
        when there is none): (num_ws, w_dim)."""
        shape = (self.latents.num_ws, self.latents.w_dim)
        offset = params.latent_offset
        if offset is None:
            return torch.zeros(shape, device=self.device)
        if tuple(offset.shape) != shape:
            raise GeneratorError(
                f"latent offset has shape {tuple(offset.shape)}, expected {shape} (num_ws, w_dim)"
            )
        return offset.detach().to(self.device, torch.float32)

    def _maybe_save(self, values: dict[str, float], ws: torch.Tensor) -> None:
        saves = math.floor(values.get("latent.preset.saves", 0.0) + 1e-6)
        if saves <= self._saves_seen:
            return
        self._saves_seen = saves
        store = self.latents.presets
        name = store.next_name()
        try:
            store.save(name, ws)
            log.info("saved preset '%s' to %s", name, store.path)
        except GeneratorError as exc:
            self.preset_save_errors += 1
            if self.preset_save_errors == 1:
                log.error("%s (the show goes on; later failures are only counted)", exc)

    def _aux_inputs(self, values: list[dict[str, float]], frames: list[int]) -> list[torch.Tensor]:
        """The tensors besides ws that `_forward` takes for this family and noise mode."""
        if self.family == "stylegan3":
            return [torch.stack([_inverse_transform(v) for v in values])]  # (N, 3, 3)
        if self.noise_mode in ("const", "animated"):
            coeffs = []
            for v in values:
                strength = v["gen.noise.strength"]
                angle = 2 * math.pi * v.get("gen.noise.phase", 0.0)
                if self.noise_mode == "const":
                    coeffs.append((strength, 0.0))
                else:
                    coeffs.append((strength * math.cos(angle), strength * math.sin(angle)))
            return [torch.tensor(coeffs, dtype=torch.float32)]  # (N, 2)
        if self.noise_mode == "random":
            fields = []
            for r in self.network.noise_shapes():
                per_frame = []
                for v, frame in zip(values, frames):
                    g = torch.Generator(device=self.device).manual_seed(
                        (self.seed * 1_000_003 + frame) % 2**63
                    )
                    per_frame.append(
                        torch.randn(1, 1, r, r, generator=g, device=self.device)
                        * v["gen.noise.strength"]
                    )
                fields.append(torch.cat(per_frame))  # (N, 1, R, R)
            return fields
        return []

    def _forward(self, ws: torch.Tensor, *aux: torch.Tensor) -> torch.Tensor:
        """Device tensors in, finished frames out: (N, 3, H, W) in [0, 1]."""
        with torch.no_grad():
            return self._synthesize(ws, *aux)

    def _synthesize(self, ws: torch.Tensor, *aux: torch.Tensor) -> torch.Tensor:
        """`_forward` without its no_grad: autograd records when it is enabled."""
        if self.family == "stylegan3":
            img = self.network.synthesize(ws, transform=aux[0])
        elif self.noise_mode in ("const", "animated"):
            coeffs = aux[0]  # (N, 2)
            a = coeffs[:, 0].reshape(-1, 1, 1, 1)
            noise = [a * c for c in self._const]
            if self._alt:
                b = coeffs[:, 1].reshape(-1, 1, 1, 1)
                noise = [n + b * alt for n, alt in zip(noise, self._alt)]
            img = self.network.synthesize(ws, noise)
        elif self.noise_mode == "random":
            img = self.network.synthesize(ws, list(aux))
        else:
            img = self.network.synthesize(ws, None)
        return self._finish(img)

    def _finish(self, img: torch.Tensor) -> torch.Tensor:
        """(N, C, R, R) in about -1..1 -> (N, 3, H, W) in [0, 1] at `size_px`."""
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        elif img.shape[1] > 3:
            img = img[:, :3]
        img = (img * 0.5 + 0.5).clamp(0.0, 1.0)
        width, height = self.size_px
        rows, cols = img.shape[2], img.shape[3]
        if self.fit == "crop" and width * rows != height * cols:
            if width * rows > height * cols:  # frame is wider: keep full width
                keep = max(1, round(cols * height / width))
                top = (rows - keep) // 2
                img = img[:, :, top : top + keep, :]
            else:
                keep = max(1, round(rows * width / height))
                left = (cols - keep) // 2
                img = img[:, :, :, left : left + keep]
        if img.shape[2] != height or img.shape[3] != width:
            img = F.interpolate(
                img, size=(height, width), mode="bilinear", align_corners=False, antialias=True
            ).clamp(0.0, 1.0)
        return img


def _inverse_transform(v: dict[str, float]) -> torch.Tensor:
    """The inverse of rotate-then-shift, as StyleGAN3's input transform expects."""
    angle, tx, ty = v["gen.rotate"], v["gen.shift.x"], v["gen.shift.y"]
    c, s = math.cos(angle), math.sin(angle)
    # Inverse of [[c, s, tx], [-s, c, ty], [0, 0, 1]]: transpose the rotation and
    # rotate the shift back.
    return torch.tensor(
        [[c, -s, -(c * tx - s * ty)], [s, c, -(s * tx + c * ty)], [0.0, 0.0, 1.0]],
        dtype=torch.float32,
    )


class _Runner:
    """Runs `fn` eagerly, as a captured CUDA graph per input shape, or compiled.

    A graph or compile failure is logged once and the runner goes on eagerly.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], device: torch.device, mode: str) -> None:
        self.fn = fn
        self.device = device
        self.mode = mode
        self._graphs: dict[tuple[Any, ...], tuple[list[torch.Tensor], Any, torch.Tensor]] = {}
        self._compiled = torch.compile(fn, dynamic=False) if mode == "compile" else None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "graph":
            try:
                return self._graphed(inputs)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # any capture failure: run eagerly instead
                log.warning("CUDA graph capture failed (%s); rendering eagerly", exc)
                self._graphs.clear()
                self.mode = "eager"
        on_device = [t.to(self.device, non_blocking=True) for t in inputs]
        if self.mode == "compile" and self._compiled is not None:
            try:
                return self._compiled(*on_device)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # a compiler failure: run eagerly instead
                log.warning("torch.compile failed (%s); rendering eagerly", exc)
                self.mode = "eager"
        return self.fn(*on_device)

    def _graphed(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        key = tuple((tuple(t.shape), t.dtype) for t in inputs)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(inputs)
            self._graphs[key] = entry
        static, graph, out = entry
        for buffer, value in zip(static, inputs):
            buffer.copy_(value, non_blocking=True)
        graph.replay()
        # The graph writes into the same output buffer on every replay; the frame
        # leaves this thread, so hand out a copy.
        return out.clone()

    def _capture(
        self, inputs: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], Any, torch.Tensor]:
        static = [t.to(self.device).clone() for t in inputs]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm up cuDNN/cuBLAS workspaces outside the graph
                self.fn(*static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.fn(*static)
        return static, graph, out


# ---- building from a show ------------------------------------------------------------


def build(config: GeneratorConfig, device: torch.device) -> StyleGANGenerator:
    """Build from a show's `[generator]` table.

    Raises:
        ConfigError: an unknown or bad option, naming the key.
        GeneratorError: the weights file is missing, corrupt, unsafe, or not a
            StyleGAN2/3 generator (the show then plays the default generator).
    Thread: any (loading a large model takes seconds: not the frame loop).
    """
    t = config.options
    base = t.file.parent
    keyframes_opt = t.take("keyframes", (int, list), 6, check=_check_keyframes)
    walk = t.take("walk", str, "w", check=_one_of(WALKS))
    truncation = t.take(
        "truncation", float, 0.7, check=lambda v: None if 0 <= v <= 1.5 else "expected 0..1.5"
    )
    cutoff = t.take("truncation_cutoff", int, None, check=lambda v: None if v >= 1 else ">= 1")
    noise_mode = t.take("noise", str, "const", check=_one_of(NOISE_MODES))
    n_dirs = t.take(
        "directions", int, 8, check=lambda v: None if 0 <= v <= 64 else "expected 0..64"
    )
    samples = t.take(
        "direction_samples",
        int,
        10000,
        check=lambda v: None if 100 <= v <= 1_000_000 else "expected 100..1000000",
    )
    dir_files = t.take("direction_files", list, [], check=_all_strings)
    groups_opt = t.take("layer_groups", dict, None)
    plane_opt = t.take("plane", list, None, check=_all_ints)
    presets_opt = t.take("presets", str, f"{t.file.stem}.presets.npz")
    class_index = t.take("class_index", int, 0, check=lambda v: None if v >= 0 else ">= 0")
    fp16 = t.take("fp16", bool, True)
    channels_last = t.take("channels_last", bool, True)
    speed = t.take("speed", str, "auto", check=_one_of(SPEED_MODES))
    fit = t.take("fit", str, "crop", check=_one_of(FITS))
    t.finish()
    if config.weights is None:
        raise GeneratorError("stylegan needs 'weights': a checkpoint path")

    network = load_network(config.weights)
    num_ws, w_dim = network.num_ws, network.w_dim
    label = None
    if network.c_dim > 0:
        if class_index >= network.c_dim:
            raise t.error("class_index", f"this model has {network.c_dim} classes (0..)")
        label = F.one_hot(torch.tensor(class_index), network.c_dim).float()
    mapping_cpu = network.mapping
    if device.type != "cpu":
        mapping_cpu = copy.deepcopy(network.mapping).cpu()

    def map_z(z: torch.Tensor, mapping: torch.nn.Module = mapping_cpu) -> torch.Tensor:
        c = None
        if label is not None:
            c = label.to(z.device).expand(z.shape[0], -1)
        with torch.no_grad():
            return mapping(z, c)

    presets = PresetStore(base / presets_opt, num_ws, w_dim)
    keyframes = _keyframes(t, keyframes_opt, config.seed, network, map_z, presets, base)
    if walk == "z" and any(k.z is None for k in keyframes):
        raise t.error("walk", "a 'z' walk needs every keyframe to be a seed")

    groups = default_groups(num_ws) if groups_opt is None else _groups(t, groups_opt, num_ws)
    if plane_opt is None:
        plane = list(range(min(len(keyframes), 4))) if len(keyframes) >= 2 else []
    else:
        plane = plane_opt
        if not 2 <= len(plane) <= 4 or not all(0 <= i < len(keyframes) for i in plane):
            raise t.error(
                "plane",
                f"expected 2 to 4 keyframe indices in 0..{len(keyframes) - 1}, got {plane}",
            )
    if cutoff is not None and cutoff > num_ws:
        raise t.error("truncation_cutoff", f"this model has {num_ws} layers")

    directions: list[tuple[str, torch.Tensor]] = []
    docs: list[str] = []
    if n_dirs:
        pca_mapping = network.mapping.to(device)
        pca = principal_directions(
            lambda z: map_z(z, pca_mapping),
            z_dim=network.z_dim,
            count=min(n_dirs, w_dim),
            samples=samples,
            seed=config.seed,
            device=device,
        )
        for i, d in enumerate(pca):
            directions.append((str(i), d.expand(num_ws, w_dim)))
            docs.append(f"principal direction {i} of w, in standard deviations")
    for path_s in dir_files:
        path = base / path_s
        try:
            vector = read_latent_array(path, num_ws, w_dim, what="direction")
        except ConfigError as exc:
            raise t.error("direction_files", str(exc)) from None
        name = direction_name(path)
        if any(n == name for n, _ in directions):
            raise t.error("direction_files", f"two direction files are named '{name}'")
        directions.append((name, vector))
        docs.append(f"user direction from {path.name}")

    latents = LatentSpace(
        keyframes=keyframes,
        walk=walk,
        w_avg=network.mapping.w_avg.detach().cpu(),
        mapping=map_z,
        groups=groups,
        plane=plane,
        directions=directions,
        direction_docs=docs,
        truncation=truncation,
        truncation_cutoff=cutoff,
        presets=presets,
    )
    return StyleGANGenerator(
        network,
        latents,
        device=device,
        size_px=config.size_px,
        seed=config.seed,
        noise_mode=noise_mode,
        fp16=fp16,
        channels_last=channels_last,
        speed=speed,
        fit=fit,
    )


def _keyframes(
    t: Table,
    option: int | list[Any],
    seed: int,
    network: StyleGANNetwork,
    map_z: Callable[[torch.Tensor], torch.Tensor],
    presets: PresetStore,
    base: Path,
) -> list[Keyframe]:
    entries: list[Any] = list(range(seed, seed + option)) if isinstance(option, int) else option
    num_ws, w_dim = network.num_ws, network.w_dim
    seeds = [e for e in entries if isinstance(e, int)]
    mapped = {}
    if seeds:
        zs = torch.stack([seed_z(s, network.z_dim) for s in seeds])  # (S, Z)
        ws = map_z(zs)  # (S, D)
        mapped = {s: (z, w) for s, z, w in zip(seeds, zs, ws)}
    out = []
    for entry in entries:
        if isinstance(entry, int):
            z, w = mapped[entry]
            out.append(Keyframe(f"seed {entry}", w.expand(num_ws, w_dim).clone(), z))
        elif entry.endswith((".npy", ".npz")):
            try:
                ws = read_latent_array(base / entry, num_ws, w_dim, what="latent")
            except ConfigError as exc:
                raise t.error("keyframes", str(exc)) from None
            out.append(Keyframe(entry, ws))
        elif entry in presets.presets:
            out.append(Keyframe(f"preset {entry}", presets.presets[entry].clone()))
        else:
            known = ", ".join(presets.names()) or "none saved yet"
            raise t.error(
                "keyframes",
                f"'{entry}' is not a seed, a .npy/.npz latent file or a preset in "
                f"{presets.path} (presets: {known})",
            )
    return out


def _groups(t: Table, option: dict[str, Any], num_ws: int) -> dict[str, tuple[int, int]]:
    groups = default_groups(num_ws)
    for name, value in option.items():
        if name not in GROUPS:
            raise t.error("layer_groups", f"unknown group '{name}'; groups: {', '.join(GROUPS)}")
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise t.error("layer_groups", f"'{name}' expects [first, last] layer indices")
        groups[name] = (value[0], value[1] + 1)
    problem = check_groups(groups, num_ws)
    if problem:
        raise t.error("layer_groups", problem)
    return groups


def _check_keyframes(value: Any) -> str | None:
    if isinstance(value, int):
        return None if 1 <= value <= 256 else "expected 1..256 keyframes"
    if not value:
        return "expected at least one keyframe"
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, int | str):
            return f"expected seeds (integers), latent files or preset names, got {entry!r}"
        if isinstance(entry, int) and not 0 <= entry < 2**32:
            return f"seed {entry} outside 0..4294967295"
    return None


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in options else f"expected one of {', '.join(options)}"

    return check


def _all_strings(value: Any) -> str | None:
    return None if all(isinstance(v, str) for v in value) else "expected an array of paths"


def _all_ints(value: Any) -> str | None:
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return None if ok else "expected an array of keyframe indices"
