"""The tempo clock: beat, bar and phase as signals, from one tempo source.

Signals, written once per frame:

    clock:beat        beats since the clock began (a float: 12.25 is a quarter past beat 12)
    clock:bar         bars since the clock began (beat / beats_per_bar)
    clock:phase       0..1 within the beat
    clock:bar_phase   0..1 within the bar
    clock:bpm         the tempo, beats per minute
    clock:tick/N      trigger: a pulse (1 then 0) each time the beat crosses a multiple
                      of N (tick/1 every beat, tick/4 every bar of four, tick/0.5 eighths)

    [inputs.clock]
    source = "fixed"          # fixed | tap | midi | audio | link
    bpm = 120.0               # the fixed tempo; the tempo until another source locks on
    beats_per_bar = 4
    ticks = [1, 4]            # the N of clock:tick/N (default: 1 and beats_per_bar)
    tap = "osc:/tap"          # source = "tap": the signal whose presses are taps
    tap_reset_s = 2.0         # a pause longer than this starts a new tap count

Sources:
- fixed: beat = t * bpm / 60, a pure function of the frame time (exact offline).
- tap: each press of `tap` (an OSC address, `midi:note/60`, any signal: a press is
  a write above 0, or a pulse) is a beat. The tempo is fitted to the last 8 taps; the
  first tap after a pause lands on the next bar's downbeat, later ones pull the
  phase onto the nearest beat.
- midi: follows `midi:clock/beat` and `midi:clock/bpm` from the MIDI input (MIDI
  clock, or a replayed MIDI file's tempo map), interpolating between ticks.
- audio: tempo from `audio:bpm`, phase pulled halfway onto each `audio:beat` pulse
  (the audio input's beat tracker), so a wobbly tracker does not jerk the beat.
- link: an Ableton Link session (the optional `aalink` package); quantum is
  beats_per_bar. Without aalink the clock says so once and plays the fixed bpm.

The beat never steps back by a small correction (it holds until the corrected beat
catches up); a large step back (MIDI Start, a new song position) is followed. Offline
renders use t for time: tap and link have no meaning there and play the fixed bpm.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.config import Table
from runtime.inputs.midi import fit_period
from runtime.signals import SignalBus

log = logging.getLogger(__name__)

SOURCES = ("fixed", "tap", "midi", "audio", "link")
#: The tempo range any source may set.
BPM_RANGE = (20.0, 400.0)
#: Taps used for the tempo fit.
TAP_WINDOW = 8
#: Presses closer than this to the previous one are switch bounce, not taps.
TAP_DEBOUNCE_S = 0.1
#: Share of the phase error corrected at each audio beat.
AUDIO_PHASE_GAIN = 0.5
#: How far past the last MIDI clock tick the beat may run on its own (one tick).
MIDI_LEAD_BEATS = 1 / 24
#: A correction that steps back further than this is a jump (a restart), not jitter.
JUMP_BACK_BEATS = 0.5


class _Presses:
    """Sees new presses of one bus signal without consuming snapshots.

    A press is a write of a value above 0 (a note's velocity, an OSC `1`), or a write
    of 0 when no press was seen since the last release (a pulse, or a press and
    release that both fell between two frames).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._stamp: float | None = None
        self._pressed = False
        self._last_press_s = -math.inf
        self.count = 0

    def poll(self, bus: SignalBus) -> float | None:
        """The bus time (perf_counter s) of a new press since the last poll, or None."""
        stamp = bus.last_update_s(self.name)
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        value = bus.get(self.name)
        was_pressed, self._pressed = self._pressed, value > 0
        if value <= 0 and was_pressed:
            return None
        if stamp - self._last_press_s < TAP_DEBOUNCE_S:
            return None
        self._last_press_s = stamp
        self.count += 1
        return stamp


class _LinkSession:
    """An Ableton Link peer on its own asyncio thread (aalink needs a running loop)."""

    def __init__(self, aalink: Any, bpm: float, quantum: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link", daemon=True)
        self._thread.start()

        async def make() -> Any:
            link = aalink.Link(bpm)
            link.quantum = quantum
            link.enabled = True
            return link

        self.link = asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=5.0)

    def close(self) -> None:
        self.link.enabled = False
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2.0)
        self._loop.close()


