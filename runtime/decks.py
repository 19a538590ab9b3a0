"""Two decks and a crossfader: `[deck.b]` names a second generator beside the show's
`[generator]` (deck A), and `deck.mix` crossfades them through the crossfade pass's
modes (shaders/crossfade.glsl) before the show's own passes.

Targets (besides deck A's, which keep their names):

    deck.mix      0..1, default 0: 0 deck A only, 1 deck B only (mode 0); in the other
                  modes, how much of B is blended onto A
    deck.mode     0..4, default 0: how B meets A: 0 mix, 1 add, 2 screen, 3 multiply,
                  4 difference
    deck.fit      0..2, default 0: how B's frame fits A's: 0 letterbox, 1 crop, 2 stretch
    deck.b.NAME   deck B's generator's controls: deck.b.gen.zoom, deck.b.latent.speed

Deck B's weight is `deck.mix`; deck A's is 1 - `deck.mix` in mode 0 and 1 in the
others. A deck at weight 0 renders nothing: its generator gets no frames. When it
comes back, its first new frame is rendered before it shows: live, until that frame
arrives, the other deck is shown alone (no flash of a stale frame); offline every
frame waits for both decks, so a render is frame-exact. Deck B runs on its own
generator worker, or in GL on the frame loop's context for a cppn where deck A's
would (runtime/gl_frames.py). Neural stages and CLIP steering act on deck A only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping

import moderngl

from runtime import cuda_gl
from runtime.errors import ShaderError
from runtime.generators import build_with_fallback
from runtime.generators.base import Control, Generator, Params
from runtime.generators.worker import FrameResult, GeneratorWorker
from runtime.gl_frames import GLFrames, draws_in_gl
from runtime.render.compositor import Compositor, DeckMixer
from runtime.show import GeneratorConfig, Show

log = logging.getLogger(__name__)

PREFIX = "deck.b."
MODES = ("mix", "add", "screen", "multiply", "difference")
DECK_CONTROLS = (
    Control("deck.mix", 0.0, 0.0, 1.0, "crossfader: 0 deck A only, 1 deck B only (mode mix)"),
    Control(
        "deck.mode",
        0.0,
        0.0,
        4.0,
        "how deck B meets deck A: 0 mix, 1 add, 2 screen, 3 multiply, 4 difference",
    ),
    Control("deck.fit", 0.0, 0.0, 2.0, "how deck B fits deck A: 0 letterbox, 1 crop, 2 stretch"),
)


def deck_controls(generator: Generator) -> tuple[Control, ...]:
    """The crossfader's controls and deck B's generator's, prefixed `deck.b.` (the
    states they integrate into or step too).

    Args:
        generator: deck B's generator.
    Returns:
        The controls, crossfader first.
    Thread: any.
    """

    def prefixed(name: str | None) -> str | None:
        return None if name is None else PREFIX + name

    own = tuple(
        Control(
            PREFIX + c.name,
            c.default,
            c.lo,
            c.hi,
            f"deck B: {c.doc}",
            prefixed(c.integrates),
            prefixed(c.steps),
            c.glide_s,
        )
        for c in generator.controls
    )
    return (*DECK_CONTROLS, *own)


def build_deck_b(config: GeneratorConfig) -> tuple[Generator, str | None]:
    """Deck B's generator, falling back to the default like deck A's.

    Returns:
        (generator, problem): problem names what failed, with "deck B" in front.
    Raises:
        ConfigError: a mistake in `[deck.b]`.
    Thread: any.
    """
    generator, problem = build_with_fallback(config)
    return generator, None if problem is None else f"deck B: {problem}"


def weights(values: Mapping[str, float]) -> tuple[float, float]:
    """(deck A's weight, deck B's) for a frame's values. Thread: any."""
    mix = values.get("deck.mix", 0.0)
    a = 1.0 - mix if values.get("deck.mode", 0.0) < 0.5 else 1.0
    return a, mix


