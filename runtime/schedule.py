"""Opening hours: outside them the picture fades to black and the generator rests.

A show's `[schedule]` (runtime/show.py `ScheduleConfig`) names weekdays, an opening
and a closing time and a time zone. Times are wall-clock times in that zone, so
opening at 10:00 stays 10:00 across daylight saving. A closing time earlier than the
opening time is on the next day: `days = ["fri"]`, open 18:00, close 02:00 plays from
Friday 18:00 to Saturday 02:00. On the night the clocks skip an hour, a time inside
the skipped hour is reached at the first instant after it.

The frame loop asks `Fade.update` once per frame (arithmetic only); the clock and
the zone are consulted a few times a second. Live only: an offline render ignores
the schedule, so it stays a pure function of the show.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from runtime.show import DAY_S, WEEKDAYS, ScheduleConfig

log = logging.getLogger(__name__)

#: How often the fade asks the clock whether the show is open.
CHECK_EVERY_S = 0.25

#: A wall clock: an aware datetime, or a UTC timestamp in seconds.
Clock = Callable[[], "dt.datetime | float"]


class OpeningHours:
    """Answers "is the show open?" for a `[schedule]`.

    Args:
        config: the schedule.
        clock: now, as an aware datetime or a UTC timestamp (default time.time);
            tests inject their own.
    Thread: any.
    """

    def __init__(self, config: ScheduleConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock

    def local(self, when: dt.datetime | float | None = None) -> dt.datetime:
        """`when` (default: the clock's now) as a wall-clock time in the show's zone.

        Raises:
            ValueError: `when` is a naive datetime (its zone would be a guess).
        Thread: any.
        """
        if when is None:
            when = self.clock()
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise ValueError("the schedule's clock gave a naive datetime; give a zone")
            return when.astimezone(self.config.zone)
        return dt.datetime.fromtimestamp(when, self.config.zone)

    def is_open(self, when: dt.datetime | float | None = None) -> bool:
        """True while the show is open. Thread: any."""
        local = self.local(when)
        c = self.config
        now_s = local.hour * 3600 + local.minute * 60 + local.second
        today = local.weekday() in c.days
        if c.open_s < c.close_s:
            return today and c.open_s <= now_s < c.close_s
        yesterday = (local.weekday() - 1) % 7 in c.days
        return (today and now_s >= c.open_s) or (yesterday and now_s < c.close_s)

    def next_opening(self, when: dt.datetime | float | None = None) -> str:
        """When the show opens next, e.g. "tue 10:00". Thread: any."""
        local = self.local(when)
        c = self.config
        now_s = local.hour * 3600 + local.minute * 60 + local.second
        ahead = next(
            (
                k
                for k in range(8)
                if (local.weekday() + k) % 7 in c.days and (k > 0 or now_s < c.open_s)
            ),
            0,
        )
        day = WEEKDAYS[(local.weekday() + ahead) % 7]
        return f"{day} {_clock_text(c.open_s)}"


class Fade:
    """The picture's level over the opening hours: 1 open, 0 closed, and a ramp of
    `fade_s` between them. A show started while closed starts dark; one started
    while open starts lit.

    Args:
        hours: the opening hours.
    Attributes:
        level: 0..1, what the picture is multiplied by.
        open: the last answer of the opening hours.
    Thread: main (the frame loop).
    """

    def __init__(self, hours: OpeningHours) -> None:
        self.hours = hours
        self.open = hours.is_open()
        self.level = 1.0 if self.open else 0.0
        self._rate_per_s = 1.0 / max(hours.config.fade_s, 1e-3)
        self._last_t_s: float | None = None
        self._next_check_s = 0.0
        if not self.open:
            log.info("closed (opens %s): the picture stays black", hours.next_opening())

    @property
    def resting(self) -> bool:
        """True when closed and faded out: the generator need not run. Thread: main."""
        return not self.open and self.level == 0.0

    @property
    def state(self) -> str:
        """ "open", "closing", "closed" or "opening". Thread: main."""
        if self.open:
            return "open" if self.level == 1.0 else "opening"
        return "closed" if self.level == 0.0 else "closing"

    def update(self, t_s: float) -> float:
        """Move the level towards open or closed.

        Args:
            t_s: the loop's time (monotonic seconds); the ramp follows it, so a
                stalled loop does not jump.
        Returns:
            The level, 0..1.
        Thread: main.
        """
        if t_s >= self._next_check_s:
            self._next_check_s = t_s + CHECK_EVERY_S
            is_open = self.hours.is_open()
            if is_open != self.open:
                self.open = is_open
                fade_s = self.hours.config.fade_s
                if is_open:
                    log.info("opening: fading in over %g s", fade_s)
                else:
                    log.info(
                        "closing: fading to black over %g s (opens %s)",
                        fade_s,
                        self.hours.next_opening(),
                    )
        step = 0.0 if self._last_t_s is None else (t_s - self._last_t_s) * self._rate_per_s
        self._last_t_s = t_s
        target = 1.0 if self.open else 0.0
        if self.level != target:
            self.level = min(self.level + step, 1.0) if self.open else max(self.level - step, 0.0)
        return self.level


def _clock_text(seconds: int) -> str:
    seconds %= DAY_S
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
