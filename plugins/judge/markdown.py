"""The experiment summary as Markdown (``judge_summary.md``), from its JSON (``summary.py``).

One section per question, each table column with its unit: ``runs`` count runs,
``slots`` count judge slots, scores are 0-1 and rates percentages of the group they
name. The run's report.html renders it (headings, tables, lists, **bold**, `code`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.toolkit import markdown_table
from runner_plugins.judge.costs import TOKENS, usd
from runner_plugins.judge.slotfiles import FAILURE_KINDS
from runner_plugins.judge.slotstatus import STATUSES

#: How many listed runs (short of judges, consensus changed) a table shows.
SHOWN = 20
#: Why a slot is failed when no failed attempt says so: its judgment.json, as the
#: original tool or a crash left it (``summary.slot_problem``).
SLOT_PROBLEMS = {
    "no_judgment": "no judgment.json, and no failure recorded",
    "unreadable_judgment": "judgment.json is not valid JSON (cut short?)",
    "no_score": "judgment.json has no numeric score",
    "invalid_judgment": "judgment.json says is_valid: false",
}
#: Every reason a failure table shows, in its order ("other" last).
REASONS = {k: v for k, v in FAILURE_KINDS.items() if k != "other"} | SLOT_PROBLEMS
REASONS["other"] = FAILURE_KINDS["other"]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The names in the first column, the counts and scores after it right-aligned."""
    return markdown_table(header, rows, ["", "r"])


def verdict(passed: bool | None) -> str:
    """A consensus's passed as a word: pass, fail, or none (no consensus)."""
    return {True: "pass", False: "fail", None: "none"}[passed]


def provisional_note(change: Mapping[str, Any]) -> str:
    """`` (provisional: 2 of 3 judges)`` for a consensus change that fewer valid judgments
    than judge models decided (the judges still to come may turn it back), else ''."""
    if not change.get("provisional"):  # summaries written before it was recorded: not said
        return ""
    return f" (provisional: {change['valid_judges']} of {change['judges']} judges)"


def _scores(stats: Mapping[str, Any]) -> list[str]:
    return [_score(stats["mean_score"]), _rate(stats["pass_rate"])]


def _groups(summary: Mapping[str, Any]) -> list[str]:
    def row(tier: str, subtest: str, stats: Mapping[str, Any]) -> list[Any]:
        counts = [stats["slots"][status] for status in STATUSES]
        return [tier, subtest, stats["runs"], stats["scored_runs"], *counts, *_scores(stats)]

    rows = []
    for tier, stats in summary["tiers"].items():
        rows += [row(tier, name, sub) for name, sub in stats["subtests"].items()]
        rows.append(row(f"**{tier}**", "all", stats))
    rows.append(row("**all**", "all", summary["totals"]))
    header = ["tier", "subtest", "runs", "runs with a consensus"]
    header += [f"{status} (slots)" for status in STATUSES]
    header += ["mean score (0-1, runs with a consensus)", "pass rate (% of runs with a consensus)"]
    return ["## Scores and slot statuses by tier and subtest", "", *_table(header, rows)]


def _judges(summary: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            f"`{model}` (slot {', '.join(map(str, j['slot_numbers']))})",
            j["slots_to_judge"],
            j["valid"],
            j["failed"],
            j["missing"],
            *_scores(j),
        ]
        for model, j in summary["judges"].items()
    ]
    header = ["judge model", "slots to judge (agent finished)", "valid judgments (slots)"]
    header += ["failed (slots)", "missing (slots)", "mean score (0-1, valid judgments)"]
    header += ["pass rate (% of valid judgments)"]
    return ["## By judge model", "", *_table(header, rows)]


def _agreement(summary: Mapping[str, Any]) -> list[str]:
    def row(name: str, stats: Mapping[str, Any]) -> list[Any]:
        agreed = stats["agreement"]
        return [
            name,
            agreed["runs_compared"],
            _rate(agreed["unanimous_rate"]),
            _score(agreed["mean_score_spread"]),
            _score(agreed["max_score_spread"]),
            stats["short_of_judges"],
        ]

    rows = [row(tier, stats) for tier, stats in summary["tiers"].items()]
    rows.append(row("**all**", summary["totals"]))
    header = ["tier", "runs compared", "all judges agree on pass/fail (% of runs compared)"]
    header += ["mean score spread (0-1, max - min)", "largest score spread (0-1)"]
    header += ["runs short of judges"]
    return [
        "## Agreement between judges",
        "",
        "Over the runs whose agent finished and that have 2 or more valid judgments; a "
        "run's score spread is its highest valid score minus its lowest.",
        "",
        *_table(header, rows),
    ]


