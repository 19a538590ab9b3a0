"""Strict TOML tables: typed reads that name the file, line and key on every mistake.

Shows and mapping files are read through `Table`, so every unknown key is an error
and every type mistake says what was expected. `tomllib` gives no positions for
values, so `locate` finds a key's line in the source text for the message.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError

_REQUIRED = object()


def load_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Read a TOML file.

    Args:
        path: the file.
    Returns:
        (data, text): the parsed tables and the raw text (for line lookups).
    Raises:
        ConfigError: the file is missing or is not valid TOML (with its line).
    Thread: any.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def locate(text: str, header: str | None, key: str | None, index: int = 0) -> int | None:
    """Best-effort line number (1-based) of `key` inside table `header`.

    Args:
        text: the TOML source.
        header: a table header as written, e.g. "generator" or "[map]" for the
            `index`-th `[[map]]`; None for the top level.
        key: a key inside that table, or None for the header line itself.
        index: which occurrence of an array-of-tables header.
    Returns:
        The line number, or None when it cannot be found.
    Thread: any.
    """
    lines = text.splitlines()
    start = 0
    if header is not None:
        pattern = re.compile(r"^\s*\[\s*" + re.escape(header) + r"\s*\]\s*(#.*)?$")
        hits = [i for i, line in enumerate(lines) if pattern.match(line)]
        if len(hits) <= index:
            return None
        start = hits[index]
        if key is None:
            return start + 1
    if key is None:
        return None
    key_re = re.compile(r'^\s*("?)' + re.escape(key) + r"\1\s*=")
    for i in range(start + (header is not None), len(lines)):
        if header is not None and i > start and re.match(r"^\s*\[", lines[i]):
            break
        if key_re.match(lines[i]):
            return i + 1
    return None


def suggest(word: str, options: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close.

    Thread: any.
    """
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def in_range(lo: float, hi: float) -> Callable[[Any], str | None]:
    """A `Table.take` check: the value lies in lo..hi (both included).

    Thread: any.
    """

    def check(value: Any) -> str | None:
        return None if lo <= value <= hi else f"expected {lo}..{hi}, got {value!r}"

    return check


class Table:
    """One TOML table read strictly: each key is taken once, leftovers are errors.

    Args:
        data: the parsed table.
        file: the file it came from.
        text: the file's text, for line numbers.
        name: the table's name as a user writes it ("generator", "map #3").
        header: the header to search for lines (see `locate`), None for the top level.
        index: the occurrence of an array-of-tables header.
        known: keys read elsewhere that messages should still list and suggest.
    Thread: any (one table per thread).
    """

    def __init__(
        self,
        data: dict[str, Any],
        *,
        file: Path,
        text: str,
        name: str,
        header: str | None = None,
        index: int = 0,
        known: Iterable[str] = (),
    ) -> None:
        self.data = data
        self.file = file
        self.text = text
        self.name = name
        self.header = header
        self.index = index
        self._known: set[str] = set(known)

    def where(self, key: str | None = None) -> str:
        """'file:line: [name] key' for messages. Thread: any."""
        line = locate(self.text, self.header, key, self.index)
        at = f"{self.file}:{line}" if line else f"{self.file}"
        place = f"[{self.name}]" if self.name else "top level"
        return f"{at}: {place}" + (f" '{key}'" if key else "")

    def error(self, key: str | None, message: str) -> ConfigError:
        """A ConfigError located at `key`. Thread: any."""
        return ConfigError(f"{self.where(key)}: {message}")

    def take(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = _REQUIRED,
        *,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """Read `key` as `kind`, or `default` when absent.

        Args:
            key: the key.
            kind: expected type(s); an int is accepted where float is expected,
                a bool never counts as a number.
            default: value when absent; leave out to make the key required.
            check: returns an error text for a bad value, or None.
        Returns:
            The value (ints widened to float where float was asked).
        Raises:
            ConfigError: missing, wrong type, or failing `check`.
        Thread: any.
        """
        self._known.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise self.error(None, f"missing required key '{key}'")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        is_bool = isinstance(value, bool)
        if not isinstance(value, kinds) or (is_bool and bool not in kinds):
            expected = " or ".join(_type_name(k) for k in kinds)
            raise self.error(key, f"expected {expected}, got {value!r}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(key, problem)
        return value

    def take_table(self, key: str, *, header: str | None = None) -> Table:
        """A sub-table (an empty one when absent). Thread: any."""
        value = self.take(key, dict, {})
        sub_header = header if header is not None else key
        return Table(value, file=self.file, text=self.text, name=sub_header, header=sub_header)

    def rest(self) -> dict[str, Any]:
        """The keys not yet taken, marking them known. Thread: any."""
        left = {k: v for k, v in self.data.items() if k not in self._known}
        self._known.update(left)
        return left

    def finish(self) -> None:
        """Raise for the first key that was never taken.

        Raises:
            ConfigError: naming the unknown key and the keys this table knows.
        Thread: any.
        """
        for key in self.data:
            if key not in self._known:
                known = ", ".join(sorted(self._known))
                raise self.error(
                    key, f"unknown key{suggest(key, self._known)}; known keys: {known}"
                )


def _type_name(kind: type) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }.get(kind, kind.__name__)
