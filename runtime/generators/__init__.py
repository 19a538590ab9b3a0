"""Generator families behind one protocol (see base.py).

Each family is a module with `build(config, device) -> Generator` that reads its own
options from `config.options` strictly. Modules are imported only when a show asks
for their kind, so a show that needs no model loads no model code.
"""

from __future__ import annotations

import importlib
import logging

from runtime.errors import GeneratorError
from runtime.generators.base import Generator, pick_device
from runtime.show import GENERATOR_KINDS, GeneratorConfig

log = logging.getLogger(__name__)

_MODULES = {kind: f"runtime.generators.{kind}" for kind in GENERATOR_KINDS}


def build_generator(config: GeneratorConfig) -> Generator:
    """Build the generator a show names.

    Args:
        config: the show's `[generator]` table.
    Returns:
        A ready generator on its device.
    Raises:
        GeneratorError: the family cannot be built (missing or corrupt weights, a
            catalogue model not in the cache).
        ConfigError: a bad option of the family.
    Thread: any; the generator is then used by one thread.
    """
    if config.model is not None:
        from runtime.models import require_cached

        require_cached(config.model)  # not pulled yet: say how, before loading anything
    try:
        module = importlib.import_module(_MODULES[config.kind])
    except ModuleNotFoundError as exc:
        raise GeneratorError(f"generator kind '{config.kind}' is not available: {exc}") from exc
    return module.build(config, pick_device(config.device))


def build_with_fallback(config: GeneratorConfig) -> tuple[Generator, str | None]:
    """Build the show's generator; on a GeneratorError fall back to the default.

    The show keeps playing on the weightless default generator (same seed and
    size) and the problem is returned so it can be shown.

    Returns:
        (generator, problem): problem is None when the show's own generator built.
    Raises:
        ConfigError: a mistake in the show itself (not a missing or broken model).
    Thread: any.
    """
    try:
        return build_generator(config), None
    except GeneratorError as exc:
        problem = f"{exc}; playing the default generator (cppn) instead"
        log.error("%s", problem)
        from runtime.generators.cppn import CppnGenerator

        fallback = CppnGenerator(
            seed=config.seed, size_px=config.size_px, device=pick_device(config.device)
        )
        return fallback, problem
