"""Soak: the live loop for minutes under a storm, sampling what could leak.

    python benchmarks/soak.py --seconds 1800            # the 30-minute figures
    python benchmarks/soak.py --seconds 60 --json r.json

A small show plays in a real window (under Xvfb, started here when there is no
DISPLAY) at full rate while, at once:

- OSC arrives over real UDP: valid faders and triggers, NaN / inf / 1e308 numbers,
  random bytes, truncated messages and strings (about `--rate` packets per second);
- the mapping file is rewritten every 2 s, every third version broken;
- a pass's shader file is rewritten every 3 s, every other version broken;
- the generator fails on purpose: an exception every 97th frame, a NaN frame every
  89th, a 0.3 s stall every 53rd;
- what a performer's set adds every frame: scene recalls with crossfades and `/ls/`
  target messages (some to targets that do not exist) in the storm, OSC out to a
  controller socket, the whole show captured into a take and recorded to a video.

Every `--sample-s` seconds it samples resident memory, open file descriptors,
threads, live GL objects (moderngl objects not released) and GL objects dropped
without a release (the context's garbage list). At the end it prints each one's
first value after the warm-up, its last, and its growth per hour (a least-squares
slope), with the frame statistics, beside each other; `--json` writes them too.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import moderngl
import torch

from runtime import PROJECT_ROOT
from runtime.generators.cppn import CppnGenerator
from runtime.loop import play_live
from runtime.show import load_show

MAPPINGS = (
    # a valid mapping, another valid one, and a broken edit (bad TOML)
    """[set]
"shader.trails.decay" = 0.7
[[map]]
source = "osc:/fader/1"
target = "latent.speed"
out = [0.0, 1.0]
smooth_s = 0.2
[[map]]
source = "osc:/fader/2"
target = "gen.zoom"
out = [0.5, 3.0]
curve = "exp"
[[map]]
source = "osc:/hop"
target = "latent.hop"
trigger = 0.5
[[map]]
sources = ["osc:/fader/1", "osc:/fader/2"]
combine = "product"
target = "shader.grade.hue"
one_euro = { min_cutoff_hz = 1.0, beta = 0.5, d_cutoff_hz = 1.0 }
[[map]]
source = "lfo:mid"
target = "shader.kaleido.mix"
envelope = { attack_s = 0.1, release_s = 0.5 }
""",
    """[set]
"shader.trails.decay" = 0.5
[[map]]
source = "osc:/fader/1"
target = "latent.speed"
out = [0.0, 2.0]
[[map]]
source = "osc:/fader/2"
target = "gen.warp"
out = [0.0, 1.5]
smooth_s = 0.5
""",
    '[set]\n"shader.trails.decay" = \n',
)
SHOW = """mappings = ["soak_mapping.toml"]
[show]
name = "soak"
[generator]
kind = "cppn"
seed = 7
size = [128, 72]
device = "cpu"
[output]
size = [320, 180]
fps = 30
vsync = false
[inputs.osc]
port = {port}
[osc_out]
host = "127.0.0.1"
port = {controller}
[scenes]
fade_s = 1.5
[scenes.calm]
"gen.warp" = 0.1
"shader.kaleido.segments" = 4
[scenes.storm]
"gen.warp" = 1.5
"shader.kaleido.segments" = 12
"latent.phase" = 3.0
[[effects]]
shader = "fit"
[[effects]]
shader = "feedback"
name = "trails"
[[effects]]
shader = "kaleido"
[[effects]]
shader = "grade.glsl"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def osc(address: str, tags: str, *payload: bytes) -> bytes:
    """An OSC message from ready-encoded arguments."""

    def pad(b: bytes) -> bytes:
        b += b"\0"
        return b + b"\0" * (-len(b) % 4)

    return pad(address.encode()) + pad(("," + tags).encode()) + b"".join(payload)


def packets(rng: random.Random):
    """An endless mix of valid and invalid OSC datagrams."""
    f = lambda v: struct.pack(">f", v)  # noqa: E731
    d = lambda v: struct.pack(">d", v)  # noqa: E731
    while True:
        kind = rng.randrange(10)
        if kind < 4:
            yield osc(f"/fader/{rng.choice((1, 2))}", "f", f(rng.random()))
        elif kind == 4:
            yield osc("/hop", "")
        elif kind == 5:
            value = rng.choice((math.nan, math.inf, -math.inf, 3e38))
            yield osc("/fader/1", "f", f(value))
        elif kind == 6:
            yield osc("/fader/2", "d", d(rng.choice((math.nan, math.inf, 1e308, -1e308))))
        elif kind == 7:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        elif kind == 8:
            message = osc("/fader/1", "ff", f(0.5), f(0.25))
            yield message[: rng.randrange(1, len(message))]
        elif kind == 9 and rng.random() < 0.5:
            yield rng.choice(
                (
                    osc(f"/scene/{rng.choice(('calm', 'storm', 'gone'))}", ""),
                    osc("/ls/gen.zoom", "f", f(rng.uniform(0.0, 10.0))),
                    osc("/ls/shader.kaleido.segments", "f", f(rng.uniform(1, 24))),
                    osc("/ls/no.such.target", "f", f(1.0)),
                )
            )
        else:
            text = "".join(rng.choice("abc ") for _ in range(rng.randrange(0, 300)))
            yield osc("/prompt", "s", text.encode() + b"\0" * (4 - len(text.encode()) % 4))


