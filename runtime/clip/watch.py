"""CLIP as a signal: how much what the audience sees looks like each prompt.

A few times a second the frame loop hands over the composited picture, downscaled
to CLIP's input; this module embeds it and writes, for every prompt NAME,
`clip:NAME` (the cosine similarity mapped from `watch_range` to 0..1, clamped) and
`clip:NAME/raw` (the cosine itself) to the signal bus. Live it runs on its own
thread and never holds the frame loop; offline the render loop calls `measure` in
frame order, so a render stays frame-exact.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import torch

from runtime.clip.model import ClipModel
from runtime.clip.prompts import PromptBook
from runtime.signals import SignalBus

log = logging.getLogger(__name__)


class Watcher:
    """Measures the output's similarity to the prompts.

    Args:
        clip: the CLIP model.
        book: the prompts.
        bus: where `clip:` signals go.
        watch_range: (low, high) cosine that maps to (0, 1).
    Thread: `offer`, `start`, `stop`, `status` on main; `measure` on this object's
        thread (live) or on main (offline).
    """

    def __init__(
        self,
        clip: ClipModel,
        book: PromptBook,
        bus: SignalBus,
        *,
        watch_range: tuple[float, float],
    ) -> None:
        self.clip = clip
        self.book = book
        self.bus = bus
        self.low, self.high = watch_range
        self._cond = threading.Condition()
        self._pixels: tuple[np.ndarray, float] | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.measurements = 0
        self.latency_ms = 0.0
        self.last: dict[str, float] = {}
        self.error: str | None = None

    def measure(self, pixels: np.ndarray) -> dict[str, float]:
        """Embed one picture and write the `clip:` signals.

        Args:
            pixels: (S, S, 3) uint8, top row first, S = CLIP's input side.
        Returns:
            Prompt name -> raw cosine similarity.
        Thread: the watcher thread, or main offline.
        """
        self.book.refresh(self.clip)
        names, embeddings = self.book.embeddings()
        if embeddings is None:
            return {}
        image = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.clip.device)
        image = image.permute(2, 0, 1)[None].float() / 255.0  # (1, 3, S, S)
        with torch.no_grad():
            raw = (self.clip.encode_images(image) @ embeddings.T)[0].tolist()  # (N,)
        span = self.high - self.low
        for name, cosine in zip(names, raw):
            self.bus.set(f"clip:{name}/raw", cosine)
            self.bus.set(f"clip:{name}", min(max((cosine - self.low) / span, 0.0), 1.0))
        self.measurements += 1
        self.last = dict(zip(names, raw))
        return self.last

    def offer(self, pixels: np.ndarray) -> None:
        """Hand over the newest picture (latest wins; never waits). Thread: main."""
        with self._cond:
            self._pixels = (pixels, time.perf_counter())
            self._cond.notify_all()

    def start(self) -> None:
        """Start the live thread. Thread: main."""
        self._thread = threading.Thread(target=self._run, name="clip-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the live thread. Thread: main."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def status(self) -> str:
        """One HUD line: 'clip watch 38 ms  forest 0.27  city 0.19'. Thread: any."""
        if self.error:
            return f"clip watch: {self.error}"
        sims = "  ".join(f"{name} {value:.2f}" for name, value in self.last.items())
        return f"clip watch {self.latency_ms:.0f} ms  {sims}"

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pixels is not None or self._stop)
                if self._stop:
                    return
                assert self._pixels is not None
                (pixels, offered_s), self._pixels = self._pixels, None
            try:
                self.measure(pixels)
                self.latency_ms = (time.perf_counter() - offered_s) * 1000.0
                self.error = None
            except Exception as exc:  # the thread fails alone: report once, carry on
                message = f"{type(exc).__name__}: {exc}"
                if message != self.error:
                    log.error("CLIP signal failed: %s (retrying)", message)
                self.error = message
