"""The commands behind `run_show.py`. Each command's work lives in the module it
belongs to; this file parses arguments, sets up logging and reports errors readably.
"""

from __future__ import annotations

import argparse
import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from runtime.errors import ShowError

log = logging.getLogger("latentstage")

EPILOG = """\
examples:
  run_show.py shows/demo.toml                      play in a window (Esc or q quits,
                                                   h hides the HUD, f fullscreen)
  run_show.py shows/demo.toml --fullscreen --monitor 1
  run_show.py shows/demo.toml --record set.mkv     play and record the output (and live
                                                   sound); r or OSC /record 0|1 toggles
  run_show.py shows/demo.toml --headless --frames 300 --out demo.mp4
  run_show.py shows/demo.toml --headless --frames 30 --out frames/
  run_show.py shows/vj.toml --capture set.take    play and capture the performance
                                                   (key c starts and stops takes too)
  run_show.py shows/vj.toml --take set.take --headless --out set.mp4 --size 1920x1080
                                                   render it again, frame-exact, larger
  run_show.py shows/music_video.toml --headless --out video.mp4 --ray
                                                   the same render on Ray workers, one
                                                   per GPU (--ray HOST:6379: a cluster)
  run_show.py check shows/demo.toml                validate show, mappings, shaders
  run_show.py supervise shows/installation.toml --fullscreen --no-hud
                                                   restart it on crashes and hangs
  run_show.py status shows/installation.toml       a running show's health as JSON
  run_show.py signals shows/demo.toml              what can be mapped from
  run_show.py targets shows/demo.toml              what can be mapped to
  run_show.py targets shows/vj.toml --osc          each target's OSC address: send
                                                   /ls/gen.zoom 1.2 to set it live
  run_show.py bench                                measure the loop and generator
  run_show.py devices                              MIDI ports, audio devices, monitors
  run_show.py analyze song.flac --plot features.png   what the audio analysis hears
  run_show.py learn shows/vj.toml --target gen.zoom   move a MIDI control to map it
  run_show.py models list                          the model catalogue and the cache
  run_show.py models pull biggan-deep-128          download weights (sha256-checked)
  run_show.py models pull tv-googlenet             DeepDream's network (shows/dream.toml)
  run_show.py shows/prompt.toml                    CLIP steers the picture to text prompts

A show is a TOML file (shows/); its mapping files (mappings/) route signals such as
osc:/fader/1, lfo:slow, clip:face or time onto targets such as latent.speed,
dream.strength, clip.forest.weight or shader.kaleido.segments. Mapping files and
shaders reload when saved.
"""


