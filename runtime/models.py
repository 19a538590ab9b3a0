"""The model catalogue and cache: well-known checkpoints by name, pulled with a sha256 check.

The catalogue (models/catalogue.toml) names public checkpoints with their download
address, checksum and licence. `run_show.py models pull NAME` downloads one into the
cache (~/.cache/latentstage/models/NAME/, or $LATENTSTAGE_MODELS/NAME/): each file
arrives as `FILE.part`, is hashed as it streams, and is renamed into place only when
its sha256 matches, so the cache never holds a partial or wrong file. An interrupted
download resumes from its `.part` file (HTTP Range), or restarts when the server
cannot resume. With no network the command says which file to fetch from where and
where to put it. A show names a cached model with `model = "NAME"`.

This module loads no model code and imports no torch: the show loader uses it.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from runtime import PROJECT_ROOT
from runtime.config import Table, load_toml, suggest
from runtime.errors import GeneratorError

CATALOGUE_PATH = PROJECT_ROOT / "models" / "catalogue.toml"
CACHE_ENV = "LATENTSTAGE_MODELS"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0
_HEX = frozenset("0123456789abcdef")
# torchvision (and torch.hub) name files NAME-HASH.pth, HASH the first hex digits of
# the file's sha256.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


class ModelError(GeneratorError):
    """A model is not in the catalogue or the cache, or cannot be downloaded or verified.

    A GeneratorError, so a show whose model is missing plays the default generator.
    """


class OfflineError(ModelError):
    """The download server cannot be reached (no network, no name resolution)."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model's cache folder.

    Attributes:
        name: the file name in the folder.
        url: where to download it (None for a bundled file).
        sha256: its expected sha256, lower-case hex; None when not verified.
        size_mb: approximate size, for display; None when unknown.
        bundled: a file shipped in the project's models/ folder, copied instead.
    """

    name: str
    url: str | None = None
    sha256: str | None = None
    size_mb: float | None = None
    bundled: Path | None = None

    @property
    def sha256_prefix(self) -> str | None:
        """The leading sha256 digits the download's file name carries (torchvision's
        `googlenet-1378be20.pth`), when no full sha256 is pinned. Thread: any."""
        if self.sha256 is not None or self.url is None:
            return None
        match = _HASH_IN_NAME.search(self.url.rsplit("/", 1)[-1])
        return match.group(1) if match else None


@dataclass(frozen=True)
class Model:
    """One catalogue entry.

    Attributes:
        name: the catalogue name (what `model = "..."` and `models pull` take).
        kind: the generator or neural stage kind that plays it ("stylegan",
            "biggan", "dream", "style"), or "clip".
        licence: its licence, in short.
        note: what it makes.
        files: the files of its cache folder.
    """

    name: str
    kind: str
    licence: str
    note: str
    files: tuple[ModelFile, ...]

    def folder(self, cache: Path | None = None) -> Path:
        """Its folder in the cache. Thread: any."""
        return (cache or cache_dir()) / self.name

    def weights_path(self, cache: Path | None = None) -> Path:
        """What a show's `weights` becomes: the file of a one-file model, else the
        folder. Thread: any."""
        folder = self.folder(cache)
        return folder / self.files[0].name if len(self.files) == 1 else folder

    def missing(self, cache: Path | None = None) -> list[ModelFile]:
        """Its files not in the cache. Thread: any."""
        folder = self.folder(cache)
        return [f for f in self.files if not (folder / f.name).is_file()]


def cache_dir() -> Path:
    """The model cache, for pulled weights and built models (the hand tracker's):
    $LATENTSTAGE_MODELS, else $XDG_CACHE_HOME/latentstage/models, else
    ~/.cache/latentstage/models.

    Thread: any.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "latentstage" / "models"


def load_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, Model]:
    """Read the catalogue.

    Args:
        path: the catalogue TOML.
    Returns:
        Models by name, in file order.
    Raises:
        ConfigError: a malformed entry, naming the file, line and key.
    Thread: any.
    """
    data, text = load_toml(path)
    top = Table(data, file=path, text=text, name="")
    models: dict[str, Model] = {}
    for name in list(data):
        t = top.take_table(name)
        kind = t.take("kind", str)
        licence = t.take("licence", str)
        note = t.take("note", str, "")
        entries = t.take("files", list)
        t.finish()
        if not entries:
            raise t.error("files", "expected at least one file")
        files = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise t.error("files", "expected inline tables { name = ..., url = ... }")
            f = Table(entry, file=path, text=text, name=f"{name} files #{i + 1}", header=name)
            files.append(_file(f, path.parent))
        models[name] = Model(name, kind, licence, note, tuple(files))
    return models


