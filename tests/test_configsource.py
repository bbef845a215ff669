"""runner.config.configsource: the options of each group and the typed nodes Hydra composes from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

import runner_plugins
from runner.api import GROUPS
from runner.config import configsource, registry
from runner.config.configsource import RunnerConfigSource, plugin_options
from runner.config.settings import RunConfig, settings_from
from runner.errors import PluginError
from tests.conftest import Compose
from tests.plugin_support import write_distribution

SHIPPED = Path(runner_plugins.__file__).parent / "conf"

ECHO_TASK = """
    from runner.api import Item, Task


    class Echo(Task):
        def __init__(self, word: str = "hi", times: int = 1) -> None:
            self.word, self.times = word, times

        def run(self, item: Item) -> str:
            return self.word * self.times
"""

# The YAML the "acme" package ships: its plugin's own option, variants of it and of a
# plugin of another distribution, and files a config source must refuse.
ACME_YAML = {
    "acme_echo": "times: 2\n",
    "acme_loud": "name: acme_echo\nword: HEY\n",
    "acme_nap": "name: sleep\nseconds: 5\n",
    "acme_typo": "name: acme_echo\ncolour: red\n",
    "acme_bad_type": "name: acme_echo\ntimes: many\n",
    "acme_list": "- a\n- b\n",
    "acme_ghost": "name: ghost\n",
}


def source() -> RunnerConfigSource:
    """The source as runner's search path names it (``runner://runner_conf``)."""
    return RunnerConfigSource(provider="runner", path="runner://runner_conf")


def node(option: str) -> DictConfig:
    """The node the source hands Hydra for ``option`` (``task/sleep``, ``config``)."""
    config = source().load_config(option).config
    assert isinstance(config, DictConfig)
    return config


@pytest.fixture
def acme(site: Path) -> Path:
    """The "acme" distribution, which registers task acme_echo and ships ACME_YAML."""
    files = {f"acme_pkg/conf/task/{name}.yaml": text for name, text in ACME_YAML.items()}
    files["acme_pkg/__init__.py"] = ECHO_TASK
    write_distribution(site, "acme", {"runner.tasks": {"acme_echo": "acme_pkg:Echo"}}, files)
    registry.refresh()
    return site / "acme_pkg" / "conf" / "task"


def test_options_are_entry_point_names_and_the_variants_packages_ship() -> None:
    """Each registered name is an option, with its package's YAML if it ships one; a YAML
    under another name (judge_rerun_claude) is an option too."""
    options = plugin_options("task")
    assert {"sleep", "shell", "judge_rerun", "judge_regenerate", "judge_rerun_claude"} <= set(
        options
    )
    assert options["sleep"] is None and options["shell"] is None
    assert options["judge_rerun"] == SHIPPED / "task" / "judge_rerun.yaml"
    assert options["judge_rerun_claude"] == SHIPPED / "task" / "judge_rerun_claude.yaml"
    assert set(plugin_options("executor")) == set(registry.names("executor"))


def test_another_packages_yaml_files_are_options(acme: Path) -> None:
    """An installed package's conf/task/*.yaml are options, found without importing it."""
    options = plugin_options("task")
    assert {name: options[name] for name in ACME_YAML} == {
        name: acme / f"{name}.yaml" for name in ACME_YAML
    }
    assert "acme_pkg" not in sys.modules


def test_a_name_two_distributions_register_gets_no_yaml(site: Path) -> None:
    """For a duplicate name neither package's YAML is taken: using it is an error."""
    for twin in ("a", "b"):
        write_distribution(
            site,
            f"twin-{twin}",
            {"runner.tasks": {"twin": f"twin_{twin}:Task"}},
            {f"twin_{twin}/__init__.py": "", f"twin_{twin}/conf/task/twin.yaml": "times: 3\n"},
        )
    registry.refresh()
    assert plugin_options("task")["twin"] is None


def test_a_node_is_typed_from_the_constructor() -> None:
    """A plugin without YAML gets its constructor's keys, defaults and types; a parameter
    without a default is mandatory (???)."""
    sleep = node("task/sleep")
    assert sleep == {"name": "sleep", "seconds": 0.1, "fail_rate": 0.0, "seed": 0}
    assert OmegaConf.merge(sleep, {"seconds": "2"}).seconds == 2.0
    with pytest.raises(ValidationError):
        OmegaConf.merge(sleep, {"seed": "abc"})
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(sleep, {"colour": "red"})
    assert OmegaConf.is_missing(node("task/shell"), "command")


def test_yaml_values_merge_onto_the_constructors_node(acme: Path) -> None:
    """The option's own YAML sets what it says; the constructor supplies the rest."""
    assert node("task/acme_echo") == {"name": "acme_echo", "word": "hi", "times": 2}


