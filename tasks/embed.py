"""Embedding one text field of the movies table, in three steps that are the same on every path:

1. **plan**: the distinct texts the per-text store lacks (``tasks/vector_store.py``), shortest first
   (less padding), cut into chunks of ``embedding.chunk_size``;
2. **embed chunks**: each chunk is embedded and written to the store atomically, so an interrupted run
   resumes from the finished chunks (in the flow: one ``embed-chunk`` task per chunk, in parallel on
   Dask workers);
3. **assemble**: the ``(n_movies, d)`` matrix aligned to the table's rows, read from the store (in the
   flow: the cached ``embed-<field>`` stage).

``embed_texts`` runs the three in-process (tests, benchmarks); the flow runs them as tasks
(``flows/embedding.py``). torch and sentence-transformers are imported only when a text is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks import locations
from tasks.caching import run_logger
from tasks.encoder import (
    Encoder,
    ModelSource,
    backend_identity,
    model_loaded,
    on_this_machine,
    pick_backend,
    pick_device,
    pick_precision,
    resolve_model,
    sentence_encoder,
)
from tasks.errors import InputError
from tasks.results import EmbeddedField
from tasks.stage import stage
from tasks.store import Store, StoredRef, get_table
from tasks.vector_store import EmbeddingStore, text_key

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter


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


# Texts that complement the title: a movie without one is embedded as the empty text whatever the
# policy, so that a movie nobody tagged keeps its ratings.
SECONDARY_FIELDS = ("genres", "tags")


def field_texts(movies: pd.DataFrame, field: str, missing: str) -> tuple[list[str | None], int]:
    """One text field of a movies table after the missing-text policy (genres 'A|B' read 'A, B')."""
    values = movies[field]
    if field == "genres":
        values = values.str.replace("|", ", ", regex=False)
    return prepare_texts(values.tolist(), "empty" if field in SECONDARY_FIELDS else missing)


def plural(field: str) -> str:
    """'title' → 'titles'; 'genres' and 'tags' are plural already."""
    return field if field.endswith("s") else f"{field}s"


def fields_to_embed(wanted: list[str], texts: dict[str, int], release: str) -> tuple[list[str], list[str]]:
    """The fields of ``wanted`` the data has (``texts``: field → movies that have it), and a warning
    for each one it lacks. Missing overviews are replaced by tags when the release has tags and they
    are not asked for already. No field left is an InputError naming what the data has."""
    has = [f for f, n in texts.items() if n > 0]
    fields, warnings = [], []
    for field in wanted:
        if field in has:
            fields.append(field)
            continue
        hint = {
            "overview": "to embed overviews, add overviews.csv: movie_id or movieId, or tmdbId/imdbId with links.csv, "
            "and overview",
            "tags": "the release has no tags file",
        }.get(field, "")
        if field == "overview" and "tags" in has and "tags" not in wanted:
            fields.append("tags")
            warnings.append(f"the {release} data has no movie overviews; embedding the movies' tags instead ({hint})")
        else:
            warnings.append(f"the {release} data has no movie {plural(field)}; {field} left out" + (f" ({hint})" if hint else ""))
    fields = list(dict.fromkeys(fields))
    if not fields:
        raise InputError(
            f"embedding.fields [{', '.join(wanted)}]: none of them is in the {release} data; it has {', '.join(has) or 'no texts'}"
        )
    return fields, warnings


def movie_texts(movies: StoredRef, field: str, missing: str) -> list[str | None]:
    """The texts of one field of a stored movies table, after the missing-text policy."""
    return field_texts(get_table(movies), field, missing)[0]


def distinct_texts(texts: Sequence[str | None], identity: str) -> dict[str, str]:
    """key → text for each distinct present text (None = no text), first occurrence first."""
    return {text_key(identity, t): t for t in texts if t is not None}


def by_length(distinct: dict[str, str], skip: set[str] | dict) -> list[str]:
    """The keys not in ``skip``, shortest text first, so each batch pads little."""
    return sorted((k for k in distinct if k not in skip), key=lambda k: (len(distinct[k]), k))


def plan_chunks(
    texts: Sequence[str | None], identity: str, store: EmbeddingStore, chunk_size: int, refresh: bool = False,
    logger: Logger = log,
) -> list[list[str]]:  # fmt: skip
    """Step 1: the distinct texts missing from the store (all of them with ``refresh``), shortest
    first, cut into chunks of ``chunk_size``."""
    distinct = distinct_texts(texts, identity)
    todo = [distinct[k] for k in by_length(distinct, set() if refresh else store.keys(logger))]
    return [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]


def embed_chunk(texts: list[str], encode: Encoder, store: EmbeddingStore, identity: str) -> np.ndarray:
    """Step 2: embed one chunk and write it to the store (atomically); returns its vectors."""
    vectors = encode(texts)
    store.save([text_key(identity, t) for t in texts], vectors)
    return vectors


def track_chunks(
    done_per_chunk: Iterable[int], total: int, label: str, logger: Logger = log,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[int, float]:  # fmt: skip
    """Consume chunk results (texts per finished chunk) with progress: a tqdm bar in the terminal, a
    log line per chunk (the run log in the UI) and ``on_progress(done, total)``. Returns (texts, s)."""
    from tqdm.auto import tqdm

    started, done = time.perf_counter(), 0
    with tqdm(total=total, desc=f"embedding {label}", unit="text", disable=total == 0, leave=False) as bar:
        for n in done_per_chunk:
            done += n
            bar.update(n)
            rate = done / max(time.perf_counter() - started, 1e-9)
            logger.info("%s: embedded %d/%d (%.1f texts/s)", label, done, total, rate)
            if on_progress:
                on_progress(done, total)
    return done, time.perf_counter() - started


def assemble(
    texts: Sequence[str | None], identity: str, store: EmbeddingStore, label: str, logger: Logger = log,
    encode: Encoder | None = None, chunk_size: int = 256,
) -> EmbeddingResult:  # fmt: skip
    """Step 3: the vectors of ``texts`` (rows of None stay 0, ``present`` False), read from the store.
    A text the store lost since it was planned (a concurrent clean-up) is embedded here with
    ``encode``, through the same ``embed_chunk``, and counted in ``stats['texts_repaired']``."""
    keys = [text_key(identity, t) if t is not None else None for t in texts]
    unique = distinct_texts(texts, identity)
    found = store.load(set(unique), logger)
    lost = by_length(unique, found)
    if lost:
        if encode is None:
            raise RuntimeError(f"{label}: {len(lost)} texts are not in the embedding store")
        logger.warning("%s: %d texts vanished from the embedding store since planning; embedding them again", label, len(lost))
        for start in range(0, len(lost), chunk_size):
            chunk = lost[start : start + chunk_size]
            found.update(zip(chunk, embed_chunk([unique[k] for k in chunk], encode, store, identity)))
    dim = next(iter(found.values())).shape[0] if found else 0
    if dim == 0:
        raise InputError(f"{label}: no text to embed (every value is missing)")
    matrix = np.zeros((len(keys), dim), dtype=np.float32)
    present = np.array([k is not None for k in keys], dtype=bool)
    if present.any():
        matrix[present] = np.stack([found[key] for key in keys if key is not None])
    stats = {"texts_total": int(present.sum()), "texts_unique": len(unique), "dim": dim, "texts_repaired": len(lost)}
    return EmbeddingResult(vectors=matrix, present=present, stats=stats)


def embed_texts(
    texts: Sequence[str | None],
    encode: Encoder,
    store: EmbeddingStore,
    identity: str,
    chunk_size: int = 256,
    label: str = "texts",
    logger: Logger = log,
    reuse: bool = True,
) -> EmbeddingResult:
    """The three steps in this process: plan (everything when ``reuse`` is false), embed the chunks,
    assemble. ``stats`` adds texts_embedded, cache_hits, seconds and texts_per_second."""
    chunks = plan_chunks(texts, identity, store, chunk_size, refresh=not reuse, logger=logger)
    total = sum(len(c) for c in chunks)
    embedded, seconds = track_chunks(
        (len(embed_chunk(chunk, encode, store, identity)) for chunk in chunks), total, label, logger
    )
    result = assemble(texts, identity, store, label, logger, encode, chunk_size)
    result.stats.update(embedding_figures(result.stats["texts_unique"], embedded, seconds))
    return result


def embedding_figures(unique: int, embedded: int, seconds: float) -> dict:
    """The counts a field's embedding reports (metrics.json ``embedding.fields.<field>``)."""
    return {
        "texts_embedded": embedded,
        "cache_hits": unique - embedded,
        "texts_per_second": round(embedded / seconds, 2) if embedded and seconds > 0 else None,
        "seconds": round(seconds, 3),
    }


