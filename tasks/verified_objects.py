"""Decoded store objects already verified in this process, reused while their file is unchanged.

Several stages read the same objects (the 25M rows table, ~300 MB, by split, train and plots; the
~390 MB movie block by train and plots), and each read used to hash the whole file again. Once a
file's bytes matched their sha256 (read, or just written by this process), its decoded value is kept
here under (path, sha256, form) with the file's stamp: inode, size, mtime and ctime in ns. A later
read reuses the value only if the file still has that stamp, so a file rewritten or edited since is
read and verified again; a new process starts empty, so the next run verifies everything. (A write
of the same size in the same clock tick as the verification would keep the stamp on a file system
with coarse timestamps; Linux 6.13+ gives a file whose times were just read fine-grained ones on its
next change, as on this machine's ext4.)

Values are shared, so they must not be writable: arrays are kept read-only, tables as pandas frames
handed out as (copy-on-write) shallow copies. Memory is bounded: the least recently used values go
first once ``max_bytes`` is exceeded, and a value larger than that is never kept.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tasks import locations


@dataclass(frozen=True)
class FileStamp:
    """What changes when a file is replaced or written to: inode, size, mtime and ctime (ns)."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str) -> FileStamp | None:
        """The stamp of a local file; None for a missing file or an object-store URL (never kept)."""
        if locations.is_remote(path):
            return None
        try:
            info = os.stat(locations.local_path(path))
        except OSError:
            return None
        return cls(info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class _Entry:
    value: Any
    nbytes: int
    stamp: FileStamp


class VerifiedObjects:
    """A size-bounded, least-recently-used map (path, sha256, form) → decoded value, each valid only
    while its file keeps the stamp it had when it was verified. Thread-safe (stages may run in threads)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0

    def get(self, path: str, sha256: str, form: str) -> Any | None:
        """The value kept for this file and form if the file is unchanged since; else None (and dropped)."""
        key = (path, sha256, form)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        if FileStamp.of(path) != entry.stamp:
            self._drop(key)
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        return entry.value

    def verified(self, path: str, sha256: str) -> bool:
        """Some form of this file is kept and the file is unchanged since it was verified."""
        with self._lock:
            stamps = [e.stamp for (p, s, _), e in self._entries.items() if p == path and s == sha256]
        return bool(stamps) and FileStamp.of(path) in stamps

    def put(self, path: str, sha256: str, form: str, value: Any, nbytes: int, stamp: FileStamp | None) -> None:
        """Keep ``value``, decoded from the file at ``path`` whose bytes matched ``sha256`` when it had
        ``stamp`` (taken before reading, and equal after; None: not kept)."""
        if stamp is None or nbytes > self.max_bytes:
            return
        key = (path, sha256, form)
        with self._lock:
            old = self._entries.pop(key, None)
            self.nbytes -= old.nbytes if old else 0
            self._entries[key] = _Entry(value, nbytes, stamp)
            self.nbytes += nbytes
            while self.nbytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.nbytes -= evicted.nbytes

    def _drop(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            self.nbytes -= entry.nbytes if entry else 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)


# The process's memory of verified objects (store objects and per-text vector chunks): enough for the
# 25M run's rows table (~300 MB) and movie block (~390 MB) with the split's positions, the stages'
# working memory on top within the 4 GB that run aims at.
VERIFIED = VerifiedObjects(max_bytes=1_200_000_000)