class _Deck:
    """What the mix knows of one deck: whether it rendered the frames it shows."""

    def __init__(self) -> None:
        self.active = False
        self.since = 0  # the first frame posted since it became active
        self.fresh = False  # a frame from `since` on has arrived (reset on coming back)
        self.submitted: set[int] = set()  # offline: frames waiting for `wait_for`

    def post(self, frame: int, on: bool, *, offline: bool) -> bool:
        if on and not self.active:
            self.since, self.fresh = frame, False
        self.active = on
        if on and offline:
            self.submitted.add(frame)
        return on

    def arrived(self, result: FrameResult | None) -> None:
        if result is not None and result.error is None and result.frame >= self.since:
            self.fresh = True


class Decks:
    """Deck B beside the player's deck A: its generator and worker, the crossfade, and
    which deck renders.

    Args:
        show: a show with `[deck.b]`.
        ctx: the frame loop's GL context.
        offline: True in a frame-exact render.
        cuda_available: whether torch sees CUDA (a cppn deck B is drawn in GL without).
    Raises:
        ConfigError: a mistake in `[deck.b]`.
        ShaderError: the crossfade pass does not compile.
    Thread: main.
    """

    def __init__(
        self, show: Show, ctx: moderngl.Context, *, offline: bool, cuda_available: bool
    ) -> None:
        if show.deck_b is None:
            raise ValueError(f"{show.path}: two decks need a [deck.b] table")
        self.offline = offline
        self.generator, self.problem = build_deck_b(show.deck_b)
        self.mixer = DeckMixer(ctx)
        self.worker: GeneratorWorker | GLFrames = GeneratorWorker(self.generator)
        self.draws_in_gl = False
        # Drawn in GL where it would be as a show's only generator (neural stages and
        # CLIP steering never act on deck B).
        alone = dataclasses.replace(show, generator=show.deck_b, neural=(), clip=None)
        if self.problem is None and draws_in_gl(alone, cuda_available):
            try:
                self.worker = GLFrames(self.generator, ctx, self.mixer.slot_b)
                self.draws_in_gl = True
            except ShaderError as exc:  # draw in torch instead: slower, but the show plays
                self.problem = f"deck B: the cppn's shader failed ({exc}); drawing in torch"
                log.error("%s", self.problem)
        self.uploads = None if self.draws_in_gl else cuda_gl.connect(self.worker, ctx)
        self.a, self.b = _Deck(), _Deck()
        self.mix = 0.0
        self.mode = 0.0
        self.rendered_b = 0
        self._shown = "a"

    @property
    def controls(self) -> tuple[Control, ...]:
        """The crossfader's and deck B's controls (`deck_controls`). Thread: any."""
        return deck_controls(self.generator)

    def start(self) -> None:
        """Start deck B's worker. Thread: main."""
        self.worker.start()

    def stop(self) -> None:
        """Stop deck B's worker and free the mix's GL objects. Thread: main."""
        self.worker.stop()
        self.mixer.release()
        if self.uploads is not None:
            self.uploads.release()

    def submit(
        self, params: Params, worker_a: GeneratorWorker | GLFrames, *, drop: bool = True
    ) -> None:
        """Post a frame to each deck whose weight is above 0.

        Args:
            params: the frame (every target's value); deck B gets its own controls
                without their `deck.b.` prefix.
            worker_a: deck A's worker (the player's).
            drop: as `GeneratorWorker.submit`: False offline.
        Thread: main.
        """
        weight_a, weight_b = weights(params.values)
        self.mix = params.values.get("deck.mix", 0.0)
        self.mode = params.values.get("deck.mode", 0.0)
        if self.a.post(params.frame, weight_a > 0.0, offline=self.offline):
            worker_a.submit(params, drop=drop)
        if self.b.post(params.frame, weight_b > 0.0, offline=self.offline):
            self.worker.submit(self._params_b(params), drop=drop)

    def taken_a(self, result: FrameResult | None) -> None:
        """Note deck A's frame the player took (None: nothing new). Thread: main."""
        self.a.arrived(result)

    def take_latest(self) -> None:
        """Live: take deck B's newest frame, if any, into its texture. Thread: main."""
        self._take_b(self.worker.latest())

    def wait_for(self, frame: int, worker_a: GeneratorWorker | GLFrames) -> FrameResult | None:
        """Offline: wait for both decks' `frame`, where submitted; deck B's goes into
        its texture.

        Returns:
            Deck A's result, or None when deck A did not render that frame.
        Thread: main.
        """
        if frame in self.b.submitted:
            self.b.submitted.discard(frame)
            self._take_b(self.worker.wait_for(frame))
        if frame in self.a.submitted:
            self.a.submitted.discard(frame)
            return worker_a.wait_for(frame)
        return None

    def source(
        self, values: Mapping[str, float], compositor: Compositor
    ) -> tuple[moderngl.Texture, tuple[int, int]] | None:
        """What the show's passes read this frame.

        Args:
            values: the frame's values (deck.mix, deck.mode, deck.fit).
            compositor: holds deck A's frame.
        Returns:
            None: deck A's frame as it is; or deck B's frame, or the two mixed, with
            its size. A deck that has not rendered since it came back is left out.
        Thread: main.
        """
        # The frame's own weights: offline, the next frame is already posted.
        weight_a, weight_b = weights(values)
        a_on = weight_a > 0.0 and self.a.fresh
        b_on = weight_b > 0.0 and self.b.fresh
        if a_on or b_on:
            self._shown = "mix" if a_on and b_on else "a" if a_on else "b"
        if self._shown == "a":
            return None
        if self._shown == "b":
            return (self.mixer.slot_b.texture, self.mixer.slot_b.size_px)
        return self.mixer.mix(
            (compositor.source, compositor.source_px),
            values.get("deck.mix", 0.0),
            values.get("deck.mode", 0.0),
            values.get("deck.fit", 0.0),
        )

    def line(self, line_a: str) -> str:
        """'deck A cppn gl 256x256  18.0 fps | deck B cppn gl 256x256  9.0 fps | mix
        0.35' for HUD and log, from deck A's generator line. Thread: main."""
        g = self.generator
        device = "gl" if self.draws_in_gl else g.device.type
        fps = self.worker.fps() if self.b.active else 0.0
        state = "" if self.b.active else " (resting)"
        line_b = f"deck B {g.kind} {device} {g.size_px[0]}x{g.size_px[1]}  {fps:.1f} fps{state}"
        head, sep, stages = line_a.partition(" | ")
        head = "deck A" + head.removeprefix("generator") + ("" if self.a.active else " (resting)")
        mode = mode_name(self.mode)
        mix = f"mix {self.mix:.2f}" + ("" if mode == "mix" else f" ({mode})")
        return f"{head} | {line_b} | {mix}" + (f" | {stages}" if sep else "")

    def problems(self) -> list[str]:
        """Deck B's fallback and its worker's errors. Thread: main."""
        problems = [self.problem] if self.problem else []
        if self.worker.last_error:
            problems.append(
                f"deck B: {self.worker.errors} generator errors; last: {self.worker.last_error}"
            )
        return problems

    def _take_b(self, result: FrameResult | None) -> None:
        if result is None or result.error is not None:
            return
        if result.image is not None:
            self.mixer.slot_b.upload(result.image)
        elif result.gpu_image is not None and self.uploads is not None:
            self.worker.frames_on_gpu = self.uploads.upload(self.mixer.slot_b, result.gpu_image)
        # else a GL generator's frame is already in the slot
        self.rendered_b += 1
        self.b.arrived(result)

    @staticmethod
    def _params_b(params: Params) -> Params:
        values = {k[len(PREFIX) :]: v for k, v in params.values.items() if k.startswith(PREFIX)}
        return Params(params.frame, params.t_s, values)


def mode_name(value: float) -> str:
    """The crossfade mode a `deck.mode` value selects. Thread: any."""
    return MODES[min(max(math.floor(value + 0.5), 0), len(MODES) - 1)]
