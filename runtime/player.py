"""A show's running parts, assembled in the one direction of data flow:
inputs -> SignalBus -> MappingEngine -> GeneratorWorker -> Compositor.

`Player.step` does one frame's work on the main thread; the live and offline loops
(runtime/loop.py) decide when frames happen and where they go.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import moderngl
import torch

from runtime.clip import build_clip, clip_controls
from runtime.errors import ShaderError
from runtime.generators import build_with_fallback
from runtime.generators.base import Generator, Params
from runtime.generators.worker import FrameResult, GeneratorWorker
from runtime.gl_frames import GLFrames, draws_in_gl
from runtime.inputs import build_inputs
from runtime.mapping import MappingEngine, Target
from runtime.neural import build_chain
from runtime.neural.base import Stage
from runtime.neural.chain import StageStat, neural_controls
from runtime.render.compositor import Compositor
from runtime.render.shaders import shader_targets
from runtime.show import Show
from runtime.signals import SignalBus, Snapshot

log = logging.getLogger(__name__)


def show_targets(generator: Generator, show: Show, stages: Sequence[Stage]) -> dict[str, Target]:
    """Every target a show offers: its generator's controls, its neural stages'
    controls (with the feedback controls), its CLIP controls and its passes'
    uniforms.

    Args:
        generator: the show's generator.
        show: the show.
        stages: its neural stages (`runtime.neural.build_stages`).
    Raises:
        ShaderError: a pass file cannot be read.
    Thread: any.
    """
    controls = (*generator.controls, *neural_controls(stages), *clip_controls(show.clip))
    targets = {
        c.name: Target(c.name, c.default, c.lo, c.hi, c.doc, c.integrates, c.steps, c.glide_s)
        for c in controls
    }
    targets.update(shader_targets(show.effects))
    return targets


class Player:
    """Builds and owns a show's parts.

    Args:
        show: the validated show.
        ctx: the GL context the compositor draws with.
        offline: True for a frame-exact render (file feeds, waiting for each frame).
    Raises:
        ConfigError / MappingError / ShaderError: the show cannot start.
    Thread: main.
    """

    def __init__(self, show: Show, ctx: moderngl.Context, *, offline: bool) -> None:
        self.show = show
        self.offline = offline
        self.bus = SignalBus()
        self.inputs, self.feeds = build_inputs(
            show.inputs, self.bus, folder=show.folder, offline=offline
        )
        generator, self.generator_problem = build_with_fallback(show.generator)
        self.generator = generator
        self.chain = build_chain(show, device=generator.device, offline=offline)
        self.engine = MappingEngine(
            show.mapping_paths, show_targets(generator, show, self.chain.stages)
        )
        self.compositor = Compositor(ctx, show.effects, show.output.canvas_px)
        self.clip = build_clip(show, self.bus, generator, offline=offline)
        steering = self.clip.steering if self.clip is not None else None
        self.worker: GeneratorWorker | GLFrames = GeneratorWorker(
            generator, self.chain, steer=steering.apply if steering is not None else None
        )
        self.draws_in_gl = False
        if self.generator_problem is None and draws_in_gl(show, torch.cuda.is_available()):
            try:
                self.worker = GLFrames(generator, ctx, self.compositor)
                self.draws_in_gl = True
            except ShaderError as exc:  # draw in torch instead: slower, but the show plays
                self.generator_problem = f"the cppn's shader failed ({exc}); drawing in torch"
                log.error("%s", self.generator_problem)
        self.last_stages: tuple[StageStat, ...] = ()
        self._next_watch_s = 0.0
        self.messages: list[str] = []
        self.frames_generated = 0
        #: The bus as the last `map` saw it (its events: requests such as `key:r`).
        self.snapshot = Snapshot({}, ())

    def start(self) -> None:
        """Start the generator worker and every input. Thread: main."""
        self.worker.start()
        if self.clip is not None:
            self.clip.start()
        for source in self.inputs:
            source.start()

    def stop(self) -> None:
        """Stop inputs, feeds and the worker. Thread: main."""
        for source in self.inputs:
            source.stop()
        for feed in self.feeds:
            feed.stop()
        if self.clip is not None:
            self.clip.stop()
        self.worker.stop()

    def map(self, frame: int, t_s: float, dt_s: float) -> dict[str, float]:
        """Step the feeds, hand texts to CLIP, snapshot the bus and map it.

        Thread: main.
        """
        for feed in self.feeds:
            feed.update(self.bus, t_s)
        for source, text in self.bus.texts.take():
            if self.clip is not None:
                self.clip.take_text(source, text)
        self.snapshot = self.bus.snapshot()
        return self.engine.evaluate(self.snapshot, t_s, dt_s)

    def step_live(self, frame: int, t_s: float, dt_s: float) -> None:
        """One live frame: map, post to the generator, take its newest frame if
        any, run the pass chain. Never waits for the generator.

        Thread: main.
        """
        values = self.map(frame, t_s, dt_s)
        params = Params(frame, t_s, values)
        self.worker.submit(params)
        if self.clip is not None:
            self.clip.submit(params)
        result = self.worker.latest()
        self.take_frame(result)
        self.compositor.render(values, t_s)
        self.watch(t_s)

    def watch(self, t_s: float) -> None:
        """Show CLIP the composited output, `watch_hz` times per second of show time
        (a small read-back at CLIP's input size). Thread: main."""
        clip = self.clip
        if clip is None or clip.watcher is None or t_s < self._next_watch_s:
            return
        self._next_watch_s = t_s + 1.0 / clip.config.watch_hz
        side = clip.image_px
        clip.see(self.compositor.read((side, side), crop=True))

    def take_frame(self, result: FrameResult | None) -> None:
        """Upload a finished frame (if it has an image). Thread: main."""
        if result is not None and result.error is None:
            if result.image is not None:  # a GL generator's frame is already the source
                self.compositor.upload(result.image)
            self.frames_generated += 1
            self.last_stages = result.stages

    def reload_if_changed(self) -> list[str]:
        """Hot-reload mapping files and shaders that changed. Returns messages.

        Thread: main.
        """
        messages = self.compositor.reload_if_changed()
        mapping = self.engine.reload_if_changed()
        if mapping:
            messages.append(mapping)
        return messages

    def problems(self) -> list[str]:
        """Current problems to show: fallback, mapping and shader errors, the
        generator's last error, input errors. Thread: main."""
        problems = []
        if self.generator_problem:
            problems.append(self.generator_problem)
        problems.extend(self.chain.problems)
        if self.clip is not None and self.clip.problem:
            problems.append(self.clip.problem)
        if self.engine.error:
            problems.append(self.engine.error)
        problems.extend(self.compositor.errors)
        if self.worker.last_error:
            problems.append(
                f"{self.worker.errors} generator errors; last: {self.worker.last_error}"
            )
        return problems
