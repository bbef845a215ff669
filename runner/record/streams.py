"""Items' output streams: one append-only file per run, a JSON line per attempt that printed.

``python -m runner.streams RUN_DIR [ID]`` prints an item's streams back (stdout to
stdout, stderr to stderr, every attempt in order), or without an id lists the ids that
have any.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from runner.api import StopRun
from runner.errors import REFUSED_WRITES, os_error_text
from runner.show.labels import printable

#: The streams file of a run, in its folder.
STREAMS_FILE = "streams.jsonl"


class StreamLog:
    """Appends ``{"id", "stdout", "stderr"}`` lines to a run's ``streams.jsonl``.

    Only attempts that printed something cost a write. Each line is one ``write`` on an
    ``O_APPEND`` descriptor, so lines of concurrent threads and processes never mix (on
    a local filesystem). Picklable: each process opens the file for itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = -1
        self._pid = -1
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[StreamLog], tuple[Path]]:
        # Built anew from its path: a descriptor and a lock are this process's.
        return type(self), (self.path,)

    def _open(self) -> int:
        with self._lock:
            if self._pid != os.getpid():
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                self._fd, self._pid = os.open(self.path, flags, 0o666), os.getpid()
            return self._fd

    def add(self, item_id: str, stdout: str, stderr: str) -> None:
        """Keep one attempt's streams (nothing when both are empty).

        A write the disk refuses (full, over quota, read-only) raises StopRun (exit 74):
        no later item could keep its streams either, so the run stops there, as it does
        when its journal is refused, rather than run every item left and fail each.
        """
        if not stdout and not stderr:
            return
        record = {"id": item_id, "stdout": stdout, "stderr": stderr}
        try:
            data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            # An id UTF-8 cannot hold (a file name that is not UTF-8): JSON's escapes keep
            # the file UTF-8 and read back as the same id, so the id finds its streams.
            data = (json.dumps(record) + "\n").encode("ascii")
        try:
            fd = self._open()  # under the lock: a writer after close() opens the file again
            view = memoryview(data)
            while view:  # a regular file takes it in one write; a short one is finished off
                view = view[os.write(fd, view) :]
        except OSError as exc:
            if exc.errno not in REFUSED_WRITES:
                raise
            raise StopRun(
                f"cannot write {str(self.path)!r}: {os_error_text(exc)}; item "
                f"{printable(item_id)!r} ran but its output is not kept, and no item starts "
                "after it: make room, then resume=RUN_DIR runs the rest"
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0 and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = self._pid = -1


def read_streams(run_dir: Path, item_id: str | None = None) -> Iterator[dict[str, str]]:
    """The streams kept in ``run_dir`` (of one item, if given), in the order written.

    A line cut short (a full disk, a killed run) is skipped.
    """
    path = Path(run_dir) / STREAMS_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                # A line cut short (a full disk) that the next write carried on: the
                # record after the cut is whole.
                at = line.rfind('{"id": ', 1)
                try:
                    record = json.loads(line[at:]) if at > 0 else None
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    continue
            if item_id is None or record.get("id") == item_id:
                yield record


class _Arguments(argparse.ArgumentParser):
    """argparse's parser, whose usage error is one line (argparse's own is two)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (usage: {USAGE})\n")


USAGE = "python -m runner.streams RUN_DIR [ITEM_ID], or RUN_DIR -- ITEM_ID for an id like -x"


def main(argv: list[str] | None = None) -> int:
    """``python -m runner.streams RUN_DIR [ITEM_ID]``; its exit code (2: a usage error).

    ``--`` ends the options, as for any command: ``RUN_DIR -- --version`` reads the
    item whose id is ``--version``.
    """
    parser = _Arguments(
        prog="python -m runner.streams",
        description="Print an item's stdout and stderr kept in a run folder (every attempt, "
        "in order), or without ITEM_ID the ids that printed anything.",
        epilog="Give -- before an id that starts with '-': RUN_DIR -- -x.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder")
    parser.add_argument("item_id", metavar="ITEM_ID", nargs="?", help="an item's id")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run_dir, item_id = Path(options.run_dir), options.item_id
    if not (run_dir / STREAMS_FILE).is_file():
        sys.stderr.write(f"runner.streams: no {STREAMS_FILE} in {str(run_dir)!r}\n")
        return 2
    if item_id is None:
        seen = dict.fromkeys(record["id"] for record in read_streams(run_dir))
        sys.stdout.write("".join(f"{printable(item_id, 1000)}\n" for item_id in seen))
        return 0
    found = False
    for record in read_streams(run_dir, item_id):
        found = True
        sys.stdout.write(record["stdout"])
        sys.stderr.write(record["stderr"])
    if not found:
        name = printable(item_id)
        sys.stderr.write(f"runner.streams: item {name!r} printed nothing or is not in this run\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
