"""What travels to the workers once: weights (sha256-checked), the show as a
worker reads it, and the code's digest that every process must share."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runtime import PROJECT_ROOT
from runtime.errors import GeneratorError
from runtime.show import Show

if TYPE_CHECKING:
    from runtime.neural.chain import NeuralChain

log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MB blocks. Thread: any."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Shipment:
    """A weights file or a flat folder of them, put in Ray's object store once.

    Attributes:
        source: the path on the driver (the show's `weights`).
        entries: (name inside a folder, or "" for a file; sha256; object ref).
        digest: one sha256 over the entries (the cache folder's name).
    """

    source: str
    entries: tuple[tuple[str, str, Any], ...]
    digest: str

    def materialize(self, ray: Any, cache: Path) -> Path:
        """The shipped file or folder on this machine: from the cache when its
        sha256 matches, otherwise fetched and written there.

        Args:
            ray: the ray module.
            cache: where shipped weights are kept on this machine.
        Returns:
            The local path.
        Raises:
            GeneratorError: a file does not match its sha256 after fetching.
        Thread: a worker's.
        """
        name = Path(self.source).name
        root = cache / self.digest / name
        for inner, sha, ref in self.entries:
            path = root / inner if inner else root
            if path.is_file() and sha256_file(path) == sha:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            partial.write_bytes(ray.get(ref))
            if sha256_file(partial) != sha:
                partial.unlink()
                raise GeneratorError(f"{self.source}: weights arrived damaged (sha256 differs)")
            partial.replace(path)
        return root


def ship(ray: Any, path: Path) -> Shipment:
    """Put a weights file, or each file of a flat folder, into Ray's object store.

    Thread: main.
    """
    files = [("", path)] if path.is_file() else [(p.name, p) for p in sorted(path.iterdir())]
    entries = tuple(
        (inner, sha256_file(p), ray.put(p.read_bytes())) for inner, p in files if p.is_file()
    )
    digest = hashlib.sha256("".join(f"{i}:{s};" for i, s, _ in entries).encode()).hexdigest()
    return Shipment(str(path), entries, digest)


def weights_to_ship(show: Show) -> list[Path]:
    """The weights a show names by path that exist here: the generator's, and each
    neural stage's given as `weights = "PATH"`. Stages named by catalogue model read
    each machine's own model cache. Thread: any."""
    paths = [show.generator.weights] if show.generator.weights is not None else []
    paths += [c.weights for c in show.neural if c.weights is not None and c.model is None]
    return [p for p in paths if p.exists()]


def worker_show(show: Show, local: dict[str, Path]) -> Show:
    """The show as a worker builds it: shipped weights at their local paths, and the
    generator on the worker's own device (the one GPU Ray gave it, else the CPU).

    Thread: any.
    """
    gen = show.generator
    if gen.weights is not None and str(gen.weights) in local:
        gen = dataclasses.replace(gen, weights=local[str(gen.weights)], model=None)
    gen = dataclasses.replace(gen, device="cpu" if gen.device == "cpu" else "auto")
    neural = tuple(
        dataclasses.replace(c, weights=local[str(c.weights)])
        if c.model is None and c.weights is not None and str(c.weights) in local
        else c
        for c in show.neural
    )
    return dataclasses.replace(show, generator=gen, neural=neural)


def code_digest() -> str:
    """A sha256 of latentstage's Python code and torch's version: workers must run
    what the driver runs for their frames to match. Thread: any."""
    digest = hashlib.sha256(torch.__version__.encode())
    package = PROJECT_ROOT / "runtime"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def bypassed(generator_problem: str | None, chain: NeuralChain) -> tuple[str, ...]:
    """What of a show did not load ('generator' and stage names): every process
    must agree, or their frames differ. Thread: any."""
    names = ("generator",) if generator_problem else ()
    return names + tuple(
        s.name for s in chain.stages if any(p.startswith(f"{s.name} ") for p in chain.problems)
    )
