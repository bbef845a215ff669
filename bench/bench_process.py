"""Target 11: the process executor beside the thread executor, measured in the same run.

Issue 11 asks two things of ``executor=process``:

* 200 CPU-bound Python items (a pure-Python hashing loop of ~20 ms per item, which
  holds the GIL) at parallel=2 finish >= 1.7x faster than with the thread executor:
  both go through ``executor.map`` with the safe wrapper the run builds
  (``runner.execute.safecall.SafeCall``), no journal; the pool's start-up included;
* 100,000 no-op items (``source.count=100000 task.seconds=0``) cost the process
  executor at most 3x the thread executor's wall time: ``runner.execute.run.execute`` with the
  Settings of ``python -m runner source.count=100000 task.seconds=0 parallel=2
  progress=off postprocessor=none executor=<thread|process>``, journal and runner.log
  in a temporary folder, timed around ``execute`` (worker start-up included). Also
  reported: the ratio of summary.json's window (first item started to last finished)
  and of the wall time of that ``python -m runner`` command in a subprocess.

Rounds alternate the two executors (starting with a different one each round); figures
are medians and ratios are medians of the per-round ratios.

Usage: ``python bench/bench_process.py [--repeat R] [--docs] [--json PATH]`` (about a
minute on 2 cores; ``--docs`` writes the "Process executor" section of
docs/BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

SECTION = "## Process executor"
CPU_TARGET = 1.7  # process speed-up over thread, CPU-bound items
NOOP_TARGET = 3.0  # process wall time over thread wall time, no-op items
EXECUTORS = ("thread", "process")


class HashTask:
    """CPU-bound and pure Python: FNV-1a over 256 bytes, ``rounds`` times (holds the GIL)."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def run(self, item: Any) -> int:
        value = 0x811C9DC5
        data = bytes(range(256))
        for _ in range(self.rounds):
            for byte in data:
                value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
        return value


def calibrate(seconds: float) -> int:
    """Rounds of HashTask that take about ``seconds`` here (best of 5)."""
    task = HashTask(20)
    best = min(_timed(task.run, None) for _ in range(5))
    return max(1, round(20 * seconds / best))


def _timed(fn: Any, arg: Any) -> float:
    started = time.perf_counter()
    fn(arg)
    return time.perf_counter() - started


def executor_for(name: str) -> Any:
    if name == "thread":
        from runner_plugins.executors.thread import ThreadExecutor

        return ThreadExecutor()
    from runner_plugins.executors.process import ProcessExecutor

    return ProcessExecutor()


def cpu_round(name: str, rounds: int, count: int, parallel: int) -> float:
    """Seconds for ``count`` HashTask items through the executor's ``map``."""
    from runner.api import Item
    from runner.execute.safecall import SafeCall

    fn = SafeCall(HashTask(rounds).run)
    items = (Item(str(i), {"index": i}) for i in range(count))
    started = time.perf_counter()
    outcomes = list(executor_for(name).map(fn, items, parallel))
    took = time.perf_counter() - started
    if len(outcomes) != count or any(not o.ok for o in outcomes):
        raise RuntimeError(f"{name}: {len(outcomes)} outcomes, not {count} ok ones")
    return took


def bare_round(rounds: int, count: int, parallel: int) -> float:
    """Seconds for the same items through a bare ``multiprocessing`` pool (spawn, started
    inside the timing as the process executor's is): what the machine's cores give."""
    import multiprocessing

    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(parallel) as pool:
        results = pool.map(HashTask(rounds).run, range(count), chunksize=1)
    took = time.perf_counter() - started
    if len(results) != count:
        raise RuntimeError(f"bare pool: {len(results)} results, not {count}")
    return took


def noop_round(name: str, count: int, parallel: int, out_dir: Path) -> tuple[float, float]:
    """(execute wall s, summary.json wall s) of one in-process run."""
    settings = c.runner_settings(count, 0, parallel)
    plugins = {**settings.plugins, "executor": {"name": name}}
    settings = dataclasses.replace(settings, progress="off", plugins=plugins)
    gc.collect()
    res = c.run_runner_in_process(count, 0, parallel, out_dir, settings)
    shutil.rmtree(out_dir)
    return res["wall"], float(res["summary"]["wall_seconds"])


