"""The commands behind `run_show.py`.

    run_show.py SHOW [--fullscreen] [--headless --frames N --out PATH]   play or render
    run_show.py check SHOW                                               validate
    run_show.py signals SHOW | targets SHOW                              what maps to what
    run_show.py bench                                                    measure
    run_show.py learn SHOW --target TARGET                               MIDI learn
    run_show.py devices                                                  list MIDI, audio, monitors

Each command's implementation lives in the module it belongs to; this file only
parses arguments and reports errors readably.
"""

from __future__ import annotations

import argparse
import logging
import sys

from runtime.errors import ShowError

COMMANDS = ("play", "check", "signals", "targets", "bench", "learn", "devices")


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

    learn = sub.add_parser("learn", help="map the next MIDI control moved onto a target")
    learn.add_argument("show", help="the show's TOML file")
    learn.add_argument("--target", required=True, help="dotted target name, e.g. gen.zoom")
    learn.add_argument("--mapping", help="mapping file to write (default: the show's first)")
    learn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    learn.add_argument("--channel", action="store_true", help="name the MIDI channel too")
    learn.set_defaults(func=_learn)

    devices = sub.add_parser("devices", help="list MIDI ports, audio devices and monitors")
    devices.set_defaults(func=_devices)
    return parser


def _learn(args: argparse.Namespace) -> int:
    from runtime import learn

    try:
        return learn.run(
            args.show,
            args.target,
            mapping=args.mapping,
            timeout_s=args.timeout,
            channel=args.channel,
            say=print,
        )
    except KeyboardInterrupt:
        print("learn cancelled; nothing written", file=sys.stderr)
        return 130


def _devices(args: argparse.Namespace) -> int:
    from runtime import devices

    for line in devices.report():
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
