"""Issue 12: runner beside its peers, every figure measured in the same run.

Peers, each given the same work as runner (same item count, same per-item function or
command, same number of workers):

* **runner**: ``python -m runner ...`` (thread executor), a subprocess per run; its work
  phase is summary.json's ``wall_seconds`` (first item started to last item finished);
* **bare pool**: ``ThreadPoolExecutor(P)``, submit every item, iterate ``as_completed``;
* **joblib threads**: ``Parallel(n_jobs=P, prefer="threads")(delayed(f)(i) for i in items)``;
* **mpire threads**: ``WorkerPool(n_jobs=P, start_method="threading").map(f, items)``;
* **xargs -P**: ``seq N | xargs -P P -n1 CMD`` (commands only);
* **GNU parallel**: ``seq N | parallel --will-cite -j P CMD`` (commands only);
* **spawn floor** (the subprocess workload only): P Python threads that each start
  ``/bin/true`` with ``os.posix_spawn`` and wait for it, capturing nothing: commands
  started as cheaply as Python can. Its fastest round plus the minimal Hydra app's
  fastest start-up bound from below what any Hydra app can do here, which the targets
  table shows beside the targets against xargs and GNU parallel.

The Python peers run in a child process of this script each (``--child``), timed inside
around the pool (its creation to its shutdown: the work phase) and from outside (the whole
process, start-up and imports included). Every run is its own child, so a peak RSS is that
child's own ``ru_maxrss``. Each workload runs ``--repeat`` rounds (5 by default; start-up
3x as many); every round runs every peer once, starting at a different one, so a change
of load hits all alike; figures are medians.

Usage: ``python bench/compare.py`` (about 15 minutes on 2 cores; writes the section
"Against the peers" of docs/BENCHMARKS.md and docs/peers.png) or
``python bench/compare.py --quick`` (tiny counts, one round, under a minute; writes
nothing unless given ``--out DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import _common as c
import bench_efficiency
import bench_memory
import bench_startup
import bench_throughput

SECTION = "## Against the peers"
RUNNER, BARE, JOBLIB, MPIRE, XARGS, GNU = (
    "runner", "bare pool", "joblib threads", "mpire threads", "xargs -P", "GNU parallel",
)  # fmt: skip
PEERS = (RUNNER, BARE, JOBLIB, MPIRE, XARGS, GNU)
HYDRA = "minimal Hydra app"
FLOOR = "spawn floor"
SHELL_PEERS = (*PEERS, FLOOR)
PYTHON_PEERS = (RUNNER, BARE, JOBLIB, MPIRE)  # the peers that run Python functions
STARTUP_PEERS = (RUNNER, HYDRA, BARE, JOBLIB, MPIRE, XARGS, GNU)

# Targets of issue 12.
MAX_1M_WALL = 4.0
MIN_1M_VS_BARE = 6.0
MAX_RSS = 40e6
MAX_VS_XARGS = 0.7
MAX_VS_GNU = 0.15
#: The command-line peers with a target for the whole subprocess run, and its limit.
AGAINST_COMMANDS = ((XARGS, MAX_VS_XARGS), (GNU, MAX_VS_GNU))
MAX_PHASE_VS_PIPES = 1.15
MIN_EFFICIENCY = 0.95
MAX_STARTUP = bench_startup.TARGET_RATIO
#: Other processes' share of the CPU above which the report says the machine was shared.
BUSY = 0.10

# One no-op item through each tool, for the start-up comparison.
STARTUP_SNIPPETS = {
    BARE: "from concurrent.futures import ThreadPoolExecutor as T\n"
    "with T(6) as p: p.submit(int).result()",
    JOBLIB: "from joblib import Parallel, delayed\n"
    "Parallel(n_jobs=6, prefer='threads')(delayed(int)() for _ in range(1))",
    MPIRE: "from mpire import WorkerPool\n"
    "with WorkerPool(n_jobs=6, start_method='threading') as p: p.map(int, [0])",
}


@dataclass
class Work:
    """One workload: the items, the workers, the peers that run it and how many rounds."""

    key: str
    title: str
    kind: str  # noop | sleep | shell | judge | startup
    count: int
    parallel: int
    seconds: float = 0.0
    peers: tuple[str, ...] = PYTHON_PEERS
    rounds: int = 5
    extra: list[str] = field(default_factory=list)  # runner overrides added

    def runner_overrides(self) -> list[str]:
        if self.kind == "shell":
            base = ["task=shell", "task.command=[/bin/true]", f"source.count={self.count}"]
            return [*base, f"parallel={self.parallel}", *self.extra]
        if self.kind == "judge":
            return [f"parallel={self.parallel}", "task=judge_rerun", "progress=off", *self.extra]
        return [
            f"source.count={self.count}",
            f"task.seconds={self.seconds:g}",
            f"parallel={self.parallel}",
            "progress=off",
            *self.extra,
        ]

    def command(self, peer: str) -> str:
        """The shell pipeline of a command-line peer."""
        tool = {
            XARGS: f"xargs -P{self.parallel} -n1",
            GNU: f"parallel --will-cite -j{self.parallel}",
        }[peer]
        return f"seq {self.count} | {tool} /bin/true"


def workloads(quick: bool, repeat: int, judge_latency: float | None) -> list[Work]:
    """The comparison's workloads: full counts, or tiny ones for ``--quick``."""
    n = {
        "noop": 2000 if quick else 100_000,
        "big": 20_000 if quick else 1_000_000,
        "small": 2000 if quick else 10_000,
        "shell": 100 if quick else 2000,
        "io": 200 if quick else 2000,
        "eff": 128 if quick else 1000,
    }
    judge_extra = [] if judge_latency is None else [f"task.latency={judge_latency:g}"]
    return [
        Work("startup", "Start-up: one no-op item", "startup", 1, 6,
             peers=STARTUP_PEERS, rounds=3 * repeat),
        Work("noop", f"{n['noop']:,} no-op items at parallel=6", "noop", n["noop"], 6,
             rounds=repeat),
        Work("big", f"{n['big']:,} no-op items at parallel=6", "noop", n["big"], 6,
             rounds=repeat),
        Work("small", f"{n['small']:,} no-op items at parallel=6 (memory reference)", "noop",
             n["small"], 6, rounds=repeat),
        Work("shell", f"{n['shell']:,} x /bin/true at parallel=8 (subprocess)", "shell",
             n["shell"], 8, peers=SHELL_PEERS, rounds=repeat),
        Work("io", f"{n['io']:,} x 5 ms sleep at parallel=32 (I/O-bound)", "sleep", n["io"],
             32, 0.005, rounds=repeat),
        Work("eff", f"{n['eff']:,} x 50 ms sleep at parallel=64 (efficiency)", "sleep",
             n["eff"], 64, 0.05, rounds=repeat),
        Work("judge1", "sample judge experiment at parallel=1", "judge", 0, 1,
             peers=(RUNNER,), rounds=repeat, extra=judge_extra),
        Work("judge6", "sample judge experiment at parallel=6", "judge", 0, 6,
             peers=(RUNNER,), rounds=repeat, extra=judge_extra),
    ]  # fmt: skip


