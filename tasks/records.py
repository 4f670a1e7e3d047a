"""Prefect result records that can never run code when read.

Prefect decodes a persisted result with the serializer named *inside the record* (see
``prefect/_internal/result_records.py: ResultRecord.deserialize``), so a record file planted in
``<cache.dir>/prefect-results/`` that says ``{"type": "pickle"}`` would be unpickled on the next cache
lookup, and even Prefect's ``json`` serializer imports and calls the classes a record names
(``__class__`` / ``__exc_type__``). Two pieces close that door:

- ``PlainJSONSerializer`` (type ``movie-ratings-json``): ``json.dumps`` / ``json.loads`` and nothing
  else; exceptions of failed task runs are written as plain ``{"error", "message"}`` data.
- ``RecordStorage``: the result storage of our tasks. Every read goes through ``checked_record``, which
  parses the file with the standard ``json`` module and refuses (``ValueError``) anything that is not
  a record this project writes: another serializer, a payload that is not plain JSON, extra fields.
  Prefect counts a refused read as "no cached result" (``ResultStore.exists`` returns False), so a
  planted or damaged record is a cache miss; the task runs and overwrites it. Writes are atomic.
  ``RemoteRecordStorage`` does the same on an object store (``cache.dir=s3://…``), through
  ``tasks/locations.py``; its block holds only the base URL, never credentials.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.serializers import Serializer
from pydantic_core import to_jsonable_python

from tasks import locations
from tasks.atomic import atomic_write_bytes

SERIALIZER_TYPE = "movie-ratings-json"
RECORD_FIELDS = {"metadata", "result"}
METADATA_FIELDS = {"storage_key", "expiration", "serializer", "prefect_version", "storage_block_id"}


class PlainJSONSerializer(Serializer):
    """Results as standard JSON; never imports, constructs or unpickles anything."""

    type: Literal["movie-ratings-json"] = SERIALIZER_TYPE

    def dumps(self, obj: Any) -> bytes:
        if isinstance(obj, BaseException):  # a failed task run's exception, kept as data only
            obj = {"error": type(obj).__name__, "message": str(obj)}
        # stage results are models (tasks/results.py), also inside dicts and lists: plain JSON values
        return json.dumps(to_jsonable_python(obj), allow_nan=False).encode("utf-8")  # key order kept: outputs list baselines in a fixed order

    def loads(self, blob: bytes) -> Any:
        return json.loads(blob)


def checked_record(content: bytes) -> bytes:
    """``content`` if it is a result record as written with ``PlainJSONSerializer``; else ValueError."""
    try:
        record = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON result record ({exc})") from None
    if not isinstance(record, dict) or set(record) != RECORD_FIELDS:
        raise ValueError("not a result record written by movie-ratings (unexpected fields)")
    metadata = record["metadata"]
    if not isinstance(metadata, dict) or not set(metadata) <= METADATA_FIELDS:
        raise ValueError("result record metadata has unexpected fields")
    if metadata.get("serializer") != {"type": SERIALIZER_TYPE}:
        raise ValueError(f"result record names serializer {metadata.get('serializer')!r}, not {SERIALIZER_TYPE!r}")
    if not isinstance(record["result"], str):
        raise ValueError("result record payload is not JSON text")
    try:
        json.loads(record["result"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"result record payload is not JSON ({exc})") from None
    return content


class RecordStorage(LocalFileSystem):
    """Local result storage that only hands Prefect records passing ``checked_record``.

    Prefect accepts a storage block as a task's ``result_storage`` only once it is saved on the API
    server (a block document), so use ``record_storage(folder)``, which saves one per folder."""

    _block_type_name = "Movie Ratings Record Storage"
    _block_type_slug = "movie-ratings-record-storage"

    async def aread_path(self, path: str) -> bytes:
        return checked_record(await super().aread_path(path))

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return checked_record(LocalFileSystem.read_path(self, path, _sync=True))

    async def awrite_path(self, path: str, content: bytes) -> str:
        return self.write_path(path, content, _sync=True)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        target = Path(self._resolve_path(path))
        atomic_write_bytes(target, content)
        return str(target)


class RemoteRecordStorage(RemoteFileSystem):
    """``RecordStorage`` on an fsspec URL: reads checked the same way, writes published through a
    verified temporary key (``locations.publish``). ``settings`` stay empty: credentials come from
    the filesystem's own environment on each machine."""

    _block_type_name = "Movie Ratings Remote Record Storage"
    _block_type_slug = "movie-ratings-remote-record-storage"

    async def aread_path(self, path: str) -> bytes:
        return self.read_path(path, _sync=True)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return checked_record(locations.read_bytes(self._resolve_path(path)))

    async def awrite_path(self, path: str, content: bytes) -> str:
        return self.write_path(path, content, _sync=True)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        target = self._resolve_path(path)
        locations.publish(target, content)
        return target


@lru_cache(maxsize=32)
def record_storage(folder: str) -> RecordStorage | RemoteRecordStorage:
    """The saved record storage block for ``folder`` (a path or an fsspec URL; one block document
    per folder, named by the folder's hash; saving again with the same content is a no-op on the
    server)."""
    kind = RemoteRecordStorage if locations.is_remote(folder) else RecordStorage
    name = "records-" + hashlib.sha256(folder.encode()).hexdigest()[:16]
    try:  # saved by an earlier run: one API read instead of the 6 requests of a save (~0.1 s per run)
        stored = kind.load(name, _sync=True)
        if stored.basepath == folder:
            return stored
    except (ValueError, RuntimeError):  # none yet, or saved with a schema this class no longer validates
        pass
    storage = kind(basepath=folder)
    storage.save(name, overwrite=True, _sync=True)
    return storage
