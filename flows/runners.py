"""Where the flow's tasks run: the default thread pool, or Dask (prefect-dask's DaskTaskRunner)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings

from configs.schema import RunnerConfig
from tasks.records import PlainJSONSerializer


def dask_flow(runner: RunnerConfig, body: Callable):
    """``body`` as a subflow on prefect-dask's DaskTaskRunner: an existing scheduler
    (``runner.address``) or a local cluster of ``runner.workers`` processes."""
    from prefect.client.orchestration import get_client
    from prefect_dask import DaskTaskRunner

    # Workers report their task runs to this run's API. In ephemeral mode (no PREFECT_API_URL) that
    # is a temporary server only this process knows; without its address each worker would start one
    # of its own and the task runs would vanish from this run. A local cluster's workers inherit the
    # environment; workers elsewhere get the settings prefect-dask sends with each task
    # (``serialize_context``), so the address goes into the settings context too.
    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)
    os.environ.setdefault("PREFECT_API_URL", api_url)
    if runner.address:
        task_runner = DaskTaskRunner(address=runner.address)
    else:
        task_runner = DaskTaskRunner(cluster_kwargs={"n_workers": runner.workers, "threads_per_worker": 1})
    subflow = flow(name="movie-ratings-dask", task_runner=task_runner, result_serializer=PlainJSONSerializer())(body)

    @functools.wraps(body)
    def call(*args, **kwargs):
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            return subflow(*args, **kwargs)

    return call