def lazy_encoder(source: ModelSource, embedding: BaseModel, logger: Logger = log, cache_dir: str = "") -> Encoder:
    """An encoder that imports its runtime and loads the model on its first call only (warm runs
    never do): torch + sentence-transformers, or OpenVINO (its converted model kept in ``cache_dir``)."""
    encoder: list[Encoder] = []

    def encode(batch: list[str]) -> np.ndarray:
        if not encoder:
            here = on_this_machine(source, embedding.normalize)  # a Dask worker may keep it elsewhere
            if here.backend != "torch":
                encoder.append(cached_openvino_encoder(here, embedding, cache_dir, logger))
                return encoder[0](batch)
            device = pick_device(embedding.device)
            precision = pick_precision(embedding.precision, device)
            if not model_loaded(here, device):
                logger.info("loading %s on %s, precision %s, batch size %d", here.name, device, precision, embedding.batch_size)
            encoder.append(sentence_encoder(here, device, embedding.batch_size, embedding.normalize, precision))
        return encoder[0](batch)

    return encode


# ---------------------------------------------------------------- Prefect tasks


# OpenVINO encoders, one per (model, backend, precision, batch size) and process.
_OPENVINO: dict[tuple, Encoder] = {}


def cached_openvino_encoder(source: ModelSource, embedding: BaseModel, cache_dir: str, logger: Logger) -> Encoder:
    from tasks.openvino_backend import models_root, openvino_encoder

    precision = pick_precision(embedding.precision, "cpu")
    key = (source.identity, source.backend, precision, embedding.batch_size, embedding.normalize,
           str(models_root(cache_dir or default_models_dir())))  # fmt: skip
    if key not in _OPENVINO:
        logger.info("loading %s with %s on cpu, precision %s, batch size %d", source.name, source.backend, precision,
                    embedding.batch_size)  # fmt: skip
        _OPENVINO[key] = openvino_encoder(
            source.path, source.identity, source.backend, cache_dir or default_models_dir(), embedding.batch_size,
            embedding.normalize, precision, logger,
        )  # fmt: skip
    return _OPENVINO[key]


