"""runner.config.entrypoints reads what importlib.metadata reads, for every distribution here."""

from __future__ import annotations

import collections
import importlib.metadata as metadata
import os
import sys

from runner.config import entrypoints


def _in_a_folder(dist: metadata.Distribution) -> bool:
    # Distributions inside zip files (eggs, zipapps) are knowingly not searched.
    return os.path.isdir(str(dist.locate_file("")))


def test_every_entry_point_of_the_environment_matches_importlib_metadata() -> None:
    """Same groups, names, values, distributions and versions, first copy on sys.path wins."""
    expected: collections.Counter[tuple[str, ...]] = collections.Counter()
    groups = set()
    every = [ep for g in metadata.entry_points().groups for ep in metadata.entry_points(group=g)]
    for ep in every:
        if ep.dist is None or not _in_a_folder(ep.dist):
            continue
        groups.add(ep.group)
        expected[(ep.group, ep.name, ep.value, ep.dist.name, ep.dist.version)] += 1
    # Counted, not only collected: an entry point read twice would show.
    found = collections.Counter(
        (ep.group, ep.name, ep.value, ep.distribution, ep.version)
        for ep in entrypoints.entry_points(groups, sys.path)
    )
    assert len(expected) > 50  # pip, pytest, dask and runner's own register plenty
    assert found == expected
    assert any(group == "runner.executors" for group, *_ in found)
