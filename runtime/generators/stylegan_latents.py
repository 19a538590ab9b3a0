"""Latent tools for StyleGAN: control values -> per-layer latents (num_ws, w_dim).

Everything here runs on the CPU in float32 on tiny tensors (a latent is a few
thousand numbers), so the GPU stream carries only the synthesis.

The path from controls to latents, in order:
1. Walk: a closed loop of keyframes (seeds or saved latents) at
   `phase + position` keyframes (see runtime.generators.latent). "w" walks lerp in
   w, "w_smooth" is a Catmull-Rom curve in w, "z" slerps in z and maps each point.
   Each layer group (coarse, middle, fine) can stand at its own offset.
2. Style mixing: each layer group blends toward the walk at `latent.mix.position`.
3. Plane: offsets along keyframe differences (k1 - k0, k2 - k0, k3 - k0).
4. Truncation toward the mean w, on the first `truncation_cutoff` layers.
5. Directions: principal directions of w and user direction files, each with a
   coefficient for all layers and one per layer group.
6. Preset recall: a blend toward a saved latent.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from runtime.errors import ConfigError, GeneratorError
from runtime.files import replace_file
from runtime.generators.base import Control
from runtime.generators.latent import catmull_rom, loop_coordinate, slerp, walk_controls

log = logging.getLogger(__name__)

GROUPS = ("coarse", "middle", "fine")
WALKS = ("w", "w_smooth", "z")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def seed_z(seed: int, z_dim: int) -> torch.Tensor:
    """The z for a seed, as NVlabs' gen_images.py draws it (same seed, same image).

    Returns:
        (z_dim,) float32.
    Thread: any.
    """
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)[0].astype(np.float32))


def default_groups(num_ws: int) -> dict[str, tuple[int, int]]:
    """Coarse, middle and fine layer ranges [lo, hi): StyleGAN's 4/4/10 split of 18
    layers, scaled to `num_ws`. Thread: any."""
    b1 = max(1, round(num_ws * 4 / 18))
    b2 = min(max(b1 + 1, round(num_ws * 8 / 18)), num_ws - 1)
    return {"coarse": (0, b1), "middle": (b1, b2), "fine": (b2, num_ws)}


@dataclass(frozen=True)
class Keyframe:
    """A point on the walk loop.

    Attributes:
        label: where it came from ("seed 3", a file, "preset NAME").
        ws: (num_ws, w_dim) untruncated per-layer latent.
        z: (z_dim,) its z when it came from a seed, else None.
    """

    label: str
    ws: torch.Tensor
    z: torch.Tensor | None = None


def read_latent_array(path: Path, num_ws: int, w_dim: int, *, what: str) -> torch.Tensor:
    """Read a latent or direction from .npy or .npz (NVlabs projector output: key 'w').

    Accepted shapes: (w_dim,), (1, w_dim) for all layers alike; (num_ws, w_dim) or
    (1, num_ws, w_dim) per layer. Files are read with allow_pickle=False.

    Returns:
        (num_ws, w_dim) float32.
    Raises:
        ConfigError: missing, unreadable or wrongly shaped, naming the file.
    Thread: any.
    """
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                files = data.files
                key = "w" if "w" in files else (files[0] if len(files) == 1 else None)
                if key is None:
                    raise ConfigError(
                        f"{path}: {what} .npz needs one array or a 'w' array; has {files}"
                    )
                array = data[key]
        else:
            array = data
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a readable .npy/.npz {what} ({exc})") from None
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise ConfigError(f"{path}: {what} must be numbers, got dtype {array.dtype}")
    shape = array.shape
    if shape in ((w_dim,), (1, w_dim)):
        array = np.broadcast_to(array.reshape(1, w_dim), (num_ws, w_dim))
    elif shape in ((num_ws, w_dim), (1, num_ws, w_dim)):
        array = array.reshape(num_ws, w_dim)
    else:
        raise ConfigError(
            f"{path}: {what} has shape {shape}; expected ({w_dim},) or ({num_ws}, {w_dim}) "
            "for this model"
        )
    if not np.isfinite(array).all():
        raise ConfigError(f"{path}: {what} holds NaN or infinite values")
    return torch.from_numpy(np.array(array, dtype=np.float32))


def principal_directions(
    mapping: Callable[[torch.Tensor], torch.Tensor],
    *,
    z_dim: int,
    count: int,
    samples: int,
    seed: int,
    device: torch.device,
) -> torch.Tensor:
    """GANSpace-style principal directions of w: PCA over mapped random z.

    Args:
        mapping: z (N, z_dim) -> w (N, w_dim) on `device`.
        z_dim: latent size.
        count: how many directions (the largest variances first).
        samples: how many z to map.
        seed: fixes the samples.
        device: where to map.
    Returns:
        (count, w_dim) float32 on the CPU, each scaled to one standard deviation of
        w along it, its largest entry positive (a stable sign).
    Thread: any (takes a few seconds for large models; call at build time).
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, z_dim, generator=g)
    with torch.no_grad():
        w = torch.cat([mapping(chunk.to(device)).double().cpu() for chunk in z.split(4096)])
    w = w - w.mean(dim=0, keepdim=True)  # (S, D)
    cov = w.t() @ w / max(samples - 1, 1)  # (D, D)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(values, descending=True)[:count]
    dirs = vectors[:, order].t() * values[order].clamp_min(0).sqrt()[:, None]  # (count, D)
    signs = torch.sign(dirs.gather(1, dirs.abs().argmax(dim=1, keepdim=True)))
    return (dirs * signs).float()


