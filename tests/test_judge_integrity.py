"""A repair killed at any moment is finished by the next one: slots whole, consensus right.

Each test damages a copy of the real experiment, starts `python -m runner task=judge_rerun`
with a fake judge that signs everything it prints with a token of its own, kills the run
(SIGINT, SIGTERM or SIGKILL) at a chosen point (once its run folder exists, once the n-th
judge has started or ended: events the test sees, never a delay that depends on the
machine's speed), then runs the same command once more to completion and checks the
experiment: every run's consensus is the function of its slots,
no slot (or kept attempt) holds the files of two judge invocations, no temporary file or
half-swapped slot is left, and every file keeps its mode.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_runner, start_runner
from tests.inprocess import run_in_process
from tests.judge_support import copy_fixture

# A fake judge: argv is mode (good | mixed), latency, tier, slot, slot_dir, events. Every
# invocation makes a token, marks its start and its end by a file in the events folder,
# writes the token into {slot_dir} (the attempt's folder) as notes.txt and prints it in its
# prose, its JSON reasoning and on stderr, so each file of a slot tells which invocation
# wrote it. "mixed" picks a behaviour from the tier: good, fail
# (exit 1), hang (far past task.timeout) or garbage (exit 0, no JSON).
FAKE_JUDGE = """
import json, os, random, sys, time
mode, latency, tier, slot = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
token = "tok-" + os.urandom(16).hex()
open(os.path.join(sys.argv[6], "started-" + token), "w").close()
with open(os.path.join(sys.argv[5], "notes.txt"), "w") as notes:
    notes.write(f"notes of {token}\\n")
behaviour = "good"
if mode == "mixed":
    behaviour = ("good", "fail", "hang", "garbage")[int(tier[1:]) % 4]
wait = latency * random.uniform(0.5, 1.5)
try:
    print(f"Judging slot {slot} of {tier} as {token}.", flush=True)
    print(f"judge {token} starting", file=sys.stderr, flush=True)
    time.sleep(wait / 2)
    if behaviour == "fail":
        print(f"boom: judge {token} crashed", file=sys.stderr, flush=True)
        sys.exit(1)
    if behaviour == "hang":
        time.sleep(60)
    if behaviour == "garbage":
        print(f"I cannot give a verdict today ({token}).", flush=True)
        sys.exit(0)
    score = round(random.random(), 3)
    verdict = {"score": score, "passed": score >= 0.5, "reasoning": f"verdict of {token}",
               "categories": {"functional": {"score": score}}}
    print("Evaluation follows.\\n\\n```json\\n" + json.dumps(verdict) + "\\n```", flush=True)
    time.sleep(wait / 2)
finally:  # a judge killed (the hanging one, at the timeout) never ends by itself
    open(os.path.join(sys.argv[6], "ended-" + token), "w").close()
"""
LATENCY = 0.2
TIMEOUT = 1  # task.timeout with the mixed judge, whose hanging judges it ends
GOOD_TIMEOUT = 60  # with the good judge only: a loaded machine never makes it fail
UMASK = 0o027
NEW_FILE_MODE = 0o666 & ~UMASK  # 0o640: no file of the fixture has it
TOKEN = re.compile(r"tok-[0-9a-f]{32}")
# A file of a slot, or of an attempt kept in it (link: "attempts/<n>").
SLOT_FILE = re.compile(
    r"^(?P<slot>[^/]+/[^/]+/[^/]+/judge/judge_\d+)/(?:(?P<link>attempts/\d+)/)?[^/]+$"
)
# What an attempt holds: what JudgeRerun writes, and notes.txt, which the judge wrote into
# {slot_dir}. A folder holding a token holds nothing else.
ATTEMPT_FILES = frozenset(
    ("judgment.json", "response.txt", "stdout.log", "stderr.log", "timing.json", "MODEL.md")
).union({"notes.txt"})
FAILED_ATTEMPT_FILES = frozenset(("stdout.log", "stderr.log", "timing.json", "notes.txt"))
# How the "mixed" judge of a tier (by its number modulo 4) fails: None for "good".
MIXED_FAILURES = (
    None,
    "judge exited with code 1: judge tok-",
    f"timed out after {TIMEOUT} s",
    "reply has no JSON object with a numeric score",
)
# Any of them may also time out on a loaded machine: that too is a failure it had itself.
TIMED_OUT = f"timed out after {TIMEOUT} s"
LEFTOVERS = (".*.tmp", ".judge_*.attempt-*", ".judge_*.replaced")

# When a run is killed: once its run folder exists (it is setting up: no judge has
# started), once the n-th judge started, or once the n-th judge ended by itself. A run that
# ends first is not killed.
FOLDER, STARTED, ENDED = "folder", "started", "ended"
Event = tuple[str, int]
Step = tuple[signal.Signals | None, Event, str]  # signal (None: no kill), event, judge mode


@dataclass(frozen=True)
class FileState:
    """A file's permission bits and bytes."""

    mode: int
    data: bytes


