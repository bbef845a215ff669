"""Built-in sources: ``range``, ``lines``, ``jsonl`` and ``glob``."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path

from runner.api import Item, Source


def _readable_file(path: str, what: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise FileNotFoundError(f"{what} file {str(file)!r} does not exist")
    if not file.is_file():
        raise IsADirectoryError(f"{what} path {str(file)!r} is not a file")
    if not os.access(file, os.R_OK):
        raise PermissionError(f"{what} file {str(file)!r} is not readable")
    return file


def _count_nonempty_lines(path: Path) -> int:
    # One pass over the file for progress's N; the items are read in a second pass, so
    # the file is never held in memory.
    with open(path, encoding="utf-8", errors="replace") as fh:
        return sum(1 for line in fh if line.strip())


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
    """One item per non-empty line of ``path``: ``line`` (stripped) and ``lineno``."""

    def __init__(self, path: str) -> None:
        self.path = _readable_file(path, "lines source")

    def __len__(self) -> int:
        return _count_nonempty_lines(self.path)

    def __iter__(self) -> Iterator[Item]:
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.strip()
                if line:
                    yield Item(str(lineno), {"line": line, "lineno": lineno}, label=line[:80])


class JsonlSource(Source):
    """One item per JSON object line of ``path``; ids from ``id_field`` or line numbers."""

    def __init__(self, path: str, id_field: str | None = None) -> None:
        self.path = _readable_file(path, "jsonl source")
        self.id_field = id_field

    def __len__(self) -> int:
        return _count_nonempty_lines(self.path)

    def __iter__(self) -> Iterator[Item]:
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{str(self.path)!r} line {lineno} is not valid JSON: {exc.msg}"
                    ) from None
                if not isinstance(data, dict):
                    raise ValueError(
                        f"{str(self.path)!r} line {lineno} is a JSON {type(data).__name__}, "
                        "not an object"
                    )
                if self.id_field is None:
                    yield Item(str(lineno), data)
                    continue
                if self.id_field not in data:
                    raise ValueError(
                        f"{str(self.path)!r} line {lineno} has no {self.id_field!r} field "
                        f"(id_field); its fields: {', '.join(map(str, data)) or 'none'}"
                    )
                yield Item(str(data[self.id_field]), data)


class GlobSource(Source):
    """Files under ``root`` matching ``pattern`` (``**`` recurses), in sorted order."""

    def __init__(self, root: str = ".", pattern: str = "*") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"glob source root {str(self.root)!r} is not a folder")
        self.pattern = pattern

    @functools.cached_property
    def _files(self) -> list[Path]:
        # Sorting needs the whole list anyway: walk the tree once for the count and items.
        return sorted(p for p in self.root.glob(self.pattern) if p.is_file())

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[Item]:
        for path in self._files:
            rel = path.relative_to(self.root).as_posix()
            yield Item(rel, {"path": str(path), "name": path.name, "stem": path.stem})