def cli_round(name: str, count: int, parallel: int, out_dir: Path) -> float:
    """Wall seconds of ``python -m runner ... executor=<name>`` in a subprocess."""
    argv = [sys.executable, "-m", "runner", *cli_args(count, parallel), f"executor={name}"]
    argv.append(f"hydra.run.dir={out_dir}")
    code, wall, _, _ = c.run_measured(argv, cwd=out_dir.parent, log=out_dir.parent / "cli.log")
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}")
    shutil.rmtree(out_dir)
    return wall


def cli_args(count: int, parallel: int) -> list[str]:
    return [
        f"source.count={count}", "task.seconds=0", f"parallel={parallel}",
        "progress=off", "postprocessor=none",
    ]  # fmt: skip


def measure(args: Any) -> dict[str, Any]:
    rounds = calibrate(args.item_seconds)
    item_ms = c.median([_timed(HashTask(rounds).run, None) for _ in range(5)]) * 1e3
    print(f"HashTask: {rounds} rounds, {item_ms:.1f} ms per item here", flush=True)
    runs: dict[str, dict[str, list[float]]] = {
        name: {"cpu": [], "noop": [], "noop_window": [], "cli": []} for name in EXECUTORS
    }
    bare: list[float] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-process-") as tmp:
        root = Path(tmp)
        for name in EXECUTORS:  # warm-up: imports, plugin loading, a first pool
            cpu_round(name, rounds, 4, args.parallel)
            noop_round(name, 1000, args.parallel, root / f"warmup-{name}")
        for r in range(args.repeat):
            order = EXECUTORS if r % 2 == 0 else EXECUTORS[::-1]
            for name in order:
                runs[name]["cpu"].append(cpu_round(name, rounds, args.cpu_count, args.parallel))
            bare.append(bare_round(rounds, args.cpu_count, args.parallel))
            for name in order:
                wall, window = noop_round(name, args.count, args.parallel, root / "run")
                runs[name]["noop"].append(wall)
                runs[name]["noop_window"].append(window)
            for name in order:
                runs[name]["cli"].append(cli_round(name, args.count, args.parallel, root / "cli"))
            print(
                f"round {r + 1}/{args.repeat}: "
                + "; ".join(
                    f"{name} CPU {run['cpu'][-1]:.2f} s, no-op {run['noop'][-1]:.2f} s"
                    for name, run in runs.items()
                )
                + f"; bare pool CPU {bare[-1]:.2f} s",
                flush=True,
            )
    thread, process = runs["thread"], runs["process"]

    def paired(key: str, a: dict[str, list[float]], b: dict[str, list[float]]) -> float:
        return c.median([x / y for x, y in zip(a[key], b[key], strict=True)])

    return {
        "rounds": rounds,
        "item_ms": item_ms,
        "runs": runs,
        "median": {name: {k: c.median(v) for k, v in runs[name].items()} for name in EXECUTORS},
        "speedup": paired("cpu", thread, process),
        "bare": c.median(bare),
        "bare_speedup": c.median([t / b for t, b in zip(thread["cpu"], bare, strict=True)]),
        "bare_runs": bare,
        "noop_ratio": paired("noop", process, thread),
        "window_ratio": paired("noop_window", process, thread),
        "cli_ratio": paired("cli", process, thread),
        "load": f"{load_before:.2f} and {os.getloadavg()[0]:.2f}",
    }


def rows(res: dict[str, Any], args: Any) -> list[dict[str, Any]]:
    med, n, par = res["median"], args.count, args.parallel
    return [
        c.row(
            "11",
            f"{args.cpu_count} CPU-bound pure-Python items of {res['item_ms']:.0f} ms, "
            f"parallel={par}, executor.map (process vs thread)",
            f"process {med['process']['cpu']:.2f} s = {res['speedup']:.2f}x faster than thread "
            f"(a bare spawn multiprocessing.Pool({par}): {res['bare']:.2f} s = "
            f"{res['bare_speedup']:.2f}x, what the cores gave)",
            f"thread executor {med['thread']['cpu']:.2f} s (same items, same wrapper)",
            f">= {CPU_TARGET:.1f}x faster",
            res["speedup"] >= CPU_TARGET,
            **{name: res["runs"][name]["cpu"] for name in EXECUTORS},
            bare_pool=res["bare_runs"],
        ),
        c.row(
            "11",
            f"{n:,} no-op items, parallel={par}, runner in-process (process vs thread)",
            f"process {med['process']['noop']:.2f} s = {res['noop_ratio']:.2f}x thread's wall "
            f"time (items' window {res['window_ratio']:.2f}x; python -m runner "
            f"{med['process']['cli']:.2f} s = {res['cli_ratio']:.2f}x)",
            f"thread executor {med['thread']['noop']:.2f} s (python -m runner "
            f"{med['thread']['cli']:.2f} s)",
            f"<= {NOOP_TARGET:.1f}x thread's wall time",
            res["noop_ratio"] <= NOOP_TARGET,
            **{
                name: {k: run[k] for k in ("noop", "noop_window", "cli")}
                for name, run in res["runs"].items()
            },
        ),
    ]


