"""The show's prompts: named texts, their CLIP embeddings, and new texts from outside.

Text reaches the show on its own path, not the numeric signal bus: an input puts
(`source`, text) on the bus's text queue (`SignalBus.texts`), and the CLIP thread
takes it here. `/prompt "a red city"` replaces the first prompt's text;
`/prompt/NAME "text"` replaces prompt NAME, or adds it. Bad text (empty, not
UTF-8, more tokens than CLIP reads) is logged with what was wrong, and the previous
prompt stays.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from runtime.clip.model import ClipModel

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: At most this many prompts: an OSC sender cannot grow the book without end.
MAX_PROMPTS = 32
#: Texts waiting for the CLIP thread.
MAX_PENDING = 64


class PromptBook:
    """Named prompts and their unit text embeddings.

    Args:
        prompts: name -> text, in show order (the first is the one a bare
            `/prompt "text"` replaces).
        address: the OSC address whose text sets prompts (e.g. "/prompt").
    Thread: `offer` from any thread; `refresh`, `target`, `embeddings` from the
        CLIP threads.
    """

    def __init__(self, prompts: Mapping[str, str], *, address: str) -> None:
        self.texts = dict(prompts)
        self.source = f"osc:{address}"
        self._lock = threading.Lock()
        # Bounded: a flood of texts the CLIP thread cannot keep up with drops the
        # oldest, not the memory.
        self._pending: deque[tuple[str, object]] = deque(maxlen=MAX_PENDING)
        self._names: list[str] = []
        self._embeddings: torch.Tensor | None = None  # (N, D)
        self.version = 0
        self.refused = 0
        self._refused: dict[str, tuple[float, int]] = {}

    def offer(self, source: str, text: object) -> bool:
        """Queue a text that arrived from `source` (e.g. "osc:/prompt/forest").

        Returns:
            True when the source is one of this book's addresses (the text will be
            checked and applied by the next `refresh`).
        Thread: any.
        """
        if source != self.source and not source.startswith(self.source + "/"):
            return False
        with self._lock:
            self._pending.append((source, text))
        return True

    def refresh(self, clip: ClipModel) -> list[str]:
        """Apply queued texts and (re)compute embeddings that are out of date.

        Args:
            clip: the model whose text encoder embeds the prompts.
        Returns:
            One line per prompt changed (also logged); bad texts are logged and
            left out.
        Thread: a CLIP thread (encoding takes tens of ms on a CPU).
        """
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
        changed = []
        for source, raw in pending:
            name = source[len(self.source) + 1 :] if source != self.source else None
            line = self._apply(clip, name, raw, source)
            if line:
                changed.append(line)
        if changed or self._embeddings is None:
            names = list(self.texts)
            embeddings = clip.encode_texts([self.texts[n] for n in names])  # (N, D)
            with self._lock:
                self._names, self._embeddings = names, embeddings
            self.version += 1
        return changed

    def _apply(self, clip: ClipModel, name: str | None, raw: object, source: str) -> str | None:
        first = next(iter(self.texts))
        target = name or first
        if isinstance(raw, bytes | bytearray):
            try:
                raw = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                return self._refuse(source, target, "the text is not UTF-8")
        if not isinstance(raw, str):
            return self._refuse(source, target, "not text", f"got {type(raw).__name__}")
        text = raw.strip()
        if not text:
            return self._refuse(source, target, "the text is empty")
        if name is not None and not _NAME_RE.match(name):
            return self._refuse(source, target, "a prompt name is lowercase letters, digits and _")
        tokens = clip.tokens(text)
        if tokens > clip.context_length:
            return self._refuse(
                source,
                target,
                "too long",
                f"the text is {tokens} tokens, CLIP reads at most {clip.context_length}",
            )
        if target not in self.texts and len(self.texts) >= MAX_PROMPTS:
            return self._refuse(source, target, f"the show already has {MAX_PROMPTS} prompts")
        verb = "set" if target in self.texts else "added"
        self.texts[target] = text
        line = f"prompt '{target}' {verb}: {text!r} (from {source})"
        log.info("%s", line)
        return line

    def _refuse(self, source: str, target: str, why: str, detail: str = "") -> None:
        self.refused += 1
        # One line per reason a second at most: a sender in a loop cannot flood the log.
        now = time.monotonic()
        last_s, quiet = self._refused.get(why, (-math.inf, 0))
        if now - last_s < 1.0:
            self._refused[why] = (last_s, quiet + 1)
            return None
        more = f" ({quiet} more like it not logged)" if quiet else ""
        log.warning(
            "prompt from %s refused: %s; prompt '%s' stays %r%s",
            source,
            detail or why,
            target,
            self.texts.get(target, ""),
            more,
        )
        self._refused[why] = (now, 0)
        return None

    def names(self) -> list[str]:
        """The prompt names whose embeddings are ready, in order. Thread: any."""
        with self._lock:
            return list(self._names)

    def embeddings(self) -> tuple[list[str], torch.Tensor | None]:
        """(names, (N, D) unit embeddings), as of the last `refresh`. Thread: any."""
        with self._lock:
            return list(self._names), self._embeddings

    def target(self, values: Mapping[str, float]) -> torch.Tensor | None:
        """The direction to steer towards: the weighted blend of the prompts' unit
        embeddings (`clip.NAME.weight`; a prompt added over OSC weighs 1), renormalised.

        Returns:
            (D,) unit vector, or None when every weight is 0 (nothing to steer to).
        Thread: a CLIP thread.
        """
        names, embeddings = self.embeddings()
        if embeddings is None:
            return None
        weights = torch.tensor(
            [max(values.get(f"clip.{n}.weight", 1.0), 0.0) for n in names],
            device=embeddings.device,
        )  # (N,)
        if float(weights.sum()) <= 0.0:
            return None
        return F.normalize(weights @ embeddings, dim=0)  # (D,)
