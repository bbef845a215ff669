"""Built-in post-processors: ``summary`` and ``none``."""

from __future__ import annotations

from collections.abc import Iterable

from runner.api import Outcome, PostProcessor, RunContext
from runner.toolkit import SLOWEST, atomic_write_text, markdown_table, parallel_text, printable


class NoPostProcessor(PostProcessor):
    """Does nothing: the journal and summary.json are all the run leaves."""

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        return None


class SummaryReport(PostProcessor):
    """Writes summary.md: the counts, the slowest items and the failures by error type.

    Its figures are the run's (``summary.json``, gathered as items finished): it does
    not read the journal again.
    """

    def __init__(self, top: int = 5) -> None:
        if not 0 <= top <= SLOWEST:
            raise ValueError(
                f"top={top!r} must be between 0 and {SLOWEST} (0 lists no slowest items)"
            )
        self.top = top

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        s = context.summary
        slowest = s.get("slowest", [])[: self.top]
        errors = s.get("failures_by_type", {})
        headers = ["total", "succeeded", "failed", "wall seconds", "items/s", "parallel"]
        row = [
            s.get("total"),
            s.get("succeeded"),
            s.get("failed"),
            f"{s.get('wall_seconds', 0):.3f}",
            f"{s.get('items_per_second', 0):.1f}",
            parallel_text(s.get("parallel"), s.get("concurrency")),
        ]
        resumed = s.get("resumed_from")
        if resumed:
            # The journal starts with the resumed run's successes: with ``total`` they
            # are every line of it, as in summary.json and the report.
            headers.append("succeeded in the run resumed")
            row.append(s.get("already_succeeded"))
        lines = [
            f"# Run summary: task {s.get('task')!s}",
            "",
            *markdown_table(headers, [row], "r"),
        ]
        if resumed:
            lines += ["", f"Resumed from {printable(str(resumed))}."]
        if slowest:
            lines += ["", f"## Slowest {len(slowest)} items", ""]
            lines += [f"- {printable(e['id'])}: {e['seconds']:.3f}s" for e in slowest]
        if errors:
            lines += ["", "## Failures by error type", ""]
            for kind, entry in errors.items():
                lines.append(f"- {kind}: {entry['count']} (e.g. {entry['example']})")
        atomic_write_text(context.output_dir / "summary.md", "\n".join(lines) + "\n")
