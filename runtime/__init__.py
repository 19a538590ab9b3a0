"""latentstage: a live performance and installation runtime for neural visuals.

The package is laid out along the one direction of data flow (docs/ARCHITECTURE.md):
inputs -> signals -> mapping -> generators -> render -> outputs.
"""

from pathlib import Path

#: The project's root folder: shows, mappings and shaders live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
