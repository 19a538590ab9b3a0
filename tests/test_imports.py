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


def imports_of(path: Path, *, for_annotations: bool = True) -> set[str]:
    """The modules a file imports, anywhere in it; without `for_annotations`, leaving
    out those under `if TYPE_CHECKING:` (for annotations only, never run)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if not for_annotations:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_two_modules_import_each_other():
    """No import cycles, whether at the top or inside a function (imports for
    annotations only aside): each module depends on the ones below it (audio.py and
    audio_offline.py once imported each other)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {m for m in imports_of(path, for_annotations=False) if m in modules and m != name}
        for name, path in modules.items()
    }
    cycles = []
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append(" -> ".join([*trail[trail.index(name) :], name]))
            return
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []
