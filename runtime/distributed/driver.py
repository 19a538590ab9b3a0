"""The driver: starts the workers, hands out batches, redoes what a lost worker
held, composites and encodes in frame order, and shows one progress bar."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runtime.distributed.plan import Batch, FramePlan, batches, map_frames
from runtime.distributed.shipping import Shipment, bypassed, code_digest, ship, weights_to_ship
from runtime.distributed.work_folder import WorkFolder, fingerprint
from runtime.distributed.worker import FrameWorker, LoadOrder, NotLoaded, WorkerInfo
from runtime.errors import DistributedError
from runtime.generators.worker import FrameResult
from runtime.gl_frames import draws_in_gl
from runtime.neural.chain import ChainState
from runtime.show import Show

if TYPE_CHECKING:
    from runtime.player import Player
    from runtime.shutdown import StopFlag

log = logging.getLogger(__name__)

INSTALL_HINT = ".venv/bin/pip install -e '.[distributed]' (on every machine of the cluster)"
#: Frames per worker call: enough to hide a round trip, few enough to balance the
#: load at the end of a render and to lose little with a worker.
DEFAULT_BATCH = 8
#: Batches a worker holds at once: the next one waits on the worker while the
#: frames of the last one travel back.
IN_FLIGHT = 2
#: How long workers may take to start (shipping weights, loading models) or to come
#: back after a restart before the render gives up on them.
START_TIMEOUT_S = 600.0
#: Restarts Ray gives a worker process that died, before the render stops using it.
MAX_RESTARTS = 2
#: A lost worker is asked every second whether it is back; after this many refusals
#: in a row (Ray has not restarted it within about as many seconds) it is given up.
PROBE_TRIES = 60


def require_ray() -> Any:
    """Import Ray, or say how to install it.

    Returns:
        The `ray` module.
    Raises:
        DistributedError: Ray is not installed (one line with the pip command).
    Thread: main.
    """
    try:
        import ray
    except ImportError:
        raise DistributedError(f"--ray needs Ray, an optional extra: {INSTALL_HINT}") from None
    return ray


def refuse_unsplittable(show: Show) -> None:
    """Refuse a show whose frames depend on the output of earlier frames outside the
    generator's worker (CLIP), or whose generator is drawn in GL on the frame loop's
    own context (torch on a worker would not draw the same pixels; `run_show.py`
    renders such a show on this machine instead: there is nothing for a worker to do),
    or that has two decks (a worker renders one generator).

    Raises:
        DistributedError: the show has a `[clip]` table or two decks, or is drawn
            in GL here.
    Thread: any.
    """
    if draws_in_gl(show, torch.cuda.is_available()):
        raise DistributedError(
            f"{show.path}: the {show.generator.kind} generator is drawn in GL on this "
            f"machine (device '{show.generator.device}'), beside the passes: there is "
            "nothing for Ray workers to render; render it without --ray"
        )
    if show.deck_b is not None:
        raise DistributedError(
            f"{show.path}: two decks ([deck.b]) cannot be rendered with --ray yet: the "
            "workers render one generator; render it without --ray"
        )
    if show.clip is not None:
        raise DistributedError(
            f"{show.path}: [clip] cannot be rendered with --ray: CLIP steering carries "
            "its optimiser from frame to frame on the worker and its clip: signals feed "
            "the output back into the mapping; render it without --ray"
        )


@dataclass
class WorkerTally:
    """One worker's share of a render.

    Attributes:
        name: "w0", "w1", ...
        info: where it runs (None until it has started).
        frames: frames it rendered.
        busy_s: seconds it spent rendering them.
        lost: batches lost with its process.
    """

    name: str
    info: WorkerInfo | None = None
    frames: int = 0
    busy_s: float = 0.0
    lost: int = 0

    def fps(self) -> float:
        """Its frames per second while rendering. Thread: main."""
        return self.frames / self.busy_s if self.busy_s > 0 else 0.0

    def where(self) -> str:
        """'w1 (host pid 1234, cpu)' for the log. Thread: main."""
        if self.info is None:
            return self.name
        return f"{self.name} ({self.info.host} pid {self.info.pid}, {self.info.device})"


@dataclass
class RenderReport:
    """What a distributed render did.

    Attributes:
        frames: frames written to the output.
        generated: frames rendered by workers in this run (the rest came from disk).
        startup_s: seconds from the call to the workers ready (Ray, shipping,
            loading); 0 when nothing was left to render.
        render_s: seconds from the workers ready to the output closed.
        lane: True when the render ran in frame order on one worker.
        workers: each worker's share.
        driver_ms: the driver's own seconds per written frame, by part ("map",
            "store", "composite"), in ms.
        stopped: the stop signal's name when a signal ended it early, else None.
    """

    frames: int = 0
    generated: int = 0
    startup_s: float = 0.0
    render_s: float = 0.0
    lane: bool = False
    workers: list[WorkerTally] = field(default_factory=list)
    driver_ms: dict[str, float] = field(default_factory=dict)
    stopped: str | None = None


def render_distributed(
    show: Show,
    *,
    frames: int | None,
    out: Path,
    audio: Path | None = None,
    address: str | None = None,
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    resume: bool = False,
    progress: bool = True,
) -> RenderReport:
    """Render a show offline on Ray workers; the result is what `render_offline`
    writes, frame for frame.

    A stop signal (SIGTERM, SIGINT, SIGHUP) ends the render early with a playable
    file holding the frames composited so far; the work folder stays for `resume`.

    Args:
        show: the show.
        frames: how many frames; None: the soundtrack's length (300 without one).
        out: an .mp4/.mov/.mkv file, or a folder for PNGs.
        audio: an audio file to mux into a video; None: the show's soundtrack.
        address: a Ray cluster's address ("auto": the one `ray start` made on this
            machine); None: start a local Ray instance for this render.
        workers: how many workers; None: one per GPU of the cluster, else one per CPU.
        batch: frames per worker call.
        resume: continue from the frames a killed render left in `OUT.work`.
        progress: show a progress bar.
    Returns:
        What the render did.
    Raises:
        DistributedError: no Ray; a `[clip]` show; a work folder that does not
            match; workers that run other code or loaded other models; every
            worker gone.
        OutputError: no EGL, or `out` cannot be written.
    Thread: main.
    """
    from runtime.shutdown import StopFlag

    ray = require_ray()
    refuse_unsplittable(show)
    if batch < 1:
        raise DistributedError(f"--batch must be at least 1, got {batch}")
    if workers is not None and workers < 1:
        raise DistributedError(f"--workers must be at least 1, got {workers}")
    with StopFlag() as stop:
        return _Render(ray, show, address=address, workers=workers, batch=batch).run(
            frames=frames, out=out, audio=audio, resume=resume, progress=progress, stop=stop
        )


class _Render:
    """One distributed render's driver: the plan, the workers, the ordered output."""

    def __init__(
        self, ray: Any, show: Show, *, address: str | None, workers: int | None, batch: int
    ) -> None:
        self.ray = ray
        self.show = show
        self.address = address
        self.workers_asked = workers
        self.batch = batch
        self.report = RenderReport()
        self.started_ray = False
        self.tallies: list[WorkerTally] = []
        self.handles: list[Any] = []
        self.alive: list[bool] = []
        self.probes: dict[Any, int] = {}
        self.reprobe_at: dict[int, float] = {}
        self.refusals: dict[int, int] = {}
        self.in_flight: dict[Any, tuple[int, Batch]] = {}
        self.queue: deque[Batch] = deque()
        self.finished: set[int] = set()
        self.unavailable_since: float | None = None
        self.errors: list[str] = []

    def run(
        self,
        *,
        frames: int | None,
        out: Path,
        audio: Path | None,
        resume: bool,
        progress: bool,
        stop: StopFlag,
    ) -> RenderReport:
        """The whole render. Thread: main."""
        from runtime.loop import offline_player, render_length

        begin = time.perf_counter()
        # The driver maps and composites; its generator is only asked for its controls,
        # so it stays on the CPU, off the GPUs the workers use.
        on_cpu = dataclasses.replace(self.show.generator, device="cpu")
        try:
            with offline_player(dataclasses.replace(self.show, generator=on_cpu)) as player:
                total, audio = render_length(player, frames, audio)
                started = time.perf_counter()
                plan = map_frames(player, total)
                self.report.driver_ms["map"] = (time.perf_counter() - started) * 1000.0 / total
                log.info("mapped %d frames in %.1f s", total, time.perf_counter() - started)
                self.report.lane = plan.stateful(player)
                shipped = self._connect_and_ship()
                work = WorkFolder.open(out, fingerprint(self.show, total, shipped), resume=resume)
                todo = self._todo(work, total)
                if todo:
                    self._start_workers(shipped, bypassed(player.generator_problem, player.chain))
                self.report.startup_s = time.perf_counter() - begin
                render_begin = time.perf_counter()
                self._write(player, plan, work, todo, out, audio, progress, stop)
                self.report.render_s = time.perf_counter() - render_begin
        finally:
            self._close()
        if self.report.stopped is None:
            work.remove()
        self._summary(out)
        return self.report

    # ---- set-up ------------------------------------------------------------------------

    def _connect_and_ship(self) -> list[Shipment]:
        ray = self.ray
        if not ray.is_initialized():
            # No address: a Ray instance of this render's own ("local"), never a
            # cluster that happens to run here; "auto" joins that one.
            ray.init(
                address=self.address or "local",
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
            self.started_ray = True
        return [ship(ray, path) for path in weights_to_ship(self.show)]

    def _todo(self, work: WorkFolder, total: int) -> list[Batch]:
        """The batches left to render, and frames on disk noted in the log."""
        finished = work.finished()
        if self.report.lane:
            # In a lane only frames up to the kept state count: the state after them
            # is what the next frame needs.
            after, state = work.load_state()
            finished = {f for f in finished if f <= after}
            first = after + 1
            todo = batches(range(first, total), self.batch)
            if todo:
                todo[0] = dataclasses.replace(todo[0], state=state)
        else:
            todo = batches([f for f in range(total) if f not in finished], self.batch)
        self.finished = finished
        if finished:
            log.info("resuming: %d of %d frames are on disk in %s", len(finished), total, work.path)
        return todo

    def _start_workers(self, shipped: list[Shipment], expect: tuple[str, ...]) -> None:
        ray = self.ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if self.show.generator.device != "cpu" else 0
        threads = torch.get_num_threads()
        # A worker on the CPU runs torch with the driver's threads (its float32 results
        # depend on them), so it takes as many CPUs, and Ray gives no core twice.
        cpus_each = 1 if gpus else threads
        cpus = int(resources.get("CPU", 1))
        count = self.workers_asked or gpus or max(cpus // cpus_each, 1)
        if self.report.lane:
            count = 1
            log.info(
                "the neural chain feeds its output back (feedback.amount > 0): frames "
                "depend on the ones before, so they render in order on one worker"
            )
        if gpus and count > gpus:
            raise DistributedError(f"--workers {count} needs {count} GPUs; the cluster has {gpus}")
        if count * cpus_each > cpus:
            raise DistributedError(
                f"--workers {count} needs {count * cpus_each} CPUs ({cpus_each} each, the "
                f"torch threads of this process); the cluster has {cpus}"
            )
        actor = ray.remote(FrameWorker).options(
            num_cpus=cpus_each,
            num_gpus=1 if gpus else 0,
            max_restarts=MAX_RESTARTS,
            max_task_retries=0,  # the driver sends a lost batch to whichever worker is free
        )
        self.order = LoadOrder(self.show, tuple(shipped), threads)
        self.handles = [actor.remote() for _ in range(count)]
        self.tallies = [WorkerTally(f"w{i}") for i in range(count)]
        self.report.workers = self.tallies
        self.alive = [False] * count
        self.probes = {h.load.remote(self.order): i for i, h in enumerate(self.handles)}
        own = (code_digest(), torch.backends.cpu.get_cpu_capability())
        created = time.perf_counter()
        deadline = created + START_TIMEOUT_S
        while self.probes:
            ready, _ = ray.wait(list(self.probes), num_returns=1, timeout=5.0)
            if not ready and time.perf_counter() > deadline:
                raise DistributedError(
                    f"workers did not start in {START_TIMEOUT_S:.0f} s: the cluster has no "
                    "free resources for them (`ray status`)"
                )
            for ref in ready:
                i = self.probes.pop(ref)
                try:
                    info: WorkerInfo = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    raise DistributedError(
                        f"worker w{i} could not load the show: {cause}"
                    ) from None
                tally = self.tallies[i]
                tally.info = info
                self._check(tally, own, expect)
                self.alive[i] = True
                log.info(
                    "%s ready in %.1f s (%.1f s of it loading the show)",
                    tally.where(),
                    time.perf_counter() - created,
                    info.load_s,
                )

    def _check(self, tally: WorkerTally, own: tuple[str, str], expect: tuple[str, ...]) -> None:
        """Refuse a worker whose frames would differ; warn where they might."""
        info = tally.info
        assert info is not None
        if info.code != own[0]:
            raise DistributedError(
                f"{tally.where()} runs other code than this machine (latentstage or torch "
                "differ): install the same version on every machine"
            )
        if info.bypassed != expect:
            raise DistributedError(
                f"{tally.where()} loaded the show differently from this machine (not "
                f"loaded there: {', '.join(info.bypassed) or 'nothing'}; here: "
                f"{', '.join(expect) or 'nothing'}): pull the same models on every machine "
                "(docs/RENDERING.md)"
            )
        first = next(t for t in self.tallies if t.info is not None)
        if info.device.startswith("cpu") and info.cpu != own[1]:
            log.warning(
                "%s has CPU kernels %s, this machine %s: its float32 frames may differ in "
                "the last bit from a render here",
                tally.where(),
                info.cpu,
                own[1],
            )
        elif first.info is not None and info.device != first.info.device:
            log.warning(
                "%s has a %s, %s a %s: frames of different GPU models may differ in the last bit",
                tally.where(),
                info.device,
                first.name,
                first.info.device,
            )

    # ---- the render ----------------------------------------------------------------------

    def _write(
        self,
        player: Player,
        plan: FramePlan,
        work: WorkFolder,
        todo: list[Batch],
        out: Path,
        audio: Path | None,
        progress: bool,
        stop: StopFlag,
    ) -> None:
        """Dispatch batches, keep what comes back, composite and record in order."""
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        from runtime.loop import composite
        from runtime.render.recorder import open_recorder

        total = len(plan.times_s)
        self.queue = deque(todo)
        waiting: dict[int, FrameResult] = {}
        window = max(4 * self.batch * max(len(self.handles), 1), 64)
        recorder = open_recorder(out, self.show.output.size_px, self.show.output.fps, audio)
        bar = tqdm(
            total=total,
            initial=len(self.finished),
            unit="frame",
            desc=f"render {self.show.name}",
            disable=not progress,
        )
        store_s = composite_s = 0.0
        cursor = 0
        try:
            with logging_redirect_tqdm():
                while cursor < total:
                    if stop.requested:
                        self.report.stopped = stop.reason
                        log.warning(
                            "render stopped by %s after %d of %d frames; %s keeps them and "
                            "%s the generated ones (--resume continues)",
                            stop.reason,
                            cursor,
                            total,
                            out,
                            work.path,
                        )
                        break
                    started = time.perf_counter()
                    while cursor < total and (cursor in waiting or cursor in self.finished):
                        result = waiting.pop(cursor, None) or work.load(cursor)
                        t_s = float(plan.times_s[cursor])
                        recorder.write(composite(player, result, plan.values_at(cursor), t_s))
                        cursor += 1
                    composite_s += time.perf_counter() - started
                    if cursor >= total:
                        break
                    self._dispatch(plan, limit=cursor + window)
                    for results, state in self._collect():
                        started = time.perf_counter()
                        for result in results:
                            work.save(result)
                            waiting[result.frame] = result
                            if result.image is None and result.error:
                                self.errors.append(result.error)
                        if state is not None:
                            # After its frames: a kept state always follows frames on disk.
                            work.save_state(results[-1].frame, state)
                        store_s += time.perf_counter() - started
                        self.report.generated += len(results)
                        bar.update(len(results))
                        bar.set_postfix_str(
                            "  ".join(f"{t.name} {t.fps():.1f}/s" for t in self.tallies),
                            refresh=False,
                        )
        finally:
            bar.close()
            recorder.close()
        self.report.frames = cursor
        if cursor:
            self.report.driver_ms["store"] = store_s * 1000.0 / cursor
            self.report.driver_ms["composite"] = composite_s * 1000.0 / cursor

    def _dispatch(self, plan: FramePlan, *, limit: int) -> None:
        """Hand queued batches to live workers with room, up to frame `limit`; ask
        lost workers again whether they are back."""
        now = time.perf_counter()
        for i, due in list(self.reprobe_at.items()):
            if now >= due:
                del self.reprobe_at[i]
                self.probes[self.handles[i].load.remote(self.order)] = i
        # A lane's next batch needs this one's state: one at a time.
        lane_busy = self.report.lane and bool(self.in_flight)
        # Round by round, so that every worker has a batch before any has two.
        for depth in range(IN_FLIGHT):
            for i, handle in enumerate(self.handles):
                if not (self.queue and self.alive[i]) or lane_busy:
                    continue
                if self.queue[0].first >= limit:
                    continue
                if sum(w == i for w, _ in self.in_flight.values()) > depth:
                    continue
                batch = self.queue.popleft()
                rows = slice(batch.first, batch.first + batch.count)
                ref = handle.render.remote(plan.keys, batch, plan.times_s[rows], plan.values[rows])
                self.in_flight[ref] = (i, batch)
                lane_busy = self.report.lane
        if any(self.alive):
            self.unavailable_since = None
            return
        self.unavailable_since = self.unavailable_since or now
        waiting = self.probes or self.reprobe_at
        if not waiting or now - self.unavailable_since > START_TIMEOUT_S:
            raise DistributedError(
                "every worker is gone; the frames finished so far are kept: --resume "
                "continues the render"
            )

    def _collect(self) -> Iterator[tuple[list[FrameResult], ChainState | None]]:
        """Wait a moment for finished batches; yield each one's results (and, in a
        lane, the chain's state after them). A batch lost with its worker goes back
        to the front of the queue, and the worker is watched until Ray has restarted
        it."""
        ray = self.ray
        refs = [*self.in_flight, *self.probes]
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            if ref in self.probes:
                self._probe_answered(ref)
                continue
            i, batch = self.in_flight.pop(ref)
            tally = self.tallies[i]
            try:
                results, after, busy_s = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                self._lost(i, batch, exc)
                continue
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, NotLoaded):  # restarted between two calls
                    self._lost(i, batch, exc.cause)
                    continue
                raise DistributedError(
                    f"{tally.where()} failed on {batch.label()}: {exc}"
                ) from None
            tally.frames += len(results)
            tally.busy_s += busy_s
            log.info(
                "%s rendered %s in %.2f s (%.1f fps)",
                tally.where(),
                batch.label(),
                busy_s,
                len(results) / max(busy_s, 1e-9),
            )
            if after is not None and self.queue:
                # The lane's next batch starts from this one's state.
                self.queue[0] = dataclasses.replace(self.queue[0], state=after)
            yield results, after

    def _lost(self, i: int, batch: Batch, exc: Exception) -> None:
        tally = self.tallies[i]
        tally.lost += 1
        log.warning(
            "%s was lost rendering %s (%s); they go to %s",
            tally.where(),
            batch.label(),
            type(exc).__name__,
            "the next free worker" if len(self.handles) > 1 else "it again once Ray restarts it",
        )
        # Earliest frames first: the output waits for them.
        self.queue = deque(sorted([*self.queue, batch], key=lambda b: b.first))
        if self.alive[i]:
            self.alive[i] = False
            self.refusals[i] = 0
            self.probes[self.handles[i].load.remote(self.order)] = i

    def _probe_answered(self, ref: Any) -> None:
        """A lost worker answered: it is back, or not yet (asked again in a second),
        or, after PROBE_TRIES refusals, given up."""
        i = self.probes.pop(ref)
        tally = self.tallies[i]
        try:
            tally.info = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            log.error("%s could not load the show again: %s", tally.where(), exc.cause or exc)
            return
        except self.ray.exceptions.RayActorError:
            # Until Ray has learnt of the death a call fails at once; once it restarts
            # the process, calls wait for it. So a refusal is asked again, a while.
            self.refusals[i] += 1
            if self.refusals[i] < PROBE_TRIES:
                self.reprobe_at[i] = time.perf_counter() + 1.0
            else:
                log.error("%s is gone for good (Ray did not restart it)", tally.where())
            return
        self.alive[i] = True
        log.info("%s is back after a restart (%.1f s to load)", tally.where(), tally.info.load_s)

    def _close(self) -> None:
        for handle in self.handles:
            self.ray.kill(handle)
        if self.started_ray:
            self.ray.shutdown()

    def _summary(self, out: Path) -> None:
        report = self.report
        rate = report.frames / report.render_s if report.render_s else 0.0
        log.info(
            "wrote %d frames to %s in %.1f s (%.1f fps; %.1f s to start): %d rendered on "
            "%d worker(s), %d from disk",
            report.frames,
            out,
            report.render_s,
            rate,
            report.startup_s,
            report.generated,
            len(report.workers),
            max(report.frames - report.generated, 0),
        )
        for tally in report.workers:
            log.info(
                "%s: %d frames, %.1f fps, %d batches lost",
                tally.where(),
                tally.frames,
                tally.fps(),
                tally.lost,
            )
        if self.errors:
            log.warning(
                "the generator failed on %d frames (the last good image stayed); first: %s",
                len(self.errors),
                self.errors[0],
            )