GROUPS = {
    "startup": ["startup"],
    "noop": ["noop"],
    "memory": ["big", "small"],
    "shell": ["shell"],
    "io": ["io"],
    "efficiency": ["eff"],
    "judge": ["judge1", "judge6"],
}


# --- the child process of a Python peer -----------------------------------------------


def _true(_item: Any) -> None:
    subprocess.run(["/bin/true"], capture_output=True, start_new_session=True, check=True)


def bare_pipes(count: int, parallel: int) -> float:
    """Seconds for the submit-all ThreadPoolExecutor loop running ``/bin/true`` per item."""
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(_true, i) for i in range(count)]
        for future in as_completed(futures):
            future.result()
    return time.perf_counter() - started


def spawn_floor(count: int, parallel: int) -> float:
    """Seconds for ``parallel`` threads to start ``/bin/true`` ``count`` times with
    ``os.posix_spawn`` and wait for each: no pipes, no session, nothing read."""
    todo = iter(range(count))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
            os.waitpid(pid, 0)

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def child(spec: dict[str, Any]) -> None:
    """Run one peer over one workload in this process; write its work-phase seconds."""
    peer, kind, n, par, s = (spec[k] for k in ("peer", "kind", "count", "parallel", "seconds"))
    if peer == FLOOR:
        seconds = spawn_floor(n, par)
    elif peer == BARE:
        if kind == "noop":
            seconds = bench_throughput.bare_pool(n, par)
        elif kind == "sleep":
            seconds = bench_efficiency.bare_pool(n, s, par)
        else:
            seconds = bare_pipes(n, par)
    else:
        from runner_plugins.tasks import SleepTask

        source, _ = c.bare_items(n)
        run = _true if kind == "shell" else SleepTask(seconds=s).run
        if peer == JOBLIB:
            from joblib import Parallel, delayed

            started = time.perf_counter()
            Parallel(n_jobs=par, prefer="threads")(delayed(run)(item) for item in source)
        else:
            from mpire import WorkerPool  # type: ignore[attr-defined]  # (no __all__)

            started = time.perf_counter()
            with WorkerPool(n_jobs=par, start_method="threading") as pool:
                pool.map(run, source, iterable_len=n)
        seconds = time.perf_counter() - started
    Path(spec["out"]).write_text(json.dumps({"seconds": seconds}), encoding="utf-8")


# --- one run of one peer ----------------------------------------------------------------


class NotMeasured(Exception):
    """A peer's run that could not be measured; the message says why."""


def _checked(argv: list[str], root: Path, log: Path) -> tuple[float, float, int]:
    code, wall, cpu, rss = c.run_measured(argv, cwd=root, log=log)
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-800:]
        raise NotMeasured(f"{' '.join(argv)} exited with {code}: {tail}")
    return wall, cpu, rss


