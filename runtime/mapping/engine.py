"""The mapping engine: signals in, target values out, once per frame.

It reads the bus snapshot and the frame time, runs every `[[map]]` entry's stages,
sums entries that share a target, integrates rate controls (`latent.speed` into
`latent.phase`) and glides step controls (`latent.hop`). Beat-locked LFOs and synced
triggers read the clock's `clock:beat` and `clock:bar` from the same snapshot (without
a clock: 120 bpm from t = 0, in 4/4), so they are as frame-exact as the clock.
Mapping files hot-reload: a bad edit is reported with its file and line and the last
good mapping keeps running.

Whatever comes in (NaN, +-inf, 1e308), what goes out is finite: a sample that is
not finite is ignored (the entry holds its last output), every stage saturates
instead of overflowing, an entry's value is kept within reach of its target's range
before its filters (so they never wind up far beyond it), and every target's value
is clamped to its declared range. The integrated states therefore stay finite too.
"""

from __future__ import annotations

import logging
import math
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from runtime.errors import ConfigError
from runtime.files import stamp
from runtime.filters import Envelope, OneEuro, Smooth
from runtime.mapping.sources import beat_without_clock
from runtime.mapping.spec import MappingSet, MapSpec, Target, read_mappings
from runtime.signals import Snapshot

log = logging.getLogger(__name__)

#: A trigger re-arms once its value falls this far (normalised) below the threshold.
TRIGGER_HYSTERESIS = 0.05

_MAX = sys.float_info.max
#: The largest argument of math.exp that does not overflow (log of the largest float).
_EXP_MAX = math.log(_MAX)


def _saturate(x: float) -> float:
    """x with +-inf replaced by the largest finite float of that sign."""
    return min(max(x, -_MAX), _MAX)


def shape(spec: MapSpec, x: float) -> float:
    """The memoryless stages: normalise by `in`, invert, clamp, curve.

    Unclamped values outside 0..1 go through the curves as far as floats allow and
    saturate there; the power and log curves mirror below 0.

    Args:
        spec: the entry.
        x: the combined source value (+-inf is taken as the largest float).
    Returns:
        The shaped value, finite (0..1 when clamped).
    Thread: any.
    """
    lo, hi = spec.in_range
    x = (x - lo) / (hi - lo)  # never NaN: the spec keeps the span finite and non-zero
    if spec.invert:
        x = 1.0 - x
    x = min(max(x, 0.0), 1.0) if spec.clamp else _saturate(x)
    curve = spec.curve
    if curve == "linear":
        return x
    if isinstance(curve, float):
        try:
            return math.copysign(abs(x) ** curve, x)
        except OverflowError:
            return math.copysign(_MAX, x)
    if curve == "smoothstep":
        y = x * x * (3.0 - 2.0 * x)
    elif curve == "ease_in":
        y = x * x
    elif curve == "ease_out":
        y = 1.0 - (1.0 - x) * (1.0 - x)
    elif curve == "exp":  # slow start, fast end: for zooms and frequencies
        y = (math.exp(min(4.0 * x, _EXP_MAX)) - 1.0) / (math.exp(4.0) - 1.0)
    else:  # "log": fast start, slow end
        y = math.copysign(math.log1p((math.e - 1.0) * abs(x)), x)
    return _saturate(y)


class _MapState:
    """The filters, trigger memory and last output of one entry.

    Args:
        spec: the entry.
        target: its target (its range bounds what the filters are fed).
    """

    def __init__(self, spec: MapSpec, target: Target) -> None:
        self.armed = True
        self.waiting = False  # a synced trigger fired and waits for its beat or bar
        self.one_euro = OneEuro(*spec.one_euro) if spec.one_euro else None
        self.envelope = Envelope(*spec.envelope) if spec.envelope else None
        self.smooth = Smooth(spec.smooth_s) if spec.smooth_s else None
        self.last: float | None = None
        self.low, self.high = _reach(spec, target)

    def step(
        self, spec: MapSpec, samples: list[float], dt_s: float, ticks: Mapping[str, bool]
    ) -> float | None:
        """Run the stages on this frame's samples.

        Args:
            spec: the entry.
            samples: its input values this frame, oldest first (several only for a
                trigger); those that are not finite are ignored.
            dt_s: time since the previous frame.
            ticks: {"beat": ..., "bar": ...}: whether this frame is the first at or
                past a beat or bar boundary (a synced trigger fires then).
        Returns:
            The entry's output (finite); without a finite sample a trigger does not
            fire, any other entry gives its last output (None before its first).
        """
        samples = [x for x in samples if math.isfinite(x)]
        if spec.trigger is None:
            if not samples:
                return self.last
            y = shape(spec, samples[-1])
        else:
            fired = False
            for x in samples:
                v = shape(spec, x)
                if self.armed and v >= spec.trigger:
                    fired, self.armed = True, False
                elif not self.armed and v < spec.trigger - TRIGGER_HYSTERESIS:
                    self.armed = True
            if spec.sync is not None:
                self.waiting = self.waiting or fired
                fired = self.waiting and ticks[spec.sync]
                self.waiting = self.waiting and not fired
            y = 1.0 if fired else 0.0
        # Anti-windup: an unclamped entry far beyond its target's range would leave
        # its filters there for minutes after one huge value.
        y = min(max(y, self.low), self.high)
        if self.one_euro:
            y = self.one_euro(y, dt_s)
        if self.envelope:
            y = self.envelope(y, dt_s)
        if self.smooth:
            y = self.smooth(y, dt_s)
        lo, hi = spec.out_range
        y = _saturate(lo + y * (hi - lo))
        if spec.quantize:
            # round(v, 0) keeps a float: round(v) would raise for an overflowed v.
            y = _saturate(round(y / spec.quantize, 0) * spec.quantize)
        self.last = y
        return y


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _combine(how: str, values: list[float]) -> float:
    """Several finite source values as one (+-inf where a sum or product overflows)."""
    if how == "sum":
        return sum(values)
    if how == "product":
        # A zero factor wins over an overflow (inf * 0 would be NaN).
        return 0.0 if 0.0 in values else math.prod(values)
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    return sum(values) / len(values)


