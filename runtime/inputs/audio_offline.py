"""Offline audio analysis with librosa: the live features of a whole file, on the
block grid, for offline renders and for `run_show.py analyze`.

The signals have the names and scales of the live analysis
(runtime.inputs.audio_features): frame j is centred on sample j * block, which is
also where the live analysis of block j is centred, and the same AutoGain and
AutoRange normalise the curves, so a mapping gets the same values in a render as in
a live show playing the same file. Onsets (librosa.onset.onset_detect) and beats
(librosa.beat.beat_track) see the whole file, so they are placed better than the
causal live ones; the tempo is one value for the whole file.

librosa compiles with numba on first use: NUMBA_CACHE_DIR (set by audio_features to
the project's .numba_cache) keeps that to the first run; CI warms it with
`python run_show.py analyze SOME_AUDIO` once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import InputError
from runtime.inputs.audio_config import MAX_SAMPLE, AudioConfig
from runtime.inputs.audio_features import (
    BANDS_HZ,
    LEVELS,
    AnalysisSettings,
    Filterbanks,
    FluxMeter,
    Normalisers,
    block_problem,
    decay_envelope,
    floor_amplitude,
)
from runtime.signals import SignalBus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineAnalysis:
    """A whole file's features on the block grid.

    Attributes:
        path: the file.
        settings: the analysis settings (sample rate, block, gains).
        duration_s: the file's length.
        curves: signal name -> (T,) float32 value per frame, for every continuous
            signal (all but the triggers `audio:onset` and `audio:beat`).
        onset_times_s: (N,) onset times.
        beat_times_s: (B,) beat times.
        bpm: the tempo of the whole file (librosa's beat tracker).
    """

    path: Path
    settings: AnalysisSettings
    duration_s: float
    curves: dict[str, np.ndarray]
    onset_times_s: np.ndarray
    beat_times_s: np.ndarray
    bpm: float

    @property
    def frames(self) -> int:
        """Number of frames T."""
        return next(iter(self.curves.values())).shape[0]

    @property
    def times_s(self) -> np.ndarray:
        """(T,) the time each frame is centred on."""
        return np.arange(self.frames) / self.settings.fps


def load_mono(path: Path, *, gain_db: float = 0.0) -> tuple[np.ndarray, float]:
    """Read an audio file as mono float32, mixing its first two channels as the live
    input does.

    Args:
        path: wav, flac, ogg, mp3 (anything libsndfile reads).
        gain_db: trim applied to the samples.
    Returns:
        (y (n,) float32, sample rate in Hz); samples that are not finite or beyond
        MAX_SAMPLE become 0.
    Raises:
        InputError: the file cannot be read or decoded.
    Thread: any.
    """
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (n, ch)
    except Exception as exc:  # libsndfile reports undecodable files in several ways
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    y = data[:, :2].mean(axis=1) * np.float32(10.0 ** (gain_db / 20.0))  # (n,)
    bad = ~(np.abs(y) <= MAX_SAMPLE)  # NaN too
    if bad.any():
        # librosa refuses a buffer that is not finite everywhere (ParameterError), and
        # a sample far beyond any sound overflows the features as it does live.
        log.warning(
            "%s: %d samples are not finite or beyond +-%g; read as silence",
            path,
            int(bad.sum()),
            MAX_SAMPLE,
        )
        y[bad] = 0.0
    return y.astype(np.float32), float(rate)


def analyze_file(path: Path, *, config: AudioConfig | None = None) -> OfflineAnalysis:
    """Analyse a whole file: the live features plus librosa's onsets, beats and tempo.

    Args:
        path: the audio file.
        config: block size, gains and sensitivities (the defaults when None).
    Returns:
        The analysis.
    Raises:
        InputError: the file cannot be decoded, or is shorter than one block.
    Thread: any (a few seconds for a song: not the frame loop).
    """
    import librosa

    config = config or AudioConfig()
    y, rate = load_mono(path, gain_db=config.gain_db)
    s = config.settings(rate)
    if y.size < s.n_fft_chroma:
        raise InputError(f"{path}: too short to analyse ({y.size} samples)")
    banks = Filterbanks.build(s)
    hop = s.block

    # Frames centred on j * hop, as the live block j's window is.
    power = np.abs(librosa.stft(y, n_fft=s.n_fft, hop_length=hop, window="hann")) ** 2  # (F, T)
    rms_raw = librosa.feature.rms(y=y, frame_length=s.n_fft, hop_length=hop)[0]  # (T,)
    band_amp = np.sqrt(banks.bands @ power)  # (n_bands, T)
    flux_raw = FluxMeter(s).run(banks.mel @ power)  # (T,)
    centroid_hz = librosa.feature.spectral_centroid(
        S=np.sqrt(power), sr=rate, n_fft=s.n_fft, hop_length=hop
    )[0]  # (T,)
    chroma = librosa.feature.chroma_stft(
        y=y, sr=rate, n_fft=s.n_fft_chroma, hop_length=hop, tuning=0.0
    )  # (12, T)

    # Silent frames keep the last centroid, as the live analysis does.
    active = rms_raw > floor_amplitude(s)
    held = np.where(active, centroid_hz, np.nan)
    held[0] = held[0] if active[0] else 0.0
    index = np.where(np.isnan(held), 0, np.arange(held.size))
    centroid_hz = held[np.maximum.accumulate(index)]

    norm = Normalisers(s)
    flux = norm.flux.run(flux_raw)
    onset_frames = librosa.onset.onset_detect(
        onset_envelope=flux_raw,
        sr=rate,
        hop_length=hop,
        delta=s.onset_delta,
        wait=max(1, round(s.onset_min_gap_s * s.fps)),
    )
    onset_mask = np.zeros(flux.shape, dtype=bool)
    onset_mask[onset_frames] = True
    tempo, beat_frames = librosa.beat.beat_track(
        onset_envelope=flux_raw, sr=rate, hop_length=hop, start_bpm=s.tempo_prior_bpm
    )
    bpm = float(np.atleast_1d(tempo)[0])
    frames = flux.shape[0]
    curves = {
        "audio:rms": norm.rms.run(rms_raw),
        **{
            f"audio:band/{name}": gain.run(band_amp[i])
            for i, ((name, _, _), gain) in enumerate(zip(BANDS_HZ, norm.bands))
        },
        "audio:flux": flux,
        "audio:onset_env": decay_envelope(
            onset_mask, flux, keep=math.exp(-1.0 / (s.onset_decay_s * s.fps))
        ),
        "audio:beat_phase": beat_phase(beat_frames, frames),
        "audio:bpm": np.full(frames, bpm, dtype=np.float32),
        "audio:centroid": norm.centroid.run(np.log2(np.maximum(centroid_hz, 1.0))),
        "audio:centroid_hz": centroid_hz.astype(np.float32),
        **{f"audio:chroma/{i}": chroma[i].astype(np.float32) for i in range(12)},
    }
    return OfflineAnalysis(
        path=path,
        settings=s,
        duration_s=y.size / rate,
        curves=curves,
        onset_times_s=onset_frames / s.fps,
        beat_times_s=np.asarray(beat_frames) / s.fps,
        bpm=bpm,
    )


def beat_phase(beat_frames: np.ndarray, frames: int) -> np.ndarray:
    """0 at each beat rising linearly to 1 at the next; extrapolated with the
    neighbouring beat interval before the first beat and after the last.

    Args:
        beat_frames: (B,) increasing frame indices of the beats.
        frames: T.
    Returns:
        (T,) float32 phase in [0, 1).
    Thread: any.
    """
    beats = np.asarray(beat_frames, dtype=np.float64)
    if beats.size < 2:
        return np.zeros(frames, dtype=np.float32)
    t = np.arange(frames, dtype=np.float64)
    i = np.clip(np.searchsorted(beats, t, side="right") - 1, 0, beats.size - 2)  # (T,)
    start, period = beats[i], beats[i + 1] - beats[i]
    return np.mod((t - start) / period, 1.0).astype(np.float32)


class OfflineAudioFeed:
    """The offline analysis as a FrameFeed: writes each frame's features to the bus.

    Continuous signals take the frame nearest `t_s`; a trigger is 1 when an onset
    or beat falls after the previous update and at or before `t_s`, so none is
    lost at any frame rate. After the end of the file the levels read 0.

    Args:
        analysis: the file's analysis.
    Thread: main (the frame loop).
    """

    name = "audio"

    def __init__(self, analysis: OfflineAnalysis) -> None:
        self.analysis = analysis
        self._previous_s = -math.inf

    @property
    def duration_s(self) -> float:
        """The file's length (a render of the whole song lasts this long)."""
        return self.analysis.duration_s

    @property
    def soundtrack(self) -> tuple[Path, float]:
        """(file, length in s): an offline render lasts this long and muxes this file
        into its video. Thread: any."""
        return self.analysis.path, self.analysis.duration_s

    def stop(self) -> None:
        """Nothing to release: the analysis is in memory. Thread: main."""

    def update(self, bus: SignalBus, t_s: float) -> None:
        """Write the signals for the frame at `t_s` (seconds from the file's start).

        Args:
            bus: the signal bus.
            t_s: the frame's time; a time before the previous one starts over.
        Thread: main.
        """
        a = self.analysis
        if t_s < self._previous_s:
            self._previous_s = -math.inf
        frame = round(t_s * a.settings.fps)
        inside = 0 <= frame < a.frames
        j = min(max(frame, 0), a.frames - 1)
        for name, curve in a.curves.items():
            bus.set(name, float(curve[j]) if inside or name not in LEVELS else 0.0)
        for name, times in (("audio:onset", a.onset_times_s), ("audio:beat", a.beat_times_s)):
            hit = np.any((times > self._previous_s) & (times <= t_s))
            bus.set(name, 1.0 if hit else 0.0)
        self._previous_s = t_s


def plot_analysis(analysis: OfflineAnalysis, path: Path) -> None:
    """Draw the feature curves over time with beats and onsets marked, as a PNG.

    Args:
        analysis: the file's analysis.
        path: the PNG to write.
    Raises:
        OSError: the file cannot be written.
    Thread: any (matplotlib's Agg backend, no display).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, c = analysis, analysis.curves
    t = a.times_s
    fig, axes = plt.subplots(5, 1, figsize=(14, 11), sharex=True, layout="constrained")
    fig.suptitle(
        f"{a.path.name}: {a.duration_s:.1f} s, {a.bpm:.1f} bpm, {a.beat_times_s.size} beats, "
        f"{a.onset_times_s.size} onsets (block {a.settings.block} at "
        f"{a.settings.sample_rate_hz:.0f} Hz)"
    )
    ax = axes[0]
    ax.plot(t, c["audio:rms"], color="black", lw=1.2, label="rms")
    for (name, lo, hi), color in zip(BANDS_HZ, ("tab:red", "tab:green", "tab:blue")):
        top = "Nyquist" if math.isinf(hi) else f"{hi:.0f}"
        ax.plot(
            t, c[f"audio:band/{name}"], color=color, lw=0.8, label=f"band/{name} {lo:.0f}-{top}"
        )
    ax.set_ylabel("level (auto gain)")

    ax = axes[1]
    ax.plot(t, c["audio:flux"], color="tab:gray", lw=0.8, label="flux")
    ax.plot(t, c["audio:onset_env"], color="tab:orange", lw=1.2, label="onset_env")
    ax.vlines(a.onset_times_s, 1.02, 1.12, color="tab:orange", lw=1.0, label="onset")
    ax.set_ylabel("onsets")

    ax = axes[2]
    ax.plot(t, c["audio:beat_phase"], color="tab:purple", lw=1.0, label="beat_phase")
    ax.set_ylabel(f"beats ({a.bpm:.1f} bpm)")

    ax = axes[3]
    ax.plot(t, c["audio:centroid"], color="tab:cyan", lw=1.0, label="centroid (0..1)")
    ax.set_ylabel("brightness")
    hz = ax.twinx()
    hz.plot(t, c["audio:centroid_hz"], color="tab:blue", lw=0.6, alpha=0.6)
    hz.set_ylabel("centroid Hz")

    ax = axes[4]
    chroma = np.stack([c[f"audio:chroma/{i}"] for i in range(12)])  # (12, T)
    ax.imshow(
        chroma,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        extent=(t[0], t[-1], -0.5, 11.5),
        cmap="magma",
    )
    ax.set_yticks(range(12), ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"])
    ax.set_ylabel("chroma")
    ax.set_xlabel("time (s)")

    for ax in axes[:4]:
        ax.vlines(a.beat_times_s, 0, 1, color="tab:purple", lw=0.6, alpha=0.5)
        ax.set_ylim(-0.02, 1.15)
        ax.legend(loc="upper right", fontsize=7, ncols=5)
    axes[4].vlines(a.beat_times_s, -0.5, 11.5, color="white", lw=0.5, alpha=0.5)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def analyze_command(audio: str, *, plot: str | None, block: int) -> str:
    """`run_show.py analyze AUDIO [--plot PNG]`: analyse a file and describe it.

    Args:
        audio: the audio file.
        plot: a PNG to write the feature plot to, or None.
        block: samples per block.
    Returns:
        The summary to print (tempo, beats, onsets, duration).
    Raises:
        InputError: the file cannot be read or decoded, or the block is not a
            supported size (BLOCK_SIZES).
    Thread: main.
    """
    path = Path(audio)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    problem = block_problem(block)
    if problem:
        raise InputError(f"--block: {problem}")
    a = analyze_file(path, config=AudioConfig(block=block))
    s = a.settings
    lines = [
        f"file      {path}",
        f"duration  {a.duration_s:.2f} s ({s.sample_rate_hz:.0f} Hz, block {s.block} = "
        f"{1000 * s.block / s.sample_rate_hz:.1f} ms, {a.frames} frames)",
        f"tempo     {a.bpm:.1f} bpm",
        f"beats     {a.beat_times_s.size}",
        f"onsets    {a.onset_times_s.size}",
    ]
    if plot:
        plot_analysis(a, Path(plot))
        lines.append(f"plot      {plot}")
    return "\n".join(lines)
