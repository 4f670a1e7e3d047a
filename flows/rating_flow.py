"""The `movie-ratings` flow, read top to bottom as the recipe:

    load → embed(title), embed(overview) → features, built while merge → split run → row-stats ×N → train → plots → outputs

Each step is a stage from ``tasks/`` (``tasks/stage.py``: cached on its typed inputs' hashes, results
validated when read back); what travels between them are small typed results of store references.
Progress, artifacts and the Dask runner live in their own modules beside this one.
"""

from __future__ import annotations

import time
from pathlib import Path

from typing import Any

from prefect import flow, get_run_logger
from pydantic import Field
from prefect.runtime import flow_run

from configs.schema import (
    CacheConfig,
    DataConfig,
    EmbeddingConfig,
    FeaturesConfig,
    ModelConfig,
    PlotConfig,
    RunConfig,
    RunnerConfig,
    SplitConfig,
)
from flows.artifacts import publish_artifacts
from flows.failures import failed_on_input
from flows.embedding import embedding_summary, movie_vectors
from flows.runners import dask_flow
from tasks.demo_data import demo_folder
from tasks.embed import fields_to_embed, model_source
from tasks.errors import InputError
from tasks.features import feature_blocks
from tasks.load import data_fingerprint, loaded_data
from tasks.merge import merged_rows
from tasks.outputs import metrics_document, run_output_files, write_run_outputs
from tasks.plots import figures
from tasks.preflight import preflight
from tasks.process_memory import keep_freed_memory
from tasks.records import PlainJSONSerializer
from tasks.ridge import partition_row_stats
from tasks.splits import split_of
from tasks.stage import StageRun
from tasks.train import fitted_model, pick_solver, reported


def run_pipeline(config: RunConfig, out: str | None) -> dict:
    """The recipe, in the current flow run (whatever its task runner); returns metrics.json's document."""
    data, embedding, model = config.data, config.embedding, config.model
    cache_dir = config.cache.location
    out_dir = Path(out or Path("outputs") / (flow_run.get_name() or "run"))
    preflight(config, out_dir)  # again here: runs from the UI or a deployment skip the CLI's check
    keep_freed_memory()  # large arrays reuse freed memory (tasks/process_memory.py)
    started = time.perf_counter()
    with StageRun(cache_dir, config.cache.refresh, get_run_logger()) as run:
        data_dir = data.dir or demo_folder(**data.demo.model_dump(), cache_dir=cache_dir, label="demo_data").path
        scale = list(data.scale) if data.scale else None
        loaded = loaded_data(
            data_dir=data_dir, input_hashes=data_fingerprint(data_dir), movies_limit=data.movies_limit or None,
            unknown_ids=data.unknown_ids, cache_dir=cache_dir, rating_scale=scale,
        )  # fmt: skip
        fields, warnings = fields_to_embed(embedding.fields, loaded.texts, loaded.release)
        for warning in warnings:
            run.logger.warning(warning)
        if not loaded.user_features:
            run.logger.info("the %s data has no user table: the user block is empty", loaded.release)
        source = model_source(embedding.model, embedding.normalize, embedding.backend, embedding.device)
        vectors, embedding_stats = {}, {}
        for field in fields:
            vectors[field], embedding_stats[field] = movie_vectors(
                loaded, field, source, embedding, data.missing_overview, distributed=config.runner.kind == "dask"
            )
        # The movie block needs neither the rows nor the split: it is built while they are.
        features_done = feature_blocks.submit(loaded=loaded, vectors=vectors, genres=config.features.genres, cache_dir=cache_dir)
        rows = merged_rows(loaded=loaded, vectors=vectors, cache_dir=cache_dir)
        split = split_of(rows=rows, split=config.split, validation_size=model.validation_size, cache_dir=cache_dir)
        features = features_done()
        if model.kind == "fm" or model.ids:
            solver = model.kind if model.kind == "fm" else "hybrid"
        else:
            solver = pick_solver(model.solver, split.n_train, features.n_features)
        partitions = []
        if solver == "factorized":  # the fm, the hybrid and the dense reference work on the rows directly
            n_parts = config.runner.partitions
            partitions = partition_row_stats.map(
                [dict(features=features, rows=rows, split=split, part=part, n_parts=n_parts,
                      with_validation=bool(model.alphas), cache_dir=cache_dir) for part in range(n_parts)]  # fmt: skip
            )
        # top_k only cuts the rankings (below): a fixed value in the key, so changing it never refits
        fit_settings = model.model_copy(update={"top_k": ModelConfig.model_fields["top_k"].default})
        trained = fitted_model(
            features=features, rows=rows, split=split, partitions=partitions, model=fit_settings, solver=solver,
            cache_dir=cache_dir, rating_scale=loaded.rating_scale,
        )  # fmt: skip
        # the figures use the top_k features only: cut first, so Prefect does not walk every
        # feature's ranking entry in the task's inputs
        trained = reported(trained, model.top_k)
        plotted = figures(
            features=features, rows=rows, trained=trained, plot=config.plot, top_k=model.top_k, cache_dir=cache_dir,
            rating_scale=loaded.rating_scale,
        )  # fmt: skip
    seconds = {**run.seconds, "flow_body": round(time.perf_counter() - started, 3)}  # before the outputs
    run.logger.info("cached tasks: %s", ", ".join(run.cached) if run.cached else "none")
    document = metrics_document(
        loaded, rows, features, trained, embedding_summary(embedding_stats, source.backend), config.model_dump(mode="json"), seconds,
        run.cached,
    )  # fmt: skip
    files = run_output_files(document, trained, plotted)
    out_dir = write_run_outputs(out_dir, files)
    publish_artifacts(document, out_dir, plotted, sorted(files))
    document["out_dir"] = str(out_dir)
    return document


