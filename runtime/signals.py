"""The signal bus: the one place where inputs leave their values for the frame loop.

Inputs (OSC, MIDI, audio analysis, hands, clocks) call `SignalBus.set` from their own
threads. The frame loop calls `snapshot` once per frame and maps what it sees. Names
are `source:path` (`osc:/fader/1`, `midi:cc/1`, `audio:rms`).

Every `set` is also an event, so a trigger that rises and falls between two frames
(a drum hit, a note on and off) is still seen by the frame after it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

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

    Thread: `set` from any thread; `snapshot` from the frame loop only.
    """

    def __init__(self) -> None:
        self.texts = TextQueue()
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._stamps: dict[str, float] = {}
        self._events: deque[Event] = deque(maxlen=EVENT_CAPACITY)
        self._dropped = 0

    def set(self, name: str, value: float, t_s: float | None = None) -> None:
        """Write a signal's newest value and record it as an event.

        Args:
            name: `source:path`, e.g. "osc:/fader/1".
            value: the value; converted to float.
            t_s: when it happened (time.perf_counter seconds); now when None.
        Thread: any; never blocks for long (one short lock).
        """
        stamp = time.perf_counter() if t_s is None else t_s
        event = Event(name, float(value), stamp)
        with self._lock:
            self._values[name] = event.value
            self._stamps[name] = stamp
            if len(self._events) == EVENT_CAPACITY:
                self._dropped += 1
            self._events.append(event)

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
