"""A Hydra config source that serves runner's conf/ and every installed plugin.

Hydra only asks a source for the options a run selects, so only the selected plugins
are imported. For a plugin group (``task/<option>``) the node is the plugin's schema,
derived from its constructor (see ``registry.schema_for``), merged with the YAML the
plugin's package ships at ``<top-level package>/conf/<group>/<option>.yaml`` when there
is one (the built-in plugins ship theirs in ``runner_plugins``, like any other). The
YAML's ``name:`` picks the plugin, so a package can ship ready-made variants of a plugin
under other option names. A plugin with no YAML is still an option, under its
entry-point name. Defaults live in constructors only: YAML adds what a constructor
cannot say (a defaults list, a variant's values).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.util
import re
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from runner.api import GROUPS
from runner.config import registry
from runner.config.settings import RunConfig
from runner.errors import PluginError, unknown_key

SCHEME = "runner"

# What Hydra's ConfigSource helpers would say, written out: ``_list_add_result`` and
# ``_get_header_dict`` are protected members of Hydra's base class.
_NOT_LISTED = ("__pycache__", "__init__.py")
_HEADER_LINE = re.compile(r"^\s*#\s*@")


def clear_cache() -> None:
    """Forget the nodes built so far (after plugins were installed or removed)."""
    _built.cache_clear()
    plugin_options.cache_clear()


def header_of(text: str) -> dict[str, str | None]:
    """The ``# @key value`` lines that open a config file (``# @package _global_``), as
    Hydra reads them: ``package`` is None when not given."""
    header: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not _HEADER_LINE.match(line):
            break  # the header ends at the first line that is not part of it
        fields = line.lstrip("#").split()
        if len(fields) != 2:
            raise ValueError(f"Expected header format: KEY VALUE, got {line!r}")
        if fields[0].startswith("@"):
            header[fields[0][1:]] = fields[1]
    header.setdefault("package", None)
    return header


def _strip_ext(path: str) -> str:
    path = path.strip("/")
    return path[: -len(".yaml")] if path.endswith(".yaml") else path


def _package_folders(package: str) -> list[Path]:
    """The folders of a top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


@functools.cache
def plugin_options(group: str) -> dict[str, Path | None]:
    """Every option of ``group``: entry-point names (with the YAML their package ships
    for them, if any) and the YAML variants plugin packages ship under other names."""
    specs = registry.specs(group)
    options: dict[str, Path | None] = {}
    packages: dict[str, list[Path]] = {}
    for name, registered in specs.items():
        top = registered[0].module.split(".", 1)[0]
        folders = packages.setdefault(top, _package_folders(top))
        own = [f / "conf" / group / f"{name}.yaml" for f in folders]
        # A name registered twice is an error the registry reports when it is used.
        unique = len(registered) == 1
        options[name] = next((y for y in own if y.is_file()), None) if unique else None
    for folders in packages.values():
        for folder in folders:
            for yaml_file in sorted((folder / "conf" / group).glob("*.yaml")):
                options.setdefault(yaml_file.stem, yaml_file)
    return options