PLAY_KEYS = """\
keys while playing: Esc or q quits, h hides the HUD, f toggles fullscreen
  1..9        recall scene N (a show with [scenes]; docs/PERFORMING.md)
  right, left the next or the previous scene, round the list
  shift+1..9  save the current state into scene N;  s  save a new scene
  r           start or stop recording the output (see --record)
  c           end the take and start the next one (see --capture)
  any other   a signal a mapping can use: key:NAME (key:space, key:shift+2)
OSC: /scene/NAME (its fade), /scene/NAME/fade S, /scene/next, /scene/prev,
/scene/save NAME, /record 0|1,
/record/toggle, and every target at /ls/TARGET VALUE (`run_show.py targets SHOW
--osc` lists them); [osc_out] sends state back to a controller
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand. Thread: main."""
    parser = argparse.ArgumentParser(
        prog="run_show.py",
        description="latentstage: play a show of neural visuals, live or offline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _log_options(parser, after_command=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    play = sub.add_parser(
        "play",
        help="play a show (the default: `run_show.py SHOW`)",
        description="Play a show in a window, or render it without a display.",
        epilog=PLAY_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    play.add_argument("show", type=Path, help="the show's TOML file")
    _window_options(play)
    play.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    play.add_argument(
        "--headless",
        action="store_true",
        help="render without a display (EGL), frame-exact at the show's fps",
    )
    play.add_argument(
        "--frames",
        type=int,
        metavar="N",
        help="frames to render with --headless (default: the show's audio file's length, else "
        "300; with --take: the whole take)",
    )
    play.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="with --headless: a .mp4/.mov/.mkv file, or a folder for PNGs",
    )
    play.add_argument(
        "--audio",
        type=Path,
        metavar="FILE",
        help="with --headless and a video --out: mux this audio file in (default: the "
        "show's [inputs.audio] file; with --take: the captured sound)",
    )
    _take_options(play)
    play.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="live: record the output (without the HUD) and the live sound into FILE "
        "(.mkv, or .mp4/.mov fragmented; playable even if the show is killed) from the "
        "first frame. Without it, the r key or OSC /record 1 (0 stops, /record/toggle "
        "toggles) records into recordings/SHOW-DATE-TIME.mkv beside the show. A full "
        "encoder queue drops frames and counts them on the HUD; the show never waits",
    )
    play.add_argument(
        "--ndi",
        metavar="NAME",
        help="live: send the output as an NDI source named NAME (needs the [ndi] extra: "
        "pip install -e '.[ndi]'); overrides the show's [output] ndi",
    )
    _ray_options(play)
    play.set_defaults(func=cmd_play)
    _supervise_parser(sub)

    for name, helptext, func in (
        ("check", "validate a show, its mapping files and shaders without playing", cmd_check),
        ("signals", "list the signals a show can map from", cmd_signals),
        ("targets", "list the targets a show can map to", cmd_targets),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("show", type=Path, help="the show's TOML file")
        p.set_defaults(func=func)
        if name == "targets":
            p.add_argument(
                "--osc",
                action="store_true",
                help="list each target's OSC address (/ls/TARGET VALUE sets it without a "
                "mapping entry) with its range and default",
            )

    bench = sub.add_parser(
        "bench",
        help="measure the loop's cost, generator speed and headless fps",
        description="Measure, side by side in one run: the frame loop's own cost over a "
        "bare ModernGL blit, generator ms/frame at 256 and 512 px, and headless "
        "end-to-end fps.",
    )
    bench.add_argument(
        "--show", type=Path, default=None, help="show to measure (default shows/demo.toml)"
    )
    bench.add_argument("--frames", type=int, default=120, help="frames per measurement")
    bench.set_defaults(func=cmd_bench)
    _hands_parser(sub)
    _models_parser(sub)
    _midi_parsers(sub)
    _audio_parser(sub)
    # -v and --log also after the command: `run_show.py play SHOW --log FILE`.
    for command in sub.choices.values():
        _log_options(command, after_command=True)
    return parser


def _take_options(p: argparse.ArgumentParser) -> None:
    take = p.add_argument_group("capture a performance and render it again (docs/PERFORMING.md)")
    take.add_argument(
        "--capture",
        type=Path,
        metavar="TAKE",
        help="while playing live, write every input event, every frame's clock and the "
        "live sound into the take folder TAKE (key c stops and starts takes; without "
        "--capture the first goes to takes/ beside the show)",
    )
    take.add_argument(
        "--capture-frames",
        action="store_true",
        help="with --capture: also keep a digest of every frame's pixels, so the take's "
        "render can prove it draws the same frames (a read-back per frame)",
    )
    take.add_argument(
        "--take",
        type=Path,
        metavar="TAKE",
        help="with --headless and --out: render the captured performance TAKE, frame-exact, "
        "with its sound; no live input is opened",
    )
    take.add_argument(
        "--size",
        type=_size,
        metavar="WxH",
        help="output size for this run (window or render), e.g. 1920x1080; the canvas "
        "scales along unless --canvas is given",
    )
    take.add_argument(
        "--canvas", type=_size, metavar="WxH", help="the size the shader passes render at"
    )


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0:
        return int(width), int(height)
    raise argparse.ArgumentTypeError(
        f"expected WIDTHxHEIGHT in pixels, e.g. 1280x720, got {text!r}"
    )


def _ray_options(p: argparse.ArgumentParser) -> None:
    ray = p.add_argument_group(
        "distributed rendering (with --headless; needs the [distributed] extra, docs/RENDERING.md)"
    )
    ray.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="render on Ray workers, one per GPU: with no ADDRESS on a Ray instance of "
        "this render's own; with one (host:6379, or auto for the one on this machine) on "
        "a cluster started with `ray start`",
    )
    ray.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --ray: N workers (default: one per GPU; without GPUs, as many as the "
        "CPUs hold at this process's torch threads each)",
    )
    ray.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="with --ray: frames per worker call (default 8)",
    )
    ray.add_argument(
        "--resume",
        action="store_true",
        help="with --ray: continue a render whose driver died, from the frames it kept in OUT.work",
    )


