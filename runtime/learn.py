"""MIDI learn: the next control a performer moves becomes a `[[map]]` entry.

    run_show.py learn SHOW --target gen.zoom [--mapping FILE] [--timeout 30] [--channel]

The show's MIDI ports (its `[inputs.midi]` table, or every port) are watched until a
control moves: a knob or fader (`midi:cc/N`), a key or pad (`midi:note/N`, or
`midi:note/N/on` for a trigger target), the pitch wheel, aftertouch or a program
change. The entry is written into the show's first mapping file (or `--mapping`),
with `out` set to the target's range when it is known:

    [[map]]
    source = "midi:cc/21"
    target = "gen.zoom"
    out = [0.1, 8.0]

A new entry is appended at the end of the file, which is otherwise left byte for
byte as it was. Learning a target that already has a `[[map]]` entry with a MIDI
source re-points that entry's source and keeps its other keys and comments.
Names carry the port's alias when the show gives the port one, and the channel
with `--channel`.

Target names are checked against what the show offers (`run_show.py targets`):
its generator's controls and its passes' uniforms, with their ranges.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from runtime.config import Table, suggest
from runtime.errors import InputError, MappingError, ShowError
from runtime.files import replace_file
from runtime.inputs import midi
from runtime.show import Show, load_show
from runtime.signals import Event, SignalBus

_CONTROL_RE = re.compile(
    r"^midi:(?:(?P<alias>[A-Za-z_]\w*)/)??(?:ch(?P<ch>\d+)/)?"
    r"(?P<path>cc/\d+|note/\d+|bend|pressure(?:/\d+)?|program)$"
)


@dataclass(frozen=True)
class TargetInfo:
    """What learn knows of a target.

    Attributes:
        name: the dotted target name.
        out: its (lo, hi) range, or None when not known here.
        trigger: True for a control that steps on a rising edge.
        note: a sentence for the performer (e.g. the show fell back to the default
            generator, so its targets were checked against that one).
    """

    name: str
    out: tuple[float, float] | None = None
    trigger: bool = False
    note: str = ""


def target_info(show: Show, target: str) -> TargetInfo:
    """Check a target name against what the show offers: its generator's controls
    and its passes' uniforms, with their ranges.

    Args:
        show: the loaded show.
        target: the dotted target name.
    Returns:
        Its range and kind.
    Raises:
        MappingError: the show offers no such target (with a suggestion).
    Thread: main.
    """
    from runtime.decks import build_deck_b
    from runtime.generators import build_with_fallback
    from runtime.neural import build_stages
    from runtime.player import show_targets

    generator, problem = build_with_fallback(show.generator)
    deck_b = None if show.deck_b is None else build_deck_b(show.deck_b)[0]
    targets = show_targets(generator, show, build_stages(show), deck_b)
    found = targets.get(target)
    if found is None:
        raise MappingError(
            f"target {target!r} is not offered by {show.path}{suggest(target, targets)}; "
            f"`run_show.py targets {show.path}` lists them"
        )
    note = f"checked against the default generator ({problem})" if problem else ""
    return TargetInfo(target, (found.lo, found.hi), found.steps is not None, note)


def learned_source(events: Iterable[Event], *, channel: bool, trigger: bool) -> str | None:
    """The signal name for the first control moved among `events`.

    The MIDI input writes each message under several names (any channel, its
    channel, its port's alias); of one message's names this picks the one with the
    alias when the port has one, and with the channel when asked.

    Args:
        events: bus events, oldest first.
        channel: include the channel (`midi:ch2/cc/1`).
        trigger: the target steps on a rising edge: a note becomes its `/on` pulse.
    Returns:
        The source name, or None when no control moved.
    Thread: any.
    """
    chosen: tuple[float, str] | None = None
    names: list[re.Match[str]] = []
    for event in events:
        found = _CONTROL_RE.match(event.name)
        if found is None:
            continue
        key = (event.t_s, found["path"])
        if chosen is None:
            chosen = key
        elif key != chosen:
            break
        names.append(found)
    if not names:
        return None
    has_alias = any(m["alias"] for m in names)
    pick = next(m for m in names if bool(m["alias"]) == has_alias and bool(m["ch"]) == channel)
    path = pick["path"]
    if trigger and path.startswith("note/"):
        path += "/on"
    return pick.group(0).removesuffix(pick["path"]) + path


def wait_for_control(
    bus: SignalBus, *, timeout_s: float, channel: bool, trigger: bool
) -> str | None:
    """Watch `bus` (written by a started MIDI input) until a control moves.

    Args:
        bus: a bus only this learn reads.
        timeout_s: how long to wait.
        channel: include the channel in the name.
        trigger: the target is a trigger.
    Returns:
        The learned source, or None at the timeout.
    Thread: main.
    """
    deadline = time.monotonic() + timeout_s
    bus.snapshot()  # what arrived before the prompt is not the performer's answer
    while time.monotonic() < deadline:
        source = learned_source(bus.snapshot().events, channel=channel, trigger=trigger)
        if source is not None:
            return source
        time.sleep(0.01)
    return None


def write_entry(path: Path, source: str, info: TargetInfo) -> str:
    """Write the learned entry into a mapping file.

    Args:
        path: the mapping file (created when absent).
        source: the learned signal name.
        info: the target.
    Returns:
        "added" or "replaced" (an existing MIDI entry for the target was re-pointed).
    Raises:
        MappingError: the file is not valid TOML, or its `map` is not `[[map]]` tables.
    Thread: main.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise MappingError(f"{path}: not valid TOML ({exc}); nothing written") from None
    entries = doc.get("map")
    if entries is not None and not isinstance(entries, tomlkit.items.AoT):
        raise MappingError(f"{path}: 'map' is not a list of [[map]] tables; nothing written")
    for entry in entries or []:
        old = entry.get("source")
        if entry.get("target") == info.name and isinstance(old, str) and old.startswith("midi:"):
            entry["source"] = source
            replace_file(path, tomlkit.dumps(doc))
            return "replaced"
    table = tomlkit.table()
    table["source"] = source
    table["target"] = info.name
    if info.out is not None:
        table["out"] = list(info.out)
    piece = tomlkit.document()
    piece.append("map", tomlkit.aot())
    piece["map"].append(table)
    # Appended as text: an array of tables may continue anywhere in a TOML file, and
    # every byte already there stays where it was.
    sep = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
    new_text = text + sep + tomlkit.dumps(piece)
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: the entry would not parse ({exc}); nothing written") from None
    replace_file(path, new_text)
    return "added"


def _midi_input(show: Show, bus: SignalBus, backend: midi.PortBackend | None) -> midi.MidiInput:
    table = show.inputs.get("midi") or Table({}, file=show.path, text="", name="inputs.midi")
    if "file" in table.data:
        raise InputError(
            f"{show.path}: [inputs.midi] replays a file; learn needs a live port "
            "(remove 'file' while learning, or give --mapping with another show)"
        )
    built = midi.build(table, bus, folder=show.folder, offline=False)
    if backend is not None:
        built.backend = backend
    return built


def run(
    show_path: str | Path,
    target: str,
    *,
    mapping: str | Path | None = None,
    timeout_s: float = 30.0,
    channel: bool = False,
    say: Callable[[str], None],
    backend: midi.PortBackend | None = None,
) -> int:
    """The `learn` command: wait for a control and write its mapping entry.

    Args:
        show_path: the show file.
        target: the dotted target name.
        mapping: the mapping file to write (default: the show's first one).
        timeout_s: how long to wait for a control.
        channel: include the MIDI channel in the source name.
        say: prints a line for the performer.
        backend: the MIDI port backend (default: the show's API through rtmidi).
    Returns:
        The exit status (0: written).
    Raises:
        ShowError: a bad show or target, no MIDI system, or no control moved in time.
    Thread: main.
    """
    show = load_show(show_path)
    if mapping is not None:
        path = Path(mapping)
    elif show.mapping_paths:
        path = show.mapping_paths[0]
    else:
        raise MappingError(f"{show.path} lists no mapping files: give --mapping FILE")
    info = target_info(show, target)
    if info.note:
        say(f"note: {info.note}")
    bus = SignalBus()
    inp = _midi_input(show, bus, backend)
    problem = inp.scan()
    if problem is not None:
        raise InputError(f"{problem}; `run_show.py devices` lists what this machine has")
    inp.start()
    try:
        ports = ", ".join(inp.ports()) or "none yet: plug one in"
        say(f"MIDI ports: {ports}")
        say(f"Move a control for {target} now (waiting {timeout_s:g} s; Ctrl-C cancels)...")
        source = wait_for_control(bus, timeout_s=timeout_s, channel=channel, trigger=info.trigger)
    finally:
        inp.stop()
    if source is None:
        raise ShowError(
            f"no MIDI control moved within {timeout_s:g} s on {inp.status()}; nothing written"
        )
    how = write_entry(path, source, info)
    out = f" out = [{info.out[0]:g}, {info.out[1]:g}]" if info.out else ""
    say(f"{how} in {path}: {source} -> {target}{out}")
    if path not in show.mapping_paths:
        say(f"note: {show.path} does not list {path} in its mappings")
    return 0
