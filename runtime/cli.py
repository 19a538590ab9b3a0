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
    from runtime.inputs.hands_model import default_task_path

    p = sub.add_parser("hands", help="hand tracking: build the model, record landmarks")
    hands = p.add_subparsers(dest="hands_command", metavar="ACTION", required=True)
    m = hands.add_parser(
        "model",
        help="build hand_landmarker.task from mediapipe 0.10.21's wheel (fetched with pip)",
    )
    m.add_argument("--wheel", help="a mediapipe 0.10.21 wheel already on disk (skips pip)")
    m.add_argument("--out", help=f"the bundle to write (default {default_task_path()})")
    m.add_argument("--force", action="store_true", help="rebuild even if a good one is there")
    m.set_defaults(func=_hands_model)
    r = hands.add_parser(
        "record", help="record hand landmarks from a camera or a video into a .jsonl"
    )
    r.add_argument("out", help="the landmark recording to write (.jsonl)")
    source = r.add_mutually_exclusive_group()
    source.add_argument("--camera", help="camera index or device path (default 0)")
    source.add_argument("--video", help="a video file instead of a camera")
    r.add_argument("--seconds", type=float, help="stop after this long (a camera: Ctrl-C)")
    r.add_argument("--model", help="the hand_landmarker.task (default: the cache)")
    r.add_argument("--max-hands", type=int, default=2, help="most hands to track (1..4)")
    r.set_defaults(func=_hands_record)


def _hands_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime.errors import InputError
    from runtime.inputs.hands_model import build_hand_task, check_hand_task, default_task_path

    out = Path(args.out) if args.out else default_task_path()
    if out.exists() and not args.force:
        try:
            check_hand_task(out)
        except InputError as exc:
            print(f"rebuilding: {exc}")
        else:
            print(f"{out}: already built and checked")
            return 0
    wheel = Path(args.wheel) if args.wheel else None
    print(f"building {out} from {args.wheel or 'mediapipe==0.10.21 (pip download)'}")
    build_hand_task(out, wheel=wheel)
    check_hand_task(out)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, checked")
    return 0


def _hands_record(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime.config import Table
    from runtime.inputs.hands import read_settings, record

    data: dict = {"max_hands": args.max_hands}
    if args.video:
        data["file"] = args.video
    elif args.camera is not None:
        data["camera"] = int(args.camera) if args.camera.isdigit() else args.camera
    if args.model:
        data["model"] = args.model
    table = Table(data, file=Path("<command line>"), text="", name="hands record")
    settings = read_settings(table, Path.cwd())
    print(f"recording {settings.source_name} to {args.out} (Ctrl-C stops)")
    try:
        writer = record(settings, Path(args.out), seconds=args.seconds)
    except KeyboardInterrupt:
        print(f"stopped; {args.out} keeps the frames written so far")
        return 0
    print(f"{args.out}: {writer.frames} frames")
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
