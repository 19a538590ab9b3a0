"""Built-in sources that need no input: `time` and the `lfo:NAME` oscillators.

Each is a pure function of the frame time (or, for an LFO locked to the tempo, of
the clock's beat, itself a function of the frame time and the recorded inputs), so
an offline render reproduces a live show's motion exactly.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

LFO_SHAPES = ("sine", "triangle", "saw", "square", "random")
#: The tempo a beat-locked LFO or a synced trigger follows when the show has no
#: `[inputs.clock]`: the clock's own default.
DEFAULT_BPM = 120.0


def beat_without_clock(t_s: float) -> float:
    """The beat at `t_s` for a show without a clock: DEFAULT_BPM from t = 0. Thread: any."""
    return t_s * DEFAULT_BPM / 60.0


@dataclass(frozen=True)
class Lfo:
    """A low-frequency oscillator with output in 0..1.

    Attributes:
        name: the source is `lfo:NAME`.
        shape: sine, triangle, saw, square, or random (smooth random: a new random
            level each period, eased in with smoothstep).
        rate_hz: cycles (or new random levels) per second.
        phase: offset as a fraction of a cycle.
        rate_beats: cycles per beat of the show's clock instead of per second
            (0.25: one cycle every 4 beats); then `rate_hz` is unused and the
            phase is the clock's beat times this, so it follows tempo changes
            without a jump and a cycle starts on a beat.
    """

    name: str
    shape: str = "sine"
    rate_hz: float = 0.1
    phase: float = 0.0
    rate_beats: float | None = None

    def value(self, t_s: float, beat: float | None = None) -> float:
        """The oscillator at time `t_s`.

        Args:
            t_s: the frame's time in seconds.
            beat: the clock's beat (`clock:beat`) this frame; None without a
                clock (a beat-locked LFO then counts DEFAULT_BPM from t = 0).
        Returns:
            0..1.
        Thread: any.
        """
        if self.rate_beats is None:
            u = t_s * self.rate_hz + self.phase
        else:
            beats = beat_without_clock(t_s) if beat is None else beat
            u = beats * self.rate_beats + self.phase
        frac = u - math.floor(u)
        if self.shape == "sine":
            return 0.5 - 0.5 * math.cos(2.0 * math.pi * frac)
        if self.shape == "triangle":
            return 1.0 - abs(2.0 * frac - 1.0)
        if self.shape == "saw":
            return frac
        if self.shape == "square":
            return 1.0 if frac < 0.5 else 0.0
        k = math.floor(u)
        a, b = self._level(k), self._level(k + 1)
        ease = frac * frac * (3.0 - 2.0 * frac)
        return a + (b - a) * ease

    def _level(self, k: int) -> float:
        # A hash, not a generator: any time can be evaluated directly, offline and live.
        return zlib.crc32(f"{self.name}:{k}".encode()) / 0xFFFFFFFF


#: LFOs every show has; a mapping file's `[lfo.NAME]` adds to or replaces them.
DEFAULT_LFOS = {
    "slow": Lfo("slow", "sine", 0.02),
    "mid": Lfo("mid", "sine", 0.1),
    "fast": Lfo("fast", "sine", 0.5),
    "drift": Lfo("drift", "random", 0.05),
}
