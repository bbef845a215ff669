"""runner/show/run_page.py: every run folder's report.html, checked in a real headless Chromium."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import time
from pathlib import Path

from runner.show.figures import render_svg
from runner.show.run_page import durations, histogram, run_page
from tests.browser import rendered_dom, screenshot
from tests.conftest import RunCli, start_runner


def test_a_runs_page_shows_its_figures_durations_and_failures(
    run_app: RunCli, tmp_path: Path
) -> None:
    """report.html, opened from disk, shows the counts, a histogram, the slowest items and
    the failures by type, and fetches nothing."""
    result = run_app("source.count=120", "task.seconds=0.003", "task.fail_rate=0.2", "parallel=4")
    assert result.returncode == 1, result.output
    page = result.run_dir / "report.html"
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "<script" not in text
    dom = rendered_dom(page, tmp_path)
    summary = result.summary()
    assert "runner: sleep on range" in dom and "some items failed" in dom
    assert f'<td class="n">{summary["succeeded"]}</td>' in dom
    assert f'<td class="n">{summary["failed"]}</td>' in dom
    bins = re.findall(r"<rect class=\"bin\"[^>]*><title>(\d+) item\(s\)", dom)
    assert sum(int(n) for n in bins) == 120
    assert "Failures by error type" in dom and "TaskFailure" in dom
    slowest = summary["slowest"][0]
    assert f"<td>{slowest['id']}</td>" in dom
    png = screenshot(page, tmp_path / "report.png")
    assert png.stat().st_size > 10_000


def test_a_judge_runs_page_carries_the_judge_summary(run_app: RunCli, tmp_path: Path) -> None:
    """The judge post-processor's summary appears below the run's own figures."""
    result = run_app("task=judge_rerun", "parallel=6", "task.latency=0")
    assert result.returncode == 0, result.output
    dom = rendered_dom(result.run_dir / "report.html", tmp_path)
    assert dom.index("Figures") < dom.index("Judge summary")
    assert "<strong>all</strong>" in dom or "<strong>T0</strong>" in dom
    assert "judge models:" in dom


def test_an_interrupted_run_still_gets_its_page(tmp_path: Path) -> None:
    """Ctrl-C ends the run with 130; its page says it was interrupted and what ran."""
    run_dir = tmp_path / "run"
    proc = start_runner(
        "source.count=200", "task.seconds=0.2", "parallel=2", "progress=lines",
        cwd=tmp_path, run_dir=run_dir, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    journal = run_dir / "results.jsonl"
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_text().count("\n") >= 4):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    dom = rendered_dom(run_dir / "report.html", tmp_path)
    assert "interrupted" in dom
    finished = journal.read_text().count("\n")
    assert f'<td class="n">{finished}</td>' in dom


def test_durations_sample_a_long_journal_evenly(tmp_path: Path) -> None:
    """The histogram reads every line of a short journal and an even sample of a long one."""
    journal = tmp_path / "results.jsonl"
    journal.write_text(
        "".join(
            f'{{"id": "{i}", "status": "ok", "seconds": {i}, "result": null}}\n' for i in range(10)
        )
    )
    assert durations(journal) == [float(i) for i in range(10)]
    assert durations(journal, sample=5) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert durations(tmp_path / "missing.jsonl") == []


def test_a_duration_that_is_no_number_is_left_out_and_the_others_read_once(
    tmp_path: Path,
) -> None:
    """A line whose seconds is no number (not runner's) costs the histogram that line
    only: the block's other durations are counted once each, in order."""
    journal = tmp_path / "results.jsonl"
    values = ["0.5", "0.25", "null", "0.125", '"x"', "2"]
    journal.write_text(
        "".join(
            f'{{"id": "{i}", "status": "ok", "seconds": {v}, "result": null}}\n'
            for i, v in enumerate(values)
        )
    )
    assert durations(journal) == [0.5, 0.25, 0.125, 2.0]


def test_durations_read_lines_across_blocks_and_stop_at_a_torn_last_line(tmp_path: Path) -> None:
    """A journal of several megabytes (read a block at a time) with a line longer than a
    block: every sampled line's duration, in order, and nothing of a torn last line."""
    journal = tmp_path / "results.jsonl"
    lines = [
        f'{{"id": "{i}", "status": "ok", "seconds": {i / 1000}, "result": '
        + ('"' + "x" * 3_000_000 + '"' if i == 20_000 else "null")
        + "}\n"
        for i in range(40_001)
    ]
    journal.write_text("".join(lines) + '{"id": "torn", "status": "ok", "seconds": 9')
    step = math.ceil(len(lines) / 7_000)
    assert durations(journal, sample=7_000) == [i / 1000 for i in range(0, len(lines), step)]


def test_the_histogram_counts_each_item_once_in_its_bin() -> None:
    """Repeated durations (fast items share a few microsecond values), zero, negative
    and NaN ones: each item in one bin (the first holds those of no length)."""
    values = [1e-5] * 1000 + [2e-5] * 10 + [0.0, -1.0, float("nan")] + [1.0]
    figure = histogram(values)
    assert figure is not None
    [mark] = figure.panels[0].marks
    assert sum(mark.ys) == len(values)
    ones = 4 * 0  # log2(1.0) * 4
    first = -30 * 4
    assert mark.ys[0] == 3  # 0, -1 and NaN, in the first bin
    assert mark.ys[math.floor(math.log2(1e-5) * 4) - first] == 1000
    assert mark.ys[math.floor(math.log2(2e-5) * 4) - first] == 10
    assert mark.ys[ones - first] == 1 and mark.ys[-1] == 1


def _page(summary: dict[str, object], sections: list[tuple[str, str]] = ()) -> str:  # type: ignore[assignment]
    return run_page({"task": "sleep", "source": "range", **summary}, [0.01], sections)


def test_histogram_and_markdown_escape_what_they_show() -> None:
    """Ids and messages are text on the page, never markup; the histogram has a bar per
    bin that holds items, and a run with none says so."""
    text = _page({}, [("Judge", "| a | <script>x</script> |\n|---|---|\n| 1 | 2 |\n- <script>")])
    assert "<script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "<li>&lt;script&gt;</li>" in text
    figure = histogram([0.001, 0.002, 0.0021, 1.0])
    assert figure is not None
    svg = render_svg(figure)
    assert svg.count('class="bin"') >= 4 and "item(s) up to" in svg
    assert histogram([]) is None
    assert "No item finished" in run_page({"task": "t", "source": "s"}, [], [])


def test_every_value_the_run_page_shows_is_escaped_by_its_template() -> None:
    """Whatever an item id, an error, a halt or a post-processor's section holds (HTML
    markup, quotes, ampersands), the page shows it as text."""
    evil, odd = "<script>alert(1)</script>", 'a&b"c'
    text = _page(
        {
            "task": evil,
            "halted": evil,
            "failed": 1,
            "slowest": [{"id": evil, "seconds": 1.0}, {"id": odd, "seconds": 0.5}],
            "failures_by_type": {odd: {"count": 1, "example": evil}},
        },
        [(evil, f"# {evil}\n\n**{odd}** `{evil}`")],
    )
    assert "<script" not in text and "alert(1)</" not in text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert "a&amp;b&#34;c" in text and odd not in text
    assert "<strong>a&amp;b&#34;c</strong>" in text  # Markdown's own spans still apply


def test_a_name_that_is_not_utf8_is_shown_escaped() -> None:
    """A lone surrogate is shown as its backslash escape, so the page can be UTF-8."""
    text = _page({"slowest": [{"id": "bad\udcffname <é>", "seconds": 1.0}]},
                 [("t", "- bad\udcffname")])  # fmt: skip
    assert "bad\\udcffname &lt;é&gt;" in text
    text.encode("utf-8")


def test_a_journal_that_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    """A journal linked to a device (/dev/full, /dev/zero: endless bytes, no newline) is
    not read, so the page costs no memory however the journal ended."""
    for device in ("/dev/full", "/dev/zero"):
        link = tmp_path / f"{Path(device).name}.jsonl"
        link.symlink_to(device)
        assert durations(link) == []
