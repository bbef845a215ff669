"""A run's judge prompt, rebuilt the way the original builds it when judge_prompt.md is lost.

The original (ProjectScylla's ``build_task_prompt``) joins, with blank lines: the
experiment's ``rubric.yaml`` in a yaml fence (when present), the task (``prompt.md``),
the agent's output (``agent/output.txt``), the workspace state (``git status`` of
``workspace/``), the git diff of tracked files and the deleted files, then a closing
instruction. The framework's own files (``CLAUDE.md``, ``.claude/``) are left out.
Unlike the original, runner does not run the workspace's build, lint and test
pipeline to add its results: that would execute the agent's code.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from runner_plugins.judge.experiment import AGENT_OUTPUT, TASK_FILE, RunRef

PROMPT_FILE = "judge_prompt.md"
_EXCLUDE = (":(exclude)CLAUDE.md", ":(exclude).claude")
_NO_CHANGES = "(no changes detected)"
_MAX_DIFF_LINES = 500


def _framework_file(path: str) -> bool:
    return path == "CLAUDE.md" or path == ".claude" or path.startswith(".claude/")


def _git(workspace: Path, *args: str) -> str | None:
    """``git args`` in ``workspace`` (never a repository above it); None if it fails."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(workspace.parent)}
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            errors="replace",
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def workspace_state(workspace: Path) -> str:
    """The files the agent created, modified or deleted, as the original lists them."""
    status = _git(workspace, "status", "--porcelain") if workspace.is_dir() else None
    if status is None:
        return "(unable to get workspace state)"
    lines = ["Files modified/created by agent:"]
    kinds = {"M": "modified", "A": "added", "??": "created", "D": "deleted"}
    for line in status.splitlines():
        if len(line) < 4:
            continue
        code, path = line[:2].strip(), line[3:].strip()
        if _framework_file(path):
            continue
        full = workspace / path
        if code == "??" and full.is_dir():
            for child in sorted(full.rglob("*")):
                rel = child.relative_to(workspace).as_posix()
                if child.is_file() and not _framework_file(rel):
                    lines.append(f"- `{rel}` (created)")
        else:
            lines.append(f"- `{path}` ({kinds.get(code, code)})")
    if len(lines) == 1:
        lines.append(_NO_CHANGES)
    return "\n".join(lines)


def patchfile(workspace: Path) -> str | None:
    """Unstaged and staged changes to tracked files (long diffs keep both ends)."""
    if not workspace.is_dir():
        return None
    unstaged = _git(workspace, "diff", "--", ".", *_EXCLUDE)
    staged = _git(workspace, "diff", "--cached", "--", ".", *_EXCLUDE)
    parts = []
    if unstaged and unstaged.strip():
        parts.append("## Unstaged Changes\n" + unstaged.strip())
    if staged and staged.strip():
        parts.append("## Staged Changes\n" + staged.strip())
    if not parts:
        return None
    lines = "\n\n".join(parts).split("\n")
    if len(lines) > _MAX_DIFF_LINES:
        half = _MAX_DIFF_LINES // 2
        lines = [*lines[:half], "", "... (truncated)", "", *lines[-half:]]
    return "\n".join(lines)


def deleted_files(workspace: Path) -> list[str]:
    """Tracked files the agent deleted."""
    out = _git(workspace, "diff", "--name-only", "--diff-filter=D", "HEAD")
    return [line for line in (out or "").splitlines() if line]


def missing_inputs(run: RunRef) -> str | None:
    """Why ``run``'s prompt can be neither read nor rebuilt, or None when it can be."""
    if (run.dir / PROMPT_FILE).is_file():
        return None
    if not (run.root / TASK_FILE).is_file():
        return f"{PROMPT_FILE} is missing and cannot be rebuilt: the experiment has no {TASK_FILE}"
    return None


def build_prompt(run: RunRef) -> str:
    """The judge prompt of ``run`` from the experiment's files (see the module doc)."""
    sections = []
    rubric = run.root / "rubric.yaml"
    if rubric.is_file():
        sections.append(
            "## Rubric (Evaluation Criteria)\n\n```yaml\n"
            + rubric.read_text(encoding="utf-8", errors="replace")
            + "\n```"
        )
    task = (run.root / TASK_FILE).read_text(encoding="utf-8", errors="replace")
    output = (run.dir / AGENT_OUTPUT).read_text(encoding="utf-8", errors="replace")
    workspace = run.workspace
    sections += [
        f"## Task Given to Agent\n\n{task}",
        f"## Agent's Output\n\n{output}",
        f"## Workspace State After Agent Execution\n\n{workspace_state(workspace)}",
    ]
    diff = patchfile(workspace)
    if diff:
        sections.append(
            "## Git Diff (Patchfile)\n\n*Note: This shows changes to tracked files. For new "
            f"files, use the Read tool to view their contents.*\n\n```diff\n{diff}\n```"
        )
    deleted = deleted_files(workspace) if workspace.is_dir() else []
    if deleted:
        sections.append("## Deleted Files\n\n" + "\n".join(f"- {f}" for f in deleted))
    sections.append(
        "---\n\nEvaluate the agent's work using the rubric and criteria in your system prompt."
    )
    return "\n\n".join(sections)
