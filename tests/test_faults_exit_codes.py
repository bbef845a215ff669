"""One list of exit codes, runner/errors.py's: docs/running.md's table and ``--help`` show it."""

from __future__ import annotations

import re

from runner.errors import EXIT_CODES
from tests.conftest import REPO, RunCli


def _docs_table() -> list[tuple[int, str]]:
    """The rows of docs/running.md's table under "## Exit codes"."""
    text = (REPO / "docs" / "running.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    return [(int(code), meaning) for code, meaning in rows]


def test_docs_list_every_exit_code_as_errors_py_does() -> None:
    """docs/running.md's table is errors.EXIT_CODES, row for row: neither can drift alone."""
    assert _docs_table() == list(EXIT_CODES)
    assert {0, 1, 2, 74, 129, 130, 141, 143} <= {code for code, _ in EXIT_CODES}


def test_help_lists_every_exit_code(run_app: RunCli) -> None:
    """``--help`` shows each code with its meaning (it listed 4 of the 8)."""
    shown = run_app("--help")
    assert shown.returncode == 0, shown.output
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^\s*{code}\s+{re.escape(meaning)}$", shown.stdout, re.MULTILINE), (
            code,
            shown.stdout[:2000],
        )
