"""Issues 3 and 4: the sample judge experiment repaired with 1..16 workers, one sweep.

Runs ``python -m runner -m parallel=1,2,4,6,8,16 task=judge_rerun progress=off`` (each
job makes and repairs its own copy of the sample experiment with the default local judge,
0.5 s per call) and reads the sweep report runner writes. Targets: speedup >= 5x at
parallel=6 (issue 3) and >= 6.5x at parallel=8 (issue 4). With ``--docs`` the report
(sweep.md and sweep.svg) is copied into docs/ for BENCHMARKS.md.

Usage: ``python bench/bench_judge.py [--docs] [--json PATH]`` (about 90 s).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as c

WORKERS = (1, 2, 4, 6, 8, 16)
TARGETS = {6: 5.0, 8: 6.5}


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--docs", action="store_true", help="copy sweep.md/png into docs/")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "runner",
                "-m",
                f"parallel={','.join(map(str, WORKERS))}",
                "task=judge_rerun",
                "progress=off",
                f"hydra.sweep.dir={sweep}",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            return 1
        report = json.loads((sweep / "sweep.json").read_text())
        if args.docs:
            docs = c.REPO_DIR / "docs"
            shutil.copy(sweep / "sweep.svg", docs / "sweep-judge.svg")
            text = (sweep / "sweep.md").read_text().replace("sweep.svg", "sweep-judge.svg")
            (docs / "sweep-judge.md").write_text(text.replace(str(sweep), "<sweep folder>"))
    jobs = {job["parallel"]: job for job in report["jobs"]}
    rows = []
    for workers, target in TARGETS.items():
        job = jobs[workers]
        speedup = job["speedup"]
        rows.append(
            {
                "target_id": f"judge-{workers}",
                "name": f"sample judge experiment, speedup at parallel={workers}",
                "measured": f"{speedup:.2f}x ({job['wall_seconds']:.2f} s)",
                "baseline": f"parallel=1: {jobs[1]['wall_seconds']:.2f} s",
                "target": f">= {target}x",
                "met": speedup >= target,
                "details": {"items": job["succeeded"] + job["failed"]},
            }
        )
    for workers in WORKERS:
        job = jobs[workers]
        print(
            f"parallel={workers:>2}: {job['wall_seconds']:6.2f} s  "
            f"{job['items_per_second']:6.1f} items/s  speedup {job['speedup']:.2f}"
        )
    c.report(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
