"""README.md and docs/*.md hold together: every relative link and anchor leads to a file
and a heading that exist, and every page of docs/ can be reached from README."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import REPO

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target), an optional "title" after the target
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+).+?\1")


def pages(repo: Path = REPO) -> list[Path]:
    """The pages checked: README.md and every Markdown page in docs/."""
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def _prose(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks: a heading or link shown as code is an
    example, not part of the page."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped (a
    link's target and inline code's backticks too), each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    kept = (
        ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LNM" or unicodedata.category(ch) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of the page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The page's link and image targets that are relative (no scheme, no ``//``)."""
    # inline code is blanked first: a link shown as code is an example too
    text = [CODE_SPAN.sub("``", line) for line in _prose(path)]
    targets = [m.group(1) for line in text for m in LINK.finditer(line)]
    return [t for t in targets if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", t)]


def broken(path: Path, repo: Path = REPO) -> list[str]:
    """The page's relative links whose file or heading does not exist, each with why."""
    problems = []
    for target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.is_relative_to(repo.resolve()):
            problems.append(f"{target}: leads outside the repository")
        elif not dest.exists():
            problems.append(f"{target}: no file {dest.relative_to(repo.resolve())}")
        elif anchor and (dest.suffix != ".md" or unquote(anchor) not in anchors(dest)):
            problems.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    """Each relative link of the page names a file that exists and, after ``#``, one of
    that page's headings."""
    assert broken(page) == []


def test_every_docs_page_is_reached_from_readme() -> None:
    """Following links from README.md reaches every page in docs/: none is orphaned."""
    reached, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in links(page):
            dest = (page.parent / unquote(target.partition("#")[0])).resolve()
            if dest.suffix == ".md" and dest.is_file() and dest.is_relative_to(REPO):
                todo.append(dest)
    assert sorted(p.name for p in set(pages()) - reached) == []


def test_readme_has_a_table_of_contents_of_its_own_sections() -> None:
    """README's contents list links every ``##`` section of README, in order."""
    lines = _prose(REPO / "README.md")
    sections = [
        slug(m.group(2)) for line in lines if (m := HEADING.match(line)) and m.group(1) == "##"
    ]
    start = lines.index("## Contents")
    listed = [
        m.group(1)[1:]
        for line in lines[start + 1 :]
        if line.startswith(("- ", "  - ", "1. "))
        for m in LINK.finditer(line)
        if m.group(1).startswith("#")
    ]
    assert [s for s in sections if s != "contents"] == listed


def test_a_moved_heading_or_page_is_reported(tmp_path: Path) -> None:
    """The check fails when a heading is renamed or a page moves, and accepts GitHub's
    anchors for punctuation, code and repeated headings."""
    (tmp_path / "docs").mkdir()
    guide = tmp_path / "docs" / "guide.md"
    guide.write_text(
        "# Guide\n\n## `parallel=auto`\n\n## Retries, rate limits\n\n## Notes\n\n## Notes\n\n"
        "```\n## not a heading\n```\n",
        encoding="utf-8",
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "[a](docs/guide.md#parallelauto) [b](docs/guide.md#retries-rate-limits) "
        "[c](docs/guide.md#notes-1) `[code](nowhere.md)` [web](https://example.com/x)\n",
        encoding="utf-8",
    )
    assert broken(readme, tmp_path) == []
    guide.write_text("# Guide\n\n## Auto\n\n## Notes\n", encoding="utf-8")
    assert broken(readme, tmp_path) == [
        "docs/guide.md#parallelauto: no heading with anchor #parallelauto in guide.md",
        "docs/guide.md#retries-rate-limits: no heading with anchor #retries-rate-limits"
        " in guide.md",
        "docs/guide.md#notes-1: no heading with anchor #notes-1 in guide.md",
    ]
    guide.rename(tmp_path / "docs" / "moved.md")
    assert broken(readme, tmp_path)[0] == "docs/guide.md#parallelauto: no file docs/guide.md"
    readme.write_text("[up](../../etc/passwd) [#](#nowhere)\n", encoding="utf-8")
    assert broken(readme, tmp_path) == [
        "../../etc/passwd: leads outside the repository",
        "#nowhere: no heading with anchor #nowhere in README.md",
    ]