class Clock:
    """A tempo clock stepped by the frame loop (a FrameFeed).

    Args:
        source: one of SOURCES.
        bpm: the fixed tempo, and the starting tempo of the other sources.
        beats_per_bar: beats in a bar (clock:bar, bar_phase, Link's quantum).
        ticks: beat multiples that get a clock:tick/N pulse.
        tap: the tap signal (source "tap").
        tap_reset_s: a pause between taps longer than this starts a new count.
        offline: True in a frame-exact render (time is the frame's t).
        now: the live time source (perf_counter seconds, the bus's stamps).
    Thread: the frame loop (update, stop); status from any thread.
    """

    name = "clock"

    def __init__(
        self,
        *,
        source: str = "fixed",
        bpm: float = 120.0,
        beats_per_bar: int = 4,
        ticks: tuple[float, ...] = (1.0, 4.0),
        tap: str | None = None,
        tap_reset_s: float = 2.0,
        offline: bool = False,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        if offline and source in ("tap", "link"):
            log.info("clock: %s has no meaning in an offline render; fixed %g bpm", source, bpm)
            source = "fixed"
        self.source = source
        self.beats_per_bar = beats_per_bar
        self.ticks = ticks
        self.tap_reset_s = tap_reset_s
        self.offline = offline
        self._now = now
        self._bpm = bpm
        self._anchor_beat = 0.0
        self._anchor_s: float | None = None
        self._taps: list[float] = []
        self._tap_beat = 0
        self._presses = _Presses(tap) if tap else None
        self._audio_beats = _Presses("audio:beat")
        self._tick_names = {n: f"clock:tick/{n:g}" for n in ticks}
        self._last_tick: dict[float, int] = {}
        self._last_beat: float | None = None
        self._link: _LinkSession | None = None
        self._link_tried = False
        self.note = ""

    @property
    def bpm(self) -> float:
        """The tempo now. Thread: any."""
        return self._bpm

    @property
    def beat(self) -> float:
        """The beat written by the last update (0 before the first). Thread: any."""
        return self._last_beat or 0.0

    def update(self, bus: SignalBus, t_s: float) -> None:
        """Follow the tempo source and write the clock signals for this frame.

        Args:
            bus: the show's bus (read for tap, MIDI and audio; written with clock:*).
            t_s: the frame's time in seconds since the show began.
        Thread: the frame loop.
        """
        if self.source == "fixed":
            beat = t_s * self._bpm / 60.0
        else:
            now = t_s if self.offline else self._now()
            if self._anchor_s is None:
                self._anchor_s = now
            follow = {
                "tap": self._follow_tap,
                "midi": self._follow_midi,
                "audio": self._follow_audio,
                "link": self._follow_link,
            }[self.source]
            beat = follow(bus, now)
        self._write(bus, beat)

    def stop(self) -> None:
        """Leave the Link session, if one was joined; safe to call twice. Thread: main."""
        if self._link is not None:
            self._link.close()
            self._link = None

    def status(self) -> str:
        """One line for the HUD. Thread: any."""
        line = f"clock {self.source}: {self._bpm:.1f} bpm, beat {self.beat:.2f}"
        return f"{line} ({self.note})" if self.note else line

    # Sources: each returns the beat at `now` and may change the tempo.

    def _beat_at(self, when: float) -> float:
        return self._anchor_beat + (when - self._anchor_s) * self._bpm / 60.0

    def _follow_tap(self, bus: SignalBus, now: float) -> float:
        press_s = self._presses.poll(bus)
        if press_s is not None:
            self._tap(press_s)
        if not self._taps:
            self.note = f"waiting for taps on {self._presses.name}"
        return self._beat_at(now)

    def _tap(self, t: float) -> None:
        if not self._taps or t - self._taps[-1] > self.tap_reset_s:
            # A new count: its first tap is the downbeat of the nearest bar ahead.
            bar = self.beats_per_bar
            beat = self._beat_at(t)
            self._taps = [t]
            self._tap_beat = math.ceil((beat - JUMP_BACK_BEATS) / bar) * bar
            self._anchor_beat, self._anchor_s = self._tap_beat, t
            self.note = "tap again to set the tempo"
            return
        # Taps are successive beats: each lands on the next whole beat of the count.
        self._tap_beat += 1
        self._taps = [*self._taps[-(TAP_WINDOW - 1) :], t]
        period_s = fit_period(self._taps)
        if period_s > 0:
            self._bpm = min(max(60.0 / period_s, BPM_RANGE[0]), BPM_RANGE[1])
        self._anchor_beat, self._anchor_s = self._tap_beat, t
        self.note = f"{len(self._taps)} taps"

    def _follow_midi(self, bus: SignalBus, now: float) -> float:
        stamp = bus.last_update_s("midi:clock/beat")
        if stamp is None:
            self.note = "no MIDI clock yet"
            return self._beat_at(now)
        self.note = ""
        bpm = bus.get("midi:clock/bpm", self._bpm)
        if BPM_RANGE[0] <= bpm <= BPM_RANGE[1]:
            self._bpm = bpm
        beat = bus.get("midi:clock/beat")
        if self.offline or bus.get("midi:clock/running", 1.0) <= 0.5:
            return beat
        ahead = (now - stamp) * self._bpm / 60.0
        return beat + min(max(ahead, 0.0), MIDI_LEAD_BEATS)

    def _follow_audio(self, bus: SignalBus, now: float) -> float:
        bpm = bus.get("audio:bpm", 0.0)
        if BPM_RANGE[0] <= bpm <= BPM_RANGE[1] and abs(bpm - self._bpm) > 1e-3 * self._bpm:
            self._anchor_beat, self._anchor_s = self._beat_at(now), now
            self._bpm = bpm
        press_s = self._audio_beats.poll(bus)
        if press_s is not None:
            # Offline the beat tracker is stepped by the same frame clock: its beat
            # happened at this frame's time, not at its bus stamp.
            when = now if self.offline else press_s
            beat = self._beat_at(when)
            self._anchor_beat = beat + AUDIO_PHASE_GAIN * (round(beat) - beat)
            self._anchor_s = when
        self.note = "" if self._audio_beats.count else "no audio beat yet"
        return self._beat_at(now)

    def _follow_link(self, bus: SignalBus, now: float) -> float:
        if not self._link_tried:
            self._link_tried = True
            self._link = _join_link(self._bpm, self.beats_per_bar)
            if self._link is None:
                self.note = "aalink is not installed (pip install aalink): fixed bpm"
                log.warning(
                    "clock: Ableton Link needs the aalink package; playing %g bpm", self._bpm
                )
        if self._link is None:
            return self._beat_at(now)
        link = self._link.link
        self._bpm = float(link.tempo)
        self.note = f"Link, {link.num_peers} peer(s)"
        return float(link.beat)

    def _write(self, bus: SignalBus, beat: float) -> None:
        last = self._last_beat
        if last is not None and beat < last:
            if last - beat < JUMP_BACK_BEATS:
                beat = last
            else:
                last = None
        for n in self.ticks:
            index = math.floor(beat / n + 1e-9)
            if last is None:
                # Starting (or restarting): a tick fires when the beat is just past it.
                since = beat - index * n
                self._last_tick[n] = index - 1 if since < 0.25 else index
            if index > self._last_tick[n]:
                self._last_tick[n] = index
                bus.set(self._tick_names[n], 1.0)
                bus.set(self._tick_names[n], 0.0)
        self._last_beat = beat
        bar = self.beats_per_bar
        bus.set("clock:beat", beat)
        bus.set("clock:bar", beat / bar)
        bus.set("clock:phase", beat - math.floor(beat))
        bus.set("clock:bar_phase", (beat % bar) / bar)
        bus.set("clock:bpm", self._bpm)


def _join_link(bpm: float, quantum: int) -> _LinkSession | None:
    try:
        import aalink
    except ImportError:
        return None
    return _LinkSession(aalink, bpm, quantum)


def link_available() -> bool:
    """True when the aalink package (Ableton Link) can be imported. Thread: any."""
    try:
        import aalink  # noqa: F401
    except ImportError:
        return False
    return True


def _bpm_check(value: Any) -> str | None:
    lo, hi = BPM_RANGE
    return None if lo <= value <= hi else f"expected {lo:g}..{hi:g} bpm, got {value!r}"


def build(table: Table, bus: SignalBus, *, folder: Path, offline: bool) -> Clock:
    """Build the show's clock from its `[inputs.clock]` table.

    Args:
        table: the table (keys in the module docstring).
        bus: the show's bus (unused at build; the clock writes when stepped).
        folder: the show's folder (unused).
        offline: True in a frame-exact render.
    Returns:
        The Clock, a FrameFeed.
    Raises:
        ConfigError: a mistake in the table.
    Thread: main.
    """
    source = table.take(
        "source",
        str,
        "fixed",
        check=lambda v: None if v in SOURCES else f"expected one of {', '.join(SOURCES)}",
    )
    bpm = table.take("bpm", float, 120.0, check=_bpm_check)
    bar = table.take(
        "beats_per_bar", int, 4, check=lambda v: None if 1 <= v <= 32 else "expected 1..32"
    )
    ticks = table.take(
        "ticks",
        list,
        [1.0, float(bar)],
        check=lambda v: (
            None
            if v
            and all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in v)
            else "expected positive beat counts, e.g. [0.5, 1, 4]"
        ),
    )
    tap = table.take("tap", str, None)
    tap_reset_s = table.take(
        "tap_reset_s", float, 2.0, check=lambda v: None if 0.5 <= v <= 10 else "expected 0.5..10"
    )
    table.finish()
    if source == "tap" and tap is None:
        raise table.error(None, "source = 'tap' needs 'tap', the signal to tap (e.g. 'osc:/tap')")
    if tap is not None and source != "tap":
        raise table.error("tap", f"'tap' is read only with source = 'tap' (source is '{source}')")
    if tap is not None and ":" not in tap:
        raise table.error(
            "tap", f"expected a signal name source:path, e.g. 'osc:/tap'; got {tap!r}"
        )
    return Clock(
        source=source,
        bpm=bpm,
        beats_per_bar=bar,
        ticks=tuple(sorted({float(x) for x in ticks})),
        tap=tap,
        tap_reset_s=tap_reset_s,
        offline=offline,
    )