class Storm(threading.Thread):
    """Sends OSC and rewrites the mapping and the shader while the show plays."""

    def __init__(self, folder: Path, port: int, rate_hz: float, edits_after_s: float) -> None:
        super().__init__(name="soak-storm", daemon=True)
        self.folder, self.port, self.rate_hz = folder, port, rate_hz
        self.edits_after_s = edits_after_s
        self.stop = threading.Event()
        self.sent = 0
        self.edits = 0

    def run(self) -> None:
        rng = random.Random(1)
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        shader = (PROJECT_ROOT / "shaders" / "grade.glsl").read_text()
        # The first edits wait for the show to be up: a broken shader at start is a
        # show that does not start, not a live edit.
        next_mapping = next_shader = time.monotonic() + self.edits_after_s
        versions = itertools.count()
        stream = packets(rng)
        burst = max(1, int(self.rate_hz / 100))
        while not self.stop.is_set():
            for _ in range(burst):
                out.sendto(next(stream), ("127.0.0.1", self.port))
                self.sent += 1
            now = time.monotonic()
            if now >= next_mapping:
                next_mapping = now + 2.0
                version = next(versions)
                (self.folder / "soak_mapping.toml").write_text(MAPPINGS[version % 3])
                self.edits += 1
            if now >= next_shader:
                next_shader = now + 3.0
                broken = self.edits % 2 == 1
                text = shader.replace("void main()", "void main() { oops }") if broken else shader
                (self.folder / "grade.glsl").write_text(text + f"\n// edit {self.edits}\n")
                self.edits += 1
            self.stop.wait(0.01)
        out.close()


