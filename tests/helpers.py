"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import shutil
from pathlib import Path

SHOWS = Path(__file__).parent / "shows"


def copy_show(tmp_path: Path, name: str = "tiny") -> Path:
    """Copy a test show and its mapping file into tmp_path (so tests may edit them)."""
    for path in SHOWS.glob(f"{name}*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / f"{name}.toml"
