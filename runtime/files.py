"""Files written whole: a reader (a hot reload, a resumed render, the next start)
sees the old file or the new one, never half of either; and the stamp a hot reload
compares to notice that a file changed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: str | bytes) -> None:
    """Write a file all at once: into a temporary file beside it, renamed over it.

    Args:
        path: the file (its folder is created when absent).
        data: the whole new content (text is written as UTF-8).
    Raises:
        OSError: it cannot be written (the old file stays as it was).
    Thread: any.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stamp(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size) of a file, or None when it cannot be read:
    what hot reloads compare, one stat a file. Thread: any."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
