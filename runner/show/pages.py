"""HTML pages from the Jinja2 templates shipped in ``runner/show/templates``, autoescaped:
every value a page shows (an item id, an error message, a folder name) is text, never
markup, without any escaping by hand.

A lone surrogate (a file name that is not UTF-8) is shown as its backslash escape
(``\\udcff``), as the console and ``runner.log`` show it, so every page is valid UTF-8.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:
    import jinja2

#: The templates' folder in this package (package data: see pyproject.toml).
TEMPLATES = "templates"


def printable(value: Any) -> Any:
    """A string with its lone surrogates backslash-escaped; any other value as it is."""
    if isinstance(value, str) and not value.isascii():
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        # A macro's output is markup already: still markup, with only its surrogates shown.
        return Markup(text) if isinstance(value, Markup) else text
    return value


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: the package's templates, autoescaped, strict."""
    import jinja2  # here, not at the top: a run pays for it when it writes its page only

    return jinja2.Environment(
        loader=jinja2.PackageLoader("runner.show", TEMPLATES),
        bytecode_cache=_bytecode_cache(jinja2),
        autoescape=True,  # every template, figure.svg too (select_autoescape would skip .svg)
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the page, not blanks it
        finalize=printable,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _bytecode_cache(jinja2: Any) -> Any:
    """Jinja's per-user cache of compiled templates, or None where it cannot be made.

    Compiling the pages' templates takes about 40 ms, paid at the end of every run (whose
    whole start-up is about 0.4 s); loading them compiled takes under 1 ms. The cache holds
    only the compiled templates, keyed by their source's checksum, in a folder of the
    user's own that Jinja checks (``_jinja2-cache-<uid>`` in the temporary folder).
    """
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no usable temporary folder: compile each time
        return None


def render(template: str, **values: Any) -> str:
    """A template of the package, filled with ``values``."""
    return environment().get_template(template).render(**values)


_SPANS = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")


def spans(text: str) -> list[tuple[str, str]]:
    """Markdown's **strong** and `code` in a line, as ``(kind, text)`` pieces the
    template tags (kind ``""`` is plain text)."""
    pieces: list[tuple[str, str]] = []
    at = 0
    for match in _SPANS.finditer(text):
        if match.start() > at:
            pieces.append(("", text[at : match.start()]))
        strong, code = match.groups()
        pieces.append(("strong", strong) if strong is not None else ("code", code))
        at = match.end()
    if at < len(text):
        pieces.append(("", text[at:]))
    return pieces


def markdown_blocks(text: str) -> list[dict[str, Any]]:
    """The Markdown the summaries write (headings, tables, lists, paragraphs) as blocks
    for the ``markdown`` macro: ``{"kind": "h3" | "table" | "li" | "p", ...}``."""
    blocks: list[dict[str, Any]] = []
    rows: list[list[str]] = []

    def flush_table() -> None:
        if rows:
            header, *body = rows
            rest = [r for r in body if not set("".join(r)) <= set("-: ")]  # not the |---|
            blocks.append(
                {
                    "kind": "table",
                    "header": [{"spans": spans(c)} for c in header],
                    "rows": [[{"spans": spans(c)} for c in row] for row in rest],
                }
            )
            rows.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([cell.strip().replace("\\|", "|") for cell in cells])
            continue
        flush_table()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            blocks.append({"kind": f"h{level}", "spans": spans(line.lstrip("#").strip())})
        elif line.startswith(("- ", "* ")):
            blocks.append({"kind": "li", "spans": spans(line[2:])})
        elif line:
            blocks.append({"kind": "p", "spans": spans(line)})
    flush_table()
    return blocks
