"""Plugin discovery: the registry in-process, and installed plugins under ``python -m runner``.

Plugin distributions are laid out as an installer leaves them (a ``<name>-<version>.dist-info``
folder beside the code) in a temporary folder put on the path; no pip involved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from runner.config import registry
from runner.errors import PluginError
from tests.conftest import RunCli, run_runner
from tests.plugin_support import write_distribution, write_test_plugins


@pytest.fixture
def installed(site: Path) -> Path:
    """The test plugins written into ``site`` and discovered by the registry."""
    write_test_plugins(site)
    registry.refresh()
    return site


def error_line(output: str) -> str:
    """The one ``runner: error:`` line of a run's output, from that mark on (a plugin that
    cannot load stops its job, whose log lines start with the time and level)."""
    assert "Traceback" not in output, output
    mark = "runner: error:"
    lines = [line[line.index(mark) :] for line in output.splitlines() if mark in line]
    assert len(lines) == 1, output
    return lines[0]


# In-process: the registry's functions.


def test_specs_describe_a_plugin_without_importing_it(installed: Path) -> None:
    """specs() gives name, entry point, distribution and version, and imports nothing."""
    (spec,) = registry.specs("task")["bad_import"]
    assert (spec.value, spec.module) == ("bad_import_mod:Thing", "bad_import_mod")
    assert (spec.distribution, spec.version) == ("bad-plugins", "0.1")
    assert "bad_import" in registry.names("source")
    assert registry.specs("task")["tmp_repeat"][0].module == "tmp_repeat_pkg"
    assert "tmp_repeat_pkg" not in sys.modules  # it would import cleanly, had it been


def test_the_first_copy_of_a_distribution_on_the_path_wins(tmp_path: Path) -> None:
    """A stale copy further down the path (an old install) adds no entry points."""
    from runner.config import entrypoints

    new, old = tmp_path / "new", tmp_path / "old"
    write_distribution(new, "tmp-repeat", {"runner.tasks": {"repeat": "m:New"}}, {}, "2.0")
    write_distribution(
        old, "tmp_Repeat", {"runner.tasks": {"repeat": "m:Old", "gone": "m:Gone"}}, {}, "1.0"
    )
    found = entrypoints.entry_points(["runner.tasks"], path=[str(new), str(old)])
    assert [(e.name, e.value, e.version) for e in found] == [("repeat", "m:New", "2.0")]


def test_refresh_forgets_what_was_discovered(site: Path) -> None:
    """A plugin installed after the first scan is found once refresh() is called."""
    assert "tmp_repeat" not in registry.names("task")
    write_test_plugins(site)
    registry.refresh()
    assert {"tmp_repeat", "sleep"} <= set(registry.names("task"))


def test_find_names_the_valid_choices_for_an_unknown_plugin() -> None:
    """An unknown name or group is refused with the valid choices listed."""
    with pytest.raises(PluginError, match=r"Unknown task 'nope'\. Valid tasks: .*sleep"):
        registry.find("task", "nope")
    with pytest.raises(PluginError, match=r"Unknown plugin group 'tasks'.*task"):
        registry.find("tasks", "sleep")


def test_find_refuses_a_name_two_distributions_register(installed: Path) -> None:
    """A duplicate name is an error naming both distributions."""
    assert len(registry.specs("task")["twin"]) == 2
    with pytest.raises(PluginError, match=r"twin-a 0\.1.* and twin-b 0\.1"):
        registry.find("task", "twin")


def test_load_plugin_reports_an_import_failure(installed: Path) -> None:
    """A plugin that fails to import names its entry point, module and distribution."""
    with pytest.raises(PluginError) as caught:
        registry.load_plugin("task", "bad_import")
    message = str(caught.value)
    for part in (
        "'bad_import'",
        "runner.tasks",
        "bad_import_mod:Thing",
        "bad-plugins 0.1",
        "ModuleNotFoundError",
        "missing_dependency_xyz",
    ):
        assert part in message
    assert (caught.value.value, caught.value.distribution) == (
        "bad_import_mod:Thing",
        "bad-plugins",
    )


def test_load_plugin_checks_the_contract(installed: Path) -> None:
    """A task class without run() is refused, and the reason names the method."""
    with pytest.raises(PluginError, match=r"does not satisfy the task contract.*NoRun.*run"):
        registry.load_plugin("task", "bad_contract")


def test_contract_problem_explains_each_mismatch() -> None:
    """contract_problem() accepts a complete class and says what is wrong with others."""
    assert registry.contract_problem("task", registry.load_plugin("task", "sleep")) is None
    assert "not a class" in str(registry.contract_problem("task", len))
    assert "no map() method" in str(registry.contract_problem("executor", object))


def test_load_plugin_returns_the_class_once_imported(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A good plugin loads to its class; a second load neither imports nor checks again."""
    imports = []
    real_import = registry.import_plugin
    monkeypatch.setattr(
        registry, "import_plugin", lambda spec: imports.append(spec) or real_import(spec)
    )
    cls = registry.load_plugin("task", "tmp_repeat")
    assert cls.__name__ == "Repeat"
    assert registry.load_plugin("task", "tmp_repeat") is cls
    assert len(imports) == 1