def docs_section(res: dict[str, Any], args: Any, command: str) -> str:
    info = c.machine()
    med = res["median"]
    table = [
        "| Benchmark | thread | process | process vs thread | target | met |",
        "|---|---:|---:|---:|---:|---|",
        f"| {args.cpu_count} CPU-bound items of {res['item_ms']:.0f} ms, `executor.map` | "
        f"{med['thread']['cpu']:.2f} s | {med['process']['cpu']:.2f} s | "
        f"{res['speedup']:.2f}x faster | >= {CPU_TARGET:.1f}x | "
        f"{'yes' if res['speedup'] >= CPU_TARGET else '**no**'} |",
        f"| same items, bare `multiprocessing.Pool({args.parallel})` (spawn) | "
        f"{med['thread']['cpu']:.2f} s | {res['bare']:.2f} s | {res['bare_speedup']:.2f}x "
        "faster | - | - |",
        f"| {args.count:,} no-op items, `runner.execute.run.execute` | "
        f"{med['thread']['noop']:.2f} s | "
        f"{med['process']['noop']:.2f} s | {res['noop_ratio']:.2f}x the wall time | "
        f"<= {NOOP_TARGET:.1f}x | {'yes' if res['noop_ratio'] <= NOOP_TARGET else '**no**'} |",
        f"| same, summary.json's items' window | {med['thread']['noop_window']:.2f} s | "
        f"{med['process']['noop_window']:.2f} s | {res['window_ratio']:.2f}x | - | - |",
        f"| same, `python -m runner` in a subprocess | {med['thread']['cli']:.2f} s | "
        f"{med['process']['cli']:.2f} s | {res['cli_ratio']:.2f}x | - | - |",
    ]
    return f"""{SECTION}

Targets: CPU-bound Python items at parallel={args.parallel} run >= {CPU_TARGET:.1f}x faster
with `executor=process` than with `executor=thread`; {args.count:,} no-op items cost the
process executor at most {NOOP_TARGET:.1f}x the thread executor's wall time. Produced by:

```bash
{command}
```

Measured on {info["date"]}: {info["cpu"]}, {info["cores"]} usable cores (nproc),
Python {info["python"]}, {info["os"]}, runner at {info["commit"]}. {args.repeat} rounds,
alternating the executors; figures are medians, ratios medians of the per-round ratios.
Load average (1 min) at the start and at the end: {res["load"]}.

The CPU-bound item is a pure-Python FNV-1a loop ({res["rounds"]} rounds over 256 bytes,
{res["item_ms"]:.1f} ms here), run through `executor.map` with the run's safe wrapper
(`SafeCall`) and no journal; the process pool's start-up (spawn) is included. A
bare spawn `multiprocessing.Pool` running the same items (started inside its timing too)
shows what the machine's cores gave in the same rounds. The no-op run is
`runner.execute.run.execute` with the settings of `python -m runner source.count={args.count}
task.seconds=0 parallel={args.parallel} progress=off postprocessor=none
executor=<name>`, journal written, timed around `execute`; that command itself is timed
too, as a subprocess (Python and Hydra start-up included).

{chr(10).join(table)}
"""


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100_000, help="no-op items (default 100000)")
    p.add_argument("--cpu-count", type=int, default=200, help="CPU-bound items (default 200)")
    p.add_argument("--item-seconds", type=float, default=0.02, help="CPU item (default 0.02)")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--docs", action="store_true", help="write the section in docs/BENCHMARKS.md")
    args = p.parse_args()
    res = measure(args)
    c.report(rows(res, args), args.json)
    if args.docs:
        command = "python bench/bench_process.py --docs"
        defaults = (100_000, 200, 0.02, 2, 5)
        given = (args.count, args.cpu_count, args.item_seconds, args.parallel, args.repeat)
        if given != defaults:
            command += (
                f" --count {args.count} --cpu-count {args.cpu_count} --item-seconds "
                f"{args.item_seconds} --parallel {args.parallel} --repeat {args.repeat}"
            )
        print(f"\nwrote {c.write_section(SECTION, docs_section(res, args, command))}")


if __name__ == "__main__":
    main()
