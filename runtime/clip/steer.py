"""CLIP steering: gradient steps on the generator's latent towards the blended prompt.

Each step renders the generator at the walk's latent plus the current offset (the
generator's `render_latent`, differentiable), cuts it into random crops (Big
Sleep's augmentation: CLIP judges many views, not one it could be fooled on),
embeds them with CLIP and raises their mean cosine similarity to the prompt blend,
while a pull back towards the walk's own latent keeps the picture on the
generator's manifold. The result is an offset on the generator's latent; the
generator glides to each new one (`glide_s`), so a new prompt re-targets smoothly.

Live, steering runs on its own thread, paced by the clock: at most
`steps_per_frame` steps per frame at the show's fps, fewer when the machine is
slower, so the picture moves as fast as in an offline render. Offline, the
generator worker takes exactly `steps_per_frame` steps before each frame, with
crops drawn from a generator seeded by the frame: renders are frame-exact.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from typing import Protocol

import torch
import torch.nn.functional as F

from runtime.clip.model import ClipModel
from runtime.clip.prompts import PromptBook
from runtime.generators.base import Params
from runtime.show import ClipConfig

log = logging.getLogger(__name__)

#: The smallest crop, as a fraction of the image's shorter side.
MIN_CROP = 0.5


class Steerable(Protocol):
    """What a generator offers to be steered (every family does)."""

    device: torch.device

    def steer_latent(self, params: Params) -> torch.Tensor:
        """The walk's latent for these params, detached. Thread: any."""
        ...

    def render_latent(self, latent: torch.Tensor, params: Params) -> torch.Tensor:
        """(3, H, W) in 0..1 at `latent`, differentiable. Thread: any."""
        ...


def cutouts(
    image: torch.Tensor, *, count: int, size_px: int, generator: torch.Generator
) -> torch.Tensor:
    """Views of an image for CLIP: the whole image, then random square crops.

    Args:
        image: (3, H, W) in 0..1 (differentiable).
        count: how many views (the first is the whole image, squeezed square).
        size_px: CLIP's input side.
        generator: a CPU generator: the crops' sides, places and flips.
    Returns:
        (count, 3, size_px, size_px).
    Thread: any.
    """
    _, height, width = image.shape
    side_max = min(height, width)
    views = [F.interpolate(image[None], size=(size_px, size_px), mode="bilinear")]
    draws = torch.rand(count - 1, 4, generator=generator).tolist()  # side, x, y, flip
    for side_u, x_u, y_u, flip_u in draws:
        side = max(1, round(side_max * (MIN_CROP + (1.0 - MIN_CROP) * side_u)))
        top = round((height - side) * y_u)
        left = round((width - side) * x_u)
        crop = image[None, :, top : top + side, left : left + side]  # (1, 3, s, s)
        if flip_u < 0.5:
            crop = crop.flip(3)
        views.append(F.interpolate(crop, size=(size_px, size_px), mode="bilinear"))
    return torch.cat(views)  # (count, 3, S, S)


