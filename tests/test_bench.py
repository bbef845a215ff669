"""bench/compare.py: the saved comparison with the peers holds every figure, and the
report is written from it.

The suite measures nothing (a quick measuring run took a minute of the suite, and timings
on a loaded test machine prove nothing): it checks the run saved in docs/compare.json,
that every workload has a positive figure for every peer, and that ``--render`` writes
from it the report docs/BENCHMARKS.md holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
DOCS = BENCH.parent / "docs"
# What the last full run measured (python bench/compare.py writes it with the section).
SAVED = DOCS / "compare.json"


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/compare.py as a module (it imports its neighbours as top-level modules)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import compare

    return compare


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """``compare.py --render`` of the saved docs/compare.json: the folder it wrote, and the
    data it read."""
    out = tmp_path_factory.mktemp("compare")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), "--render", str(SAVED), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, json.loads(SAVED.read_text(encoding="utf-8"))


def test_every_peer_of_every_workload_has_positive_figures(
    compare: ModuleType, rendered: tuple[Path, dict[str, Any]]
) -> None:
    """Each peer a workload names was measured (or is reported as not installed), with
    positive medians of the whole process and, where it has one, of the work phase, one
    sample per round."""
    _, data = rendered
    assert set(data["results"]) == set(data["workloads"])
    rounds = int(data["notes"]["rounds"].split()[0])
    for key, work in data["workloads"].items():
        cells = data["results"][key]
        assert set(cells) == set(work["peers"]), key
        for peer, cell in cells.items():
            if "skipped" in cell:
                assert peer in data["not_measured"], (key, peer, cell["skipped"])
                continue
            medians = cell["median"]
            assert medians["whole_s"] > 0 and medians["cpu_s"] >= 0, (key, peer)
            if key != "startup" and peer not in (compare.XARGS, compare.GNU):
                assert medians["phase_s"] > 0 and medians["rss"] > 0, (key, peer)
                assert len(cell["samples"]["phase_s"]) == rounds, (key, peer)


def test_every_target_is_reported_with_numbers(rendered: tuple[Path, dict[str, Any]]) -> None:
    """The rows hold every target of the issue, each with a measured number."""
    _, data = rendered
    rows = data["rows"]
    assert len(rows) == 8
    for row in rows:
        assert any(ch.isdigit() for ch in row["measured"]), row
        assert isinstance(row["met"], bool)
    # Beside the targets against xargs and GNU parallel: the least any Hydra app takes
    # here (the minimal app's start-up plus the spawn floor), from the same run.
    against = [row for row in rows if "whole run vs" in row["name"]]
    assert len(against) == 2
    for row in against:
        assert "the least a Hydra app can take here" in row["baseline"], row


def test_report_has_a_column_per_peer_and_a_chart(
    compare: ModuleType, rendered: tuple[Path, dict[str, Any]]
) -> None:
    """BENCHMARKS.md holds the section with every peer's column and version; the chart
    is a PNG."""
    out, data = rendered
    text = (out / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert text.startswith(compare.SECTION)
    headers = [line for line in text.splitlines() if line.startswith("|  | runner |")]
    assert len(headers) == len(data["workloads"]) - 2  # the two judge runs share a table
    for header in headers:
        for peer in compare.PEERS:
            assert f"| {peer} |" in header, (peer, header)
    for peer in compare.PEERS:
        assert peer in data["versions"] or peer in data["not_measured"]
    assert data["versions"]["Python"]
    assert (out / "peers.png").read_bytes().startswith(b"\x89PNG")


def test_write_section_replaces_only_its_own_section(compare: ModuleType, tmp_path: Path) -> None:
    """The section is replaced in place; the sections around it stay as they were."""
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# B\n\n## Core\n\nc\n\n{compare.SECTION}\n\nold\n\n## Later\n\nl\n")
    compare.c.write_section(compare.SECTION, f"{compare.SECTION}\n\nnew\n", path)
    assert path.read_text() == f"# B\n\n## Core\n\nc\n\n{compare.SECTION}\n\nnew\n\n## Later\n\nl\n"
    path.write_text(f"# B\n\n{compare.SECTION}\n\nold\n")
    compare.c.write_section(compare.SECTION, f"{compare.SECTION}\n\nnew\n", path)
    assert path.read_text() == f"# B\n\n{compare.SECTION}\n\nnew\n"


def test_render_writes_the_saved_section_again(rendered: tuple[Path, dict[str, Any]]) -> None:
    """--render rebuilds the section from compare.json alone, measuring nothing: from the
    saved docs/compare.json it writes the section docs/BENCHMARKS.md holds, byte for byte."""
    out, _ = rendered
    section = (out / "BENCHMARKS.md").read_text(encoding="utf-8").strip()
    assert section in (DOCS / "BENCHMARKS.md").read_text(encoding="utf-8")
