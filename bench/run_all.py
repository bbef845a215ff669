"""Run every benchmark (issues 2, 3, 4, 10 and 12) and print one markdown table of the results.

Each benchmark runs in its own process (one run's threads, imports and memory never
affect another's), one after the other. Exits 0 even when a target is missed or a
benchmark fails: benchmarks are not tests.

Usage: ``python bench/run_all.py [--only throughput,memory] [--out results.md]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

BENCHMARKS = (
    "throughput", "efficiency", "memory", "startup", "judge", "reliability", "process", "dask",
    "auto", "compare",
)  # fmt: skip
#: Script and arguments of each benchmark, where not ``bench_<name>.py``. compare.py
#: writes docs/ by default; here, like the others, it only reports.
SCRIPTS = {"compare": ["compare.py", "--no-docs"]}


def run_one(name: str, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    script_name, *args = SCRIPTS.get(name, [f"bench_{name}.py"])
    script = c.BENCH_DIR / script_name
    out = tmp / f"{name}.json"
    print(f"\n=== {script.name} ===", flush=True)
    started = time.perf_counter()
    argv = [sys.executable, str(script), *args, "--json", str(out)]
    done = subprocess.run(argv, cwd=c.REPO_DIR)
    took = time.perf_counter() - started
    print(f"--- {script.name}: {took:.0f} s", flush=True)
    if done.returncode != 0 or not out.exists():
        failed = c.row(
            "?", f"{script.name} failed (exit code {done.returncode})", "-", "-", "-", False
        )
        return [failed], None
    data = json.loads(out.read_text(encoding="utf-8"))
    return data["rows"], data["machine"]


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any], command: str) -> str:
    lines = [
        f"Machine: {c.describe_machine(machine)}.",
        "",
        f"Command: `{command}`",
        "",
        "| # | Benchmark | Measured | Baseline (same run) | Target | Met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["target_id"], r["name"], r["measured"], r["baseline"], r["target"]]
        cells = [str(x).replace("|", "\\|") for x in cells]
        lines.append("| " + " | ".join(cells) + f" | {'yes' if r['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument("--out", metavar="PATH", help="also write the markdown to this file")
    args = p.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")

    rows: list[dict[str, Any]] = []
    info: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        for name in chosen:
            got, machine = run_one(name, Path(tmp))
            rows.extend(got)
            info = info or machine
    command = "python bench/run_all.py" + (f" --only {args.only}" if args.only else "")
    text = markdown(rows, info or c.machine(), command)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
