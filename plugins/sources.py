"""Built-in sources: ``range``, ``lines``, ``jsonl`` and ``glob``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from loguru import logger

from runner.api import Item, RunContext, Source


def _readable_file(path: str, what: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise FileNotFoundError(f"{what} file {str(file)!r} does not exist")
    if not file.is_file():
        raise IsADirectoryError(f"{what} path {str(file)!r} is not a file")
    if not os.access(file, os.R_OK):
        raise PermissionError(f"{what} file {str(file)!r} is not readable")
    return file


def _text_lines(
    path: Path, strip: bool = True, skip_blank: bool = True
) -> Iterator[tuple[int, str | None, str]]:
    """``(lineno, text, problem)`` for each line of ``path``, read as bytes: its text
    without the line ending, also without surrounding whitespace with ``strip``; a line
    that is empty or whitespace only is passed over with ``skip_blank``.

    Each line is decoded on its own, so one that is not UTF-8 costs only itself: its
    text is None and ``problem`` says where the bad byte is. The file is streamed, never
    held in memory; ``__len__`` and iteration both count with this, so they agree.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                # A byte-order mark is not part of the first line's text.
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                yield lineno, None, f"is not valid UTF-8 ({bad})"
                continue
            if skip_blank and not text.strip():
                continue
            yield lineno, text.strip() if strip else text.rstrip("\r\n"), ""


def _count_lines(path: Path, strip: bool = True, skip_blank: bool = True) -> int:
    # One pass over the file for progress's N; the items are read in a second pass, so
    # the file is never held in memory.
    return sum(1 for _ in _text_lines(path, strip, skip_blank))


class RangeSource(Source):
    """Items ``0 .. count-1``; each carries ``index``."""

    def __init__(self, count: int = 10) -> None:
        if count < 0:
            raise ValueError(f"count={count!r} must be >= 0")
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        for index in range(self.count):
            yield Item(str(index), {"index": index})


class LinesSource(Source):
    """One item per line of ``path``: ``line`` and ``lineno`` (its id, counted from 1).

    By default a line's surrounding whitespace is stripped (``strip``) and a line that is
    empty or whitespace only is no item (``skip_blank``); the run's first log line says
    so. ``strip=false`` keeps the text as it is but the line ending; ``skip_blank=false``
    makes a blank line an item too. A line that is not UTF-8 is an item that fails naming
    the file and line.
    """

    def __init__(self, path: str, strip: bool = True, skip_blank: bool = True) -> None:
        self.path = _readable_file(path, "lines source")
        self.strip = strip
        self.skip_blank = skip_blank

    def setup(self, context: RunContext) -> None:
        # What is done to the text is no surprise: the first lines of the log say it.
        done = [
            *(["surrounding whitespace stripped (strip=false keeps it)"] * self.strip),
            *(["blank lines skipped (skip_blank=false makes them items)"] * self.skip_blank),
        ]
        if done:
            logger.info(f"lines source {str(self.path)!r}: {'; '.join(done)}")

    def __len__(self) -> int:
        return _count_lines(self.path, self.strip, self.skip_blank)

    def __iter__(self) -> Iterator[Item]:
        for lineno, line, problem in _text_lines(self.path, self.strip, self.skip_blank):
            if line is None:
                error = f"{str(self.path)!r} line {lineno} {problem}"
                yield Item(str(lineno), {"lineno": lineno}, error=error)
            else:
                # A blank line's label is its line number: an empty label shows nothing.
                label = line if line.strip() else f"line {lineno}"
                yield Item(str(lineno), {"line": line, "lineno": lineno}, label=label)


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "number")


