"""Target 3: peak memory of a million no-op items: <= 100 MB, and flat in the item count.

Each run is its own child process and its peak RSS is that child's own maximum resident
set size (``ru_maxrss`` from ``os.wait4`` on that child), so one run's peak never leaks
into another's figure.

* runner: ``python -m runner parallel=6 source.count=N task.seconds=0 postprocessor=none
  progress=lines`` for N = 100k, 300k and 1M (journal and logs in a temporary folder).
  "Flat" means the peak at 1M exceeds the peak at 100k by at most 10% or 10 MB,
  whichever is larger.
* baseline: the submit-all pattern (one Future per item submitted to
  ``ThreadPoolExecutor(6)``, then ``as_completed``) over the same items and task function,
  for 1M items by default. ``--bare-count 300000`` measures it at 100k and 300k instead
  and extrapolates linearly to 1M (the output says which was done).

Usage: ``python bench/bench_memory.py [--counts 100000,300000,1000000] [--bare-count N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _common as c

LIMIT_BYTES = 100e6
FLAT_RATIO = 1.10
FLAT_SLACK_BYTES = 10e6
TARGET_COUNT = 1_000_000


def _bare_child(count: int) -> None:
    """Runs in the child process: the submit-all baseline over ``count`` items."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    source, run = c.bare_items(count)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(run, item) for item in source]
        for future in as_completed(futures):
            future.result()


def runner_peak(count: int, parallel: int, root: Path) -> tuple[float, float]:
    out = root / f"runner-{count}"
    argv = [
        sys.executable, "-m", "runner", f"parallel={parallel}", f"source.count={count}",
        "task.seconds=0", "postprocessor=none", "progress=lines", f"hydra.run.dir={out}",
    ]  # fmt: skip
    code, wall, _, rss = c.run_measured(argv, cwd=root, log=root / "runner.log")
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}; see its log")
    (out / "results.jsonl").unlink()  # up to ~60 MB; the temporary folder goes anyway
    return rss, wall


def bare_peak(count: int, root: Path) -> tuple[float, float]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--bare-child", str(count)]
    code, wall, _, rss = c.run_measured(argv, cwd=root, log=root / "bare.log")
    if code != 0:
        raise RuntimeError(f"baseline child exited with {code}")
    return rss, wall


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--counts", default="100000,300000,1000000")
    p.add_argument("--parallel", type=int, default=6)
    p.add_argument("--bare-count", type=int, default=TARGET_COUNT)
    p.add_argument("--bare-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.bare_child is not None:
        _bare_child(args.bare_child)
        return
    counts = [int(x) for x in args.counts.split(",")]

    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        for n in counts:
            rss, wall = runner_peak(n, args.parallel, root)
            peaks[n] = rss
            print(f"runner    {n:>9,} items: peak RSS {c.fmt_mb(rss)} ({wall:.1f} s)", flush=True)
        if args.bare_count >= TARGET_COUNT:
            bare, wall = bare_peak(args.bare_count, root)
            print(
                f"baseline  {args.bare_count:>9,} items: peak RSS {c.fmt_mb(bare)} ({wall:.1f} s)"
            )
            bare_note = f"measured at {args.bare_count:,} items"
            bare_points = {args.bare_count: bare}
            bare_at_target = bare
        else:
            low = args.bare_count // 3
            bare_points = {}
            for n in (low, args.bare_count):
                bare_points[n], wall = bare_peak(n, root)
                print(
                    f"baseline  {n:>9,} items: peak RSS {c.fmt_mb(bare_points[n])} ({wall:.1f} s)"
                )
            slope = (bare_points[args.bare_count] - bare_points[low]) / (args.bare_count - low)
            bare_at_target = bare_points[args.bare_count] + slope * (TARGET_COUNT - args.bare_count)
            bare_note = (
                f"extrapolated linearly to {TARGET_COUNT:,} from {low:,} and "
                f"{args.bare_count:,} items"
            )
            print(f"baseline  {TARGET_COUNT:>9,} items: {c.fmt_mb(bare_at_target)} ({bare_note})")

    smallest, largest = min(counts), max(counts)
    top = peaks[largest]
    flat = top <= max(peaks[smallest] * FLAT_RATIO, peaks[smallest] + FLAT_SLACK_BYTES)
    series = ", ".join(f"{n // 1000:,}k: {c.fmt_mb(peaks[n])}" for n in counts)
    rows = [
        c.row(
            "3",
            f"peak RSS of python -m runner, {largest:,} no-op items, parallel={args.parallel}",
            f"{c.fmt_mb(top)} ({series})",
            f"{c.fmt_mb(bare_at_target)} for submit-all with {TARGET_COUNT:,} items ({bare_note})",
            f"<= {c.fmt_mb(LIMIT_BYTES)} and flat in N ({largest // 1000:,}k within 10% of "
            f"{smallest // 1000:,}k)",
            top <= LIMIT_BYTES and flat,
            runner_peak_bytes={str(n): v for n, v in peaks.items()},
            baseline_peak_bytes={str(n): v for n, v in bare_points.items()},
            baseline_at_1m_bytes=bare_at_target,
            baseline_method=bare_note,
            flat=flat,
        )
    ]
    c.report(rows, args.json)


if __name__ == "__main__":
    main()
