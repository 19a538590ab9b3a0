"""Audio features per block: the one definition shared by the live input and the
offline analysis.

The live input (runtime.inputs.audio) feeds `BlockAnalyzer.step` one block of mono
samples at a time; the offline analysis (runtime.inputs.audio_offline) computes the
same quantities for a whole file with librosa on the same frame grid (one frame per
block, `hop = block`) and runs the same `AutoGain` / `AutoRange` over them, so both
give the same signals in the same 0..1 scale.

Signals (all `audio:`; "gain" means divided by a slow peak follower, see AutoGain):

    rms              level: RMS of the last 2 blocks, gain-normalised, 0..1
    band/low         20-250 Hz amplitude, gain-normalised per band, 0..1
    band/mid         250-2000 Hz
    band/high        2000 Hz - Nyquist
    flux             spectral flux (onset strength), gain-normalised, 0..1
    onset            trigger: 1 on the block of an onset, 0 after
    onset_env        envelope: jumps to the onset's flux at each onset, decays
                     exponentially (onset_decay_s)
    beat             trigger: 1 on the block of a beat, 0 after
    beat_phase       0 at a beat rising to 1 just before the next
    bpm              tempo in beats per minute (not 0..1; 0 until a tempo is found)
    centroid         spectral centroid, 0 = the darkest and 1 = the brightest sound
                     of the last ~agc_release_s seconds (log frequency)
    centroid_hz      spectral centroid in Hz
    chroma/0..11     pitch classes C, C#, D .. B, each frame scaled so its
                     strongest class is 1

Windows: rms, bands, flux and centroid read the last 2 blocks (n_fft = 2 * block,
Hann), centred one block back; chroma reads the last 8 blocks (pitch needs the
longer window) and so reacts about 3 blocks later. Each block's features are
computed before the next block arrives (the analysis costs a few percent of real
time: benchmarks/bench_audio.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Band names and their edges in Hz; the top band runs to Nyquist.
BANDS_HZ: tuple[tuple[str, float, float], ...] = (
    ("low", 20.0, 250.0),
    ("mid", 250.0, 2000.0),
    ("high", 2000.0, math.inf),
)
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: Mel bands of the flux (fewer than librosa's 128 so no band is empty at 2 x 512).
N_MELS = 64
#: Chroma window in blocks.
CHROMA_BLOCKS = 8
#: Floor of the log-mel spectrum (power), as librosa's `amin`.
MEL_AMIN = 1e-10

#: Every signal name the analysis writes, in a stable order.
SIGNALS: tuple[str, ...] = (
    "audio:rms",
    *(f"audio:band/{name}" for name, _, _ in BANDS_HZ),
    "audio:flux",
    "audio:onset",
    "audio:onset_env",
    "audio:beat",
    "audio:beat_phase",
    "audio:bpm",
    "audio:centroid",
    "audio:centroid_hz",
    *(f"audio:chroma/{i}" for i in range(12)),
)
#: Signals that are triggers (1 on the block of the event, else 0).
TRIGGERS = ("audio:onset", "audio:beat")
#: Signals that fall to 0 in silence (written when a file ends).
LEVELS = (
    "audio:rms",
    *(f"audio:band/{name}" for name, _, _ in BANDS_HZ),
    "audio:flux",
    "audio:onset_env",
)


#: Block sizes the analysis supports: below 256 the mel bands are narrower than the
#: FFT bins; above 2048 the tempo's lag resolution is too coarse.
BLOCK_SIZES = (256, 512, 1024, 2048)


def block_problem(block: int) -> str | None:
    """Why `block` cannot be used, or None when it can. Thread: any."""
    if block in BLOCK_SIZES:
        return None
    return f"expected a block of {', '.join(map(str, BLOCK_SIZES))} samples, got {block!r}"


@dataclass(frozen=True)
class AnalysisSettings:
    """How the features are computed; the same for live and offline.

    Attributes:
        sample_rate_hz: samples per second of the analysed signal.
        block: samples per block (the hop); 512 at 48 kHz is 10.7 ms.
        agc_release_s: how long the automatic gain remembers a loud passage (the
            peak follower falls by 1/e in this time).
        agc_floor_db: level (dBFS, RMS) below which levels read 0, so a silent
            room stays dark instead of amplifying noise.
        onset_delta: how far (0..1) the flux must rise above its recent mean to
            count as an onset.
        onset_min_gap_s: no second onset within this time.
        onset_decay_s: time constant of `audio:onset_env`.
        tempo_prior_bpm: the tempo the tracker leans to when several fit (as
            librosa's start_bpm).
        tempo_window_s: onset history the tempo is estimated from (librosa's ac_size).
        tempo_memory_s: how long past tempo estimates weigh in (live only; the
            offline tempo is one for the whole file).
    """

    sample_rate_hz: float
    block: int = 512
    agc_release_s: float = 10.0
    agc_floor_db: float = -60.0
    onset_delta: float = 0.07
    onset_min_gap_s: float = 0.05
    onset_decay_s: float = 0.25
    tempo_prior_bpm: float = 120.0
    tempo_window_s: float = 8.0
    tempo_memory_s: float = 15.0

    @property
    def fps(self) -> float:
        """Blocks (frames) per second."""
        return self.sample_rate_hz / self.block

    @property
    def n_fft(self) -> int:
        """Window of the level, band, flux and centroid features (2 blocks)."""
        return 2 * self.block

    @property
    def n_fft_chroma(self) -> int:
        """Window of the chroma (CHROMA_BLOCKS blocks)."""
        return CHROMA_BLOCKS * self.block


#: How fast an automatic gain's peak may rise: one spike (a knock on the microphone)
#: lifts it by only 2 dB a block, while a real rise in level is caught within
#: 0.3 s (values read 1 meanwhile).
AGC_RISE_DB_PER_S = 200.0


class AutoGain:
    """A slow automatic gain: divides by a peak follower so values sit in 0..1.

    The follower rises towards a new peak at up to AGC_RISE_DB_PER_S and falls back
    by 1/e per `release_s`; it never falls below `floor`, so quiet noise stays small.
    Values above the follower read 1.

    Args:
        release_s: fall time constant of the follower.
        floor: smallest follower value (same unit as the input).
        dt_s: time between two values.
    Thread: one owner (the analysis thread, or the offline analysis).
    """

    def __init__(self, *, release_s: float, floor: float, dt_s: float) -> None:
        self.floor = floor
        self.decay = math.exp(-dt_s / release_s)
        self.rise = 10.0 ** (AGC_RISE_DB_PER_S * dt_s / 20.0)
        self.peak = floor

    def __call__(self, value: float) -> float:
        """Normalise one value. Returns min(value / peak, 1). Thread: owner."""
        self.peak = max(min(value, self.peak * self.rise), self.peak * self.decay, self.floor)
        return min(value / self.peak, 1.0)

    def run(self, values: np.ndarray) -> np.ndarray:
        """Normalise a whole curve in time order.

        Args:
            values: (T,) raw values.
        Returns:
            (T,) normalised values, as T calls would give.
        Thread: owner.
        """
        return np.array([self(float(v)) for v in values], dtype=np.float32)


class AutoRange:
    """Maps a value to 0..1 within the range it has recently covered.

    Two followers track the recent low and high: each jumps out to a new extreme at
    once and creeps back towards the value by 1/e per `release_s`. The span never
    shrinks below `min_span`, so a steady value reads near the middle.

    Args:
        release_s: creep time constant.
        min_span: smallest high - low (same unit as the input).
        dt_s: time between two values.
    Thread: one owner.
    """

    def __init__(self, *, release_s: float, min_span: float, dt_s: float) -> None:
        self.keep = math.exp(-dt_s / release_s)
        self.min_span = min_span
        self.low = math.nan
        self.high = math.nan

    def __call__(self, value: float) -> float:
        """Place one value in the recent range. Returns 0..1. Thread: owner."""
        if math.isnan(self.low):
            self.low = self.high = value
        self.low = min(value, value + (self.low - value) * self.keep)
        self.high = max(value, value + (self.high - value) * self.keep)
        mid = 0.5 * (self.low + self.high)
        half = 0.5 * max(self.high - self.low, self.min_span)
        return min(1.0, max(0.0, (value - mid) / (2 * half) + 0.5))

    def run(self, values: np.ndarray) -> np.ndarray:
        """Place a whole curve in time order: (T,) -> (T,). Thread: owner."""
        return np.array([self(float(v)) for v in values], dtype=np.float32)


@dataclass(frozen=True)
class Filterbanks:
    """Windows and filter matrices for one sample rate and block size.

    Attributes:
        window: (n_fft,) Hann window.
        window_chroma: (n_fft_chroma,) Hann window.
        freqs_hz: (n_fft // 2 + 1,) centre frequency of each rfft bin.
        bands: (n_bands, n_fft // 2 + 1) weights giving each band's mean square
            amplitude from a power spectrum (Parseval, corrected for the window).
        mel: (N_MELS, n_fft // 2 + 1) mel filterbank (librosa, Slaney).
        chroma: (12, n_fft_chroma // 2 + 1) chroma filterbank (librosa, A440).
    """

    window: np.ndarray
    window_chroma: np.ndarray
    freqs_hz: np.ndarray
    bands: np.ndarray
    mel: np.ndarray
    chroma: np.ndarray

    @classmethod
    def build(cls, settings: AnalysisSettings) -> Filterbanks:
        """Make the filterbanks for `settings`. Thread: any."""
        import librosa.filters

        sr, n_fft = settings.sample_rate_hz, settings.n_fft
        window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic, as librosa
        window_chroma = np.hanning(settings.n_fft_chroma + 1)[:-1].astype(np.float32)
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
        # A one-sided power spectrum counts the bins between DC and Nyquist twice.
        weight = np.full(freqs.shape, 2.0)
        weight[0] = weight[-1] = 1.0
        scale = weight / (n_fft**2 * float(np.mean(window.astype(np.float64) ** 2)))
        bands = np.stack(
            [np.where((freqs >= lo) & (freqs < hi), scale, 0.0) for _, lo, hi in BANDS_HZ]
        )
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS)
        chroma = librosa.filters.chroma(sr=sr, n_fft=settings.n_fft_chroma, tuning=0.0)
        return cls(
            window=window,
            window_chroma=window_chroma,
            freqs_hz=freqs.astype(np.float32),
            bands=bands.astype(np.float32),
            mel=mel.astype(np.float32),
            chroma=chroma.astype(np.float32),
        )


def log_mel(mel_power: np.ndarray) -> np.ndarray:
    """Mel power in dB with a fixed floor (librosa's power_to_db, ref 1, no top_db).

    Args:
        mel_power: (N_MELS, ...) mel power.
    Returns:
        Same shape, in dB.
    Thread: any.
    """
    return 10.0 * np.log10(np.maximum(mel_power, MEL_AMIN))


class FluxMeter:
    """Spectral flux: the mean rise in dB over the mel bands since the last frame.

    Bands more than FLUX_RANGE_DB below a slow peak of the loudest band count as
    silence (librosa's top_db, but following the music), so a hit out of digital
    silence rises from that floor, not from -100 dB. The first frame reads 0, as
    librosa's onset_strength pads it.

    Args:
        settings: the analysis settings (agc_release_s, fps).
    Thread: one owner.
    """

    def __init__(self, settings: AnalysisSettings) -> None:
        self.keep_db = 20.0 * math.log10(math.exp(-1.0 / (settings.agc_release_s * settings.fps)))
        self.ref_db = -math.inf
        self.previous: np.ndarray | None = None

    def __call__(self, mel_power: np.ndarray) -> float:
        """Take one frame's mel power (N_MELS,); returns its flux in dB. Thread: owner."""
        level = log_mel(mel_power)  # (N_MELS,)
        self.ref_db = max(float(level.max()), self.ref_db + self.keep_db)
        level = np.maximum(level, self.ref_db - FLUX_RANGE_DB)
        if self.previous is None:
            self.previous = level
            return 0.0
        previous = np.maximum(self.previous, self.ref_db - FLUX_RANGE_DB)
        self.previous = level
        return float(np.mean(np.maximum(level - previous, 0.0)))

    def run(self, mel_power: np.ndarray) -> np.ndarray:
        """The flux of a whole spectrogram: (N_MELS, T) -> (T,). Thread: owner."""
        return np.array([self(mel_power[:, j]) for j in range(mel_power.shape[1])])


def floor_amplitude(settings: AnalysisSettings) -> float:
    """The AutoGain floor for amplitudes (RMS, band amplitude). Thread: any."""
    return 10.0 ** (settings.agc_floor_db / 20.0)


#: Range of the flux below the recent loudest mel band (librosa's top_db is 80
#: over a whole file; 60 suits a window of seconds).
FLUX_RANGE_DB = 60.0
#: The AutoGain floor of the flux, in dB per mel band per block: below it a change
#: of level is too small to count as an onset however quiet the music is.
FLUX_FLOOR_DB = 0.5
#: Smallest span of the centroid's AutoRange, in octaves.
CENTROID_MIN_SPAN_OCT = 1.0


class Normalisers:
    """The AutoGain and AutoRange of every level feature, in one place.

    Args:
        settings: the analysis settings.
    Thread: one owner.
    """

    def __init__(self, settings: AnalysisSettings) -> None:
        dt_s = 1.0 / settings.fps
        floor = floor_amplitude(settings)

        def gain(floor_value: float) -> AutoGain:
            return AutoGain(release_s=settings.agc_release_s, floor=floor_value, dt_s=dt_s)

        self.rms = gain(floor)
        self.bands = [gain(floor) for _ in BANDS_HZ]
        self.flux = gain(FLUX_FLOOR_DB)
        self.centroid = AutoRange(
            release_s=settings.agc_release_s, min_span=CENTROID_MIN_SPAN_OCT, dt_s=dt_s
        )


class OnsetPicker:
    """Causal onset picking on the normalised flux with an adaptive threshold.

    An onset is the first block where the flux exceeds the mean of the previous
    0.1 s by `onset_delta` while rising, at least `onset_min_gap_s` after the last.

    Args:
        settings: the analysis settings.
    Thread: one owner.
    """

    def __init__(self, settings: AnalysisSettings) -> None:
        self.delta = settings.onset_delta
        self.history = np.zeros(max(1, round(0.1 * settings.fps)), dtype=np.float32)
        self.min_gap = max(1, round(settings.onset_min_gap_s * settings.fps))
        self.since = self.min_gap
        self.previous = 0.0
        self.filled = 0

    def __call__(self, flux: float) -> bool:
        """Take one block's normalised flux; True when it is an onset. Thread: owner."""
        threshold = float(self.history[: self.filled].mean()) if self.filled else 0.0
        onset = (
            flux >= threshold + self.delta and flux > self.previous and self.since >= self.min_gap
        )
        self.since = 0 if onset else self.since + 1
        self.previous = flux
        self.history[:-1] = self.history[1:]
        self.history[-1] = flux
        self.filled = min(self.filled + 1, self.history.size)
        return onset


def tempo_lags(settings: AnalysisSettings, window: int) -> tuple[np.ndarray, np.ndarray]:
    """BPM per autocorrelation lag and librosa's log-normal tempo prior.

    Args:
        settings: analysis settings (fps, tempo_prior_bpm).
        window: autocorrelation length in frames.
    Returns:
        (bpm (window,), log prior (window,)); lag 0 and tempi above 320 BPM get
        a prior of -inf.
    Thread: any.
    """
    lags = np.arange(window, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpm = 60.0 * settings.fps / lags
        logprior = -0.5 * (np.log2(bpm) - np.log2(settings.tempo_prior_bpm)) ** 2
    logprior[bpm >= 320.0] = -np.inf
    return bpm, logprior


def best_tempo(ac: np.ndarray, bpm: np.ndarray, logprior: np.ndarray) -> float:
    """The most likely tempo from a normalised onset autocorrelation.

    Picks the lag as librosa.feature.tempo does (log1p(1e6 * ac) + log prior), then
    refines it between lags with a parabola through the autocorrelation.

    Args:
        ac: (W,) autocorrelation, 1 at lag 0.
        bpm, logprior: from `tempo_lags`.
    Returns:
        Tempo in BPM, or 0.0 when the autocorrelation has no peak.
    Thread: any.
    """
    score = np.log1p(1e6 * np.maximum(ac, 0.0)) + logprior
    lag = int(np.argmax(score))
    if not np.isfinite(score[lag]) or lag < 1 or ac[lag] <= 0.0:
        return 0.0
    shift = 0.0
    if 1 < lag < ac.size - 1:
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        curve = a - 2 * b + c
        if curve < 0:
            shift = float(np.clip(0.5 * (a - c) / curve, -0.5, 0.5))
    return float(bpm[1] / (lag + shift))


class TempoTracker:
    """Causal tempo and beat tracking from the onset strength, one block at a time.

    Tempo: the Hann-windowed autocorrelation of the last `tempo_window_s` of flux,
    averaged over `tempo_memory_s`, weighted by librosa's log-normal prior (the same
    estimator as librosa.feature.tempo, refined between lags). Beats: a phase
    oscillator at that tempo, pulled every few blocks towards the alignment where a
    comb of beat times collects the most onset strength.

    Args:
        settings: the analysis settings.
        update_blocks: blocks between two tempo and phase estimates.
    Thread: one owner.
    """

    MIN_HISTORY_S = 3.0
    PHASE_GAIN = 0.25
    COMB_BEATS = 24
    COMB_KEEP = 0.93
    #: The phase follows the comb maximum within this fraction of a beat.
    TRACK_REACH = 0.125
    #: A distant alignment must score this much more ...
    SWITCH = 1.25
    #: ... for this long to move the beat there.
    SWITCH_S = 2.0

    def __init__(self, settings: AnalysisSettings, *, update_blocks: int = 8) -> None:
        self.fps = settings.fps
        self.window = max(8, round(settings.tempo_window_s * self.fps))
        self.history = np.zeros(self.window, dtype=np.float64)
        self.filled = 0
        self.update_blocks = update_blocks
        self.count = 0
        self.keep = math.exp(-update_blocks / (settings.tempo_memory_s * self.fps))
        self.bpm_lags, self.logprior = tempo_lags(settings, self.window)
        self.ac = np.zeros(self.window, dtype=np.float64)
        self.fft_size = 1 << (2 * self.window - 1).bit_length()  # >= 2 * window: no wrap
        self.ac_weight = 0.0
        self.bpm = 0.0
        self.phase = 0.0
        self.since_beat = 0
        self.challenges = 0

    def step(self, flux: float, active: bool) -> bool:
        """Take one block's raw flux; True when a beat falls on this block.

        Args:
            flux: the block's onset strength (raw, not normalised).
            active: whether there is sound; beats stop in silence.
        Thread: owner.
        """
        self.history[:-1] = self.history[1:]
        self.history[-1] = flux
        self.filled = min(self.filled + 1, self.window)
        self.count += 1
        self.since_beat += 1
        if self.count % self.update_blocks == 0 and self.filled >= self.MIN_HISTORY_S * self.fps:
            self._estimate()
        if self.bpm <= 0.0 or not active:
            return False
        period = 60.0 * self.fps / self.bpm
        self.phase += 1.0 / period
        if self.phase >= 1.0:
            self.phase -= math.floor(self.phase)
            if self.since_beat >= 0.5 * period:
                self.since_beat = 0
                return True
        return False

    def _estimate(self) -> None:
        recent = self.history[-self.filled :]
        recent = recent * np.hanning(recent.size)  # (filled,)
        # One FFT length for every estimate: while the history fills, a length per
        # size would cost a new (often slow, non power-of-two) FFT plan each time.
        spectrum = np.fft.rfft(recent, self.fft_size)
        ac = np.fft.irfft(spectrum * np.conj(spectrum), self.fft_size)[: recent.size]
        if ac[0] <= 0.0:
            return
        ac = np.pad(ac / ac[0], (0, self.window - ac.size))
        self.ac = self.keep * self.ac + (1.0 - self.keep) * ac
        self.ac_weight = self.keep * self.ac_weight + (1.0 - self.keep)
        bpm = best_tempo(self.ac / self.ac_weight, self.bpm_lags, self.logprior)
        if bpm <= 0.0:
            return
        self.bpm = bpm
        self._align(60.0 * self.fps / bpm)

    def _align(self, period: float) -> None:
        """Pull the beat phase towards the comb alignment with the most flux.

        The oscillator follows the best alignment near where it already is; it
        jumps to a distant one (the off-beat of a syncopated break often scores
        nearly as well) only after that has won clearly for SWITCH_UPDATES updates.
        """
        beats = min(self.COMB_BEATS, int((self.filled - 1) // period))
        if beats < 2:
            return
        size = math.ceil(period)
        ago = np.arange(size)  # (P,) frames since the candidate last beat
        ticks = np.rint(ago[:, None] + period * np.arange(beats)[None, :]).astype(int)  # (P, B)
        weights = self.COMB_KEEP ** np.arange(beats)  # (B,) recent beats count more
        score = (self.history[self.window - 1 - ticks] * weights).sum(axis=1)  # (P,)
        here = round(self.phase * period)
        reach = max(1, round(period * self.TRACK_REACH))
        near = np.arange(here - reach, here + reach + 1) % size  # (2R+1,)
        local = int(near[np.argmax(score[near])])
        best = int(np.argmax(score))
        self.challenges = self.challenges + 1 if score[best] > self.SWITCH * score[local] else 0
        patience = self.SWITCH_S * self.fps / self.update_blocks
        target = best if self.challenges >= patience else local
        error = (target / period - self.phase + 0.5) % 1.0 - 0.5
        self.phase = (self.phase + self.PHASE_GAIN * error) % 1.0


@dataclass
class BlockFeatures:
    """Everything one block gives, before it is written to the bus.

    Attributes:
        values: signal name -> value for every name in SIGNALS.
        rms_raw: the un-normalised RMS (for tests and meters).
        flux_raw: the un-normalised flux.
    """

    values: dict[str, float]
    rms_raw: float
    flux_raw: float


class BlockAnalyzer:
    """The live analysis: one block of mono samples in, every feature out.

    Keeps the last `n_fft_chroma` samples itself, so each call takes only the new
    block.

    Args:
        settings: the analysis settings (sample rate, block, gains).
        banks: prebuilt filterbanks for these settings (built when None).
    Thread: the audio analysis thread (one owner).
    """

    def __init__(self, settings: AnalysisSettings, banks: Filterbanks | None = None) -> None:
        self.settings = settings
        self.banks = banks or Filterbanks.build(settings)
        self.samples = np.zeros(settings.n_fft_chroma, dtype=np.float32)
        self.norm = Normalisers(settings)
        self.onsets = OnsetPicker(settings)
        self.tempo = TempoTracker(settings)
        self.onset_env = 0.0
        self.onset_keep = math.exp(-1.0 / (settings.onset_decay_s * settings.fps))
        self.flux = FluxMeter(settings)
        self.silent_blocks = 0
        self.centroid_hz = 0.0
        self.chroma = np.zeros(12, dtype=np.float32)
        self.blocks = 0

    def step(self, block: np.ndarray) -> BlockFeatures:
        """Analyse one block.

        Args:
            block: (block,) float32 mono samples, full scale 1.0.
        Returns:
            The block's features.
        Raises:
            ValueError: the block has the wrong length.
        Thread: owner.
        """
        s, banks, norm = self.settings, self.banks, self.norm
        if block.shape != (s.block,):
            raise ValueError(f"expected a block of shape ({s.block},), got {block.shape}")
        self.samples[: -s.block] = self.samples[s.block :]
        self.samples[-s.block :] = block
        self.blocks += 1

        frame = self.samples[-s.n_fft :]  # (n_fft,)
        rms_raw = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
        magnitude = np.abs(np.fft.rfft(frame * banks.window))  # (n_fft // 2 + 1,)
        power = magnitude * magnitude
        band_amp = np.sqrt(banks.bands @ power)  # (n_bands,)
        flux_raw = self.flux(banks.mel @ power)

        active = rms_raw > floor_amplitude(s)
        self.silent_blocks = 0 if active else self.silent_blocks + 1
        total = float(magnitude.sum())
        if active and total > 0.0:
            self.centroid_hz = float(banks.freqs_hz @ magnitude) / total
        chroma_frame = self.samples * banks.window_chroma  # (n_fft_chroma,)
        chroma_power = np.abs(np.fft.rfft(chroma_frame)) ** 2
        chroma = banks.chroma @ chroma_power  # (12,)
        top = float(chroma.max())
        self.chroma = chroma / top if top > 1e-12 else np.zeros(12, dtype=np.float32)

        flux = norm.flux(flux_raw)
        onset = self.onsets(flux)
        self.onset_env *= self.onset_keep
        if onset:
            self.onset_env = max(flux, self.onset_env)
        # Keep beats going through short breaks; stop after 2 s of silence.
        beat = self.tempo.step(flux_raw, active or self.silent_blocks < 2.0 * s.fps)

        values = {
            "audio:rms": norm.rms(rms_raw),
            **{
                f"audio:band/{name}": gain(float(amp))
                for (name, _, _), gain, amp in zip(BANDS_HZ, norm.bands, band_amp)
            },
            "audio:flux": flux,
            "audio:onset": 1.0 if onset else 0.0,
            "audio:onset_env": self.onset_env,
            "audio:beat": 1.0 if beat else 0.0,
            "audio:beat_phase": self.tempo.phase,
            "audio:bpm": self.tempo.bpm,
            "audio:centroid": norm.centroid(math.log2(max(self.centroid_hz, 1.0))),
            "audio:centroid_hz": self.centroid_hz,
            **{f"audio:chroma/{i}": float(v) for i, v in enumerate(self.chroma)},
        }
        return BlockFeatures(values=values, rms_raw=rms_raw, flux_raw=flux_raw)


def decay_envelope(onsets: np.ndarray, heights: np.ndarray, *, keep: float) -> np.ndarray:
    """The onset envelope of a whole curve, as BlockAnalyzer builds it block by block.

    Args:
        onsets: (T,) bool, True on onset frames.
        heights: (T,) the envelope's value at an onset frame.
        keep: the per-frame decay factor, exp(-1 / (onset_decay_s * fps)).
    Returns:
        (T,) float32 envelope.
    Thread: any.
    """
    out = np.zeros(onsets.shape, dtype=np.float32)
    env = 0.0
    for i, (hit, height) in enumerate(zip(onsets, heights)):
        env = max(float(height), env * keep) if hit else env * keep
        out[i] = env
    return out