class WideSignature:
    """A plugin-like class whose constructor covers the kinds of parameters."""

    def __init__(
        self,
        count: int,
        ratio: float = 0.5,
        label: str | None = None,
        tags: tuple[str, ...] = ("a",),
        anything: object = 3,  # not a type OmegaConf checks: accepted as given
    ) -> None:
        pass


def test_schema_for_derives_types_defaults_and_mandatory_keys() -> None:
    """The schema types keys from annotations, keeps defaults, marks ``???`` the others."""
    node = OmegaConf.structured(registry.schema_for("annotated", WideSignature))
    assert node.name == "annotated"
    assert OmegaConf.is_missing(node, "count")
    assert (node.ratio, node.label, list(node.tags), node.anything) == (0.5, None, ["a"], 3)
    assert OmegaConf.merge(node, {"count": "7"}).count == 7
    assert OmegaConf.merge(node, {"anything": "text"}).anything == "text"
    with pytest.raises(ValidationError):
        OmegaConf.merge(node, {"count": "abc"})
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(node, {"colour": "red"})


# End to end: installed plugins under `python -m runner`.


def test_installed_plugin_runs_end_to_end(run_cli: RunCli, plugin_path: Path) -> None:
    """A plugin with no YAML runs by name with its constructor's defaults and overrides."""
    result = run_cli(
        "task=tmp_repeat",
        "task.word=xy",
        "source.count=2",
        "progress=off",
        env={"PYTHONPATH": str(plugin_path)},
    )
    assert result.returncode == 0, result.output
    outcomes = sorted(result.results(), key=lambda r: r["id"])
    assert [(r["status"], r["result"]) for r in outcomes] == [("ok", "0:xyxy"), ("ok", "1:xyxy")]


def test_yaml_shipped_in_the_plugin_package_is_used(run_cli: RunCli, plugin_path: Path) -> None:
    """<package>/conf/task/<name>.yaml supplies the option's values."""
    result = run_cli(
        "task=tmp_repeat_yaml",
        "source.count=1",
        "progress=off",
        env={"PYTHONPATH": str(plugin_path)},
    )
    assert result.returncode == 0, result.output
    assert [r["result"] for r in result.results()] == ["0:ababab"]


GC_PROBE_TASK = """
    import gc
    import weakref

    from runner.api import Item, Task

    # Weak references to the cyclic garbage each job leaves behind (module state lives
    # as long as the process: across the jobs of a multirun).
    LEFT_BEHIND = []


    class Node:
        pass


    class GcProbe(Task):
        def __init__(self) -> None:
            # Made after runner froze start-up's objects: what earlier jobs left is gone.
            self.alive_from_earlier_jobs = sum(ref() is not None for ref in LEFT_BEHIND)

        def run(self, item: Item) -> dict:
            node = Node()
            node.me = node  # a cycle: only the garbage collector frees it
            alive = weakref.ref(node)
            del node
            gc.collect()
            collected = alive() is None
            # Leave an old cycle behind: kept through a full collection, then dropped.
            kept = [Node()]
            kept[0].me = kept[0]
            LEFT_BEHIND.append(weakref.ref(kept[0]))
            gc.collect()
            kept.clear()
            return {
                "frozen": gc.get_freeze_count(),
                "cycle_collected": collected,
                "alive_from_earlier_jobs": self.alive_from_earlier_jobs,
            }
"""