def _log_options(p: argparse.ArgumentParser, *, after_command: bool) -> None:
    # After the command they default to nothing (SUPPRESS), so that leaving them out
    # there does not undo the same options given before the command.
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if after_command else False,
        help="log debug detail",
    )
    p.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS if after_command else None,
        help="also write the log to FILE (rotated at 10 MB)",
    )


def _window_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fullscreen", action="store_true", help="fill a monitor, cursor hidden")
    p.add_argument(
        "--monitor",
        type=int,
        metavar="N",
        help="monitor for --fullscreen (`run_show.py devices` lists them); a missing one "
        "plays on the primary monitor until it is connected",
    )
    p.add_argument("--no-hud", action="store_true", help="start with the HUD hidden")


def _supervise_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "supervise",
        help="play a show in a child process, restarting it when it crashes or hangs",
        description="Run `run_show.py play SHOW` as a child and keep it running: a child "
        "that exits or crashes is started again, one whose frame loop stops beating for "
        "--hang-s seconds is killed and started again, a child that fails soon after "
        "starting waits 1, 2, 4 ... 60 s first, and each crash is appended to the crash "
        "log. SIGTERM (or Ctrl-C) stops the show and the supervisor, exit status 0. For "
        "machines without systemd (docs/INSTALLATION.md).",
    )
    p.add_argument("show", type=Path, help="the show's TOML file")
    _window_options(p)
    p.add_argument(
        "--hang-s",
        type=float,
        default=5.0,
        metavar="S",
        help="kill a show whose frame loop is stuck this long (default 5)",
    )
    p.add_argument(
        "--start-s",
        type=float,
        default=300.0,
        metavar="S",
        help="kill a show that has not shown its first frame after this long (default 300)",
    )
    p.add_argument(
        "--crash-log",
        type=Path,
        metavar="FILE",
        help="append crashes here (default: SHOW-crashes.log beside --log, else beside the show)",
    )
    p.set_defaults(func=cmd_supervise)
    status = sub.add_parser(
        "status",
        help="ask a running show for its health (its [health] table)",
        description="Print a running show's health JSON, read from the address in its "
        "[health] table. Exit status 0: healthy; 1: unhealthy or not answering.",
    )
    status.add_argument("show", type=Path, help="the show's TOML file")
    status.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="seconds to wait (5)"
    )
    status.set_defaults(func=cmd_status)


def cmd_supervise(args: argparse.Namespace) -> int:
    """Supervise a show. Thread: main."""
    from runtime.show import load_show
    from runtime.supervise import Supervisor, default_crash_log

    load_show(args.show)  # a mistake in the show is reported now, not restarted forever
    play_args = ["--fullscreen"] if args.fullscreen else []
    play_args += ["--monitor", str(args.monitor)] if args.monitor is not None else []
    play_args += ["--no-hud"] if args.no_hud else []
    crash_log = args.crash_log or default_crash_log(args.show, args.log)
    supervisor = Supervisor(
        args.show,
        play_args,
        hang_s=args.hang_s,
        start_s=args.start_s,
        crash_log=crash_log,
        verbose=args.verbose,
    )
    log.info("supervising %s; crashes go to %s", args.show, crash_log)
    return supervisor.run()


def cmd_status(args: argparse.Namespace) -> int:
    """Print a running show's health. Thread: main."""
    import json

    from runtime.health import fetch
    from runtime.show import load_show

    show = load_show(args.show)
    if show.health is None:
        raise ShowError(f"{args.show}: no [health] table, so the show serves no health")
    served = fetch(show.health, timeout_s=args.timeout)
    print(json.dumps(served, indent=2))
    if not served["healthy"]:
        print(f"unhealthy: {'; '.join(served['problems_now'])}", file=sys.stderr)
        return 1
    return 0


