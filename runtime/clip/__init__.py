"""CLIP in the loop: text prompts steer the generator, and what CLIP sees in the
output is a signal.

`[clip]` in a show names an open_clip model, its weights and named prompts. Two
workers share the model: the steering worker (steer.py) pulls the generator's latent
towards the blended prompt; the watcher (watch.py) measures how much the composited
output looks like each prompt and writes `clip:NAME` signals. Prompt texts can change
while the show plays (prompts.py). Without weights both are off, the show plays, and
the HUD says which pull brings them.
"""

from __future__ import annotations

import logging

import numpy as np

from runtime.generators.base import Control, Params, pick_device
from runtime.show import ClipConfig, Show
from runtime.signals import SignalBus

log = logging.getLogger(__name__)


def clip_controls(config: ClipConfig | None) -> tuple[Control, ...]:
    """The targets a `[clip]` table offers (none without one). Thread: any."""
    if config is None:
        return ()
    return (
        Control(
            "clip.strength",
            1.0,
            0.0,
            2.0,
            "how far CLIP pulls the picture towards the prompts (0: not at all)",
        ),
        Control(
            "clip.speed",
            1.0,
            0.0,
            4.0,
            "how fast the steering moves, times its learning rate (0: holds still)",
        ),
        *(
            Control(
                f"clip.{name}.weight",
                1.0 if i == 0 else 0.0,
                0.0,
                1.0,
                f"weight of prompt '{name}' ({text!r}) in the blend",
            )
            for i, (name, text) in enumerate(config.prompts.items())
        ),
    )


def clip_signals(config: ClipConfig | None) -> list[tuple[str, str]]:
    """What `run_show.py signals` lists for a `[clip]` table. Thread: any."""
    if config is None:
        return []
    lo, hi = config.watch_range
    rows = []
    for name, text in config.prompts.items():
        rows.append((f"clip:{name}", f"how much the output looks like {text!r}, 0..1"))
        rows.append((f"clip:{name}/raw", f"CLIP cosine similarity ({lo:g} -> 0, {hi:g} -> 1)"))
    return rows


class ClipPart:
    """A show's CLIP: the model, the prompts, the steering worker and the watcher.

    Args:
        show: the show (its `[clip]` table must be set).
        bus: where `clip:` signals go.
        generator: the show's generator (steered through its latent).
        offline: frame-exact work (steps inside the generator worker, measurements
            in frame order) instead of threads.
    Thread: main, but for the parts' own threads.
    """

    def __init__(self, show: Show, bus: SignalBus, generator, *, offline: bool) -> None:
        from runtime.clip.model import ClipError, ClipModel
        from runtime.clip.prompts import PromptBook
        from runtime.clip.steer import Steering
        from runtime.clip.watch import Watcher

        config = show.clip
        assert config is not None
        self.config = config
        self.offline = offline
        self.book = PromptBook(config.prompts, address=config.osc)
        self.problem: str | None = None
        self.steering: Steering | None = None
        self.watcher: Watcher | None = None
        try:
            self.model = ClipModel(config, pick_device(config.device))
        except ClipError as exc:
            self.problem = f"CLIP is off (no steering, no clip: signals): {exc}"
            log.error("%s", self.problem)
            return
        self.book.refresh(self.model)
        if config.steer:
            self.steering = Steering(
                self.model,
                self.book,
                generator,
                config,
                fps=show.output.fps,
                offline=offline,
                seed=show.generator.seed,
            )
        self.watcher = Watcher(self.model, self.book, bus, watch_range=config.watch_range)

    @property
    def image_px(self) -> int:
        """CLIP's input side: the size the output is read back at. Thread: any."""
        return self.model.image_px

    def start(self) -> None:
        """Start the live threads (nothing offline). Thread: main."""
        if self.offline:
            return
        for part in (self.steering, self.watcher):
            if part is not None:
                part.start()

    def stop(self) -> None:
        """Stop the live threads. Thread: main."""
        for part in (self.steering, self.watcher):
            if part is not None and not self.offline:
                part.stop()

    def submit(self, params: Params) -> None:
        """The newest frame's params, for the steering worker. Thread: main."""
        if self.steering is not None and not self.offline:
            self.steering.submit(params)

    def take_text(self, source: str, text: object) -> None:
        """A text that arrived on the bus's text queue. Thread: main."""
        self.book.offer(source, text)

    def see(self, pixels: np.ndarray) -> None:
        """The composited output at CLIP's input size: measured now offline, handed
        to the watcher thread live. Thread: main."""
        if self.watcher is None:
            return
        if self.offline:
            self.watcher.measure(pixels)
        else:
            self.watcher.offer(pixels)

    def status(self) -> list[str]:
        """HUD lines. Thread: main."""
        lines = []
        if self.steering is not None:
            lines.append(self.steering.status())
        if self.watcher is not None:
            lines.append(self.watcher.status())
        return lines


def build_clip(show: Show, bus: SignalBus, generator, *, offline: bool) -> ClipPart | None:
    """The show's CLIP part, or None without a `[clip]` table.

    A missing model or weights leaves the part with a `problem` and no workers.

    Thread: main.
    """
    if show.clip is None:
        return None
    return ClipPart(show, bus, generator, offline=offline)
