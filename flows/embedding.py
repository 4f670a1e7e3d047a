"""The embedding stage of the flow: plan → embed chunks (tasks) → assemble (a cached stage), per text
field, with its figures produced once (``tasks/embed.py`` has the three steps)."""

from __future__ import annotations

import time

from prefect.futures import as_completed

from configs.schema import EmbeddingConfig
from flows.progress import progress_artifact
from tasks.embed import (
    embedded_chunk,
    embedding_figures,
    field_vectors,
    movie_texts,
    plan_chunks,
    plural,
    track_chunks,
)
from tasks.encoder import ModelSource
from tasks.results import EmbeddedField, LoadedData
from tasks.stage import current_run
from tasks.vector_store import EmbeddingStore


def movie_vectors(
    loaded: LoadedData, field: str, model: ModelSource, embedding: EmbeddingConfig, missing: str, distributed: bool
) -> tuple[EmbeddedField, dict]:
    """One field's vectors, and its figures for metrics.json (texts, distinct, embedded in this run,
    cache hits, texts/s, seconds of the whole stage, dim). Chunks run as tasks, on Dask workers when
    ``distributed``; progress goes to the terminal, the run log and a progress artifact."""
    run = current_run()
    started = time.perf_counter()
    label = f"embed_{field}"
    texts = movie_texts(loaded.movies, field, missing)
    store = EmbeddingStore(run.cache_dir, model.identity)
    chunks = plan_chunks(texts, model.identity, store, embedding.chunk_size, run.refresh, run.logger)
    total = sum(len(c) for c in chunks)
    distinct = len({t for t in texts if t is not None})
    run.logger.info(
        "%s: %d distinct texts, %d in the embedding store, %d to embed in chunks of up to %d",
        plural(field), distinct, distinct - total, total, embedding.chunk_size,
    )  # fmt: skip
    embedded, chunk_seconds = 0, 0.0
    if chunks:
        calls = [
            dict(texts=chunk, model=model, embedding=embedding, cache_dir=run.cache_dir, field=field, chunk=i + 1,
                 n_chunks=len(chunks))
            for i, chunk in enumerate(chunks)
        ]  # fmt: skip
        if distributed:
            done = (f.result() for f in as_completed([embedded_chunk.submit(**call) for call in calls]))
        else:
            done = (embedded_chunk(**call) for call in calls)
        update = progress_artifact(f"movie-ratings-embedding-{field}", f"Embedding {total} {plural(field)}")
        embedded, chunk_seconds = track_chunks(done, total, plural(field), run.logger, update)
    vectors = field_vectors(
        movies=loaded.movies, field=field, model=model, embedding=embedding, missing=missing, cache_dir=run.cache_dir,
        label=label,
    )  # fmt: skip
    stats = {**vectors.stats, **embedding_figures(vectors.stats["texts_unique"], embedded, chunk_seconds)}
    # One timing for the stage, including the chunks' work; cached only if nothing had to be embedded.
    stats["seconds"] = run.seconds[label] = round(time.perf_counter() - started, 3)
    if embedded and label in run.cached:
        run.cached.remove(label)
    return vectors, stats


def embedding_summary(fields: dict[str, dict], backend: str = "torch") -> dict:
    """metrics.json's ``embedding`` block: the backend, totals over the fields, and each field's own figures."""
    embedded = sum(s["texts_embedded"] for s in fields.values())
    seconds = sum(s["seconds"] for s in fields.values())
    return {
        "backend": backend,
        "texts_total": sum(s["texts_total"] for s in fields.values()),
        "texts_unique": sum(s["texts_unique"] for s in fields.values()),
        "texts_embedded": embedded,
        "cache_hits": sum(s["cache_hits"] for s in fields.values()),
        "texts_per_second": round(embedded / seconds, 2) if embedded and seconds > 0 else None,
        "dim": {field: s["dim"] for field, s in fields.items()},
        "fields": fields,
    }
