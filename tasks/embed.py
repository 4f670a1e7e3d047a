"""Sentence embeddings of movie texts, with a per-text cache.

Each distinct text is embedded once per model identity: the store maps
sha256(model identity, text) → vector, kept as Parquet chunk files under
``<cache>/embeddings/<identity>/``. Missing texts are sorted by length (less padding), embedded in
chunks, and each finished chunk is written atomically, so an interrupted run resumes from the
finished chunks. torch and sentence-transformers are imported lazily (they take seconds to import).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.atomic import atomic_write_bytes
from tasks.caching import TASK_OPTIONS, run_logger
from tasks.encoder import (
    Encoder,
    ModelSource,
    model_loaded,
    pick_device,
    pick_precision,
    resolve_model,
    sentence_encoder,
)
from tasks.errors import InputError
from tasks.store import Store, get_table

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the per-text store


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
        self.dir = Path(cache_dir).expanduser() / "embeddings" / identity[:32]

    def _read_chunk(self, path: Path) -> tuple[list[str], np.ndarray]:
        """A chunk's keys and (n, d) vectors, verified; ValueError/OSError when it is not intact."""
        table = pq.read_table(path)
        keys = table.column("key").to_pylist()
        vectors = table.column("vector").combine_chunks()
        matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(keys), vectors.type.list_size)
        stored = (table.schema.metadata or {}).get(CHECKSUM_KEY)
        if stored is None:
            raise ValueError("no checksum (written by an older version)")
        if stored.decode() != chunk_checksum(keys, matrix):
            raise ValueError("content does not match its checksum")
        if not path.stem.startswith(_chunk_name(keys)):
            raise ValueError("chunk name does not match its keys")
        return keys, matrix

    def _chunks(self, logger: logging.Logger | logging.LoggerAdapter) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every intact chunk; a damaged one is logged and removed (its texts count as missing)."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.parquet")):
            try:
                yield self._read_chunk(path)
            except Exception as exc:  # noqa: BLE001 - truncated/flipped/planted file: recompute, never crash
                logger.warning("embedding cache file %s is damaged (%s); it is removed and recomputed", path, exc)
                path.unlink(missing_ok=True)

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

    def save(self, keys: list[str], vectors: np.ndarray) -> Path:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        table = pa.table({"key": pa.array(keys, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
        table = table.replace_schema_metadata({CHECKSUM_KEY: chunk_checksum(keys, vectors).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        path = self.dir / f"{_chunk_name(keys)}.parquet"
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path


def _chunk_name(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]


# ---------------------------------------------------------------- embedding a column of texts


@dataclass
class EmbeddingResult:
    vectors: np.ndarray  # (n, d) float32, rows of missing texts are 0
    present: np.ndarray  # (n,) bool: the text had an embedding
    stats: dict


def prepare_texts(values: Sequence[object], missing: str) -> tuple[list[str | None], int]:
    """Missing/blank texts → None ('drop') or '' ('empty'); returns texts and how many were missing."""
    texts: list[str | None] = []
    n_missing = 0
    for value in values:
        text = value.strip() if isinstance(value, str) else None
        if not text:
            n_missing += 1
            text = "" if missing == "empty" else None
        texts.append(text)
    return texts, n_missing


def movie_texts(movies: dict, field: str, missing: str) -> list[str | None]:
    """The texts of one field of a stored movies table, after the missing-text policy."""
    return prepare_texts(get_table(movies)[field].tolist(), missing)[0]


def distinct_texts(texts: Sequence[str | None], identity: str) -> dict[str, str]:
    """key → text for each distinct present text (None = no text), first occurrence first."""
    return {text_key(identity, t): t for t in texts if t is not None}


def by_length(distinct: dict[str, str], skip: set[str] | dict) -> list[str]:
    """The keys not in ``skip``, shortest text first, so each batch pads little."""
    return sorted((k for k in distinct if k not in skip), key=lambda k: (len(distinct[k]), k))


def plan_chunks(
    texts: Sequence[str | None], identity: str, store: EmbeddingStore, chunk_size: int, refresh: bool = False
) -> list[list[str]]:
    """The distinct texts missing from the store (all of them with ``refresh``), shortest first, cut
    into chunks of ``chunk_size``."""
    distinct = distinct_texts(texts, identity)
    todo = [distinct[k] for k in by_length(distinct, set() if refresh else store.keys())]
    return [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]


def embed_chunk(texts: list[str], encode: Encoder, store: EmbeddingStore, identity: str) -> np.ndarray:
    """Embed one chunk and write it to the store (atomically); returns its vectors."""
    vectors = encode(texts)
    store.save([text_key(identity, t) for t in texts], vectors)
    return vectors


def embed_texts(
    texts: Sequence[str | None],
    encode: Encoder,
    store: EmbeddingStore,
    identity: str,
    chunk_size: int = 256,
    label: str = "texts",
    logger: logging.Logger | logging.LoggerAdapter = log,
    reuse: bool = True,
) -> EmbeddingResult:
    """Embed texts (None = no text), reusing cached vectors (unless ``reuse`` is false) and writing
    each new chunk to the store."""
    keys = [text_key(identity, t) if t is not None else None for t in texts]
    unique = distinct_texts(texts, identity)
    cached = store.load(set(unique), logger) if reuse else {}
    todo = by_length(unique, cached)
    n_todo = len(todo)
    logger.info(
        "%s: %d texts, %d distinct, %d cached, %d to embed in chunks of %d",
        label, sum(k is not None for k in keys), len(unique), len(unique) - n_todo, n_todo, chunk_size,
    )  # fmt: skip

    from tqdm.auto import tqdm

    started = time.perf_counter()
    done = 0
    with tqdm(total=n_todo, desc=f"embedding {label}", unit="text", disable=n_todo == 0, leave=False) as bar:
        for start in range(0, n_todo, chunk_size):
            chunk = todo[start : start + chunk_size]
            cached.update(zip(chunk, embed_chunk([unique[k] for k in chunk], encode, store, identity)))
            done += len(chunk)
            bar.update(len(chunk))
            rate = done / max(time.perf_counter() - started, 1e-9)
            logger.info("%s: embedded %d/%d (%.1f texts/s)", label, done, n_todo, rate)
    seconds = time.perf_counter() - started

    dim = next(iter(cached.values())).shape[0] if cached else 0
    if dim == 0:
        raise InputError(f"{label}: no text to embed (every value is missing)")
    matrix = np.zeros((len(keys), dim), dtype=np.float32)
    present = np.array([k is not None for k in keys], dtype=bool)
    for i, key in enumerate(keys):
        if key is not None:
            matrix[i] = cached[key]
    stats = {
        "texts_total": int(present.sum()),
        "texts_unique": len(unique),
        "texts_embedded": n_todo,
        "cache_hits": len(unique) - n_todo,
        "texts_per_second": round(n_todo / seconds, 2) if n_todo and seconds > 0 else None,
        "seconds": round(seconds, 3),
        "dim": dim,
    }
    return EmbeddingResult(vectors=matrix, present=present, stats=stats)


# ---------------------------------------------------------------- Prefect wrappers


@task(name="model-source", cache_policy=NO_CACHE)
def model_source_task(model: str, normalize: bool) -> dict:
    """Resolve the configured model (bundled, local folder or hub) to a folder and an identity.

    Not cached: its result (the weights' hash) is what keeps the embedding cache honest."""
    source = resolve_model(model, normalize)
    run_logger(log).info("embedding model %r: %s (identity %s)", source.name, source.path, source.identity[:12])
    return {"name": source.name, "path": source.path, "identity": source.identity}


def lazy_encoder(source: ModelSource, embedding: BaseModel, logger: logging.Logger | logging.LoggerAdapter = log) -> Encoder:
    """An encoder that imports torch and loads the model on its first call only (warm runs never do)."""
    encoder: list[Encoder] = []

    def encode(batch: list[str]) -> np.ndarray:
        if not encoder:
            device = pick_device(embedding.device)
            precision = pick_precision(embedding.precision, device)
            if not model_loaded(source, device):
                logger.info("loading %s on %s, precision %s, batch size %d", source.name, device, precision, embedding.batch_size)
            encoder.append(sentence_encoder(source, device, embedding.batch_size, embedding.normalize, precision))
        return encoder[0](batch)

    return encode


@task(name="embed-chunk", cache_policy=NO_CACHE, retries=1)
def embed_chunk_task(texts: list[str], model: dict, embedding: BaseModel, cache_dir: str) -> dict:
    """Embed one chunk of texts into the per-text store (the store is its cache). Runs on a Dask
    worker with runner.kind=dask; the model is loaded once per worker process."""
    source = ModelSource(**model)
    started = time.perf_counter()
    embed_chunk(texts, lazy_encoder(source, embedding, run_logger(log)), EmbeddingStore(cache_dir, source.identity), source.identity)
    return {"texts": len(texts), "seconds": time.perf_counter() - started}


@task(name="embed", **TASK_OPTIONS)
def embed_task(movies: dict, field: str, model: dict, embedding: BaseModel, missing: str, cache_dir: str) -> dict:
    """One text column of the movies table as vectors aligned to the table's rows, read from the
    per-text store (the flow has embedded the missing texts in chunks before; any text still
    missing, e.g. after a concurrent clean-up, is embedded here)."""
    logger = run_logger(log)
    table = get_table(movies)
    texts, n_missing = prepare_texts(table[field].tolist(), missing)
    if n_missing:
        logger.info("%s: %d of %d movies have no %s (policy %r)", field, n_missing, len(texts), field, missing)
    source = ModelSource(**model)
    # One vector per (model identity, text), whatever precision computed it: bfloat16 and float32
    # vectors agree to cosine ≥ 0.9999, so they are interchangeable.
    result = embed_texts(
        texts, lazy_encoder(source, embedding, logger), EmbeddingStore(cache_dir, source.identity), source.identity,
        chunk_size=embedding.chunk_size, label=f"{field}s", logger=logger,
    )  # fmt: skip
    store = Store(cache_dir)
    return {
        "vectors": store.put_array(result.vectors).model_dump(),
        "present": store.put_array(result.present).model_dump(),
        "stats": {**result.stats, "missing": n_missing},
    }
