"""Load and validate a show: one TOML file naming a generator, outputs, inputs,
mapping files and the shader passes.

    [show]       name, description
    [generator]  kind, seed, size, weights (a path) or model (a catalogue name),
                 device, and options of that kind (deck A)
    [deck.b]     a second generator, the same keys: two decks and a crossfader
                 (runtime/decks.py)
    [output]     size, fps, fullscreen, monitor, vsync, ndi
    [inputs.X]   one table per input (osc, midi, audio, clock, hands), read by its module
    mappings = ["../mappings/demo.toml"]    (top level, before any table)
    [[neural]]   kind ("dream", "style"), name, weights or model, and options of
                 that kind: torch stages on the generator's frame, in order
    [[effects]]  shader, name
    [clip]       model, pretrained or weights, prompts, ...: CLIP steers the
                 generator towards text prompts and reads the picture as signals
    [schedule]   days, open, close, time_zone, fade_s: opening hours (live only)
    [health]     port, host: a JSON health endpoint (live only)
    [scenes]     fade_s, start, file, and [scenes.NAME] tables: scenes (runtime/scenes.py)
    [osc_out]    host, port, max_hz: state sent to a controller (runtime/osc_out.py)

Relative paths resolve against the show file's folder. A shader is a name found in
the project's shaders/ folder (`kaleido` -> shaders/kaleido.glsl) or a path ending
in .glsl. Every mistake is a ConfigError naming the file, line, key and what was
expected; unknown keys are errors.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import PROJECT_ROOT
from runtime.config import Table, in_range, load_toml, suggest
from runtime.errors import ConfigError
from runtime.osc_out import OscOutConfig, read_osc_out
from runtime.scenes import ScenesConfig, read_scenes

SHADER_DIR = PROJECT_ROOT / "shaders"
GENERATOR_KINDS = ("cppn", "stylegan", "biggan")
NEURAL_KINDS = ("dream", "style")
# In the order their frame feeds step: the clock after MIDI and audio.
INPUT_KINDS = ("osc", "midi", "audio", "clock", "hands")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RE = re.compile(r"^(\d\d):(\d\d)(?::(\d\d))?$")
DAY_S = 24 * 3600


@dataclass(frozen=True)
class GeneratorConfig:
    """The `[generator]` table.

    Attributes:
        kind: generator family ("cppn", "stylegan", "biggan").
        seed: the seed every random choice of the generator starts from.
        size_px: (width, height) of generated frames.
        weights: the checkpoint path, for families that need one.
        device: "auto", "cpu" or "cuda[:N]".
        options: the family's own keys, read strictly by the family's builder.
        model: the catalogue name the weights came from (`model = "NAME"`), if any.
    """

    kind: str
    seed: int
    size_px: tuple[int, int]
    weights: Path | None
    device: str
    options: Table
    model: str | None = None


@dataclass(frozen=True)
class NeuralConfig:
    """One `[[neural]]` stage.

    Attributes:
        kind: the stage family ("dream", "style").
        name: its target prefix (default: the kind), unique in the show.
        weights: the weights path the show gives, if any.
        model: the catalogue name the show gives (`model = "NAME"`), if any; with
            neither, the stage picks its family's default catalogue model.
        options: the family's own keys, read strictly by the family's builder.
        budget_ms: live, the time the stage may take per generated frame (a dream
            takes fewer steps to keep it); None: one frame at the show's fps.
    """

    kind: str
    name: str
    weights: Path | None
    model: str | None
    options: Table
    budget_ms: float | None = None


@dataclass(frozen=True)
class ClipConfig:
    """The `[clip]` table: CLIP steering towards prompts, and `clip:` signals.

    Attributes:
        model: an open_clip architecture ("ViT-B-32") or a path to an open_clip
            model config (.json).
        pretrained: open_clip's tag for the weights ("laion2b_s34b_b79k"), found in
            the catalogue as `clip-MODEL-TAG`; None: `weights`, or the first tag the
            catalogue has for the model.
        weights: a state dict file, instead of `pretrained`.
        device: "auto", "cpu" or "cuda[:N]".
        prompts: prompt name -> text, in show order.
        osc: the OSC address whose string argument sets a prompt (`/prompt "text"`
            sets the first prompt, `/prompt/NAME "text"` sets or adds NAME).
        steer: run the steering worker (False: only the `clip:` signals).
        shared: StyleGAN: one offset for every layer (steering in w, nearer the
            generator's manifold) instead of one per layer (w+, freer).
        cutouts: random crops per steering step (Big Sleep's augmentation).
        steps_per_frame: steering steps per frame offline, and the live pace (this
            many per frame at the show's fps, or fewer when the machine is slower).
        glide_s: how long the generator takes to glide to a new steering result.
        anchor: how strongly the steered latent is pulled back to the walk's own.
        learning_rate: Adam's step, as a fraction of the latent's RMS, at
            `clip.speed` 1.
        watch_hz: live `clip:` signal measurements per second (offline: as many
            per second of the render).
        watch_range: the cosine similarities that map to 0 and 1 for `clip:NAME`.
    """

    model: str
    pretrained: str | None
    weights: Path | None
    device: str
    prompts: dict[str, str]
    osc: str = "/prompt"
    steer: bool = True
    shared: bool = False
    cutouts: int = 8
    steps_per_frame: int = 1
    glide_s: float = 0.5
    anchor: float = 0.2
    learning_rate: float = 0.03
    watch_hz: float = 4.0
    watch_range: tuple[float, float] = (0.15, 0.35)


@dataclass(frozen=True)
class OutputConfig:
    """The `[output]` table: canvas and window.

    Attributes:
        size_px: (width, height) of the window and of headless renders.
        canvas_px: (width, height) the shader passes render at (default: size_px); a
            smaller canvas renders faster and is scaled up to the window or video.
        fps: the fixed frame rate (the frame budget is 1 / fps).
        fullscreen: open fullscreen on `monitor`.
        monitor: monitor index for fullscreen (`run_show.py devices` lists them).
        vsync: wait for the display's refresh on swap.
        ndi: send the live frames as an NDI source of this name (runtime/render/ndi.py),
            or None.
    """

    size_px: tuple[int, int] = (1280, 720)
    canvas_px: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    fullscreen: bool = False
    monitor: int = 0
    vsync: bool = True
    ndi: str | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    """The `[schedule]` table: opening hours. Outside them the picture fades to black
    and the generator rests (runtime/schedule.py).

    Attributes:
        days: the weekdays the show opens, 0 = Monday.
        open_s: opening, in seconds after local midnight.
        close_s: closing, in seconds after local midnight (86400 for "24:00"); below
            `open_s`, it is on the next day (open 18:00, close 02:00).
        zone: the time zone the times are in (daylight saving included).
        fade_s: how long the fade to black (and back) takes.
    """

    days: frozenset[int]
    open_s: int
    close_s: int
    zone: zoneinfo.ZoneInfo
    fade_s: float = 10.0


@dataclass(frozen=True)
class HealthConfig:
    """The `[health]` table: an HTTP endpoint answering GET with the show's health
    as JSON (runtime/health.py).

    Attributes:
        port: the TCP port.
        host: the address to listen on ("0.0.0.0": every interface).
    """

    port: int
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class EffectConfig:
    """One `[[effects]]` pass: its target prefix name and its shader file."""

    name: str
    shader_path: Path


@dataclass(frozen=True)
class Show:
    """A validated show.

    Attributes:
        path: the show file.
        name: display name.
        description: free text.
        generator: the generator table.
        output: the output table.
        mapping_paths: mapping files, in order.
        neural: torch stages on the generator's frame, in order.
        clip: the `[clip]` table, or None.
        effects: shader passes, in order.
        inputs: the `[inputs.*]` tables by input kind, read strictly by their modules.
        schedule: the `[schedule]` table, or None (open all the time).
        health: the `[health]` table, or None (no endpoint).
        scenes: the `[scenes]` table and its scenes, or None (no scenes).
        osc_out: the `[osc_out]` table, or None (nothing sent).
        deck_b: the `[deck.b]` table (a second deck, runtime/decks.py), or None.
    """

    path: Path
    name: str
    description: str
    generator: GeneratorConfig
    output: OutputConfig
    mapping_paths: tuple[Path, ...]
    effects: tuple[EffectConfig, ...]
    neural: tuple[NeuralConfig, ...] = ()
    clip: ClipConfig | None = None
    inputs: dict[str, Table] = field(default_factory=dict)
    schedule: ScheduleConfig | None = None
    health: HealthConfig | None = None
    scenes: ScenesConfig | None = None
    osc_out: OscOutConfig | None = None
    deck_b: GeneratorConfig | None = None

    @property
    def folder(self) -> Path:
        """The show file's folder: relative paths resolve against it."""
        return self.path.parent


def load_show(path: str | Path) -> Show:
    """Read and validate a show file (not its mapping files: see runtime.mapping).

    Args:
        path: the show's TOML file.
    Returns:
        The validated Show.
    Raises:
        ConfigError: naming the file, line, key and what was expected.
    Thread: any.
    """
    path = Path(path)
    data, text = load_toml(path)
    top = Table(data, file=path, text=text, name="")
    base = path.parent

    show_t = top.take_table("show")
    name = show_t.take("name", str, path.stem)
    description = show_t.take("description", str, "")
    show_t.finish()

    generator = _generator(top.take_table("generator"), base)
    deck_b = _deck_b(top.take_table("deck"), base)
    output = _output(top.take_table("output"))

    inputs_t = top.take_table("inputs")
    inputs = {}
    for key, value in inputs_t.rest().items():
        if key not in INPUT_KINDS:
            raise inputs_t.error(
                key, f"unknown input{suggest(key, INPUT_KINDS)}; inputs: {', '.join(INPUT_KINDS)}"
            )
        if not isinstance(value, dict):
            raise inputs_t.error(key, f"expected a table [inputs.{key}]")
        inputs[key] = Table(
            value, file=path, text=text, name=f"inputs.{key}", header=f"inputs.{key}"
        )

    mapping_paths = tuple(
        _existing(top, "mappings", base / p)
        for p in top.take("mappings", list, [], check=_all_strings)
    )

    neural = _neural(top, base)
    clip = _clip(top.take_table("clip"), base) if "clip" in data else None
    if generator.device == "gl" and (neural or (clip is not None and clip.steer)):
        raise ConfigError(
            f"{path}: [generator] 'device': 'gl' draws the cppn on the GL side, but "
            f"{'[[neural]] stages' if neural else 'CLIP steering'} need its frames in torch: "
            'use device = "auto" (it picks torch then) or "cpu"'
        )
    effects = _effects(top, base)
    schedule = _schedule(top.take_table("schedule")) if "schedule" in data else None
    health = _health(top.take_table("health")) if "health" in data else None
    scenes = read_scenes(top.take_table("scenes"), base) if "scenes" in data else None
    osc_out = read_osc_out(top.take_table("osc_out")) if "osc_out" in data else None
    top.finish()
    return Show(
        path=path,
        name=name,
        description=description,
        generator=generator,
        output=output,
        mapping_paths=mapping_paths,
        effects=effects,
        neural=neural,
        clip=clip,
        inputs=inputs,
        schedule=schedule,
        health=health,
        scenes=scenes,
        osc_out=osc_out,
        deck_b=deck_b,
    )


def _deck_b(t: Table, base: Path) -> GeneratorConfig | None:
    """`[deck.b]`: deck B's generator ([generator] is deck A), or None."""
    for key in t.data:
        if key != "b":
            # Located at its own header when it is a table ([deck.c]), else at the key.
            header = f"deck.{key}" if isinstance(t.data[key], dict) else None
            at = Table({}, file=t.file, text=t.text, name=header or "deck", header=header)
            raise (at if header else t).error(
                None if header else key,
                "a show has two decks: [generator] is deck A and [deck.b] is deck B "
                "(with the keys of [generator])",
            )
    if "b" not in t.data:
        return None
    return _generator(t.take_table("b", header="deck.b"), base)


def _generator(t: Table, base: Path) -> GeneratorConfig:
    kind = t.take("kind", str, "cppn", check=_one_of(GENERATOR_KINDS))
    seed = t.take("seed", int, 0, check=_non_negative)
    size_px = _size(t, "size", (512, 512))
    weights_s = t.take("weights", str, None)
    model = t.take("model", str, None)
    device = t.take("device", str, "auto", check=_generator_device)
    if device == "gl" and kind != "cppn":
        raise t.error(
            "device",
            f"'gl' draws the weightless cppn in a shader; kind '{kind}' renders in torch: "
            "use auto, cpu or cuda[:N]",
        )
    weights = base / weights_s if weights_s else None
    if model is not None:
        weights = _catalogue_weights(t, kind, model, weights)
    if kind != "cppn" and weights is None:
        raise t.error(
            None, f"kind '{kind}' needs 'weights' (a checkpoint path) or 'model' (a catalogue name)"
        )
    options = Table(
        t.rest(),
        file=t.file,
        text=t.text,
        name=t.name,
        header=t.header,
        known=("kind", "seed", "size", "weights", "model", "device"),
    )
    t.finish()
    return GeneratorConfig(kind, seed, size_px, weights, device, options, model)


def _neural(top: Table, base: Path) -> tuple[NeuralConfig, ...]:
    entries = top.take("neural", list, [])
    stages: list[NeuralConfig] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise top.error("neural", "expected [[neural]] tables")
        t = Table(
            entry, file=top.file, text=top.text, name=f"neural #{i + 1}", header="[neural]", index=i
        )
        kind = t.take("kind", str, check=_one_of(NEURAL_KINDS))
        name = t.take("name", str, kind, check=_identifier)
        if any(s.name == name for s in stages):
            raise t.error("name", f"two neural stages are named '{name}': give one a 'name'")
        weights_s = t.take("weights", str, None)
        model = t.take("model", str, None)
        budget_ms = t.take("budget_ms", float, None, check=in_range(1.0, 10_000.0))
        weights = base / weights_s if weights_s else None
        if model is not None:
            weights = _catalogue_weights(t, kind, model, weights)
        options = Table(
            t.rest(),
            file=t.file,
            text=t.text,
            name=f"neural #{i + 1}",
            header="[neural]",
            index=i,
            known=("kind", "name", "weights", "model", "budget_ms"),
        )
        t.finish()
        stages.append(NeuralConfig(kind, name, weights, model, options, budget_ms))
    return tuple(stages)


def _clip(t: Table, base: Path) -> ClipConfig:
    model = t.take("model", str, "ViT-B-32")
    if model.endswith(".json"):
        model = str(_existing(t, "model", base / model))
    pretrained = t.take("pretrained", str, None)
    weights_s = t.take("weights", str, None)
    if pretrained is not None and weights_s is not None:
        raise t.error("weights", "give either 'pretrained' (a catalogue tag) or 'weights' (a path)")
    prompts_t = t.take_table("prompts", header="clip.prompts")
    prompts = {}
    for name, text in prompts_t.rest().items():
        if not _NAME_RE.match(name):
            raise prompts_t.error(name, "a prompt name is lowercase letters, digits and _")
        if not isinstance(text, str) or not text.strip():
            raise prompts_t.error(name, f"expected the prompt's text, got {text!r}")
        prompts[name] = text
    if not prompts:
        raise t.error("prompts", 'expected at least one prompt: [clip.prompts] NAME = "text"')
    osc = t.take(
        "osc", str, "/prompt", check=lambda v: None if v.startswith("/") else "expected /ADDRESS"
    )
    lo_hi = t.take("watch_range", list, [0.15, 0.35], check=_range_pair)
    config = ClipConfig(
        model=model,
        pretrained=pretrained,
        weights=base / weights_s if weights_s else None,
        device=t.take("device", str, "auto", check=_device),
        prompts=prompts,
        osc=osc.rstrip("/"),
        steer=t.take("steer", bool, True),
        shared=t.take("shared", bool, False),
        cutouts=t.take("cutouts", int, 8, check=in_range(1, 64)),
        steps_per_frame=t.take("steps_per_frame", int, 1, check=in_range(1, 50)),
        glide_s=t.take("glide_s", float, 0.5, check=in_range(0.0, 30.0)),
        anchor=t.take("anchor", float, 0.2, check=in_range(0.0, 100.0)),
        learning_rate=t.take("learning_rate", float, 0.03, check=in_range(0.0, 1.0)),
        watch_hz=t.take("watch_hz", float, 4.0, check=in_range(0.1, 60.0)),
        watch_range=(float(lo_hi[0]), float(lo_hi[1])),
    )
    t.finish()
    return config


def _range_pair(value: Any) -> str | None:
    if (
        len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and value[0] < value[1]
    ):
        return None
    return f"expected [low, high] with low < high, got {value!r}"


def _catalogue_weights(t: Table, kind: str, name: str, weights: Path | None) -> Path:
    """Where a catalogue model's weights are (or will be) in the cache; whether they
    are there is checked when the generator is built, so a show can still fall back."""
    from runtime import models

    if weights is not None:
        raise t.error("model", "give either 'weights' (a path) or 'model' (a catalogue name)")
    try:
        entry = models.lookup(name)
    except models.ModelError as exc:
        raise t.error("model", str(exc)) from None
    if entry.kind != kind:
        raise t.error("model", f"'{name}' is a {entry.kind} model: set kind = \"{entry.kind}\"")
    return entry.weights_path()


def _output(t: Table) -> OutputConfig:
    size_px = _size(t, "size", OutputConfig.size_px)
    out = OutputConfig(
        size_px=size_px,
        canvas_px=_size(t, "canvas", size_px),
        fps=t.take("fps", float, OutputConfig.fps, check=in_range(1.0, 240.0)),
        fullscreen=t.take("fullscreen", bool, False),
        monitor=t.take("monitor", int, 0, check=_non_negative),
        vsync=t.take("vsync", bool, True),
        ndi=t.take("ndi", str, None, check=_source_name),
    )
    t.finish()
    return out


def _source_name(value: str) -> str | None:
    return None if value.strip() else 'expected a source name such as "latentstage"'


def _schedule(t: Table) -> ScheduleConfig:
    days = t.take("days", list, list(WEEKDAYS), check=_weekdays)
    open_s = _time_of_day(t, "open", latest_s=DAY_S - 1)
    close_s = _time_of_day(t, "close", latest_s=DAY_S)
    if open_s == close_s:
        raise t.error(
            "close",
            "opens and closes at the same time; to play around the clock leave out [schedule]",
        )
    name = t.take("time_zone", str)
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise t.error(
            "time_zone",
            f"unknown time zone {name!r}{suggest(name, zoneinfo.available_timezones())}; "
            'expected an IANA name such as "Europe/Berlin" or "UTC"',
        ) from None
    fade_s = t.take("fade_s", float, ScheduleConfig.fade_s, check=in_range(0.0, 3600.0))
    t.finish()
    return ScheduleConfig(frozenset(WEEKDAYS.index(d) for d in days), open_s, close_s, zone, fade_s)


def _weekdays(value: Any) -> str | None:
    if not value:
        return f"expected at least one weekday of {', '.join(WEEKDAYS)}"
    for day in value:
        if day not in WEEKDAYS:
            hint = suggest(day, WEEKDAYS) if isinstance(day, str) else ""
            return f"unknown weekday {day!r}{hint}; weekdays: {', '.join(WEEKDAYS)}"
    if len(set(value)) != len(value):
        return "a weekday is named twice"
    return None


def _time_of_day(t: Table, key: str, *, latest_s: int) -> int:
    """A time of day as "HH:MM" (or "HH:MM:SS", or a TOML time) in seconds."""
    value = t.take(key, (str, dt.time))
    if isinstance(value, dt.time):
        return value.hour * 3600 + value.minute * 60 + value.second
    match = _TIME_RE.match(value)
    seconds = None
    if match:
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        if minutes < 60 and secs < 60:
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or seconds > latest_s:
        latest = "24:00" if latest_s == DAY_S else "23:59"
        raise t.error(key, f'expected a time of day "HH:MM" from 00:00 to {latest}, got {value!r}')
    return seconds


def _health(t: Table) -> HealthConfig:
    config = HealthConfig(
        port=t.take("port", int, check=in_range(1, 65535)),
        host=t.take("host", str, HealthConfig.host),
    )
    t.finish()
    return config


def _effects(top: Table, base: Path) -> tuple[EffectConfig, ...]:
    entries = top.take("effects", list, [])
    effects: list[EffectConfig] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise top.error("effects", "expected [[effects]] tables")
        t = Table(
            entry,
            file=top.file,
            text=top.text,
            name=f"effects #{i + 1}",
            header="[effects]",
            index=i,
        )
        shader = t.take("shader", str)
        default_name = Path(shader).stem if shader.endswith(".glsl") else shader
        name = t.take("name", str, default_name, check=_identifier)
        t.finish()
        shader_path = base / shader if shader.endswith(".glsl") else SHADER_DIR / f"{shader}.glsl"
        if not shader_path.is_file():
            known = sorted(p.stem for p in SHADER_DIR.glob("*.glsl"))
            raise t.error(
                "shader",
                f"no shader file {shader_path}{suggest(shader, known)}; "
                f"shaders in {SHADER_DIR}: {', '.join(known)}",
            )
        if any(e.name == name for e in effects):
            raise t.error("name", f"two effects are named '{name}': give one a 'name'")
        effects.append(EffectConfig(name, shader_path))
    return tuple(effects)


def _size(t: Table, key: str, default: tuple[int, int]) -> tuple[int, int]:
    value = t.take(key, (int, list), list(default))
    if isinstance(value, int):
        value = [value, value]
    if len(value) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 8192 for v in value
    ):
        raise t.error(key, f"expected a size in px: N or [width, height], 16..8192; got {value!r}")
    return (value[0], value[1])


def _existing(t: Table, key: str, path: Path) -> Path:
    if not path.is_file():
        raise t.error(key, f"file not found: {path}")
    return path


def _one_of(options: tuple[str, ...]):
    def check(value: Any) -> str | None:
        if value in options:
            return None
        return f"expected one of {', '.join(options)}; got {value!r}{suggest(value, options)}"

    return check


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"expected 0 or more, got {value!r}"


def _identifier(value: Any) -> str | None:
    if _NAME_RE.match(value):
        return None
    return f"expected a name of lowercase letters, digits and _, got {value!r}"


def _all_strings(value: Any) -> str | None:
    return None if all(isinstance(v, str) for v in value) else "expected an array of paths"


def _generator_device(value: Any) -> str | None:
    if value == "gl":
        return None
    problem = _device(value)
    return problem and problem.replace("expected auto,", "expected auto, gl,")


def _device(value: Any) -> str | None:
    if re.match(r"^(auto|cpu|cuda(:\d+)?)$", value):
        return None
    return f"expected auto, cpu or cuda[:N], got {value!r}"