def prepare_first_run(embedding: BaseModel, cache_dir: str, logger: Logger = log) -> bool:
    """Convert and load the OpenVINO model now if this cache has no converted copy of it: a first
    run, which embeds every text. The command line calls this while Prefect's temporary server
    starts (~2.7 s of waiting), which takes the conversion and compilation (~0.8 s) off the run's
    path; the run's chunk tasks, in this process, find the loaded encoder (``_OPENVINO``). Nothing is
    done for hub names (fetching is the run's to report), remote caches or torch; errors are left
    to the run, which reports them. True when it loaded the encoder."""
    from tasks.encoder import local_folder
    from tasks.openvino_backend import KINDS, has_local_export

    if local_folder(embedding.model) is None or locations.is_remote(cache_dir):
        return False
    try:
        source = resolve_model(embedding.model, embedding.normalize)
        chosen = pick_backend(embedding.backend, embedding.device, source.path)
        identity = backend_identity(source.identity, chosen)
        if chosen not in KINDS or has_local_export(identity, chosen, cache_dir):
            return False
        cached_openvino_encoder(ModelSource(source.name, source.path, identity, chosen), embedding, cache_dir, logger)
    except Exception:  # noqa: BLE001 - the run meets the same error and reports it
        return False
    return True


def default_models_dir() -> str:
    from configs.schema import default_cache_dir

    return default_cache_dir()