# result_serializer: a failed run's exception, which Prefect persists under PREFECT_HOME/storage, is
# written as plain JSON data instead of Prefect's default pickle.
def section(default: Any, title: str, description: str) -> Any:
    """A flow parameter's default with the title and description the UI's run form shows (Prefect
    titles a parameter by its name, ``json_schema_extra`` overrides it; the schema is checked in
    tests/e2e)."""
    return Field(default, description=description, json_schema_extra={"title": title})


@flow(name="movie-ratings", result_serializer=PlainJSONSerializer())
def movie_ratings(
    data: DataConfig = section(DataConfig(), "Data", "Where the ratings come from (empty folder: generated demo data)."),
    embedding: EmbeddingConfig = section(EmbeddingConfig(), "Embedding", "The sentence-transformers model and how texts are embedded."),
    features: FeaturesConfig = section(FeaturesConfig(), "Features", "Extra feature blocks."),
    split: SplitConfig = section(SplitConfig(), "Split", "How ratings are held out for testing."),
    model: ModelConfig = section(ModelConfig(), "Model", "Ridge, hybrid or factorization machine, and their settings."),
    plot: PlotConfig = section(PlotConfig(), "Plot", "The scatter of the top features."),
    cache: CacheConfig = section(CacheConfig(), "Cache (advanced)", "Where results and embeddings are kept."),
    runner: RunnerConfig = section(RunnerConfig(), "Runner (advanced)", "Threads in the flow's process, or a Dask cluster."),
    out: str = section("", "Output folder (advanced)", "Where the run writes metrics.json and figures; empty: outputs/<flow run name>/ in the worker's checkout."),
) -> dict:
    """Predict ratings from user features and sentence embeddings of movie titles and overviews.

    Writes metrics.json, top_coefficients.csv, scatter.png and coefficients.png to ``out``
    (default ``outputs/<flow run name>/``) and returns the metrics document. With runner.kind=dask
    the work runs in a subflow on a Dask cluster."""
    config = RunConfig(
        data=data, embedding=embedding, features=features, split=split, model=model, plot=plot, cache=cache, runner=runner
    )
    try:
        if runner.kind == "dask":
            return dask_flow(runner, run_pipeline)(config, out)
        return run_pipeline(config, out)
    except InputError as exc:  # one ERROR line, and the run's state message (flows/failures.py)
        return failed_on_input(exc, get_run_logger())


def run_with_config(config: RunConfig, out: str | None = None, **options):
    """Call the flow with every section of ``config`` as its parameters (what the CLI does);
    ``options`` go to the call, e.g. ``return_state=True``."""
    sections = {name: getattr(config, name) for name in RunConfig.model_fields}
    return movie_ratings(**sections, out=out or "", **options)
