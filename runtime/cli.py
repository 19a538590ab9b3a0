"""The commands behind `run_show.py`.

    run_show.py SHOW [--fullscreen] [--headless --frames N --out PATH]   play or render
    run_show.py check SHOW                                               validate
    run_show.py signals SHOW | targets SHOW                              what maps to what
    run_show.py bench                                                    measure
    run_show.py analyze AUDIO [--plot PNG]                               audio features

Each command's implementation lives in the module it belongs to; this file only
parses arguments and reports errors readably.
"""

from __future__ import annotations

import argparse
import logging
import sys

from runtime.errors import ShowError

COMMANDS = ("play", "check", "signals", "targets", "bench", "analyze")


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

    # Offline audio analysis (runtime.inputs.audio_offline).
    p = sub.add_parser("analyze", help="analyse an audio file: tempo, beats, onsets, plot")
    p.add_argument("audio", help="an audio file (wav, flac, ogg, mp3)")
    p.add_argument("--plot", metavar="PNG", help="write the feature curves with beats marked")
    p.add_argument("--block", type=int, default=512, help="samples per block (default 512)")
    p.set_defaults(func=_analyze)
    return parser


def _analyze(args: argparse.Namespace) -> int:
    from runtime.inputs.audio_offline import analyze_command

    print(analyze_command(args.audio, plot=args.plot, block=args.block))
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
