"""latentstage: a live performance and installation runtime for neural visuals.

The package is laid out along the one direction of data flow (docs/ARCHITECTURE.md):
inputs -> signals -> mapping -> generators -> render -> outputs.
"""

import os
from pathlib import Path

#: The project's root folder: shows, mappings and shaders live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# librosa compiles with numba on first use (about 30 s); keep the compiled code in a
# cache that outlives the process. Set here, before anything can import numba.
os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
