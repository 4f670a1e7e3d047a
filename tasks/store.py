"""A content-addressed store for intermediate results: Parquet tables, .npy arrays, JSON.

Tasks pass small references (``StoredRef``: path + sha256) instead of big frames, so Prefect only
persists small JSON and a task's cache key is a hash of the references it receives. Files are named
by the sha256 of their bytes and published atomically (``tasks/locations.py``: temp file + rename on a
disk, verified temporary key + copy on an object store), so a crash never leaves a half-written file
under a real name. The root is a local folder or an fsspec URL (``s3://bucket/prefix``): a ref's
``path`` is then a URL. Nothing here unpickles: arrays are decoded from the .npy header and their bytes
(object arrays refused, as ``np.load(allow_pickle=False)`` does).

Decoded objects are kept in memory once verified (``tasks/verified_objects.py``: reused while their
file is unchanged, bounded in size), so the stages that read the same rows and blocks one after the
other hash and decode them once per process. Arrays from the store are read-only; tables come as
copy-on-write frames.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from tasks import locations
from tasks.hashing import dir_digest, sha256_file
from tasks.verified_objects import VERIFIED, FileStamp

class StoredRef(BaseModel):
    """A file in the store: where it is and the sha256 of its bytes."""

    path: str
    sha256: str
    kind: str  # "table" | "array" | "json" | "bytes" | "dir" (a folder: sha256 = dir_digest)
    rows: int | None = None
    columns: list[str] | None = None


class Store:
    """Content-addressed files under ``<root>/objects/<aa>/<sha256>.<ext>``."""

    def __init__(self, root: str | os.PathLike):
        self.root = locations.normalized(root)

    def object_path(self, sha: str, ext: str) -> str:
        return locations.join(self.root, "objects", sha[:2], f"{sha}.{ext}")

    def holds(self, ref: Ref) -> bool:
        """``ref`` names an object of this store: its path is where this store puts those bytes. A
        record planted in the cache cannot point a stage at a file elsewhere (``/etc/…``, another bucket)."""
        ref = as_ref(ref)
        ext = locations.basename(ref.path).rpartition(".")[2]
        return ref.kind != "dir" and ref.path == self.object_path(ref.sha256, ext)

    def _put(self, data: bytes | bytearray | memoryview, ext: str, kind: str, **meta: Any) -> StoredRef:
        sha = hashlib.sha256(data).hexdigest()
        path = self.object_path(sha, ext)
        # Always (re)write: an existing file of that name may be the corrupted copy being repaired.
        # Not fsynced: every object is checked against its sha256 when read, and one lost in a crash
        # is recomputed; the fsync cost ~0.3 s a GB (at 25M ratings the run writes ~2 GB of objects).
        locations.publish(path, bytes(data) if locations.is_remote(path) else data, durable=False)
        return StoredRef(path=path, sha256=sha, kind=kind, **meta)

    def put_table(self, frame: pd.DataFrame, keep: bool = True) -> StoredRef:
        """``keep``: also keep the table in memory for the stages that read it next (numeric tables
        only, whose Parquet round trip is exact; others are kept when first read)."""
        buf = io.BytesIO()
        # Uncompressed: the 25M-row tables are read back by three stages, and Snappy's decoding took
        # ~1.7 s of each 2 s read (writing 1.6 s instead of 1.0 s) for files only ~20 % smaller.
        # Plain encoding for numbers, no statistics: pyarrow's default tries a dictionary for every
        # column and computes min/max per page, 1.5 s of a 25M-row table's 1.9 s write, for a file
        # nobody filters on (text columns keep their dictionary: repeated genres, occupations).
        text = [str(c) for c in frame.columns if frame[c].dtype.kind not in "biufcmM"]
        frame.to_parquet(
            buf, index=False, engine="pyarrow", compression="none", use_dictionary=text, write_statistics=False
        )
        ref = self._put(buf.getbuffer(), "parquet", "table", rows=len(frame), columns=[str(c) for c in frame.columns])
        if keep and round_trips_exactly(frame):
            _keep_table(ref, frame.copy(deep=False), FileStamp.of(ref.path))
        return ref

    def put_array(self, array: np.ndarray, keep: bool = True) -> StoredRef:
        """``keep``: also keep the array in memory (read-only) for the stages that read it next."""
        data = npy_bytes(array)
        ref = self._put(data, "npy", "array", rows=int(array.shape[0]) if array.ndim else None)
        if keep:
            _keep_array(ref, npy_array(data), FileStamp.of(ref.path))
        return ref

    def put_bytes(self, data: bytes, ext: str) -> StoredRef:
        return self._put(data, ext, "bytes")

    def put_json(self, obj: Any) -> StoredRef:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return self._put(data, "json", "json")


Ref = StoredRef | dict


def as_ref(ref: Ref) -> StoredRef:
    """Task results travel as plain dicts (JSON); turn one back into a StoredRef."""
    return ref if isinstance(ref, StoredRef) else StoredRef.model_validate(ref)


def get_bytes(ref: Ref, verify: bool = True) -> bytes:
    """The bytes of a stored object, checked against its sha256 (a corrupted file raises OSError)."""
    ref = as_ref(ref)
    data = locations.read_bytes(ref.path)
    if verify and hashlib.sha256(data).hexdigest() != ref.sha256:
        raise OSError(f"{ref.path}: content does not match its sha256 (corrupted cache file)")
    return data


def _is_ref(obj: Any) -> bool:
    return isinstance(obj, dict) and {"path", "sha256", "kind"} <= obj.keys()


def broken_refs(result: Any, store: Store | None = None) -> list[str]:
    """Stored objects referenced anywhere in a (nested) task result that are missing, whose bytes
    no longer match their sha256, or (given ``store``) that are not that store's objects; empty when
    all are intact. Folders (``kind='dir'``, the demo data) are checked by content only."""
    if isinstance(result, StoredRef):
        result = result.model_dump()
    if _is_ref(result):
        if store is not None and result["kind"] != "dir" and not store.holds(result):
            return [f"{result['path']} is not an object of the store {store.root}"]
        return _broken(result["path"], result["kind"], result["sha256"])
    if isinstance(result, dict):
        return [p for v in result.values() for p in broken_refs(v, store)]
    if isinstance(result, list):
        return [p for v in result for p in broken_refs(v, store)]
    return []


def _broken(path: str, kind: str, sha256: str) -> list[str]:
    if locations.is_remote(path):  # objects (folders are local: the demo data)
        try:
            data = locations.read_bytes(path)
        except FileNotFoundError:
            return [f"{path} is missing"]
        return [] if hashlib.sha256(data).hexdigest() == sha256 else [f"{path} does not match its sha256"]
    if kind != "dir" and VERIFIED.verified(path, sha256):  # verified in this process, file unchanged since
        return []
    local = locations.local_path(path)
    is_dir = kind == "dir"
    if not (local.is_dir() if is_dir else local.is_file()):
        return [f"{path} is missing"]
    if (dir_digest(local) if is_dir else sha256_file(local)) != sha256:
        return [f"{path} does not match its sha256"]
    return []


def _verified_read(ref: StoredRef) -> tuple[bytes, FileStamp | None]:
    """The verified bytes of an object, and its file's stamp if it did not change while being read."""
    before = FileStamp.of(ref.path)
    data = get_bytes(ref)
    return data, before if before is not None and FileStamp.of(ref.path) == before else None


