"""The `movie-ratings` flow: load → embed(title, overview) → merge → features → train → plots → outputs.

Composition only: each step is a task from ``tasks/``; what travels between them are small dicts of
store references (path + sha256), so every task's cache key is a hash of its inputs' content.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.runtime import flow_run
from tqdm.auto import tqdm

from configs.schema import (
    CacheConfig,
    DataConfig,
    EmbeddingConfig,
    ModelConfig,
    PlotConfig,
    RunConfig,
    RunnerConfig,
    SplitConfig,
)
from flows.steps import Steps
from tasks.demo_data import demo_data_task
from tasks.embed import EmbeddingStore, embed_chunk_task, embed_task, model_source_task, movie_texts, plan_chunks
from tasks.features import features_task
from tasks.load import data_fingerprint, load_task
from tasks.merge import merge_task
from tasks.outputs import metrics_document, metrics_json, top_coefficients_csv, write_run_outputs
from tasks.plots import plots_task
from tasks.preflight import preflight
from tasks.records import PlainJSONSerializer
from tasks.report import report_markdown
from tasks.store import get_bytes
from tasks.train import gram_task, pick_solver, split_task, train_task

def embedding_summary(embedded: dict[str, dict], chunks: dict[str, dict], cached_fields: list[str]) -> dict[str, Any]:
    """metrics.json's ``embedding`` block: totals over the fields, and each field's own figures.

    Texts embedded in this run are those of the chunk tasks, plus any the embed task itself had to
    add (none, unless the store lost files meanwhile); a cached embed task added none."""
    stats = {}
    for field, e in embedded.items():
        s = dict(e["stats"])
        inside = 0 if field in cached_fields else s["texts_embedded"]
        done = chunks[field]["texts"] + inside
        seconds = chunks[field]["seconds"] + (0.0 if field in cached_fields else s["seconds"])
        s.update(
            texts_embedded=done,
            cache_hits=s["texts_unique"] - done,
            texts_per_second=round(done / seconds, 2) if done and seconds > 0 else None,
            seconds=round(seconds, 3),
        )
        stats[field] = s
    embedded_n = sum(s["texts_embedded"] for s in stats.values())
    seconds = sum(s["seconds"] for s in stats.values())
    return {
        "texts_total": sum(s["texts_total"] for s in stats.values()),
        "texts_unique": sum(s["texts_unique"] for s in stats.values()),
        "texts_embedded": embedded_n,
        "cache_hits": sum(s["cache_hits"] for s in stats.values()),
        "texts_per_second": round(embedded_n / seconds, 2) if embedded_n and seconds > 0 else None,
        "dim": {field: s["dim"] for field, s in stats.items()},
        "fields": stats,
    }


def publish_artifacts(document: dict, out_dir: Path, scatter: bytes, coefficients: bytes) -> None:
    """The run's artifacts, under stable keys so the UI's Artifacts page keeps their history: metrics
    and top-coefficient tables, a markdown report with both figures, a link to the output folder."""
    rows = []
    for name in ("r2", "rmse", "mae"):
        for side in ("train", "test"):
            row = {"metric": f"{side}_{name}", "ridge": round(document[f"{side}_{name}"], 4)}
            for baseline, figures in document["baselines"].items():
                row[f"{baseline}_baseline"] = round(figures[f"{side}_{name}"], 4)
            rows.append(row)
    create_table_artifact(
        key="movie-ratings-metrics",
        table=rows,
        description=f"Ridge vs the baselines on the same {document['split_strategy']} split "
        f"({document['n_rows']} rows, {document['n_features']} features). Outputs: {out_dir}",
    )
    create_table_artifact(
        key="movie-ratings-top-coefficients",
        table=[{"rank": i + 1, **t} for i, t in enumerate(document["top_features"])],
        description="Ridge coefficients ranked by |coef|",
    )
    create_markdown_artifact(
        key="movie-ratings-report",
        markdown=report_markdown(document, scatter, coefficients, str(out_dir)),
        description="Metrics, the top features against the rating, and the top coefficients",
    )
    create_link_artifact(
        key="movie-ratings-outputs",
        link=out_dir.as_uri(),
        link_text=str(out_dir),
        description="The run's output folder (metrics.json, top_coefficients.csv, scatter.png, coefficients.png)",
    )


def embed_missing_texts(
    field: str, texts: list[str | None], source: dict, embedding: EmbeddingConfig, cache_dir: str, refresh: bool,
    distributed: bool, logger,
) -> dict:  # fmt: skip
    """Embed the texts of one field that the per-text store lacks, chunk by chunk: each chunk a task
    (in parallel on Dask workers when ``distributed``), its vectors written as soon as it finishes.
    Progress goes to the terminal (tqdm), the run log and a progress artifact."""
    store = EmbeddingStore(cache_dir, source["identity"])
    chunks = plan_chunks(texts, source["identity"], store, embedding.chunk_size, refresh)
    total = sum(len(c) for c in chunks)
    if not chunks:
        return {"texts": 0, "seconds": 0.0}
    logger.info("%ss: %d texts to embed in %d chunks of up to %d", field, total, len(chunks), embedding.chunk_size)
    artifact_id = create_progress_artifact(
        0.0, key=f"movie-ratings-embedding-{field}", description=f"Embedding {total} {field}s"
    )
    started, done = time.perf_counter(), 0
    if distributed:
        results = as_completed([embed_chunk_task.submit(chunk, source, embedding, cache_dir) for chunk in chunks])
        results = (future.result() for future in results)
    else:
        results = (embed_chunk_task(chunk, source, embedding, cache_dir) for chunk in chunks)
    with tqdm(total=total, desc=f"embedding {field}s", unit="text", leave=False) as bar:
        for result in results:
            done += result["texts"]
            bar.update(result["texts"])
            rate = done / max(time.perf_counter() - started, 1e-9)
            logger.info("%ss: embedded %d/%d (%.1f texts/s)", field, done, total, rate)
            update_progress_artifact(artifact_id, progress=100.0 * done / total)
    return {"texts": done, "seconds": time.perf_counter() - started}


def run_pipeline(config: RunConfig, out: str | None) -> dict:
    """The recipe, in the current flow run (whatever its task runner)."""
    data, embedding, cache, runner = config.data, config.embedding, config.cache, config.runner
    cache_dir = str(Path(cache.dir).expanduser())
    logger = get_run_logger()
    body_started = time.perf_counter()
    out_dir = Path(out or Path("outputs") / (flow_run.get_name() or "run"))
    preflight(config, out_dir)  # again here: runs from the UI or a deployment skip the CLI's check
    steps = Steps(cache_dir, cache.refresh, logger)

    if data.dir:
        data_dir = data.dir
    else:
        demo = data.demo
        data_dir = steps.run("demo_data", demo_data_task, demo.users, demo.movies, demo.ratings, demo.seed, cache_dir)["path"]
    loaded = steps.run("load", load_task, data_dir, data_fingerprint(data_dir), data.movies_limit, data.unknown_ids, cache_dir)
    source = model_source_task(embedding.model, embedding.normalize)
    embedded, chunks = {}, {}
    for field in embedding.fields:
        texts = movie_texts(loaded["movies"], field, data.missing_overview)
        chunks[field] = embed_missing_texts(
            field, texts, source, embedding, cache_dir, cache.refresh, runner.kind == "dask", logger
        )
        embedded[field] = steps.run(
            f"embed_{field}", embed_task, loaded["movies"], field, source, embedding, data.missing_overview, cache_dir
        )
    merged = steps.run("merge", merge_task, loaded, embedded, cache_dir)
    features = steps.run("features", features_task, loaded["users"], embedded, cache_dir)
    splits = steps.run("split", split_task, merged, config.split, config.model.validation_size, cache_dir)
    partitions = []
    solver = pick_solver(config.model.solver, splits["n_train"], features["n_features"])
    if not config.model.ids and solver == "factorized":  # the hybrid model works on the rows directly
        with_validation = bool(config.model.alphas)
        partitions = steps.map(
            "gram", gram_task,
            [(features, merged, splits, part, runner.partitions, with_validation, cache_dir)
             for part in range(runner.partitions)],
        )  # fmt: skip
    trained = steps.run(
        "train", train_task, features, merged, splits, partitions, config.split, config.model, cache_dir
    )
    plots = steps.run("plots", plots_task, features, merged, trained, config.plot, cache_dir)

    seconds = {**steps.seconds, "flow_body": round(time.perf_counter() - body_started, 3)}  # before the outputs
    cached = steps.cached
    embedding_stats = embedding_summary(embedded, chunks, cached_fields=[f for f in embedding.fields if f"embed_{f}" in cached])
    document = metrics_document(loaded, merged, features, trained, embedding_stats, config.model_dump(mode="json"), seconds)
    document["cached_tasks"] = cached
    logger.info("cached tasks: %s", ", ".join(cached) if cached else "none")
    scatter, coefficients = get_bytes(plots["scatter"]), get_bytes(plots["coefficients"])
    files = {
        "metrics.json": metrics_json(document),
        "top_coefficients.csv": top_coefficients_csv(trained["top"]),
        "scatter.png": scatter,
        "coefficients.png": coefficients,
    }
    if "alpha_curve" in plots:
        files["alpha_curve.png"] = get_bytes(plots["alpha_curve"])
    out_dir = write_run_outputs(out_dir, files)
    publish_artifacts(document, out_dir, scatter, coefficients)
    document["out_dir"] = str(out_dir)
    return document


def dask_flow(runner: RunnerConfig):
    """The pipeline as a subflow on prefect-dask's DaskTaskRunner: an existing scheduler
    (``runner.address``) or a local cluster of ``runner.workers`` processes."""
    from prefect.client.orchestration import get_client
    from prefect_dask import DaskTaskRunner

    # Workers report their task runs to this run's API. In ephemeral mode (no PREFECT_API_URL) that
    # is a temporary server only this process knows; without its address each worker would start one
    # of its own and the task runs would vanish from this run.
    with get_client(sync_client=True) as client:
        os.environ.setdefault("PREFECT_API_URL", str(client.api_url))
    if runner.address:
        task_runner = DaskTaskRunner(address=runner.address)
    else:
        task_runner = DaskTaskRunner(cluster_kwargs={"n_workers": runner.workers, "threads_per_worker": 1})
    return flow(name="movie-ratings-dask", task_runner=task_runner, result_serializer=PlainJSONSerializer())(run_pipeline)


# result_serializer: a failed run's exception, which Prefect persists under PREFECT_HOME/storage, is
# written as plain JSON data instead of Prefect's default pickle.
@flow(name="movie-ratings", result_serializer=PlainJSONSerializer())
def movie_ratings(
    data: DataConfig = DataConfig(),
    embedding: EmbeddingConfig = EmbeddingConfig(),
    split: SplitConfig = SplitConfig(),
    model: ModelConfig = ModelConfig(),
    plot: PlotConfig = PlotConfig(),
    cache: CacheConfig = CacheConfig(),
    runner: RunnerConfig = RunnerConfig(),
    out: str | None = None,
) -> dict:
    """Predict ratings from user features and sentence embeddings of movie titles and overviews.

    Writes metrics.json, top_coefficients.csv, scatter.png and coefficients.png to ``out``
    (default ``outputs/<flow run name>/``) and returns the metrics document. With runner.kind=dask
    the work runs in a subflow on a Dask cluster."""
    config = RunConfig(data=data, embedding=embedding, split=split, model=model, plot=plot, cache=cache, runner=runner)
    if runner.kind == "dask":
        return dask_flow(runner)(config, out)
    return run_pipeline(config, out)


def run_with_config(config: RunConfig, out: str | None = None, **options):
    """Call the flow with every section of ``config`` as its parameters (what the CLI does);
    ``options`` go to the call, e.g. ``return_state=True``."""
    sections = {name: getattr(config, name) for name in RunConfig.model_fields}
    return movie_ratings(**sections, out=out, **options)
