"""Atomic writes: readers see all of a file (or folder) or nothing, never a half-written one.

A file is written to a temporary name in its folder, fsynced and renamed over its real name; a folder
is filled under a hidden staging name and renamed into place. Written files get the permissions a
plain ``open()`` would give them (``mkstemp`` makes them private).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import InputError


def process_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting it,
    which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


# Write failures a user fixes (free space, permissions), reported as one line naming the file.
USER_FIXABLE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` (its folder is created) so that readers see nothing or all of it.
    A full disk or a read-only folder is an InputError naming the file (nothing is left behind).
    ``durable``: on disk before the call returns (fsync); without it the bytes may still be lost in a
    crash of the machine (what the object store accepts: it checks every object's sha256 when
    reading it and recomputes a lost one)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~process_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in USER_FIXABLE:
            raise InputError(f"cannot write {path} ({exc.strerror}): free space there or choose another folder") from None
        raise


def probe_write(folder: str | os.PathLike) -> None:
    """Create and remove a temporary file in ``folder``: raises OSError where files cannot be written."""
    fd, probe = tempfile.mkstemp(prefix=".movie-ratings-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


@contextmanager
def staged_folder(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A hidden, empty folder in ``parent`` to fill; removed if the block fails. The caller renames it
    into place (``os.rename``), so the folder appears complete or not at all."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent))
    os.chmod(staging, 0o777 & ~process_umask())  # mkdtemp makes it private; outputs are meant to be shared
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
