"""``python -m runner.plugins``: every installed plugin, where it comes from, whether it loads.

Unlike a run, which imports only the plugins it selects, this listing imports every
plugin to check it; a broken one is reported on its row and the command still exits 0.
A variant (an option file a plugin package ships under another name, such as
``judge_rerun_claude``, which is ``judge_rerun`` with another command) is an option like
any other, so it has a row too: its file, the plugin it configures, and whether that
option composes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from runner.api import GROUPS
from runner.config import registry

COLUMNS = ("group", "name", "distribution", "entry point", "status")


@dataclasses.dataclass(frozen=True)
class PluginRow:
    """One registration of a plugin and the result of loading it."""

    group: str
    name: str
    distribution: str
    version: str
    value: str  # "module:attribute"; for a variant, its option file in its package
    error: str | None  # why it does not load, in one line; None when it does
    also_registered_by: tuple[str, ...]  # other distributions using the same name
    variant_of: str | None = None  # the plugin a variant's option file configures

    @property
    def status(self) -> str:
        status = "ok" if self.error is None else f"broken: {self.error}"
        if self.variant_of is not None:
            status += f" (variant of {self.group} {self.variant_of})"
        if self.also_registered_by:
            status += f"; duplicate name, also registered by {', '.join(self.also_registered_by)}"
        return status


def load_error(spec: registry.PluginSpec) -> str | None:
    """Why the plugin registered as ``spec`` cannot be used, in one line, or None."""
    try:
        # Some plugins print while importing: keep stdout for the listing itself.
        with contextlib.redirect_stdout(sys.stderr):
            cls = registry.import_plugin(spec)
    except (Exception, SystemExit) as exc:  # third-party import-time code may do anything
        return registry.import_failure(exc)
    return registry.contract_problem(spec.group, cls)


def variant_rows(group: str) -> list[PluginRow]:
    """A row per option file that plugin packages ship under a name no entry point has."""
    from runner.config.configsource import plugin_options

    registered = registry.specs(group)
    # The package that ships a file is the one whose folder holds conf/<group>/<file>
    # (the folder's name need not be the package's: an editable install maps it).
    shipped_by: dict[Path, tuple[str, registry.PluginSpec]] = {}
    for specs in (registry.specs(g) for g in GROUPS):
        for spec in (s for found in specs.values() for s in found):
            package = spec.module.split(".", 1)[0]
            with contextlib.suppress(ImportError, ValueError):
                found_spec = importlib.util.find_spec(package)
                for folder in (found_spec and found_spec.submodule_search_locations) or ():
                    shipped_by.setdefault(Path(folder).resolve(), (package, spec))
    rows: list[PluginRow] = []
    for option, path in plugin_options(group).items():
        if option in registered or path is None:
            continue
        package, owner = shipped_by.get(path.parents[2].resolve(), (path.parents[2].name, None))
        error, base = variant_error(group, option)
        rows.append(
            PluginRow(
                group=group,
                name=option,
                distribution=owner.distribution if owner else "?",
                version=owner.version if owner else "?",
                value=f"{package}/conf/{group}/{path.name}",
                error=error,
                also_registered_by=(),
                variant_of=base,
            )
        )
    return rows


def variant_error(group: str, option: str) -> tuple[str | None, str | None]:
    """Why the variant ``option`` cannot be used, in one line (None when it composes),
    and the plugin its file names (None if the file cannot be read)."""
    from omegaconf import DictConfig, OmegaConf

    from runner.config.configsource import RunnerConfigSource, plugin_options

    path = plugin_options(group)[option]
    try:
        assert path is not None
        node = OmegaConf.load(path)
    except Exception as exc:
        return f"cannot read {path}: {registry.import_failure(exc)}", None
    base = str(node.get("name", option)) if isinstance(node, DictConfig) else None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            # The plugin loads (a node whose plugin does not is left open, for its run to
            # refuse), and the file's keys and values fit its constructor, as a run builds it.
            if base is not None:
                registry.load_plugin(group, base)
            RunnerConfigSource("runner", "runner://runner_conf").load_config(f"{group}/{option}")
    except (Exception, SystemExit) as exc:  # third-party import-time code may do anything
        return registry.import_failure(exc.__cause__ or exc), base
    return None, base


def plugin_rows() -> list[PluginRow]:
    """Every registration of every group, then its variants, in group order, then by name."""
    rows: list[PluginRow] = []
    for group in GROUPS:
        rows.extend(_registration_rows(group))
        rows.extend(variant_rows(group))
    return rows


def _registration_rows(group: str) -> list[PluginRow]:
    """Every registration of ``group``, by name; a name registered twice has two rows."""
    rows: list[PluginRow] = []
    for name, registered in registry.specs(group).items():
        for spec in registered:
            others = tuple(f"{s.distribution} {s.version}" for s in registered if s != spec)
            rows.append(
                PluginRow(
                    group=group,
                    name=name,
                    distribution=spec.distribution,
                    version=spec.version,
                    value=spec.value,
                    error=load_error(spec),
                    also_registered_by=others,
                )
            )
    return rows


def version_text() -> str:
    """What ``--version`` prints: runner's version, then each distribution that registers
    plugins with how many of each group (as ``pytest --version`` names its plugins)."""
    import platform

    import hydra

    from runner import __version__

    counts: dict[str, dict[str, int]] = {}
    for group in GROUPS:
        for registered in registry.specs(group).values():
            for spec in registered:
                by_group = counts.setdefault(f"{spec.distribution} {spec.version}", {})
                by_group[group] = by_group.get(group, 0) + 1
    lines = [
        f"runner {__version__} (Python {platform.python_version()}, Hydra {hydra.__version__})",
        "plugins from:" if counts else "plugins from: none installed",
    ]
    for distribution, by_group in sorted(counts.items()):
        shown = ", ".join(f"{n} {group}{'s' * (n != 1)}" for group, n in by_group.items())
        lines.append(f"  {distribution}: {shown}")
    return "\n".join(lines)


def format_table(rows: Sequence[PluginRow]) -> str:
    """The rows as plain text in aligned columns, with a header and a closing count."""
    cells = [[c.upper() for c in COLUMNS]]
    for row in rows:
        cells.append(
            [row.group, row.name, f"{row.distribution} {row.version}", row.value, row.status]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]
    broken = sum(row.error is not None for row in rows)
    duplicated = sum(bool(row.also_registered_by) for row in rows)
    lines.append(f"\n{len(rows)} plugin(s): {broken} broken, {duplicated} with a duplicate name.")
    return "\n".join(lines)


def as_json(rows: Sequence[PluginRow]) -> str:
    """The rows as a JSON list of objects, one per registration."""
    records = [
        {**dataclasses.asdict(row), "loads": row.error is None, "status": row.status}
        for row in rows
    ]
    return json.dumps(records, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """List the plugins; the exit code is 0 even when some of them are broken."""
    parser = argparse.ArgumentParser(
        prog="python -m runner.plugins",
        description="List every installed runner plugin and check that it loads.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rows = plugin_rows()
    try:
        print(as_json(rows) if args.json else format_table(rows))
    except BrokenPipeError:  # `... | head`
        from runner.cli import quiet_broken_pipe

        quiet_broken_pipe()
    return 0


if __name__ == "__main__":
    sys.exit(main())