def run_once(work: Work, peer: str, root: Path) -> dict[str, float]:
    """One run: whole-process wall, CPU and peak RSS, and the work phase where there is one."""
    log = root / f"{work.key}.log"
    run_dir = root / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    if work.kind == "startup":
        wall, cpu, _ = _checked(startup_argv(peer, run_dir), root, log)
        return {"whole_s": wall, "cpu_s": cpu}
    if peer == RUNNER:
        argv = [sys.executable, "-m", "runner", *work.runner_overrides()]
        wall, cpu, rss = _checked([*argv, f"hydra.run.dir={run_dir}"], root, log)
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        if summary["failed"] or not summary["succeeded"]:
            raise NotMeasured(f"{' '.join(argv)}: {summary['failed']} item(s) failed")
        shutil.rmtree(run_dir)  # results.jsonl of 1M items is ~60 MB
        return {"whole_s": wall, "cpu_s": cpu, "rss": rss, "phase_s": summary["wall_seconds"]}
    if peer in (XARGS, GNU):
        wall, cpu, _ = _checked(["sh", "-c", work.command(peer)], root, log)
        return {"whole_s": wall, "cpu_s": cpu}
    out = root / "child.json"
    spec = {**vars(work), "peer": peer, "out": str(out)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    wall, cpu, rss = _checked(argv, root, log)
    phase = json.loads(out.read_text(encoding="utf-8"))["seconds"]
    return {"whole_s": wall, "cpu_s": cpu, "rss": rss, "phase_s": phase}


def startup_argv(peer: str, run_dir: Path) -> list[str]:
    if peer in (RUNNER, HYDRA):
        return bench_startup.commands(run_dir)["runner" if peer == RUNNER else "baseline"]
    if peer == XARGS:
        return ["sh", "-c", "echo 1 | xargs -n1 /bin/true"]
    if peer == GNU:
        return ["sh", "-c", "echo 1 | parallel --will-cite /bin/true"]
    return [sys.executable, "-c", STARTUP_SNIPPETS[peer]]


# --- peers available, versions ----------------------------------------------------------


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else ""


def gnu_parallel(install: bool) -> tuple[str | None, str]:
    """(``parallel``, its version) if GNU parallel is installed, else (None, why not).

    With ``install``, a missing one is installed from Debian's packages when this runs as
    root with apt-get. moreutils also has a ``parallel``; that one is not GNU parallel.
    """
    if shutil.which("parallel") is None and install:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            why = "not running as root" if os.geteuid() != 0 else "no apt-get here"
            return None, f"not installed, and cannot be installed ({why})"
        print("GNU parallel missing: apt-get install -y parallel", flush=True)
        install_argv = ["apt-get", "install", "-y", "parallel"]
        done = subprocess.run(install_argv, capture_output=True, text=True)
        if done.returncode != 0:  # the package lists may be missing or stale
            subprocess.run(["apt-get", "update"], capture_output=True)
            done = subprocess.run(install_argv, capture_output=True, text=True)
        if shutil.which("parallel") is None:
            return None, f"apt-get install -y parallel failed: {done.stderr.strip()[-300:]}"
    if shutil.which("parallel") is None:
        return None, "not installed (apt-get install parallel)"
    version = _first_line(["parallel", "--version"])
    if not version.startswith("GNU parallel"):
        return None, f"`parallel` here is not GNU parallel ({version or 'no --version'})"
    return "parallel", version


def peer_status(install_gnu: bool, commit: str) -> tuple[dict[str, str], dict[str, str]]:
    """(version of every peer, why each missing peer is not measured)."""

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return ""

    versions = {
        "Python": platform.python_version(),
        RUNNER: f"{dist('runner')} at {commit}",
        HYDRA: f"hydra-core {dist('hydra-core')}",
        BARE: f"concurrent.futures of Python {platform.python_version()}",
        FLOOR: f"os.posix_spawn of Python {platform.python_version()}",
    }
    missing: dict[str, str] = {}
    for peer, module in ((JOBLIB, "joblib"), (MPIRE, "mpire")):
        if find_spec(module) is None:
            missing[peer] = f"not installed (pip install {module})"
        else:
            versions[peer] = f"{module} {dist(module)}"
    xargs = _first_line(["xargs", "--version"]) if shutil.which("xargs") else ""
    if xargs:
        versions[XARGS] = xargs
    else:
        missing[XARGS] = "GNU xargs not found"
    gnu, gnu_version = gnu_parallel(install_gnu)
    if gnu is None:
        missing[GNU] = gnu_version
    else:
        versions[GNU] = gnu_version
    return versions, missing


def cpu_times() -> tuple[float, float] | None:
    """(CPU seconds the whole machine was busy, CPU seconds of this process and its
    children), or None without /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    own = sum(
        u.ru_utime + u.ru_stime
        for u in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    return busy, own


def others_share(before: tuple[float, float] | None, wall: float) -> float | None:
    """The share of the machine's CPU time that processes other than this run used since
    ``before``: the whole machine's busy time less this process's and its children's."""
    after = cpu_times()
    if before is None or after is None or wall <= 0:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(others, 0.0) / (wall * (os.cpu_count() or 1))


# --- the measurement rounds -------------------------------------------------------------


def measure(
    groups: list[list[Work]], missing: dict[str, str], root: Path
) -> dict[str, dict[str, dict[str, Any]]]:
    """Medians and samples per workload and peer, or why a peer was not measured:
    ``{work: {peer: {"median": {metric: m}, "samples": {metric: [...]}} | {"skipped": why}}}``.

    The workloads of a group (1M and 10k items; the judge at 1 and 6) share their rounds:
    each round runs every (workload, peer) once, starting one further each round.
    """
    res: dict[str, dict[str, dict[str, Any]]] = {}
    for works in groups:
        for work in works:
            res[work.key] = {p: {"skipped": missing[p]} for p in work.peers if p in missing}
        runs = [(w, p) for w in works for p in w.peers if p not in missing]
        samples: dict[tuple[str, str], dict[str, list[float]]] = {(w.key, p): {} for w, p in runs}
        rounds = max(w.rounds for w in works)
        for r in range(rounds):
            done = []
            for work, peer in runs[r % len(runs) :] + runs[: r % len(runs)]:
                if peer in res[work.key]:
                    continue  # failed in an earlier round
                try:
                    got = run_once(work, peer, root)
                except NotMeasured as exc:
                    print(f"  {work.key} {peer}: not measured: {exc}", flush=True)
                    res[work.key][peer] = {"skipped": "failed: " + " ".join(str(exc).split())[:300]}
                    continue
                for metric, value in got.items():
                    samples[work.key, peer].setdefault(metric, []).append(value)
                label = peer if len(works) == 1 else f"{work.key} {peer}"
                done.append(f"{label} {got['whole_s']:.2f} s")
            name = "/".join(w.key for w in works)
            print(f"{name} round {r + 1}/{rounds}: {', '.join(done)}", flush=True)
        for (key, peer), values in samples.items():
            if peer not in res[key]:
                medians = {m: c.median(v) for m, v in values.items()}
                res[key][peer] = {"median": medians, "samples": values}
    return res


def med(res: dict[str, Any], work: str, peer: str, metric: str) -> float | None:
    """The median of one figure, or None when it was not measured."""
    value = res.get(work, {}).get(peer, {}).get("median", {}).get(metric)
    return None if value is None else float(value)


# --- derived figures ----------------------------------------------------------------------


def figure(res: dict[str, Any], work: Work, peer: str, metric: str) -> float | None:
    """A median, or a figure derived from medians; None when not measured.

    ``rate``: items per second of the work phase; ``eff``: ideal / work phase;
    ``faster``/``faster_whole``: the peer's time over runner's (work phase / whole process).
    """
    if metric == "rate":
        phase = med(res, work.key, peer, "phase_s")
        return None if not phase else work.count / phase
    if metric == "eff":
        phase = med(res, work.key, peer, "phase_s")
        return None if not phase else work.count * work.seconds / work.parallel / phase
    if metric in ("faster", "faster_whole"):
        base = "phase_s" if metric == "faster" else "whole_s"
        mine, other = med(res, work.key, RUNNER, base), med(res, work.key, peer, base)
        return None if mine is None or other is None else other / mine
    return med(res, work.key, peer, metric)


def show(value: float | None, spec: str, unit: str = "", scale: float = 1.0) -> str:
    return "not measured" if value is None else f"{value * scale:{spec}}{unit}"


def seconds(value: float | None) -> str:
    return show(value, ".2f", " s")


def samples(res: dict[str, Any], key: str, peer: str, metric: str) -> list[float]:
    """One figure of every round, in the order of the rounds."""
    cell = res.get(key, {}).get(peer, {})
    return list(cell.get("samples", {}).get(metric, []))


def span(values: list[float], spec: str, unit: str = "") -> str:
    """`` (rounds: 1.20 to 3.40 s)``; nothing with fewer than two rounds."""
    if len(values) < 2:
        return ""
    return f" (rounds: {min(values):{spec}} to {max(values):{spec}}{unit})"


def paired(res: dict[str, Any], key: str, a: str, b: str, metric: str) -> list[float]:
    """``a``'s figure over ``b``'s, round by round (the two ran in the same round)."""
    mine, other = samples(res, key, a, metric), samples(res, key, b, metric)
    if not mine or not other:
        return []
    return [x / y for x, y in zip(mine, other, strict=True)]


def times(value: float | None, what: str) -> str:
    """`` = 1.23x what``, or that ``what`` was not measured."""
    return f" ({what}: not measured)" if value is None else f" = {value:.2f}x {what}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


# --- targets --------------------------------------------------------------------------------


def least_hydra(
    res: dict[str, Any], works: dict[str, Work]
) -> tuple[float | None, float | None, float | None]:
    """(the minimal Hydra app's fastest start-up, the spawn floor's fastest work phase,
    their sum): less than any Hydra app can take for the subprocess workload here, its
    commands started as cheaply as Python can start them (the fastest rounds, not the
    medians, so that the bound holds)."""
    hydra = min(samples(res, "startup", HYDRA, "whole_s"), default=None)
    floor = min(samples(res, "shell", FLOOR, "phase_s"), default=None)
    if "startup" not in works or "shell" not in works:
        hydra = floor = None
    return hydra, floor, None if hydra is None or floor is None else hydra + floor


def target_rows(res: dict[str, Any], works: dict[str, Work]) -> list[dict[str, Any]]:
    """The issue's targets as ``_common.row`` rows, each met or not by this run's figures.

    A target whose figures are missing (a peer not installed, a workload not chosen) is
    reported as not met, saying so.
    """
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: str, baseline: str, target: str, met: bool | None) -> None:
        if met is None:
            target += " (could not be judged: a figure is missing)"
        rows.append(c.row("12", name, measured, baseline, target, bool(met)))

    def check(value: float | None, ok: bool) -> bool | None:
        return None if value is None else ok

    if "big" in works:
        big = works["big"]
        wall = figure(res, big, RUNNER, "whole_s")
        add(
            f"{big.count:,} no-op items at parallel=6: whole `python -m runner` run",
            seconds(wall) + span(samples(res, "big", RUNNER, "whole_s"), ".2f", " s"),
            "-",
            f"<= {MAX_1M_WALL:g} s",
            check(wall, wall is not None and wall <= MAX_1M_WALL),
        )
        mine, bare = (figure(res, big, p, "rate") for p in (RUNNER, BARE))
        r = ratio(mine, bare)
        add(
            f"{big.count:,} no-op items at parallel=6: items phase (summary.json) vs bare pool",
            show(mine, ",.0f", " items/s")
            + times(r, "the bare pool")
            + span(paired(res, "big", BARE, RUNNER, "phase_s"), ".2f", "x"),
            f"{show(bare, ',.0f', ' items/s')} (ThreadPoolExecutor(6) submit-all, as_completed)",
            f">= {MIN_1M_VS_BARE:g}x",
            check(r, r is not None and r >= MIN_1M_VS_BARE),
        )
    if "big" in works and "small" in works:
        top = figure(res, works["big"], RUNNER, "rss")
        low = figure(res, works["small"], RUNNER, "rss")
        ok = None
        if top is not None and low is not None:
            limit = max(low * bench_memory.FLAT_RATIO, low + bench_memory.FLAT_SLACK_BYTES)
            ok = top <= MAX_RSS and top <= limit
        small = f"{works['small'].count // 1000:,}k"
        add(
            f"peak RSS of `python -m runner`, {works['big'].count:,} no-op items",
            f"{show(top, '.1f', ' MB', 1e-6)} ({small} items: {show(low, '.1f', ' MB', 1e-6)})",
            f"bare pool: {show(figure(res, works['big'], BARE, 'rss'), ',.0f', ' MB', 1e-6)}",
            f"<= {MAX_RSS / 1e6:g} MB and flat from {small} (within 10% or 10 MB)",
            ok,
        )
    if "shell" in works:
        sh = works["shell"]
        wall = figure(res, sh, RUNNER, "whole_s")
        hydra, floor, bound = least_hydra(res, works)
        for peer, limit in AGAINST_COMMANDS:
            other = figure(res, sh, peer, "whole_s")
            r = ratio(wall, other)
            why = res["shell"].get(peer, {}).get("skipped")
            least = (
                f"; the least a Hydra app can take here: {seconds(hydra)} (minimal Hydra "
                f"app's fastest start-up) + {seconds(floor)} (spawn floor's fastest work "
                f"phase) = {seconds(bound)}{times(ratio(bound, other), peer)}"
                if bound is not None
                else ""
            )
            add(
                f"{sh.count:,} x /bin/true at parallel=8: whole run vs {peer}",
                seconds(wall)
                + times(r, peer)
                + span(paired(res, "shell", RUNNER, peer, "whole_s"), ".2f", "x"),
                f"{seconds(other)} (`{sh.command(peer)}`)" + (f"; {why}" if why else "") + least,
                f"<= {limit:g}x",
                check(r, r is not None and r <= limit),
            )
        mine, pipes = (figure(res, sh, p, "phase_s") for p in (RUNNER, BARE))
        r = ratio(mine, pipes)
        add(
            f"{sh.count:,} x /bin/true at parallel=8: items phase vs bare pool with pipes",
            seconds(mine)
            + times(r, "the bare pool")
            + span(paired(res, "shell", RUNNER, BARE, "phase_s"), ".2f", "x"),
            f"{seconds(pipes)} (ThreadPoolExecutor(8), subprocess.run with pipes, own session)",
            f"<= {MAX_PHASE_VS_PIPES:g}x",
            check(r, r is not None and r <= MAX_PHASE_VS_PIPES),
        )
    if "eff" in works:
        ef = works["eff"]
        mine, bare = (figure(res, ef, p, "eff") for p in (RUNNER, BARE))
        ideal = ef.count * ef.seconds / ef.parallel
        add(
            f"{ef.count:,} x {ef.seconds * 1000:g} ms at parallel={ef.parallel}: efficiency "
            f"(ideal {ideal:.3f} s / items phase)",
            show(mine, ".3f")
            + span([ideal / s for s in samples(res, "eff", RUNNER, "phase_s")], ".3f"),
            f"{show(bare, '.3f')} (bare pool)",
            f">= {MIN_EFFICIENCY:g}",
            check(mine, mine is not None and mine >= MIN_EFFICIENCY),
        )
    if "startup" in works:
        st = works["startup"]
        mine, hydra = (figure(res, st, p, "whole_s") for p in (RUNNER, HYDRA))
        r = ratio(mine, hydra)
        add(
            "start-up: `python -m runner source.count=1 task.seconds=0`",
            show(mine, ".0f", " ms", 1e3)
            + times(r, "the minimal Hydra app")
            + span(paired(res, "startup", RUNNER, HYDRA, "whole_s"), ".2f", "x"),
            f"{show(hydra, '.0f', ' ms', 1e3)} (bench/minimal_hydra_app.py)",
            f"<= {MAX_STARTUP:g}x",
            check(r, r is not None and r <= MAX_STARTUP),
        )
    return rows


