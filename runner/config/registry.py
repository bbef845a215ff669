"""Find plugins through entry points, load only the selected ones, derive their schemas."""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.api import CONTRACTS, GROUPS
from runner.config import entrypoints
from runner.errors import PluginError

# Annotations OmegaConf can validate; anything else becomes Any (accepted as given).
_SIMPLE_TYPES = (str, int, float, bool, Path)


@dataclasses.dataclass(frozen=True, eq=False)
class PluginSpec:
    """One registered plugin, known without importing it (each registration its own: two
    distributions registering the same name and value are two specs)."""

    group: str
    name: str
    value: str  # "module:attribute"
    entry_point: entrypoints.EntryPoint = dataclasses.field(repr=False)

    @property
    def distribution(self) -> str:
        """The registering distribution's name (read from its metadata when asked)."""
        return self.entry_point.distribution

    @property
    def version(self) -> str:
        return self.entry_point.version

    @property
    def module(self) -> str:
        return self.value.split(":", 1)[0]


@functools.cache
def _all_entry_points() -> dict[str, dict[str, tuple[PluginSpec, ...]]]:
    found: dict[str, dict[str, list[PluginSpec]]] = {g: {} for g in GROUPS}
    by_ep_group = {ep_group: group for group, ep_group in GROUPS.items()}
    for ep in entrypoints.entry_points(by_ep_group):
        group = by_ep_group[ep.group]
        spec = PluginSpec(group, ep.name, ep.value, ep)
        # importlib.metadata lists each distribution once: two specs of a name are two
        # distributions registering it, even with the same value.
        found[group].setdefault(ep.name, []).append(spec)
    return {g: {n: tuple(s) for n, s in sorted(d.items())} for g, d in found.items()}


def refresh() -> None:
    """Forget what was discovered (after installing a plugin at run time, and in tests)."""
    # A folder scanned before may have gained a distribution without its mtime changing
    # (coarse timestamps): drop the path finders' cached listings too.
    importlib.invalidate_caches()
    _all_entry_points.cache_clear()
    _forget_config_nodes()
    load_plugin.cache_clear()
    schema_for.cache_clear()


def _forget_config_nodes() -> None:
    # The config source caches nodes built from plugins; it imports this module, so the
    # import is deferred.
    import sys

    source = sys.modules.get("runner.config.configsource")
    if source is not None:
        source.clear_cache()


def names(group: str) -> list[str]:
    """Sorted plugin names registered in a config group (``task``, ``source``, ...)."""
    return list(_all_entry_points()[group])


def specs(group: str) -> dict[str, tuple[PluginSpec, ...]]:
    """Every registration in a group, duplicates included."""
    return _all_entry_points()[group]


def find(group: str, name: str) -> PluginSpec:
    """The one registration of ``name`` in ``group``; unknown or duplicated names are errors."""
    if group not in GROUPS:
        raise PluginError(
            f"Unknown plugin group {group!r}. Valid groups: {', '.join(GROUPS)}.",
            group=group,
            name=name,
        )
    registered = _all_entry_points()[group]
    if name not in registered:
        valid = ", ".join(registered) or "(none installed)"
        raise PluginError(
            f"Unknown {group} {name!r}. Valid {group}s: {valid}.", group=group, name=name
        )
    options = registered[name]
    if len(options) > 1:
        who = " and ".join(f"{s.distribution} {s.version} ({s.value})" for s in options)
        raise PluginError(
            f"{group} {name!r} is registered by more than one distribution: {who}. "
            "Uninstall one of them.",
            group=group,
            name=name,
        )
    return options[0]


def contract_problem(group: str, cls: Any) -> str | None:
    """Why ``cls`` cannot serve as a plugin of ``group``, or None when it can."""
    if not inspect.isclass(cls):
        return f"it is a {type(cls).__name__}, not a class"
    for method in sorted(getattr(CONTRACTS[group], "__abstractmethods__", ())):
        if not callable(getattr(cls, method, None)):
            return f"class {cls.__name__} has no {method}() method, which a {group} must have"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"class {cls.__name__} is abstract (does not implement {missing})"
    return None