def _kappa(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


#: Why a kappa cell reads ``-`` (the footnote under the agreement tables).
KAPPA_UNDEFINED = (
    "`-` for kappa: undefined, because both sides gave every compared run one and the same "
    "verdict (chance agreement is then 100%), or no run was compared; the agreement column "
    "still says how often they agreed."
)


def _outliers(summary: Mapping[str, Any]) -> list[str]:
    agreement = summary["judge_agreement"]

    def figures(stats: Mapping[str, Any]) -> list[Any]:
        return [stats["runs_compared"], _rate(stats["agreement_rate"]), _kappa(stats["kappa"])]

    judges = [
        [f"`{model}`", *figures(stats), _score(stats["mean_score_gap"])]
        for model, stats in agreement["judges"].items()
    ]
    header = [
        "judge model",
        "runs compared",
        "same pass/fail as the consensus (% of runs compared)",
    ]
    header += ["Cohen's kappa with the consensus", "mean score gap to the consensus (0-1)"]
    lines = [
        "## Which judge disagrees",
        "",
        "Agreement here means **the same pass/fail verdict**: that is what a run's consensus "
        "decides (a strict majority of its valid judgments); a grade is only its score's band, "
        "so distance in score is the score gap. Over the runs whose agent finished: a judge "
        "model against the consensus where its judgment is valid (its own verdict is part of "
        "the consensus), two models against each other where both judgments are valid. "
        "Cohen's kappa discounts the agreement expected by chance (1: always agree, 0: as "
        "often as chance, below 0: less).",
        "",
        *_table(header, judges),
    ]
    if agreement["pairs"]:
        pairs = [
            [" and ".join(f"`{m}`" for m in pair["judges"]), *figures(pair)]
            for pair in agreement["pairs"]
        ]
        header = ["judge models", "runs both judged", "same pass/fail (% of runs both judged)"]
        lines += ["", *_table([*header, "Cohen's kappa"], pairs)]
    undefined = [s["kappa"] for s in agreement["judges"].values()]
    undefined += [p["kappa"] for p in agreement["pairs"]]
    if None in undefined:
        lines += ["", KAPPA_UNDEFINED]
    return lines


def _short(summary: Mapping[str, Any]) -> list[str]:
    short, judges = summary["runs_short_of_judges"], len(summary["judge_models"])
    lines = ["## Runs with fewer valid judgments than judge models", ""]
    if not short["count"]:
        return [*lines, f"None: every run whose agent finished has {judges} valid judgment(s)."]
    lines += [
        f"**{short['count']}** run(s) whose agent finished lack a valid judgment from "
        f"some of the {judges} judge model(s):",
        "",
        *_table(
            ["run", "valid judgments (of judge models)"],
            [
                [f"`{r['run']}`", f"{r['valid_judges']} of {r['judges']}"]
                for r in short["runs"][:SHOWN]
            ],
        ),
    ]
    if short["count"] > SHOWN:
        more, listed = short["count"] - SHOWN, len(short["runs"])
        lines += ["", f"... and {more} more (judge_summary.json lists {listed})."]
    return lines


def _failures(summary: Mapping[str, Any]) -> list[str]:
    slots, attempts = summary["failures"]["failed_slots"], summary["failures"]["failed_attempts"]
    lines = ["## Failure reasons", ""]
    if not slots and not attempts:
        return [*lines, "No failed slot, and no failed attempt recorded."]
    rows = [
        [f"{label} (`{kind}`)", slots.get(kind, 0), attempts.get(kind, 0)]
        for kind, label in REASONS.items()
        if kind in slots or kind in attempts
    ]
    header = ["reason", "failed slots (now)", "failed attempts (recorded, attempts/ included)"]
    return lines + _table(header, rows)


def _cost_table(per_model: Mapping[str, Mapping[str, Any]]) -> list[str]:
    def seconds(total: Mapping[str, Any]) -> str:
        # A judge that reported no time (a text judge, a call killed at its timeout) has
        # none to sum: '-', not 0.0 s.
        unreported = total.get("calls_without_duration", 0)
        if unreported >= total["calls"]:
            return "-"
        time = f"{total['duration_ms'] / 1000:,.1f}"
        return time + (f" ({unreported} unreported)" if unreported else "")

    def dollars(total: Mapping[str, Any]) -> str:
        unknown = total["calls_without_cost"]
        return f"{usd(total['total_cost_usd'])}" + (f" ({unknown} unknown)" if unknown else "")

    rows = [
        [
            f"`{model}`",
            t["calls"],
            dollars(t),
            *(f"{t[key]:,}" for key in TOKENS),
            seconds(t),
        ]
        for model, t in per_model.items()
    ]
    header = ["judge model", "calls", "cost (USD)", "input tokens", "output tokens"]
    header += ["cache write tokens", "cache read tokens", "judge time (s, as reported)"]
    return _table(header, rows)


def _cost(summary: Mapping[str, Any]) -> list[str]:
    cost = summary["cost"]
    lines = ["## Judge cost recorded in the experiment", ""]
    if not cost["total"]["calls"]:
        return [*lines, "No judge reported its cost (task=judge_rerun_claude's judge does)."]
    total = cost["total"]
    return [
        *lines,
        f"Every attempt whose timing.json holds the cost its judge reported: "
        f"**{usd(total['total_cost_usd'])}** in {total['calls']} call(s).",
        "",
        *_cost_table(cost["per_model"]),
    ]


def _repair(repair: Mapping[str, Any]) -> list[str]:
    changes, cost = repair["consensus_changes"], repair["cost"]
    provisional = changes.get("provisional", 0)
    lines = [
        "## This repair",
        "",
        f"- run folder: `{repair['run_folder']}`",
        f"- items: {repair['succeeded']} succeeded, {repair['failed']} failed",
        f"- consensus regenerated for {repair['consensus_regenerated']} run(s); "
        f"its pass/fail changed in **{changes['count']}** run(s)"
        + (f", {provisional} of them provisional" if provisional else ""),
    ]
    spent = cost["total"]
    if spent["calls"]:
        lines.append(
            f"- judge cost of this run: **{usd(spent['total_cost_usd'])}** in "
            f"{spent['calls']} call(s)"
        )
    budget = repair["budget_usd"]
    if budget is not None:
        lines.append(
            f"- budget: {usd(budget)}; reached, {repair['budget_stopped']} slot(s) not "
            "started and left as they were (BudgetExhausted)"
            if repair["budget_reached"]
            else f"- budget: {usd(budget)}; not reached"
        )
    if changes["count"]:
        rows = [
            [
                f"`{c['run']}`",
                verdict(c["passed_before"]),
                f"**{verdict(c['passed_after'])}**" + provisional_note(c),
            ]
            for c in changes["runs"][:SHOWN]
        ]
        lines += ["", *_table(["run whose consensus changed", "before", "after"], rows)]
        if changes["count"] > SHOWN:
            lines += ["", f"... and {changes['count'] - SHOWN} more."]
    if spent["calls"]:
        lines += ["", "What this run's judge calls cost, per judge model:", ""]
        lines += _cost_table(cost["per_model"])
    return lines


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: one section per question, each column with its unit."""
    head = [
        f"# Judge summary: {summary['experiment_id']}",
        "",
        f"- experiment: `{summary['experiment']}`",
        f"- generated at: {summary['generated_at']}",
        f"- judge models: {', '.join(summary['judge_models'])}",
        "- **runs** count runs (`<tier>/<subtest>/run_NN`); **slots** count judge slots, "
        "one per run and judge model; scores are 0-1",
        "- **agreement** between judges means the same pass/fail verdict, which is what a "
        "run's consensus decides (a strict majority of its valid judgments)",
    ]
    sections = [_groups, _judges, _agreement, _outliers, _short, _failures, _cost]
    lines = head
    for section in sections:
        lines += ["", *section(summary)]
    if "repair" in summary:
        lines += ["", *_repair(summary["repair"])]
    return "\n".join(lines) + "\n"
