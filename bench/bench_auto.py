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

``--family`` (issue 24) runs the whole family of services instead: ones that serve 3, 6 or
12 at once at 50, 100 or 300 ms and refuse the rest with 429 and ``Retry-After: 1`` or
with no header, and ones limited by rate (``RATE_SERVICES``: N a second at a latency),
with ``retry.attempts=10 retry.backoff=0.1``, each run over at least 600 items (6 s of
the service's capacity when that is more). For each: the best fixed count (of the
service's limit, for a rate limit ceil(N x latency) and one more, and 2x and 5x),
``parallel=auto`` and its ratio to the best and share of refused requests, and fixed
counts at 2x and 5x the limit: their ratio to the best and the items that failed.
Targets: auto >= 0.90x with <= 5% refused; 2x and 5x >= 0.80x with no item failed.
``--quick`` keeps the corners (3 and 12 at once, 50 and 300 ms, one rate limit): some
fifteen minutes instead of about thirty-five. ``--docs`` writes the table to docs/BENCHMARKS.md;
``--from-json PATH`` renders it from the rows a run saved with ``--json PATH``.
"""

from __future__ import annotations

import json
import math
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
FAMILY_SECTION = "## parallel=auto against a family of services"
FAMILY_ARGS = ["task=http", "retry.attempts=10", "retry.backoff=0.1", "progress=off",
               "postprocessor=none"]  # fmt: skip
#: (requests a second, latency) of the services limited by rate.
RATE_SERVICES = [(20.0, 0.1), (50.0, 0.1), (100.0, 0.05), (30.0, 0.05)]
TARGET_OVER = 0.80
FAMILY_HEAD = (
    "| service | items | best fixed: items/s | auto items/s | auto ratio | auto refused "
    "| 2x the limit | 5x the limit | targets |\n|---|---:|---:|---:|---:|---:|---|---|---|"
)
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


def family_run(
    service: Service, parallel: str, count: int, folder: Path
) -> tuple[float, int, float]:
    """One run of the family: items/s (summary.json), items failed, share of answers 429."""
    url = f"task.url='{service.url}/{{id}}'"
    argv = [sys.executable, "-m", "runner", f"parallel={parallel}", url,
            f"source.count={count}", *FAMILY_ARGS, f"hydra.run.dir={folder}"]  # fmt: skip
    code, _, _, _ = c.run_measured(argv, cwd=folder.parent, log=folder.parent / "runs.log")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if code not in (0, 1):
        raise RuntimeError(f"parallel={parallel}: exit {code}")
    ok, refused = service.count(200), service.count(429)
    failed = count - int(summary["succeeded"])
    return float(summary["items_per_second"]), failed, refused / max(ok + refused, 1)


def family(quick: bool) -> list[dict[str, Any]]:
    """Every service of the family: what each count and auto got there."""
    services: list[dict[str, Any]] = []
    for capacity in (3, 12) if quick else (3, 6, 12):
        for latency in (0.05, 0.3) if quick else (0.05, 0.1, 0.3):
            for header in (1.0, None):
                services.append({"capacity": capacity, "latency": latency, "retry_after": header,
                                 "limit": capacity, "per_second": None, "best": [capacity],
                                 "speed": capacity / latency})  # fmt: skip
    for per_second, latency in RATE_SERVICES[-1:] if quick else RATE_SERVICES:
        limit = math.ceil(per_second * latency)
        services.append({"capacity": None, "latency": latency, "retry_after": 1.0,
                         "limit": limit, "per_second": per_second, "best": [limit, limit + 1],
                         "speed": per_second})  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-family-") as tmp:
        root = Path(tmp)
        for n, svc in enumerate(services):
            count = max(600, round(6 * svc["speed"]))
            got: dict[str, tuple[float, int, float]] = {}
            limit = svc["limit"]
            runs = [str(k) for k in svc["best"]] + [str(2 * limit), str(5 * limit), "auto"]
            for parallel in runs:
                # A fresh service per run: a rate limit's bucket starts full each time.
                with serve(svc["latency"], svc["capacity"], svc["retry_after"],
                           per_second=svc["per_second"]) as service:  # fmt: skip
                    got[parallel] = family_run(service, parallel, count, root / f"{n}-{parallel}")
            best = max(svc["best"], key=lambda k: got[str(k)][0])
            row = {**svc, "count": count, "best_count": best, "best_rate": got[str(best)][0],
                   "auto": got["auto"], "twice": got[str(2 * limit)],
                   "five": got[str(5 * limit)]}  # fmt: skip
            rows.append(row)
            print(family_line(row), flush=True)
    return rows


def family_name(row: dict[str, Any]) -> str:
    ms = f"{row['latency'] * 1000:g} ms"
    if row["per_second"] is not None:
        return f"{row['per_second']:g}/s, {ms}, Retry-After: 1"
    header = "no header" if row["retry_after"] is None else f"Retry-After: {row['retry_after']:g}"
    return f"{row['capacity']} at once, {ms}, {header}"


def family_best(row: dict[str, Any]) -> tuple[str, float]:
    """The best fixed count run on the service (the limit, one more, 2x or 5x) and its
    items/s: over a limit the refusals taught, a higher count may do better."""
    limit = row["limit"]
    fixed = {str(row["best_count"]): row["best_rate"], str(2 * limit): row["twice"][0],
             str(5 * limit): row["five"][0]}  # fmt: skip
    best = max(fixed, key=lambda k: fixed[k])
    return best, fixed[best]


def family_met(row: dict[str, Any]) -> bool:
    top, auto = family_best(row)[1], row["auto"]
    return (auto[0] / top >= TARGET_RATIO and auto[2] <= TARGET_REFUSED
            and all(r[0] / top >= TARGET_OVER and r[1] == 0
                    for r in (row["twice"], row["five"])))  # fmt: skip


def family_line(row: dict[str, Any]) -> str:
    """One service's row of the table (Markdown)."""
    best, top = family_best(row)
    auto, twice, five = row["auto"], row["twice"], row["five"]
    return (
        f"| {family_name(row)} | {row['count']} | {best}: {top:.1f} | "
        f"{auto[0]:.1f} | **{auto[0] / top:.2f}** | {auto[2]:.1%} | "
        f"{twice[0] / top:.2f}, {twice[1]} failed, {twice[2]:.1%} refused | "
        f"{five[0] / top:.2f}, {five[1]} failed, {five[2]:.1%} refused | "
        f"{'met' if family_met(row) else '**not met**'} |"
    )


def family_docs(rows: list[dict[str, Any]], load: list[float], quick: bool) -> None:
    info = c.machine()
    table = "\n".join(family_line(row) for row in rows)
    met = sum(family_met(row) for row in rows)
    section = f"""{FAMILY_SECTION}

Services on the loopback address (`tests/http_service.py`) that serve 3, 6 or 12 requests
at once at 50, 100 or 300 ms and refuse the rest with 429 and `Retry-After: 1` or with no
header, and services limited by rate (a token bucket of N a second, a tenth of a second's
worth kept). Every run is `python -m runner task=http` with `retry.attempts=10
retry.backoff=0.1`, over 600 items or 6 s of the service's capacity when that is more, on
a fresh service. "Best fixed" is the best of the fixed counts run: the service's limit
(for a rate limit, ceil(N x latency) and one more) and twice and five times that limit
(2x, 5x), since above a limit the refusals taught a higher count may do better.
Refused: the share of the service's answers that were 429. Targets: auto >=
{TARGET_RATIO:.2f}x the best fixed count with <= {TARGET_REFUSED:.0%} refused; 2x and 5x >=
{TARGET_OVER:.2f}x with no item failed. Produced by `python bench/bench_auto.py --family
{"--quick " if quick else ""}--docs` on {info["date"]} ({info["cpu"]}, {info["cores"]} cores,
runner at {info["commit"]}; load average {load[0]:.2f} at the start, {load[1]:.2f} at the end).

{FAMILY_HEAD}
{table}

Targets met on **{met} of {len(rows)}** services. (The section above was taken before a
refusal stopped pausing the whole run: its fixed counts above 6 collapse there.)
"""
    print(f"\nwrote {c.write_section(FAMILY_SECTION, section)}")


def chart(
    summary: dict[str, Any],
    answers: list[tuple[float, int]],
    began: float,
    path: Path,
    title: str = "parallel=auto against a service that refuses more than 6 requests at once",
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
    fig.suptitle(title)
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
    p.add_argument("--family", action="store_true", help="every service of issue 24's family")
    p.add_argument("--quick", action="store_true", help="with --family: its corners only")
    p.add_argument("--from-json", help="with --family --docs: the rows a run saved (--json)")
    args = p.parse_args()
    load = [os.getloadavg()[0]]
    if args.family:
        if args.from_json:
            saved = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
            rows, load = saved["rows"], saved["load"]
            args.quick = saved["quick"]
        else:
            rows = family(args.quick)
            load.append(os.getloadavg()[0])
        if args.json and not args.from_json:
            saved = {"rows": rows, "load": load, "quick": args.quick}
            Path(args.json).write_text(json.dumps(saved, indent=1), encoding="utf-8")
        if args.docs:
            family_docs(rows, load, args.quick)
        return
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