def import_plugin(spec: PluginSpec) -> Any:
    """Import what ``spec`` registers, without checking it; import errors propagate."""
    return entrypoints.load(spec.value)


def import_failure(exc: BaseException) -> str:
    """One line for an exception raised while importing a plugin: type and first line."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


@functools.cache
def load_plugin(group: str, name: str) -> type:
    """Import the plugin class registered as ``name`` in ``group`` and check its contract."""
    spec = find(group, name)

    def where() -> str:  # only for an error: the distribution's metadata costs a read
        return (
            f"entry point {name!r} in group {GROUPS[group]!r} ({spec.value}, distribution "
            f"{spec.distribution} {spec.version})"
        )

    try:
        cls = import_plugin(spec)
    except (Exception, SystemExit) as exc:  # third-party import-time code may do anything
        raise PluginError(
            f"Cannot load {group} {name!r}: {where()} failed to import: {import_failure(exc)}",
            group=group,
            name=name,
            value=spec.value,
            distribution=spec.distribution,
        ) from exc
    problem = contract_problem(group, cls)
    if problem is not None:
        raise PluginError(
            f"Cannot use {group} {name!r}: {where()} does not satisfy the {group} contract: "
            f"{problem}.",
            group=group,
            name=name,
            value=spec.value,
            distribution=spec.distribution,
        )
    return typing.cast(type, cls)


def _omegaconf_type(annotation: Any) -> Any:
    """The annotation if OmegaConf can validate it, else ``Any``."""
    if annotation in _SIMPLE_TYPES or annotation is Any:
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = _omegaconf_type(rest[0])
            return Any if inner is Any else typing.Optional[inner]  # noqa: UP045
        return Any
    if origin in (list, tuple, collections.abc.Sequence):
        inner = args[0] if args else Any
        # A list of text is not typed: OmegaConf would turn the values Hydra reads from
        # unquoted elements (true, null, 1e3, 1_000) into text they never were ("True",
        # "1000.0"), so they reach the plugin as read, and it refuses or converts them.
        inner = _omegaconf_type(inner) if inner not in (Ellipsis, str) else Any
        # Built at run time from a runtime value: what ``list[inner]`` would build.
        return types.GenericAlias(list, (inner,))
    if origin is dict:
        key, val = (*args, Any, Any)[:2]
        if key is str:
            return types.GenericAlias(dict, (str, _omegaconf_type(val)))
        return dict[str, Any]
    return Any


def _default_for(value: Any) -> Any:
    if isinstance(value, (list, dict, tuple)):
        copy = list(value) if isinstance(value, tuple) else value
        return dataclasses.field(default_factory=lambda: copy.copy())
    return dataclasses.field(default=value)


@functools.cache  # the config source and settings both ask, once per run each
def schema_for(name: str, cls: type[object]) -> type:
    """A dataclass describing the config node of a plugin, from ``cls.__init__``.

    Parameter names become keys, annotations become types OmegaConf validates, defaults
    become values; a parameter without a default is mandatory (``???``). The node also
    carries ``name``, the plugin's entry-point name.
    """
    # ``type[object]``, not ``type``: mypy reads ``__init__`` of a class then, not of an
    # instance of ``type`` (which could be anyone's).
    init: Callable[..., Any] = cls.__init__
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable forward references: fall back to no types
        hints = {}
    fields: list[Any] = [("name", str, dataclasses.field(default=name))]
    if init is not object.__init__:
        for param in inspect.signature(init).parameters.values():
            if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name == "name":
                continue
            annotation = _omegaconf_type(hints.get(param.name, Any))
            if param.default is inspect.Parameter.empty:
                fields.append((param.name, annotation, dataclasses.field(default="???")))
            else:
                fields.append((param.name, annotation, _default_for(param.default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)
