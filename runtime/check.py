"""Validate a show without playing it, and list what it can map from and to
(`run_show.py check | signals | targets`)."""

from __future__ import annotations

import importlib
from pathlib import Path

from runtime.clip import build_clip, clip_signals
from runtime.decks import build_deck_b
from runtime.errors import OutputError
from runtime.generators import build_generator
from runtime.generators.base import Generator
from runtime.inputs import MODULES as INPUT_MODULES
from runtime.inputs import build_inputs
from runtime.mapping import MappingSet, Target, read_mappings
from runtime.mapping.sources import Lfo
from runtime.neural import build_chain, build_stages
from runtime.osc_targets import osc_address
from runtime.player import show_targets
from runtime.scenes import check_scenes
from runtime.show import Show, load_show
from runtime.signals import SignalBus


def _load(path: Path) -> tuple[Show, Generator, dict[str, Target], MappingSet]:
    show = load_show(path)
    generator = build_generator(show.generator)
    targets = show_targets(generator, show, build_stages(show), _deck_b(show))
    return show, generator, targets, read_mappings(show.mapping_paths, targets)


def _deck_b(show: Show) -> Generator | None:
    """Deck B's generator (for its targets), or None with one deck."""
    return None if show.deck_b is None else build_deck_b(show.deck_b)[0]


def check_show(path: Path) -> list[str]:
    """Validate a show, its generator (weights included), neural stages and CLIP
    (weights loaded where present; missing ones are reported with the pull that
    brings them, as the show would play on without them), inputs, mapping files and
    shaders (compiled when headless GL is available).

    Returns:
        A report, one line each.
    Raises:
        ShowError: the first problem, naming the file, line and key.
    Thread: main.
    """
    show, generator, targets, mappings = _load(path)
    scenes = check_scenes(show.scenes, targets) if show.scenes is not None else None
    bus = SignalBus()
    build_inputs(show.inputs, bus, folder=show.folder, offline=False)
    lines = [
        f"show '{show.name}' ({show.path})",
        f"  generator: {generator.kind} {generator.size_px[0]}x{generator.size_px[1]} "
        f"on {generator.device}, {len(generator.controls)} controls",
        *_deck_lines(show),
        *_neural_lines(show, generator),
        *_clip_lines(show, bus, generator),
        f"  output: {show.output.size_px[0]}x{show.output.size_px[1]} at {show.output.fps:g} fps,"
        f" canvas {show.output.canvas_px[0]}x{show.output.canvas_px[1]}",
        f"  inputs: {', '.join(show.inputs) or 'none'}",
        f"  mappings: {len(mappings.maps)} entries, {len(mappings.sets)} set values "
        f"from {len(show.mapping_paths)} file(s)",
    ]
    if scenes is not None:
        lines.append(f"  scenes: {len(scenes)} ({', '.join(s.name for s in scenes) or 'none yet'})")
    try:
        from runtime.render.headless import headless_context
        from runtime.render.shaders import compile_program

        ctx = headless_context()
    except OutputError as exc:
        lines.append(f"  shaders: read but not compiled ({exc})")
    else:
        for effect in show.effects:
            compile_program(ctx, effect.shader_path).release()
        ctx.release()
        lines.append(
            f"  shaders: {len(show.effects)} compiled "
            f"({', '.join(e.name for e in show.effects) or 'none'})"
        )
    lines.append("ok")
    return lines


def _deck_lines(show: Show) -> list[str]:
    """Deck B's generator, built (weights loaded); a fallback says why."""
    if show.deck_b is None:
        return []
    generator, problem = build_deck_b(show.deck_b)
    line = (
        f"  deck B: {generator.kind} {generator.size_px[0]}x{generator.size_px[1]} "
        f"on {generator.device}, {len(generator.controls)} controls (deck.b.*)"
    )
    return [line, f"  ! {problem}"] if problem else [line]


def _neural_lines(show: Show, generator: Generator) -> list[str]:
    """The stages, with their weights loaded; a stage that would be bypassed says why."""
    if not show.neural:
        return []
    chain = build_chain(show, device=generator.device, offline=True)
    names = ", ".join(f"{s.name} ({s.kind})" for s in chain.stages)
    return [f"  neural: {names}", *(f"  ! {p}" for p in chain.problems)]


def _clip_lines(show: Show, bus: SignalBus, generator: Generator) -> list[str]:
    """CLIP's model and prompts, loaded; missing weights say which pull brings them."""
    part = build_clip(show, bus, generator, offline=True)
    if part is None:
        return []
    config = part.config
    line = f"  clip: {config.model}, {len(config.prompts)} prompts, steering " + (
        "on" if config.steer else "off"
    )
    return [line, f"  ! {part.problem}"] if part.problem else [line]


def list_signals(path: Path) -> list[str]:
    """The signals a show can map from: built-in sources, its inputs' signals, and
    those its mapping files use.

    Raises:
        ShowError: the show is invalid.
    Thread: main.
    """
    show, _, _, mappings = _load(path)
    rows = [("time", "seconds since the show began")]
    rows += [
        (f"lfo:{name}", f"{lfo.shape} LFO at {_rate(lfo)}, 0..1")
        for name, lfo in sorted(mappings.lfos.items())
    ]
    for kind in show.inputs:
        module = importlib.import_module(INPUT_MODULES[kind])
        describe = getattr(module, "SIGNALS", ())
        rows += list(describe) or [(f"{kind}:...", "see docs/INPUTS.md")]
    rows += clip_signals(show.clip)
    rows.append(
        (
            "key:NAME",
            "a key on the show's window, 1 while held: key:space, key:shift+2 (Esc, q, h, f "
            "are the window's; r, c, 1..9, s also record, capture, recall and save)",
        )
    )
    used = sorted({s for spec in mappings.maps for s in spec.sources})
    known = {name for name, _ in rows}
    rows += [(name, "used by a mapping") for name in used if name not in known]
    return _table(rows)


def list_targets(path: Path, *, osc: bool = False) -> list[str]:
    """The targets a show can map to, with default, range and meaning.

    Args:
        path: the show file.
        osc: list each target's OSC address (`/ls/TARGET`) instead of its name.
    Raises:
        ShowError: the show is invalid.
    Thread: main.
    """
    show = load_show(path)
    targets = show_targets(build_generator(show.generator), show, build_stages(show), _deck_b(show))
    rows = []
    for name, t in targets.items():
        kind = " (rate/s)" if t.integrates else " (trigger)" if t.steps else ""
        label = osc_address(name) if osc else name
        rows.append((label, f"{t.default:g}  [{t.lo:g}, {t.hi:g}]  {t.doc}{kind}"))
    return _table(rows)


def _rate(lfo: Lfo) -> str:
    if lfo.rate_beats is None:
        return f"{lfo.rate_hz:g} Hz"
    return f"{lfo.rate_beats:g} cycles per beat"


def _table(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {doc}" for name, doc in rows]
