"""The flow end to end, on real Prefect (the test harness) and the real bundled model."""

from __future__ import annotations

import json

import pytest

from tasks.errors import InputError
from tests.flowrun import run_flow

EXPECTED_METRICS = {
    "n_ratings", "n_rows", "n_features", "train_r2", "test_r2", "train_rmse", "test_rmse", "test_mae",
    "baseline_test_rmse", "top_features", "config", "seconds", "embedding",
}  # fmt: skip


@pytest.fixture(scope="module")
def medium_csv(tmp_path_factory):
    from tasks.demo_data import write_demo_data

    out = tmp_path_factory.mktemp("medium")
    write_demo_data(out, users=300, movies=150, ratings=15000, seed=11)
    return out


def test_end_to_end_outputs_and_metrics(prefect_server, tmp_path, medium_csv):
    doc = run_flow(tmp_path, medium_csv)
    out = tmp_path / "out"
    # the demo profile picks alpha from model.alphas, hence the alpha curve
    written = ["alpha_curve.png", "coefficients.png", "metrics.json", "scatter.png", "support.png", "top_coefficients.csv"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*written, ".movie-ratings-output.json"])
    assert json.loads((out / ".movie-ratings-output.json").read_text()) == {"tool": "movie-ratings", "files": written}
    metrics = json.loads((out / "metrics.json").read_text())
    assert EXPECTED_METRICS <= set(metrics)
    assert metrics["n_ratings"] == 15000 and 0 < metrics["n_rows"] <= 15000
    assert len(metrics["top_features"]) == 20
    from tasks.demo_data import GENRE_NAMES

    # age, gender and occupation one-hots, 2 x MiniLM, genres
    assert metrics["n_features"] == 1 + 2 + 21 + 2 * 384 + len(GENRE_NAMES)
    assert metrics["test_r2"] > 0 and metrics["test_rmse"] < metrics["baseline_test_rmse"]
    assert metrics["config"]["model"]["alpha"] == 5.0
    assert {"load", "embed_title", "embed_overview", "merge", "features", "train", "plots"} <= set(metrics["seconds"])
    csv_lines = (out / "top_coefficients.csv").read_text().splitlines()
    assert csv_lines[0] == "rank,name,coef,abs_coef" and len(csv_lines) == 21
    assert csv_lines[1].split(",")[1] == metrics["top_features"][0]["name"]
    for png in ("scatter.png", "coefficients.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["test_rmse"] == metrics["test_rmse"]


def test_rerun_is_cached_and_alpha_change_reruns_train_only(prefect_server, tmp_path, medium_csv, caplog):
    plain = ["model.ids=[]"]  # the plain Ridge, whose per-partition sums (gram) are cached too
    first = run_flow(tmp_path, medium_csv, "a", extra=plain)
    assert first["embedding"]["texts_embedded"] > 0 and first["solver"] == "factorized"
    caplog.clear()
    # (the CLI's error path sets the 'prefect' logger to WARNING for the rest of a process: reset here)
    with caplog.at_level("INFO", logger="prefect"), caplog.at_level("INFO", logger="prefect.flow_runs"):
        again = run_flow(tmp_path, medium_csv, "b", extra=plain)
    # a cached run's log still tells the story: one line per stage with what it holds
    told = {r.getMessage().split(": from the cache: ")[0]: r.getMessage() for r in caplog.records if ": from the cache: " in r.getMessage()}
    assert set(told) == {"load", "embed_title", "embed_overview", "merge", "features", "split", "gram", "train", "plots"}
    assert f"test RMSE {first['test_rmse']:.4f}" in told["train"] and f"{first['n_rows']:,} rows" in told["merge"]
    assert "distinct texts, vectors of 384 dimensions" in told["embed_title"]
    expected = {"load", "embed_title", "embed_overview", "merge", "features", "split", "gram", "train", "plots"}
    assert set(again["cached_tasks"]) == expected == set(again["seconds"]) - {"flow_body"}
    assert again["embedding"]["texts_embedded"] == 0
    assert again["test_rmse"] == first["test_rmse"]
    changed = run_flow(tmp_path, medium_csv, "c", extra=[*plain, "model.alphas=[50]"])
    assert set(changed["cached_tasks"]) == {"load", "embed_title", "embed_overview", "merge", "features", "split", "gram"}
    assert changed["test_rmse"] != first["test_rmse"]
    fewer = run_flow(tmp_path, medium_csv, "d", extra=[*plain, "model.top_k=5"])  # never refits
    assert set(fewer["cached_tasks"]) == expected - {"plots"}
    assert fewer["top_features"] == first["top_features"][:5] and len(fewer["top_standardized"]) == 5


def test_both_layouts_give_the_same_model(prefect_server, tmp_path, small_csv, small_dat):
    a = run_flow(tmp_path, small_csv, "csv")
    b = run_flow(tmp_path, small_dat, "dat")
    assert (a["n_rows"], a["n_features"]) == (b["n_rows"], b["n_features"])
    assert a["top_features"] == b["top_features"]
    assert (a["layout"], b["layout"]) == ("csv", "ml-1m")


def test_bad_data_fails_the_run_with_the_message_and_writes_nothing(prefect_server, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ratings.csv").write_text("user_id,movie_id,rating\n1,10,9\n")
    (bad / "users.csv").write_text("user_id,gender,age,occupation\n1,F,25,lawyer\n")
    (bad / "movies.csv").write_text("movie_id,title,overview\n10,Heat,A heist.\n")
    state = run_flow(tmp_path, bad, extra=["data.rating_scale=1-5"], return_state=True)
    assert state.is_failed()
    assert "ratings.csv: column 'rating': 1 of 1 values outside 1-5 (data.rating_scale)" in state.message
    with pytest.raises(InputError):
        state.result()
    assert not (tmp_path / "out").exists()


def test_artifacts_are_published(prefect_server, tmp_path, small_csv):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    state = run_flow(tmp_path, small_csv, return_state=True)
    run_id = state.state_details.flow_run_id

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["movie-ratings-metrics", "movie-ratings-top-coefficients"]))
            )

    from prefect.utilities.asyncutils import run_coro_as_sync

    mine = [a for a in run_coro_as_sync(artifacts()) if a.flow_run_id == run_id]
    assert {a.key for a in mine} == {"movie-ratings-metrics", "movie-ratings-top-coefficients"}
    metrics = next(a for a in mine if a.key == "movie-ratings-metrics")
    assert "test_rmse" in str(metrics.data) and "global_mean_baseline" in str(metrics.data)


