"""Plugin distributions laid out as an installer leaves them, for the tests.

A ``<name>-<version>.dist-info`` folder beside the code, in a folder the test puts on
the path; no pip involved.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from runner.api import GROUPS


def write_distribution(
    root: Path,
    name: str,
    entry_points: dict[str, dict[str, str]],
    files: dict[str, str],
    version: str = "0.1",
) -> None:
    """Lay out an installed distribution in ``root``: its dist-info and its code files.

    ``entry_points`` maps an entry-point group to ``{name: "module:attribute"}``;
    ``files`` maps a path relative to ``root`` to its (dedented) text.
    """
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines: list[str] = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{point} = {value}" for point, value in points.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


REPEAT_TASK = """
    from runner.api import Item, Task


    class Repeat(Task):
        def __init__(self, times: int = 2, word: str = "ab") -> None:
            self.times = times
            self.word = word

        def run(self, item: Item) -> str:
            return f"{item.id}:{self.word * self.times}"
"""

# Leaves a trace of being imported when IMPORT_MARKER names a file, then fails.
BROKEN_MODULE = """
    import os
    import pathlib

    if os.environ.get("IMPORT_MARKER"):
        pathlib.Path(os.environ["IMPORT_MARKER"]).touch()
    import missing_dependency_xyz
"""

NO_RUN_TASK = """
    from runner.api import Task


    class NoRun(Task):
        def __init__(self) -> None:
            pass
"""


def write_test_plugins(root: Path) -> None:
    """A working plugin (with and without YAML), a broken one, a wrong one, a duplicate."""
    write_distribution(
        root,
        "tmp-repeat",
        {
            "runner.tasks": {
                "tmp_repeat": "tmp_repeat_pkg:Repeat",
                "tmp_repeat_yaml": "tmp_repeat_pkg:Repeat",
            }
        },
        {
            "tmp_repeat_pkg/__init__.py": REPEAT_TASK,
            "tmp_repeat_pkg/conf/task/tmp_repeat_yaml.yaml": "name: tmp_repeat_yaml\ntimes: 3\n",
        },
    )
    every_group = {group: {"bad_import": "bad_import_mod:Thing"} for group in GROUPS.values()}
    every_group["runner.tasks"]["bad_contract"] = "bad_contract_mod:NoRun"
    write_distribution(
        root,
        "bad-plugins",
        every_group,
        {
            "bad_import_mod.py": BROKEN_MODULE,
            "bad_contract_mod.py": NO_RUN_TASK,
        },
    )
    for twin in ("twin-a", "twin-b"):
        write_distribution(root, twin, {"runner.tasks": {"twin": "tmp_repeat_pkg:Repeat"}}, {})
