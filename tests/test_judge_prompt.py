"""The rebuilt judge prompt (plugins/judge/prompt.py) on workspaces an agent could leave.

Each repository is built with the real git CLI under a config the test controls; the
agent's hostile config is planted afterwards, each program it names creating a marker
file, so a marker proves the program ran.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runner_plugins.judge import gitsnapshot, gitstate, gitstatus, prompt
from runner_plugins.judge.experiment import RunRef
from tests.conftest import RunCli
from tests.judge_support import T3, copy_fixture, judge_command, remove_slot

TASK = "Create hello.py that prints Hello, World!\n"
# git with nothing of this machine's or the workspace's config that could run a program.
SAFE_GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}
# Attributes committed with the base: harmless until a config names the driver and filter.
ATTRIBUTES = "* diff=evil filter=evil\n"
HOOKS = ("post-index-change", "post-checkout", "pre-commit", "reference-transaction")


def git(workspace: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args],
        cwd=workspace,
        env=SAFE_GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def make_run(root: Path) -> RunRef:
    """An experiment with prompt.md and one run whose agent wrote output.txt."""
    run = RunRef(root, "T0", "00", 1)
    (run.dir / "agent").mkdir(parents=True)
    (run.dir / "agent" / "output.txt").write_text("Created hello.py\n")
    (root / "prompt.md").write_text(TASK)
    return run


def agent_workspace(workspace: Path) -> None:
    """A repository with README, app.py and .gitattributes committed; then the agent
    modified app.py, deleted README and created hello.py."""
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "README").write_text("readme\n")
    (workspace / "app.py").write_text("print('old')\n")
    (workspace / ".gitattributes").write_text(ATTRIBUTES)
    git(workspace, "init", "-q")
    git(workspace, "add", "README", "app.py", ".gitattributes")
    git(workspace, "commit", "-q", "-m", "base")
    (workspace / "app.py").write_text("print('new')\n")
    (workspace / "README").unlink()
    (workspace / "hello.py").write_text('print("Hello, World!")\n')


def marker_program(folder: Path, name: str) -> tuple[Path, Path]:
    """An executable that creates ``folder/<name>.ran`` (and prints nothing)."""
    marker = folder / f"{name}.ran"
    program = folder / f"{name}.sh"
    program.write_text(f"#!/bin/sh\ntouch '{marker}'\ncat\n")
    program.chmod(0o755)
    return program, marker


def hostile_config(kind: str, git_dir: Path, outside: Path) -> list[Path]:
    """Plant in ``git_dir`` the config ``kind``; the markers its programs would create."""
    outside.mkdir(exist_ok=True)
    program, marker = marker_program(outside, kind)
    config = {
        "fsmonitor": f"[core]\n\tfsmonitor = {program}\n",
        "diff.external": f"[diff]\n\texternal = {program}\n",
        "textconv": f'[diff "evil"]\n\ttextconv = {program}\n',
        "filter": f'[filter "evil"]\n\tclean = {program}\n\tsmudge = {program}\n'
        f"\tprocess = {program}\n\trequired = true\n",
        "pager": f"[core]\n\tpager = {program}\n[pager]\n\tdiff = {program}\n"
        f"\tstatus = {program}\n",
        "hooksPath": f"[core]\n\thooksPath = {outside / 'hooks'}\n",
        "include.path": f"[include]\n\tpath = {outside / 'evil.cfg'}\n",
    }[kind]
    if kind == "hooksPath":
        (outside / "hooks").mkdir()
        for hook in HOOKS:
            (outside / "hooks" / hook).symlink_to(program)
    if kind == "include.path":
        (outside / "evil.cfg").write_text(
            f"[core]\n\tfsmonitor = {program}\n[diff]\n\texternal = {program}\n"
            f'[filter "evil"]\n\tclean = {program}\n'
        )
    with (git_dir / "config").open("a") as f:
        f.write(config)
    return [marker]


EXPECTED_STATE = (
    "## Workspace State After Agent Execution\n\nFiles modified/created by agent:\n"
    "- `README` (deleted)\n- `app.py` (modified)\n- `hello.py` (created)\n\n"
)
EXPECTED_DIFF = (
    "## Unstaged Changes\n"
    "diff --git a/README b/README\ndeleted file mode 100644\n"
    "index 8178c76..0000000\n--- a/README\n+++ /dev/null\n@@ -1 +0,0 @@\n-readme\n"
    "diff --git a/app.py b/app.py\n"
)


@pytest.mark.parametrize(
    "kind",
    ["fsmonitor", "diff.external", "textconv", "filter", "pager", "hooksPath", "include.path"],
)
def test_no_program_the_workspace_configures_runs(tmp_path: Path, kind: str) -> None:
    """A workspace whose git config names a program (directly or through include.path)
    gets its prompt rebuilt without that program running, and the prompt still lists
    the agent's changes and diff as git shows them."""
    run = make_run(tmp_path / "exp")
    agent_workspace(run.workspace)
    markers = hostile_config(kind, run.workspace / ".git", tmp_path / "outside")
    text = prompt.build_prompt(run)
    assert [m for m in markers if m.exists()] == []
    assert EXPECTED_STATE in text
    assert EXPECTED_DIFF in text and "-print('old')\n+print('new')\n```" in text
    assert "## Deleted Files\n\n- README\n\n---" in text


