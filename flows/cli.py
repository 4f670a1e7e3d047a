"""`movie-ratings` command line: `run` the flow, write `demo-data`.

Errors a user can fix (bad data, bad config, unreachable model) print one line on stderr and exit 2.
Prefect and torch are imported only by the commands that need them, so `--help` is instant.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from tasks.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Predict MovieLens ratings from user features and sentence embeddings of movie texts.",
)

EXIT_INPUT = 2


def fail(message: str) -> None:
    # "Stopping temporary server" is logged from an atexit hook (flows/temporary_server.py, or Prefect's);
    # after an error that line would follow the error line, so the "prefect" logger is quietened first.
    logging.getLogger("prefect").setLevel(logging.WARNING)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INPUT)


def _about_input_error(record: logging.LogRecord) -> bool:
    """The run's own ERROR line of an InputError, Prefect's records of it, and the run's final
    'Finished in state Failed(…)' line (the CLI prints the one ``error:`` line instead)."""
    from flows.failures import is_prefects_record_of_input_error

    if getattr(record, "input_error", False) or is_prefects_record_of_input_error(record):
        return True
    return "Finished in state Failed(" in record.getMessage()


class _ConsoleWithoutInputErrors(logging.Filter):
    """On the terminal, an InputError is the one ``error:`` line the CLI prints: Prefect's own records
    of it (task failed, flow failed, each with the message, some with a traceback) are dropped there.
    The API's log handler keeps them, so the UI shows the failure in the run's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _about_input_error(record)


def _quiet_input_error_tracebacks() -> None:
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("prefect")
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler or "Console" in type(handler).__name__:
                handler.addFilter(_ConsoleWithoutInputErrors())


def _print_summary(document: dict) -> None:
    from tasks.report import data_line, fm_text

    if document.get("kind") == "fm":
        model = f"fm, rank {document['rank']}, {document['iterations']} iterations, {fm_text(document)}"
    else:
        chosen = " (best of model.alphas on the validation part)" if "alpha_curve" in document else ""
        if document.get("alpha_at_grid_edge"):
            chosen = f" (the {document['alpha_at_grid_edge']} value of model.alphas: extend the grid)"
        kind = (f"ridge + {' and '.join(document['ids'])} bias terms (hybrid)" if document["solver"] == "hybrid"
                else f"ridge ({document['solver']} solver)")  # fmt: skip
        model = f"{kind}, alpha {document['alpha']:g}{chosen}"
    lines = [
        data_line(document),
        f"model: {model}",
        f"rows: {document['n_rows']} of {document['n_ratings']} ratings, {document['n_features']} features",
        f"{'':14}{'train':>10}{'test':>10}{'baseline test':>16}",
    ]
    for name in ("r2", "rmse", "mae"):
        baseline = document.get(f"baseline_test_{name}")
        lines.append(
            f"{name.upper():14}{document[f'train_{name}']:>10.4f}{document[f'test_{name}']:>10.4f}"
            + (f"{baseline:>16.4f}" if baseline is not None else "")
        )
    lines.append(
        "baselines (test RMSE): "
        + ", ".join(f"{name} {figures['test_rmse']:.4f}" for name, figures in document["baselines"].items())
    )
    lines.append("top coefficients: " + ", ".join(f"{t['name']}={t['coef']:+.3f}" for t in document["top_features"][:6]))
    emb = document["embedding"]
    lines.append(
        f"embedding: {emb['texts_embedded']} texts embedded, {emb['cache_hits']} from cache "
        f"({emb['texts_unique']} distinct of {emb['texts_total']})"
    )
    lines.append(f"outputs: {document['out_dir']}")
    typer.echo("\n".join(lines))


@contextmanager
def _importing() -> Iterator[None]:
    """Around a run's imports: no garbage collection meanwhile (~0.2 s of ~1.2 s), then what was
    imported is frozen, so the run's full collections do not scan it again (~0.1 s each)."""
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()


def _while_the_server_starts(cfg) -> None:
    """Work every run does that needs no API, done while Prefect's temporary server is still
    starting (~2.7 s, the critical path of a warm rerun): the flow and task engines' imports and the
    model's weights hash (~0.25 s together); on a first run with this cache (no converted model
    yet), the OpenVINO conversion and compilation (~0.8 s, ``prepare_first_run``) and the imports of
    the stages it will compute."""
    import importlib

    from tasks.encoder import prehash

    for module in ("prefect.flow_engine", "prefect.task_engine"):
        importlib.import_module(module)

    prehash(cfg.embedding.model)
    if cfg.runner.kind == "local":  # with Dask the workers load the model, not this process
        from tasks.embed import prepare_first_run

        if prepare_first_run(cfg.embedding, cfg.cache.location, logging.getLogger("prefect")):
            # a first run on this cache computes every stage: their imports too (~0.4 s)
            from tasks.plots import pyplot

            pyplot()
            for module in ("scipy.sparse", "scipy.linalg", "tasks.hybrid", "tasks.train"):
                importlib.import_module(module)


