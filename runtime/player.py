"""A show's running parts, assembled in the one direction of data flow:
inputs -> SignalBus -> MappingEngine -> GeneratorWorker -> Compositor.

`Player.step` does one frame's work on the main thread; the live and offline loops
(runtime/loop.py) decide when frames happen and where they go.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import moderngl
import torch

from runtime import cuda_gl
from runtime.capture import CaptureSwitch
from runtime.clip import build_clip, clip_controls
from runtime.decks import Decks, deck_controls
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
from runtime.osc_out import OscValue, build_osc_out, clock_state
from runtime.osc_targets import OscTargets, osc_address
from runtime.render.compositor import Compositor
from runtime.render.shaders import shader_targets
from runtime.scenes import Scenes, walk_length
from runtime.show import Show
from runtime.signals import SignalBus, Snapshot

log = logging.getLogger(__name__)


def show_targets(
    generator: Generator,
    show: Show,
    stages: Sequence[Stage],
    deck_b: Generator | None = None,
) -> dict[str, Target]:
    """Every target a show offers: its generator's controls, its neural stages'
    controls (with the feedback controls), its CLIP controls, its passes'
    uniforms, and with two decks the crossfader's and deck B's (`deck.b.`).

    Args:
        generator: the show's generator (deck A).
        show: the show.
        stages: its neural stages (`runtime.neural.build_stages`).
        deck_b: deck B's generator (`[deck.b]`), or None.
    Raises:
        ShaderError: a pass file cannot be read.
    Thread: any.
    """
    controls = (*generator.controls, *neural_controls(stages), *clip_controls(show.clip))
    if deck_b is not None:
        controls = (*controls, *deck_controls(deck_b))
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
        # A second deck ([deck.b]): its generator, worker and the crossfade (decks.py).
        self.decks = (
            None
            if show.deck_b is None
            else Decks(show, ctx, offline=offline, cuda_available=torch.cuda.is_available())
        )
        self.engine = MappingEngine(
            show.mapping_paths,
            show_targets(
                generator, show, self.chain.stages, self.decks.generator if self.decks else None
            ),
        )
        self.osc_targets = OscTargets(self.engine)
        self.scenes = (
            Scenes(show.scenes, self.engine, walk_length(generator), persist=not offline)
            if show.scenes is not None
            else None
        )
        self.osc_out = None if offline else build_osc_out(show.osc_out)
        #: The bus as the last `map` saw it (its events: requests such as `key:r`).
        self.snapshot = Snapshot({}, ())
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
        #: CUDA frames into GL without host memory, where that works (runtime/cuda_gl.py).
        self.uploads = None if self.draws_in_gl else cuda_gl.connect(self.worker, ctx)
        self.last_stages: tuple[StageStat, ...] = ()
        self._next_watch_s = 0.0
        self.messages: list[str] = []
        self.frames_generated = 0
        #: Set by the live loop to capture what the mapping sees (runtime/capture.py).
        self.capture: CaptureSwitch | None = None

    def start(self) -> None:
        """Start the generator worker and every input. Thread: main."""
        self.worker.start()
        if self.decks is not None:
            self.decks.start()
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
        if self.uploads is not None:
            self.uploads.release()
        if self.scenes is not None:
            self.scenes.stop()
        if self.osc_out is not None:
            self.osc_out.close()
        if self.decks is not None:
            self.decks.stop()

    def map(self, frame: int, t_s: float, dt_s: float) -> dict[str, float]:
        """Step the feeds, hand texts to CLIP, snapshot the bus, act on scene and
        `/ls/` requests in it, and map it; a capture (runtime/capture.py) gets what
        the mapping saw.

        Thread: main.
        """
        for feed in self.feeds:
            feed.update(self.bus, t_s)
        texts = self.bus.texts.take()
        for source, text in texts:
            if self.clip is not None:
                self.clip.take_text(source, text)
        self.snapshot = snapshot = self.bus.snapshot()
        if self.scenes is not None:
            self.scenes.before(snapshot, texts, t_s)
        released = self.osc_targets.apply(snapshot)
        if self.scenes is not None:
            self.scenes.release(released)
        values = self.engine.evaluate(snapshot, t_s, dt_s)
        if self.scenes is not None:
            self.scenes.after(values)
        if self.capture is not None:
            self.capture.frame(frame, t_s, dt_s, snapshot, texts, values)
        return values

    def step_live(self, frame: int, t_s: float, dt_s: float) -> None:
        """One live frame: map, post to the generator, take its newest frame if
        any, run the pass chain. Never waits for the generator.

        Thread: main.
        """
        values = self.map(frame, t_s, dt_s)
        if self.osc_out is not None:
            self.osc_out.update(self.controller_state())
        params = Params(frame, t_s, values)
        self.submit(params)
        if self.clip is not None:
            self.clip.submit(params)
        self.take_frame(self.worker.latest())
        if self.decks is not None:
            self.decks.take_latest()
        self.render_passes(values, t_s)
        self.watch(t_s)

    def controller_state(self) -> dict[str, OscValue]:
        """What OSC out tells a controller this frame (sent when it changes): the
        base values a scene recall set, the active scene, beat, bar and tempo.
        Another state (e.g. recording) is one more address here.

        Thread: main.
        """
        state: dict[str, OscValue] = clock_state(self.snapshot.values)
        scenes = self.scenes
        if scenes is not None:
            base = self.engine.base
            state.update({osc_address(n): base[n] for n in scenes.controlled if n in base})
            state["/ls/scene"] = scenes.active or ""
        return state

    def controller_lines(self) -> list[str]:
        """HUD lines for scenes, OSC `/ls/` addresses and OSC out (those in use).

        Thread: main.
        """
        lines = [self.scenes.status()] if self.scenes is not None else []
        unknown = self.osc_targets.status()
        if unknown:
            lines.append(unknown)
        if self.osc_out is not None:
            lines.append(self.osc_out.status())
        return lines

    def submit(self, params: Params, *, drop: bool = True) -> None:
        """Post a frame to the generator, or to each deck with a weight above 0.

        Args:
            params: the frame.
            drop: True live (the newest wins); False offline (see `wait_for`).
        Thread: main.
        """
        if self.decks is None:
            self.worker.submit(params, drop=drop)
        else:
            self.decks.submit(params, self.worker, drop=drop)

    def wait_for(self, frame: int) -> FrameResult | None:
        """Offline: wait until `frame` (submitted with drop=False) is rendered.

        Returns:
            The generator's (deck A's) result; None when deck A rested that frame
            (deck B's frame is already in its texture).
        Raises:
            TimeoutError: a generator did not finish it.
        Thread: main.
        """
        if self.decks is None:
            return self.worker.wait_for(frame)
        return self.decks.wait_for(frame, self.worker)

    def render_passes(self, values: Mapping[str, float], t_s: float) -> None:
        """Run the pass chain on the generated frame (with two decks, on their mix).

        Thread: main.
        """
        source = None if self.decks is None else self.decks.source(values, self.compositor)
        self.compositor.render(values, t_s, source=source)

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
        if self.decks is not None:
            self.decks.taken_a(result)
        if result is not None and result.error is None:
            if result.image is not None:
                self.compositor.upload(result.image)
            elif result.gpu_image is not None and self.uploads is not None:
                self.worker.frames_on_gpu = self.uploads.upload(self.compositor, result.gpu_image)
            # else a GL generator's frame is already the source
            self.frames_generated += 1
            self.last_stages = result.stages

    def reload_if_changed(self) -> list[str]:
        """Hot-reload mapping files, shaders and scenes that changed. Returns messages.

        Thread: main.
        """
        messages = self.compositor.reload_if_changed()
        mapping = self.engine.reload_if_changed()
        if mapping:
            messages.append(mapping)
        scenes = None if self.scenes is None else self.scenes.reload_if_changed(self.show.path)
        if scenes:
            messages.append(scenes)
        return messages

    def problems(self) -> list[str]:
        """Current problems to show: fallback, mapping and shader errors, the
        generator's last error, input errors. Thread: main."""
        problems = []
        if self.generator_problem:
            problems.append(self.generator_problem)
        if self.decks is not None:
            problems.extend(self.decks.problems())
        problems.extend(self.chain.problems)
        if self.clip is not None and self.clip.problem:
            problems.append(self.clip.problem)
        if self.engine.error:
            problems.append(self.engine.error)
        if self.scenes is not None and self.scenes.error:
            problems.append(self.scenes.error)
        problems.extend(self.compositor.errors)
        if self.worker.last_error:
            problems.append(
                f"{self.worker.errors} generator errors; last: {self.worker.last_error}"
            )
        return problems
