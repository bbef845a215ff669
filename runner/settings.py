"""The top-level config schema and its conversion to plain values for the run."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.errors import UsageError


@dataclasses.dataclass
class RunConfig:
    """Keys of ``conf/config.yaml``; the four plugin nodes are filled by their groups."""

    # Worker count: how many items run at once (>= 1).
    parallel: int = 1
    # List the items that would run, run nothing, write no results.
    dry_run: bool = False
    # Progress display: auto (bar on a terminal, lines otherwise), bar, lines, off.
    progress: str = "auto"
    # Console log level; runner.log always records INFO and above.
    log_level: str = "INFO"
    source: Any = None
    task: Any = None
    executor: Any = None
    postprocessor: Any = None
    # Hydra's own settings (run folders, sweeps); Hydra fills and removes this node.
    hydra: Any = None


PROGRESS_MODES = ("auto", "bar", "lines", "off")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run's config as plain Python values: cheap to read in per-item code."""

    parallel: int
    dry_run: bool
    progress: str
    log_level: str
    plugins: dict[str, dict[str, Any]]  # group -> node, "name" included

    def params(self, group: str) -> dict[str, Any]:
        """The constructor arguments of the selected plugin of ``group``."""
        return {k: v for k, v in self.plugins[group].items() if k != "name"}

    def name(self, group: str) -> str:
        return str(self.plugins[group]["name"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "parallel": self.parallel,
            "dry_run": self.dry_run,
            "progress": self.progress,
            "log_level": self.log_level,
            **self.plugins,
        }


def settings_from(cfg: DictConfig) -> Settings:
    """Validate the composed config and turn it into plain values, once, before any item."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        raise UsageError(
            f"Missing mandatory value: {missing[0]}. Set it on the command line, "
            f"e.g. {missing[0]}=VALUE."
        )
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # interpolation errors in user overrides
        raise UsageError(f"Invalid config: {exc}".splitlines()[0]) from exc
    assert isinstance(plain, dict)
    parallel = plain.get("parallel")
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise UsageError(f"parallel={parallel!r} is invalid: it must be an integer >= 1.")
    progress = str(plain.get("progress", "auto"))
    if progress not in PROGRESS_MODES:
        raise UsageError(
            f"progress={progress!r} is invalid. Valid choices: {', '.join(PROGRESS_MODES)}."
        )
    given = plain.get("log_level", "INFO")
    level = str(given).upper()
    if level not in LOG_LEVELS:
        raise UsageError(f"log_level={given!r} is invalid. Valid choices: {', '.join(LOG_LEVELS)}.")
    plugins: dict[str, dict[str, Any]] = {}
    for group in ("source", "task", "executor", "postprocessor"):
        node = plain.get(group)
        if not isinstance(node, dict) or "name" not in node:
            raise UsageError(f"No {group} selected: add {group}=NAME to the command line.")
        plugins[group] = node
    return Settings(
        parallel=parallel,
        dry_run=bool(plain.get("dry_run", False)),
        progress=progress,
        log_level=level,
        plugins=plugins,
    )
