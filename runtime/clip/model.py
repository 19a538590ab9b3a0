"""A CLIP model from open_clip: the architecture by name (or a config file), the
weights from a local file, never from a hub.

Weights are a state dict: `pretrained = "TAG"` finds open_clip's file for
(model, TAG) in the model catalogue's cache (`run_show.py models pull
clip-MODEL-TAG`), or `weights = "path"` names one. It is read with
`torch.load(weights_only=True)` or safetensors: nothing in the file runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from runtime.errors import GeneratorError
from runtime.show import ClipConfig

log = logging.getLogger(__name__)


class ClipError(GeneratorError):
    """CLIP cannot run: missing or unusable weights, an unknown architecture.

    The show plays on without steering and `clip:` signals."""


def catalogue_name(model: str, tag: str) -> str:
    """The catalogue entry for open_clip's (model, tag): `clip-ViT-B-32-laion2b_s34b_b79k`.

    Thread: any.
    """
    return f"clip-{model}-{tag}"


class ClipModel:
    """An open_clip model in eval mode, its tokenizer and its input normalisation.

    Args:
        config: the show's `[clip]` table.
        device: where it runs.
    Raises:
        ClipError: unknown architecture, weights missing (naming the pull that
            brings them) or not matching the architecture.
    Thread: build on main; encode from the CLIP threads (the forward passes share
        the module; nothing in them writes to it).
    """

    def __init__(self, config: ClipConfig, device: torch.device) -> None:
        import open_clip

        self.device = device
        name = _register(config.model)
        weights = _weights_path(config, name)
        try:
            with _quiet():
                model = open_clip.create_model(name, pretrained=None, **_quick_gelu(config, name))
                self.tokenizer = open_clip.get_tokenizer(name)
        except RuntimeError as exc:  # open_clip's "Model config for X not found"
            raise ClipError(f"[clip] model '{config.model}': {exc}") from None
        from runtime.neural.weights import load_state_dict

        state = load_state_dict(weights)
        if next(iter(state), "").startswith("module."):
            state = {k.removeprefix("module."): v for k, v in state.items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ClipError(
                f"{weights}: not weights of open_clip's {config.model}: {str(exc)[:300]}"
            ) from None
        self.model = model.eval().requires_grad_(False).to(device)
        self.name = name
        self.weights = weights
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))
        size = self.model.visual.image_size
        self.image_px = int(size[0] if isinstance(size, tuple | list) else size)
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        mean = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
        std = cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
        self._mean = torch.tensor(mean, device=device).reshape(1, 3, 1, 1)
        self._std = torch.tensor(std, device=device).reshape(1, 3, 1, 1)
        log.info("CLIP %s loaded from %s on %s", config.model, weights, device)

    def tokens(self, text: str) -> int:
        """How many tokens `text` takes, with the start and end tokens. Thread: any."""
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:  # a Hugging Face tokenizer: count what it marks as real
            ids = self.tokenizer([text])[0]
            return int((ids != 0).sum())
        return len(encode(text)) + 2

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit text embeddings.

        Args:
            texts: prompts, each within `context_length` tokens.
        Returns:
            (N, D) float32 on the device, each row of norm 1.
        Thread: a CLIP thread.
        """
        tokens = self.tokenizer(texts).to(self.device)  # (N, context_length)
        with torch.no_grad():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings, differentiable (call under no_grad to measure only).

        Args:
            images: (N, 3, S, S) float in 0..1 at `image_px` on the device.
        Returns:
            (N, D) float32, each row of norm 1.
        Thread: a CLIP thread.
        """
        x = (images - self._mean) / self._std  # (N, 3, S, S)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                features = self.model.encode_image(x)
        else:
            features = self.model.encode_image(x)
        return F.normalize(features.float(), dim=-1)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Mute open_clip's chatter while it builds (it logs on the root logger, ten lines
    a model, and warns 'initialized randomly' before our weights are loaded)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _register(model: str) -> str:
    """open_clip's name for the model; a .json config is registered under its stem."""
    if not model.endswith(".json"):
        return model
    import open_clip

    path = Path(model)
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClipError(f"{path}: not an open_clip model config ({exc})") from None
    open_clip.add_model_config(path)
    return path.stem


def _quick_gelu(config: ClipConfig, name: str) -> dict:
    """OpenAI's weights were trained with QuickGELU: build the architecture to match."""
    if config.pretrained is None:
        return {}
    from open_clip import pretrained

    cfg = pretrained.get_pretrained_cfg(name, config.pretrained) or {}
    return {"force_quick_gelu": True} if cfg.get("quick_gelu") else {}


def _weights_path(config: ClipConfig, name: str) -> Path:
    """The state dict to load: `weights`, or the catalogue's file for (model, tag)."""
    from runtime import models

    if config.weights is not None:
        if not config.weights.is_file():
            raise ClipError(f"[clip] weights not found: {config.weights}")
        return config.weights
    tag = config.pretrained
    if tag is None:
        prefix = catalogue_name(name, "")
        tags = [n.removeprefix(prefix) for n in models.load_catalogue() if n.startswith(prefix)]
        if not tags:
            raise ClipError(
                f"[clip] no weights for '{name}' in the catalogue (`run_show.py models list`): "
                "give `weights = PATH` (an open_clip state dict) or `pretrained = TAG`"
            )
        tag = tags[0]
    entry = catalogue_name(name, tag)
    try:
        models.lookup(entry)
    except models.ModelError:
        from open_clip import pretrained

        cfg = pretrained.get_pretrained_cfg(name, tag) or {}
        hub = cfg.get("hf_hub", "").rstrip("/")
        where = f" (open_clip keeps it on the Hugging Face hub as {hub})" if hub else ""
        raise ClipError(
            f"[clip] the catalogue has no '{entry}'{where}: download its state dict on a "
            "connected machine and give `weights = PATH`"
        ) from None
    try:
        return models.require_cached(entry)
    except models.ModelError as exc:
        raise ClipError(f"CLIP weights: {exc}") from None
