"""Opening hours: strict `[schedule]` and `[health]` tables, open and closed across
midnight and across daylight saving (Europe/Berlin, 2026-03-29 and 2026-10-25), and
the fade to black and back, all on an injected clock."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.schedule import Fade, OpeningHours
from runtime.show import load_show

UTC = dt.UTC
BERLIN_NIGHTS = '[schedule]\nopen = "18:00"\nclose = "02:00"\ntime_zone = "Europe/Berlin"\n'


def show_with(tmp_path: Path, tables: str) -> Path:
    path = tmp_path / "show.toml"
    path.write_text('[generator]\nkind = "cppn"\n' + tables)
    return path


def hours(tmp_path: Path, table: str, clock=None) -> OpeningHours:
    show = load_show(show_with(tmp_path, table))
    return OpeningHours(show.schedule, clock or (lambda: 0.0))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_a_schedule_and_health_table_read(tmp_path):
    show = load_show(
        show_with(
            tmp_path,
            '[schedule]\ndays = ["tue", "wed"]\nopen = "10:00"\nclose = 18:30:00\n'
            'time_zone = "Europe/Berlin"\nfade_s = 30\n[health]\nport = 8042\n',
        )
    )
    s = show.schedule
    assert s.days == {1, 2} and s.open_s == 36000 and s.close_s == 18 * 3600 + 1800
    assert str(s.zone) == "Europe/Berlin" and s.fade_s == 30.0
    assert show.health.port == 8042 and show.health.host == "127.0.0.1"
    assert load_show(show_with(tmp_path, "")).schedule is None


@pytest.mark.parametrize(
    ("table", "pattern"),
    [
        (
            '[schedule]\nopen = "10:00"\nclose = "18:00"\ntime_zone = "UTC"\nfade = 3\n',
            r"show\.toml:7: \[schedule\] 'fade': unknown key \(did you mean 'fade_s'\?\)",
        ),
        (
            '[schedule]\nopen = "25:00"\nclose = "18:00"\ntime_zone = "UTC"\n',
            r"show\.toml:4: \[schedule\] 'open': expected a time of day \"HH:MM\" .*'25:00'",
        ),
        (
            '[schedule]\nopen = "9:5"\nclose = "18:00"\ntime_zone = "UTC"\n',
            r"show\.toml:4: \[schedule\] 'open': expected a time of day",
        ),
        (
            '[schedule]\nopen = "10:00"\nclose = "24:01"\ntime_zone = "UTC"\n',
            r"show\.toml:5: \[schedule\] 'close': expected a time of day \"HH:MM\" from 00:00 "
            r"to 24:00",
        ),
        (
            '[schedule]\ndays = ["mon", "tues"]\nopen = "10:00"\nclose = "18:00"\n'
            'time_zone = "UTC"\n',
            r"show\.toml:4: \[schedule\] 'days': unknown weekday 'tues' \(did you mean 'tue'\?\)",
        ),
        (
            '[schedule]\nopen = "10:00"\nclose = "18:00"\ntime_zone = "Europe/Berln"\n',
            r"show\.toml:6: \[schedule\] 'time_zone': unknown time zone 'Europe/Berln' "
            r"\(did you mean 'Europe/Berlin'\?\)",
        ),
        (
            '[schedule]\nopen = "10:00"\nclose = "18:00"\n',
            r"show\.toml:3: \[schedule\]: missing required key 'time_zone'",
        ),
        (
            '[schedule]\nopen = "10:00"\nclose = "10:00"\ntime_zone = "UTC"\n',
            r"show\.toml:5: \[schedule\] 'close': opens and closes at the same time",
        ),
        ("[health]\nport = 0\n", r"show\.toml:4: \[health\] 'port': expected 1\.\.65535"),
        (
            "[health]\nport = 8042\nadress = 3\n",
            r"show\.toml:5: \[health\] 'adress': unknown key",
        ),
    ],
)
def test_schedule_and_health_mistakes_name_file_line_and_key(tmp_path, table, pattern):
    with pytest.raises(ConfigError) as info:
        load_show(show_with(tmp_path, table))
    assert re.search(pattern, str(info.value)), str(info.value)


def test_times_across_midnight_belong_to_the_opening_day(tmp_path):
    h = hours(tmp_path, BERLIN_NIGHTS.replace("[schedule]", '[schedule]\ndays = ["fri"]'))
    berlin = h.config.zone
    at = lambda *a: h.is_open(dt.datetime(*a, tzinfo=berlin))  # noqa: E731
    # 2026-01-09 is a Friday.
    assert not at(2026, 1, 9, 17, 59, 59)
    assert at(2026, 1, 9, 18, 0)
    assert at(2026, 1, 10, 1, 59, 59)  # Saturday night belongs to Friday
    assert not at(2026, 1, 10, 2, 0)
    assert not at(2026, 1, 10, 18, 0)  # Saturday is not an opening day
    assert not at(2026, 1, 9, 1, 0)  # Friday early morning belongs to Thursday
    assert h.next_opening(dt.datetime(2026, 1, 10, 3, 0, tzinfo=berlin)) == "fri 18:00"
    assert h.next_opening(dt.datetime(2026, 1, 9, 12, 0, tzinfo=berlin)) == "fri 18:00"


def test_daylight_saving_starts_2026_03_29_in_berlin(tmp_path):
    h = hours(tmp_path, BERLIN_NIGHTS)
    # Saturday 28 March opens at 18:00 CET = 17:00 UTC.
    assert not h.is_open(utc(2026, 3, 28, 16, 59, 59).timestamp())
    assert h.is_open(utc(2026, 3, 28, 17, 0).timestamp())
    # 02:00 local never happens that night: 01:59:59 CET is followed by 03:00 CEST,
    # so the show closes at 01:00 UTC.
    assert h.is_open(utc(2026, 3, 29, 0, 59, 59))
    assert not h.is_open(utc(2026, 3, 29, 1, 0))
    # Sunday evening opens at 18:00 CEST = 16:00 UTC, an hour earlier in UTC.
    assert not h.is_open(utc(2026, 3, 29, 15, 59, 59))
    assert h.is_open(utc(2026, 3, 29, 16, 0))


def test_a_time_in_the_skipped_hour_is_reached_just_after_it(tmp_path):
    h = hours(
        tmp_path,
        '[schedule]\ndays = ["sun"]\nopen = "02:30"\nclose = "05:00"\n'
        'time_zone = "Europe/Berlin"\n',
    )
    assert not h.is_open(utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
    assert h.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST, the first instant after 02:30


def test_daylight_saving_ends_2026_10_25_in_berlin(tmp_path):
    h = hours(tmp_path, BERLIN_NIGHTS)
    # Saturday 24 October opens at 18:00 CEST = 16:00 UTC.
    assert not h.is_open(utc(2026, 10, 24, 15, 59, 59))
    assert h.is_open(utc(2026, 10, 24, 16, 0))
    # It closes at the first 02:00 (CEST, 00:00 UTC) and stays closed through the
    # repeated hour (02:00 to 03:00 CET).
    assert h.is_open(utc(2026, 10, 24, 23, 59, 59))
    assert not h.is_open(utc(2026, 10, 25, 0, 0))
    assert not h.is_open(utc(2026, 10, 25, 1, 30))
    # Sunday evening opens at 18:00 CET = 17:00 UTC, an hour later in UTC.
    assert not h.is_open(utc(2026, 10, 25, 16, 59, 59))
    assert h.is_open(utc(2026, 10, 25, 17, 0))


class FakeClock:
    """A wall clock the test moves: a UTC timestamp."""

    def __init__(self, when: dt.datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def test_the_picture_fades_out_at_closing_rests_and_fades_back_in(tmp_path):
    # Friday 2026-10-23, in Berlin (CEST): the show closes at 02:00 on Saturday.
    clock = FakeClock(utc(2026, 10, 23, 23, 59, 50))
    h = hours(tmp_path, BERLIN_NIGHTS.replace("[schedule]", "[schedule]\nfade_s = 2"), clock)
    fade = Fade(h)
    t_s = 0.0

    def run(seconds: float) -> list[tuple[float, str]]:
        nonlocal t_s
        seen = []
        for _ in range(round(seconds / 0.1)):
            t_s += 0.1
            clock.now += 0.1
            seen.append((fade.update(t_s), fade.state))
        return seen

    assert fade.level == 1.0 and fade.state == "open" and not fade.resting
    seen = run(9.0)  # still before 02:00 CEST
    assert all(state == "open" and level == 1.0 for level, state in seen)
    seen = run(4.0)  # past 02:00: two seconds of fading, then black
    levels = [level for level, _ in seen]
    assert levels == sorted(levels, reverse=True) and levels[-1] == 0.0
    assert "closing" in {state for _, state in seen} and fade.state == "closed"
    assert sum(0.2 < level < 0.8 for level in levels) >= 4  # a ramp, not a cut
    assert fade.resting
    # Saturday 18:00 CEST = 16:00 UTC: it opens again and fades in.
    clock.now = utc(2026, 10, 24, 15, 59, 59).timestamp()
    assert run(0.5)[-1] == (0.0, "closed")
    seen = run(3.0)
    assert "opening" in {state for _, state in seen} and seen[-1] == (1.0, "open")
    assert not fade.resting


def test_a_show_started_while_closed_starts_dark(tmp_path):
    clock = lambda: utc(2026, 10, 24, 12, 0)  # noqa: E731  (an aware datetime)
    fade = Fade(hours(tmp_path, BERLIN_NIGHTS, clock))
    assert fade.level == 0.0 and fade.resting and fade.update(0.0) == 0.0