def test_the_rebuilt_prompt_matches_git_on_a_safe_repository(tmp_path: Path) -> None:
    """With git's every config source cut off, the status and diffs runner computes are
    the ones git prints (staged, unstaged, a mode change, a binary file, a symlink, a
    quoted name, an untracked folder expanded), framework files left out."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for name, text in {"keep.txt": "a\nb\nc\n", "mode.sh": "x\n", "CLAUDE.md": "c\n"}.items():
        (workspace / name).write_text(text)
    git(workspace, "init", "-q")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "base")
    (workspace / "keep.txt").write_text("a\nB\nc\n")
    (workspace / "mode.sh").chmod(0o755)
    (workspace / "CLAUDE.md").write_text("changed\n")
    (workspace / "bin.dat").write_bytes(b"\0\1")
    (workspace / "\u00e9.txt").write_text("e")
    (workspace / "lnk").symlink_to("keep.txt")
    git(workspace, "add", "bin.dat", "\u00e9.txt", "lnk")
    (workspace / "new" / "deep").mkdir(parents=True)
    (workspace / "new" / "one.py").write_text("1\n")
    (workspace / "new" / "deep" / "two.py").write_text("2\n")
    state = gitstate.Workspace(workspace)
    unstaged = git(workspace, "diff", "--", ".", ":(exclude)CLAUDE.md", ":(exclude).claude")
    staged = git(workspace, "diff", "--cached", "--", ".", ":(exclude)CLAUDE.md")
    assert state.patchfile() == (
        f"## Unstaged Changes\n{unstaged.strip()}\n\n## Staged Changes\n{staged.strip()}"
    )
    assert state.state() == (
        "Files modified/created by agent:\n- `bin.dat` (added)\n- `keep.txt` (modified)\n"
        '- `lnk` (added, symlink)\n- `mode.sh` (modified)\n- `"\\303\\251.txt"` (added)\n'
        "- `new/deep/two.py` (created)\n- `new/one.py` (created)"
    )
    porcelain = git(workspace, "status", "--porcelain").splitlines()
    assert sorted(porcelain) == sorted(  # git's own order varies by version
        [
            "A  bin.dat",
            " M keep.txt",
            "A  lnk",
            " M mode.sh",
            'A  "\\303\\251.txt"',
            " M CLAUDE.md",
            "?? new/",
        ]
    )


def test_a_symlink_is_listed_never_followed(tmp_path: Path) -> None:
    """A symlink to a folder outside (a secret in it) and one to /root are listed as
    links; nothing they point to is read or listed, and a tracked file turned into a
    link shows the link's target path only."""
    run = make_run(tmp_path / "exp")
    agent_workspace(run.workspace)
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret-name.txt").write_text("SECRET-CONTENT\n")
    (run.workspace / "leak").symlink_to(secret)
    (run.workspace / "root").symlink_to("/root")
    (run.workspace / "app.py").unlink()
    (run.workspace / "app.py").symlink_to(secret / "secret-name.txt")
    text = prompt.build_prompt(run)
    assert "- `leak` (created, symlink)\n- `root` (created, symlink)" in text
    assert "- `app.py` (T, symlink)" in text  # git's typechange code, as the original shows it
    assert "SECRET-CONTENT" not in text and "secret-name.txt`" not in text
    assert len(text.splitlines()) < 60


