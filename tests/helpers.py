"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SHOWS = Path(__file__).parent / "shows"


def copy_show(tmp_path: Path, name: str = "tiny") -> Path:
    """Copy a test show and its mapping file into tmp_path (so tests may edit them)."""
    for path in SHOWS.glob(f"{name}*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / f"{name}.toml"


def probe_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames decoded, (width, height)) of a video's first stream; decoding errors
    fail the test."""
    proc = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", str(path),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert proc.stderr == "", proc.stderr
    width, height, frames = (int(x) for x in proc.stdout.strip().split(","))
    return frames, (width, height)
