"""A repository's objects read with a bound on what is inflated.

dulwich's object store stops inflating a loose object at ``loose_object_size_limit``,
but a packed one is inflated whole (up to the size its pack entry declares): a 400 MB
blob of zeros packs into a few hundred KB. So before asking dulwich for a packed object,
runner reads the sizes the pack itself declares, without inflating anything but the
first bytes of a delta (git's pack format, ``gitformat-pack``): each entry's header
gives its type and inflated size; a delta's first bytes give the size of its base and
of the object it makes. An object is read only when every entry of its delta chain, and
every base and result along it, is at most ``limit`` bytes, and the chain is at most
MAX_DELTA_CHAIN long; dulwich then inflates no more than the sizes checked (it stops at
each entry's declared size, and a delta at the result size its header declares).

Pack and index files are opened as gitrepo reads every file: never through a symlink,
never blocking, only when regular.
"""

from __future__ import annotations

import mmap
import os
import stat
import zlib
from pathlib import Path

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID, ShaFile, hex_to_sha
from dulwich.pack import PackIndex, load_pack_index_file

#: Deltas resolved to make one object (git's pack.depth defaults to 50).
MAX_DELTA_CHAIN = 100

_OFS_DELTA, _REF_DELTA = 6, 7
# A size or offset in a pack is a base-128 number of at most this many bytes (64 bits).
_MAX_VARINT = 10


def _open_regular(path: Path) -> int:
    """A read-only descriptor of the regular file ``path`` (OSError for anything else)."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise OSError(f"{path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


def _varint(data: bytes | mmap.mmap, pos: int) -> tuple[list[int], int]:
    """The bytes of one number whose bytes carry a continuation bit, and the position
    past it."""
    out: list[int] = []
    while not out or out[-1] & 0x80:
        if len(out) == _MAX_VARINT or pos >= len(data):
            raise ValueError("malformed pack entry")
        out.append(data[pos])
        pos += 1
    return out, pos


def _entry(data: bytes | mmap.mmap, offset: int) -> tuple[int, int, int | bytes | None, int]:
    """A pack entry's type, inflated size, delta base (an offset in this pack, an object
    id, or None) and the position of its compressed data."""
    raw, pos = _varint(data, offset)
    kind, size = (raw[0] >> 4) & 0x07, raw[0] & 0x0F
    for i, byte in enumerate(raw[1:]):
        size |= (byte & 0x7F) << (4 + 7 * i)
    base: int | bytes | None = None
    if kind == _OFS_DELTA:
        raw, pos = _varint(data, pos)
        back = raw[0] & 0x7F
        for byte in raw[1:]:
            back = ((back + 1) << 7) | (byte & 0x7F)
        if not 0 < back < offset:
            raise ValueError("malformed delta base offset")
        base = offset - back
    elif kind == _REF_DELTA:
        base = bytes(data[pos : pos + 20])
        pos += 20
    return kind, size, base, pos


def _delta_sizes(data: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    """The base and result sizes a delta's first (compressed) bytes declare."""
    head = zlib.decompressobj().decompress(bytes(data[pos : pos + 256]), 2 * _MAX_VARINT)
    sizes, at = [], 0
    for _ in range(2):
        raw, at = _varint(head, at)
        sizes.append(sum((byte & 0x7F) << (7 * i) for i, byte in enumerate(raw)))
    return sizes[0], sizes[1]


class BoundedStore:
    """The objects of ``objects_dir``; :meth:`get` returns None for one that is larger
    than ``limit`` bytes (or needs larger objects, or a longer delta chain, to make)."""

    def __init__(self, objects_dir: Path, limit: int) -> None:
        self._dir = objects_dir
        self.limit = limit
        self._store = DiskObjectStore(str(objects_dir), loose_object_size_limit=limit)
        self._packs: list[tuple[PackIndex, mmap.mmap]] | None = None

    def _pack_list(self) -> list[tuple[PackIndex, mmap.mmap]]:
        """Each pack with an index, as dulwich finds them (any ``X.pack`` with ``X.idx``)."""
        if self._packs is None:
            self._packs = []
            folder = self._dir / "pack"
            names = set(os.listdir(folder)) if folder.is_dir() else set()
            for name in sorted(names):
                base = name.removesuffix(".pack")
                if base == name or base + ".idx" not in names:
                    continue
                idx = folder / (base + ".idx")
                index = load_pack_index_file(
                    str(idx), os.fdopen(_open_regular(idx), "rb"), DEFAULT_OBJECT_FORMAT
                )
                fd = _open_regular(folder / name)
                try:
                    data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                finally:
                    os.close(fd)
                self._packs.append((index, data))
        return self._packs

    def _find(self, raw: bytes) -> tuple[bytes | mmap.mmap, int] | None:
        for index, data in self._pack_list():
            try:
                return data, index.object_offset(raw)
            except KeyError:
                continue
        return None

    def fits(self, sha: ObjectID) -> bool:
        """Whether reading ``sha`` inflates no object larger than the limit (a loose
        object always fits: dulwich stops inflating it at the limit)."""
        where = self._find(hex_to_sha(sha))
        for _ in range(MAX_DELTA_CHAIN + 1):
            if where is None:
                return True  # loose, or missing: the store says which
            data, offset = where
            kind, size, base, pos = _entry(data, offset)
            if size > self.limit:
                return False
            if kind not in (_OFS_DELTA, _REF_DELTA):
                return True
            if max(_delta_sizes(data, pos)) > self.limit:
                return False
            if isinstance(base, int):
                where = (data, base)
            else:
                assert isinstance(base, bytes)
                where = self._find(base)
        return False  # a longer chain than MAX_DELTA_CHAIN

    def get(self, sha: ObjectID) -> ShaFile | None:
        """The object ``sha`` (KeyError if missing), or None when it does not fit."""
        if not self.fits(sha):
            return None
        try:
            return self._store[sha]
        except zlib.error:
            return None  # a loose object over the limit: dulwich stops inflating it

    def close(self) -> None:
        """Unmap the packs and close the store."""
        for index, data in self._packs or []:
            index.close()
            data.close()
        self._packs = None
        self._store.close()
