"""Target 1: throughput of 100k no-op items at parallel=6, journal included.

Target (issue 21): runner >= 6x a bare ``ThreadPoolExecutor(6)`` submit-all loop (submit
every item, then iterate ``as_completed``), both measured in this run. The ratio is taken
per round (a bare-pool run and the runner run right after it) and its median reported, so
that a change of load between rounds does not reach the ratio.

* baseline: the same items (range source) and the same task function (sleep task with
  seconds=0, a no-op) submitted one Future per item; no journal, no progress.
* runner, in-process: ``runner.execute.run.execute`` with the thread executor, the safe wrapper,
  the journal (results.jsonl in a temporary folder), progress=lines and runner.log;
  timed around ``execute``, so Python and Hydra start-up are excluded.
* runner, CLI: ``python -m runner parallel=6 source.count=N task.seconds=0
  postprocessor=none progress=lines`` in a subprocess; ``summary.json``'s
  ``items_per_second`` (first item started to last item finished) and, for information,
  items over the whole process wall time (start-up included).

Baseline and in-process runs alternate, so a load change on the machine hits both; the
figures are medians. Usage: ``python bench/bench_throughput.py [--count N] [--repeat R]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import _common as c

TARGET_RATIO = 6.0


def bare_pool(count: int, parallel: int) -> float:
    """Seconds for the submit-all ThreadPoolExecutor loop over ``count`` no-op items."""
    source, run = c.bare_items(count)
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(run, item) for item in source]
        for future in as_completed(futures):
            future.result()
    return time.perf_counter() - started


def runner_cli(count: int, parallel: int, out_dir: Path) -> tuple[float, float]:
    """(summary items/s, items per second of process wall time) of one CLI run."""
    argv = [
        sys.executable, "-m", "runner", f"parallel={parallel}", f"source.count={count}",
        "task.seconds=0", "postprocessor=none", "progress=lines", f"hydra.run.dir={out_dir}",
    ]  # fmt: skip
    code, wall, _, _ = c.run_measured(argv, cwd=out_dir.parent, log=out_dir.parent / "cli.log")
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}")
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    return float(summary["items_per_second"]), count / wall


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--parallel", type=int, default=6)
    p.add_argument("--repeat", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--cli-repeat", type=int, default=3, help="CLI runs (default 3)")
    args = p.parse_args()
    n, par = args.count, args.parallel

    bare_rates: list[float] = []
    runner_rates: list[float] = []
    runner_window_rates: list[float] = []
    cli_rates: list[float] = []
    cli_e2e_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        # Warm-up: imports, plugin loading, thread start-up paths.
        bare_pool(1000, par)
        c.run_runner_in_process(1000, 0, par, root / "warmup")
        for r in range(args.repeat):
            bare_rates.append(n / bare_pool(n, par))
            res = c.run_runner_in_process(n, 0, par, root / f"inproc-{r}")
            runner_rates.append(n / res["wall"])
            runner_window_rates.append(res["summary"]["items_per_second"])
            print(
                f"round {r + 1}/{args.repeat}: bare pool {c.fmt_rate(bare_rates[-1])}, "
                f"runner in-process {c.fmt_rate(runner_rates[-1])}",
                flush=True,
            )
        for r in range(args.cli_repeat):
            rate, e2e = runner_cli(n, par, root / f"cli-{r}")
            cli_rates.append(rate)
            cli_e2e_rates.append(e2e)
            print(
                f"CLI run {r + 1}/{args.cli_repeat}: summary.json {c.fmt_rate(rate)}, "
                f"whole process {c.fmt_rate(e2e)}",
                flush=True,
            )

    bare = c.median(bare_rates)
    inproc = c.median(runner_rates)
    cli = c.median(cli_rates)
    # Per round: each runner run against the bare pool measured just before it; the CLI
    # runs, which come after all rounds, against the median bare pool.
    inproc_ratio = c.median([r / b for r, b in zip(runner_rates, bare_rates, strict=True)])
    cli_ratio = cli / bare
    rows = [
        c.row(
            "1",
            f"{n:,} no-op items, parallel={par}, journal written (runner in-process)",
            f"{c.fmt_rate(inproc)} ({inproc_ratio:.2f}x baseline, median of the rounds' ratios)",
            f"{c.fmt_rate(bare)} (ThreadPoolExecutor({par}) submit-all + as_completed)",
            f">= {TARGET_RATIO:g}x baseline",
            inproc_ratio >= TARGET_RATIO,
            bare_rates=bare_rates,
            runner_rates=runner_rates,
            runner_summary_rates=runner_window_rates,
        ),
        c.row(
            "1",
            f"{n:,} no-op items, parallel={par}, journal written (python -m runner, "
            "summary.json items_per_second)",
            f"{c.fmt_rate(cli)} ({cli_ratio:.2f}x baseline); whole process incl. "
            f"start-up {c.fmt_rate(c.median(cli_e2e_rates))}",
            f"{c.fmt_rate(bare)} (same as above)",
            f">= {TARGET_RATIO:g}x baseline",
            cli_ratio >= TARGET_RATIO,
            cli_rates=cli_rates,
            cli_whole_process_rates=cli_e2e_rates,
        ),
    ]
    c.report(rows, args.json)


if __name__ == "__main__":
    main()
