"""Target 11: the dask executor's efficiency, 1000 items of 50 ms at 64 slots.

efficiency = ideal / wall of the items phase (first item started to last item finished),
ideal = 1000 * 0.05 / 64 = 0.781 s. Three runs side by side in each round, each on a
cluster of the same shape (LocalCluster: one worker process per core, 64 threads in all):

* runner, dask: ``runner.execute.run.execute`` in-process with ``executor=dask`` (its own
  LocalCluster, started in ``setup`` and closed at the end), sleep task, journal in a
  temporary folder; the items phase is summary.json's ``wall_seconds``;
* bare Dask: a LocalCluster and ``client.submit`` of one future per item (every item at
  once), then ``as_completed``; the items phase from the tasks' own time stamps;
* runner, thread: the same run with ``executor=thread`` (64 threads), for reference.

Cluster start-up is outside the items phase in both Dask runs; it is reported as the
whole ``execute`` time of the runner run. Target: runner's dask executor >= 0.80.

Usage: ``python bench/bench_dask.py [--repeat R] [--docs] [--json PATH]`` (about 30 s on
2 cores; ``--docs`` writes the "Dask executor" section of docs/BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

TARGET = 0.80
SECTION = "## Dask executor"


def cluster_shape(parallel: int) -> tuple[int, int]:
    """(workers, threads per worker): what ``executor=dask`` starts by default."""
    workers = min(len(os.sched_getaffinity(0)), parallel)
    return workers, math.ceil(parallel / workers)


def runner_run(count: int, seconds: float, parallel: int, executor: str, out: Path) -> Any:
    """(items-phase efficiency, execute wall) of one in-process run of runner."""
    settings = c.runner_settings(count, seconds, parallel)
    plugins = {**settings.plugins, "executor": {"name": executor}}
    settings = dataclasses.replace(settings, plugins=plugins, progress="off")
    res = c.run_runner_in_process(count, seconds, parallel, out, settings)
    shutil.rmtree(out)
    return count * seconds / parallel / res["summary"]["wall_seconds"], res["wall"]


def sleep_item(seconds: float) -> tuple[float, float]:
    """The bare loop's task: one item, its start and end (wall clock, as runner's)."""
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


def bare_dask(count: int, seconds: float, parallel: int) -> tuple[float, float]:
    """(items-phase efficiency, submit-to-last-result wall) of the bare submit loop."""
    import distributed

    dd: Any = distributed  # untyped constructors
    workers, threads = cluster_shape(parallel)
    with (
        dd.LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        dd.Client(cluster) as client,
    ):
        began = time.perf_counter()
        futures = [client.submit(sleep_item, seconds, pure=False) for _ in range(count)]
        stamps = [future.result() for future in dd.as_completed(futures)]
        wall = time.perf_counter() - began
    phase = max(end for _, end in stamps) - min(start for start, _ in stamps)
    return count * seconds / parallel / phase, wall


def table(res: dict[str, Any]) -> str:
    rows = [
        ("runner, `executor=dask`", "dask", "`execute`, cluster start and close included"),
        ("bare Dask, one future per item", "bare", "first submit to last result"),
        ("runner, `executor=thread`", "thread", "`execute`"),
    ]
    lines = ["| Variant | efficiency (items phase) | wall |", "|---|---:|---:|"]
    for name, key, wall in rows:
        efficiency = f"**{res[key]:.2f}**" if key == "dask" else f"{res[key]:.2f}"
        lines.append(f"| {name} | {efficiency} | {res[key + '_wall']:.2f} s ({wall}) |")
    return "\n".join(lines)


def docs_section(res: dict[str, Any], n: int, s: float, par: int, repeat: int, load: str) -> str:
    info = c.machine()
    workers, threads = cluster_shape(par)
    command = "python bench/bench_dask.py --docs"
    if (n, s, par, repeat) != (1000, 0.05, 64, 5):
        command += f" --count {n} --seconds {s} --parallel {par} --repeat {repeat}"
    met = res["dask"] >= TARGET
    return f"""{SECTION}

Target: {n} items of {s * 1000:g} ms (`task=sleep task.seconds={s}`) at {par} concurrent
slots on a local Dask cluster run at an efficiency (ideal / wall of the items phase,
ideal = {n} x {s} / {par} = {n * s / par:.3f} s) >= {TARGET:.2f}, against a bare
LocalCluster submit-one-future-per-item loop measured side by side. Produced by:

```bash
{command}
```

Measured on {info["date"]}: {info["cpu"]}, {info["cores"]} usable cores (nproc),
Python {info["python"]}, {info["os"]}, runner at {info["commit"]}. {repeat} rounds, each
running the three variants one after another; figures are medians. Every Dask run has its
own LocalCluster of {workers} worker process(es) x {threads} threads; the items phase is
first item started to last item finished (summary.json's `wall_seconds` for runner), so
cluster start-up is not in it. Load average (1 min) at the start and at the end: {load}.

{table(res)}

Result: **{res["dask"]:.2f}** for runner's dask executor ({res["bare"]:.2f} for the bare
loop). Target >= {TARGET:.2f}: **{"met" if met else "not met"}**.
"""


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=0.05)
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--docs", action="store_true", help="write the section in docs/BENCHMARKS.md")
    args = p.parse_args()
    n, s, par = args.count, args.seconds, args.parallel
    runs: dict[str, list[float]] = {
        key: [] for key in ("dask", "dask_wall", "bare", "bare_wall", "thread", "thread_wall")
    }
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        root = Path(tmp)
        runner_run(64, s, par, "dask", root / "warmup")  # imports, first cluster start
        for r in range(args.repeat):
            for key, measure in (
                ("dask", lambda: runner_run(n, s, par, "dask", root / "run")),
                ("bare", lambda: bare_dask(n, s, par)),
                ("thread", lambda: runner_run(n, s, par, "thread", root / "run")),
            ):
                efficiency, wall = measure()
                runs[key].append(efficiency)
                runs[f"{key}_wall"].append(wall)
            print(
                f"round {r + 1}/{args.repeat}: efficiency runner dask {runs['dask'][-1]:.3f}, "
                f"bare Dask {runs['bare'][-1]:.3f}, runner thread {runs['thread'][-1]:.3f}",
                flush=True,
            )
    load = f"{load_before:.2f} and {os.getloadavg()[0]:.2f}"
    print(f"load average (1 min): {load}")
    res = {key: c.median(values) for key, values in runs.items()}
    rows = [
        c.row(
            "11",
            f"{n} items of {s * 1000:g} ms at {par} slots on a local Dask cluster, "
            "efficiency of the items phase",
            f"{res['dask']:.2f} (runner, executor=dask)",
            f"{res['bare']:.2f} bare LocalCluster submit loop; {res['thread']:.2f} runner "
            "executor=thread",
            f">= {TARGET:.2f}",
            res["dask"] >= TARGET,
            **runs,
        )
    ]
    c.report(rows, args.json)
    if args.docs:
        section = docs_section(res, n, s, par, args.repeat, load)
        print(f"\nwrote {c.write_section(SECTION, section)}")


if __name__ == "__main__":
    main()
