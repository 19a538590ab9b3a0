"""Renders on Ray workers (runtime/distributed/): byte for byte what a one-process
render writes, through a killed worker, a killed driver resumed, and a neural chain
fed its own output. On a local Ray instance of two CPUs (started once, ~4 s)."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import copy_show
from runtime import PROJECT_ROOT
from runtime.cli import main
from runtime.distributed import DistributedError, refuse_unsplittable, render_distributed
from runtime.distributed.plan import batches
from runtime.distributed.work_folder import WorkFolder, work_folder
from runtime.generators.base import Params
from runtime.loop import render_offline
from runtime.neural.chain import ChainState, NeuralChain
from runtime.show import load_show

AMEN = Path("/usr/share/sonic-pi/samples/loop_amen_full.flac")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with two CPUs, for every test of this module."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def png_bytes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("frame_*.png"))]


def assert_same_pngs(a: Path, b: Path, frames: int) -> None:
    left, right = png_bytes(a), png_bytes(b)
    assert len(left) == len(right) == frames
    differ = [i for i, (x, y) in enumerate(zip(left, right)) if x != y]
    assert not differ, f"frames {differ} differ"


def kill_when(folder: Path, frames: int, pid_of, *, sig=signal.SIGKILL) -> threading.Thread:
    """A thread that sends a process `sig` once `frames` generated frames are on disk."""

    def run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = folder / "frames"
            if done.is_dir() and sum(1 for _ in done.glob("*.npy")) >= frames:
                pid = pid_of()
                if pid is not None:
                    os.kill(pid, sig)
                    return
            time.sleep(0.002)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def worker_pid(caplog, name: str):
    def find() -> int | None:
        for record in list(caplog.records):
            found = re.match(rf"{name} \(\S+ pid (\d+),", record.getMessage())
            if found:
                return int(found.group(1))
        return None

    return find


# ---- without Ray at all -----------------------------------------------------------------


def test_ray_flag_without_ray_says_how_to_install(tmp_path):
    show = copy_show(tmp_path)
    code = (
        "import sys; sys.modules['ray'] = None; from runtime.cli import main; "
        f"sys.exit(main([{str(show)!r}, '--headless', '--out', 'x.mp4', '--ray']))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--ray needs Ray" in lines[0] and "pip install -e '.[distributed]'" in lines[0]


def test_a_clip_show_is_refused():
    show = load_show(PROJECT_ROOT / "shows" / "prompt.toml")
    with pytest.raises(DistributedError, match=r"\[clip\] cannot be rendered with --ray"):
        refuse_unsplittable(show)


def test_a_show_drawn_in_gl_renders_here(tmp_path, caplog):
    """The cppn drawn in GL has nothing for a worker to do: `--ray` renders it on
    this machine, as without --ray (the API refuses it)."""
    path = copy_show(tmp_path)
    path.write_text(path.read_text().replace('device = "cpu"', 'device = "gl"'))
    with pytest.raises(DistributedError, match="drawn in GL on this machine"):
        refuse_unsplittable(load_show(path))
    caplog.set_level("INFO")
    out = tmp_path / "frames"
    status = main([str(path), "--headless", "--frames", "3", "--out", str(out), "--ray"])
    assert status == 0 and len(list(out.glob("frame_*.png"))) == 3
    assert "nothing for Ray workers to render; rendering here" in caplog.text


def test_frames_left_become_batches_of_consecutive_frames():
    got = [(b.first, b.count) for b in batches([0, 1, 2, 3, 4, 7, 8, 10], 3)]
    assert got == [(0, 3), (3, 2), (7, 2), (10, 1)]


def test_a_work_folder_of_another_render_is_refused(tmp_path):
    out = tmp_path / "video.mp4"
    expect = {"show file": "abc", "frames": 90}
    WorkFolder.open(out, expect, resume=False)
    with pytest.raises(DistributedError, match="add --resume"):
        WorkFolder.open(out, expect, resume=False)
    with pytest.raises(DistributedError, match="different frames"):
        WorkFolder.open(out, {**expect, "frames": 91}, resume=True)
    assert WorkFolder.open(out, expect, resume=True).path == work_folder(out)


def test_a_chain_continues_exactly_from_its_state_in_another_process(tmp_path):
    """The lane's promise: state() after frame k, restore()d in a fresh chain (here,
    through the work folder on disk), gives frames k + 1 ... as one chain would."""

    class Fade:
        """A stage that fades the frame a little (the feedback needs a stage)."""

        name = "fade"
        controls = ()

        def load(self, device):
            pass

        def process(self, x, values, run):
            return x * 0.9 + 0.05, 1

    def chain() -> NeuralChain:
        c = NeuralChain([Fade()], budgets_s=[1.0], device=torch.device("cpu"), seed=1, offline=True)
        c.load()
        return c

    def frames(c: NeuralChain, first: int, count: int) -> list[torch.Tensor]:
        out = []
        for f in range(first, first + count):
            image = torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(f))
            values = {"feedback.amount": 0.6, "feedback.zoom": 0.3, "feedback.rotate": 0.4}
            out.append(c.process(image, Params(f, f / 30, values))[0])
        return out

    whole = frames(chain(), 0, 10)
    first = chain()
    frames(first, 0, 5)
    work = WorkFolder.open(tmp_path / "out.mp4", {}, resume=False)
    work.save_state(4, first.state())
    after, state = work.load_state()
    second = chain()
    second.restore(state)
    assert after == 4 and isinstance(state, ChainState)
    rest = frames(second, 5, 5)
    assert all(torch.equal(a, b) for a, b in zip(whole[5:], rest))
    assert not torch.equal(whole[5], frames(chain(), 5, 1)[0])  # the state mattered


# ---- on a local Ray instance ----------------------------------------------------------------


@pytest.mark.gl
@pytest.mark.slow
@pytest.mark.skipif(not AMEN.exists(), reason=f"{AMEN} missing (install.sh --dev)")
def test_a_music_video_on_two_workers_equals_the_one_process_render(tmp_path, ray_local):
    import imageio_ffmpeg

    show = load_show(copy_show(tmp_path, "music_tiny"))
    render_offline(show, frames=36, out=tmp_path / "one", progress=False)
    report = render_distributed(
        show, frames=36, out=tmp_path / "ray", workers=2, batch=4, progress=False
    )
    assert_same_pngs(tmp_path / "one", tmp_path / "ray", 36)
    assert {t.name for t in report.workers if t.frames} == {"w0", "w1"}
    assert not work_folder(tmp_path / "ray").exists()  # removed once complete
    # The video: same frames (decoded), and the show's soundtrack muxed in.
    render_offline(show, frames=36, out=tmp_path / "one.mp4", progress=False)
    render_distributed(show, frames=36, out=tmp_path / "ray.mp4", workers=2, progress=False)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run(
        [ffmpeg, "-i", str(tmp_path / "ray.mp4")], capture_output=True, text=True
    ).stderr
    assert "Audio:" in probe and "64x48" in probe

    def decoded(path: Path) -> list[bytes]:
        reader = imageio_ffmpeg.read_frames(str(path))
        next(reader)
        return list(reader)

    one, ray = decoded(tmp_path / "one.mp4"), decoded(tmp_path / "ray.mp4")
    assert len(ray) == len(one) == 36 and ray == one


@pytest.mark.gl
@pytest.mark.slow
def test_a_worker_killed_mid_render_is_redone_and_the_render_identical(tmp_path, ray_local, caplog):
    caplog.set_level(logging.INFO, logger="runtime.distributed")
    show = load_show(copy_show(tmp_path))
    render_offline(show, frames=60, out=tmp_path / "one", progress=False)
    out = tmp_path / "ray"
    killer = kill_when(work_folder(out), 4, worker_pid(caplog, "w1"))
    report = render_distributed(show, frames=60, out=out, workers=2, batch=2, progress=False)
    killer.join(timeout=1)
    assert_same_pngs(tmp_path / "one", out, 60)
    lost = [r.getMessage() for r in caplog.records if "was lost rendering" in r.getMessage()]
    assert lost and lost[0].startswith("w1 "), "the worker was not killed mid-render"
    assert report.workers[1].lost >= 1 and report.generated >= 60


def feedback_show(tmp_path: Path) -> Path:
    """The tiny show with a neural chain fed its own output: its dream stage has no
    weights and is bypassed, but the chain still blends in its last output, turned,
    so frame k depends on frames 0 .. k - 1."""
    path = copy_show(tmp_path)
    path.write_text(
        path.read_text().replace(
            "[[effects]]", '[[neural]]\nkind = "dream"\nweights = "absent.pth"\n\n[[effects]]', 1
        )
    )
    mapping = tmp_path / "tiny_mapping.toml"
    mapping.write_text(
        mapping.read_text().replace(
            "[set]\n", '[set]\n"feedback.amount" = 0.7\n"feedback.rotate" = 0.5\n'
        )
    )
    return path


@pytest.mark.gl
@pytest.mark.slow
def test_a_feedback_show_renders_in_order_on_one_worker_through_a_kill(tmp_path, ray_local, caplog):
    caplog.set_level(logging.INFO, logger="runtime.distributed")
    show = load_show(feedback_show(tmp_path))
    render_offline(show, frames=40, out=tmp_path / "one", progress=False)
    out = tmp_path / "ray"
    killer = kill_when(work_folder(out), 6, worker_pid(caplog, "w0"))
    report = render_distributed(show, frames=40, out=out, workers=2, batch=3, progress=False)
    killer.join(timeout=1)
    assert report.lane and len(report.workers) == 1
    assert report.workers[0].lost >= 1, "the worker was not killed mid-render"
    assert_same_pngs(tmp_path / "one", out, 40)


@pytest.mark.gl
@pytest.mark.slow
def test_a_stopped_feedback_render_resumes_from_its_kept_state(tmp_path, ray_local):
    show = load_show(feedback_show(tmp_path))
    render_offline(show, frames=40, out=tmp_path / "one", progress=False)
    out = tmp_path / "ray"
    # SIGTERM stops the render gracefully; the work folder stays, with the state.
    stopper = kill_when(work_folder(out), 9, os.getpid, sig=signal.SIGTERM)
    stopped = render_distributed(show, frames=40, out=out, batch=3, progress=False)
    stopper.join(timeout=1)
    assert stopped.stopped == "SIGTERM" and (work_folder(out) / "state.npz").exists()
    resumed = render_distributed(show, frames=40, out=out, batch=3, resume=True, progress=False)
    assert resumed.stopped is None and 0 < resumed.generated <= 40 - 9
    assert_same_pngs(tmp_path / "one", out, 40)


@pytest.mark.gl
@pytest.mark.slow
def test_a_killed_driver_resumes_from_the_frames_on_disk(tmp_path, ray_local):
    show_path = copy_show(tmp_path)
    render_offline(load_show(show_path), frames=90, out=tmp_path / "one", progress=False)
    out = tmp_path / "ray"
    address = ray_local.get_runtime_context().gcs_address
    command = [
        sys.executable,
        "run_show.py",
        str(show_path),
        "--headless",
        "--frames",
        "90",
        "--out",
        str(out),
        "--ray",
        address,
        "--workers",
        "2",
        "--batch",
        "2",
    ]
    # One torch thread, as this process has (conftest): workers take the driver's.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = kill_when(work_folder(out), 12, lambda: first.pid)
    first.wait(timeout=180)
    killer.join(timeout=1)
    assert first.returncode == -signal.SIGKILL, first.stderr.read()
    kept = len(list((work_folder(out) / "frames").glob("*.npy")))
    assert 12 <= kept < 90
    second = subprocess.run(
        [*command, "--resume"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr
    resumed = re.search(r"resuming: (\d+) of 90 frames are on disk", second.stderr)
    assert resumed and int(resumed.group(1)) >= kept
    rendered = re.search(r"(\d+) rendered on 2 worker\(s\), (\d+) from disk", second.stderr)
    assert rendered and int(rendered.group(1)) == 90 - int(resumed.group(1))
    assert_same_pngs(tmp_path / "one", out, 90)
    assert not work_folder(out).exists()


def test_numpy_frames_round_trip_through_the_work_folder(tmp_path):
    from runtime.generators.worker import FrameResult

    work = WorkFolder.open(tmp_path / "o.mp4", {}, resume=False)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    work.save(FrameResult(3, image, 1.0))
    work.save(FrameResult(4, None, 1.0, "generator failed on frame 4: boom"))
    assert work.finished() == {3, 4}
    assert np.array_equal(work.load(3).image, image)
    assert work.load(4).image is None and "boom" in work.load(4).error
