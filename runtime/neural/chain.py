"""The neural chain: a show's stages in order, fed their own output.

The generator worker hands each finished frame to the chain. The chain blends it with
its own previous output, zoomed and turned a little (`feedback.*`), then runs every
stage in the show's order, each within its time budget when live. A model fed its own
output this way turns a few gradient steps per frame into a deep dream over time.

A stage whose weights are missing is bypassed (its targets stay, its problem is
shown); a stage that fails on a frame passes that frame through, reports once, and
is tried again on the next.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from runtime.errors import GeneratorError
from runtime.generators.base import Control, Params
from runtime.neural.base import Stage, StageRun

log = logging.getLogger(__name__)

FEEDBACK_CONTROLS = (
    Control(
        "feedback.amount",
        0.0,
        0.0,
        1.0,
        "how much of the stages' own last output is fed back in (0: none, the new frame)",
    ),
    Control(
        "feedback.zoom",
        0.05,
        -0.5,
        1.0,
        "zoom into the fed-back frame, per second (0.05: 5% larger each second)",
    ),
    Control(
        "feedback.rotate", 0.0, -math.pi, math.pi, "turn the fed-back frame, radians per second"
    ),
)
#: The longest step a feedback warp takes: a stalled worker does not spin the picture.
MAX_FEEDBACK_DT_S = 0.5


def neural_controls(stages: Sequence[Stage]) -> tuple[Control, ...]:
    """The targets a show's stages offer: the feedback controls (when there is any
    stage) and each stage's own. Thread: any."""
    if not stages:
        return ()
    return (*FEEDBACK_CONTROLS, *(c for stage in stages for c in stage.controls))


@dataclass(frozen=True)
class StageStat:
    """What a stage did on one frame: its name, milliseconds and gradient steps."""

    name: str
    ms: float
    steps: int


@dataclass(frozen=True)
class ChainState:
    """What the chain carries from one frame to the next (its feedback), as plain
    arrays that can be saved and sent: a render split over several processes hands
    it from one to the next (runtime/distributed/).

    Attributes:
        previous: (1, 3, H, W) the last output (its dtype kept exactly), or None
            before the first frame.
        previous_t_s: that frame's time.
    """

    previous: np.ndarray | None = None
    previous_t_s: float = 0.0


