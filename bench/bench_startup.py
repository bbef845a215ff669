"""Target 4: start-up of ``python -m runner`` for a one-item run <= 1.3x a minimal Hydra app.

* runner: ``python -m runner source.count=1 task.seconds=0 hydra.run.dir=<tmp>``: the
  default config (range source, sleep task, thread executor, summary post-processor,
  progress auto = lines off a terminal) with one no-op item.
* baseline: ``python bench/minimal_hydra_app.py hydra.run.dir=<tmp>``: a ``@hydra.main``
  app with a one-key config (bench/minimal_conf/config.yaml) that prints it.

Both write their Hydra run folder (.hydra/*.yaml) to a fresh temporary folder each run.
The two commands alternate (A B, then B A, ...) after warm-up runs, so a change of load
on the machine hits both alike; the figures are medians of wall time, and of user+sys CPU
time (less sensitive to other processes). The ratio of median wall times is the target.

If hyperfine is installed it is also run, as a cross-check (``--no-hyperfine`` to skip).
runner's own modules are compiled first, as ``make`` compiles them after installing
(``_common.compile_runner``), so no measured start-up compiles them.

Usage: ``python bench/bench_startup.py [--rounds R]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c

TARGET_RATIO = 1.3
MINIMAL_APP = c.BENCH_DIR / "minimal_hydra_app.py"
RUNNER_ARGS = ["-m", "runner", "source.count=1", "task.seconds=0"]


def commands(run_dir: Path) -> dict[str, list[str]]:
    return {
        "baseline": [sys.executable, str(MINIMAL_APP), f"hydra.run.dir={run_dir / 'minimal'}"],
        "runner": [sys.executable, *RUNNER_ARGS, f"hydra.run.dir={run_dir / 'runner'}"],
    }


def interleaved(root: Path, rounds: int, warmup: int, env: dict[str, str]) -> dict[str, Any]:
    walls: dict[str, list[float]] = {"baseline": [], "runner": []}
    cpus: dict[str, list[float]] = {"baseline": [], "runner": []}
    for r in range(warmup + rounds):
        order = ["baseline", "runner"] if r % 2 == 0 else ["runner", "baseline"]
        for name in order:
            run_dir = root / f"{name}-{r}"
            argv = commands(run_dir)[name]
            code, wall, cpu, _ = _run(argv, root, env)
            if code != 0:
                raise RuntimeError(f"{' '.join(argv)} exited with {code}; see {root}/startup.log")
            if r >= warmup:
                walls[name].append(wall)
                cpus[name].append(cpu)
            shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "wall": {k: c.median(v) for k, v in walls.items()},
        "cpu": {k: c.median(v) for k, v in cpus.items()},
        "walls": walls,
        "cpus": cpus,
    }


def _run(argv: list[str], root: Path, env: dict[str, str]) -> tuple[int, float, float, int]:
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        return c.run_measured(argv, cwd=root, log=root / "startup.log")
    finally:
        os.environ.clear()
        os.environ.update(old)


def with_hyperfine(root: Path, runs: int) -> dict[str, float] | None:
    exe = shutil.which("hyperfine")
    if exe is None:
        return None
    out = root / "hyperfine.json"
    cmds = commands(root / "hf")
    argv = [
        exe, "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(out),
        "--command-name", "baseline", subprocess.list2cmdline(cmds["baseline"]),
        "--command-name", "runner", subprocess.list2cmdline(cmds["runner"]),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"hyperfine failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        return None
    data = json.loads(out.read_text(encoding="utf-8"))
    return {res["command"]: res["median"] for res in data["results"]}


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-hyperfine", action="store_true")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        env = dict(os.environ)
        main_res = interleaved(root, args.rounds, args.warmup, env)
        w, cpu = main_res["wall"], main_res["cpu"]
        print(
            f"interleaved, {args.rounds} rounds: baseline {w['baseline'] * 1000:.0f} ms "
            f"(CPU {cpu['baseline'] * 1000:.0f} ms), runner {w['runner'] * 1000:.0f} ms "
            f"(CPU {cpu['runner'] * 1000:.0f} ms)",
            flush=True,
        )
        hf = None if args.no_hyperfine else with_hyperfine(root, 10)
        if hf is not None:
            print(
                f"hyperfine (10 runs, median): baseline {hf['baseline'] * 1000:.0f} ms, "
                f"runner {hf['runner'] * 1000:.0f} ms, ratio {hf['runner'] / hf['baseline']:.2f}",
                flush=True,
            )

    ratio = w["runner"] / w["baseline"]
    notes = [f"CPU ratio {cpu['runner'] / cpu['baseline']:.2f}"]
    if hf is not None:
        notes.append(f"hyperfine ratio {hf['runner'] / hf['baseline']:.2f}")
    rows = [
        c.row(
            "4",
            "start-up: python -m runner, one no-op item (default config)",
            f"{w['runner'] * 1000:.0f} ms = {ratio:.2f}x baseline ({'; '.join(notes)})",
            f"{w['baseline'] * 1000:.0f} ms (minimal @hydra.main app)",
            f"<= {TARGET_RATIO}x baseline",
            ratio <= TARGET_RATIO,
            wall_seconds=main_res["walls"],
            cpu_seconds=main_res["cpus"],
            hyperfine_median_seconds=hf,
        )
    ]
    c.report(rows, args.json)


if __name__ == "__main__":
    main()
