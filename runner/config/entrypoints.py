"""Entry points of the installed distributions, as ``importlib.metadata`` reads them.

The first copy of a distribution on the path wins, so an old copy further down the path
cannot add stale entry points (the same rule as ``importlib.metadata.entry_points``).
Reading them costs about 20 ms of start-up more than the hand-written reader this
module used to be (bench/bench_startup.py; 357 ms in all): less than a user notices,
for the standard's rules (zip files, every installer's metadata) instead of a copy.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from importlib import metadata
from typing import Any


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    """One ``name = value`` line of a distribution's ``entry_points.txt``."""

    group: str
    name: str
    value: str  # "module:attribute", possibly followed by " [extras]"
    # Its name and version are read on demand: parsing METADATA (and importing the email
    # package to do it) would cost some 30 ms of every start-up for an error message.
    dist: metadata.Distribution | None = dataclasses.field(compare=False, repr=False)

    @property
    def distribution(self) -> str:
        return (self.dist.name if self.dist is not None else None) or "?"

    @property
    def version(self) -> str:
        return (self.dist.version if self.dist is not None else None) or "?"


def load(value: str) -> Any:
    """Import what an entry-point value (``module:attribute [extras]``) names."""
    return metadata.EntryPoint(name="", value=value, group="").load()


def _normalize(name: str) -> str:
    # PEP 503: runs of -, _ and . are one separator, case does not matter.
    return re.sub(r"[-_.]+", "_", name).lower()


def entry_points(groups: Iterable[str], path: Iterable[str] | None = None) -> list[EntryPoint]:
    """Every entry point of the given groups, over the distributions found on ``path``
    (``sys.path`` when None)."""
    wanted = sorted(set(groups))
    listed: list[metadata.EntryPoint] = []
    if path is None:
        # One scan of sys.path; importlib.metadata keeps the first copy of each name.
        every = metadata.entry_points()
        listed = [ep for group in wanted for ep in every.select(group=group)]
    else:
        seen: set[str] = set()
        for dist in metadata.distributions(path=list(path)):
            key = _normalize(dist.name or "")
            if key not in seen:
                seen.add(key)
                listed += [ep for ep in dist.entry_points if ep.group in wanted]
    return [EntryPoint(ep.group, ep.name, ep.value, ep.dist) for ep in listed]
