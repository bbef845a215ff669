"""The ``wordcount`` task: counts the words of one field of each item."""

from __future__ import annotations

from typing import Any

from runner.api import Item, Task, TaskFailure


class WordCount(Task):
    """Counts the words in ``item[field]``, ignoring words shorter than ``min_length``."""

    def __init__(self, field: str, min_length: int = 1) -> None:
        self.field = field
        self.min_length = min_length

    def run(self, item: Item) -> Any:
        if self.field not in item.data:
            raise TaskFailure(f"item {item.id!r} has no field {self.field!r}")
        words = [w for w in str(item[self.field]).split() if len(w) >= self.min_length]
        return {"words": len(words)}
