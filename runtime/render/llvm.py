"""Two copies of LLVM in one process: load Triton's before Mesa's.

Mesa's llvmpipe (the GL driver on machines without a GPU) and Triton (which torch
imports on first use of torch._dynamo: torchvision and open_clip do) each carry
LLVM. Loading Triton's after a GL context exists crashes the process (a segfault in
its static initialisers); loading it first works. So every GL context is made
after this.
"""

from __future__ import annotations

import importlib.util


def load_triton_first() -> None:
    """Import Triton's LLVM before a GL context loads Mesa's (no-op without Triton).

    Thread: main, before the first GL context.
    """
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401  (only its side effect: its LLVM loaded first)