@pytest.mark.parametrize("kind", ["gitdir-pointer", "symlinked-config", "alternates"])
def test_a_repository_reaching_outside_is_not_read(tmp_path: Path, kind: str) -> None:
    """A .git that is a gitdir: pointer, holds a symlink, or borrows objects through
    alternates is not read: the state says so and nothing outside runs or is read."""
    run = make_run(tmp_path / "exp")
    elsewhere = tmp_path / "elsewhere"
    agent_workspace(elsewhere)
    markers = hostile_config("fsmonitor", elsewhere / ".git", tmp_path / "outside")
    if kind == "gitdir-pointer":
        run.workspace.mkdir()
        (run.workspace / "hello.py").write_text("x\n")
        (run.workspace / ".git").write_text(f"gitdir: {elsewhere / '.git'}\n")
    else:
        agent_workspace(run.workspace)
        if kind == "symlinked-config":
            (run.workspace / ".git" / "config").unlink()
            (run.workspace / ".git" / "config").symlink_to(elsewhere / ".git" / "config")
        else:
            info = run.workspace / ".git" / "objects" / "info"
            (info / "alternates").write_text(f"{elsewhere / '.git' / 'objects'}\n")
    text = prompt.build_prompt(run)
    assert [m for m in markers if m.exists()] == []
    assert f"## Workspace State After Agent Execution\n\n{gitstatus.UNREADABLE}\n\n---" in text


