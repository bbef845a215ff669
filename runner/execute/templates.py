"""Argv templates: ``{field}`` placeholders filled from an item, never through a shell."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def fill_template(template: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """Fill ``{field}`` placeholders in each argv element; the result is never a shell line.

    Values are substituted once with ``str.format_map``, so text inside a value (``;``,
    ``$(...)``, ``{other}``) reaches the program literally and is never re-expanded.
    A placeholder with no value raises ``KeyError`` naming it.
    """
    return [str(part).format_map(values) for part in template]


_KINDS = {bool: "a boolean", type(None): "null", int: "a number", float: "a number"}
_CONVERSIONS = (None, "r", "s", "a")


def _placeholders(text: str) -> Iterator[tuple[str, str, str | None]]:
    """``(field, spec, conversion)`` of each placeholder in ``text``, nested ones included."""
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            yield name, spec or "", conversion
            if spec and "{" in spec:
                yield from _placeholders(spec)


def template_fields(command: Sequence[Any]) -> list[str]:
    """The fields an argv template names; ValueError for a template nothing could fill.

    Each element must be text as the user wrote it: Hydra reads unquoted ``true``,
    ``null``, ``1e3`` or ``1_000`` as values, whose text (``True``, ``1000.0``) is not
    what was written, so they are refused rather than converted.
    """
    fields: set[str] = set()
    for n, part in enumerate(command, start=1):
        where = f"command element {n}"
        if not isinstance(part, str):
            kind = _KINDS.get(type(part), f"a {type(part).__name__}")
            raise ValueError(
                f"{where} is {part!r} ({kind}), not text: quote it, e.g. "
                f"'task.command=[{_quoted_example(command)}]' (Hydra reads unquoted "
                "true, null and numbers as values)"
            )
        try:
            found = list(_placeholders(part))
        except ValueError as exc:
            raise ValueError(
                f"{where} {part!r} is not a template: {exc} (write {{{{ or }}}} for a brace)"
            ) from None
        for name, spec, conversion in found:
            field = re.split(r"[.\[]", name, maxsplit=1)[0]
            if not field or field.isdigit():
                raise ValueError(
                    f"{where} {part!r} has the positional placeholder {{{name}}}: "
                    "placeholders name an item field, e.g. {id}"
                )
            if conversion not in _CONVERSIONS:
                raise ValueError(
                    f"{where} {part!r} has the conversion !{conversion}: "
                    "valid conversions are !r, !s and !a"
                )
            if spec and "{" not in spec and not _spec_fits(spec, text_only=field == "id"):
                what = "an id (text)" if field == "id" else "text or a number"
                raise ValueError(
                    f"{where} {part!r} has the format spec {spec!r}, which cannot format {what}"
                )
            fields.add(field)
    return sorted(fields)


def _spec_fits(spec: str, text_only: bool) -> bool:
    """Whether some text (or, unless ``text_only``, some number) can be formatted by ``spec``."""
    for sample in ("",) if text_only else ("", 0, 0.0):
        try:
            format(sample, spec)
        except ValueError:
            continue
        return True
    return False


def _quoted_example(command: Sequence[Any]) -> str:
    """``command`` as a Hydra list override with its values quoted as text."""
    shown = []
    for part in command:
        if isinstance(part, str) and re.fullmatch(r"[\w./:=+@%-]+", part):
            shown.append(part)
            continue
        if isinstance(part, bool) or part is None:
            part = "null" if part is None else str(part).lower()
        text = str(part)
        shown.append("..." if '"' in text or "\\" in text else f'"{text}"')
    return ",".join(shown)


def fill_for_item(
    template: Sequence[str], fields: Sequence[str], item: Any, what: str = "placeholder"
) -> list[str]:
    """``template`` filled from ``item``'s data and its ``{id}``; a placeholder the item
    lacks, or a value of another type than the template expects (``{n:d}`` and a text
    ``n``), fails the item (``TaskFailure``) naming it. ``fields``: ``template_fields``'s.
    """
    from runner.api import TaskFailure

    values = {"id": item.id, **item.data}
    missing = [name for name in fields if name not in values]
    if missing:
        raise TaskFailure(
            f"{what} {{{missing[0]}}} has no value in item {item.id!r}; "
            f"its fields: {', '.join(values)}"
        )
    try:
        return fill_template(template, values)
    except (LookupError, AttributeError, ValueError, TypeError) as exc:
        raise TaskFailure(
            f"cannot fill the {what}s for item {item.id!r}: {type(exc).__name__}: {exc}"
        ) from None
