"""Imports point one way: inputs -> bus -> mapping -> generators (+ neural stages,
CLIP) -> compositor.

Reads the import statements of every module (no importing), so a stray import of
torch in an input or of GL in a generator fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from runtime import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "runtime"

# (folder or module, what it must never import)
RULES = [
    (
        "inputs",
        {
            "torch",
            "moderngl",
            "glfw",
            "runtime.generators",
            "runtime.render",
            "runtime.mapping",
            "runtime.player",
            "runtime.loop",
        },
    ),
    ("signals.py", {"torch", "moderngl", "glfw", "runtime.inputs", "runtime.mapping"}),
    (
        "mapping",
        {"torch", "moderngl", "glfw", "runtime.generators", "runtime.render", "runtime.inputs"},
    ),
    (
        "generators",
        {
            "moderngl",
            "glfw",
            "runtime.render",
            "runtime.inputs",
            "runtime.mapping",
            "runtime.player",
            "runtime.loop",
        },
    ),
    (
        "neural",
        {
            "moderngl",
            "glfw",
            "runtime.render",
            "runtime.inputs",
            "runtime.mapping",
            "runtime.clip",
            "runtime.player",
            "runtime.loop",
        },
    ),
    (
        "clip",
        {
            "moderngl",
            "glfw",
            "runtime.render",
            "runtime.inputs",
            "runtime.mapping",
            "runtime.neural.dream",
            "runtime.neural.style",
            "runtime.player",
            "runtime.loop",
        },
    ),
    ("render", {"torch", "runtime.generators", "runtime.inputs", "runtime.player"}),
    ("show.py", {"torch", "moderngl", "glfw"}),
]


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_imports_point_one_way():
    problems = []
    for place, forbidden in RULES:
        target = PACKAGE / place
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        assert files, place
        for path in files:
            for name in imports_of(path):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    problems.append(f"{path.relative_to(PROJECT_ROOT)} imports {name}")
    assert problems == []