class JsonlSource(Source):
    """One item per JSON object line of ``path``; ids from ``id_field`` or line numbers.

    A line that cannot be an item (not UTF-8, not JSON, not an object, without
    ``id_field``, repeating an earlier line's id) is an item that fails saying what is
    wrong and on which line, and the rest of the file runs. Its id is its line number
    like any item's without ``id_field``; with ``id_field`` it is ``line <n>``.
    """

    def __init__(self, path: str, id_field: str | None = None) -> None:
        self.path = _readable_file(path, "jsonl source")
        self.id_field = id_field

    def __len__(self) -> int:
        return _count_lines(self.path)

    def __iter__(self) -> Iterator[Item]:
        # id -> the line that gave it, so that a repeated id names both lines. Only with
        # id_field: line numbers are unique by themselves.
        seen: dict[str, int] = {}
        for lineno, line, problem in _text_lines(self.path):
            data: Any = None
            if line is not None:
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    problem = f"is not valid JSON: {exc.msg} (column {exc.colno})"
                else:
                    if not isinstance(data, dict):
                        problem = f"is a JSON {_json_type(data)}, not an object"
            if self.id_field is None:
                if problem:
                    error = f"{str(self.path)!r} line {lineno} {problem}"
                    yield Item(str(lineno), {"lineno": lineno}, error=error)
                else:
                    yield Item(str(lineno), data)
                continue
            if not problem:
                problem = self._id_problem(data, seen)
            if problem:
                item_id = _unused(f"line {lineno}", seen)
                seen[item_id] = lineno
                error = f"{str(self.path)!r} line {lineno} {problem}"
                yield Item(item_id, {"lineno": lineno}, error=error)
                continue
            item_id = str(data[self.id_field])
            seen[item_id] = lineno
            yield Item(item_id, data)

    def _id_problem(self, data: dict[str, Any], seen: dict[str, int]) -> str:
        """What keeps ``data[id_field]`` from being a new item's id, or ``""``."""
        field = self.id_field
        if field not in data:
            fields = ", ".join(map(str, data)) or "none"
            return f"has no {field!r} field (id_field); its fields: {fields}"
        value = data[field]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return f"has a JSON {_json_type(value)} as {field!r} (id_field), not text or a number"
        if value == "":
            return f"has an empty {field!r} (id_field)"
        first = seen.get(str(value))
        if first is not None:
            return f"repeats id {str(value)!r} ({field!r}) of line {first}"
        return ""


def _unused(candidate: str, seen: dict[str, int]) -> str:
    """``candidate``, or with a counter appended if an item already has that id."""
    item_id, n = candidate, 1
    while item_id in seen:
        n += 1
        item_id = f"{candidate} ({n})"
    return item_id


class GlobSource(Source):
    """Files under ``root`` matching ``pattern`` (``**`` recurses), in sorted order.

    ``path`` is absolute, so it never starts with ``-`` (a file named ``--version`` is
    never read as an option) and stays valid under the shell task's ``cwd``; the id is
    the path relative to ``root``.
    """

    def __init__(self, root: str = ".", pattern: str = "*") -> None:
        self.root = Path(root).expanduser().absolute()
        if not self.root.is_dir():
            raise FileNotFoundError(f"glob source root {root!r} is not a folder")
        self.pattern = pattern
        parts = PurePath(pattern).parts
        if not parts:
            raise ValueError(
                f"pattern={pattern!r} names no file: give one such as '*' or '**/*.csv'"
            )
        if PurePath(pattern).is_absolute():
            magic = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), -1)
            folder, rest = PurePath(*parts[:magic]), PurePath(*parts[magic:])
            raise ValueError(
                f"pattern={pattern!r} is absolute, but it is matched under root: give the "
                f"folder as root, e.g. source.root={str(folder)!r} source.pattern={str(rest)!r}"
            )
        if ".." in parts:
            raise ValueError(
                f"pattern={pattern!r} has a '..' part, which leaves root: "
                "give the folder above as root instead"
            )
        try:
            # Listed once, now: the count and the items agree, and a pattern pathlib
            # cannot use is refused before the first item.
            self._files = sorted(p for p in self.root.glob(pattern) if p.is_file())
        except (ValueError, NotImplementedError) as exc:
            raise ValueError(f"pattern={pattern!r} is not a usable pattern: {exc}") from None

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[Item]:
        for path in self._files:
            rel = path.relative_to(self.root).as_posix()
            yield Item(rel, {"path": str(path), "name": path.name, "stem": path.stem})