def _reach(spec: MapSpec, target: Target) -> tuple[float, float]:
    """The shaped values (before `out` scaling) worth feeding an entry's filters:
    0..1, widened to whatever lands within one target span of the target's range
    (so entries summed onto one target can still offset each other)."""
    out_lo, out_hi = spec.out_range
    span_out = out_hi - out_lo
    if span_out == 0.0:
        return 0.0, 1.0
    span = target.hi - target.lo
    a = _saturate((target.lo - span - out_lo) / span_out)
    b = _saturate((target.hi + span - out_lo) / span_out)
    return min(a, b, 0.0), max(a, b, 1.0)


def _moved(spec: MapSpec, events: Mapping[str, list[float]]) -> bool:
    """Whether an entry's sources sent something this frame (`time` and LFOs
    always move)."""
    return any(name == "time" or name.startswith("lfo:") or name in events for name in spec.sources)


class _Glide:
    """A step control's state: whole steps taken, and where the glide has got to."""

    def __init__(self) -> None:
        self.goal = 0.0
        self.now = 0.0
        self.high = False


class MappingEngine:
    """Evaluates a show's mapping files every frame.

    Args:
        paths: the show's mapping files.
        targets: every target the show offers, by name.
    Raises:
        ConfigError: the files are invalid at start (a running engine never raises
            for a bad edit: see `reload_if_changed`).
    Thread: main (the frame loop) only.
    """

    def __init__(self, paths: tuple[Path, ...], targets: Mapping[str, Target]) -> None:
        self.paths = paths
        self.targets = dict(targets)
        self.mappings: MappingSet = read_mappings(paths, self.targets)
        self._states = self._carry_states({}, self.mappings)
        self._stamps = self._stat()
        # Rate and step controls, and the states they move (found once, not per frame).
        self._rates = [t for t in self.targets.values() if t.integrates]
        self._steppers = [t for t in self.targets.values() if t.steps]
        self._integrals = {t.integrates: 0.0 for t in self._rates}
        self._glides = {t.steps: _Glide() for t in self._steppers}
        self._state_names = sorted(set(self._integrals) | set(self._glides))
        self._last_beats: tuple[float, float] | None = None
        self.error: str | None = None
        #: Base values set while playing (scenes, OSC `/ls/TARGET`): over `[set]`.
        self.base: dict[str, float] = {}
        #: Targets whose base value was set last (the last writer wins): their
        #: `[[map]]` entries wait until one of their sources sends a new value (a
        #: fader is picked up when it moves; `time` and LFOs never wait).
        self.held: set[str] = set()

    def evaluate(self, snapshot: Snapshot, t_s: float, dt_s: float) -> dict[str, float]:
        """Every target's value for this frame, plus integrated states.

        Args:
            snapshot: the bus for this frame (values that are not finite are
                ignored: the entries they feed hold their last output).
            t_s: the frame's time.
            dt_s: time since the previous frame (1 / fps offline).
        Returns:
            {name: value} for every target, within the target's [lo, hi], and every
            state (e.g. "latent.phase"), finite.
        Thread: main.
        """
        values = {name: target.default for name, target in self.targets.items()}
        values.update(self.mappings.sets)
        values.update(self.base)
        events: dict[str, list[float]] = defaultdict(list)
        for event in snapshot.events:
            events[event.name].append(event.value)
        if self.held:
            for spec in self.mappings.maps:
                if spec.target in self.held and _moved(spec, events):
                    self.held.discard(spec.target)
        beat = _finite_or_none(snapshot.values.get("clock:beat"))
        ticks = self._ticks(snapshot, t_s, beat)
        mapped: dict[str, float] = {}
        for spec, state in zip(self.mappings.maps, self._states):
            if spec.target in self.held:
                continue
            samples = self._samples(spec, snapshot, events, t_s, beat)
            if samples is None:
                continue
            y = state.step(spec, samples, dt_s, ticks)
            if y is not None:
                mapped[spec.target] = mapped.get(spec.target, 0.0) + y
        values.update(mapped)
        for name, target in self.targets.items():
            # In this order a NaN would come out as `hi`: in range whatever happens.
            values[name] = max(target.lo, min(target.hi, values[name]))
        for target in self._rates:
            self._integrals[target.integrates] += values[target.name] * dt_s
        for target in self._steppers:
            glide = self._glides[target.steps]
            high = values[target.name] > 0.5
            if high and not glide.high:
                glide.goal += 1.0
            glide.high = high
            rate = 4.0 / max(target.glide_s, 1e-3)  # 98% arrived after glide_s
            glide.now += (glide.goal - glide.now) * (1.0 - math.exp(-rate * dt_s))
        for name in self._state_names:
            glide = self._glides.get(name)
            values[name] = self._integrals.get(name, 0.0) + (glide.now if glide else 0.0)
        return values

    def _ticks(self, snapshot: Snapshot, t_s: float, beat: float | None) -> dict[str, bool]:
        """Whether this frame is the first at or past a beat and a bar boundary (as
        the clock's own ticks count them; the very first frame only when it sits on
        one). A step back (MIDI Start) crosses nothing."""
        if beat is None:
            beat = beat_without_clock(t_s)
        bar = _finite_or_none(snapshot.values.get("clock:bar"))
        if bar is None:
            bar = beat / 4.0
        now = (math.floor(beat + 1e-9), math.floor(bar + 1e-9))
        last = self._last_beats
        self._last_beats = (beat, bar)
        if last is None:
            return {"beat": beat - now[0] < 1e-6, "bar": bar - now[1] < 1e-6}
        before = (math.floor(last[0] + 1e-9), math.floor(last[1] + 1e-9))
        return {"beat": now[0] > before[0], "bar": now[1] > before[1]}

    def _samples(
        self,
        spec: MapSpec,
        snapshot: Snapshot,
        events: dict[str, list[float]],
        t_s: float,
        beat: float | None,
    ) -> list[float] | None:
        """The entry's input values this frame, or None while no source has a value
        yet (an untouched fader leaves its target at the `[set]` or default value).
        Of several sources, only those with a finite value are combined."""
        if len(spec.sources) == 1:
            name = spec.sources[0]
            current = self._signal(name, snapshot, t_s, beat)
            if current is None:
                return None
            if spec.trigger is not None and events.get(name):
                return events[name]
            return [current]
        found = [
            v for v in (self._signal(n, snapshot, t_s, beat) for n in spec.sources) if v is not None
        ]
        if not found:
            return None
        found = [v for v in found if math.isfinite(v)]
        if not found:
            return []
        return [_saturate(_combine(spec.combine, found))]

    def _signal(
        self, name: str, snapshot: Snapshot, t_s: float, beat: float | None
    ) -> float | None:
        if name == "time":
            return t_s
        if name.startswith("lfo:"):
            return self.mappings.lfos[name[4:]].value(t_s, beat)
        return snapshot.values.get(name)

    def reload_if_changed(self) -> str | None:
        """Re-read the mapping files if any changed on disk.

        On a bad edit the last good mapping keeps running and the error (file, line,
        key) is kept in `self.error` and logged once.

        Returns:
            A one-line message when something changed ("mapping reloaded" or the
            error), else None.
        Thread: main (cheap enough to call every half second: one stat per file).
        """
        stamps = self._stat()
        if stamps == self._stamps:
            return None
        self._stamps = stamps
        try:
            mappings = read_mappings(self.paths, self.targets)
        except ConfigError as exc:
            self.error = f"mapping not reloaded, keeping the last good one: {exc}"
            log.error("%s", self.error)
            return self.error
        self._states = self._carry_states(
            dict(zip(self._keys(self.mappings), self._states)), mappings
        )
        self.mappings = mappings
        self.error = None
        log.info(
            "mapping reloaded: %d entries from %d file(s)", len(mappings.maps), len(self.paths)
        )
        return "mapping reloaded"

    def _carry_states(self, old: dict[tuple, _MapState], mappings: MappingSet) -> list[_MapState]:
        # An unchanged entry keeps its filter state, so a reload does not jolt it.
        return [
            old.get(key) or _MapState(spec, self.targets[spec.target])
            for key, spec in zip(self._keys(mappings), mappings.maps)
        ]

    @staticmethod
    def _keys(mappings: MappingSet) -> list[tuple]:
        seen: dict[tuple, int] = defaultdict(int)
        keys = []
        for spec in mappings.maps:
            key = spec.key()
            keys.append((key, seen[key]))
            seen[key] += 1
        return keys

    def _stat(self) -> list[tuple[int, int] | None]:
        return [stamp(path) for path in self.paths]
