"""Write rendered frames: an mp4 (h264 through imageio-ffmpeg's own ffmpeg) or a
folder of numbered PNGs. `ffmpeg_exe` is that ffmpeg for other writers (the live
recording, runtime/render/live_record.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from runtime.errors import OutputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


def ffmpeg_exe() -> str:
    """The ffmpeg binary every writer uses: imageio-ffmpeg's own (h264 and AAC inside),
    else one named by IMAGEIO_FFMPEG_EXE or on PATH.

    Raises:
        OutputError: there is none.
    Thread: any.
    """
    import imageio_ffmpeg

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise OutputError(f"no ffmpeg to write video with ({exc})") from None


class Recorder(Protocol):
    """Takes frames in order."""

    def write(self, frame: np.ndarray) -> None:
        """Write one (H, W, 3) uint8 frame. Thread: main."""
        ...

    def close(self) -> None:
        """Finish the file(s). Thread: main."""
        ...


class PngRecorder:
    """frame_00000.png, frame_00001.png, ... in a folder (made if missing)."""

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot make the output folder ({exc.strerror})") from None
        self.folder = folder
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        """Write the next PNG. Thread: main."""
        # Fast compression: a render is limited by the generator, not by file size.
        Image.fromarray(frame).save(self.folder / f"frame_{self.count:05d}.png", compress_level=1)
        self.count += 1

    def close(self) -> None:
        """Nothing to finish. Thread: main."""


class VideoRecorder:
    """An h264 mp4 (yuv420p, plays everywhere), optionally muxed with an audio file."""

    def __init__(
        self, path: Path, size_px: tuple[int, int], fps: float, audio: Path | None = None
    ) -> None:
        import imageio_ffmpeg

        if not path.parent.exists():
            raise OutputError(f"{path}: the folder {path.parent} does not exist")
        self.path = path
        self._writer = imageio_ffmpeg.write_frames(
            str(path),
            size_px,
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=8,
            macro_block_size=2,
            audio_path=str(audio) if audio else None,
            output_params=["-shortest"] if audio else None,
            ffmpeg_log_level="error",
        )
        self._writer.send(None)

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame. Thread: main."""
        self._writer.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        """Finish the file. Thread: main."""
        self._writer.close()


def open_recorder(
    out: Path, size_px: tuple[int, int], fps: float, audio: Path | None = None
) -> Recorder:
    """A recorder for `out`: a video file by suffix (.mp4, .mov, .mkv), else a PNG
    folder.

    Raises:
        OutputError: the place cannot be written.
    Thread: main.
    """
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return VideoRecorder(out, size_px, fps, audio)
    return PngRecorder(out)
