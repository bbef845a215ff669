"""A run's judge prompt, rebuilt the way the original builds it when judge_prompt.md is lost.

The original (ProjectScylla's ``build_task_prompt``) joins, with blank lines: the
experiment's ``rubric.yaml`` in a yaml fence (when present), the task (``prompt.md``),
the agent's output (``agent/output.txt``), the workspace state (``git status`` of
``workspace/``), the git diff of tracked files and the deleted files, then a closing
instruction. The framework's own files (``CLAUDE.md``, ``.claude/``) are left out.

runner runs neither git in the agent's workspace nor the build, lint and test pipeline
the original adds: gitstate reads the repository as data (gitrepo says when it may), and
no input is read through a symlink or from outside the experiment. The prompt is at
most MAX_PROMPT_BYTES long, a cut saying so.
"""

from __future__ import annotations

from pathlib import Path

from runner_plugins.judge.experiment import AGENT_OUTPUT, TASK_FILE, RunRef
from runner_plugins.judge.gitrepo import inside, read_capped
from runner_plugins.judge.gitstate import Workspace

PROMPT_FILE = "judge_prompt.md"

#: The whole rebuilt prompt, in UTF-8 bytes; longer sections are cut, each saying so.
MAX_PROMPT_BYTES = 256 * 1024


def missing_inputs(run: RunRef) -> str | None:
    """Why ``run``'s prompt can be neither read nor rebuilt, or None when it can be."""
    if (run.dir / PROMPT_FILE).is_file():
        return None
    task = run.root / TASK_FILE
    if not task.is_file():
        return f"{PROMPT_FILE} is missing and cannot be rebuilt: the experiment has no {TASK_FILE}"
    if not inside(task, run.root):
        return (
            f"{PROMPT_FILE} is missing and cannot be rebuilt: the experiment's {TASK_FILE} "
            "is a symlink or leads outside the experiment"
        )
    return None


def _input_text(path: Path, root: Path) -> str:
    """An experiment file's text, never through a symlink or from outside ``root``."""
    if not inside(path, root):
        name = path.relative_to(root).as_posix()
        return f"({name} is a symlink or leads outside the experiment: not read)"
    return read_capped(path, MAX_PROMPT_BYTES).decode("utf-8", errors="replace")


def _fair_shares(sizes: list[int], budget: int) -> list[int]:
    """Bytes each part may keep so their sum fits ``budget``: the smaller parts whole,
    the larger ones an equal share of what is left."""
    shares = list(sizes)
    left, pending = budget, sorted(range(len(sizes)), key=lambda i: sizes[i])
    while pending:
        share = left // len(pending)
        i = pending[0]
        if sizes[i] > share:
            for j in pending:
                shares[j] = share
            break
        left -= sizes[i]
        pending.pop(0)
    return shares


def _cut(text: str, keep: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= keep:
        return text
    kept = data[:keep].decode("utf-8", errors="ignore")
    return (
        f"{kept}\n\n... (cut: {len(data) - keep} more bytes not shown; "
        f"the rebuilt prompt is limited to {MAX_PROMPT_BYTES} bytes)"
    )


def build_prompt(run: RunRef) -> str:
    """The judge prompt of ``run`` from the experiment's files (see the module doc),
    at most MAX_PROMPT_BYTES long."""
    # (heading, body, tail): a body too long for its share is cut, heading and tail stay.
    parts: list[tuple[str, str, str]] = []
    rubric = run.root / "rubric.yaml"
    if rubric.is_file():
        text = _input_text(rubric, run.root)
        parts.append(("## Rubric (Evaluation Criteria)\n\n```yaml\n", text, "\n```"))
    parts.append(("## Task Given to Agent\n\n", _input_text(run.root / TASK_FILE, run.root), ""))
    parts.append(("## Agent's Output\n\n", _input_text(run.dir / AGENT_OUTPUT, run.root), ""))
    # A run folder that is a symlink would lead the walk outside the experiment; the
    # repository may be a worktree of the experiment's repo/, never of one outside it.
    workspace = Workspace(run.workspace, run.root)
    parts.append(("## Workspace State After Agent Execution\n\n", workspace.state(), ""))
    diff = workspace.patchfile()
    if diff:
        parts.append(
            (
                "## Git Diff (Patchfile)\n\n*Note: This shows changes to tracked files. For new "
                "files, use the Read tool to view their contents.*\n\n```diff\n",
                diff,
                "\n```",
            )
        )
    deleted = workspace.deleted()
    if deleted:
        parts.append(("## Deleted Files\n\n", "\n".join(f"- {f}" for f in deleted), ""))
    closing = (
        "---\n\nEvaluate the agent's work using the rubric and criteria in your system prompt."
    )
    # What a cut adds, and the separators, come off the budget first.
    fixed = sum(len((h + t).encode()) + 2 + 120 for h, _, t in parts) + len(closing.encode())
    shares = _fair_shares([len(b.encode()) for _, b, _ in parts], MAX_PROMPT_BYTES - fixed)
    sections = [h + _cut(b, keep) + t for (h, b, t), keep in zip(parts, shares, strict=True)]
    return "\n\n".join([*sections, closing])