def _run_flow(call):
    """Call a flow from the command line: Prefect's process set up (``flows/prefect_setup.py``), a
    user-fixable failure turned into one line and exit 2."""
    from flows.prefect_setup import EPHEMERAL_TIMEOUT_MESSAGE, prepare_cli_run

    try:
        with prepare_cli_run():
            _quiet_input_error_tracebacks()
            return call()
    except InputError as exc:
        fail(str(exc))
    except RuntimeError as exc:
        if EPHEMERAL_TIMEOUT_MESSAGE not in str(exc):
            raise
        fail(
            "Prefect's temporary API server did not start within "
            f"{os.environ.get('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS')} s (a busy machine?); run again, "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or start `make server` and set PREFECT_API_URL"
        )


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML profile (configs/demo.yaml by default; 'seed', 'ml-1m').")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a key: dotted.key=value (YAML value). Repeatable.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default outputs/<run name>/).")] = None,
) -> None:
    """Run the movie-ratings flow and print its metrics."""
    from flows.prefect_setup import quiet_offline_defaults
    from flows.temporary_server import start_early

    with _importing():
        quiet_offline_defaults()  # before Prefect is imported: its settings are read once
        from configs.schema import load_config

        try:
            cfg = load_config(config, overrides or [])
            start_early()  # Prefect's temporary server starts while the rest is imported
            from tasks.preflight import preflight  # imports the loader (and Prefect): after the config is known good

            preflight(cfg, out)  # before Prefect starts: a bad path fails at once, not after the server's start-up
            start_early(new_database=True)  # a first run's server (its database's migrations) starts now
        except InputError as exc:
            fail(str(exc))
        from flows.rating_flow import run_with_config  # while the temporary server starts

        _while_the_server_starts(cfg)

    document = _run_flow(lambda: run_with_config(cfg, str(out) if out else None))
    _print_summary(document)


@app.command()
def compare(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML profile the variants start from.")] = None,
    grids: Annotated[
        list[str] | None,
        typer.Option("--grid", "-g", help="key=value1,value2,... (values as YAML; commas inside [...] stay). Repeatable."),
    ] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override for every variant.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default outputs/compare-<run>/).")] = None,
) -> None:
    """Run every combination of the grids and compare test RMSE/R² beside the baselines."""
    from flows.prefect_setup import quiet_offline_defaults
    from flows.temporary_server import start_early

    with _importing():
        quiet_offline_defaults()
        from configs.schema import DEFAULT_PROFILE, apply_overrides, read_profile

        try:
            source = str(config or DEFAULT_PROFILE)
            base = apply_overrides(read_profile(config or DEFAULT_PROFILE), overrides or [])
            start_early()
            from flows.compare import folder_names, grid_variants, variant_configs, variants_dir
            from tasks.outputs import check_out_dir
            from tasks.preflight import preflight

            variants = grid_variants(grids or [])
            configs = variant_configs(base, variants, source)
            if out:
                check_out_dir(out)
            for name, variant in zip(folder_names(variants), configs):
                preflight(variant, variants_dir(out) / name if out else None)
        except InputError as exc:
            fail(str(exc))

        from flows.compare import compare_flow, comparison_markdown

    typer.echo(f"{len(variants)} variants", err=True)
    result = _run_flow(lambda: compare_flow(configs, variants, str(out) if out else None))

    typer.echo(comparison_markdown(result["rows"]))
    typer.echo(f"outputs: {result['out_dir']} (compare.md, compare.png, compare.json)")
    typer.echo(f"each variant's outputs: {Path(result['rows'][0]['out_dir']).parent}/")
    for row in result["rows"]:
        typer.echo(f"  {Path(row['out_dir']).name}: {row['model']}, {row['split']} split")