@pytest.fixture
def umask() -> Iterator[int]:
    """A known umask for the test and the processes it starts; the old one is restored."""
    old = os.umask(UMASK)
    yield UMASK
    os.umask(old)


@pytest.fixture
def fake_judge(tmp_path: Path) -> Iterator[Path]:
    """The fake judge's script; any of its processes still running is killed afterwards."""
    script = tmp_path / "token_judge.py"
    script.write_text(FAKE_JUDGE)
    yield script
    _kill_fake_judges(script)


def _fake_judge_pids(script: Path) -> list[int]:
    """The processes running ``script`` (it is argv[2]: python -S script ...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[2] == os.fsencode(script):
            pids.append(int(entry.name))
    return pids


def _kill_fake_judges(script: Path) -> None:
    """Kill every process of the fake judge (they run in their own sessions)."""
    deadline = time.monotonic() + 10
    while (pids := _fake_judge_pids(script)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    assert not _fake_judge_pids(script), "a fake judge could not be killed"


def _run_dir(experiment: Path, tier: str) -> Path:
    (path,) = experiment.glob(f"{tier}/*/run_01")
    return path


def _damage(experiment: Path) -> None:
    """Missing and failed slots in every run, and files with unusual modes."""
    for tier in ("T0", "T2", "T4", "T6"):
        shutil.rmtree(_run_dir(experiment, tier) / "judge" / "judge_02")
    truncated = _run_dir(experiment, "T1") / "judge" / "judge_01" / "judgment.json"
    truncated.write_text(truncated.read_text()[:80])
    invalid = _run_dir(experiment, "T3") / "judge" / "judge_03" / "judgment.json"
    invalid.write_text('{"score": 0.5, "is_valid": false}\n')
    (_run_dir(experiment, "T5") / "judge" / "judge_01" / "judgment.json").unlink()
    modes = {
        ("T0", "judge/judge_01/judgment.json"): 0o600,  # a complete slot, never touched
        ("T1", "run_result.json"): 0o604,
        ("T2", "judge/result.json"): 0o664,
        ("T3", "judge/judge_03/response.txt"): 0o660,  # a failed slot: gets replaced
        ("T4", "run_result.json"): 0o600,
        ("T5", "judge/judge_01/MODEL.md"): 0o444,  # read-only, in a failed slot
        ("T5", "run_result.json"): 0o444,  # read-only, rewritten by the consensus
        ("T6", "judge/result.json"): 0o600,
    }
    for (tier, rel), mode in modes.items():
        (_run_dir(experiment, tier) / rel).chmod(mode)


def _files(root: Path) -> dict[str, FileState]:
    """Every regular file under ``root`` by relative path."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found[str(path.relative_to(root))] = FileState(
                    stat.S_IMODE(info.st_mode), path.read_bytes()
                )
    return found


def _overrides(experiment: Path, script: Path, mode: str, events: Path) -> list[str]:
    """The arguments of ``python -m runner`` for a repair of ``experiment`` by the fake judge,
    which marks its starts and ends in ``events``."""
    events.mkdir(exist_ok=True)
    judge = (
        f'[{sys.executable},-S,"{script}",{mode},"{LATENCY}","{{tier}}","{{slot}}",'
        f'"{{slot_dir}}","{events}"]'
    )
    return [
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "parallel=3",
        f"task.command={judge}",
        f"task.timeout={TIMEOUT if mode == 'mixed' else GOOD_TIMEOUT}",
    ]


