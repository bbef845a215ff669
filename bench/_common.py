"""Shared helpers of the benchmark scripts: machine description, results, child processes.

Every ``bench_*.py`` script reports a list of *rows*, one per target::

    {"target_id": "1", "name": ..., "measured": ..., "baseline": ..., "target": ...,
     "met": bool, "details": {...}}

printed as text, and written as JSON with ``--json PATH`` (``run_all.py`` reads them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark script shares.

    Every benchmark parses its arguments first: runner's own modules are compiled here
    too (:func:`compile_runner`), so that no measured start-up compiles them; not in a
    measured child of compare.py (``--child``), whose own figures must not include it.
    """
    if "--child" not in sys.argv:
        compile_runner()
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", help="also write the result rows as JSON here")
    return p


def compile_runner() -> None:
    """Bring runner's bytecode up to date, as ``make`` does after installing it.

    An editable install keeps runner's modules in the source tree, where pip compiles
    nothing; with PYTHONDONTWRITEBYTECODE set (as here), a module edited since the last
    ``make`` would be compiled again at every start of every measured process, which is
    not what an installed runner costs.
    """
    folders = [str(REPO_DIR / name) for name in ("runner", "plugins", "conf")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    # Read-only git queries, to record which code was measured.
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    mem = _memory_gb()
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": usable,
        "memory_gb": round(mem, 1) if mem is not None else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": (commit + (" + uncommitted changes" if dirty else "")) or "unknown",
    }


def describe_machine(info: dict[str, Any]) -> str:
    mem = f", {info['memory_gb']} GB RAM" if info.get("memory_gb") else ""
    return (
        f"{info['cpu']}, {info['cores']} usable cores{mem}; {info['os']}; "
        f"Python {info['python']}; runner at {info['commit']}; {info['date']}"
    )


def row(
    target_id: str,
    name: str,
    measured: str,
    baseline: str,
    target: str,
    met: bool,
    **details: Any,
) -> dict[str, Any]:
    return {
        "target_id": target_id,
        "name": name,
        "measured": measured,
        "baseline": baseline,
        "target": target,
        "met": bool(met),
        "details": details,
    }


def report(rows: list[dict[str, Any]], json_path: str | None) -> None:
    """Print the rows and, if asked, write them as JSON. Never fails the benchmark."""
    print()
    for r in rows:
        verdict = "MET" if r["met"] else "MISSED"
        print(f"[{verdict}] target {r['target_id']}: {r['name']}")
        print(f"    measured: {r['measured']}")
        print(f"    baseline: {r['baseline']}")
        print(f"    target:   {r['target']}")
    if json_path:
        Path(json_path).write_text(
            json.dumps({"machine": machine(), "rows": rows}, indent=2), encoding="utf-8"
        )


def run_measured(
    argv: Sequence[str], cwd: str | os.PathLike[str] | None = None, log: Path | None = None
) -> tuple[int, float, float, int]:
    """Run ``argv`` to its end; return (exit code, wall s, user+sys CPU s, peak RSS bytes).

    ``os.wait4`` returns the resource usage of exactly this child, so the peak RSS is the
    child's own, not the largest of every child this process ever waited for.
    """
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime, rss


def fmt_rate(value: float) -> str:
    return f"{value:,.0f} items/s"


def fmt_mb(value_bytes: float) -> str:
    return f"{value_bytes / 1e6:,.1f} MB"


def runner_settings(count: int, seconds: float, parallel: int) -> Any:
    """Settings of ``parallel=P source=range source.count=N task=sleep task.seconds=S
    executor=thread postprocessor=none progress=lines`` (what ``python -m runner`` builds
    from those overrides, without Hydra)."""
    from runner.config.settings import Settings

    return Settings(
        parallel=parallel,
        dry_run=False,
        progress="lines",
        log_level="INFO",
        plugins={
            "source": {"name": "range", "count": count},
            "task": {"name": "sleep", "seconds": seconds, "fail_rate": 0.0, "seed": 0},
            "executor": {"name": "thread", "max_chunk": 64, "queue_factor": 2},
            "postprocessor": {"name": "none"},
        },
    )


def run_runner_in_process(
    count: int, seconds: float, parallel: int, out_dir: Path, settings: Any = None
) -> dict[str, Any]:
    """One run through ``runner.execute.run.execute``, as the CLI's job does it: runner.log and the
    journal (results.jsonl) are written to ``out_dir``. The console only shows warnings,
    so progress lines are formatted and written to runner.log but not to the terminal.

    Returns the wall time of ``execute`` (plugin construction, the run, journal close and
    summary.json included) and the summary it wrote. ``settings`` replaces the ones
    :func:`runner_settings` builds (same count), for variants of the run.
    """
    from runner.execute.run import execute
    from runner.show import logs

    out_dir.mkdir(parents=True, exist_ok=True)
    console = logs.Console()
    console.configure("WARNING")
    sink = logs.add_run_log(out_dir)
    try:
        settings = settings or runner_settings(count, seconds, parallel)
        started = time.perf_counter()
        code = execute(settings, out_dir)
        wall = time.perf_counter() - started
    finally:
        logs.remove_run_log(sink)
        console.close()
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    with open(out_dir / "results.jsonl", "rb") as fh:
        lines = sum(1 for _ in fh)
    if code != 0 or lines != count or summary["total"] != count:
        raise RuntimeError(
            f"runner run went wrong: exit code {code}, {lines} journal lines, "
            f"summary total {summary['total']} (expected {count})"
        )
    return {"wall": wall, "summary": summary}


def bare_items(count: int) -> tuple[Any, Any]:
    """The same items and task function runner runs: range source, sleep task (seconds=0)."""
    from runner_plugins.sources import RangeSource
    from runner_plugins.tasks import SleepTask

    return RangeSource(count), SleepTask(seconds=0).run


DOCS = REPO_DIR / "docs" / "BENCHMARKS.md"


def write_section(heading: str, section: str, path: Path = DOCS) -> Path:
    """Replace the section of ``path`` that starts with ``heading`` (up to the next ``## ``
    heading) by ``section``, or append it; the rest of the file is left as it was."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(text, encoding="utf-8")
    return path