def test_a_yamls_name_picks_the_plugin(acme: Path) -> None:
    """A variant is a node of the plugin its ``name:`` says, typed by that constructor."""
    assert node("task/acme_loud") == {"name": "acme_echo", "word": "HEY", "times": 1}
    nap = node("task/acme_nap")
    assert nap == {"name": "sleep", "seconds": 5.0, "fail_rate": 0.0, "seed": 0}
    assert isinstance(nap.seconds, float)
    claude = node("task/judge_rerun_claude")
    assert claude.name == "judge_rerun" and list(claude.command)[:2] == ["claude", "--model"]
    # The variant's defaults list stays on the node for Hydra to read.
    assert "override /source@_global_.source: judge_slots" in OmegaConf.to_yaml(claude.defaults)


@pytest.mark.parametrize(
    ("option", "error", "text"),
    [
        ("acme_typo", ConfigLoadError, "Unknown key 'task.colour' in "),
        ("acme_bad_type", ConfigLoadError, "Invalid value 'many' for 'task.times' in "),
        ("acme_list", ConfigLoadError, "acme_list.yaml must hold a mapping, not a list"),
    ],
)
def test_a_shipped_yaml_the_plugin_cannot_take_is_refused(
    acme: Path, option: str, error: type[Exception], text: str
) -> None:
    """A key the constructor lacks, a value of the wrong type, a list, an unknown plugin:
    one line, naming the key with its group and the option file."""
    with pytest.raises(error) as caught:
        node(f"task/{option}")
    assert text in str(caught.value) and len(str(caught.value).splitlines()) == 1
    if error is ConfigLoadError:
        assert f"{option}.yaml" in str(caught.value)


def test_a_plugin_that_cannot_load_fails_its_run_not_the_composition(
    acme: Path, compose_config: Compose
) -> None:
    """A plugin that does not load (unknown to the registry here, an import failure in a
    sweep) gives an open node holding its file, so Hydra can compose every job of a
    sweep; the run that selects it stops at its start with the registry's line."""
    ghost = node("task/acme_ghost")
    assert ghost == {"name": "ghost"}
    ghost.anything = 1  # open: an override of it composes, and the run says what is wrong
    cfg = compose_config("task=acme_ghost", "task.times=3")
    with pytest.raises(PluginError, match=r"^Unknown task 'ghost'\. Valid tasks: acme_echo,"):
        settings_from(cfg)


def test_the_primary_config_is_typed_by_run_config() -> None:
    """config.yaml is merged onto RunConfig: its keys are typed, its defaults list kept."""
    config = node("config")
    schema = OmegaConf.get_type(config)
    assert isinstance(schema, type) and issubclass(schema, RunConfig)
    assert "task: sleep" in OmegaConf.to_yaml(config.defaults)
    with pytest.raises(ValidationError):
        OmegaConf.merge(config, {"timeout_grace": "abc"})  # parallel is int or "auto"


def test_every_option_is_listed_and_is_a_config(acme: Path) -> None:
    """What --help and shell completion offer: each group, each plugin option."""
    runner_source = source()
    assert set(GROUPS) <= set(runner_source.list("", ObjectType.GROUP))
    assert {"config", "sweep_parallel"} <= set(runner_source.list("", ObjectType.CONFIG))
    listed = runner_source.list("task", ObjectType.CONFIG)
    assert {"sleep", "judge_rerun_claude", "acme_loud"} <= set(listed)
    assert runner_source.list("task", ObjectType.GROUP) == []
    assert runner_source.is_group("task") and not runner_source.is_group("nope")
    assert runner_source.is_config("task/acme_loud") and runner_source.is_config("config")
    assert not runner_source.is_config("task/nope")


def test_nodes_are_built_once_and_handed_out_as_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every source (Hydra makes one per composition) shares the nodes built so far; each
    caller gets its own copy to edit; clear_cache() builds them anew."""
    configsource.clear_cache()
    built: list[str] = []
    build = RunnerConfigSource._build

    def counting(self: RunnerConfigSource, config_path: str) -> object:
        built.append(config_path)
        return build(self, config_path)

    monkeypatch.setattr(RunnerConfigSource, "_build", counting)
    first = source().load_config("task/sleep")
    OmegaConf.update(first.config, "seconds", 9.0)
    second = source().load_config("task/sleep.yaml")
    assert built == ["task/sleep"]
    assert OmegaConf.select(second.config, "seconds") == 0.1 and second is not first
    assert second.path == first.path == "runner://runner_conf/task/sleep"
    configsource.clear_cache()
    assert node("task/sleep").seconds == 0.1
    assert built == ["task/sleep", "task/sleep"]


def test_a_config_files_header_is_read_as_hydra_reads_it() -> None:
    """``# @package`` lines that open a file set its package; the header ends at the
    first other line; a malformed header line is an error."""
    assert configsource.header_of("x: 1\n") == {"package": None}
    text = "\n# @package _global_\n#  @other v\nx: 1\n# @package late\n"
    assert configsource.header_of(text) == {"package": "_global_", "other": "v"}
    with pytest.raises(ValueError, match="KEY VALUE"):
        configsource.header_of("# @package a b\n")
