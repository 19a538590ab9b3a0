"""Audio analysis cost: the block analysis per block as a share of the block's
duration, the whole live input (ring, analysis, bus) on a file as fast as it goes,
the delay from a block's delivery to its features on the bus with blocks arriving
in real time, and the offline librosa analysis of 60 s, all in one run.

    python benchmarks/bench_audio.py [--block 512] [--rate 48000] [--latency-s 10]

Music: the sonic-pi amen break (apt sonic-pi-samples) repeated to 60 s and
resampled to --rate, or a 120 BPM pulse train over noise when it is not installed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.inputs.audio import AudioConfig, AudioInput, BlockRing
from runtime.inputs.audio_features import AnalysisSettings, BlockAnalyzer
from runtime.inputs.audio_offline import analyze_file
from runtime.signals import SignalBus

AMEN = Path("/usr/share/sonic-pi/samples/loop_amen_full.flac")


def music(rate: int, seconds: float) -> tuple[np.ndarray, str]:
    """(samples (n,) float32 at `rate`, what they are)."""
    n = int(seconds * rate)
    if AMEN.is_file():
        data, source_rate = soundfile.read(AMEN, dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        if source_rate != rate:
            t = np.arange(int(mono.size * rate / source_rate)) / rate
            mono = np.interp(t, np.arange(mono.size) / source_rate, mono).astype(np.float32)
        return np.resize(mono, n), "amen break (sonic-pi-samples)"
    rng = np.random.default_rng(0)
    y = 0.01 * rng.standard_normal(n).astype(np.float32)
    for beat in np.arange(0.25, seconds, 0.5):
        i = int(beat * rate)
        y[i : i + 150] += 0.5 * rng.standard_normal(min(150, n - i)).astype(np.float32)
    return y, "120 BPM pulse train over noise (sonic-pi-samples not installed)"


class ClockedStream:
    """A sound card stand-in that delivers blocks on the clock and notes when."""

    def __init__(self, ring: BlockRing, y: np.ndarray, rate: int, block: int) -> None:
        self.ring, self.y, self.block = ring, y, block
        self.samplerate, self.channels, self.active = float(rate), 1, False
        self.delivered_s: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.active = True
        self.thread.start()

    def stop(self) -> None:
        self.active = False

    def close(self) -> None:
        self.thread.join()

    def _run(self) -> None:
        start = time.perf_counter()
        block_s = self.block / self.samplerate
        for k in range(self.y.size // self.block):
            if not self.active:
                return
            delay = start + (k + 1) * block_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            chunk = self.y[k * self.block : (k + 1) * self.block, None]
            self.delivered_s.append(time.perf_counter())
            self.ring.callback(chunk, self.block, None, None)


class ClockedOpener:
    def __init__(self, y: np.ndarray, rate: int, block: int) -> None:
        self.y, self.rate, self.block = y, rate, block
        self.stream: ClockedStream | None = None

    def open(self, *, device, sample_rate_hz, block):
        ring = BlockRing(block * 32, 1)
        self.stream = ClockedStream(ring, self.y, self.rate, block)
        return self.stream, "clocked", ring

    def refresh(self) -> None:
        pass

    def abandon(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--latency-s", type=float, default=10.0)
    args = parser.parse_args()
    rate, block = args.rate, args.block
    block_s = block / rate
    y, what = music(rate, 60.0)
    print(f"audio analysis, block {block} at {rate} Hz = {1000 * block_s:.2f} ms; music: {what}")

    # The block analysis alone.
    analyzer = BlockAnalyzer(AnalysisSettings(sample_rate_hz=rate, block=block))
    costs = []
    for k in range(y.size // block):
        started = time.perf_counter()
        analyzer.step(y[k * block : (k + 1) * block])
        costs.append(time.perf_counter() - started)
    cost = np.array(costs)
    print(
        f"  block analysis: mean {1000 * cost.mean():.3f} ms, p99 "
        f"{1000 * np.percentile(cost, 99):.3f} ms, max {1000 * cost.max():.2f} ms per block"
        f" = {100 * cost.mean() / block_s:.1f}% / {100 * np.percentile(cost, 99) / block_s:.1f}%"
        f" of real time"
    )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "music.wav"
        soundfile.write(path, y, rate)

        # The live input on a file, as fast as the analysis goes.
        inp = AudioInput(AudioConfig(file=path, block=block), SignalBus(), realtime=False)
        inp.start()
        started = time.perf_counter()
        inp.wait_done(600.0)
        whole_s = time.perf_counter() - started
        inp.stop()
        print(
            f"  live input on a file (ring + analysis + bus): 60 s of audio in {whole_s:.2f} s"
            f" = {100 * whole_s / 60.0:.1f}% of real time"
        )

        # Blocks in real time: delivery to features on the bus.
        opener = ClockedOpener(y[: int(args.latency_s * rate)], rate, block)
        published: dict[int, float] = {}

        def on_block(index: int, values) -> None:
            ring = opener.stream.ring
            published[ring.read // block - 1] = time.perf_counter()

        inp = AudioInput(AudioConfig(block=block), SignalBus(), opener=opener, on_block=on_block)
        inp.start()
        time.sleep(args.latency_s + 0.5)
        inp.stop()
        delivered = opener.stream.delivered_s
        delays = np.array([t - delivered[k] for k, t in published.items() if k < len(delivered)])
        print(
            f"  latency, block delivered -> features on the bus ({args.latency_s:.0f} s in real"
            f" time, {delays.size} blocks): p50 {1000 * np.median(delays):.2f} ms, p99 "
            f"{1000 * np.percentile(delays, 99):.2f} ms, max {1000 * delays.max():.2f} ms = "
            f"{np.percentile(delays, 99) / block_s:.2f} blocks at p99"
        )

        # Offline: librosa on the whole 60 s.
        started = time.perf_counter()
        analyze_file(path, config=AudioConfig(block=block))
        first_s = time.perf_counter() - started
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            analyze_file(path, config=AudioConfig(block=block))
            runs.append(time.perf_counter() - started)
        print(
            f"  offline analysis (librosa) of 60 s: {min(runs):.2f} s = "
            f"{100 * min(runs) / 60.0:.1f}% of real time (first call in this process "
            f"{first_s:.2f} s, with librosa's imports and numba cache loads)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
