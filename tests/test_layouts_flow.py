"""The flow end to end on every release layout, each a tiny data set the generator writes in that
release's own files (GroupLens's are not redistributable), against the session's Prefect server."""

from __future__ import annotations

import json
import math

import pytest

from tasks.report import data_line
from tests.flowrun import run_flow

TINY = {"users": 40, "movies": 30, "ratings": 1_200, "seed": 5}
# layout → (release, rating scale, user features, embedded fields with the default [title, overview])
EXPECTED = {
    "csv": ("notebook CSV", [1.0, 5.0], ["gender", "age", "occupation"], ["title", "overview"]),
    "ml-100k": ("MovieLens 100K", [1.0, 5.0], ["gender", "age", "occupation"], ["title"]),
    "ml-1m": ("MovieLens 1M", [1.0, 5.0], ["gender", "age", "occupation"], ["title", "overview"]),
    "ml-10m": ("MovieLens 10M", [0.5, 5.0], [], ["title", "tags"]),
    "ml-latest": ("MovieLens 20M/25M/32M/latest", [0.5, 5.0], [], ["title", "tags"]),
}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    from tasks.demo_data import write_demo_data

    root = tmp_path_factory.mktemp("layouts")
    for layout in EXPECTED:
        write_demo_data(root / layout, layout=layout, **TINY)
    return root


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_flow_runs_on_each_release_layout(prefect_server, tmp_path, layouts, layout):
    release, scale, user_features, fields = EXPECTED[layout]
    doc = run_flow(tmp_path, layouts / layout, cache_dir=layouts / "cache")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["layout"] == doc["layout"] == layout
    data = metrics["data"]
    assert (data["release"], data["rating_scale"], data["user_features"]) == (release, scale, user_features)
    assert data["embedded_fields"] == fields == list(metrics["embedding"]["fields"])
    names = [t["name"] for t in metrics["top_correlation"]]
    movie_feature = tuple(f"{f}_embedding_" for f in fields) + ("genre_",)
    if not user_features:  # the user block is empty: every feature is a movie feature
        assert all(n.startswith(movie_feature) for n in names)
    assert metrics["n_features"] > len(user_features)
    for side in ("train", "test"):
        assert math.isfinite(metrics[f"{side}_rmse"])
    # the model (the hybrid of the demo profile) beats the global mean on every layout
    assert metrics["test_rmse"] < metrics["baselines"]["global_mean"]["test_rmse"]
    assert (tmp_path / "out" / "scatter.png").stat().st_size > 10_000
    # the report and the CLI summary say which data it was, and that there were no user features
    line = data_line(metrics)
    assert line.startswith(f"data: {layout} layout ({release}), ratings {scale[0]:g}-{scale[1]:g}")
    assert ("the release has no user table" in line) == (not user_features)


def test_half_star_release_with_the_fm_and_no_user_table(prefect_server, tmp_path, layouts):
    """The FM on a release without users: user factors from ids alone; predictions clipped to 0.5-5."""
    run_flow(tmp_path, layouts / "ml-latest", cache_dir=layouts / "cache",
             extra=["model.kind=fm", "model.iterations=30", "model.rank=4"])  # fmt: skip
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["kind"] == "fm" and metrics["data"]["user_features"] == []
    assert metrics["test_rmse"] < metrics["baselines"]["global_mean"]["test_rmse"]
