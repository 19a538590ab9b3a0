"""Every frame mapped once on the driver, in frame order, and cut into batches."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from runtime.errors import DistributedError
from runtime.neural.chain import ChainState

if TYPE_CHECKING:
    from runtime.player import Player

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FramePlan:
    """Every frame's time and mapped values, computed once in frame order.

    Attributes:
        keys: the value names, the same for every frame (targets and states).
        times_s: (N,) float64 each frame's time, frame / fps.
        values: (N, K) float64 each frame's values, columns in `keys` order (floats
            round-trip exactly, so a worker sees what a one-machine render passes).
    """

    keys: tuple[str, ...]
    times_s: np.ndarray
    values: np.ndarray

    def values_at(self, frame: int) -> dict[str, float]:
        """Frame `frame`'s values by name. Thread: any."""
        return dict(zip(self.keys, self.values[frame].tolist()))

    def stateful(self, player: Player) -> bool:
        """True when the neural chain feeds its output back on some frame, so frames
        depend on the ones before them on the worker. Thread: any."""
        if not player.chain.stages or "feedback.amount" not in self.keys:
            return False
        return bool((self.values[:, self.keys.index("feedback.amount")] > 0.0).any())


def map_frames(player: Player, frames: int) -> FramePlan:
    """Run the mapping for every frame, in order, as a one-machine render does.

    Args:
        player: the show's player (its engine and feeds carry state across frames).
        frames: how many frames.
    Returns:
        The plan.
    Raises:
        DistributedError: the mapping's names change between frames.
    Thread: main.
    """
    dt_s = 1.0 / player.show.output.fps
    times_s = np.array([frame * dt_s for frame in range(frames)], dtype=np.float64)
    keys: tuple[str, ...] = ()
    rows = np.empty((frames, 0), dtype=np.float64)
    for frame in range(frames):
        values = player.map(frame, frame * dt_s, dt_s)
        if frame == 0:
            keys = tuple(values)
            rows = np.empty((frames, len(keys)), dtype=np.float64)
        elif tuple(values) != keys:
            raise DistributedError(f"the mapped names changed at frame {frame}")
        rows[frame] = list(values.values())
    return FramePlan(keys, times_s, rows)


@dataclass(frozen=True)
class Batch:
    """Consecutive frames for one worker call.

    Attributes:
        first: the first frame.
        count: how many frames.
        state: the chain's state before `first` (renders in one lane), or None
            (frames independent of each other).
    """

    first: int
    count: int
    state: ChainState | None = None

    @property
    def frames(self) -> range:
        """The frames. Thread: any."""
        return range(self.first, self.first + self.count)

    def label(self) -> str:
        """'frames 16-23' for the log. Thread: any."""
        last = self.first + self.count - 1
        return f"frame {self.first}" if self.count == 1 else f"frames {self.first}-{last}"


def batches(frames: Sequence[int], size: int) -> list[Batch]:
    """Runs of consecutive frames cut into batches of at most `size`.

    Args:
        frames: frame indices, ascending.
        size: the most frames per batch.
    Thread: any.
    """
    out: list[Batch] = []
    for frame in frames:
        last = out[-1] if out else None
        if last is not None and last.first + last.count == frame and last.count < size:
            out[-1] = Batch(last.first, last.count + 1)
        else:
            out.append(Batch(frame, 1))
    return out