class PresetStore:
    """Named latent snapshots in one .npz file (one (num_ws, w_dim) array per name).

    Entries from another model (another shape) are kept in the file untouched but
    not offered. Writes go to a temporary file renamed over the old one, so a
    crash never leaves half a file.

    Args:
        path: the .npz file (need not exist yet).
        num_ws, w_dim: this model's latent shape.
    Thread: the generator worker (one owner).
    """

    def __init__(self, path: Path, num_ws: int, w_dim: int) -> None:
        self.path = path
        self.shape = (num_ws, w_dim)
        self._all: dict[str, np.ndarray] = {}
        self.presets: dict[str, torch.Tensor] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file again (a missing file is an empty store).

        Raises:
            GeneratorError: the file exists but cannot be read.
        Thread: the owner.
        """
        self._all, self.presets = {}, {}
        if not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                self._all = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise GeneratorError(f"{self.path}: preset file is not readable ({exc})") from None
        for name, array in self._all.items():
            if array.shape == self.shape and array.dtype.kind == "f":
                self.presets[name] = torch.from_numpy(array.astype(np.float32))
            else:
                log.warning(
                    "%s: preset '%s' has shape %s, not %s (another model?); skipped",
                    self.path,
                    name,
                    array.shape,
                    self.shape,
                )

    def names(self) -> list[str]:
        """Usable preset names in file order (oldest first). Thread: the owner."""
        return list(self.presets)

    def save(self, name: str, ws: torch.Tensor) -> None:
        """Store `ws` under `name` (replacing one of that name) and write the file.

        Raises:
            GeneratorError: a bad name, a wrong shape, or the file cannot be written.
        Thread: the owner.
        """
        if not _NAME_RE.match(name):
            raise GeneratorError(f"preset name {name!r}: use 1-64 letters, digits, '_' or '-'")
        if tuple(ws.shape) != self.shape:
            raise GeneratorError(f"preset '{name}': shape {tuple(ws.shape)}, expected {self.shape}")
        array = ws.detach().cpu().float().numpy().copy()
        entries = {**self._all, name: array}
        buffer = io.BytesIO()
        np.savez(buffer, **entries)
        try:
            replace_file(self.path, buffer.getvalue())
        except OSError as exc:
            raise GeneratorError(f"{self.path}: cannot write presets ({exc.strerror})") from None
        self._all = entries
        self.presets[name] = torch.from_numpy(array)

    def next_name(self, prefix: str = "take") -> str:
        """The first unused `prefix-N`. Thread: the owner."""
        taken = {int(m.group(1)) for n in self._all if (m := re.match(rf"^{prefix}-(\d+)$", n))}
        return f"{prefix}-{max(taken, default=0) + 1}"


class LatentSpace:
    """Control values -> (num_ws, w_dim) latents; see the module doc for the order.

    Args:
        keyframes: the walk loop (at least one).
        walk: "w", "w_smooth" or "z" (needs every keyframe from a seed).
        w_avg: (w_dim,) mean w (truncation target).
        mapping: z (N, z_dim) -> w (N, w_dim) on the CPU (for "z" walks).
        groups: layer ranges [lo, hi) for "coarse", "middle", "fine".
        plane: keyframe indices (origin, x axis end, y axis end[, z axis end]).
        directions: (name, (num_ws, w_dim)) pairs: coefficient 1 adds the array.
        direction_docs: one doc line per direction.
        truncation: default psi.
        truncation_cutoff: layers truncated (None: all).
        presets: the preset store.
    Thread: the generator worker.
    """

    def __init__(
        self,
        *,
        keyframes: Sequence[Keyframe],
        walk: str,
        w_avg: torch.Tensor,
        mapping: Callable[[torch.Tensor], torch.Tensor],
        groups: Mapping[str, tuple[int, int]],
        plane: Sequence[int],
        directions: Sequence[tuple[str, torch.Tensor]],
        direction_docs: Sequence[str],
        truncation: float,
        truncation_cutoff: int | None,
        presets: PresetStore,
    ) -> None:
        if walk == "z" and any(k.z is None for k in keyframes):
            raise ValueError("a 'z' walk needs every keyframe to be a seed")
        self.keyframes = list(keyframes)
        self.walk = walk
        self.keys = torch.stack([k.ws for k in keyframes])  # (K, L, D)
        self.zs = torch.stack([k.z for k in keyframes]) if walk == "z" else None  # (K, Z)
        self.num_ws, self.w_dim = self.keys.shape[1:]
        self.w_avg = w_avg.float().cpu()
        self.mapping = mapping
        self.groups = dict(groups)
        origin = self.keys[plane[0]] if plane else None
        self.plane_axes = [self.keys[i] - origin for i in plane[1:]]  # each (L, D)
        self.direction_names = [name for name, _ in directions]
        self.directions = (
            torch.stack([d for _, d in directions])
            if directions
            else torch.zeros(0, self.num_ws, self.w_dim)
        )  # (M, L, D)
        self.direction_docs = list(direction_docs)
        self.truncation = truncation
        self.truncation_cutoff = truncation_cutoff
        self.presets = presets

    def controls(self) -> tuple[Control, ...]:
        """The latent controls (mapping targets). Thread: any."""
        out = [*walk_controls(speed=0.1, glide_s=0.3)]
        for group, (lo, hi) in self.groups.items():
            out.append(
                Control(
                    f"latent.{group}.position",
                    0.0,
                    -1.0,
                    1.0,
                    f"offset of the {group} layers ({lo}-{hi - 1}) along the loop, "
                    "fraction of the loop",
                )
            )
        out.append(
            Control(
                "latent.mix.position",
                0.5,
                0.0,
                1.0,
                "where on the loop the style-mixing source latent stands",
            )
        )
        for group, (lo, hi) in self.groups.items():
            out.append(
                Control(
                    f"latent.mix.{group}",
                    0.0,
                    0.0,
                    1.0,
                    f"style mixing: blend the {group} layers ({lo}-{hi - 1}) toward the mix source",
                )
            )
        axes = "xyz"[: len(self.plane_axes)]
        for i, axis in enumerate("xyz"):
            doc = (
                f"plane coordinate: moves by keyframe difference k{i + 1}-k0 (0 stays, 1 "
                "reaches it)"
                if axis in axes
                else "plane coordinate (no effect: the plane has fewer axes)"
            )
            out.append(Control(f"latent.plane.{axis}", 0.0, -2.0, 2.0, doc))
        out.append(
            Control(
                "gen.truncation",
                self.truncation,
                0.0,
                1.5,
                "truncation psi: 0 is the average image, 1 the full variety",
            )
        )
        for name, doc in zip(self.direction_names, self.direction_docs):
            lo, hi = (-4.0, 4.0) if name.isdigit() else (-10.0, 10.0)
            out.append(Control(f"latent.direction.{name}", 0.0, lo, hi, doc))
            for group, (g_lo, g_hi) in self.groups.items():
                out.append(
                    Control(
                        f"latent.direction.{name}.{group}",
                        0.0,
                        lo,
                        hi,
                        f"direction {name} on the {group} layers ({g_lo}-{g_hi - 1}) only",
                    )
                )
        out += [
            Control(
                "latent.preset.select",
                0.0,
                0.0,
                63.0,
                "which saved preset latent.preset.amount recalls (index in the preset file)",
            ),
            Control(
                "latent.preset.amount",
                0.0,
                0.0,
                1.0,
                "blend toward the selected preset (1 recalls it exactly)",
            ),
            Control(
                "latent.preset.save",
                0.0,
                0.0,
                1.0,
                "trigger: save the current latent as a new preset (take-N)",
                steps="latent.preset.saves",
                glide_s=0.0,
            ),
        ]
        return tuple(out)

    def ws(self, v: Mapping[str, float]) -> torch.Tensor:
        """The per-layer latent for control values `v` (every control present).

        Returns:
            (num_ws, w_dim) float32 on the CPU.
        Thread: the generator worker.
        """
        phase = float(v.get("latent.phase", 0.0))
        pos = v["latent.position"]
        group_pos = {g: pos + v[f"latent.{g}.position"] for g in self.groups}
        mix = {g: min(max(v[f"latent.mix.{g}"], 0.0), 1.0) for g in self.groups}
        mix_pos = v["latent.mix.position"]
        wanted = [pos, *group_pos.values()]
        if any(a > 0 for a in mix.values()):
            wanted.append(mix_pos)
        points = self._points(phase, wanted)
        out = points[pos].clone()  # (L, D)
        for g, (lo, hi) in self.groups.items():
            if group_pos[g] != pos:
                out[lo:hi] = points[group_pos[g]][lo:hi]
            if mix[g] > 0:
                out[lo:hi] = torch.lerp(out[lo:hi], points[mix_pos][lo:hi], mix[g])
        for axis, delta in zip("xyz", self.plane_axes):
            c = v[f"latent.plane.{axis}"]
            if c:
                out += c * delta
        psi = v["gen.truncation"]
        if psi != 1.0:
            cut = self.truncation_cutoff if self.truncation_cutoff is not None else self.num_ws
            out[:cut] = self.w_avg + psi * (out[:cut] - self.w_avg)
        out = self._apply_directions(out, v)
        amount = min(max(v["latent.preset.amount"], 0.0), 1.0)
        names = self.presets.names()
        if amount > 0 and names:
            index = min(max(round(v["latent.preset.select"]), 0), len(names) - 1)
            out = torch.lerp(out, self.presets.presets[names[index]], amount)
        return out

    def _points(self, phase: float, positions: Sequence[float]) -> dict[float, torch.Tensor]:
        """The walk's untruncated latent at each position: {position: (L, D)}."""
        unique = list(dict.fromkeys(positions))
        if self.walk == "w":
            out = {}
            for p in unique:
                i, f = loop_coordinate(phase, p, len(self.keyframes))
                nxt = (i + 1) % len(self.keyframes)
                out[p] = torch.lerp(self.keys[i], self.keys[nxt], f) if f else self.keys[i]
            return out
        if self.walk == "w_smooth":
            flat = self.keys.reshape(len(self.keyframes), -1)  # (K, L*D)
            return {p: catmull_rom(flat, phase, p).reshape(self.num_ws, self.w_dim) for p in unique}
        assert self.zs is not None
        zs = []
        for p in unique:
            i, f = loop_coordinate(phase, p, len(self.keyframes))
            zs.append(slerp(self.zs[i], self.zs[(i + 1) % len(self.keyframes)], f))
        with torch.no_grad():
            w = self.mapping(torch.stack(zs))  # (P, D)
        return {p: w[j].expand(self.num_ws, self.w_dim) for j, p in enumerate(unique)}

    def _apply_directions(self, out: torch.Tensor, v: Mapping[str, float]) -> torch.Tensor:
        if not self.direction_names:
            return out
        coeffs = torch.zeros(self.num_ws, len(self.direction_names))  # (L, M)
        used = False
        for m, name in enumerate(self.direction_names):
            c = v[f"latent.direction.{name}"]
            if c:
                coeffs[:, m] += c
                used = True
            for g, (lo, hi) in self.groups.items():
                cg = v[f"latent.direction.{name}.{g}"]
                if cg:
                    coeffs[lo:hi, m] += cg
                    used = True
        if not used:
            return out
        return out + torch.einsum("lm,mld->ld", coeffs, self.directions)


def check_groups(groups: Mapping[str, tuple[int, int]], num_ws: int) -> str | None:
    """An error text when layer ranges leave [0, num_ws) or are empty. Thread: any."""
    for name, (lo, hi) in groups.items():
        if not 0 <= lo < hi <= num_ws:
            return (
                f"layer group '{name}' = [{lo}, {hi - 1}] must lie within 0..{num_ws - 1} "
                "(first and last layer, inclusive)"
            )
    return None


def direction_name(path: Path) -> str:
    """A target-safe name from a direction file's stem ("Smile v2.npy" -> "smile_v2").

    Thread: any.
    """
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    if not name or name.isdigit():
        name = f"file_{name}" if name else "file"
    return name
