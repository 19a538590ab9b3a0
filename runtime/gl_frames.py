"""Frames drawn in GL on the frame loop's own context, in place of the generator worker.

A generator that can describe itself as a fragment shader (the weightless cppn:
`gl_program`, `gl_uniforms`) is drawn as the chain's first pass: the frame loop
computes the frame's uniforms (a few small CPU operations) and draws straight into
the texture the passes read. No worker thread, no upload, no copy through host
memory; on a machine without CUDA its GPU (even an integrated one) does the work the
CPU did in torch.

`GLFrames` answers the frame loop as `GeneratorWorker` does (`submit`, `latest`,
`wait_for`, `fps`, `errors`), so the live and offline loops drive either alike.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import moderngl

from runtime.generators.base import Params
from runtime.generators.worker import FrameResult
from runtime.render.compositor import Compositor, SourceSlot
from runtime.render.gl_generator import GLGenerator
from runtime.show import Show

log = logging.getLogger(__name__)


def draws_in_gl(show: Show, cuda_available: bool) -> bool:
    """Whether a show's generator is drawn in GL: `device = "gl"`, or "auto" for the
    cppn on a machine without CUDA when nothing needs its frames in torch (neural
    stages, CLIP steering).

    Thread: any.
    """
    config = show.generator
    if config.kind != "cppn":
        return False
    if config.device == "gl":
        return True
    steering = show.clip is not None and show.clip.steer
    return config.device == "auto" and not cuda_available and not show.neural and not steering


class GLFrames:
    """Draws a GL generator's frames into the compositor's source, on request.

    Args:
        generator: a generator with `gl_program()` and `gl_uniforms(params)`.
        ctx: the frame loop's GL context.
        compositor: whose source the frames become (or a SourceSlot: deck B's).
    Raises:
        ShaderError: the generator's shader does not compile.
    Thread: main only (the GL context's thread).
    """

    def __init__(
        self, generator, ctx: moderngl.Context, compositor: Compositor | SourceSlot
    ) -> None:
        self.generator = generator
        self.gl = GLGenerator(ctx, generator.gl_program())
        self.compositor = compositor
        self._pending: dict[int, Params] = {}
        self._newest: Params | None = None
        self._finished_s: deque[float] = deque(maxlen=32)
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Nothing to start: frames are drawn when asked for. Thread: main."""

    def stop(self) -> None:
        """Free the program and its textures. Thread: main."""
        self.gl.release()

    def submit(self, params: Params, *, drop: bool = True) -> None:
        """Note a frame to draw (live: the newest wins; offline: each is kept until
        `wait_for` draws it). Thread: main."""
        self._newest = params
        if not drop:
            self._pending[params.frame] = params

    def latest(self) -> FrameResult | None:
        """Draw the newest submitted frame into the compositor's source.

        Returns:
            Its result (no image: it is already on the GL side), or None when
            nothing new was submitted.
        Thread: main.
        """
        params, self._newest = self._newest, None
        return None if params is None else self._draw(params)

    def wait_for(self, frame: int, timeout_s: float = 600.0) -> FrameResult:
        """Draw frame `frame` (submitted with drop=False). Thread: main."""
        self._newest = None
        return self._draw(self._pending.pop(frame))

    def fps(self) -> float:
        """Frames drawn per second over the last few. Thread: main."""
        stamps = list(self._finished_s)
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def _draw(self, params: Params) -> FrameResult:
        start = time.perf_counter()
        texture = self.gl.render(self.generator.gl_uniforms(params))
        self.compositor.use_source(texture)
        self._finished_s.append(time.perf_counter())
        # CPU time to compute and issue the frame: the GPU draws it with the passes.
        return FrameResult(params.frame, None, (time.perf_counter() - start) * 1000.0)