def round_trips_exactly(frame: pd.DataFrame) -> bool:
    """Numeric numpy columns with unique string names, and the default index: what Parquet gives back
    is this frame, dtypes included."""
    index, names = frame.index, list(frame.columns)
    return (
        isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
        and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        and all(isinstance(dtype, np.dtype) and dtype.kind in "biuf" for dtype in frame.dtypes)
    )  # fmt: skip


def _keep_table(ref: StoredRef, frame: pd.DataFrame, stamp: FileStamp | None) -> None:
    VERIFIED.put(ref.path, ref.sha256, "table", frame, int(frame.memory_usage(index=False).sum()), stamp)


def _keep_array(ref: StoredRef, array: np.ndarray, stamp: FileStamp | None) -> None:
    VERIFIED.put(ref.path, ref.sha256, "array", array, array.nbytes, stamp)


def get_table(ref: Ref, verify: bool = True, columns: list[str] | None = None) -> pd.DataFrame:
    """A stored table (``columns``: only these), checked against its sha256 once per process while
    its file is unchanged (``VERIFIED``); a copy-on-write frame, so changing it changes no one else's."""
    ref = as_ref(ref)
    if not verify:
        return pd.read_parquet(io.BytesIO(get_bytes(ref, verify)), engine="pyarrow", columns=columns)
    frame = VERIFIED.get(ref.path, ref.sha256, "table")
    if frame is None:
        data, stamp = _verified_read(ref)
        frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        _keep_table(ref, frame, stamp)
    return (frame[columns] if columns is not None else frame).copy(deep=False)


