"""Neural stages: torch effects on the generator's frame (DeepDream, style transfer).

Each family is a module with `build(config) -> Stage` that reads its own options
from `config.options` strictly and touches no weights; `NeuralChain.load` reads the
weights. Modules are imported only when a show names their kind.
"""

from __future__ import annotations

import importlib

import torch

from runtime.neural.base import Stage
from runtime.neural.chain import NeuralChain
from runtime.show import NEURAL_KINDS, Show

_MODULES = {kind: f"runtime.neural.{kind}" for kind in NEURAL_KINDS}


def build_stages(show: Show) -> list[Stage]:
    """Build the show's `[[neural]]` stages, in order, without their weights.

    Returns:
        The stages (their controls are the show's neural targets).
    Raises:
        ConfigError: a bad option of a stage, naming the file, line and key.
    Thread: any.
    """
    return [importlib.import_module(_MODULES[c.kind]).build(c) for c in show.neural]


def build_chain(show: Show, *, device: torch.device, offline: bool) -> NeuralChain:
    """The show's neural chain on `device`, weights loaded where they are present.

    A stage whose weights are missing is bypassed and listed in `chain.problems`.

    Args:
        show: the show.
        device: the generator's device.
        offline: full, fixed work per frame (frame-exact) instead of time budgets.
    Raises:
        ConfigError: a bad option of a stage.
    Thread: main.
    """
    frame_s = 1.0 / show.output.fps
    budgets_s = [c.budget_ms / 1000.0 if c.budget_ms is not None else frame_s for c in show.neural]
    chain = NeuralChain(
        build_stages(show),
        budgets_s=budgets_s,
        device=device,
        seed=show.generator.seed,
        offline=offline,
    )
    chain.load()
    return chain
