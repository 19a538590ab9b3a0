"""The `[inputs.audio]` table, read strictly: shared by the live input
(runtime.inputs.audio) and the offline analysis (runtime.inputs.audio_offline),
which otherwise know nothing of each other.

    [inputs.audio]
    device = "Scarlett"        # input device: name substring or index (default: the
                               # system's default input)
    file = "music/set.flac"    # play this file through the analysis instead of a device
    loop = false               # file: start again at the end
    block = 512                # samples per analysis block (256, 512, 1024, 2048):
                               # 512 at 48 kHz = 10.7 ms
    sample_rate_hz = 48000     # device rate (default: the device's own; a file uses its own)
    gain_db = 0.0              # trim before analysis (the features have automatic gain)
    agc_release_s = 10.0       # how long the automatic gain remembers a loud passage
    agc_floor_db = -60.0       # below this RMS level (dBFS) levels read 0
    onset_delta = 0.07         # onset sensitivity: smaller finds more onsets
    onset_decay_s = 0.25       # fall time of audio:onset_env
    tempo_prior_bpm = 120.0    # the tempo the beat tracker prefers when several fit
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.config import Table, in_range
from runtime.inputs.audio_features import AnalysisSettings, block_problem

#: A sample beyond this magnitude (after the gain; 120 dB above full scale) is not
#: sound but a broken driver or file: it is analysed as silence. Up to here the
#: analysis only hears a very loud sound; far beyond, its float32 spectra overflow.
MAX_SAMPLE = 1e6
#: File extensions a show may name (anything libsndfile reads works).
AUDIO_FILE_TYPES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class AudioConfig:
    """The `[inputs.audio]` table, checked.

    Attributes:
        device: input device name substring or index; None for the default input.
        file: an audio file to analyse instead of a device (None: live input).
        loop: start the file again at its end.
        block: samples per block.
        sample_rate_hz: requested device rate (None: the device's default).
        gain_db: trim applied before analysis.
        agc_release_s, agc_floor_db, onset_delta, onset_decay_s, tempo_prior_bpm:
            see AnalysisSettings.
    """

    device: str | int | None = None
    file: Path | None = None
    loop: bool = False
    block: int = 512
    sample_rate_hz: float | None = None
    gain_db: float = 0.0
    agc_release_s: float = 10.0
    agc_floor_db: float = -60.0
    onset_delta: float = 0.07
    onset_decay_s: float = 0.25
    tempo_prior_bpm: float = 120.0

    def settings(self, sample_rate_hz: float) -> AnalysisSettings:
        """The analysis settings for a stream at `sample_rate_hz`. Thread: any."""
        return AnalysisSettings(
            sample_rate_hz=sample_rate_hz,
            block=self.block,
            agc_release_s=self.agc_release_s,
            agc_floor_db=self.agc_floor_db,
            onset_delta=self.onset_delta,
            onset_decay_s=self.onset_decay_s,
            tempo_prior_bpm=self.tempo_prior_bpm,
        )


def read_config(table: Table, *, folder: Path) -> AudioConfig:
    """Read `[inputs.audio]` strictly.

    Args:
        table: the table.
        folder: the show's folder; a relative `file` resolves here.
    Returns:
        The checked config.
    Raises:
        ConfigError: an unknown key, a wrong type, a value out of range, a missing
            file, or both `device` and `file`.
    Thread: main.
    """
    device = table.take("device", (str, int), None)
    file_s = table.take("file", str, None)
    config = AudioConfig(
        device=device,
        file=(folder / file_s) if file_s is not None else None,
        loop=table.take("loop", bool, False),
        block=table.take("block", int, 512, check=block_problem),
        sample_rate_hz=table.take("sample_rate_hz", float, None, check=in_range(8000, 192000)),
        gain_db=table.take("gain_db", float, 0.0, check=in_range(-60, 60)),
        agc_release_s=table.take("agc_release_s", float, 10.0, check=in_range(0.5, 600)),
        agc_floor_db=table.take("agc_floor_db", float, -60.0, check=in_range(-120, -10)),
        onset_delta=table.take("onset_delta", float, 0.07, check=in_range(0.0, 1.0)),
        onset_decay_s=table.take("onset_decay_s", float, 0.25, check=in_range(0.01, 10)),
        tempo_prior_bpm=table.take("tempo_prior_bpm", float, 120.0, check=in_range(30, 300)),
    )
    table.finish()
    if config.file is not None:
        if device is not None:
            raise table.error("file", "give 'device' (live input) or 'file', not both")
        if not config.file.is_file():
            raise table.error("file", f"audio file not found: {config.file}")
        if config.file.suffix.lower() not in AUDIO_FILE_TYPES:
            raise table.error(
                "file", f"expected an audio file ({', '.join(AUDIO_FILE_TYPES)}), got {file_s!r}"
            )
    return config
