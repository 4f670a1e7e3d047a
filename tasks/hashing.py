"""Content hashes (sha256) of files, texts and folders: the cache keys are built from these.
Standard library only, so light modules (the encoder) can use them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def dir_digest(path: str | os.PathLike) -> str:
    """sha256 over the names and contents of the files directly in a folder."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file()):
        digest.update(f"{file.name}\x00{sha256_file(file)}\x00".encode())
    return digest.hexdigest()
