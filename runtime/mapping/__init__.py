"""Signals to targets: mapping files (spec.py), built-in sources (sources.py) and the
per-frame engine (engine.py)."""

from runtime.mapping.engine import MappingEngine
from runtime.mapping.spec import MappingSet, MapSpec, Target, read_mappings

__all__ = ["MapSpec", "MappingEngine", "MappingSet", "Target", "read_mappings"]
