"""The per-text vector store: one vector per (model identity, text), kept as Parquet chunk files
under ``<cache.dir>/embeddings/<identity[:32]>/`` (a folder or an object-store prefix, see
``tasks/locations.py``), each chunk published atomically with a checksum of its keys and vectors and
verified when it is read; a verified chunk is kept in memory while its file is unchanged
(``tasks/verified_objects.py``), so the plan and the assembly of each field read the store once."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks import locations
from tasks.verified_objects import VERIFIED, FileStamp

log = logging.getLogger(__name__)


def text_key(identity: str, text: str) -> str:
    return hashlib.sha256(f"{identity}\x00{text}".encode()).hexdigest()


CHECKSUM_KEY = b"movie-ratings.sha256"  # Parquet key-value metadata: sha256 of the chunk's keys and vectors


def chunk_checksum(keys: Sequence[str], vectors: np.ndarray) -> str:
    digest = hashlib.sha256("\n".join(keys).encode())
    digest.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return digest.hexdigest()


class EmbeddingStore:
    """Vectors of one model identity, as Parquet chunks (key: string, vector: fixed-size list<float32>).

    Each chunk carries the sha256 of its keys and vectors in its metadata, written atomically with it;
    a chunk whose content does not match (flipped bytes, a planted file, an older format) is logged,
    removed and its texts embedded again, never used."""

    def __init__(self, cache_dir: str | os.PathLike, identity: str):
        self.dir = locations.join(locations.normalized(cache_dir), "embeddings", identity[:32])

    def _read_chunk(self, path: str) -> tuple[tuple[str, ...], np.ndarray]:
        """A chunk's keys and (n, d) vectors (read-only), verified once per process while its file is
        unchanged; ValueError/OSError when it is not intact."""
        kept = VERIFIED.get(path, "", "vector-chunk")
        if kept is not None:
            return kept
        stamp = FileStamp.of(path)
        keys, matrix = self._verified_chunk(path)
        if stamp is not None and FileStamp.of(path) == stamp:
            VERIFIED.put(path, "", "vector-chunk", (keys, matrix), matrix.nbytes + 120 * len(keys), stamp)
        return keys, matrix

    def _verified_chunk(self, path: str) -> tuple[tuple[str, ...], np.ndarray]:
        table = pq.read_table(pa.BufferReader(locations.read_bytes(path)))
        keys = tuple(table.column("key").to_pylist())
        vectors = table.column("vector").combine_chunks()
        matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(keys), vectors.type.list_size)
        stored = (table.schema.metadata or {}).get(CHECKSUM_KEY)
        if stored is None:
            raise ValueError("no checksum (written by an older version)")
        if stored.decode() != chunk_checksum(keys, matrix):
            raise ValueError("content does not match its checksum")
        if not locations.basename(path).startswith(_chunk_name(keys)):
            raise ValueError("chunk name does not match its keys")
        matrix.flags.writeable = False
        return keys, matrix

    def _chunks(self, logger: logging.Logger | logging.LoggerAdapter) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
        """Every intact chunk; a damaged one is logged and removed (its texts count as missing)."""
        for path in locations.list_files(self.dir, ".parquet"):
            try:
                yield self._read_chunk(path)
            except FileNotFoundError:  # removed since the listing (another run repairing it)
                continue
            except Exception as exc:  # noqa: BLE001 - truncated/flipped/planted file: recompute, never crash
                logger.warning("embedding cache file %s is damaged (%s); it is removed and recomputed", path, exc)
                locations.remove(path)

    def load(self, wanted: set[str], logger: logging.Logger | logging.LoggerAdapter = log) -> dict[str, np.ndarray]:
        """Cached, verified vectors for the wanted keys."""
        found: dict[str, np.ndarray] = {}
        for keys, matrix in self._chunks(logger):
            for key, row in zip(keys, matrix):
                if key in wanted:
                    found[key] = row
        return found

    def keys(self, logger: logging.Logger | logging.LoggerAdapter = log) -> set[str]:
        """Keys of the intact chunks (each chunk verified, so a damaged one is planned again)."""
        return {key for keys, _ in self._chunks(logger) for key in keys}

    def save(self, keys: list[str], vectors: np.ndarray) -> str:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        table = pa.table({"key": pa.array(keys, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
        table = table.replace_schema_metadata({CHECKSUM_KEY: chunk_checksum(keys, vectors).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        path = locations.join(self.dir, f"{_chunk_name(keys)}.parquet")
        locations.publish(path, sink.getvalue().to_pybytes())
        return path


def _chunk_name(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]


# ---------------------------------------------------------------- embedding a column of texts