class RunnerConfigSource(ConfigSource):
    """``runner://<package>``: YAML from ``<package>`` plus one option per plugin."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self.root = Path(str(resources.files(self.path)))

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return self.root.is_dir()

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        return path == "" or path in GROUPS or (self.root / path).is_dir()

    def is_config(self, config_path: str) -> bool:
        path = _strip_ext(config_path)
        if (self.root / f"{path}.yaml").is_file():
            return True
        group, _, option = path.rpartition("/")
        return group in GROUPS and option in plugin_options(group)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        found: list[str] = []
        folder = self.root / path
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.name in _NOT_LISTED:
                    continue
                entry_path = f"{path}/{entry.name}" if path else entry.name
                if results_filter in (None, ObjectType.GROUP) and self.is_group(entry_path):
                    found.append(entry.name)
                if results_filter in (None, ObjectType.CONFIG) and self.is_config(entry_path):
                    found.append(entry.name.rpartition(".")[0] or entry.name)
        if path in GROUPS and results_filter in (None, ObjectType.CONFIG):
            found.extend(plugin_options(path))
        if path == "" and results_filter in (None, ObjectType.GROUP):
            found.extend(GROUPS)
        return sorted(set(found))

    def load_config(self, config_path: str) -> ConfigResult:
        # Hydra composes the config twice per run (to learn the mode, then to run), and
        # building typed nodes is the costly part of start-up: build each once, hand out
        # copies (Hydra edits the nodes it gets).
        built = _built(self.provider, self.path, _strip_ext(config_path))
        result = copy.copy(built)
        result.config = copy.deepcopy(built.config)
        return result

    def _build(self, config_path: str) -> ConfigResult:
        path = _strip_ext(config_path)
        group, _, option = path.rpartition("/")
        yaml_file: Path | None = self.root / f"{path}.yaml"
        if group in GROUPS:
            yaml_file = plugin_options(group).get(option)
        text = yaml_file.read_text(encoding="utf-8") if yaml_file is not None else ""
        try:
            raw = OmegaConf.create(text) if text.strip() else OmegaConf.create({})
        except Exception as exc:
            raise ConfigLoadError(f"Cannot read {yaml_file}: {exc}") from exc
        if not isinstance(raw, DictConfig):
            raise ConfigLoadError(f"{yaml_file} must hold a mapping, not a list")
        if group in GROUPS:
            try:
                config = self._plugin_node(group, option, raw)
            except (ConfigKeyError, ValidationError) as exc:
                raise ConfigLoadError(_yaml_problem(exc, group, yaml_file)) from exc
        elif path == "config":
            config = _typed(RunConfig, raw)
        else:
            config = raw
        return ConfigResult(
            config=config,
            path=f"{self.scheme()}://{self.path}/{path}",
            provider=self.provider,
            header=header_of(text),
        )

    def _plugin_node(self, group: str, option: str, raw: DictConfig) -> DictConfig:
        name = str(raw.get("name", option))
        try:
            cls = registry.load_plugin(group, name)
        except PluginError:
            # Hydra composes every job of a sweep before it launches the first, so an
            # error here would stop jobs that do not use this plugin. The node is the file
            # as it is, open to any key; the job that selects it stops at its start
            # (settings_from loads the plugin again) with this error, on its own row.
            node = OmegaConf.merge(raw, {"name": name})
            assert isinstance(node, DictConfig)
            OmegaConf.set_struct(node, False)
            return node
        schema = registry.schema_for(name, cls)
        return _typed(schema, raw)


@functools.cache
def _built(provider: str, package: str, path: str) -> ConfigResult:
    """The node of ``path`` in ``package``, built once per process until ``clear_cache``:
    like ``plugin_options``, a function of the installed plugins and the package's files
    (Hydra makes a new source for every composition, so it cannot live on one)."""
    return RunnerConfigSource(provider, f"{SCHEME}://{package}")._build(path)


def _yaml_problem(exc: ConfigKeyError | ValidationError, group: str, path: Path | None) -> str:
    """One line naming the option file, the key (with its group) and what is wrong."""
    key = f"{group}.{exc.key}" if getattr(exc, "key", None) else group
    where = f" in {path}" if path is not None else ""
    if isinstance(exc, ConfigKeyError):
        parent = exc.parent_node
        return unknown_key(key, parent.keys() if parent is not None else (), where)
    return f"Invalid value {exc.value!r} for {key!r}{where}: {str(exc).splitlines()[0]}"


def _typed(schema: type, raw: DictConfig) -> DictConfig:
    """Merge ``raw`` onto ``schema`` so that types and unknown keys are checked.

    A ``defaults`` list is kept by adding it to the schema: Hydra reads it from the
    node and removes it after composition.
    """
    if "defaults" in raw:
        schema = dataclasses.make_dataclass(
            schema.__name__,
            [("defaults", list[Any], dataclasses.field(default_factory=list))],
            bases=(schema,),
        )
    merged = OmegaConf.merge(OmegaConf.structured(schema), raw)
    assert isinstance(merged, DictConfig)
    return merged
