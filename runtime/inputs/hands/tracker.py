"""Hand slots, landmark smoothing and the hand signals on the bus."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.filters import OneEuro
from runtime.inputs.hands.geometry import PALM, Hand, derive
from runtime.inputs.hands.settings import HandsSettings
from runtime.signals import SignalBus


class _Slot:
    def __init__(self, settings: HandsSettings) -> None:
        args = (settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
        self.image_filter = OneEuro(*args)
        self.world_filter = OneEuro(*args)
        self.active = False
        self.last_t_s = 0.0
        self.centre = np.zeros(2)

    def release(self) -> None:
        self.active = False
        self.image_filter.reset()
        self.world_filter.reset()


class HandTracker:
    """Keeps hands in their slots, smooths their landmarks and writes their signals.

    Args:
        bus: where the signals go.
        settings: the input's settings (slots, smoothing, mirror, depth range).
    Thread: one thread at a time (the input thread, or the frame loop offline).
    """

    def __init__(self, bus: SignalBus, settings: HandsSettings) -> None:
        self.bus = bus
        self.settings = settings
        self.slots = [_Slot(settings) for _ in range(settings.max_hands)]
        self._count = 0
        for n in range(settings.max_hands):
            bus.set(f"hand:{n}/present", 0.0)
        bus.set("hand:count", 0.0)

    @property
    def count(self) -> int:
        """Hands present now. Thread: any."""
        return self._count

    def update(self, hands: Sequence[Hand], t_s: float, aspect: float) -> None:
        """Take one frame's detections.

        Args:
            hands: the hands found in the frame (any order; extra hands beyond
                max_hands are dropped, lowest score first).
            t_s: the frame's time in seconds (source time: it sets the filters' steps).
            aspect: the frame's width / height.
        Thread: the owner (see the class).
        """
        hands = sorted(hands, key=lambda h: -h.score)[: len(self.slots)]
        centres = [h.image[list(PALM), :2].mean(axis=0) for h in hands]  # (2,) each
        seen = self._assign(centres)
        for n, j in seen.items():
            self._track(n, hands[j], centres[j], t_s, aspect)
        for n, slot in enumerate(self.slots):
            if slot.active and n not in seen and t_s - slot.last_t_s > self.settings.hold_s:
                slot.release()
                self.bus.set(f"hand:{n}/present", 0.0)
        self._set_count()

    def release_all(self) -> None:
        """Mark every hand gone (the source stopped or was lost). Thread: the owner."""
        for n, slot in enumerate(self.slots):
            if slot.active:
                slot.release()
                self.bus.set(f"hand:{n}/present", 0.0)
        self._set_count()

    def _set_count(self) -> None:
        count = sum(slot.active for slot in self.slots)
        if count != self._count:
            self._count = count
            self.bus.set("hand:count", float(count))

    def _assign(self, centres: list[np.ndarray]) -> dict[int, int]:
        # Greedy nearest pairs between active slots and detections, then new hands
        # into the lowest free slots. With at most four hands this is exact enough.
        pairs = sorted(
            (float(np.linalg.norm(slot.centre - c)), n, j)
            for n, slot in enumerate(self.slots)
            if slot.active
            for j, c in enumerate(centres)
        )
        slot_of: dict[int, int] = {}
        taken: set[int] = set()
        for _, n, j in pairs:
            if n not in slot_of and j not in taken:
                slot_of[n] = j
                taken.add(j)
        free = [n for n, slot in enumerate(self.slots) if not slot.active]
        for j in range(len(centres)):
            if j not in taken:
                slot_of[free.pop(0)] = j
        return slot_of

    def _track(self, n: int, hand: Hand, centre: np.ndarray, t_s: float, aspect: float) -> None:
        slot = self.slots[n]
        dt_s = t_s - slot.last_t_s if slot.active else 0.0
        if not slot.active:
            slot.active = True
            self.bus.set(f"hand:{n}/present", 1.0)
        slot.last_t_s = t_s
        slot.centre = centre
        image = slot.image_filter(hand.image, dt_s)  # (21, 3)
        world = None if hand.world is None else slot.world_filter(hand.world, dt_s)
        values = derive(
            image,
            world,
            aspect=aspect,
            mirror=self.settings.mirror,
            depth_range=self.settings.depth_range,
        )
        for name in ("x", "y", "z", "pinch", "openness"):
            self.bus.set(f"hand:{n}/{name}", getattr(values, name))