def npy_bytes(array: np.ndarray) -> bytearray:
    """The bytes ``np.save(allow_pickle=False)`` writes for ``array``, built in one buffer (the header,
    then one copy of the data) instead of a growing stream and a copy of it."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise ValueError("Object arrays cannot be saved when allow_pickle=False")
    header = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    except ValueError:  # a header too long for format 1.0: np.save's own choice of version
        np.save(header := io.BytesIO(), array, allow_pickle=False)
        return bytearray(header.getbuffer())
    head = header.getbuffer()
    out = bytearray(len(head) + array.nbytes)
    out[: len(head)] = head
    np.frombuffer(out, dtype=np.uint8, offset=len(head))[:] = array.reshape(-1).view(np.uint8)
    return out


NPY_HEADER_MAX = 1 << 16  # format 1.0 headers are at most 64 KiB; 2.0's longer ones are read whole


def npy_array(data: bytes | bytearray) -> np.ndarray:
    """The array of a .npy file's bytes, read-only and without a copy; like ``np.load(allow_pickle=False)``
    it refuses object arrays (ValueError)."""
    # The header from a copy of the first bytes only: io.BytesIO copies a whole bytearray (what
    # put_array has in hand), ~0.3 s per 100 MB on fresh memory.
    buf = io.BytesIO(bytes(memoryview(data)[:NPY_HEADER_MAX]))
    version = np.lib.format.read_magic(buf)
    headers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in headers:
        array = np.load(io.BytesIO(data), allow_pickle=False)
        array.flags.writeable = False
        return array
    try:
        shape, fortran_order, dtype = headers[version](buf)
    except ValueError:  # a header longer than NPY_HEADER_MAX: numpy's reader on all of it
        buf = io.BytesIO(data)
        np.lib.format.read_magic(buf)
        shape, fortran_order, dtype = headers[version](buf)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=buf.tell())
    array.flags.writeable = False  # a bytearray's array would be writable: the store's are not
    return array.reshape(shape, order="F" if fortran_order else "C")


def get_array(ref: Ref, verify: bool = True) -> np.ndarray:
    """A stored array, read-only, checked against its sha256 once per process while its file is
    unchanged (``VERIFIED``)."""
    ref = as_ref(ref)
    if not verify:
        return npy_array(get_bytes(ref, verify))
    array = VERIFIED.get(ref.path, ref.sha256, "array")
    if array is None:
        data, stamp = _verified_read(ref)
        array = npy_array(data)
        _keep_array(ref, array, stamp)
    return array


def get_json(ref: Ref, verify: bool = True) -> Any:
    return json.loads(get_bytes(ref, verify))
