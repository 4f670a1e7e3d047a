"""runner.kind=dask: embedding chunks and Gram partitions run on a Dask LocalCluster (prefect-dask),
with the same model as the default runner."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, TaskRunFilter, TaskRunFilterFlowRunId
from prefect.utilities.asyncutils import run_coro_as_sync

from tests.flowrun import run_flow

# the plain Ridge (no id terms): its per-partition sums are the map-reduce that runs on Dask
COMMON = ["model.ids=[]", "model.solver=factorized", "embedding.chunk_size=16", "runner.partitions=3"]


def test_local_cluster_gives_the_same_model_as_the_default_runner(prefect_server, tmp_path, small_csv):
    local = run_flow(tmp_path, small_csv, "local", extra=COMMON, cache_dir=tmp_path / "c1")
    dask = run_flow(tmp_path, small_csv, "dask", extra=[*COMMON, "runner.kind=dask", "runner.workers=2"],
                    cache_dir=tmp_path / "c2")  # fmt: skip
    assert dask["embedding"]["texts_embedded"] == local["embedding"]["texts_embedded"] > 16
    a = pd.read_csv(tmp_path / "local" / "top_coefficients.csv")
    b = pd.read_csv(tmp_path / "dask" / "top_coefficients.csv")
    assert a["name"].tolist() == b["name"].tolist()
    np.testing.assert_allclose(a["coef"], b["coef"], rtol=1e-4)  # vectors from other processes: last-bit differences
    assert dask["test_rmse"] == pytest.approx(local["test_rmse"], rel=1e-5)
    assert json.loads((tmp_path / "dask" / "metrics.json").read_text())["config"]["runner"]["kind"] == "dask"

    async def task_names_of_latest_dask_run():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["movie-ratings-dask"])), sort="START_TIME_DESC", limit=1
            )
            tasks = await client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[runs[0].id]))
            )
            return [t.name for t in tasks], runs[0].state.type.value

    names, state = run_coro_as_sync(task_names_of_latest_dask_run())
    assert state == "COMPLETED"
    # task runs are named for what they do (the UI shows these names)
    assert sorted(n for n in names if n.startswith("row-stats")) == ["row-stats 1/3", "row-stats 2/3", "row-stats 3/3"]
    assert {"load", "embed-title", "embed-overview", "merge", "features", "split", "train", "plots"} <= set(names)
    for field, figures in dask["embedding"]["fields"].items():
        n_chunks = math.ceil(figures["texts_embedded"] / 16)
        expected = sorted(f"embed-{field} {i}/{n_chunks}" for i in range(1, n_chunks + 1))
        assert sorted(n for n in names if n.startswith(f"embed-{field} ")) == expected  # each chunk a task on Dask