def refuse_pool_deployments(names: list[str]) -> None:
    """InputError when one of movie-ratings/<name> exists on the API bound to a work pool."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client:
        for name in names:
            try:
                found = client.read_deployment_by_name(f"movie-ratings/{name}")
            except ObjectNotFound:
                continue
            if found.work_pool_name:
                raise InputError(
                    f"serve: movie-ratings/{name} is deployed for work pool '{found.work_pool_name}' on "
                    f"{PREFECT_API_URL.value() or 'this API'} (make deploy); serving it would take it over and break "
                    f"the worker's runs. Run it with `make worker`, or serve beside it: movie-ratings serve --name-suffix=-served"
                )


@app.command()
def serve(
    names: Annotated[
        list[str] | None, typer.Argument(help="Deployments of prefect.yaml to serve (default: all of them).")
    ] = None,
    name_suffix: Annotated[
        str, typer.Option(help="Serve under other names (e.g. '-served': movie-ratings/demo-served), beside `make deploy`'s.")
    ] = "",
) -> None:
    """Serve the deployments of prefect.yaml from this process (flow.serve): same schedules and
    parameters as `make deploy` + `make worker`, no work pool needed. Stop with Ctrl-C.

    A deployment of the same name that a work pool runs (`make deploy`) is never taken over: serve
    stops with one line instead (serving it would drop its pull step and break the worker's runs);
    --name-suffix serves beside it."""
    from prefect import serve as prefect_serve

    from flows.project import deployment, read_project
    from flows.rating_flow import movie_ratings

    try:
        if name_suffix and not all(c.isalnum() or c in "._-" for c in name_suffix):
            raise InputError(f"--name-suffix {name_suffix!r}: use letters, digits, '.', '_' or '-'")
        names = names or [d.name for d in read_project()[0].deployments]
        specs = [deployment(name) for name in names]
        refuse_pool_deployments([spec.name + name_suffix for spec, _ in specs])
    except InputError as exc:
        fail(str(exc))
    prefect_serve(
        *[
            movie_ratings.to_deployment(
                name=spec.name + name_suffix, parameters=spec.parameters, schedules=schedules, description=spec.description,
                tags=spec.tags,
            )  # fmt: skip
            for spec, schedules in specs
        ]
    )


@app.command()
def worker(
    pool: Annotated[str, typer.Option(help="Work pool to run flows from.")] = "movie-ratings",
    grace: Annotated[float, typer.Option(min=0, help="Seconds to wait after Ctrl-C before the worker is killed.")] = 10.0,
) -> None:
    """A Prefect process worker for the pool (`make worker`) that stops on Ctrl-C.

    Prefect's own worker (`prefect worker start`) re-raises the first SIGINT into its event loop and
    was measured still running 20 s later, so a plain Ctrl-C did not stop `make worker`. Here the
    worker runs as a child in its own process group: Ctrl-C or SIGTERM sends it SIGINT (it stops
    taking new runs), and after ``grace`` seconds the group is killed."""
    import signal
    import subprocess
    import time

    command = [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", pool, "--type", "process"]
    child = subprocess.Popen(command, start_new_session=True)
    stopping: list[float] = []

    def stop(signum, frame) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            typer.echo(f"stopping the worker (up to {grace:g} s)...", err=True)
            os.killpg(child.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while child.poll() is None:
        if stopping and time.monotonic() - stopping[0] > grace:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            typer.echo(f"worker killed after {grace:g} s", err=True)
            break
        time.sleep(0.2)
    if stopping:
        raise typer.Exit(0)
    raise typer.Exit(child.returncode or 0)


@app.command("demo-data")
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Folder to write the data set into.")],
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 600,
    movies: Annotated[int, typer.Option(min=1, help="Number of movies.")] = 400,
    ratings: Annotated[int, typer.Option(min=1, help="Number of ratings (distinct user/movie pairs).")] = 40_000,
    seed: Annotated[int, typer.Option(min=0, help="Generator seed: same seed, same files.")] = 0,
    layout: Annotated[
        str,
        typer.Option(help="'csv' (ratings/users/movies.csv) or a MovieLens release's files, as GroupLens ships them: "
                          "'ml-100k', 'ml-1m', 'ml-10m', 'ml-latest' (= 'ml-20m', 'ml-25m', 'ml-32m', 'ml-latest-small')."),
    ] = "csv",
    ratings_format: Annotated[
        str, typer.Option(help="CSV layout: 'csv', 'parquet', or 'auto' (Parquet above 2M ratings).")
    ] = "auto",
    text_length: Annotated[
        str, typer.Option(help="'realistic' (60-120-word overviews, the default) or 'short' (one sentence per genre).")
    ] = "realistic",
    overviews: Annotated[
        str,
        typer.Option(help="'auto' (csv: in movies.csv; ml-1m: overviews.csv; others: none), 'none', or overviews.csv "
                          "keyed by 'movie_id', 'tmdb' or 'imdb' (the last two: ml-latest layouts, with links.csv)."),
    ] = "auto",
) -> None:
    """Write a deterministic synthetic data set (no MovieLens data is redistributed)."""
    from tasks.demo_data import write_demo_data
    from tasks.demo_layouts import DEMO_FILES, chosen_layout

    try:
        chosen_layout(layout, ratings_format, overviews)
    except ValueError as exc:
        fail(f"demo-data: {exc}")
    if text_length not in ("realistic", "short"):
        fail(f"--text-length {text_length!r}: use 'realistic' or 'short'")
    if directory.exists() and not directory.is_dir():
        fail(f"demo-data {directory}: exists and is not a folder")
    # Every layout's files, not only this one's: a folder holding another release's files is someone's data.
    existing = [n for n in DEMO_FILES if (directory / n).exists()]
    if existing:  # never overwrite a user's data files
        fail(f"demo-data {directory}: {', '.join(existing)} already there; choose a new or empty folder")
    try:
        written = write_demo_data(
            directory, users=users, movies=movies, ratings=ratings, seed=seed, layout=layout, ratings_format=ratings_format,
            text_length=text_length, overviews=overviews,
        )
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"wrote {', '.join(sorted(written))} to {directory}")


def main() -> None:
    from tasks.process_memory import keep_freed_memory

    keep_freed_memory()  # before numpy is imported (tasks/process_memory.py)
    try:
        app()
    except InputError as exc:  # raised outside a command's own handling
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    finally:
        # Python's last garbage collections at exit walk every object of the imported libraries
        # (~1 s after a run); frozen objects are skipped. atexit hooks still run.
        gc.freeze()


if __name__ == "__main__":
    main()
