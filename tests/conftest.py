"""Shared test fixtures: a headless GL context, the upstream reference checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime import PROJECT_ROOT

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread per op: the tests' networks are tiny, and on a 2-core machine
    torch's pool spinning against the show's other threads made a 20 ms step take a
    second."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def gl_ctx():
    """A standalone EGL OpenGL 3.3+ context (Mesa llvmpipe where there is no GPU)."""
    import moderngl

    from runtime.render.llvm import load_triton_first

    load_triton_first()
    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as exc:
        pytest.fail(f"no headless EGL context: {exc}")
    yield ctx
    ctx.release()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The upstream-made reference checkpoints (../shared/fixtures, or
    $LATENTSTAGE_FIXTURES)."""
    return Path(os.environ.get("LATENTSTAGE_FIXTURES", PROJECT_ROOT.parent / "shared" / "fixtures"))


def need_fixture(fixtures_dir: Path, relative: str) -> Path:
    """The fixture file, or skip the test with a reason naming the missing file."""
    path = fixtures_dir / relative
    if not path.exists():
        pytest.skip(f"reference fixture missing: {path}")
    return path
