"""How the flow calls its tasks: cached on input hashes, timed, and checked.

A cached result is only trusted if every store file it points to is still intact; otherwise the
task is rerun with ``refresh_cache``. Results are small JSON dicts, so they travel to Dask workers
and back cheaply.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tasks.caching import INPUT_HASHES
from pydantic import TypeAdapter, ValidationError

from tasks.records import record_storage
from tasks.results import RESULT_MODELS
from tasks.store import broken_refs


def wrong_shape(task_name: str, result: Any) -> list[str]:
    """Why a task result is not of its stage's shape (``tasks/results.py``); empty when it is."""
    model = RESULT_MODELS.get(task_name)
    if model is None:
        return []
    try:
        TypeAdapter(model).validate_python(result)
    except ValidationError as exc:
        first = exc.errors()[0]
        return [f"not a {task_name} result: {'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}"]
    return []


class Steps:
    """Runs tasks for one flow run and records each one's seconds and whether it was cached."""

    def __init__(self, cache_dir: str, refresh: bool, logger: logging.Logger | logging.LoggerAdapter):
        self.options = {
            # Result records (metadata + JSON value in one file) keyed by cache key. No separate
            # key_storage: then Prefect's exists() reads only the metadata, and a damaged value file
            # crashes the read instead of counting as a cache miss.
            "result_storage": record_storage(str(Path(cache_dir) / "prefect-results")),
            "cache_policy": INPUT_HASHES,
            "refresh_cache": refresh,
        }
        self.logger = logger
        self.seconds: dict[str, float] = {}
        self.cached: list[str] = []

    def _checked(self, name: str, task, args: tuple, state) -> tuple[Any, bool]:
        result = state.result()  # raises the task's exception (e.g. InputError) when it failed
        if state.name != "Cached":
            return result, False
        broken = wrong_shape(task.name, result) or broken_refs(result)
        if not broken:
            return result, True
        self.logger.warning("%s: cached result unusable (%s); recomputing", name, "; ".join(broken[:3]))
        return task.with_options(**{**self.options, "refresh_cache": True})(*args), False

    def run(self, name: str, task, *args):
        """Call one task (in the flow's thread) and return its result."""
        started = time.perf_counter()
        state = task.with_options(**self.options)(*args, return_state=True)
        result, was_cached = self._checked(name, task, args, state)
        if was_cached:
            self.cached.append(name)
        self.seconds[name] = round(time.perf_counter() - started, 3)
        return result

    def map(self, name: str, task, arg_lists: list[tuple]) -> list:
        """Submit one task run per argument tuple to the flow's task runner (threads or Dask) and
        return their results in order; ``name`` counts as cached when all of them were."""
        started = time.perf_counter()
        configured = task.with_options(**self.options)
        futures = [configured.submit(*args) for args in arg_lists]
        results, all_cached = [], True
        for args, future in zip(arg_lists, futures):
            future.wait()
            result, was_cached = self._checked(name, task, args, future.state)
            results.append(result)
            all_cached &= was_cached
        if all_cached and arg_lists:
            self.cached.append(name)
        self.seconds[name] = round(time.perf_counter() - started, 3)
        return results
