"""Atomic file writes: a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

#: What :func:`atomic_write_text` names its temporary files: ``.<name>.<random>.tmp``.
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any worker
    # thread could create a file under the momentary zero mask.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers see either the old file or the whole new one. A file that is replaced keeps
    its permission bits; a new one gets ``0666`` less the umask, as ``open`` would give it
    (``mkstemp`` alone would make every file private to its owner). The temporary file,
    named ``.<name>.<random>.tmp`` (see :data:`TEMP_NAME`), is removed if writing fails.
    An OSError raised names ``path`` as its ``filename``: a full disk's ``write`` names no
    file, and the temporary file's name would mean nothing to the user.
    """
    target = Path(path)
    try:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        exc.filename = str(target)
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            exc.filename = str(target)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically.

    Text UTF-8 cannot hold (a lone surrogate: a file name that is not UTF-8, as
    ``os.fsdecode`` gives it) is written as JSON's ``\\u`` escape, which reads back as the
    same string.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if not text.isascii() and not utf8_encodable(text):
        text = json.dumps(data, indent=2, ensure_ascii=True)
    atomic_write_text(path, text + "\n")


def utf8_encodable(text: str) -> bool:
    """Whether UTF-8 can hold ``text`` (not when it has a lone surrogate, as a file name
    that is not UTF-8 gives)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def leftover_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The temporary files a killed :func:`atomic_write_text` left directly in ``folder``.

    A process killed with SIGKILL between creating its temporary file and renaming it
    cannot remove it; whoever next owns the folder can, with this list.
    """
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(folder, name) for name in sorted(names) if TEMP_NAME.match(name)]
