"""Read mapping files into immutable specs (what to compute, not how).

A mapping file holds `[lfo.NAME]` oscillators, a `[set]` table of static target
values and `[[map]]` entries (docs/MAPPING.md). Reading checks every key and every
name it can: targets against what the show offers, sources against known kinds and
defined LFOs; each error names the file, the line and the key. TOML can write
`nan` and `inf`: every number is checked to be finite, so a mapping can never be
the source of a value that is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.config import Table, load_toml, suggest
from runtime.errors import MappingError
from runtime.mapping.sources import DEFAULT_LFOS, LFO_SHAPES, Lfo

#: Source kinds a signal name may start with (`kind:path`); `time` stands alone.
SOURCE_KINDS = ("osc", "midi", "audio", "clock", "hand", "lfo", "sensor", "clip", "key")
COMBINES = ("sum", "product", "max", "min", "mean")
CURVES = ("linear", "smoothstep", "ease_in", "ease_out", "exp", "log")
#: What a trigger's `sync` may wait for: the next beat or the next bar of the clock.
SYNCS = ("beat", "bar")


@dataclass(frozen=True)
class Target:
    """A mappable target: a generator control or a shader uniform.

    Attributes:
        name: dotted name, e.g. "shader.kaleido.segments".
        default, lo, hi: default value and useful range.
        doc: one line.
        integrates, steps, glide_s: see runtime.generators.base.Control.
    """

    name: str
    default: float
    lo: float
    hi: float
    doc: str = ""
    integrates: str | None = None
    steps: str | None = None
    glide_s: float = 0.25


@dataclass(frozen=True)
class MapSpec:
    """One `[[map]]` entry. Stages run in this order: combine sources, normalise by
    `in_range`, invert, clamp, curve, trigger, one-euro, envelope, smooth, scale to
    `out_range`, quantize. A synced trigger's pulse waits for the next beat or bar.

    Attributes:
        where: "file:line" for messages.
        sources: signal names.
        combine: how several sources become one value.
        target: the target name.
        in_range, out_range: (lo, hi) pairs.
        invert, clamp: flags.
        curve: a name from CURVES, or a float exponent.
        trigger: threshold for a rising-edge pulse, or None.
        one_euro: (min_cutoff_hz, beta, d_cutoff_hz) or None.
        envelope: (attack_s, release_s) or None.
        smooth_s: exponential smoothing time constant, or None.
        quantize: output step, or None.
        sync: "beat" or "bar": a trigger's pulse fires on the frame the clock
            reaches the next beat or bar (the frame `clock:tick/1` or the bar's
            tick fires), or None: at once.
    """

    where: str
    sources: tuple[str, ...]
    combine: str
    target: str
    in_range: tuple[float, float]
    out_range: tuple[float, float]
    invert: bool = False
    clamp: bool = True
    curve: str | float = "linear"
    trigger: float | None = None
    one_euro: tuple[float, float, float] | None = None
    envelope: tuple[float, float] | None = None
    smooth_s: float | None = None
    quantize: float | None = None
    sync: str | None = None

    def key(self) -> tuple:
        """Identity for keeping filter state across a hot reload (everything but
        the line it sits on). Thread: any."""
        return (
            self.sources,
            self.combine,
            self.target,
            self.in_range,
            self.out_range,
            self.invert,
            self.clamp,
            self.curve,
            self.trigger,
            self.one_euro,
            self.envelope,
            self.smooth_s,
            self.quantize,
            self.sync,
        )


@dataclass(frozen=True)
class MappingSet:
    """Everything the show's mapping files say, merged in file order.

    Attributes:
        files: the files read.
        lfos: oscillators by name (defaults plus the files' own).
        sets: static target values.
        maps: the entries, in order.
    """

    files: tuple[Path, ...]
    lfos: Mapping[str, Lfo]
    sets: Mapping[str, float]
    maps: tuple[MapSpec, ...]


def read_mappings(paths: tuple[Path, ...], targets: Mapping[str, Target]) -> MappingSet:
    """Read and check mapping files.

    Args:
        paths: the files, in order (later `[set]` values and LFOs win).
        targets: what the show offers, by name.
    Returns:
        The merged MappingSet.
    Raises:
        ConfigError / MappingError: naming the file, line and key.
    Thread: any.
    """
    lfos = dict(DEFAULT_LFOS)
    sets: dict[str, float] = {}
    maps: list[MapSpec] = []
    tables = []
    for path in paths:
        data, text = load_toml(path)
        top = Table(data, file=path, text=text, name="")
        lfo_t = top.take_table("lfo")
        for name in list(lfo_t.data):
            lfos[name] = _lfo(name, lfo_t.take_table(name, header=f"lfo.{name}"))
        lfo_t.finish()
        set_t = top.take_table("set")
        for name in list(set_t.data):
            target = _target(set_t, name, targets)
            sets[name] = _in_target_range(set_t, name, set_t.take(name, float), target)
        set_t.finish()
        entries = top.take("map", list, [])
        top.finish()
        tables.extend(
            Table(entry, file=path, text=text, name=f"map #{i + 1}", header="[map]", index=i)
            for i, entry in enumerate(entries)
        )
    for t in tables:
        maps.append(_map(t, targets, lfos))
    return MappingSet(tuple(paths), lfos, sets, tuple(maps))


def _lfo(name: str, t: Table) -> Lfo:
    if "rate_hz" in t.data and "rate_beats" in t.data:
        raise t.error(
            "rate_beats",
            "give either 'rate_hz' (cycles per second) or 'rate_beats' "
            "(cycles per beat of the clock), not both",
        )
    lfo = Lfo(
        name=name,
        shape=t.take(
            "shape",
            str,
            "sine",
            check=lambda v: (
                None
                if v in LFO_SHAPES
                else f"expected one of {', '.join(LFO_SHAPES)}{suggest(v, LFO_SHAPES)}"
            ),
        ),
        rate_hz=t.take("rate_hz", float, 0.1, check=_positive),
        phase=t.take("phase", float, 0.0, check=_finite),
        rate_beats=t.take("rate_beats", float, None, check=_positive),
    )
    t.finish()
    return lfo


def _map(t: Table, targets: Mapping[str, Target], lfos: Mapping[str, Lfo]) -> MapSpec:
    if "source" in t.data and "sources" in t.data:
        raise t.error("sources", "give either 'source' or 'sources', not both")
    if "sources" in t.data:
        sources = tuple(t.take("sources", list, check=_nonempty_strings))
    else:
        sources = (t.take("source", str),)
    for name in sources:
        _check_source(t, name, lfos)
    combine = t.take("combine", str, "sum", check=_one_of(COMBINES))
    target_name = t.take("target", str)
    target = _target(t, "target", targets, target_name)
    in_range = _pair(t, "in", (0.0, 1.0))
    if in_range[0] == in_range[1]:
        raise t.error("in", "the input range is empty: give two different numbers")
    out_range = _pair(t, "out", (target.lo, target.hi))
    curve = t.take("curve", (str, float), "linear")
    if isinstance(curve, str) and curve not in CURVES:
        raise t.error(
            "curve",
            f"expected a number (exponent) or one of {', '.join(CURVES)}"
            f"{suggest(curve, CURVES)}; got {curve!r}",
        )
    if isinstance(curve, float) and not (math.isfinite(curve) and curve > 0):
        raise t.error("curve", f"an exponent must be a number above 0, got {curve}")
    if isinstance(t.data.get("quantize"), str):
        raise t.error(
            "quantize",
            "'quantize' is the output's step (a number); to fire a trigger on the "
            f"next beat or bar write sync = {t.data['quantize']!r}",
        )
    trigger = t.take("trigger", float, None, check=_finite)
    sync = t.take("sync", str, None, check=_one_of(SYNCS))
    if sync is not None and trigger is None:
        raise t.error("sync", "'sync' delays a trigger's pulse: give 'trigger' (a threshold) too")
    spec = MapSpec(
        where=t.where().split(": ")[0],
        sources=sources,
        combine=combine,
        target=target_name,
        in_range=in_range,
        out_range=out_range,
        invert=t.take("invert", bool, False),
        clamp=t.take("clamp", bool, True),
        curve=curve,
        trigger=trigger,
        one_euro=_sub(
            t,
            "one_euro",
            ("min_cutoff_hz", 1.0, True),
            ("beta", 0.0, False),
            ("d_cutoff_hz", 1.0, True),
        ),
        envelope=_sub(t, "envelope", ("attack_s", 0.01, False), ("release_s", 0.3, False)),
        smooth_s=t.take("smooth_s", float, None, check=_positive),
        quantize=t.take("quantize", float, None, check=_positive),
        sync=sync,
    )
    t.finish()
    return spec


def _check_source(t: Table, name: str, lfos: Mapping[str, Lfo]) -> None:
    if name == "time":
        return
    kind, sep, path = name.partition(":")
    if not sep or not path:
        raise t.error(
            "source",
            f"'{name}' is not a signal name: expected 'time' or "
            f"'kind:path' with kind one of {', '.join(SOURCE_KINDS)}",
        )
    if kind not in SOURCE_KINDS:
        raise t.error(
            "source",
            f"unknown source kind '{kind}' in '{name}'"
            f"{suggest(kind, SOURCE_KINDS)}; kinds: {', '.join(SOURCE_KINDS)}",
        )
    if kind == "lfo" and path not in lfos:
        raise t.error(
            "source",
            f"no LFO named '{path}'{suggest(path, lfos)}; define it "
            f"with [lfo.{path}] or use one of: {', '.join(sorted(lfos))}",
        )
    if kind == "osc" and not path.startswith("/"):
        raise t.error("source", f"an OSC address starts with '/': expected 'osc:/{path}'")


def _target(t: Table, key: str, targets: Mapping[str, Target], name: str | None = None) -> Target:
    name = key if name is None else name
    if name not in targets:
        raise MappingError(
            f"{t.where(key)}: unknown target '{name}'{suggest(name, targets)}; "
            f"`run_show.py targets SHOW` lists them"
        )
    return targets[name]


def _in_target_range(t: Table, key: str, value: float, target: Target) -> float:
    if not target.lo <= value <= target.hi:
        raise t.error(key, f"{value} is outside {target.name}'s range {target.lo}..{target.hi}")
    return value


def _pair(t: Table, key: str, default: tuple[float, float]) -> tuple[float, float]:
    value = t.take(key, list, list(default))
    if len(value) != 2 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise t.error(key, f"expected two numbers [lo, hi], got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not math.isfinite(hi - lo):
        raise t.error(key, f"the range {value!r} is too wide: its span is beyond a float")
    return (lo, hi)


def _sub(t: Table, key: str, *fields: tuple[str, float, bool]) -> tuple[float, ...] | None:
    """An inline table of numbers: (name, default, must be above 0) per field."""
    raw = t.take(key, dict, None)
    if raw is None:
        return None
    names = [name for name, _, _ in fields]
    for name in raw:
        if name not in names:
            raise t.error(
                key, f"unknown key '{name}'{suggest(name, names)}; known keys: {', '.join(names)}"
            )
    values = []
    for name, default, positive in fields:
        value = raw.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
            or (positive and value == 0)
        ):
            least = "above 0" if positive else "of 0 or more"
            raise t.error(key, f"'{name}': expected a number {least}, got {value!r}")
        values.append(float(value))
    return tuple(values)


def _one_of(options: tuple[str, ...]):
    def check(value: str) -> str | None:
        return (
            None
            if value in options
            else (f"expected one of {', '.join(options)}{suggest(value, options)}; got {value!r}")
        )

    return check


def _positive(value: float) -> str | None:
    return None if 0 < value < math.inf else f"expected a number above 0, got {value}"


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else f"expected a finite number, got {value}"


def _nonempty_strings(value: list) -> str | None:
    if value and all(isinstance(v, str) for v in value):
        return None
    return "expected a non-empty array of signal names"
