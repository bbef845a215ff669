"""Built-in post-processors: ``summary`` and ``none``."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable

from loguru import logger

from runner.api import Outcome, PostProcessor, RunContext, atomic_write_text, printable


class NoPostProcessor(PostProcessor):
    """Does nothing: the journal and summary.json are all the run leaves."""

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        return None


class SummaryReport(PostProcessor):
    """Writes summary.md: the counts, the slowest items and the failures by error type."""

    def __init__(self, top: int = 5) -> None:
        if top < 0:
            raise ValueError(f"top={top!r} must be >= 0 (0 lists no slowest items)")
        self.top = top

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        slowest: list[tuple[float, str]] = []
        errors: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for outcome in outcomes:
            entry = (outcome.seconds, outcome.id)
            if len(slowest) < self.top:
                heapq.heappush(slowest, entry)
            elif slowest and entry > slowest[0]:
                heapq.heapreplace(slowest, entry)
            if outcome.status != "ok" and outcome.error:
                kind = outcome.error.get("type", "Error")
                errors[kind] += 1
                examples.setdefault(
                    kind, printable(f"{outcome.id}: {outcome.error.get('message', '')}", 200)
                )
        s = context.summary
        lines = [
            f"# Run summary: task {s.get('task')!s}",
            "",
            "| total | succeeded | failed | wall seconds | items/s | parallel |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {s.get('total')} | {s.get('succeeded')} | {s.get('failed')} "
            f"| {s.get('wall_seconds', 0):.3f} | {s.get('items_per_second', 0):.1f} "
            f"| {s.get('parallel')} |",
        ]
        if slowest:
            lines += ["", f"## Slowest {len(slowest)} items", ""]
            lines += [
                f"- {printable(iid)}: {secs:.3f}s" for secs, iid in sorted(slowest, reverse=True)
            ]
        if errors:
            lines += ["", "## Failures by error type", ""]
            for kind, count in errors.most_common():
                lines.append(f"- {kind}: {count} (e.g. {examples[kind]})")
                logger.warning(f"{count} item(s) failed with {kind}, e.g. {examples[kind]}")
        atomic_write_text(context.output_dir / "summary.md", "\n".join(lines) + "\n")
