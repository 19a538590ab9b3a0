"""The commands behind `run_show.py`.

    run_show.py SHOW [--fullscreen] [--headless --frames N --out PATH]   play or render
    run_show.py check SHOW                                               validate
    run_show.py signals SHOW | targets SHOW                              what maps to what
    run_show.py bench                                                    measure
    run_show.py hands model | hands record OUT.jsonl                     hand tracking

Each command's implementation lives in the module it belongs to; this file only
parses arguments and reports errors readably.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from runtime.errors import ShowError

COMMANDS = ("play", "check", "signals", "targets", "bench", "hands")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand. Thread: main."""
    parser = argparse.ArgumentParser(
        prog="run_show.py",
        description="latentstage: play a show of neural visuals, live or offline.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ("check", "signals", "targets"):
        p = sub.add_parser(name, help=f"{name} a show")
        p.add_argument("show", help="the show's TOML file")
    _hands_parser(sub)
    return parser


def _hands_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hands", help="hand tracking: build the model, record landmarks")
    hands = p.add_subparsers(dest="hands_command", metavar="ACTION", required=True)
    m = hands.add_parser(
        "model",
        help="build hand_landmarker.task from mediapipe 0.10.21's wheel (fetched with pip)",
    )
    m.add_argument("--wheel", type=Path, help="a mediapipe 0.10.21 wheel on disk (skips pip)")
    m.add_argument("--out", type=Path, help="the bundle (default ~/.cache/latentstage/models/...)")
    m.add_argument("--force", action="store_true", help="rebuild even if a good one is there")
    m.set_defaults(func=cmd_hands_model)
    r = hands.add_parser(
        "record", help="record hand landmarks from a camera or a video into a .jsonl"
    )
    r.add_argument("out", type=Path, help="the landmark recording to write (.jsonl)")
    source = r.add_mutually_exclusive_group()
    source.add_argument("--camera", help="camera index or device path (default 0)")
    source.add_argument("--video", type=Path, help="a video file instead of a camera")
    r.add_argument("--seconds", type=float, help="stop after this long (a camera: Ctrl-C)")
    r.add_argument("--model", type=Path, help="the hand_landmarker.task (default: the cache)")
    r.add_argument("--max-hands", type=int, default=2, help="most hands to track (1..4)")
    r.set_defaults(func=cmd_hands_record)


def cmd_hands_model(args: argparse.Namespace) -> int:
    """Build the hand model bundle once. Thread: main."""
    from runtime.inputs.hands_model import ensure_hand_task

    print(ensure_hand_task(args.out, wheel=args.wheel, force=args.force))
    return 0


def cmd_hands_record(args: argparse.Namespace) -> int:
    """Record hand landmarks. Thread: main."""
    from runtime.inputs.hands import record_command

    try:
        line = record_command(
            args.out,
            camera=args.camera,
            video=args.video,
            seconds=args.seconds,
            model=args.model,
            max_hands=args.max_hands,
        )
    except KeyboardInterrupt:
        line = f"stopped; {args.out} keeps the frames written so far"
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the process exit status. Thread: main."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # A bare show path means "play": `run_show.py shows/demo.toml`.
    if argv and not argv[0].startswith("-") and argv[0] not in (*COMMANDS, "help"):
        argv.insert(0, "play")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ShowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
