"""Headless GL: an EGL standalone context (Mesa llvmpipe where there is no GPU)."""

from __future__ import annotations

import moderngl

from runtime.errors import OutputError
from runtime.render.llvm import load_triton_first


def headless_context() -> moderngl.Context:
    """A standalone GL 3.3+ context that needs no display.

    Raises:
        OutputError: EGL is not available (install libegl1 and Mesa's drivers).
    Thread: the thread that will use it.
    """
    load_triton_first()
    try:
        return moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as exc:  # moderngl/glcontext raise bare Exceptions
        raise OutputError(
            f"no headless OpenGL (EGL) context: {exc}; install libegl1 and "
            "libgl1-mesa-dri (the install script does)"
        ) from None