class NeuralChain:
    """A show's neural stages in order, with feedback.

    Args:
        stages: built stages (weights not yet loaded), in the show's order.
        budgets_s: each stage's live time budget per frame, in the same order.
        device: where the stages run (the generator's device).
        seed: the show's seed (jitter and other per-frame randomness).
        offline: True: full, fixed work per frame (frame-exact renders); False:
            stages keep their time budgets.
    Thread: build and `load` on main; `process` on the generator worker only.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        budgets_s: Sequence[float],
        device: torch.device,
        seed: int,
        offline: bool,
    ) -> None:
        self.stages = list(stages)
        self.budgets_s = list(budgets_s)
        self.device = device
        self.seed = seed
        self.offline = offline
        self.controls = neural_controls(self.stages)
        self._defaults = {c.name: c.default for c in self.controls}
        self.problems: list[str] = []
        self._active = [False] * len(self.stages)
        self._previous: torch.Tensor | None = None  # (1, 3, H, W) the last output
        self._previous_t_s = 0.0
        self.errors = 0
        self._reported: set[str] = set()

    def load(self) -> None:
        """Load every stage's weights; a stage that cannot load is bypassed and its
        problem kept in `problems` (and logged). Thread: main, before the worker
        starts."""
        for i, stage in enumerate(self.stages):
            try:
                stage.load(self.device)
            except GeneratorError as exc:
                problem = f"{stage.name} stage bypassed: {exc}"
                log.error("%s", problem)
                self.problems.append(problem)
            else:
                self._active[i] = True

    def process(self, image: torch.Tensor, params: Params) -> tuple[torch.Tensor, list[StageStat]]:
        """Feed one generated frame through the feedback blend and the stages.

        Args:
            image: (3, H, W) float in 0..1 on the device, from the generator.
            params: the frame's params (values for every target).
        Returns:
            ((3, H, W) float32 in 0..1, what each active stage did).
        Thread: the generator worker.
        """
        if not self.stages:
            return image, []
        values = {**self._defaults, **params.values}
        x = image.float()[None]  # (1, 3, H, W)
        amount = min(max(values["feedback.amount"], 0.0), 1.0)
        previous = self._previous
        if amount > 0.0 and previous is not None and previous.shape == x.shape:
            dt_s = min(max(params.t_s - self._previous_t_s, 0.0), MAX_FEEDBACK_DT_S)
            fed = warp(
                previous,
                zoom_per_s=values["feedback.zoom"],
                rotate_per_s=values["feedback.rotate"],
                dt_s=dt_s,
            )
            x = torch.lerp(x, fed, amount)
        stats = []
        for stage, budget_s, active in zip(self.stages, self.budgets_s, self._active):
            if not active:
                continue
            run = StageRun(params.frame, params.t_s, self.seed, None if self.offline else budget_s)
            x, stat = self._run(stage, x, values, run)
            stats.append(stat)
        self._previous = x.detach()
        self._previous_t_s = params.t_s
        return x[0], stats

    def state(self) -> ChainState:
        """The feedback state after the last frame processed.

        Thread: the generator worker, or any thread while the worker is idle.
        """
        previous = self._previous
        array = None if previous is None else previous.cpu().numpy().copy()
        return ChainState(array, self._previous_t_s)

    def restore(self, state: ChainState) -> None:
        """Continue from `state` (from `state()`, here or in another process): the
        next frame comes out exactly as it would after the frame that left it.

        Thread: the generator worker, or any thread while the worker is idle.
        """
        previous = state.previous
        if previous is not None:
            # A copy: an array Ray hands over lives read-only in its object store.
            previous = torch.from_numpy(previous.copy()).to(self.device)
        self._previous = previous
        self._previous_t_s = state.previous_t_s

    def _run(
        self, stage: Stage, x: torch.Tensor, values: Mapping[str, float], run: StageRun
    ) -> tuple[torch.Tensor, StageStat]:
        start = time.perf_counter()
        try:
            out, steps = stage.process(x, values, run)
            if out is not x and not bool(torch.isfinite(out).all()):
                raise GeneratorError("produced NaN or infinite values")
        except Exception as exc:  # the stage fails alone: this frame passes through
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            self._report(f"{stage.name} stage failed, frame passed through: {exc}")
            out, steps = x, 0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out, StageStat(stage.name, (time.perf_counter() - start) * 1000.0, steps)

    def _report(self, message: str) -> None:
        self.errors += 1
        if message not in self._reported:
            self._reported.add(message)
            log.error("%s (reported once; further ones are counted)", message)
            self.problems.append(message)


def warp(
    frame: torch.Tensor, *, zoom_per_s: float, rotate_per_s: float, dt_s: float
) -> torch.Tensor:
    """Zoom and turn a frame about its centre, by rates over `dt_s` seconds.

    Args:
        frame: (1, 3, H, W).
        zoom_per_s: growth per second (0.05: 5% larger after one second; < 0 shrinks,
            the edges mirrored in).
        rotate_per_s: radians per second, counter-clockwise on screen.
        dt_s: the time step.
    Returns:
        (1, 3, H, W); the input itself when there is nothing to do.
    Thread: any.
    """
    scale = max(1.0 + zoom_per_s, 1e-3) ** dt_s
    angle = rotate_per_s * dt_s
    if scale == 1.0 and angle == 0.0:
        return frame
    _, _, height, width = frame.shape
    c, s = math.cos(angle) / scale, math.sin(angle) / scale
    # affine_grid's coordinates run -1..1 on both axes: turn in pixels, not in them.
    theta = torch.tensor(
        [[c, -s * height / width, 0.0], [s * width / height, c, 0.0]],
        dtype=frame.dtype,
        device=frame.device,
    )[None]  # (1, 2, 3)
    grid = F.affine_grid(theta, list(frame.shape), align_corners=False)  # (1, H, W, 2)
    return F.grid_sample(
        frame, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
