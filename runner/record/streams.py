"""Items' output streams: one append-only file per run, a JSON line per attempt that printed.

``python -m runner.streams RUN_DIR [ID]`` prints an item's streams back (stdout to
stdout, stderr to stderr, every attempt in order), or without an id lists the ids that
have any.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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
        """Keep one attempt's streams (nothing when both are empty)."""
        if not stdout and not stderr:
            return
        record = {"id": item_id, "stdout": stdout, "stderr": stderr}
        try:
            data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            # An id UTF-8 cannot hold (a file name that is not UTF-8): JSON's escapes keep
            # the file UTF-8 and read back as the same id, so the id finds its streams.
            data = (json.dumps(record) + "\n").encode("ascii")
        fd = self._open()  # under the lock: a writer after close() opens the file again
        view = memoryview(data)
        while view:  # a regular file takes it in one write; a short one is finished off
            view = view[os.write(fd, view) :]

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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or args[0] in ("-h", "--help"):
        sys.stderr.write("usage: python -m runner.streams RUN_DIR [ITEM_ID]\n")
        return 2
    run_dir = Path(args[0])
    if not (run_dir / STREAMS_FILE).is_file():
        sys.stderr.write(f"runner.streams: no {STREAMS_FILE} in {str(run_dir)!r}\n")
        return 2
    if len(args) == 1:
        seen = dict.fromkeys(record["id"] for record in read_streams(run_dir))
        sys.stdout.write("".join(f"{printable(item_id, 1000)}\n" for item_id in seen))
        return 0
    found = False
    for record in read_streams(run_dir, args[1]):
        found = True
        sys.stdout.write(record["stdout"])
        sys.stderr.write(record["stderr"])
    if not found:
        name = printable(args[1])
        sys.stderr.write(f"runner.streams: item {name!r} printed nothing or is not in this run\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
