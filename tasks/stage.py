"""The stage boundary: one adapter between a plain function and a cached, checked Prefect task.

A stage is a function over small typed inputs (configs, ``StoredRef``s, result models of earlier
stages) that returns a result model (``tasks/results.py``): references to Parquet/.npy files in the
content-addressed store, plus figures. ``@stage`` turns it into a Prefect task and is the only place
that knows how results are cached:

- the cache key is a hash of the typed inputs, the task name and the package's code (``InputHashes``);
- results persist as plain JSON records under ``<cache.dir>/prefect-results`` through ``RecordStorage``,
  which refuses any record it did not write (a planted pickle is a miss, never code);
- a result read back from the cache is validated against the stage's result model and every store
  file it references is checked against its sha256; if either fails the stage runs again
  (``refresh_cache``) with a warning;
- each call is timed and counted as cached or not in the current ``StageRun`` (metrics.json's
  ``seconds`` and ``cached_tasks``), and its task run gets a readable name (``embed-title``,
  ``row-stats 1/4``).

Call a stage with keyword arguments inside ``with StageRun(...)``, in a flow. The wrapped function
stays a plain function (``.fn``) for tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect import task
from pydantic import TypeAdapter, ValidationError

from tasks import locations
from tasks.caching import INPUT_HASHES
from tasks.records import PlainJSONSerializer, record_storage
from tasks.store import Store, broken_refs

R = TypeVar("R")

_CURRENT: ContextVar[StageRun | None] = ContextVar("movie_ratings_stage_run", default=None)


@dataclass
class StageRun:
    """The stages of one flow run: where their results are cached, whether to recompute them, and
    what each took (seconds) and whether it came from the cache."""

    cache_dir: str
    refresh: bool
    logger: logging.Logger | logging.LoggerAdapter
    seconds: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)

    def __enter__(self) -> StageRun:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)

    def record(self, label: str, started: float, cached: bool, ended: float | None = None) -> None:
        self.seconds[label] = round((ended or time.perf_counter()) - started, 3)
        if cached:
            self.cached.append(label)

    def options(self, refresh: bool | None = None) -> dict[str, Any]:
        return {
            # Result records (metadata + JSON value in one file) keyed by cache key. No separate
            # key_storage: then Prefect's exists() reads only the metadata, and a damaged value file
            # would crash the read instead of counting as a cache miss.
            "result_storage": record_storage(locations.join(locations.normalized(self.cache_dir), "prefect-results")),
            "refresh_cache": self.refresh if refresh is None else refresh,
        }


def current_run() -> StageRun:
    run = _CURRENT.get()
    if run is None:
        raise RuntimeError("a stage was called outside `with StageRun(...)`")
    return run


class Stage(Generic[R]):
    """A plain function as a cached, checked Prefect task (see the module docstring)."""

    def __init__(self, fn: Callable[..., R], name: str, result: Any, run_name: str | Callable[[], str] | None):
        self.fn = fn
        self.name = name
        self.result = TypeAdapter(result)
        self.task = task(
            fn,
            name=name,
            task_run_name=run_name or name,
            cache_policy=INPUT_HASHES,
            persist_result=True,
            result_serializer=PlainJSONSerializer(),
        )
        self.__doc__ = fn.__doc__

    def unusable(self, value: Any) -> list[str]:
        """Why a cached value cannot be used: not of the result's shape, or store files missing or
        altered. Empty when it can."""
        try:
            self.result.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            return [f"not a {self.name} result: {'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}"]
        return broken_refs(value, Store(current_run().cache_dir))

    def _checked(self, run: StageRun, state: Any, inputs: dict[str, Any], label: str | None = None) -> tuple[R, bool]:
        """The task's value, validated; (value, from the cache). A usable cached value is logged
        with its summary under ``label`` (None: not logged); an unusable one is recomputed."""
        value = state.result()  # raises the task's exception (e.g. InputError) when it failed
        if state.name != "Cached":
            return self.result.validate_python(value), False
        problems = self.unusable(value)
        if not problems:
            checked = self.result.validate_python(value)
            if label and hasattr(checked, "summary"):  # the story a fresh run's logs would tell
                run.logger.info("%s: from the cache: %s", label, checked.summary())
            return checked, True
        run.logger.warning("%s: cached result unusable (%s); recomputing", self.name, "; ".join(problems[:3]))
        value = self.task.with_options(**run.options(refresh=True))(**inputs)
        return self.result.validate_python(value), False

    def __call__(self, *, label: str | None = None, **inputs: Any) -> R:
        """Run the stage in the flow's thread; ``label`` names it in ``seconds``/``cached_tasks``."""
        run = current_run()
        started = time.perf_counter()
        state = self.task.with_options(**run.options())(**inputs, return_state=True)
        value, cached = self._checked(run, state, inputs, label or self.name)
        run.record(label or self.name, started, cached)
        return value

    def submit(self, *, label: str | None = None, **inputs: Any) -> Callable[[], R]:
        """Start the stage on the flow's task runner (a thread, or a Dask worker) and go on; the
        returned function waits for it and gives its checked result. Its seconds run from the submit
        to the task's end, not to the wait."""
        run = current_run()
        started, ended = time.perf_counter(), []
        future = self.task.with_options(**run.options()).submit(**inputs)
        future.add_done_callback(lambda _: ended.append(time.perf_counter()))

        def result() -> R:
            future.wait()
            value, cached = self._checked(run, future.state, inputs, label or self.name)
            run.record(label or self.name, started, cached, ended[0] if ended else None)
            return value

        return result

    def map(self, calls: list[dict[str, Any]], *, label: str | None = None) -> list[R]:
        """One task run per inputs dict, submitted to the flow's task runner (threads or Dask); the
        results in order. Counts as cached when all of them were."""
        run = current_run()
        started = time.perf_counter()
        configured = self.task.with_options(**run.options())
        futures = [configured.submit(**inputs) for inputs in calls]
        results, all_cached = [], bool(calls)
        for inputs, future in zip(calls, futures):
            future.wait()
            value, cached = self._checked(run, future.state, inputs)
            results.append(value)
            all_cached &= cached
        if all_cached:
            run.logger.info("%s: from the cache: all %d task runs", label or self.name, len(calls))
        run.record(label or self.name, started, all_cached)
        return results


def stage(name: str, *, result: Any, run_name: str | Callable[[], str] | None = None) -> Callable[[Callable[..., R]], Stage[R]]:
    """Decorator: ``@stage("load", result=LoadedData)`` over a plain function (see ``Stage``)."""

    def wrap(fn: Callable[..., R]) -> Stage[R]:
        return Stage(fn, name, result, run_name)

    return wrap