# --- the report -----------------------------------------------------------------------------

#: The rows of each workload's table: (label, metric, format).
TABLES: dict[str, list[tuple[str, str, Any]]] = {
    "startup": [
        ("whole process, ms", "whole_s", lambda v: show(v, ".0f", "", 1e3)),
        ("CPU user+sys, ms", "cpu_s", lambda v: show(v, ".0f", "", 1e3)),
    ],
    "noop": [
        ("items/s, work phase", "rate", lambda v: show(v, ",.0f")),
        (
            "peer's work phase / runner's (> 1: runner faster)",
            "faster",
            lambda v: show(v, ".2f", "x"),
        ),
        ("whole process, s", "whole_s", seconds),
        ("CPU user+sys, s", "cpu_s", seconds),
        ("peak RSS, MB", "rss", lambda v: show(v, ",.1f", "", 1e-6)),
    ],
    "shell": [
        ("work phase, s", "phase_s", seconds),
        (
            "peer's work phase / runner's (> 1: runner faster)",
            "faster",
            lambda v: show(v, ".2f", "x"),
        ),
        ("whole process, s", "whole_s", seconds),
        (
            "peer's whole process / runner's (> 1: runner faster)",
            "faster_whole",
            lambda v: show(v, ".2f", "x"),
        ),
        ("CPU user+sys, s", "cpu_s", seconds),
    ],
    "sleep": [
        ("efficiency (ideal / work phase)", "eff", lambda v: show(v, ".3f")),
        ("work phase, s", "phase_s", lambda v: show(v, ".3f", " s")),
        ("whole process, s", "whole_s", seconds),
        ("CPU user+sys, s", "cpu_s", seconds),
    ],
    "judge": [
        ("items phase, s", "phase_s", seconds),
        ("whole process, s", "whole_s", seconds),
        ("CPU user+sys, s", "cpu_s", seconds),
    ],
}


