"""Target 14: parallel=auto against a rate-limited service, beside a sweep of fixed counts.

A real HTTP service on the loopback address (``tests/http_service.py``) answers each
request after ``--latency`` seconds (default 0.1), or at once with 429 and Retry-After
(``--retry-after``, default 0.5 s) while more than ``--capacity`` requests (default 6) are
in progress. Every run is ``python -m runner task=http`` on it, with retries
(``retry.attempts=20 retry.backoff=0.1``), ``progress=off postprocessor=none``:

* fixed counts: ``parallel=1,2,4,5,6,7,8,12,16,32`` (``--fixed``), ``--fixed-count`` items
  each (a sixth of them for 1 and 2 workers and past capacity + 2, which are slow),
  items/s from summary.json;
* ``parallel=auto`` (auto.max 64) over ``--count`` items (default 3000): items/s from
  summary.json over the whole run, its climb included; the share of the service's
  answers that were 429 after the run's first 10 seconds; the level it settled at.

Targets: auto >= 0.90 x the best fixed count's items/s, and <= 5% of its requests
refused after the first 10 s. ``--docs`` writes the "parallel=auto" section of
docs/BENCHMARKS.md and docs/auto.png (the limit and the service's answers per second
over time). Usage: ``python bench/bench_auto.py [--docs] [--json PATH]`` (about 4 min).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

sys.path.insert(0, str(c.REPO_DIR))
from tests.http_service import Service, serve

SECTION = "## parallel=auto"
TARGET_RATIO, TARGET_REFUSED = 0.90, 0.05
ARGS = ["task=http", "retry.attempts=20", "retry.backoff=0.1", "progress=off",
        "postprocessor=none"]  # fmt: skip


def run(service: Service, parallel: str, count: int, folder: Path) -> tuple[dict[str, Any], float]:
    """One ``python -m runner`` run against the service: its summary and when it began."""
    url = f"task.url='{service.url}/{{id}}'"
    argv = [sys.executable, "-m", "runner", f"parallel={parallel}", url,
            f"source.count={count}", *ARGS, f"hydra.run.dir={folder}"]  # fmt: skip
    began = time.monotonic()
    code, _, _, _ = c.run_measured(argv, cwd=folder.parent, log=folder.parent / "runs.log")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if code not in (0, 1) or summary["succeeded"] != count:
        raise RuntimeError(f"parallel={parallel}: exit {code}, {summary['succeeded']} of {count}")
    return summary, began


def chart(
    summary: dict[str, Any], answers: list[tuple[float, int]], began: float, path: Path
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    limit_ax = fig.subplots()
    changes = summary["concurrency"]["changes"]
    end = max(t - began for t, _ in answers)
    xs = [ch["seconds"] for ch in changes] + [end]
    ys = [ch["parallel"] for ch in changes] + [changes[-1]["parallel"]]
    limit_ax.step(xs, ys, where="post", color="#3b6fd8", label="items allowed at once")
    limit_ax.set(xlabel="seconds since the run started", ylabel="items at once", ylim=(0, None))
    rate_ax = limit_ax.twinx()
    seconds = int(end) + 1
    ok, refused = [0] * seconds, [0] * seconds
    for at, status in answers:
        second = int(at - began)
        if 0 <= second < seconds:
            (ok if status == 200 else refused)[second] += 1
    rate_ax.plot(range(seconds), ok, color="#1b7f3b", label="answered 200 per second")
    rate_ax.bar(range(seconds), refused, color="#b3261e", label="answered 429 per second")
    rate_ax.set(ylabel="answers per second", ylim=(0, None))
    lines = limit_ax.get_legend_handles_labels()
    more = rate_ax.get_legend_handles_labels()
    limit_ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize="small")
    fig.suptitle("parallel=auto against a service that refuses more than 6 requests at once")
    fig.savefig(path, dpi=110)


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--fixed", default="1,2,4,5,6,7,8,12,16,32")
    p.add_argument("--fixed-count", type=int, default=600)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--capacity", type=int, default=6)
    p.add_argument("--retry-after", type=float, default=0.5)
    p.add_argument("--docs", action="store_true")
    args = p.parse_args()
    load = [os.getloadavg()[0]]
    fixed: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-auto-") as tmp:
        root = Path(tmp)
        for workers in [int(w) for w in args.fixed.split(",")]:
            # Fewer items where runs are slow: 1-2 workers, and counts past the capacity
            # (every request past it is refused, and each refusal pauses every start).
            slow = workers <= 2 or workers > args.capacity + 2
            count = args.fixed_count // 6 if slow else args.fixed_count
            with serve(args.latency, args.capacity, args.retry_after) as service:
                summary, _ = run(service, str(workers), count, root / f"fixed-{workers}")
            fixed[workers] = float(summary["items_per_second"])
            print(f"parallel={workers}: {fixed[workers]:.1f} items/s", flush=True)
        with serve(args.latency, args.capacity, args.retry_after) as service:
            summary, began = run(service, "auto", args.count, root / "auto")
            answers = list(service.answers)
    load.append(os.getloadavg()[0])
    auto = float(summary["items_per_second"])
    best = max(fixed, key=lambda w: fixed[w])
    ratio = auto / fixed[best]
    late = [status for at, status in answers if at - began > 10]
    refused = late.count(429) / max(len(late), 1)
    settled = summary["concurrency"]["settled"]
    print(f"auto: {auto:.1f} items/s, settled at {settled}; best fixed {best}: {fixed[best]:.1f}")
    rows = [
        c.row("14", f"parallel=auto, {args.count} requests to a service refusing more than "
              f"{args.capacity} at once ({args.latency:g} s each, "
              f"Retry-After {args.retry_after:g})",
              f"{auto:.1f} items/s ({ratio:.2f}x the best fixed count), settled at {settled}",
              f"parallel={best}: {fixed[best]:.1f} items/s (fixed counts {args.fixed})",
              f">= {TARGET_RATIO:.2f}x", ratio >= TARGET_RATIO, fixed=fixed, auto=auto),
        c.row("14", "parallel=auto: requests refused (429) after the first 10 s",
              f"{refused:.1%} of {len(late)}", "-", f"<= {TARGET_REFUSED:.0%}",
              refused <= TARGET_REFUSED),
    ]  # fmt: skip
    c.report(rows, args.json)
    if args.docs:
        chart(summary, answers, began, c.REPO_DIR / "docs" / "auto.png")
        met = "met" if ratio >= TARGET_RATIO else "not met"
        few = "met" if refused <= TARGET_REFUSED else "not met"
        info = c.machine()
        table = "\n".join(f"| {w} | {r:.1f} | {r / fixed[best]:.2f} |" for w, r in fixed.items())
        section = f"""{SECTION}

A real HTTP service on the loopback address answers each request after {args.latency:g} s,
or at once with 429 and `Retry-After: {args.retry_after:g}` while more than
{args.capacity} requests are in progress. Every run is `python -m runner task=http` on it with
`retry.attempts=20 retry.backoff=0.1`. Produced by `python bench/bench_auto.py --docs` on
{info["date"]} ({info["cpu"]}, {info["cores"]} cores, runner at {info["commit"]}; load
average {load[0]:.2f} at the start, {load[1]:.2f} at the end).

| parallel | items/s | share of the best |
|---:|---:|---:|
{table}
| **auto** | **{auto:.1f}** | **{ratio:.2f}** |

`parallel=auto` over {args.count} requests, its climb from 1 included: **{ratio:.2f}x** the
best fixed count (parallel={best}; target >= {TARGET_RATIO:.2f}x: **{met}**);
settled at {settled}; after its first 10 s, **{refused:.1%}** of its {len(late)} requests
were refused (target <= {TARGET_REFUSED:.0%}: **{few}**).

![the limit and the service's answers per second over the run](auto.png)
"""
        print(f"\nwrote {c.write_section(SECTION, section)}")


if __name__ == "__main__":
    main()
