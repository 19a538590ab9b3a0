"""The signal bus: the one place where inputs leave their values for the frame loop.

Inputs (OSC, MIDI, audio analysis, hands, clocks) call `SignalBus.set` from their own
threads. The frame loop calls `snapshot` once per frame and maps what it sees. Names
are `source:path` (`osc:/fader/1`, `midi:cc/1`, `audio:rms`).

Every `set` is also an event, so a trigger that rises and falls between two frames
(a drum hit, a note on and off) is still seen by the frame after it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Events kept between two snapshots; beyond this the oldest are dropped and counted.
EVENT_CAPACITY = 8192
#: Texts kept until the frame loop takes them; beyond this the oldest are dropped.
TEXT_CAPACITY = 64


@dataclass(frozen=True, slots=True)
class Event:
    """One value written to the bus: name, value and when (perf_counter seconds)."""

    name: str
    value: float
    t_s: float


@dataclass(frozen=True)
class Snapshot:
    """What the frame loop sees of the bus for one frame.

    Attributes:
        values: latest value per signal name.
        events: every write since the previous snapshot, oldest first.
        dropped: events lost to overflow since the previous snapshot.
    """

    values: Mapping[str, float]
    events: tuple[Event, ...]
    dropped: int = 0

    def events_for(self, name: str) -> list[float]:
        """Values written to `name` since the last snapshot, oldest first. Thread: any."""
        return [e.value for e in self.events if e.name == name]


class TextQueue:
    """Texts from inputs (a prompt sent over OSC), on their own path: signals stay
    numbers. Each entry is (source, text), e.g. ("osc:/prompt", "a red city");
    the text is a str, or bytes when it came as a blob.

    Thread: `put` from any thread; `take` from the frame loop only.
    """

    def __init__(self, capacity: int = TEXT_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[str, str | bytes]] = deque(maxlen=capacity)

    def put(self, source: str, text: str | bytes) -> None:
        """Queue a text (the oldest is dropped when full). Thread: any."""
        with self._lock:
            self._items.append((source, text))

    def take(self) -> list[tuple[str, str | bytes]]:
        """Every text queued since the last call, oldest first. Thread: the frame loop."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items


class SignalBus:
    """Thread-safe latest values plus a bounded queue of events, and a separate
    queue of texts (`texts`).

    `set` is the edge every input passes, so it is where numbers that are not
    finite (NaN, +-inf, an int too large for a float) are stopped: dropped, counted
    per source kind (`rejected`) and logged once per source. Everything behind the
    bus may assume finite values.

    Thread: `set` from any thread; `snapshot` from the frame loop only.
    """

    def __init__(self) -> None:
        self.texts = TextQueue()
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._stamps: dict[str, float] = {}
        self._events: deque[Event] = deque(maxlen=EVENT_CAPACITY)
        self._dropped = 0
        self._rejected: dict[str, int] = {}

    def set(self, name: str, value: float, t_s: float | None = None) -> None:
        """Write a signal's newest value and record it as an event.

        A value that is not a finite number changes nothing: the signal keeps its
        last value, the source kind (the part of `name` before ':') counts one more
        rejection, and the first from each kind is logged.

        Args:
            name: `source:path`, e.g. "osc:/fader/1".
            value: the value; converted to float.
            t_s: when it happened (time.perf_counter seconds); now when None.
        Raises:
            TypeError, ValueError: `value` is not a number at all (a caller's bug,
                not data from outside).
        Thread: any; never blocks for long (one short lock).
        """
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            number = math.inf
        if not math.isfinite(number):
            self._reject(name, value)
            return
        stamp = time.perf_counter() if t_s is None else t_s
        event = Event(name, number, stamp)
        with self._lock:
            self._values[name] = event.value
            self._stamps[name] = stamp
            if len(self._events) == EVENT_CAPACITY:
                self._dropped += 1
            self._events.append(event)

    def _reject(self, name: str, value: object) -> None:
        source = name.partition(":")[0]
        with self._lock:
            count = self._rejected.get(source, 0) + 1
            self._rejected[source] = count
        if count == 1:
            log.warning(
                "%s: %.40r is not a finite number; dropped, the signal keeps its last value"
                " (further ones from '%s' are counted on the HUD)",
                name,
                value,
                source,
            )

    def rejected(self) -> dict[str, int]:
        """Values dropped by `set` for not being finite numbers, per source kind
        ("osc", "midi", "audio", "hand", ...), since the bus was made.

        Returns:
            {source kind: count}, only kinds with at least one.
        Thread: any.
        """
        with self._lock:
            return dict(self._rejected)

    def get(self, name: str, default: float = 0.0) -> float:
        """The latest value of `name`, or `default` if never set. Thread: any."""
        with self._lock:
            return self._values.get(name, default)

    def last_update_s(self, name: str) -> float | None:
        """When `name` was last written (perf_counter seconds), or None. Thread: any."""
        with self._lock:
            return self._stamps.get(name)

    def names(self) -> list[str]:
        """Every signal name seen so far, sorted. Thread: any."""
        with self._lock:
            return sorted(self._values)

    def snapshot(self) -> Snapshot:
        """Copy the latest values and take the events since the last snapshot.

        Returns:
            A Snapshot that no other thread will change.
        Thread: the frame loop (one consumer: events are handed out once).
        """
        with self._lock:
            values = dict(self._values)
            events = tuple(self._events)
            self._events.clear()
            dropped, self._dropped = self._dropped, 0
        return Snapshot(values, events, dropped)
