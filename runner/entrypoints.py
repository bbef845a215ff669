"""Entry points of the installed distributions, read straight from their metadata files.

``importlib.metadata`` answers the same question, but importing it and building its
distribution objects costs about 20 ms of every start-up (a quarter of runner's own
start-up budget). This module reads the same files by the same rules, for the groups it
is asked about only:

- every ``sys.path`` folder is searched in order for ``*.dist-info`` and ``*.egg-info``
  folders (what pip, ``pip install --target``, PEP 660 editable installs and setuptools
  develop installs leave);
- a distribution is found once: the first folder on ``sys.path`` wins, so an old copy
  further down the path cannot add stale entry points (``importlib.metadata`` dedups the
  same way, by normalized name);
- ``entry_points.txt`` is the INI-style file every installer writes.

Zip files on ``sys.path`` (eggs, zipapps) are not searched.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

_SUFFIXES = (".dist-info", ".egg-info")


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    """One ``name = value`` line of a distribution's ``entry_points.txt``."""

    group: str
    name: str
    value: str  # "module:attribute", possibly followed by " [extras]"
    distribution: str
    version: str


def load(value: str) -> Any:
    """Import what an entry-point value (``module:attribute [extras]``) names."""
    target = value.split("[", 1)[0].strip()
    module_name, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        found = getattr(found, part)
    return found


def _normalize(name: str) -> str:
    # PEP 503: runs of -, _ and . are one separator, case does not matter.
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_folders(path: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    for entry in path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except OSError:  # a missing folder, or a zip file
            continue
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            key = _normalize(name.rsplit(".", 1)[0].split("-", 1)[0])
            if key in seen:
                continue
            seen.add(key)
            yield os.path.join(folder, name)


def _parse(text: str, groups: frozenset[str]) -> Iterator[tuple[str, str, str]]:
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif group in groups and "=" in line:
            name, _, value = line.partition("=")
            yield group, name.strip(), value.strip()


def _name_and_version(folder: str) -> tuple[str, str]:
    """The distribution's Name and Version headers (from the folder name if unreadable)."""
    stem = os.path.basename(folder).rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, file), encoding="utf-8") as fh:
                headers = {}
                for line in fh:
                    if not line.strip():
                        break  # the headers end at the first empty line
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
        except OSError:
            continue
        return headers.get("name", name), headers.get("version", version or "?")
    return name, version or "?"


def entry_points(groups: Iterable[str], path: Iterable[str] | None = None) -> list[EntryPoint]:
    """Every entry point of the given groups, over the distributions found on ``path``."""
    wanted = frozenset(groups)
    found: list[EntryPoint] = []
    for folder in _metadata_folders(sys.path if path is None else path):
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            continue
        lines = list(_parse(text, wanted))
        if not lines:
            continue
        distribution, version = _name_and_version(folder)
        found += [EntryPoint(g, n, v, distribution, version) for g, n, v in lines]
    return found
