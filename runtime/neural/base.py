"""The neural stage protocol: a torch effect on the generator's frame.

A stage (DeepDream, style transfer) takes the frame the generator made, as a
(1, 3, H, W) float tensor in 0..1 on the generator's device, and returns one of the
same shape. Its controls are mapping targets named after the stage
(`dream.strength`, `style.0.weight`). Stages run on the generator worker's thread,
never on the frame loop.

A stage is built from its show table without touching weights, so its targets exist
(and mappings that name them load) even when its weights are missing; `load` then
reads the weights, and a stage whose load failed is bypassed with its problem shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import torch

from runtime.generators.base import Control


@dataclass(frozen=True)
class StageRun:
    """What one frame asks of a stage.

    Attributes:
        frame: the frame index (seeds the frame's random choices, such as jitter).
        t_s: the frame's time in seconds.
        seed: the show's seed.
        budget_s: live: the time this stage may take for this frame (a dream takes
            fewer steps to stay within it); None offline: the full, fixed work, so
            renders are frame-exact.
    """

    frame: int
    t_s: float
    seed: int
    budget_s: float | None = None


class Stage(Protocol):
    """What every neural stage provides.

    Attributes:
        kind: the show's `kind` ("dream", "style").
        name: the target prefix (`[[neural]] name`, default the kind).
        controls: its mappable controls, named `NAME.*`.
    """

    kind: str
    name: str
    controls: tuple[Control, ...]

    def load(self, device: torch.device) -> None:
        """Read the weights and prepare them on `device`.

        Raises:
            GeneratorError: weights missing or unusable (the message names the file
                and the `run_show.py models pull` that brings them).
        Thread: any, before the first `process`.
        """
        ...

    def process(
        self, image: torch.Tensor, values: Mapping[str, float], run: StageRun
    ) -> tuple[torch.Tensor, int]:
        """Apply the effect to one frame.

        Args:
            image: (1, 3, H, W) float32 in 0..1 on the stage's device.
            values: every target's value for this frame (missing ones: defaults).
            run: the frame's index, time, seed and time budget.
        Returns:
            (image, steps): the new (1, 3, H, W) frame in 0..1, and the gradient
            steps taken (0 for a stage without steps). At strength 0 the input
            tensor itself comes back, untouched.
        Thread: the generator worker.
        """
        ...
