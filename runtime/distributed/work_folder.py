"""Finished frames on disk beside the output (`OUT.work/`), with a manifest of
what they came from, so that `--resume` continues a render whose driver died."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.distributed.shipping import Shipment, code_digest, sha256_file
from runtime.errors import DistributedError
from runtime.files import replace_file
from runtime.generators.worker import FrameResult
from runtime.neural.chain import ChainState
from runtime.show import Show

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WORK_SUFFIX = ".work"


def work_folder(out: Path) -> Path:
    """Where a render of `out` keeps its finished frames: `OUT.work` beside it.

    Thread: any.
    """
    return out.parent / f"{out.name}{WORK_SUFFIX}"


def fingerprint(show: Show, frames: int, shipped: Sequence[Shipment]) -> dict[str, Any]:
    """What a render's generated frames depend on: a resume must match all of it.

    Args:
        show: the show.
        frames: the render's length.
        shipped: the weights shipped (their sha256 stand for them).
    Returns:
        A JSON-able dict: the code, the show file, its mapping files, the files its
        inputs read (an audio file ...), the weights, the frame count, fps and size.
    Thread: main.
    """

    def files_sha(paths: Sequence[Path]) -> str:
        digest = hashlib.sha256()
        for path in paths:
            digest.update(str(path).encode())
            digest.update(sha256_file(path).encode())
        return digest.hexdigest()

    return {
        "code": code_digest(),
        "show file": files_sha([show.path]),
        "mapping files": files_sha(list(show.mapping_paths)),
        "input files": files_sha(_input_files(show)),
        "weights": sorted(s.digest for s in shipped),
        "frames": frames,
        "fps": show.output.fps,
        "generator size": list(show.generator.size_px),
    }


def _input_files(show: Show) -> list[Path]:
    """Files the show's inputs name (an audio file, a recording), found by value."""
    found = []
    for table in show.inputs.values():
        for value in table.data.values():
            if isinstance(value, str) and (show.folder / value).is_file():
                found.append(show.folder / value)
    return sorted(found)


class WorkFolder:
    """Finished generated frames, one file per frame, and what they came from.

    `frames/000123.npy` is frame 123 as (H, W, 3) uint8; `frames/000123.err` a frame
    the generator failed on (its message); `state.npz` a lane's chain state after
    its last frame on disk. Files are written whole and renamed into place, so a
    driver killed mid-write leaves no torn frame.

    Args:
        path: the folder.
    Thread: main.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames_dir = path / "frames"

    @classmethod
    def open(cls, out: Path, expect: dict[str, Any], *, resume: bool) -> WorkFolder:
        """The work folder for a render of `out`, made or checked.

        Args:
            out: the render's output.
            expect: the render's `fingerprint`.
            resume: continue an earlier render's folder.
        Raises:
            DistributedError: a folder is there without `resume`, or it holds frames
                of a different render (naming what differs).
        Thread: main.
        """
        work = cls(work_folder(out))
        manifest = work.path / MANIFEST
        if manifest.exists():
            if not resume:
                raise DistributedError(
                    f"{work.path} holds the frames of an unfinished render: add --resume "
                    "to continue it, or delete the folder to start over"
                )
            found = json.loads(manifest.read_text())
            for key, value in expect.items():
                if found.get(key) != value:
                    raise DistributedError(
                        f"cannot resume: {work.path} was rendered with different {key} "
                        f"({found.get(key)} now {value}); delete it to start over"
                    )
            return work
        if resume:
            log.info("--resume: %s does not exist, rendering from the start", work.path)
        work.frames_dir.mkdir(parents=True, exist_ok=True)
        replace_file(manifest, json.dumps(expect, indent=1).encode())
        return work

    def finished(self) -> set[int]:
        """The frames on disk. Thread: main."""
        return {int(p.stem) for p in self.frames_dir.iterdir() if p.suffix in (".npy", ".err")}

    def save(self, result: FrameResult) -> None:
        """Keep a generated frame (or the generator's error on it). Thread: main."""
        stem = self.frames_dir / f"{result.frame:06d}"
        if result.image is None:
            replace_file(stem.with_suffix(".err"), (result.error or "").encode())
        else:
            replace_file(stem.with_suffix(".npy"), _npy_bytes(result.image))

    def load(self, frame: int) -> FrameResult:
        """A frame from disk as the generator gave it. Thread: main."""
        stem = self.frames_dir / f"{frame:06d}"
        if stem.with_suffix(".err").exists():
            return FrameResult(frame, None, 0.0, stem.with_suffix(".err").read_text())
        return FrameResult(frame, np.load(stem.with_suffix(".npy")), 0.0)

    def save_state(self, after: int, state: ChainState) -> None:
        """Keep a lane's chain state after frame `after`. Thread: main."""
        arrays: dict[str, np.ndarray] = {
            "after": np.array(after),
            "previous_t_s": np.array(state.previous_t_s, dtype=np.float64),
        }
        if state.previous is not None:
            arrays["previous"] = state.previous
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        replace_file(self.path / "state.npz", buffer.getvalue())

    def load_state(self) -> tuple[int, ChainState]:
        """A lane's last kept state: (the frame it follows, the state); (-1, empty)
        when none was kept. Thread: main."""
        path = self.path / "state.npz"
        if not path.exists():
            return -1, ChainState()
        with np.load(path) as saved:
            previous = saved.get("previous")
            return int(saved["after"]), ChainState(previous, float(saved["previous_t_s"]))

    def remove(self) -> None:
        """Delete the folder (the render is complete). Thread: main."""
        shutil.rmtree(self.path, ignore_errors=True)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