def test_start_up_objects_are_frozen_and_each_jobs_garbage_is_collected(
    tmp_path: Path,
) -> None:
    """runner/cli.py freezes what start-up made; what the plugins make is collected."""
    site = tmp_path / "site"
    write_distribution(
        site,
        "gc-probe",
        {"runner.tasks": {"gc_probe": "gc_probe_mod:GcProbe"}},
        {"gc_probe_mod.py": GC_PROBE_TASK},
    )
    sweep = tmp_path / "sweep"
    proc = run_runner(
        "-m",
        "task=gc_probe",
        "source.count=2",
        "parallel=1,2,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
    )
    assert proc.returncode == 0, proc.stderr
    for job in range(3):
        lines = (sweep / str(job) / "results.jsonl").read_text().splitlines()
        results = [json.loads(line)["result"] for line in lines]
        assert len(results) == 2
        for result in results:
            assert result["cycle_collected"] is True
            # Hydra, OmegaConf and the modules: tens of thousands of objects.
            assert result["frozen"] > 10_000
            assert result["alive_from_earlier_jobs"] == 0


BUGGY_PLUGINS = """
    from runner.api import PostProcessor, Task


    class FailingReport(PostProcessor):
        def __call__(self, outcomes, context):
            list(outcomes)
            raise KeyError("no column 'score'")


    class CrashingTask(Task):
        def __init__(self) -> None:
            raise RuntimeError("model weights not found")

        def run(self, item):
            return None
"""


@pytest.fixture
def buggy_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    write_distribution(
        site,
        "buggy-plugins",
        {
            "runner.postprocessors": {"failing_report": "buggy_mod:FailingReport"},
            "runner.tasks": {
                "crashing": "buggy_mod:CrashingTask",
                "exits_at_import": "exiting_mod:Task",
                "multiline_at_import": "multiline_mod:Task",
            },
        },
        {
            "buggy_mod.py": BUGGY_PLUGINS,
            "exiting_mod.py": "raise SystemExit('no GPU here')\n",
            "multiline_mod.py": "raise RuntimeError('first line\\nsecond line')\n",
        },
    )
    return site


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("exits_at_import", "SystemExit: no GPU here"),
        ("multiline_at_import", "RuntimeError: first line"),
    ],
)
def test_any_import_failure_is_one_usage_error_line(
    run_cli: RunCli, buggy_site: Path, name: str, reason: str
) -> None:
    """sys.exit() or a multi-line message while a plugin imports: still one line, exit 2."""
    result = run_cli(f"task={name}", env={"PYTHONPATH": str(buggy_site)})
    assert result.returncode == 2, result.output
    line = error_line(result.output)
    assert f"entry point {name!r}" in line and line.endswith(reason)


def test_a_failing_post_processor_exits_1_and_keeps_every_result(
    run_cli: RunCli, buggy_site: Path
) -> None:
    """One line on the console, the traceback in runner.log, the results all kept."""
    result = run_cli(
        "postprocessor=failing_report",
        "source.count=4",
        "task.seconds=0",
        env={"PYTHONPATH": str(buggy_site)},
    )
    assert result.returncode == 1, result.output
    assert "postprocessor 'failing_report' failed: KeyError" in result.output
    assert "Traceback" not in result.output
    assert len(result.results()) == 4 and result.summary()["succeeded"] == 4
    log = (result.run_dir / "runner.log").read_text()
    assert "Traceback" in log and "no column 'score'" in log


def test_a_plugin_bug_is_one_console_line_with_the_traceback_in_the_log(
    run_cli: RunCli, buggy_site: Path
) -> None:
    result = run_cli("task=crashing", env={"PYTHONPATH": str(buggy_site)})
    assert result.returncode == 1, result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1
    assert "unexpected error: RuntimeError: model weights not found" in errors[0]
    assert "Traceback" not in result.output
    assert "Traceback" in (result.run_dir / "runner.log").read_text()
    assert not (result.run_dir / "results.jsonl").exists()


