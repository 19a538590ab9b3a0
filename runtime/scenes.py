"""Scenes: named snapshots of every target and of the latent walk, recalled with a
crossfade and saved while playing.

A show turns scenes on with a `[scenes]` table; the scenes live in it or in a
scenes file it names:

    [scenes]
    fade_s = 2.0              # the crossfade when a scene names none (default 2)
    start = "intro"           # recalled (without a fade) at the first frame
    file = "vj_scenes.toml"   # keep the scenes there instead of in the show

    [scenes.intro]            # in the show, or in the scenes file
    fade_s = 4.0              # this scene's own crossfade
    note = 36                 # a MIDI note recalls it
    channel = 10              # ... on this channel only (1..16; default any)
    "gen.zoom" = 1.5          # target values (quoted or dotted keys)
    "latent.phase" = 3.25     # where the walk stands (an integrated state)

Requests come from the bus, read by the frame loop each frame (so a captured take
replays them on the same frames): `key:1`..`key:9` recall the Nth scene in file
order, `key:right` and `key:left` (or OSC `/scene/next` and `/scene/prev`) the
next and the previous one (round the list), a scene's MIDI note recalls it, OSC
`/scene/NAME` recalls it with its own fade and `/scene/NAME/fade S` with S seconds
(0 cuts). `key:shift+1`..`key:shift+9`
save the current state into scene N, `key:s` and OSC `/scene/save` save a new
scene, `/scene/save NAME` saves one by name; a saved scene is written into its file
off the frame loop, keeping comments and layout (runtime/learn.py's way). A scenes
file (or the show) edited by hand while playing is read again, as mapping files are.

What a recall does: every target the scene names glides from the value it has on
the screen to the scene's value (smoothstep over the fade, by show time, so offline
renders are frame-exact). The last writer wins: the scene sets a target's base
value (the one `[set]` gives), and the `[[map]]` entries on that target wait until
one of their sources sends a new value, so a fader is picked up again when it moves
(entries on `time` and LFOs never wait; audio and clock sources send all the time,
so they keep driving their targets). The walk glides along its loop: `latent.phase`
moves by the shortest way round the loop to where the scene stood, and keeps
walking from there at the scene's `latent.speed`.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.config import Table, load_toml, suggest
from runtime.errors import ConfigError, MappingError
from runtime.files import replace_file, stamp
from runtime.mapping import MappingEngine, Target
from runtime.signals import Snapshot

log = logging.getLogger(__name__)

#: The crossfade when neither the scene nor the request names one.
DEFAULT_FADE_S = 2.0
#: A scene's own keys; every other key is a target or state name (dotted).
SCENE_KEYS = ("fade_s", "note", "channel")
#: Keys of the show's `[scenes]` table that are not scenes.
OPTION_KEYS = ("file", "fade_s", "start")
#: Names a scene may not take: `/scene/save` saves, `/scene/next` and `/scene/prev`
#: step through the list.
RESERVED = ("save", "next", "prev")
#: Requests that step through the scenes in file order: name -> step.
STEPS = {"key:right": 1, "key:left": -1, "osc:/scene/next": 1, "osc:/scene/prev": -1}
_SCENE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_RECALL_RE = re.compile(r"^osc:/scene/([A-Za-z0-9_-]+)(/fade)?$")
#: Saves waiting for the writer thread; beyond this they are dropped and counted.
WRITE_QUEUE = 8
#: Scene names the HUD line shows at most.
HUD_NAMES = 12
#: Unknown scene names logged (each once); beyond, they are ignored quietly.
MAX_UNKNOWN = 64


@dataclass
class Scene:
    """One scene.

    Attributes:
        name: its name (the OSC address `/scene/NAME`).
        values: target and state names to values.
        fade_s: its own crossfade, or None for the show's.
        note: the MIDI note that recalls it, or None.
        channel: the MIDI channel (1..16) the note must come on, or None for any.
        table: where it was read (for messages), or None when saved while playing.
    """

    name: str
    values: dict[str, float]
    fade_s: float | None = None
    note: int | None = None
    channel: int | None = None
    table: Table | None = None


@dataclass(frozen=True)
class ScenesConfig:
    """The show's `[scenes]` table and the scenes read from it or its file.

    Attributes:
        file: where scenes are written when saved (the scenes file, or the show).
        scenes: in file order.
        fade_s: the crossfade when a scene names none.
        start: the scene recalled at the first frame, or None.
    """

    file: Path
    scenes: tuple[Scene, ...] = ()
    fade_s: float = DEFAULT_FADE_S
    start: str | None = None


def read_scenes(t: Table, base: Path) -> ScenesConfig:
    """Read a show's `[scenes]` table (and its scenes file, if it names one).

    The scenes' target names are checked later, against what the show offers
    (`Scenes.__init__`), as mapping files are.

    Args:
        t: the show's `[scenes]` table.
        base: the show's folder (a relative `file` resolves against it).
    Returns:
        The scenes, in file order.
    Raises:
        ConfigError: naming the file, line and key.
    Thread: any.
    """
    file_s = t.take("file", str, None)
    fade_s = t.take("fade_s", float, DEFAULT_FADE_S, check=_fade_check)
    start = t.take("start", str, None)
    tables = {k: v for k, v in t.rest().items() if isinstance(v, dict)}
    for key in t.data:
        if key not in tables and key not in OPTION_KEYS:
            raise t.error(
                key,
                f"unknown key{suggest(key, OPTION_KEYS)}; [scenes] takes "
                f"{', '.join(OPTION_KEYS)} and [scenes.NAME] tables",
            )
    if file_s is None:
        path, text = t.file, t.text
    else:
        if tables:
            raise t.error(
                next(iter(tables)),
                f"the scenes live in {file_s} ('file'): move [scenes.NAME] tables there",
            )
        path = base / file_s
        if path.exists():
            data, text = load_toml(path)
            top = Table(data, file=path, text=text, name="")
            tables = top.take("scenes", dict, {})
            top.finish()
        else:  # a new scenes file: the first save creates it
            text = ""
    scenes = tuple(
        _scene(name, Table(v, file=path, text=text, name=f"scenes.{name}", header=f"scenes.{name}"))
        for name, v in tables.items()
    )
    seen: dict[tuple[int, int | None], str] = {}
    for scene in scenes:
        if scene.note is None:
            continue
        key = (scene.note, scene.channel)
        if key in seen and scene.table is not None:
            raise scene.table.error(
                "note", f"scene '{seen[key]}' already answers note {scene.note}"
            )
        seen[key] = scene.name
    names = [s.name for s in scenes]
    if start is not None and start not in names:
        raise t.error(
            "start", f"no scene named {start!r}{suggest(start, names)}; scenes: {', '.join(names)}"
        )
    return ScenesConfig(path, scenes, fade_s, start)


def _scene(name: str, t: Table) -> Scene:
    if not _SCENE_NAME_RE.match(name) or name in RESERVED:
        raise t.error(
            None,
            f"a scene name is letters, digits, _ and -, and not {', '.join(RESERVED)}; "
            f"got {name!r}",
        )
    fade_s = t.take("fade_s", float, None, check=_fade_check)
    note = t.take("note", int, None, check=lambda v: None if 0 <= v <= 127 else "expected 0..127")
    channel = t.take(
        "channel", int, None, check=lambda v: None if 1 <= v <= 16 else "expected 1..16"
    )
    if channel is not None and note is None:
        raise t.error("channel", "a channel goes with a 'note'")
    values: dict[str, float] = {}
    for key, value in _flatten(t.rest()):
        if "." not in key:
            raise t.error(
                key,
                f"unknown key{suggest(key, SCENE_KEYS)}; a scene takes {', '.join(SCENE_KEYS)} "
                'and dotted target names ("gen.zoom" = 1.5)',
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise t.error(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise t.error(key, f"expected a finite number, got {value}")
        values[key] = float(value)
    t.finish()
    return Scene(name, values, fade_s, note, channel, t)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Dotted keys as written (`gen.zoom = 1` parses as {"gen": {"zoom": 1}})."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _fade_check(value: float) -> str | None:
    return None if 0.0 <= value <= 600.0 else f"expected 0..600 seconds, got {value!r}"


def walk_length(generator: object) -> int | None:
    """How many keyframes a generator's walk loop has (`latent.phase` wraps at it),
    or None when it has no keyframe loop. Thread: any."""
    for owner in (generator, getattr(generator, "latents", None)):
        keys = getattr(owner, "keys", None)
        shape = getattr(keys, "shape", None)
        if shape:
            return int(shape[0])
    return None


@dataclass
class _Glide:
    """A value on its way: from, to, when it set out and for how long (show time)."""

    start: float
    end: float
    t0_s: float
    fade_s: float

    def at(self, t_s: float) -> tuple[float, bool]:
        """(value, arrived) at show time t_s: a smoothstep from start to end."""
        if self.fade_s <= 0.0:
            return self.end, True
        p = min(max((t_s - self.t0_s) / self.fade_s, 0.0), 1.0)
        s = p * p * (3.0 - 2.0 * p)
        return self.start + (self.end - self.start) * s, p >= 1.0


@dataclass
class _Save:
    """A save for the writer thread: which file, which scene, its values."""

    path: Path
    name: str
    values: dict[str, float] = field(default_factory=dict)


class Scenes:
    """The frame loop's scenes: reads requests from the bus snapshot, glides the
    engine's base values and the walk's phase, saves the current state.

    Args:
        config: the show's scenes.
        engine: the show's mapping engine (its `base` values are what scenes set).
        walk_keyframes: the generator's walk loop length (`walk_length`), or None.
        persist: write saved scenes into their file (False offline: a re-render
            replays saves in memory only).
    Raises:
        MappingError: a scene names a target the show does not offer (file, line,
            key and the closest name), or a value outside the target's range.
    Thread: main (the frame loop); saves are written on a thread of their own.
    """

    def __init__(
        self,
        config: ScenesConfig,
        engine: MappingEngine,
        walk_keyframes: int | None,
        *,
        persist: bool,
    ) -> None:
        self.config = config
        self.engine = engine
        self.targets: dict[str, Target] = engine.targets
        #: Integrated states a scene holds (where the walk stands), not targets.
        self.states = sorted({t.integrates for t in self.targets.values() if t.integrates})
        self.walk_keyframes = walk_keyframes
        self.scenes = list(check_scenes(config, self.targets))
        self.active: str | None = None
        #: Targets whose base value a recall set (and nothing has set since): what
        #: OSC out tells a controller.
        self.controlled: set[str] = set()
        self._glides: dict[str, _Glide] = {}
        self._offsets: dict[str, _Glide] = {}
        self._offset_now: dict[str, float] = {}
        self._fade: tuple[float, float] | None = None
        self._last: dict[str, float] = {}
        self._started = False
        self._t_s = 0.0
        self._unknown: set[str] = set()
        self._writer = SceneWriter() if persist else None
        #: Why the last edit of the scenes was not taken (for the HUD), or None.
        self.error: str | None = None
        self._stamps: tuple[tuple[int, int] | None, ...] | None = None

    # The frame loop's two calls, around the mapping engine.

    def before(self, snapshot: Snapshot, texts: list[tuple[str, str | bytes]], t_s: float) -> None:
        """Act on this frame's requests (recall, save) and set the base values of
        targets still gliding. Call before `MappingEngine.evaluate`.

        Args:
            snapshot: the frame's bus snapshot.
            texts: the texts taken from the bus this frame (`/scene/save NAME`).
            t_s: the frame's show time (fades run on it).
        Thread: main.
        """
        if not self._started:
            self._started = True
            if self.config.start is not None:
                self.recall(self.config.start, t_s, fade_s=0.0)
        for event in snapshot.events:
            self._request(event.name, event.value, t_s)
        for source, text in texts:
            if source == "osc:/scene/save":
                name = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
                self.save(name.strip())
        self._glide(t_s)

    def after(self, values: dict[str, float]) -> None:
        """Move the walk's states by their scene offsets and remember the frame's
        values (what a save captures, where a recall glides from). Call with what
        `MappingEngine.evaluate` returned; changes it in place.

        Thread: main.
        """
        for name, offset in self._offset_now.items():
            values[name] = values.get(name, 0.0) + offset
        self._last = values

    def release(self, names: Iterable[str]) -> None:
        """Stop gliding these targets (another writer, e.g. OSC `/ls/`, set them).

        Thread: main.
        """
        for name in names:
            self._glides.pop(name, None)
            self.controlled.discard(name)

    def reload_if_changed(self, show_path: Path) -> str | None:
        """Re-read the scenes when the show or its scenes file changed on disk (a
        scene edited by hand while playing; a save of the show's own lands here too).

        On a bad edit the last good scenes stay and the error (file, line, key) is
        kept in `self.error` and logged. Gliding targets keep gliding; the active
        scene stays active while it exists.

        Args:
            show_path: the show file (it holds `[scenes]`).
        Returns:
            A one-line message when something changed, else None.
        Thread: main (one stat for each of two files: cheap every half second).
        """
        stamps = (stamp(show_path), stamp(self.config.file))
        if self._stamps is None or stamps == self._stamps:
            self._stamps = stamps
            return None
        self._stamps = stamps
        try:
            data, text = load_toml(show_path)
            top = Table(data, file=show_path, text=text, name="")
            if "scenes" not in data:
                raise ConfigError(f"{show_path}: the [scenes] table is gone")
            config = read_scenes(top.take_table("scenes"), show_path.parent)
            check_scenes(config, self.targets)
        except (ConfigError, MappingError) as exc:
            self.error = f"scenes not reloaded, keeping the last good ones: {exc}"
            log.error("%s", self.error)
            return self.error
        self.config = config
        self.scenes = list(config.scenes)
        self.error = None
        if self.active not in [s.name for s in self.scenes]:
            self.active = None
        message = f"scenes reloaded: {', '.join(s.name for s in self.scenes) or 'none'}"
        log.info("%s", message)
        return message

    # Requests.

    def _request(self, name: str, value: float, t_s: float) -> None:
        step = STEPS.get(name)
        if step is not None:
            if value > 0.0 and self.scenes:  # a press, not its release
                self.recall(self._stepped(step), t_s)
            return
        if name.startswith("key:"):
            if value <= 0.0:
                return  # a release
            key = name[4:]
            if len(key) == 1 and key in "123456789":
                index = int(key) - 1
                if index < len(self.scenes):
                    self.recall(self.scenes[index].name, t_s)
            elif key.startswith("shift+") and key[6:] in tuple("123456789"):
                index = int(key[6:]) - 1
                self.save(self.scenes[index].name if index < len(self.scenes) else None)
            elif key == "s":
                self.save(None)
            return
        if name.startswith("osc:/scene/"):
            if name == "osc:/scene/save":
                if value > 0.0:  # the bare address (a button press); a name comes as text
                    self.save(None)
                return
            found = _RECALL_RE.match(name)
            if found is None:
                return
            if found[2]:
                self.recall(found[1], t_s, fade_s=max(value, 0.0))
            elif value > 0.0:  # a button's release (0) recalls nothing
                self.recall(found[1], t_s)
            return
        if name.startswith("midi:") and value > 0.0:
            for scene in self.scenes:
                if scene.note is None:
                    continue
                wanted = (
                    f"midi:note/{scene.note}"
                    if scene.channel is None
                    else f"midi:ch{scene.channel}/note/{scene.note}"
                )
                if name == wanted:
                    self.recall(scene.name, t_s)
                    return

    def _stepped(self, step: int) -> str:
        """The scene `step` places after the active one in file order, round the list
        (from none: the first going forward, the last going back)."""
        names = [s.name for s in self.scenes]
        if self.active not in names:
            return names[0] if step > 0 else names[-1]
        return names[(names.index(self.active) + step) % len(names)]

    def recall(self, name: str, t_s: float, *, fade_s: float | None = None) -> bool:
        """Start gliding every target the scene names to its value.

        Args:
            name: the scene.
            t_s: the show time the fade starts at.
            fade_s: the crossfade; None: the scene's own, else the show's default.
        Returns:
            False (and a log line) when there is no such scene.
        Thread: main.
        """
        scene = next((s for s in self.scenes if s.name == name), None)
        if scene is None:
            if name not in self._unknown and len(self._unknown) < MAX_UNKNOWN:
                self._unknown.add(name)  # once per name: a controller may repeat it
                names = [s.name for s in self.scenes]
                log.warning(
                    "scene: no scene named %r%s; scenes: %s",
                    name,
                    suggest(name, names),
                    ", ".join(names) or "none",
                )
            return False
        if fade_s is None:
            fade_s = scene.fade_s if scene.fade_s is not None else self.config.fade_s
        for target, value in scene.values.items():
            if target in self.targets:
                now = self._last.get(target, self._base(target))
                self._glides[target] = _Glide(now, value, t_s, fade_s)
                self.controlled.add(target)
                self.engine.held.add(target)
            else:  # a state: glide an offset to it, the shortest way round the loop
                offset = self._offset_now.get(target, 0.0)
                now = self._last.get(target, offset)
                delta = value - now
                if target == "latent.phase" and self.walk_keyframes:
                    k = float(self.walk_keyframes)
                    delta = (delta + k / 2.0) % k - k / 2.0
                self._offsets[target] = _Glide(offset, offset + delta, t_s, fade_s)
        self.active = name
        self._fade = (t_s, fade_s)
        log.info("scene %s (fade %.3g s)", name, fade_s)
        return True

    def _base(self, target: str) -> float:
        engine = self.engine
        if target in engine.base:
            return engine.base[target]
        return engine.mappings.sets.get(target, self.targets[target].default)

    def _glide(self, t_s: float) -> None:
        for name, glide in list(self._glides.items()):
            value, arrived = glide.at(t_s)
            self.engine.base[name] = value
            if arrived:
                del self._glides[name]
        for name, glide in list(self._offsets.items()):
            value, arrived = glide.at(t_s)
            self._offset_now[name] = value
            if arrived:
                del self._offsets[name]
        if self._fade is not None and (
            self._fade[1] <= 0.0 or t_s >= self._fade[0] + self._fade[1]
        ):
            self._fade = None
        self._t_s = t_s

    def fading(self) -> float | None:
        """How far the current crossfade has got (0..1), or None when none runs.

        Thread: main.
        """
        if self._fade is None:
            return None
        t0_s, fade_s = self._fade
        return min(max((self._t_s - t0_s) / fade_s, 0.0), 1.0)

    # Saving.

    def save(self, name: str | None) -> str | None:
        """Save the last frame's state as a scene (replacing one of that name, whose
        fade, note and channel stay), make it the active one and queue it to be
        written into its file.

        Args:
            name: the scene's name; None: a new name, `scene-N`.
        Returns:
            The name saved, or None (a bad name, logged; or nothing played yet).
        Thread: main.
        """
        if not self._last:
            return None
        if name is None:
            taken = {s.name for s in self.scenes}
            n = len(self.scenes) + 1
            while f"scene-{n}" in taken:
                n += 1
            name = f"scene-{n}"
        if not _SCENE_NAME_RE.match(name) or name in RESERVED:
            log.warning(
                "scene: cannot save %r: a scene name is letters, digits, _ and -, and not %s",
                name,
                ", ".join(RESERVED),
            )
            return None
        values = {
            target: _round(self._last[target])
            for target, spec in self.targets.items()
            if spec.steps is None and target in self._last
        }
        values.update({s: _round(self._last[s]) for s in self.states if s in self._last})
        scene = next((s for s in self.scenes if s.name == name), None)
        if scene is None:
            self.scenes.append(Scene(name, values))
        else:
            scene.values = values
        self.active = name
        log.info("scene %s saved (%d values)", name, len(values))
        if self._writer is not None:
            self._writer.put(_Save(self.config.file, name, values))
        return name

    # Feedback.

    def status(self) -> str:
        """'scenes: intro [dark] drop  (fading 40%)' for the HUD. Thread: main."""
        names = [f"[{s.name}]" if s.name == self.active else s.name for s in self.scenes]
        if len(names) > HUD_NAMES:
            names = [*names[:HUD_NAMES], f"+{len(names) - HUD_NAMES}"]
        line = "scenes: " + (" ".join(names) or "none (s saves one)")
        progress = self.fading()
        if progress is not None:
            line += f"  (fading {progress * 100:.0f}%)"
        if self._writer is not None and self._writer.problem:
            line += f"  {self._writer.problem}"
        return line

    def stop(self) -> None:
        """Write what is queued and stop the writer. Thread: main."""
        if self._writer is not None:
            self._writer.stop()


def _round(value: float) -> float:
    """Six significant digits: enough for any target, short in the file."""
    return float(f"{value:.6g}")


def check_scenes(config: ScenesConfig, targets: Mapping[str, Target]) -> tuple[Scene, ...]:
    """Check every scene's names and values against what the show offers.

    Args:
        config: the show's scenes.
        targets: the show's targets by name (their integrated states, such as
            `latent.phase`, are names a scene may hold too).
    Returns:
        The scenes, unchanged.
    Raises:
        MappingError: an unknown name (file, line, key and the closest name).
        ConfigError: a trigger target, or a value outside its target's range.
    Thread: any.
    """
    states = {t.integrates for t in targets.values() if t.integrates}
    for scene in config.scenes:
        _check(scene, targets, states)
    return config.scenes


def _check(scene: Scene, targets: Mapping[str, Target], states: set[str]) -> None:
    for name, value in scene.values.items():
        t = scene.table
        where = t.where(name) if t is not None else f"scene {scene.name}"
        if name in states:
            continue
        target = targets.get(name)
        if target is None:
            raise MappingError(
                f"{where}: unknown target '{name}'{suggest(name, [*targets, *states])}; "
                "`run_show.py targets SHOW` lists them"
            )
        if target.steps is not None:
            raise ConfigError(f"{where}: {name} is a trigger; a scene holds values")
        if not target.lo <= value <= target.hi:
            raise ConfigError(
                f"{where}: {value:g} is outside {name}'s range {target.lo:g}..{target.hi:g}"
            )


class SceneWriter:
    """Writes saved scenes into their TOML file on a thread of its own, keeping
    the file's comments and layout (tomlkit, replaced whole as runtime/learn.py
    does), so the frame loop never waits on the disk.

    Thread: `put` and `stop` from the frame loop; the writing on its own thread.
    """

    def __init__(self) -> None:
        self.written = 0
        self.dropped = 0
        self.problem: str | None = None
        self._queue: queue.Queue[_Save | None] = queue.Queue(maxsize=WRITE_QUEUE)
        self._thread = threading.Thread(target=self._run, name="scene-writer", daemon=True)
        self._thread.start()

    def put(self, save: _Save) -> None:
        """Queue a save; when the queue is full it is dropped and counted. Thread: main."""
        try:
            self._queue.put_nowait(save)
        except queue.Full:
            self.dropped += 1
            self.problem = f"{self.dropped} scene saves not written (disk too slow)"
            log.error("scene %s not written: %d saves already wait", save.name, WRITE_QUEUE)

    def stop(self) -> None:
        """Finish the queued writes (a few seconds at most) and end. Thread: main."""
        self._queue.put(None)
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while (save := self._queue.get()) is not None:
            try:
                write_scene(save.path, save.name, save.values)
                self.written += 1
            except (OSError, ConfigError) as exc:
                self.problem = f"scene {save.name} not written: {exc}"
                log.error("%s", self.problem)


def write_scene(path: Path, name: str, values: Mapping[str, float]) -> None:
    """Write a scene into a show or scenes file as `[scenes.NAME]`, leaving the rest
    of the file as it was: an existing scene's values are replaced in place (dotted
    or quoted keys alike), its other keys and comments kept.

    Args:
        path: the TOML file (created when absent).
        name: the scene.
        values: target and state names to values.
    Raises:
        ConfigError: the file is not valid TOML, or its `scenes` is not a table.
        OSError: it cannot be written.
    Thread: any (the scene writer's).
    """
    import tomlkit

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); scene {name} not written") from None
    if "scenes" not in doc:
        doc["scenes"] = tomlkit.table(is_super_table=True)
    scenes = doc["scenes"]
    if not isinstance(scenes, dict):
        raise ConfigError(f"{path}: 'scenes' is not a table; scene {name} not written")
    if name in scenes:
        table = scenes[name]
        for key, value in values.items():
            _set_dotted(table, key, value)
    else:
        table = tomlkit.table()
        for key, value in values.items():
            table[key] = value
        table.add(tomlkit.nl())
        scenes[name] = table
    new_text = tomlkit.dumps(doc)
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: scene {name} would not parse ({exc}); not written") from None
    replace_file(path, new_text)


def _set_dotted(table: Any, key: str, value: float) -> None:
    """Set `key` where the file already has it: quoted ("gen.zoom") or dotted
    (gen.zoom, a nested table in tomlkit); a new key is added quoted."""
    if key in table:
        table[key] = value
        return
    head, _, rest = key.partition(".")
    if rest and isinstance(table.get(head), dict):
        _set_dotted(table[head], rest, value)
        return
    table[key] = value