def _audio_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse an audio file: tempo, beats, onsets, plot",
        description="Run the offline audio analysis on a file: print tempo, beat and onset "
        "counts and duration, and plot the feature curves with beats marked, to see what "
        "a mapping will get.",
    )
    p.add_argument("audio", help="an audio file (wav, flac, ogg, mp3)")
    p.add_argument("--plot", metavar="PNG", help="write the feature curves with beats marked")
    p.add_argument("--block", type=int, default=512, help="samples per block (default 512)")
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyse an audio file. Thread: main."""
    from runtime.inputs.audio_offline import analyze_command

    print(analyze_command(args.audio, plot=args.plot, block=args.block))
    return 0


def _midi_parsers(sub: argparse._SubParsersAction) -> None:
    learn = sub.add_parser(
        "learn",
        help="map the next MIDI control moved onto a target",
        description="Wait for the next MIDI control the performer moves and write a [[map]] "
        "entry for it into the show's mapping file, keeping the rest of the file as it was.",
    )
    learn.add_argument("show", type=Path, help="the show's TOML file")
    learn.add_argument("--target", required=True, help="dotted target name, e.g. gen.zoom")
    learn.add_argument(
        "--mapping", type=Path, help="mapping file to write (default: the show's first)"
    )
    learn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    learn.add_argument("--channel", action="store_true", help="name the MIDI channel too")
    learn.set_defaults(func=cmd_learn)
    devices = sub.add_parser("devices", help="list MIDI ports, audio devices and monitors")
    devices.set_defaults(func=cmd_devices)


def cmd_learn(args: argparse.Namespace) -> int:
    """MIDI learn. Thread: main."""
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


def cmd_devices(args: argparse.Namespace) -> int:
    """List devices. Thread: main."""
    from runtime import devices

    for line in devices.report():
        print(line)
    return 0


def _models_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list the model catalogue, pull weights into the cache")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="the catalogue and what is cached")
    pull = actions.add_parser("pull", help="download a model into the cache, checking its sha256")
    pull.add_argument("name", help="a catalogue name (see `models list`)")
    pull.add_argument("--sha256", help="expected sha256 where the catalogue has none")
    pull.add_argument(
        "--accept-unverified", action="store_true", help="keep a file no checksum vouches for"
    )
    convert = actions.add_parser(
        "convert",
        help="turn a StyleGAN .pkl into a .safetensors file (later loads never unpickle)",
    )
    convert.add_argument("checkpoint", type=Path, help="an NVlabs StyleGAN2/3 .pkl (or .pt)")
    convert.add_argument("out", type=Path, help="the .safetensors file to write")
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    """List, pull or convert models. Thread: main."""
    if args.models_command == "convert":
        from runtime.generators.stylegan_load import export_safetensors, load_network

        export_safetensors(load_network(args.checkpoint), args.out)
        print(f'wrote {args.out}\nin a show: [generator] weights = "{args.out}"')
        return 0
    from runtime.models import run_command

    return run_command(args, sys.stdout)


def cmd_play(args: argparse.Namespace) -> int:
    """Play or render a show. Thread: main."""
    from runtime.loop import play_live, render_offline
    from runtime.show import load_show

    distributed = args.ray is not None
    if not distributed and (args.workers, args.batch, args.resume) != (None, None, False):
        raise ShowError("--workers, --batch and --resume go with --ray")
    if distributed:
        from runtime.distributed import require_ray

        if not args.headless:
            raise ShowError("--ray renders offline: add --headless and --out")
        require_ray()  # say how to install it before loading anything
    show = load_show(args.show)
    if args.size or args.canvas:
        from runtime.take_render import resize_output

        show = resize_output(show, args.size, args.canvas)
    if args.take is not None:
        if not args.headless or args.out is None or distributed or args.capture:
            raise ShowError(
                "--take renders offline: add --headless and --out (not --ray or --capture)"
            )
        from runtime.take_render import render_take

        report = render_take(show, args.take, out=args.out, frames=args.frames, audio=args.audio)
        print(report.line())
        return 0
    if args.capture and args.headless:
        raise ShowError("--capture captures a live performance: leave out --headless")
    if distributed:
        import torch

        from runtime.gl_frames import draws_in_gl

        if draws_in_gl(show, torch.cuda.is_available()):
            log.info(
                "%s: the cppn is drawn in GL beside the passes on this machine: nothing "
                "for Ray workers to render; rendering here",
                show.path,
            )
            distributed = False
    if args.record is not None:
        from runtime.render.live_record import check_record_path

        if args.headless:
            raise ShowError("--record records live play; --headless writes --out")
        check_record_path(args.record)
    if args.ndi is not None and args.headless:
        raise ShowError("--ndi sends live play; --headless writes --out")
    if args.headless:
        if args.out is None:
            raise ShowError("--headless needs --out: a .mp4 file or a folder for PNGs")
        if distributed:
            from runtime.distributed import DEFAULT_BATCH, render_distributed

            render_distributed(
                show,
                frames=args.frames,
                out=args.out,
                audio=args.audio,
                address=args.ray or None,
                workers=args.workers,
                batch=DEFAULT_BATCH if args.batch is None else args.batch,
                resume=args.resume,
            )
            return 0
        render_offline(show, frames=args.frames, out=args.out, audio=args.audio)
        return 0
    play_live(
        show,
        fullscreen=args.fullscreen or None,
        monitor=args.monitor,
        duration_s=args.seconds,
        hud=not args.no_hud,
        capture=args.capture,
        capture_frames=args.capture_frames,
        record=args.record,
        ndi=args.ndi,
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate without playing. Thread: main."""
    from runtime.check import check_show

    for line in check_show(args.show):
        print(line)
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    """List sources. Thread: main."""
    from runtime.check import list_signals

    for line in list_signals(args.show):
        print(line)
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    """List targets. Thread: main."""
    from runtime.check import list_targets

    for line in list_targets(args.show, osc=args.osc):
        print(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark. Thread: main."""
    from runtime import PROJECT_ROOT
    from runtime.bench import run_bench

    for line in run_bench(args.show or PROJECT_ROOT / "shows" / "demo.toml", frames=args.frames):
        print(line, flush=True)
    return 0


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
        "record", help="record hand landmarks from a camera or a video into a take"
    )
    r.add_argument(
        "out", type=Path, help="the take folder to write (e.g. rehearsal.take; docs/SENSORS.md)"
    )
    source = r.add_mutually_exclusive_group()
    source.add_argument("--camera", help="camera index or device path (default 0)")
    source.add_argument("--video", type=Path, help="a video file instead of a camera")
    r.add_argument("--seconds", type=float, help="stop after this long (a camera: Ctrl-C)")
    r.add_argument("--model", type=Path, help="the hand_landmarker.task (default: the cache)")
    r.add_argument("--max-hands", type=int, default=2, help="most hands to track (1..4)")
    r.set_defaults(func=cmd_hands_record)


def cmd_hands_model(args: argparse.Namespace) -> int:
    """Build the hand model bundle once. Thread: main."""
    from runtime.inputs.hands.model import ensure_hand_task

    print(ensure_hand_task(args.out, wheel=args.wheel, force=args.force))
    return 0


def cmd_hands_record(args: argparse.Namespace) -> int:
    """Record hand landmarks. Thread: main."""
    from runtime.inputs.hands.record import record_command

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


def _first_word(argv: list[str]) -> int | None:
    """The index of the first argument that is neither an option nor --log's FILE."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-") and (i == 0 or argv[i - 1] != "--log"):
            return i
    return None


class _Formatter(logging.Formatter):
    """The log's format, except for lines relayed from a supervised show, which
    carry their own time and level already."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "relayed", False):
            return record.getMessage()
        return super().format(record)


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the process exit status. Thread: main."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    # A bare show path means "play": `run_show.py shows/demo.toml`.
    first = _first_word(argv)
    if first is not None and argv[first] not in commands:
        argv.insert(first, "play")
    args = parser.parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log:
        # Months of unattended running: rotate at 10 MB, keep five old logs.
        handlers.append(RotatingFileHandler(args.log, maxBytes=10_000_000, backupCount=5))
    formatter = _Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=handlers)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ShowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
