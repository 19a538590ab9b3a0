"""Live sources: each writes `source:path` signals to the SignalBus from its own thread.

An input never imports torch or GL and never talks to a generator or a shader. It
must not stop the show: an absent device is reported once (and retried where that
makes sense); `status()` gives one line for the HUD.

Inputs that follow the frame clock instead of a device (an audio file's features in
an offline render) are FrameFeeds: the loop calls `update(bus, t_s)` once per frame.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from runtime.config import Table
from runtime.show import INPUT_KINDS
from runtime.signals import SignalBus


class Input(Protocol):
    """A live source with its own thread(s)."""

    name: str

    def start(self) -> None:
        """Open the device or socket and start its thread; never raises for an absent
        device (reports and retries instead). Thread: main."""
        ...

    def stop(self) -> None:
        """Stop threads and close the device; safe to call twice. Thread: main."""
        ...

    def status(self) -> str:
        """One line for the HUD, e.g. 'osc 127.0.0.1:9000 1532 msgs, 2 bad'. Thread: any."""
        ...


class FrameFeed(Protocol):
    """A source stepped by the frame clock (deterministic offline)."""

    name: str

    def update(self, bus: SignalBus, t_s: float) -> None:
        """Write the signals for the frame at `t_s`; must not block. Thread: main."""
        ...

    def stop(self) -> None:
        """Release what the feed holds (files, sessions); safe to call twice.
        Thread: main."""
        ...


MODULES = {kind: f"runtime.inputs.{kind}" for kind in INPUT_KINDS}


def build_inputs(
    tables: dict[str, Table], bus: SignalBus, *, folder: Path, offline: bool
) -> tuple[list[Input], list[FrameFeed]]:
    """Build the inputs a show names, without starting them.

    Each kind's module has `build(table, bus, *, folder, offline) -> Input | FrameFeed`
    and reads its `[inputs.KIND]` table strictly (calling `table.finish()`).

    Args:
        tables: the show's `[inputs.*]` tables by kind.
        bus: where the inputs write.
        folder: the show's folder (relative paths in input tables resolve here).
        offline: True for a frame-exact render (file-driven feeds, no live devices
            where the kind has a file equivalent).
    Returns:
        (inputs with threads, feeds stepped by the frame clock).
    Raises:
        ConfigError: a mistake in an input table.
    Thread: main.
    """
    inputs: list[Input] = []
    feeds: list[FrameFeed] = []
    # In INPUT_KINDS order, not the show's: the clock reads what MIDI and audio
    # feeds wrote in the same frame.
    for kind in sorted(tables, key=INPUT_KINDS.index):
        table = tables[kind]
        module = importlib.import_module(MODULES[kind])
        built = module.build(table, bus, folder=folder, offline=offline)
        (feeds if hasattr(built, "update") else inputs).append(built)
    return inputs, feeds
