"""The scale run of issue 24, small: ``task=http`` on ``executor=dask`` (a LocalCluster of
2 worker processes) with ``parallel=auto`` against a service that refuses past its
capacity, stopped by SIGINT part-way and resumed: every item runs exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import run_runner, start_runner
from tests.http_service import serve

COUNT = 300
CAPACITY = 8
#: The service's latency: the run lasts a few seconds, long enough to be stopped part-way.
LATENCY = 0.05


def journal(run_dir: Path) -> list[dict[str, object]]:
    path = run_dir / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.slow
def test_a_run_stopped_by_sigint_and_resumed_runs_every_item_exactly_once(
    tmp_path: Path,
) -> None:
    """SIGINT once a third of the items are journaled, then ``resume=``: the resumed run's
    journal holds every id once, each succeeded, and the service answered each id 200
    exactly once over both runs (an item whose answer was dropped would be sent twice;
    one the stop lost, never)."""
    first, second = tmp_path / "first", tmp_path / "second"
    common = (
        "task=http", f"source.count={COUNT}", "executor=dask", "executor.workers=2",
        "parallel=auto", "retry.attempts=50", "retry.max_wait=2", "progress=off",
    )  # fmt: skip
    with serve(latency=LATENCY, capacity=CAPACITY, retry_after=1.0, backlog=128) as service:
        url = f"task.url='{service.url}/{{id}}'"
        proc = start_runner(*common, url, cwd=tmp_path, run_dir=first)
        try:
            deadline = time.monotonic() + 120
            while len(journal(first)) < COUNT // 3:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the run never got a third of the way"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, output
        stopped = json.loads((first / "summary.json").read_text())
        assert stopped["interrupted"] is True and stopped["total"] < COUNT, stopped
        resumed = run_runner(*common, url, f"resume={first}", cwd=tmp_path, run_dir=second)
        served = dict(service.served)
        refused = service.count(429)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = journal(second)
    ids = [str(r["id"]) for r in records]
    assert sorted(ids, key=int) == [str(i) for i in range(COUNT)], "an id missing or twice"
    assert {r["status"] for r in records} == {"ok"}
    twice = sorted(path for path, times in served.items() if times > 1)
    assert twice == [], f"sent again after the service had answered them: {twice}"
    assert sorted(served, key=lambda p: int(p[1:])) == [f"/{i}" for i in range(COUNT)]
    # The service did refuse (auto climbs past 8), so retries were part of the test.
    assert refused > 0