@task(name="model-source", task_run_name="model-source", cache_policy=NO_CACHE)
def model_source(model: str, normalize: bool, backend: str = "torch", device: str = "auto") -> ModelSource:
    """Resolve the configured model (bundled, local folder or hub) to a folder, the backend that
    runs it and the identity its vectors are stored under.

    Not cached: its result (the weights' hash) is what keeps the embedding cache honest."""
    source = resolve_model(model, normalize)
    chosen = pick_backend(backend, device, source.path)
    source = ModelSource(source.name, source.path, backend_identity(source.identity, chosen), chosen)
    run_logger(log).info(
        "embedding model %r: %s, backend %s%s (identity %s)", source.name, source.path, chosen,
        " (auto)" if backend == "auto" else "", source.identity[:12],
    )  # fmt: skip
    return source


def not_bad_input(task, task_run, state) -> bool:
    """Retry condition: a chunk is retried once after a transient failure (a lost worker, a store
    hiccup), never after bad input (e.g. a broken model folder), which would fail the same way again.
    Prefect hands the task's exception over as the Failed state's data."""
    return not isinstance(state.data, InputError)


@task(name="embed-chunk", task_run_name="embed-{field} {chunk}/{n_chunks}", cache_policy=NO_CACHE, retries=1,
      retry_condition_fn=not_bad_input)  # fmt: skip
def embedded_chunk(
    texts: list[str], model: ModelSource, embedding: BaseModel, cache_dir: str, field: str, chunk: int, n_chunks: int
) -> int:
    """Step 2 as a task: embed one chunk into the per-text store (the store is its cache); returns how
    many texts it embedded. ``field``, ``chunk``, ``n_chunks`` only name the task run. On a Dask
    worker with runner.kind=dask; the model is loaded once per worker process."""
    logger = run_logger(log)
    encode = lazy_encoder(model, embedding, logger, cache_dir)
    embed_chunk(texts, encode, EmbeddingStore(cache_dir, model.identity), model.identity)
    return len(texts)


@stage("embed", result=EmbeddedField, run_name="embed-{field}")
def field_vectors(
    movies: StoredRef, field: str, model: ModelSource, embedding: BaseModel, missing: str, cache_dir: str
) -> EmbeddedField:
    """Step 3 as a stage: one text column of the movies table as vectors aligned to its rows, read
    from the per-text store (the chunk tasks filled it)."""
    logger = run_logger(log)
    texts, n_missing = field_texts(get_table(movies), field, missing)
    if n_missing:
        policy = "embedded as the empty text" if field in SECONDARY_FIELDS else f"policy {missing!r}"
        logger.info("%s: %d of %d movies have no %s (%s)", field, n_missing, len(texts), field, policy)
    # One vector per (model identity, text), whatever precision computed it: bfloat16 and float32
    # vectors agree to cosine ≥ 0.9999, so they are interchangeable (docs/reliability.md).
    result = assemble(
        texts, model.identity, EmbeddingStore(cache_dir, model.identity), plural(field), logger,
        lazy_encoder(model, embedding, logger, cache_dir), embedding.chunk_size,
    )  # fmt: skip
    store = Store(cache_dir)
    return EmbeddedField(
        vectors=store.put_array(result.vectors),
        present=store.put_array(result.present),
        stats={**result.stats, "missing": n_missing},
    )
