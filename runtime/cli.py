"""The commands behind `run_show.py`.

    run_show.py SHOW [--fullscreen] [--headless --frames N --out PATH]   play or render
    run_show.py check SHOW                                               validate
    run_show.py signals SHOW | targets SHOW                              what maps to what
    run_show.py bench                                                    measure
    run_show.py models list | models pull NAME                           model weights

Each command's implementation lives in the module it belongs to; this file only
parses arguments and reports errors readably.
"""

from __future__ import annotations

import argparse
import logging
import sys

from runtime.errors import ShowError

COMMANDS = ("play", "check", "signals", "targets", "bench", "models")


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

    models = sub.add_parser("models", help="list the model catalogue, pull weights into the cache")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="the catalogue and what is cached")
    pull = actions.add_parser("pull", help="download a model into the cache, checking its sha256")
    pull.add_argument("name", help="a catalogue name (see `models list`)")
    pull.add_argument("--sha256", help="expected sha256 where the catalogue has none")
    pull.add_argument(
        "--accept-unverified", action="store_true", help="keep a file no checksum vouches for"
    )
    models.set_defaults(func=_models)
    return parser


def _models(args: argparse.Namespace) -> int:
    from runtime.models import run_command

    return run_command(args, sys.stdout)


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
