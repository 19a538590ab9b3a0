"""The Ray actor: loads a show's generator and neural stages once and renders
batches of frames through the same `GeneratorWorker` a one-machine render uses."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from runtime.distributed.plan import Batch
from runtime.distributed.shipping import Shipment, bypassed, code_digest, worker_show
from runtime.errors import DistributedError
from runtime.generators.worker import FrameResult
from runtime.neural.chain import ChainState
from runtime.show import Show

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker runs and what it loaded.

    Attributes:
        host, pid: the machine and process.
        device: e.g. "cuda:0 NVIDIA H200" or "cpu".
        cpu: torch's CPU kernel level there ("AVX512", "AVX2", ...).
        code: its `code_digest()`.
        bypassed: its `bypassed()`.
        load_s: seconds to fetch weights and load the models.
    """

    host: str
    pid: int
    device: str
    cpu: str
    code: str
    bypassed: tuple[str, ...]
    load_s: float


class NotLoaded(DistributedError):
    """A worker asked to render before `load`: Ray restarted its process."""


@dataclass(frozen=True)
class LoadOrder:
    """What a worker loads: the show, the weights shipped, torch's thread count.

    Attributes:
        show: the show (the driver's copy).
        shipped: the weights the driver shipped.
        threads: torch's CPU threads: the driver's, since float32 results on the CPU
            depend on how work is split between threads.
    """

    show: Show
    shipped: tuple[Shipment, ...]
    threads: int


class FrameWorker:
    """The body of one Ray actor: the show's generator and neural chain, loaded
    once, rendering batches of frames through a `GeneratorWorker` exactly as a
    one-machine render does.

    The constructor takes nothing: what to load comes in `load`, so that a process
    Ray restarts is loaded again by the driver (Ray cannot restart an actor whose
    constructor took object-store references reliably: ray-project/ray#53727).

    Thread: the actor's (Ray runs one call at a time).
    """

    def __init__(self) -> None:
        self.info: WorkerInfo | None = None

    def load(self, order: LoadOrder) -> WorkerInfo:
        """Fetch the weights and load the show, once; later calls only answer.

        Returns:
            Where this worker runs and what it loaded.
        Raises:
            GeneratorError: shipped weights arrived damaged.
        Thread: the actor's.
        """
        import ray

        from runtime.generators import build_with_fallback
        from runtime.generators.worker import GeneratorWorker
        from runtime.neural import build_chain

        if self.info is not None:
            return self.info
        start = time.perf_counter()
        torch.set_num_threads(order.threads)
        cache = Path(tempfile.gettempdir()) / "latentstage-ray"
        local = {s.source: s.materialize(ray, cache) for s in order.shipped}
        show = worker_show(order.show, local)
        generator, problem = build_with_fallback(show.generator)
        self.chain = build_chain(show, device=generator.device, offline=True)
        self.worker = GeneratorWorker(generator, self.chain)
        self.worker.start()
        device = generator.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
        self.info = WorkerInfo(
            host=socket.gethostname(),
            pid=os.getpid(),
            device=f"{device} {name}".strip(),
            cpu=torch.backends.cpu.get_cpu_capability(),
            code=code_digest(),
            bypassed=bypassed(problem, self.chain),
            load_s=time.perf_counter() - start,
        )
        return self.info

    def render(
        self, keys: tuple[str, ...], batch: Batch, times_s: np.ndarray, values: np.ndarray
    ) -> tuple[list[FrameResult], ChainState | None, float]:
        """Render a batch, one frame per call as a one-machine render does.

        Args:
            keys: the value names.
            batch: the frames (and the chain's state before them, in a lane).
            times_s: (B,) each frame's time.
            values: (B, K) each frame's values.
        Returns:
            (each frame's result in order, the chain's state after the batch in a
            lane else None, seconds spent).
        Raises:
            NotLoaded: `load` has not run in this process.
        Thread: the actor's.
        """
        from runtime.generators.base import Params

        if self.info is None:
            raise NotLoaded(f"pid {os.getpid()} has not loaded the show")
        begin = time.perf_counter()
        if batch.state is not None:
            self.chain.restore(batch.state)
        results = []
        for frame, t_s, row in zip(batch.frames, times_s.tolist(), values.tolist()):
            self.worker.submit(Params(frame, t_s, dict(zip(keys, row))), drop=False)
            results.append(self.worker.wait_for(frame))
        after = self.chain.state() if batch.state is not None else None
        return results, after, time.perf_counter() - begin