def test_alphas_pick_one_and_plot_the_curve(prefect_server, tmp_path, small_csv):
    doc = run_flow(tmp_path, small_csv, extra=["model.ids=[]", "model.alphas=[0.1, 10, 1000]", "model.solver=factorized"])
    assert [p["alpha"] for p in doc["alpha_curve"]] == [0.1, 10, 1000]
    assert doc["alpha"] == min(doc["alpha_curve"], key=lambda p: p["validation_rmse"])["alpha"]
    assert doc["solver"] == "factorized"
    assert (tmp_path / "out" / "alpha_curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("strategy", ["user", "movie", "time"])
def test_split_strategies_and_baselines_in_the_outputs(prefect_server, tmp_path, small_csv, strategy):
    doc = run_flow(tmp_path, small_csv, extra=[f"split.strategy={strategy}", "plot.rank_by=standardized"])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["split_strategy"] == strategy
    assert set(metrics["baselines"]) == {"global_mean", "user_mean", "movie_mean", "bias"}
    assert metrics["baselines"]["global_mean"]["test_rmse"] == pytest.approx(metrics["baseline_test_rmse"])
    assert len(metrics["top_standardized"]) == 20 and len(metrics["top_correlation"]) == 20
    standardized = [t["standardized"] for t in metrics["top_standardized"]]
    assert standardized == sorted(standardized, reverse=True)
    assert doc["n_train"] + doc["n_test"] == doc["n_rows"]


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("demo_cache")


@pytest.mark.parametrize(
    "strategy, ids",
    [("random", "[user_id,movie_id]"), ("movie", "[user_id]")],
)
def test_where_the_embeddings_beat_the_bias_baseline(prefect_server, tmp_path, demo_cache, strategy, ids):
    """On the demo profile: the hybrid beats the bias model on a random split, and on a movie-disjoint
    split (cold start) embeddings + user bias terms beat it too — the README's answer."""
    doc = run_flow(
        tmp_path, None, cache_dir=demo_cache,
        extra=[f"split.strategy={strategy}", f"model.ids={ids}", "model.alphas=[1,10,100,1000]"],
    )  # fmt: skip
    bias = doc["baselines"]["bias"]["test_rmse"]
    assert doc["test_rmse"] < bias < doc["baselines"]["global_mean"]["test_rmse"]
    assert doc["solver"] == "hybrid"