class Controller(threading.Thread):
    """A controller listening for the show's OSC out: counts what arrives."""

    def __init__(self) -> None:
        super().__init__(name="soak-controller", daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.start()

    def run(self) -> None:
        while True:
            try:
                self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            self.received += 1

    def close(self) -> None:
        self.sock.close()
        self.join()


class Sampler(threading.Thread):
    """Samples resident memory, fds, threads and GL objects every `every_s`."""

    def __init__(self, every_s: float, contexts: list, trace_at_s: float | None) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.every_s = every_s
        self.contexts = contexts
        self.trace_at_s = trace_at_s
        self.traced: tracemalloc.Snapshot | None = None
        self.stop = threading.Event()
        self.rows: list[dict[str, float]] = []
        self.start_s = time.monotonic()

    def run(self) -> None:
        page_kb = os.sysconf("SC_PAGE_SIZE") / 1024
        while not self.stop.wait(self.every_s):
            due = self.trace_at_s is not None and self.traced is None
            if due and time.monotonic() - self.start_s >= self.trace_at_s:
                self.traced = tracemalloc.take_snapshot()
            with open("/proc/self/statm") as f:
                rss_kb = int(f.read().split()[1]) * page_kb
            live = sum(
                1
                for o in gc.get_objects()
                if type(o).__module__ == "moderngl"
                and not isinstance(getattr(o, "mglo", None), moderngl.InvalidObject)
                and hasattr(o, "mglo")
            )
            # Released objects land in the list too, as InvalidObject: not leaks.
            dropped = sum(
                not isinstance(o, moderngl.InvalidObject)
                for ctx in self.contexts
                for o in list(ctx.objects)
            )
            self.rows.append(
                {
                    "t_s": time.monotonic() - self.start_s,
                    "rss_mb": rss_kb / 1024,
                    "fds": len(os.listdir("/proc/self/fd")),
                    "threads": threading.active_count(),
                    "gl_live": live,
                    "gl_dropped": dropped,
                }
            )


class Chaos:
    """The generator's render, failing on purpose now and then."""

    def __init__(self) -> None:
        self.frames = itertools.count()
        self.raised = self.nans = self.stalls = 0
        self.render = CppnGenerator.render

    def __call__(self, generator: CppnGenerator, params):
        n = next(self.frames)
        if n % 97 == 13:
            self.raised += 1
            raise RuntimeError("injected fault")
        if n % 89 == 7:
            self.nans += 1
            width, height = generator.size_px
            return torch.full((3, height, width), math.nan)
        if n % 53 == 5:
            self.stalls += 1
            time.sleep(0.3)
        return self.render(generator, params)


def slope_per_hour(rows: list[dict[str, float]], key: str) -> float:
    """Least-squares growth of `key` per hour over the rows."""
    if len(rows) < 2:
        return 0.0
    ts = [r["t_s"] for r in rows]
    ys = [r[key] for r in rows]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if var == 0 else 3600.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var


def start_xvfb() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    if not shutil.which("Xvfb"):
        sys.exit("soak: no DISPLAY and no Xvfb (install.sh installs it)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "640x360x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    os.environ["DISPLAY"] = ":" + os.read(read_fd, 16).decode().strip()
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{os.environ['DISPLAY'][1:]}").exists():
        if time.monotonic() > deadline:
            sys.exit("soak: Xvfb did not start")
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to play")
    parser.add_argument("--rate", type=float, default=1000.0, help="OSC packets per second")
    parser.add_argument("--sample-s", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup-s", type=float, default=15.0, help="left out of the growth")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also list the Python allocation sites that grew most after the warm-up",
    )
    args = parser.parse_args(argv)

    xvfb = start_xvfb()
    contexts: list[moderngl.Context] = []
    create = moderngl.create_context

    def create_tracked(*a, **k):
        # Objects dropped without a release land in ctx.objects instead of leaking
        # silently: the sampler counts them.
        ctx = create(*a, **k)
        ctx.gc_mode = "context_gc"
        contexts.append(ctx)
        return ctx

    moderngl.create_context = create_tracked
    chaos = Chaos()
    CppnGenerator.render = lambda self, params: chaos(self, params)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        (folder / "soak_mapping.toml").write_text(MAPPINGS[0])
        shutil.copy(PROJECT_ROOT / "shaders" / "grade.glsl", folder / "grade.glsl")
        controller = Controller()
        show_text = SHOW.replace("{port}", str(port))
        (folder / "soak.toml").write_text(show_text.replace("{controller}", str(controller.port)))
        show = load_show(folder / "soak.toml")
        threads_before = threading.active_count()
        storm = Storm(folder, port, args.rate, 30.0 if args.tracemalloc else 5.0)
        if args.tracemalloc:
            tracemalloc.start(12)
        sampler = Sampler(args.sample_s, contexts, args.warmup_s if args.tracemalloc else None)
        storm.start()
        sampler.start()
        try:
            stats = play_live(
                show,
                duration_s=args.seconds,
                capture=folder / "soak.take",
                record=folder / "soak.mkv",
            )
        finally:
            storm.stop.set()
            sampler.stop.set()
            storm.join()
            sampler.join()
            controller.close()
        take_mb = sum(p.stat().st_size for p in (folder / "soak.take").iterdir()) / 2**20
        video_mb = (folder / "soak.mkv").stat().st_size / 2**20
        threads_after = threading.active_count()
    if xvfb is not None:
        xvfb.terminate()
        xvfb.wait()

    rows = [r for r in sampler.rows if r["t_s"] >= args.warmup_s] or sampler.rows
    results = {
        "seconds": args.seconds,
        "frames": stats.frames,
        "late": stats.late,
        "p50_ms": stats.percentile_ms(50),
        "p99_ms": stats.percentile_ms(99),
        "osc_sent": storm.sent,
        "file_edits": storm.edits,
        "injected": {"raised": chaos.raised, "nan_frames": chaos.nans, "stalls": chaos.stalls},
        "threads_before_after": [threads_before, threads_after],
        "controller_received": controller.received,
        "take_mb": take_mb,
        "video_mb": video_mb,
        "metrics": {},
    }
    print(
        f"soak {args.seconds:.0f} s: {stats.frames} frames, p50 {results['p50_ms']:.1f} ms, "
        f"p99 {results['p99_ms']:.1f} ms, late {stats.late}; {storm.sent} OSC packets, "
        f"{storm.edits} file edits, injected {chaos.raised} exceptions, {chaos.nans} NaN "
        f"frames, {chaos.stalls} stalls; threads {threads_before} before, {threads_after} after;"
        f" the controller heard {controller.received} messages; take {take_mb:.1f} MB, video"
        f" {video_mb:.1f} MB"
    )
    header = f"{'metric':12} {'first':>10} {'last':>10} {'growth/hour':>12} {'% /hour':>8}"
    print(header)
    print("-" * len(header))
    for key in ("rss_mb", "fds", "threads", "gl_live", "gl_dropped"):
        first, last = rows[0][key], rows[-1][key]
        growth = slope_per_hour(rows, key)
        percent = 100.0 * growth / first if first else 0.0
        results["metrics"][key] = {
            "first": first,
            "last": last,
            "growth_per_hour": growth,
            "percent_per_hour": percent,
        }
        print(f"{key:12} {first:10.1f} {last:10.1f} {growth:12.2f} {percent:8.2f}")
    if sampler.traced is not None:
        growth = tracemalloc.take_snapshot().compare_to(sampler.traced, "traceback")
        print("Python allocations that grew most after the warm-up:")
        for stat in growth[:8]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
            for line in stat.traceback.format()[-6:]:
                print("     " + line)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