def test_text_for_an_int_parameter_is_refused(run_cli: RunCli, plugin_path: Path) -> None:
    """task.times=abc stops the run with exit 2 and one line naming the key."""
    result = run_cli("task=tmp_repeat", "task.times=abc", env={"PYTHONPATH": str(plugin_path)})
    assert result.returncode == 2
    assert "'task.times'" in error_line(result.output)
    assert not (result.run_dir / "results.jsonl").exists()


def test_an_unknown_key_is_refused(run_cli: RunCli, plugin_path: Path) -> None:
    """A key the constructor does not take stops the run and the valid keys are listed."""
    result = run_cli("task=tmp_repeat", "task.colour=red", env={"PYTHONPATH": str(plugin_path)})
    assert result.returncode == 2
    line = error_line(result.output)
    assert "'task.colour'" in line and "times" in line and "word" in line


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("bad_import", ["bad_import_mod:Thing", "bad-plugins", "ModuleNotFoundError"]),
        ("bad_contract", ["bad_contract_mod:NoRun", "bad-plugins", "does not implement run"]),
    ],
)
def test_a_selected_broken_plugin_stops_the_run(
    run_cli: RunCli, plugin_path: Path, tmp_path: Path, name: str, parts: list[str]
) -> None:
    """A selected plugin that fails to import or breaks its contract: exit 2, one line."""
    marker = tmp_path / "imported"
    env = {"PYTHONPATH": str(plugin_path), "IMPORT_MARKER": str(marker)}
    result = run_cli(f"task={name}", env=env)
    assert result.returncode == 2
    line = error_line(result.output)
    for part in [f"entry point {name!r}", *parts]:
        assert part in line
    assert not (result.run_dir / "results.jsonl").exists()
    assert marker.exists() == (name == "bad_import")  # the marker works: see the next test


def test_broken_plugins_not_selected_cost_nothing(
    run_cli: RunCli, plugin_path: Path, tmp_path: Path
) -> None:
    """A run that selects none of the broken plugins works normally and never imports them."""
    marker = tmp_path / "imported"
    env = {"PYTHONPATH": str(plugin_path), "IMPORT_MARKER": str(marker)}
    result = run_cli("task.seconds=0", "source.count=3", "progress=off", env=env)
    assert result.returncode == 0, result.output
    assert len(result.results()) == 3
    assert not marker.exists()


def test_a_duplicate_name_names_both_distributions(run_cli: RunCli, plugin_path: Path) -> None:
    """Selecting a name two distributions register: exit 2, both named."""
    result = run_cli("task=twin", env={"PYTHONPATH": str(plugin_path)})
    assert result.returncode == 2
    line = error_line(result.output)
    assert "twin-a 0.1" in line and "twin-b 0.1" in line


def test_help_lists_installed_plugins(plugin_path: Path, tmp_path: Path) -> None:
    """--help shows each installed plugin as an option of its group, broken ones too."""
    proc = run_runner("--help", cwd=tmp_path, env={"PYTHONPATH": str(plugin_path)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    groups = dict(
        line.split(": ", 1)
        for line in proc.stdout.splitlines()
        if line.startswith(("task: ", "source: "))
    )
    assert {"tmp_repeat", "tmp_repeat_yaml", "bad_import", "twin", "sleep"} <= set(
        groups["task"].split(", ")
    )
    assert "bad_import" in groups["source"].split(", ")


def test_a_glob_sweep_matches_installed_plugins(plugin_path: Path, tmp_path: Path) -> None:
    """-m 'task=glob(tmp*)' runs one job per matching plugin."""
    sweep = tmp_path / "sweep"
    proc = run_runner(
        "-m",
        "task=glob(tmp*)",
        "source.count=1",
        "progress=off",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"PYTHONPATH": str(plugin_path)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    tasks = {json.loads(p.read_text())["task"] for p in sweep.glob("*/summary.json")}
    assert tasks == {"tmp_repeat", "tmp_repeat_yaml"}
