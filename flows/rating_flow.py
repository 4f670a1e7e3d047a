"""The `movie-ratings` flow: load → embed(title, overview) → merge → features → train → plots → outputs.

Composition only: each step is a task from ``tasks/``; what travels between them are small dicts of
store references (path + sha256), so every task's cache key is a hash of its inputs' content.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from configs.schema import CacheConfig, DataConfig, EmbeddingConfig, ModelConfig, PlotConfig, RunConfig, SplitConfig
from tasks.caching import INPUT_HASHES
from tasks.demo_data import demo_data_task
from tasks.embed import embed_task, model_source_task
from tasks.features import features_task
from tasks.load import data_fingerprint, load_task
from tasks.merge import merge_task
from tasks.outputs import metrics_document, metrics_json, top_coefficients_csv, write_run_outputs
from tasks.plots import plots_task
from tasks.report import report_markdown
from tasks.store import broken_refs, get_bytes
from tasks.train import train_task

TEXT_FIELDS = ("title", "overview")


def embedding_summary(embedded: dict[str, dict], cached_fields: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """metrics.json's ``embedding`` block: totals over the fields, and each field's own figures.

    A field whose task result came from Prefect's cache embedded nothing in this run."""
    stats = {}
    for field, e in embedded.items():
        s = dict(e["stats"])
        if field in cached_fields:
            s.update(texts_embedded=0, cache_hits=s["texts_unique"], texts_per_second=None, seconds=0.0)
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
            rows.append(
                {
                    "metric": f"{side}_{name}",
                    "ridge": round(document[f"{side}_{name}"], 4),
                    "global_mean_baseline": round(document[f"baseline_{side}_{name}"], 4)
                    if f"baseline_{side}_{name}" in document
                    else None,
                }
            )
    create_table_artifact(
        key="movie-ratings-metrics",
        table=rows,
        description=f"Ridge vs the global-mean baseline ({document['n_rows']} rows, {document['n_features']} "
        f"features). Outputs: {out_dir}",
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


@flow(name="movie-ratings")
def movie_ratings(
    data: DataConfig = DataConfig(),
    embedding: EmbeddingConfig = EmbeddingConfig(),
    split: SplitConfig = SplitConfig(),
    model: ModelConfig = ModelConfig(),
    plot: PlotConfig = PlotConfig(),
    cache: CacheConfig = CacheConfig(),
    out: str | None = None,
) -> dict:
    """Predict ratings from user features and sentence embeddings of movie titles and overviews.

    Writes metrics.json, top_coefficients.csv, scatter.png and coefficients.png to ``out``
    (default ``outputs/<flow run name>/``) and returns the metrics document."""
    config = RunConfig(data=data, embedding=embedding, split=split, model=model, plot=plot, cache=cache)
    cache_dir = str(Path(cache.dir).expanduser())
    options = {
        # Result records (metadata + JSON value in one file) keyed by cache key. No separate
        # key_storage: then Prefect's exists() reads only the metadata, and a damaged value file
        # crashes the read instead of counting as a cache miss.
        "result_storage": Path(cache_dir) / "prefect-results",
        "cache_policy": INPUT_HASHES,
        "refresh_cache": cache.refresh,
    }
    logger = get_run_logger()
    body_started = time.perf_counter()
    seconds: dict[str, float] = {}
    cached: list[str] = []

    def step(name: str, task, *args):
        started = time.perf_counter()
        state = task.with_options(**options)(*args, return_state=True)
        result = state.result()  # raises the task's exception (e.g. InputError) when it failed
        if state.name == "Cached":
            broken = broken_refs(result)
            if broken:  # the store lost or damaged a file the cached result points to: recompute
                logger.warning("%s: cached result unusable (%s); recomputing", name, "; ".join(broken[:3]))
                state = task.with_options(**{**options, "refresh_cache": True})(*args, return_state=True)
                result = state.result()
            else:
                cached.append(name)
        seconds[name] = round(time.perf_counter() - started, 3)
        return result

    if data.dir:
        data_dir = data.dir
    else:
        demo = data.demo
        data_dir = step("demo_data", demo_data_task, demo.users, demo.movies, demo.ratings, demo.seed, cache_dir)["path"]
    loaded = step("load", load_task, data_dir, data_fingerprint(data_dir), data.movies_limit, data.unknown_ids, cache_dir)
    source = model_source_task(embedding.model, embedding.normalize)
    embedded = {
        field: step(
            f"embed_{field}", embed_task, loaded["movies"], field, source, embedding, data.missing_overview, cache_dir,
            cache.refresh,
        )  # fmt: skip
        for field in TEXT_FIELDS
    }
    merged = step("merge", merge_task, loaded, embedded, cache_dir)
    features = step("features", features_task, loaded["users"], embedded, cache_dir)
    trained = step("train", train_task, features, merged, split, model, cache_dir)
    plots = step("plots", plots_task, features, merged, trained, plot, cache_dir)

    seconds["flow_body"] = round(time.perf_counter() - body_started, 3)  # every task, before the outputs
    out_dir = Path(out or Path("outputs") / (flow_run.get_name() or "run"))
    embedding_stats = embedding_summary(
        embedded, cached_fields=[f for f in TEXT_FIELDS if f"embed_{f}" in cached]
    )
    document = metrics_document(
        loaded, merged, features, trained, embedding_stats, config.model_dump(mode="json"), seconds
    )
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