def _file(t: Table, base: Path) -> ModelFile:
    name = t.take(
        "name", str, check=lambda v: None if v and "/" not in v else "expected a file name"
    )
    bundled = t.take("bundled", str, None)
    if bundled is not None:
        t.finish()
        path = base / bundled
        if not path.is_file():
            raise t.error("bundled", f"file not found: {path}")
        return ModelFile(name, bundled=path)
    url = t.take("url", str)
    sha256 = t.take("sha256", str, check=_sha256_or_empty)
    size_mb = t.take("size_mb", float, None)
    t.finish()
    return ModelFile(name, url=url, sha256=sha256.lower() or None, size_mb=size_mb)


def _sha256_or_empty(value: str) -> str | None:
    if value == "" or (len(value) == 64 and set(value.lower()) <= _HEX):
        return None
    return 'expected 64 hex digits, or "" when not verified'


def lookup(name: str, catalogue: dict[str, Model] | None = None) -> Model:
    """The catalogue entry called `name`.

    Raises:
        ModelError: no such entry (with the nearest name and the list command).
    Thread: any.
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    if name not in catalogue:
        raise ModelError(
            f"no model '{name}' in the catalogue{suggest(name, catalogue)}; "
            "`run_show.py models list` shows them"
        )
    return catalogue[name]


def require_cached(name: str, cache: Path | None = None) -> Path:
    """The weights path of a catalogue model that must already be in the cache.

    Returns:
        The path to give the generator (see `Model.weights_path`).
    Raises:
        ModelError: not in the catalogue, or not (fully) cached: the message gives
            the pull command and where each missing file goes.
    Thread: any.
    """
    model = lookup(name)
    missing = model.missing(cache)
    if missing:
        raise ModelError(
            f"model '{name}' is not in the cache ({model.folder(cache)}): run "
            f"`run_show.py models pull {name}` on a connected machine, or "
            + "; ".join(_placement(model, f, cache) for f in missing)
        )
    return model.weights_path(cache)


def _placement(model: Model, file: ModelFile, cache: Path | None) -> str:
    where = model.folder(cache) / file.name
    if file.bundled is not None:
        return f"copy {file.bundled} to {where}"
    if file.sha256:
        check = f"sha256 {file.sha256}"
    elif file.sha256_prefix:
        check = f"sha256 starting {file.sha256_prefix}"
    else:
        check = "sha256 not verified by the catalogue"
    return f"download {file.url} to {where} ({check})"


def sha256_of(path: Path) -> str:
    """The sha256 of a file, lower-case hex. Thread: any."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    progress: bool = True,
    timeout_s: float = TIMEOUT_S,
) -> str:
    """Download `url` to `dest` through `dest.part`, resuming a previous part.

    The part file is renamed to `dest` only when the whole body arrived and, when
    `sha256` is given, its checksum matches; a mismatch deletes the part file.

    Args:
        url: the address (http or https).
        dest: the final path; its folder is created.
        sha256: the expected checksum (lower-case hex), or None to accept any.
        progress: show a tqdm progress bar on stderr.
        timeout_s: socket timeout per read.
    Returns:
        The file's sha256.
    Raises:
        OfflineError: the server cannot be reached.
        ModelError: an HTTP error, an interrupted transfer (the part file stays for
            a resume) or a checksum mismatch (nothing is kept).
    Thread: any (one download per file at a time).
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "latentstage"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part is stale (longer than the file)
            part.unlink()
            return download(url, dest, sha256=sha256, progress=progress, timeout_s=timeout_s)
        raise ModelError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"{url}: cannot connect ({reason})") from None

    digest = hashlib.sha256()
    with response:
        if offset and response.status == 206:
            with open(part, "rb") as f:  # the checksum covers the part already here
                while chunk := f.read(CHUNK_BYTES):
                    digest.update(chunk)
            mode = "ab"
        else:  # a fresh start, or a server that cannot resume: restart from zero
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        done = offset
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise ModelError(_interrupted(url, part, done, total, exc)) from None
    if total is not None and done != total:
        raise ModelError(_interrupted(url, part, done, total, "connection closed"))
    got = digest.hexdigest()
    if sha256 is not None and got != sha256:
        part.unlink()
        raise ModelError(
            f"{url}: sha256 mismatch: got {got}, expected {sha256}; the download was "
            "deleted and nothing was kept in the cache"
        )
    os.replace(part, dest)
    return got


def _interrupted(url: str, part: Path, done: int, total: int | None, why: object) -> str:
    of = f" of {total}" if total is not None else ""
    return (
        f"{url}: download interrupted at {done}{of} bytes ({why}); the part is kept "
        f"in {part}: run the same command again to resume"
    )


def pull(
    name: str,
    *,
    sha256: str | None = None,
    accept_unverified: bool = False,
    progress: bool = True,
    cache: Path | None = None,
    catalogue: dict[str, Model] | None = None,
    out: TextIO | None = None,
) -> Path:
    """Put a catalogue model into the cache.

    Files already cached are checked against their sha256 and fetched again when
    they differ.

    Args:
        name: the catalogue name.
        sha256: the expected checksum of the model's downloaded file, for entries
            the catalogue could not verify (or to override a pinned one).
        accept_unverified: keep a file that has no expected checksum (its sha256 is
            reported so it can be pinned).
        progress: show progress bars.
        cache: the cache folder (default: `cache_dir()`).
        catalogue: the models (default: the project's catalogue).
        out: where to write what was done, one line per file (None: nowhere).
    Returns:
        The weights path for a show.
    Raises:
        ModelError: unknown name; a file with no checksum and neither `sha256` nor
            `accept_unverified`; no network (the message says which file to place
            where); a download failure or a checksum mismatch.
    Thread: main (CLI).
    """
    model = lookup(name, catalogue)
    remote = [f for f in model.files if f.url is not None]
    if sha256 is not None:
        sha256 = sha256.lower()
        if _sha256_or_empty(sha256) or not sha256:
            raise ModelError(f"--sha256 {sha256}: expected 64 hex digits")
        if len(remote) != 1:
            raise ModelError(f"model '{name}' has {len(remote)} downloads: --sha256 is ambiguous")
    folder = model.folder(cache)
    # Downloads first, bundled copies after: a failed pull leaves the folder as it was.
    for file in sorted(model.files, key=lambda f: f.bundled is not None):
        dest = folder / file.name
        if file.bundled is not None:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file.bundled, dest)
            _say(out, f"{dest}: copied from {file.bundled}")
            continue
        expected = sha256 or file.sha256
        prefix = None if sha256 else file.sha256_prefix
        if dest.is_file():
            got = sha256_of(dest)
            if got == expected or (expected is None and got.startswith(prefix or "")):
                _say(out, f"{dest}: already cached (sha256 {got})")
                continue
            _say(out, f"{dest}: sha256 {got} differs from {expected or prefix}: fetching again")
        if expected is None and prefix is None and not accept_unverified:
            raise ModelError(
                f"model '{name}': the catalogue has no verified sha256 for {file.url}; pass "
                "--sha256 HEX from a source you trust, or --accept-unverified to keep "
                "whatever arrives (its sha256 is printed so you can pin it)"
            )
        try:
            got = download(file.url, dest, sha256=expected, progress=progress)
        except OfflineError as exc:
            raise OfflineError(
                f"{exc}. No network? On a connected machine, "
                + "; ".join(_placement(model, f, cache) for f in model.missing(cache))
                + f"; or run `run_show.py models pull {name}` again when online"
            ) from None
        if expected is None and prefix is not None and not got.startswith(prefix):
            dest.unlink()
            raise ModelError(
                f"{file.url}: sha256 {got} does not start with {prefix}, the digits its "
                "file name carries; the download was deleted and nothing was kept"
            )
        if expected:
            note = "verified"
        elif prefix:
            note = f"its first {len(prefix)} hex digits match the file name"
        else:
            note = "NOT verified: pin it with --sha256 next time"
        _say(out, f"{dest}: downloaded, sha256 {got} ({note})")
    return model.weights_path(cache)


def _say(out: TextIO | None, line: str) -> None:
    if out is not None:
        out.write(line + "\n")


def list_models(
    *, cache: Path | None = None, catalogue: dict[str, Model] | None = None
) -> list[str]:
    """One line per catalogue model: name, kind, size, cached or not, licence.

    Thread: any.
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    lines = []
    for model in catalogue.values():
        sizes = [f.size_mb for f in model.files if f.url is not None]
        size = f"{sum(sizes):.0f} MB" if sizes and None not in sizes else "? MB"
        state = "cached" if not model.missing(cache) else "-"
        remote = [f for f in model.files if f.url is not None]
        if any(f.sha256 is None and f.sha256_prefix is None for f in remote):
            check = "sha256 not verified"
        elif any(f.sha256 is None for f in remote):
            check = "sha256 prefix from the file name checked"
        else:
            check = "sha256 pinned"
        lines.append(
            f"{model.name:30} {model.kind:9} {size:>7}  {state:6}  {model.note} "
            f"[{model.licence}; {check}]"
        )
    return lines


def run_command(args: argparse.Namespace, out: TextIO) -> int:
    """`run_show.py models list | pull NAME`: the CLI's models command.

    Returns:
        The exit status.
    Raises:
        ModelError: see `pull`.
    Thread: main.
    """
    if args.models_command == "list":
        out.write(f"model cache: {cache_dir()} (set ${CACHE_ENV} to move it)\n")
        for line in list_models():
            out.write(line + "\n")
        return 0
    path = pull(
        args.name,
        sha256=args.sha256,
        accept_unverified=args.accept_unverified,
        out=out,
    )
    out.write(f'ready: {path}\nin a show: [generator] model = "{args.name}"\n')
    return 0
