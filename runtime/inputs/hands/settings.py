"""The `[inputs.hands]` table, read strictly (runtime/inputs/hands/__init__.py
lists its keys)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config import Table, in_range
from runtime.inputs.hands.model import default_task_path

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class HandsSettings:
    """The `[inputs.hands]` table, read strictly (module docstring for each key)."""

    camera: int | str | None
    file: Path | None
    loop: bool
    max_hands: int
    model: Path
    mirror: bool
    min_confidence: float
    min_cutoff_hz: float
    beta: float
    d_cutoff_hz: float
    hold_s: float
    depth_range: tuple[float, float]
    camera_size: tuple[int, int] | None

    @property
    def source_name(self) -> str:
        """'camera 0' or the file name, for messages. Thread: any."""
        return f"camera {self.camera}" if self.file is None else self.file.name

    @property
    def is_recording(self) -> bool:
        """True when the source is a landmark recording (a take folder). Thread: any."""
        return self.file is not None and self.file.is_dir()


def read_settings(table: Table, folder: Path) -> HandsSettings:
    """Read `[inputs.hands]` strictly.

    Args:
        table: the table.
        folder: the show's folder; relative paths resolve here.
    Returns:
        The settings.
    Raises:
        ConfigError: an unknown key, a wrong type or range, both `camera` and `file`,
            or a `file` that does not exist or is neither a video nor a recording.
    Thread: main.
    """
    if "camera" in table.data and "file" in table.data:
        raise table.error("file", "give either 'camera' or 'file', not both")
    camera = table.take("camera", (int, str), None, check=_camera_check)
    file_s = table.take("file", str, None)
    file = None
    if file_s is not None:
        file = folder / file_s
        if not file.is_dir() and file.suffix.lower() not in VIDEO_SUFFIXES:
            raise table.error(
                "file",
                f"expected a video ({', '.join(VIDEO_SUFFIXES)}) or a landmark recording "
                f"(a take folder, `run_show.py hands record`), got {file_s!r}",
            )
        if not file.exists():
            raise table.error("file", f"file not found: {file}")
    elif camera is None:
        camera = 0
    model_s = table.take("model", str, None)
    settings = HandsSettings(
        camera=camera,
        file=file,
        loop=table.take("loop", bool, True),
        max_hands=table.take("max_hands", int, 2, check=in_range(1, 4)),
        model=folder / model_s if model_s else default_task_path(),
        mirror=table.take("mirror", bool, True),
        min_confidence=table.take("min_confidence", float, 0.5, check=in_range(0.0, 1.0)),
        min_cutoff_hz=table.take("min_cutoff_hz", float, 1.0, check=_positive),
        beta=table.take("beta", float, 10.0, check=in_range(0.0, math.inf)),
        d_cutoff_hz=table.take("d_cutoff_hz", float, 1.0, check=_positive),
        hold_s=table.take("hold_s", float, 0.2, check=in_range(0.0, 60.0)),
        depth_range=_pair(table, "depth_range", (0.05, 0.4)),
        camera_size=_camera_size(table),
    )
    table.finish()
    return settings


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"expected a number above 0, got {value!r}"


def _camera_check(value: Any) -> str | None:
    if isinstance(value, int) and value < 0:
        return f"expected a camera index 0 or more, or a device path; got {value!r}"
    return None


def _pair(table: Table, key: str, default: tuple[float, float]) -> tuple[float, float]:
    value = table.take(key, list, list(default))
    if (
        len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] < value[1]
    ):
        raise table.error(key, f"expected [lo, hi] with 0 <= lo < hi, got {value!r}")
    return (float(value[0]), float(value[1]))


def _camera_size(table: Table) -> tuple[int, int] | None:
    value = table.take("camera_size", list, None)
    if value is None:
        return None
    if len(value) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 8192 for v in value
    ):
        raise table.error("camera_size", f"expected [width, height] in px, got {value!r}")
    return (value[0], value[1])