def table_peers(work: Work) -> tuple[str, ...]:
    """The columns of a workload's table and bars of its chart panel."""
    return {"startup": STARTUP_PEERS, "shell": SHELL_PEERS}.get(work.kind, PEERS)


def work_table(res: dict[str, Any], work: Work) -> str:
    peers = table_peers(work)
    lines = [
        "| " + " | ".join(["", *peers]) + " |",
        "|---|" + "---:|" * len(peers),
    ]
    for label, metric, form in TABLES[work.kind]:
        cells = [label]
        for peer in peers:
            cell = res[work.key].get(peer)
            value = figure(res, work, peer, metric)
            if peer not in work.peers:
                cells.append("n/a")
            elif cell is None or "skipped" in cell:
                cells.append("not measured")
            elif value is None:
                cells.append("-")  # e.g. the work phase of xargs, which has none of its own
            else:
                cells.append(form(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(
    info: dict[str, Any],
    res: dict[str, Any],
    works: list[Work],
    rows: list[dict[str, Any]],
    versions: dict[str, str],
    missing: dict[str, str],
    notes: dict[str, str],
) -> str:
    by_key = {w.key: w for w in works}
    out = [
        SECTION,
        "",
        "runner beside the tools people use instead, on the same work, in one run:",
        "",
        "```bash",
        notes["command"],
        "```",
        "",
        f"Machine: {c.describe_machine(info)}.{notes['moved']} Other work on it: "
        f"{notes['load']}{notes['busy']}. Environment: {notes['env']}.",
        f"Every figure is a median of {notes['rounds']}; in every round each peer runs "
        "once, starting at a different one.",
        "",
        "| Peer | Version | How it runs the items |",
        "|---|---|---|",
    ]
    how = {
        RUNNER: "`python -m runner ...` (thread executor, default settings plus the "
        "overrides shown); work phase: summary.json `wall_seconds`",
        HYDRA: "`python bench/minimal_hydra_app.py` (start-up only)",
        BARE: "`ThreadPoolExecutor(P)`, submit every item, iterate `as_completed`",
        JOBLIB: '`Parallel(n_jobs=P, prefer="threads")(delayed(f)(item) for item in items)`',
        MPIRE: '`WorkerPool(n_jobs=P, start_method="threading").map(f, items)`: threads',
        XARGS: "`seq N \\| xargs -PP -n1 /bin/true` (commands only)",
        GNU: "`seq N \\| parallel --will-cite -jP /bin/true` (commands only)",
        FLOOR: "P threads, each `os.posix_spawn('/bin/true')` then `waitpid`, nothing "
        "captured (subprocess workload only): commands started as cheaply as Python can",
    }
    for peer in (*STARTUP_PEERS, FLOOR):
        version = versions.get(peer) or f"not measured: {missing.get(peer, '?')}"
        out.append(f"| {peer} | {version} | {how[peer]} |")
    out += ["", "### Targets", ""]
    out += [
        "| Target | Measured (runner) | Peer, same run | Target | Met? |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [str(x).replace("|", "\\|") for x in (r["name"], r["measured"], r["baseline"])]
        met = "yes" if r["met"] else "**no**"
        out.append(f"| {' | '.join(cells)} | {r['target']} | {met} |")
    _, _, bound = least_hydra(res, by_key)
    beyond = []
    for peer, limit in AGAINST_COMMANDS:
        least = ratio(bound, figure(res, by_key["shell"], peer, "whole_s")) if bound else None
        if least is not None and least > limit:
            beyond.append(f"{limit:g}x {peer} (it is {least:.2f}x here)")
    if beyond:
        out += [
            "",
            f"No Hydra app can run the {by_key['shell'].count:,} commands within "
            f"{' or '.join(beyond)} on this machine: the minimal Hydra app's fastest "
            f"start-up plus the spawn floor's fastest work phase already take "
            f"{seconds(bound)} (against the peers' medians).",
        ]
    out += ["", "### Every figure", ""]
    for work in works:
        if work.kind == "judge":
            continue
        overrides = (
            work.runner_overrides() if work.kind != "startup" else bench_startup.RUNNER_ARGS[2:]
        )
        command = " ".join(overrides)
        out += [f"**{work.title}** (runner: `python -m runner {command}`)", ""]
        out += [work_table(res, work), ""]
    judges = [w for w in works if w.kind == "judge"]
    if judges:
        extra = " ".join(judges[0].extra)
        out += [
            f"**The sample judge experiment** (runner: `python -m runner parallel=N "
            f"task=judge_rerun progress=off{' ' + extra if extra else ''}`; each run makes "
            "and repairs its own copy of the sample). No peer runs this: the work is "
            "runner's judge_rerun task (slot selection, prompt files, each attempt's "
            "folder swapped in, consensus), which none of them has.",
            "",
            "| runner | " + " | ".join(f"parallel={w.parallel}" for w in judges) + " |",
            "|---|" + "---:|" * len(judges),
        ]
        for label, metric, form in TABLES["judge"]:
            cells = [form(figure(res, w, RUNNER, metric)) for w in judges]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        one, six = by_key.get("judge1"), by_key.get("judge6")
        if one and six:
            speedup = ratio(
                figure(res, one, RUNNER, "phase_s"), figure(res, six, RUNNER, "phase_s")
            )
            out += ["", f"Speed-up at parallel=6 (items phase): {show(speedup, '.2f', 'x')}."]
        out.append("")
    failed = [
        f"- {work.title}, {peer}: {cell['skipped']}"
        for work in works
        for peer, cell in res[work.key].items()
        if cell.get("skipped", "").startswith("failed")
    ]
    if failed:
        out += ["Runs that failed (their figures are missing):", "", *failed, ""]
    out += [
        "How each figure is taken:",
        "",
        "- **Same work.** Python peers run runner's own task function on runner's own items "
        "(range source, sleep task: `seconds=0` for no-op items); the subprocess workload "
        "runs `subprocess.run(['/bin/true'], capture_output=True, start_new_session=True)` "
        "per item in every Python peer, `/bin/true` in runner's shell task (which also "
        "captures output in its own session), `/bin/true N` in xargs and GNU parallel. The "
        "bare pool's sleep items are `time.sleep(s)` (bench_efficiency.py's baseline).",
        "- **Work phase**: runner's is summary.json's `wall_seconds`, from the first item "
        "started to the last one finished; a Python peer's is timed inside its process around "
        "the pool, from its creation to its shutdown (thread start-up included). xargs and "
        "GNU parallel have only the whole process.",
        "- **Whole process**: wall time of the process from outside, Python start-up and "
        "imports included (xargs and GNU parallel: `sh -c` with the pipeline shown). CPU is "
        "the child's user+sys and peak RSS its `ru_maxrss`, both from `os.wait4`.",
        "- Each peer runs with its defaults: joblib's automatic batching, mpire's automatic "
        "chunk size; GNU parallel's `--will-cite` only silences its citation notice.",
        "- n/a: the peer does not run that kind of work (xargs and GNU parallel run commands, "
        "not Python functions).",
        "",
        "![each peer's figures, one panel per workload](peers.png)",
        "",
    ]
    return "\n".join(out)


def chart(res: dict[str, Any], works: list[Work], path: Path) -> None:
    """One panel per workload, a bar per peer; runner's bar stands out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

    by_key = {w.key: w for w in works}
    panels: list[tuple[str, str, str, bool]] = [
        ("startup", "whole_s", "whole process (ms)", False),
        ("noop", "rate", "items/s, work phase", False),
        ("big", "whole_s", "whole process (s)", False),
        ("big", "rss", "peak RSS (MB, log scale)", True),
        ("shell", "whole_s", "whole process (s, log scale)", True),
        ("io", "eff", "efficiency (ideal / work phase)", False),
        ("eff", "eff", "efficiency (ideal / work phase)", False),
    ]
    panels = [p for p in panels if p[0] in by_key]
    judge = [by_key[k] for k in ("judge1", "judge6") if k in by_key]
    count = len(panels) + bool(judge)
    cols = 4
    rows = max(1, -(-count // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (key, metric, title, log) in zip(flat, panels, strict=False):
        work = by_key[key]
        peers = table_peers(work)
        unit = 1e-6 if metric == "rss" else 1e3 if work.kind == "startup" else 1.0
        names, values = [], []
        for peer in peers:
            value = figure(res, work, peer, metric) if peer in work.peers else None
            if value is not None:
                names.append(peer)
                values.append(value * unit)
        colors = ["tab:red" if n == RUNNER else "tab:gray" for n in names]
        ax.barh(names[::-1], values[::-1], color=colors[::-1])
        for y, v in enumerate(values[::-1]):
            ax.text(v, y, f" {v:,.0f}" if v >= 100 else f" {v:.3g}", va="center", fontsize=8)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_title(f"{work.title}\n{title}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.margins(x=0.25)
    if judge:
        ax = flat[len(panels)]
        values = [figure(res, w, RUNNER, "phase_s") or 0.0 for w in judge]
        ax.bar([f"parallel={w.parallel}" for w in judge], values, color="tab:red")
        ax.set_title("sample judge experiment, runner\nitems phase (s)", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in flat[count:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------


def render(saved: Path, out: Path) -> None:
    """The section, chart and compare.json of an earlier run, written again from its
    compare.json (its figures, machine and notes as they were recorded)."""
    data = json.loads(saved.read_text(encoding="utf-8"))
    works = [Work(**{**w, "peers": tuple(w["peers"])}) for w in data["workloads"].values()]
    res = data["results"]
    data["rows"] = target_rows(res, {w.key: w for w in works})
    section = markdown(
        data["machine"], res, works, data["rows"], data["versions"], data["not_measured"],
        data["notes"],
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    c.write_section(SECTION, section, out / "BENCHMARKS.md")
    chart(res, works, out / "peers.png")
    (out / "compare.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"wrote {out / 'BENCHMARKS.md'}, {out / 'peers.png'}, {out / 'compare.json'}")


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny counts, one round (< 1 minute)")
    p.add_argument("--repeat", type=int, help="rounds per workload (default 5; --quick: 1)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(GROUPS)}")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write BENCHMARKS.md's section, peers.png "
        "and compare.json here (default: docs/, or nothing with --quick)",
    )
    p.add_argument("--no-docs", action="store_true", help="write nothing unless --out is given")
    p.add_argument(
        "--render",
        metavar="JSON",
        help="write the section and chart again from a compare.json of an earlier run, "
        "measuring nothing (to --out, default docs/)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    if args.render:
        render(Path(args.render), Path(args.out) if args.out else c.REPO_DIR / "docs")
        return 0
    chosen = args.only.split(",") if args.only else list(GROUPS)
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {', '.join(GROUPS)}")
    repeat = args.repeat or (1 if args.quick else 5)
    by_key = {w.key: w for w in workloads(args.quick, repeat, 0 if args.quick else None)}
    groups = [[by_key[k] for k in keys] for g, keys in GROUPS.items() if g in chosen]
    works = [w for group in groups for w in group]

    info = c.machine()
    versions, missing = peer_status(not args.quick, info["commit"])
    for peer, why in missing.items():
        print(f"note: {peer} will not be measured: {why}", flush=True)
    load_before = os.getloadavg()[0]
    cpu_before = cpu_times()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        root = Path(tmp)
        if not args.quick:  # warm the page cache and imports of every tool once
            startup = workloads(False, 1, None)[0]
            for peer in startup.peers:
                if peer not in missing:
                    run_once(startup, peer, root)
        res = measure(groups, missing, root)
    others = others_share(cpu_before, time.perf_counter() - started)
    commit_after = c.machine()["commit"]
    rows = target_rows(res, {w.key: w for w in works})
    c.report(rows, args.json)

    command = "python bench/compare.py" + (" --quick" if args.quick else "")
    command += f" --repeat {args.repeat}" if args.repeat else ""
    command += f" --only {args.only}" if args.only else ""
    notes = {
        "command": command,
        "load": f"load average (1 min) {load_before:.2f} when it started; other processes "
        f"used {show(others, '.0%')} of the machine's CPU time during the run",
        "busy": " (the machine was shared: compare figures within a row, not across runs)"
        if others is not None and others > BUSY
        else "",
        "env": "runner's modules compiled before the first round, as `make` does after "
        "installing"
        + (", then PYTHONDONTWRITEBYTECODE=1" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""),
        "rounds": f"{repeat} round{'s' if repeat != 1 else ''} ({3 * repeat} for start-up)",
        "moved": f" The checkout changed during the run: runner was at {commit_after} at the end."
        if commit_after != info["commit"]
        else "",
    }
    section = markdown(info, res, works, rows, versions, missing, notes)
    print("\n" + section)
    print(f"took {time.perf_counter() - started:.0f} s", flush=True)
    out = Path(args.out) if args.out else None
    if out is None and not args.quick and not args.no_docs:
        out = c.REPO_DIR / "docs"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        c.write_section(SECTION, section, out / "BENCHMARKS.md")
        chart(res, works, out / "peers.png")
        data = {
            "machine": info,
            "versions": versions,
            "not_measured": missing,
            "notes": notes,
            "rows": rows,
            "workloads": {w.key: vars(w) for w in works},
            "results": res,
        }
        (out / "compare.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
        print(f"wrote {out / 'BENCHMARKS.md'}, {out / 'peers.png'}, {out / 'compare.json'}")
    broken = [key for key, cells in res.items() if "skipped" in cells.get(RUNNER, {})]
    if broken:
        print(f"runner itself failed in {', '.join(broken)}: see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
