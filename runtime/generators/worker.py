"""The generator worker: the model runs in its own thread behind a latest-wins
mailbox, and finished frames come back as data (image or error, never a raise).
A show's neural stages (runtime/neural) run on this thread too, after the model.

The frame loop posts Params every frame and takes the newest finished frame when
there is one; it never waits (live). An offline render posts without dropping and
waits for each frame, so it is frame-exact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from runtime.generators.base import Generator, Params

if TYPE_CHECKING:
    from runtime.neural.chain import NeuralChain, StageStat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    """One finished request.

    Attributes:
        frame: the Params' frame index.
        image: (H, W, 3) uint8, top row first; None when rendering failed or the
            frame stayed on the GPU.
        gpu_image: the frame left on the GPU for CUDA-GL interop
            (runtime/cuda_gl.py): (H, W, 4) uint8 CUDA tensor, rows bottom-up;
            None otherwise.
        render_ms: time the generator and the stages took (GPU time on CUDA).
        error: what went wrong, or None.
        stages: what each neural stage did (name, ms, steps).
    """

    frame: int
    image: np.ndarray | None
    render_ms: float
    error: str | None = None
    stages: tuple[StageStat, ...] = ()
    gpu_image: torch.Tensor | None = None


class GeneratorWorker:
    """Runs a generator on its own thread.

    Args:
        generator: the model (used by this worker's thread only from now on).
        chain: the show's neural stages, run on each frame after the model.
        steer: adds CLIP steering's latent offset to each frame's params
            (`Steering.apply`) before the model renders.
    Attributes:
        frames_on_gpu: set by the frame loop when frames can reach GL by CUDA-GL
            interop: a CUDA generator's frames then stay on the GPU (`gpu_image`).
    Thread: `submit`, `latest`, `wait_for`, `stats` from the frame loop.
    """

    def __init__(
        self,
        generator: Generator,
        chain: NeuralChain | None = None,
        *,
        steer: Callable[[Params], Params] | None = None,
    ) -> None:
        self.generator = generator
        self.chain = chain
        self.steer = steer
        self._cond = threading.Condition()
        self._request: Params | None = None
        self._results: deque[FrameResult] = deque(maxlen=4)
        self._last_taken = -1
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="generator", daemon=True)
        self._finished_s: deque[float] = deque(maxlen=32)
        self.errors = 0
        self.last_error: str | None = None
        self._reported: set[str] = set()
        self.frames_on_gpu = False

    def start(self) -> None:
        """Start the thread. Thread: main."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current frame. Thread: main."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=10.0)

    def submit(self, params: Params, *, drop: bool = True) -> None:
        """Post a request.

        Args:
            params: what to render.
            drop: True (live): replace any request not yet taken. False (offline):
                wait until the previous request was taken, so none is lost.
        Thread: main.
        """
        with self._cond:
            if not drop:
                self._cond.wait_for(lambda: self._request is None or self._stop)
            self._request = params
            self._cond.notify_all()

    def latest(self) -> FrameResult | None:
        """The newest finished frame not handed out before, or None. Never waits.

        Thread: main.
        """
        with self._cond:
            if not self._results or self._results[-1].frame <= self._last_taken:
                return None
            result = self._results[-1]
            self._last_taken = result.frame
            return result

    def wait_for(self, frame: int, timeout_s: float = 600.0) -> FrameResult:
        """Wait until the request for `frame` is finished (offline renders).

        Raises:
            TimeoutError: it did not finish in `timeout_s`.
        Thread: main.
        """

        def ready() -> FrameResult | None:
            return next((r for r in self._results if r.frame == frame), None)

        with self._cond:
            if not self._cond.wait_for(lambda: ready() is not None, timeout=timeout_s):
                raise TimeoutError(f"generator did not finish frame {frame} in {timeout_s} s")
            result = ready()
            assert result is not None
            self._last_taken = max(self._last_taken, frame)
            return result

    def fps(self) -> float:
        """Finished frames per second over the last few frames. Thread: any."""
        stamps = list(self._finished_s)
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._request is not None or self._stop)
                if self._stop:
                    return
                params, self._request = self._request, None
                self._cond.notify_all()
            result = self._render(params)
            with self._cond:
                self._results.append(result)
                self._finished_s.append(time.perf_counter())
                self._cond.notify_all()

    def _render(self, params: Params) -> FrameResult:
        """Render and convert; every failure becomes an error result, reported once."""
        device = self.generator.device
        cuda = device.type == "cuda"
        start = time.perf_counter()
        try:
            if cuda:
                begin = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                begin.record()
            if self.steer is not None:
                params = self.steer(params)
            image = self.generator.render(params)  # (3, H, W) float in 0..1
            stages: list[StageStat] = []
            if self.chain is not None:
                image, stages = self.chain.process(image, params)
            if not bool(torch.isfinite(image).all()):
                self._report("generator produced NaN or infinite values; replaced by 0")
                image = torch.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
            pixels = (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)  # (3, H, W)
            on_gpu = cuda and self.frames_on_gpu
            if on_gpu:
                gpu_image = gpu_frame(pixels)
            else:
                pixels = pixels.permute(1, 2, 0).contiguous()  # (H, W, 3)
            if cuda:
                end.record()
                end.synchronize()
                render_ms = begin.elapsed_time(end)
            if on_gpu:
                return FrameResult(
                    params.frame, None, render_ms, stages=tuple(stages), gpu_image=gpu_image
                )
            array = pixels.cpu().numpy()
            if not cuda:
                render_ms = (time.perf_counter() - start) * 1000.0
            return FrameResult(params.frame, array, render_ms, stages=tuple(stages))
        except Exception as exc:  # the worker fails alone: report, count, carry on
            if cuda and isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            message = f"generator failed on frame {params.frame}: {type(exc).__name__}: {exc}"
            self._report(message)
            return FrameResult(params.frame, None, (time.perf_counter() - start) * 1000.0, message)

    def _report(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        # Log each distinct problem once; the HUD shows the count and the latest.
        key = message.split(" on frame ")[0] + message.partition(": ")[2]
        if key not in self._reported:
            self._reported.add(key)
            log.error("%s", message)


def gpu_frame(image: torch.Tensor) -> torch.Tensor:
    """A generated image as the interop path copies it.

    Args:
        image: (3, H, W) uint8, top row first.
    Returns:
        (H, W, 4) uint8, contiguous, rows bottom-up, alpha 255.
    Thread: any.
    """
    alpha = torch.full_like(image[:1], 255)
    return torch.cat([image, alpha]).flip(1).permute(1, 2, 0).contiguous()