class Steering:
    """The steering worker and the offset the generator glides to.

    Args:
        clip: the CLIP model.
        book: the prompts.
        generator: the show's generator (shared with its worker; steering only
            reads its modules).
        config: the `[clip]` table.
        fps: the show's frame rate (the live pace).
        offline: True: steps run inside `apply`, a fixed number per frame.
        seed: the show's seed (crops are drawn from it).
    Thread: `start`, `stop`, `submit`, `status` on main; `apply` on the generator
        worker; the steps on this object's thread (live) or in `apply` (offline).
    """

    def __init__(
        self,
        clip: ClipModel,
        book: PromptBook,
        generator: Steerable,
        config: ClipConfig,
        *,
        fps: float,
        offline: bool,
        seed: int,
    ) -> None:
        self.clip = clip
        self.book = book
        self.generator = generator
        self.config = config
        self.offline = offline
        self.seed = seed
        self.step_interval_s = 1.0 / (config.steps_per_frame * fps)
        self._cond = threading.Condition()
        self._request: Params | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._offset: torch.Tensor | None = None  # the leaf being optimised
        self._optimiser: torch.optim.Adam | None = None
        self._result: torch.Tensor | None = None  # the newest offset, for the generator
        self._applied: torch.Tensor | None = None  # where the glide has got to
        self._applied_t_s = 0.0
        self.steps = 0
        self.similarity: float | None = None
        self.error: str | None = None
        self._stamps: deque[float] = deque(maxlen=16)

    # ---- the generator's side ------------------------------------------------------

    def apply(self, params: Params) -> Params:
        """The params with the glided steering offset, for the generator to render.

        Offline, first take `steps_per_frame` steering steps for this frame.

        Returns:
            `params` itself when there is nothing to add (strength 0, no result yet),
            else a copy with `latent_offset` set.
        Thread: the generator worker.
        """
        values = params.values
        if self.offline and self._active(values):
            for k in range(self.config.steps_per_frame):
                self._guarded_step(params, params.frame * self.config.steps_per_frame + k)
        with self._cond:
            result = self._result
        if result is None:
            return params
        applied = self._applied
        if applied is None or applied.shape != result.shape:
            applied = torch.zeros_like(result)
        dt_s = min(max(params.t_s - self._applied_t_s, 0.0), 1.0)
        glide = 1.0 if self.config.glide_s <= 0 else 1.0 - math.exp(-dt_s / self.config.glide_s)
        applied = applied + (result - applied) * glide
        self._applied, self._applied_t_s = applied, params.t_s
        strength = values.get("clip.strength", 1.0)
        if strength <= 0.0:
            return params
        return dataclasses.replace(params, latent_offset=applied * strength)

    # ---- one step ----------------------------------------------------------------------

    def step(self, params: Params, index: int) -> float | None:
        """One gradient step of the offset towards the blended prompt.

        Args:
            params: the frame whose walk latent and controls to steer from.
            index: the step's number: with the show's seed it draws the crops.
        Returns:
            The mean similarity of the views before the step, or None when there is
            nothing to steer towards (every prompt weight 0).
        Thread: the steering thread, or the generator worker offline.
        """
        self.book.refresh(self.clip)
        target = self.book.target(params.values)  # (D,)
        if target is None:
            return None
        latent = self.generator.steer_latent(params)  # (...) the walk's own
        # StyleGAN's (layers, w_dim) latent with `shared`: one row for every layer (w).
        shape = (1, latent.shape[1]) if self.config.shared and latent.dim() == 2 else latent.shape
        if self._offset is None or self._offset.shape != shape:
            self._offset = torch.zeros(shape, device=latent.device, requires_grad=True)
            self._optimiser = torch.optim.Adam([self._offset])
        assert self._optimiser is not None
        rms = float(latent.pow(2).mean().sqrt()) or 1.0
        lr = self.config.learning_rate * params.values.get("clip.speed", 1.0) * rms
        for group in self._optimiser.param_groups:
            group["lr"] = lr
        crops = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % 2**63)
        with torch.enable_grad():
            image = self.generator.render_latent(latent + self._offset, params)  # (3, H, W)
            image = image.to(self.clip.device)
            views = cutouts(
                image, count=self.config.cutouts, size_px=self.clip.image_px, generator=crops
            )  # (C, 3, S, S)
            similarity = (self.clip.encode_images(views) @ target.to(self.clip.device)).mean()
            pull = self._offset.pow(2).mean() / (rms * rms)
            loss = -similarity + self.config.anchor * pull
            self._optimiser.zero_grad(set_to_none=True)
            loss.backward()
        if lr > 0.0:
            self._optimiser.step()
        with self._cond:
            self._result = self._offset.detach().expand(latent.shape).clone()
        self.steps += 1
        self.similarity = float(similarity.detach())
        self._stamps.append(time.perf_counter())
        return self.similarity

    # ---- live ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the live steering thread. Thread: main."""
        self._thread = threading.Thread(target=self._run, name="clip-steer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current step. Thread: main."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def submit(self, params: Params) -> None:
        """The newest frame's params to steer from (latest wins). Thread: main."""
        with self._cond:
            self._request = params
            self._cond.notify_all()

    def rate_hz(self) -> float:
        """Steps per second over the last few steps. Thread: any."""
        stamps = list(self._stamps)
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def status(self) -> str:
        """One HUD line: 'clip steer 3.2 steps/s  similarity 0.284'. Thread: any."""
        if self.error:
            return f"clip steer: {self.error}"
        similarity = "-" if self.similarity is None else f"{self.similarity:.3f}"
        return f"clip steer {self.rate_hz():.1f} steps/s  similarity {similarity}"

    def _active(self, values) -> bool:
        return values.get("clip.strength", 1.0) > 0.0 and values.get("clip.speed", 1.0) > 0.0

    def _run(self) -> None:
        index = 0
        next_s = time.perf_counter()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._request is not None or self._stop, timeout=0.5)
                if self._stop:
                    return
                params = self._request
            if params is None or not self._active(params.values):
                time.sleep(0.05)
                continue
            now = time.perf_counter()
            if now < next_s:  # paced by the clock: as many steps per second as offline
                time.sleep(next_s - now)
            next_s = max(next_s + self.step_interval_s, time.perf_counter() - 1.0)
            if self._guarded_step(params, index) is None:
                time.sleep(0.05 if self.error is None else 0.5)
            index += 1

    def _guarded_step(self, params: Params, index: int) -> float | None:
        """A step whose failure is reported once and counted, never raised."""
        try:
            similarity = self.step(params, index)
        except Exception as exc:  # steering fails alone: report once, carry on
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            message = f"{type(exc).__name__}: {exc}"
            if message != self.error:
                log.error("CLIP steering step failed: %s (retrying)", message)
            self.error = message
            return None
        self.error = None
        return similarity
