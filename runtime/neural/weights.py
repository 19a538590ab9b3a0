"""Where a neural stage's weights are, and reading them without running code.

A stage's weights come from `weights = "path"` in its `[[neural]]` table, or from the
model catalogue (`model = "NAME"`, or the family's default model when neither is
given). Files are state dicts: `.pth`/`.pt` read with `torch.load(weights_only=True)`,
or `.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from runtime.errors import GeneratorError
from runtime.show import NeuralConfig


def weights_path(config: NeuralConfig, default_model: str) -> Path:
    """The weights a stage should load: the show's path, or a cached catalogue model.

    Args:
        config: the stage's table.
        default_model: the catalogue name to use when the show gives neither
            `weights` nor `model`.
    Returns:
        The file or folder to read.
    Raises:
        GeneratorError: the file is missing, or the catalogue model is not in the
            cache (the message gives the `run_show.py models pull` command).
    Thread: any.
    """
    from runtime.models import require_cached

    if config.weights is not None and config.model is None:
        if not config.weights.exists():
            raise GeneratorError(
                f"{config.name}: weights not found: {config.weights} (a state dict file "
                f'or folder; or use model = "{default_model}" after '
                f"`run_show.py models pull {default_model}`)"
            )
        return config.weights
    return require_cached(config.model or default_model)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict without executing anything from the file.

    Args:
        path: a `.safetensors` file, or a torch file (`.pth`, `.pt`, `.bin`) that
            holds only tensors (read with `weights_only=True`).
    Returns:
        Parameter name -> tensor, on the CPU.
    Raises:
        GeneratorError: missing, unreadable, unsafe (pickled code), or not a dict of
            tensors; the message names the file.
    Thread: any.
    """
    if not path.is_file():
        raise GeneratorError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad or unsafe file
        raise GeneratorError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise GeneratorError(f"{path}: expected a state dict (parameter names to tensors)")
    return state