def test_the_prompt_is_bounded_and_says_what_was_cut(tmp_path: Path) -> None:
    """A huge agent output, a tracked file grown past the per-file limit and thousands
    of new files give a prompt within MAX_PROMPT_BYTES that says what it left out and
    still ends with the closing instruction."""
    run = make_run(tmp_path / "exp")
    agent_workspace(run.workspace)
    (run.dir / "agent" / "output.txt").write_text("line of agent output\n" * 100_000)
    (run.workspace / "app.py").write_text("x = 1\n" * (gitsnapshot.MAX_FILE_BYTES // 3))
    many = run.workspace / "many"
    many.mkdir()
    for i in range(gitstatus.MAX_LISTED + 500):
        (many / f"f{i:05d}.txt").write_text("")
    text = prompt.build_prompt(run)
    assert len(text.encode()) <= prompt.MAX_PROMPT_BYTES
    assert f"the rebuilt prompt is limited to {prompt.MAX_PROMPT_BYTES} bytes)" in text
    assert "- `many/f00000.txt` (created)" in text
    assert f"... (503 more not listed: at most {gitstatus.MAX_LISTED})" in text
    assert f"(content not shown: larger than {gitsnapshot.MAX_FILE_BYTES} bytes)" in text
    assert text.endswith(
        "Evaluate the agent's work using the rubric and criteria in your system prompt."
    )


def test_judge_rerun_rebuilds_the_prompt_of_a_hostile_workspace(
    run_app: RunCli, tmp_path: Path
) -> None:
    """python -m runner task=judge_rerun on a copy of the real experiment whose run lost
    judge_prompt.md and whose workspace carries every hostile config: the judge is given
    the rebuilt prompt, and none of the workspace's programs ran."""
    experiment = copy_fixture(tmp_path / "experiment")
    remove_slot(experiment)
    (experiment / T3 / "judge_prompt.md").unlink()
    workspace = experiment / T3 / "workspace"
    (workspace / ".gitattributes").write_text(ATTRIBUTES)
    git(workspace, "init", "-q")
    git(workspace, "add", "README", "CLAUDE.md", ".claude", ".gitattributes")
    git(workspace, "commit", "-q", "-m", "base")
    (workspace / "README").write_text("changed by the agent\n")
    markers = []
    for kind in ("fsmonitor", "diff.external", "textconv", "filter", "hooksPath"):
        markers += hostile_config(kind, workspace / ".git", tmp_path / f"outside-{kind}")
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "task.command=[" + ",".join(f"'{a}'" for a in judge_command(tmp_path)) + "]",
    )
    assert result.returncode == 0, result.output
    assert [m for m in markers if m.exists()] == []
    rebuilt = (experiment / T3 / "judge_prompt.md").read_text()
    assert (
        "Files modified/created by agent:\n- `README` (modified)\n- `hello.py` (created)\n"
        in rebuilt
    )
    assert "-Hello World!\n+changed by the agent\n```" in rebuilt
    assert [r["status"] for r in result.results()] == ["ok"]


def test_experiment_files_that_are_symlinks_are_not_read(tmp_path: Path) -> None:
    """An agent/output.txt or a workspace that is a symlink to somewhere outside the
    experiment is named as such in the prompt; what it points to is not read."""
    run = make_run(tmp_path / "exp")
    elsewhere = tmp_path / "elsewhere"
    agent_workspace(elsewhere)
    (elsewhere / "hello.py").write_text("SECRET-CONTENT\n")
    (tmp_path / "secret.txt").write_text("SECRET-CONTENT\n")
    (run.dir / "agent" / "output.txt").unlink()
    (run.dir / "agent" / "output.txt").symlink_to(tmp_path / "secret.txt")
    run.workspace.symlink_to(elsewhere)
    text = prompt.build_prompt(run)
    assert "SECRET-CONTENT" not in text and "hello.py" not in text.split("## Agent's")[1]
    assert (
        "(T0/00/run_01/agent/output.txt is a symlink or leads outside the experiment: not read)"
        in text
    )
    assert f"Execution\n\n{gitstatus.UNREADABLE}\n\n---" in text


def worktree_run(root: Path, repo: Path) -> RunRef:
    """A run whose workspace is a worktree of ``repo`` on its own branch, as
    ProjectScylla's worktree_create.sh makes it (refs packed, as a gc leaves them)."""
    run = make_run(root)
    repo.mkdir()
    for name, text in {"README": "r\n", "app.py": "old\n", "keep.txt": "a\nb\n"}.items():
        (repo / name).write_text(text)
    (repo / "CLAUDE.md").write_text("c\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "worktree", "add", "-q", "-b", "T0_00_run_01", str(run.workspace), "HEAD")
    git(repo, "pack-refs", "--all")
    return run


def agent_changes(workspace: Path) -> None:
    """Modified, staged then modified again, added, deleted, framework and untracked."""
    (workspace / "app.py").write_text("new\n")
    (workspace / "keep.txt").write_text("a\nB\n")
    git(workspace, "add", "keep.txt")
    (workspace / "keep.txt").write_text("a\nB\nc\n")
    (workspace / "added.py").write_text("x = 1\n")
    git(workspace, "add", "added.py")
    (workspace / "README").unlink()
    (workspace / "CLAUDE.md").write_text("changed\n")
    (workspace / "new" / "deep").mkdir(parents=True)
    (workspace / "new" / "one.py").write_text("1\n")
    (workspace / "new" / "deep" / "two.py").write_text("2\n")


def state_from_git(workspace: Path) -> str:
    """The state section as git's own ``status --porcelain`` (untracked folders
    expanded, as the original expands them) gives it."""
    lines = []
    for line in git(workspace, "status", "--porcelain", "--untracked-files=all").splitlines():
        code, path = line[:2].strip(), line[3:]
        if path != "CLAUDE.md" and not path.startswith(".claude/"):
            kind = {"M": "modified", "A": "added", "D": "deleted", "??": "created"}
            lines.append(f"- `{path}` ({kind.get(code, code)})")
    return "\n".join(["Files modified/created by agent:", *lines])


@pytest.mark.parametrize("pointers", ["absolute", "relative"])
def test_a_worktree_of_the_experiments_repo_reads_as_git_shows_it(
    tmp_path: Path, pointers: str
) -> None:
    """A workspace that is a git worktree of the experiment's repo/ (its .git a
    ``gitdir:`` file, the worktree folder's commondir naming repo/.git, both absolute
    or both relative) gives the state, diffs and deleted files git gives there."""
    root = tmp_path / "exp"
    run = worktree_run(root, root / "repo")
    (worktree,) = (root / "repo" / ".git" / "worktrees").iterdir()
    if pointers == "relative":
        (run.workspace / ".git").write_text(f"gitdir: {os.path.relpath(worktree, run.workspace)}\n")
        assert (worktree / "commondir").read_text() == "../..\n"
    else:
        (worktree / "commondir").write_text(f"{root / 'repo' / '.git'}\n")
    agent_changes(run.workspace)
    workspace = gitstate.Workspace(run.workspace, root)
    unstaged = git(run.workspace, "diff", "--", ".", ":(exclude)CLAUDE.md", ":(exclude).claude")
    staged = git(run.workspace, "diff", "--cached", "--", ".", ":(exclude)CLAUDE.md")
    deleted = git(run.workspace, "diff", "--name-only", "--diff-filter=D", "HEAD")
    assert workspace.state() == state_from_git(run.workspace)
    assert "- `keep.txt` (MM)\n" in workspace.state() and "(deleted)" in workspace.state()
    assert workspace.patchfile() == (
        f"## Unstaged Changes\n{unstaged.strip()}\n\n## Staged Changes\n{staged.strip()}"
    )
    assert workspace.deleted() == deleted.split() == ["README"]
    text = prompt.build_prompt(run)
    assert f"Execution\n\n{state_from_git(run.workspace)}\n\n## Git Diff" in text


@pytest.mark.parametrize(
    "kind", ["gitdir-outside", "gitdir-through-symlink", "commondir-outside", "commondir-up"]
)
def test_a_worktree_reaching_outside_the_experiment_is_not_read(tmp_path: Path, kind: str) -> None:
    """A worktree whose folder, or whose commondir, is outside the experiment (named
    directly, through a symlink in the experiment, or by climbing out with ..) is not
    read, though git would read it: the state says so and the outside config's
    program does not run."""
    root = tmp_path / "exp"
    outside = tmp_path / "outside-repo"
    run = worktree_run(root, outside)
    agent_changes(run.workspace)
    assert "app.py" in git(run.workspace, "status", "--porcelain")  # a working pointer
    (worktree,) = (outside / ".git" / "worktrees").iterdir()
    if kind == "gitdir-through-symlink":
        (root / "repo").symlink_to(outside)
        pointer = root / "repo" / ".git" / "worktrees" / worktree.name
        (run.workspace / ".git").write_text(f"gitdir: {pointer}\n")
        assert "app.py" in git(run.workspace, "status", "--porcelain")  # git follows it
    elif kind.startswith("commondir"):
        moved = worktree.rename(root / "worktree")
        (run.workspace / ".git").write_text(f"gitdir: {moved}\n")
        common = outside / ".git" if kind == "commondir-outside" else "../../outside-repo/.git"
        (moved / "commondir").write_text(f"{common}\n")
        assert "app.py" in git(run.workspace, "status", "--porcelain")  # git follows it
    markers = hostile_config("fsmonitor", outside / ".git", tmp_path / "outside")
    text = prompt.build_prompt(run)
    assert [m for m in markers if m.exists()] == []
    assert f"## Workspace State After Agent Execution\n\n{gitstatus.UNREADABLE}\n\n---" in text


# --- files that would block a reader, and content that would blow up when read --------

CHILD = """
import json, resource, sys
from pathlib import Path
from runner_plugins.judge import prompt
from runner_plugins.judge.experiment import RunRef
run = RunRef(Path(sys.argv[1]), "T0", "00", 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
text = prompt.build_prompt(run)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"text": text, "grew_kib": after - before}))
"""


def build_in_child(run: RunRef) -> tuple[str, int]:
    """The prompt built in a child process (a hang fails the test rather than blocking
    it), and how much the child's peak memory grew while building it, in KiB."""
    import json
    import sys

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(run.root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(done.stdout)
    return data["text"], data["grew_kib"]


@pytest.mark.parametrize(
    "where", [".gitignore", "sub/.gitignore", ".git/HEAD", ".git/index", ".git/info/exclude"]
)
def test_a_fifo_in_the_workspace_or_its_git_never_blocks(tmp_path: Path, where: str) -> None:
    """A FIFO where a .gitignore, HEAD, the index or info/exclude should be: the prompt
    is built at once. One in the work tree is not applied (and the state says so); one
    in .git makes the repository unreadable."""
    run = make_run(tmp_path / "exp")
    agent_workspace(run.workspace)
    (run.workspace / "sub").mkdir()
    path = run.workspace / where
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    text, _ = build_in_child(run)
    if where.startswith(".git/"):
        assert f"Execution\n\n{gitstatus.UNREADABLE}\n\n---" in text
    else:
        assert "- `app.py` (modified)\n- `hello.py` (created)\n" in text
        assert f"... (ignore file not applied: {where} (not a regular file))" in text


def test_judge_rerun_with_a_fifo_gitignore_rebuilds_the_prompt(
    run_app: RunCli, tmp_path: Path
) -> None:
    """python -m runner task=judge_rerun on a run that lost judge_prompt.md and whose
    workspace .gitignore is a FIFO: the run ends (ok), the prompt rebuilt."""
    experiment = copy_fixture(tmp_path / "experiment")
    remove_slot(experiment)
    (experiment / T3 / "judge_prompt.md").unlink()
    workspace = experiment / T3 / "workspace"
    git(workspace, "init", "-q")
    git(workspace, "add", "README")
    git(workspace, "commit", "-q", "-m", "base")
    os.mkfifo(workspace / ".gitignore")
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "task.command=[" + ",".join(f"'{a}'" for a in judge_command(tmp_path)) + "]",
    )
    assert result.returncode == 0, result.output
    rebuilt = (experiment / T3 / "judge_prompt.md").read_text()
    assert "- `hello.py` (created)\n" in rebuilt
    assert "(ignore file not applied: .gitignore (not a regular file))" in rebuilt


def test_a_packed_blob_too_large_is_not_inflated(tmp_path: Path) -> None:
    """A 50 MB blob of zeros, packed (a few KB on disk), that the agent replaced: the
    prompt says it is too large to show, and building it inflated none of it (the
    child's peak memory grew by far less than 50 MB)."""
    run = make_run(tmp_path / "exp")
    workspace = run.workspace
    workspace.mkdir(parents=True)
    with (workspace / "big.bin").open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    git(workspace, "init", "-q")
    git(workspace, "add", "big.bin")
    git(workspace, "commit", "-q", "-m", "base")
    git(workspace, "repack", "-adq")
    git(workspace, "prune-packed")
    assert not any((workspace / ".git" / "objects").glob("??/*"))  # packed only
    (workspace / "big.bin").write_text("small now\n")
    text, grew_kib = build_in_child(run)
    assert "- `big.bin` (modified)" in text
    assert f"(content not shown: larger than {gitsnapshot.MAX_FILE_BYTES} bytes)" in text
    assert grew_kib < 20 * 1024, grew_kib


def test_a_tree_bomb_is_read_up_to_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD's tree names 8 copies of a tree nested 4 deep (4,096 files from a few
    objects): past MAX_SCANNED entries (lowered to 1,000 here) the walk stops and the
    state says HEAD was not compared; the work tree's changes are still listed."""
    monkeypatch.setattr(gitsnapshot, "MAX_SCANNED", 1000)
    run = make_run(tmp_path / "exp")
    agent_workspace(run.workspace)
    workspace = run.workspace
    blob = git(workspace, "hash-object", "-w", "app.py").strip()
    entry = f"100644 blob {blob}\tf"
    for _ in range(4):
        listing = "".join(f"{entry}{i}\n" for i in range(8))
        done = subprocess.run(
            ["git", "mktree"], input=listing, cwd=workspace, env=SAFE_GIT_ENV,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        entry = f"040000 tree {done.stdout.strip()}\td"
    tree = entry.split()[2].split("\t")[0]
    commit = git(workspace, "commit-tree", tree, "-m", "bomb").strip()
    git(workspace, "update-ref", "HEAD", commit)
    state = gitstate.Workspace(workspace).state()
    assert "- `app.py` (modified)" in state and "- `hello.py` (created)" in state
    assert "HEAD's tree has more than 1000 entries: not compared with the index" in state
    assert "- `README` (deleted)" in state  # from the index: gone from the work tree


def test_a_huge_gitignore_is_not_applied(tmp_path: Path) -> None:
    """A sparse 4 MB .gitignore: not read past MAX_IGNORE_BYTES, not applied, and the
    state says so."""
    from runner_plugins.judge.gitignore import MAX_IGNORE_BYTES

    run = make_run(tmp_path / "exp")
    agent_workspace(run.workspace)
    with (run.workspace / ".gitignore").open("wb") as f:
        f.write(b"hello.py\n")
        f.truncate(4 * 1024 * 1024)
    state = gitstate.Workspace(run.workspace).state()
    assert "- `hello.py` (created)" in state  # the file's rules were not applied
    assert (
        f"... (ignore file not applied: .gitignore (larger than {MAX_IGNORE_BYTES} bytes))" in state
    )