def _run(args: list[str], run_dir: Path, log: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A run to its end, in a process of its own: runner reads the umask (which the test
    sets) once, at start-up."""
    proc = run_runner(*args, cwd=cwd, timeout=120, run_dir=run_dir)
    log.write_text(proc.stdout + proc.stderr)
    return proc


def _happened(event: Event, run_dir: Path, events: Path) -> bool:
    kind, count = event
    if kind == FOLDER:
        return run_dir.is_dir()
    return sum(1 for _ in events.glob(f"{kind}-*")) >= count


def _interrupt(
    args: list[str],
    run_dir: Path,
    log: Path,
    cwd: Path,
    sig: signal.Signals,
    event: Event,
    events: Path,
) -> int:
    """Start the run, send ``sig`` once ``event`` happened (unless the run ended first),
    wait until it has ended; its exit code. The judges mark their starts and ends in
    ``events``."""
    with log.open("w") as out:
        proc = start_runner(*args, cwd=cwd, run_dir=run_dir, stdout=out)
        try:
            deadline = time.monotonic() + 120  # a hang, not a slow machine: the run is stuck
            while proc.poll() is None and not _happened(event, run_dir, events):
                assert time.monotonic() < deadline, f"{event} never happened"
                time.sleep(0.005)
            if proc.poll() is None:
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)  # else killed: the next run recovers that too
        finally:
            if proc.poll() is None:
                proc.kill()
        return proc.wait()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _grade(score: float) -> str:
    score = round(score, 9)
    if score >= 1.0:
        return "S"
    for grade, floor in (("A", 0.8), ("B", 0.6), ("C", 0.4), ("D", 0.2)):
        if score >= floor:
            return grade
    return "F"


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check_consensus(experiment: Path) -> None:
    """Each run's judge/result.json and run_result.json are what its slots give."""
    config = json.loads((experiment / "config" / "experiment.json").read_text())
    slots = len(config["judge_models"])
    for tier in config["tiers_to_run"]:
        run = _run_dir(experiment, tier)
        valid: list[tuple[int, dict[str, Any]]] = []
        for number in range(1, slots + 1):
            judgment = _json(run / "judge" / f"judge_{number:02d}" / "judgment.json")
            if (
                isinstance(judgment, dict)
                and _is_number(judgment.get("score"))
                and judgment.get("is_valid") is not False
            ):
                valid.append((number, judgment))
        assert len(valid) == slots, f"{tier}: a slot is still not complete"
        scores = [min(1.0, max(0.0, float(j["score"]))) for _, j in valid]
        mean = math.fsum(scores) / len(scores)
        passes = [j["passed"] for _, j in valid]
        assert all(isinstance(p, bool) for p in passes)
        passed = 2 * sum(passes) > len(valid)
        closest = min(abs(s - mean) for s in scores)
        reasonings = [
            j["reasoning"]
            for (_, j), s in zip(valid, scores, strict=True)
            if abs(s - mean) - closest < 1e-9
        ]
        result = json.loads((run / "judge" / "result.json").read_text())
        assert abs(result["score"] - mean) <= 1e-9, f"{tier}: judge/result.json score"
        assert result["passed"] is passed, f"{tier}: judge/result.json passed"
        assert result["grade"] == _grade(mean), f"{tier}: judge/result.json grade"
        assert result["is_valid"] is True
        assert result["reasoning"] in reasonings, f"{tier}: reasoning of no closest slot"
        record = json.loads((run / "run_result.json").read_text())
        assert abs(record["judge_score"] - mean) <= 1e-9, f"{tier}: run_result.json judge_score"
        assert record["judge_passed"] is passed, f"{tier}: run_result.json judge_passed"
        assert record["judge_grade"] == _grade(mean)
        listed = [(entry["judge_number"], entry["score"]) for entry in record["judges"]]
        assert listed == [(n, s) for (n, _), s in zip(valid, scores, strict=True)], (
            f"{tier}: judges[]"
        )


def _slot_folders(experiment: Path) -> Iterator[Path]:
    """Every slot folder and every attempt kept in one."""
    for slot in sorted(experiment.glob("T*/*/run_*/judge/judge_*")):
        yield slot
        attempts = slot / "attempts"
        if attempts.is_dir():
            for kept in sorted(attempts.iterdir()):
                assert kept.is_dir() and kept.name.isdigit(), f"stray {kept} in attempts/"
                assert not (kept / "attempts").exists(), f"{kept} nests its own attempts"
                yield kept


def _check_slots_are_whole(experiment: Path, before: dict[str, FileState]) -> None:
    """Every slot and kept attempt holds the files of one judge invocation, and all of them.

    A folder without a token is a slot as the fixture (damaged) had it, file for file. A
    failed attempt failed the way its tier's judge behaves in "mixed", or timed out: a
    judge killed because the run was interrupted is never recorded as a failure.
    """
    for folder in _slot_folders(experiment):
        files = {p.name: p for p in folder.iterdir() if p.is_file()}
        tokens = {t for p in files.values() for t in TOKEN.findall(p.read_text(errors="replace"))}
        where = folder.relative_to(experiment)
        assert len(tokens) <= 1, f"{where} mixes attempts {sorted(tokens)}"
        if not tokens:
            # Only the fixture's slot, untouched or set aside first, has no token.
            assert folder.name.startswith("judge_") or folder.name == "1", where
            slot = str(where if folder.name.startswith("judge_") else where.parent.parent)
            original = {k[len(slot) + 1 :]: v.data for k, v in before.items() if _in(slot, k)}
            found = {name: path.read_bytes() for name, path in files.items()}
            assert found == original, f"{where} is neither an attempt nor the original slot"
            continue
        assert set(files) <= ATTEMPT_FILES, f"{where} mixes an attempt with {sorted(files)}"
        timing = json.loads(files["timing.json"].read_text())
        if "judgment.json" in files:
            assert set(files) == ATTEMPT_FILES, f"{where}: a judged attempt is incomplete"
            assert timing.get("failed") is None
        else:
            assert set(files) == FAILED_ATTEMPT_FILES, f"{where}: {sorted(files)}"
            assert timing["failed"] is True
            expected = (MIXED_FAILURES[int(where.parts[0][1:]) % 4], TIMED_OUT)
            assert timing["reason"].startswith(tuple(r for r in expected if r)), (
                f"{where} failed with {timing['reason']!r}"
            )


def _in(slot: str, rel: str) -> bool:
    """Whether ``rel`` is a file of the slot folder ``slot`` itself."""
    return rel.startswith(slot + "/") and "/" not in rel[len(slot) + 1 :]


def _check_no_leftovers(experiment: Path) -> None:
    for folder, dirs, names in os.walk(experiment):
        for name in dirs + names:
            assert not any(fnmatch.fnmatch(name, p) for p in LEFTOVERS), Path(folder, name)


def _check_modes(before: dict[str, FileState], after: dict[str, FileState]) -> None:
    """Every file keeps its mode, wherever a swap moved it; the new ones get theirs by rule.

    Outside the slots a file is rewritten in place and keeps its mode. A slot is a chain:
    ``attempts/1``, ``attempts/2``, ..., then the slot itself, each replacing the one
    before. The first is the fixture's slot (its files, moved whole, keep their modes)
    unless the slot was missing; a file of a later attempt takes the mode of the file of
    the same name it replaced, and a file that replaced none gets 0666 less the umask.
    """
    slots: dict[str, list[str]] = {}
    for rel in after:
        found = SLOT_FILE.match(rel)
        if found:
            slots.setdefault(found["slot"], []).append(found["link"] or "")
    for rel, old in before.items():
        if SLOT_FILE.match(rel) is None:
            assert rel in after, f"{rel} was lost"
            assert after[rel].mode == old.mode, f"{rel}: {after[rel].mode:o} != {old.mode:o}"
    for rel, new in after.items():
        if SLOT_FILE.match(rel) is None and rel not in before:
            assert new.mode == NEW_FILE_MODE, f"new file {rel} has mode {new.mode:o}"
    for slot, links in slots.items():
        chain = sorted(set(links), key=lambda link: int(link.split("/")[1]) if link else 1 << 30)
        original = {k[len(slot) + 1 :]: v.mode for k, v in before.items() if _in(slot, k)}
        previous: dict[str, int] = {}
        for n, link in enumerate(chain):
            folder = f"{slot}/{link}" if link else slot
            modes = {k[len(folder) + 1 :]: v.mode for k, v in after.items() if _in(folder, k)}
            if n == 0 and original:
                assert modes == original, f"{folder}: modes {_octal(modes)} != {_octal(original)}"
            else:
                want = {name: previous.get(name, NEW_FILE_MODE) for name in modes}
                assert modes == want, f"{folder}: modes {_octal(modes)} != {_octal(want)}"
            previous = modes


def _octal(modes: dict[str, int]) -> dict[str, str]:
    return {name: oct(mode) for name, mode in sorted(modes.items())}


def _repair_after(tmp_path: Path, judge: Path, steps: list[Step]) -> list[tuple[int, str]]:
    """Damage a copy of the fixture, run ``steps``, then one good run; check the result.

    Returns the exit code and the output of each step's run.
    """
    experiment = copy_fixture(tmp_path / "experiment")
    _damage(experiment)
    before = _files(experiment)
    outputs = []
    for n, (sig, event, mode) in enumerate(steps):
        events = tmp_path / f"events{n}"
        args = _overrides(experiment, judge, mode, events)
        run_dir, log = tmp_path / f"run{n}", tmp_path / f"run{n}.log"
        if sig is None:
            code = _run(args, run_dir, log, tmp_path).returncode
        else:
            code = _interrupt(args, run_dir, log, tmp_path, sig, event, events)
        _kill_fake_judges(judge)  # those of a killed runner live on in their own sessions
        outputs.append((code, log.read_text()))
    good = _overrides(experiment, judge, "good", tmp_path / "events")
    final = _run(good, tmp_path / "final", tmp_path / "final.log", tmp_path)
    assert final.returncode == 0, final.stdout + final.stderr

    _check_consensus(experiment)
    _check_slots_are_whole(experiment, before)
    _check_no_leftovers(experiment)
    _check_modes(before, _files(experiment))
    # A dry run writes nothing into the experiment: it may run in this process.
    dry = run_in_process(*good, "dry_run=true", cwd=tmp_path, run_dir=tmp_path / "dry")
    assert dry.returncode == 0, dry.output
    assert "stale consensus (regenerated by a repair): 0 run(s)" in dry.output
    assert "selected for rerun: 0 slot(s)" in dry.output
    return outputs


def _case(sig: signal.Signals, event: Event, mode: str, *, slow: bool = True) -> Any:
    kind, count = event
    when = kind if kind == FOLDER else f"{kind}{count}"
    return pytest.param(
        sig, event, mode, id=f"{sig.name}@{when}-{mode}", marks=[pytest.mark.slow] * slow
    )


INT, TERM, KILL = signal.SIGINT, signal.SIGTERM, signal.SIGKILL
# The run repairs 7 damaged slots, 3 at a time. With the good judge: killed while it sets
# up, while the first judges run, or once every judge has ended (writing the consensus and
# the summary). With the mixed one, 5 of whose 7 judges end by themselves (the 2 hanging
# ones wait for the 1 s timeout): while the first wave runs, or late in the run. SIGINT and
# SIGTERM take the same way out (the run's handler), SIGKILL none: each moment is tried
# with SIGKILL and with one of the other two, and each signal at both kinds of moment.
CASES = [
    _case(INT, (STARTED, 1), "good", slow=False),
    _case(TERM, (ENDED, 3), "mixed", slow=False),
    _case(KILL, (STARTED, 4), "mixed", slow=False),
    _case(TERM, (FOLDER, 0), "good"),
    _case(KILL, (FOLDER, 0), "good"),
    _case(TERM, (STARTED, 2), "good"),
    _case(INT, (ENDED, 7), "good"),
    _case(KILL, (ENDED, 7), "good"),
    _case(INT, (STARTED, 3), "mixed"),
    _case(KILL, (ENDED, 5), "mixed"),
]


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("sig", "event", "mode"), CASES)
def test_a_killed_repair_is_finished_by_the_next_run(
    tmp_path: Path, fake_judge: Path, sig: signal.Signals, event: Event, mode: str
) -> None:
    """A repair killed at ``event``, then one more: consensus, whole slots, modes kept."""
    _repair_after(tmp_path, fake_judge, [(sig, event, mode)])


@pytest.mark.usefixtures("umask")
def test_repeated_kills_are_finished_by_the_next_run(tmp_path: Path, fake_judge: Path) -> None:
    """Each killed repair recovers what the one before left; one more run finishes them all."""
    steps: list[Step] = [
        (KILL, (STARTED, 2), "good"),
        (INT, (STARTED, 2), "mixed"),
        (KILL, (ENDED, 2), "mixed"),
    ]
    _repair_after(tmp_path, fake_judge, steps)


@pytest.mark.usefixtures("umask")
def test_failing_hanging_and_garbage_judges_leave_failed_slots_whole(
    tmp_path: Path, fake_judge: Path
) -> None:
    """A judge that fails, hangs past task.timeout or prints garbage leaves its slot failed,
    whole, for the next run to judge."""
    ((code, output),) = _repair_after(tmp_path, fake_judge, [(None, (FOLDER, 0), "mixed")])
    assert code == 1, output
    for reason in MIXED_FAILURES[1:]:
        assert reason is not None and reason in output
