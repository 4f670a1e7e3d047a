"""`movie-ratings compare`: grids, every combination run, one table beside the baselines."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from configs.schema import load_config
from flows.compare import baseline_points, folder_names, grid_variants, model_name, parse_grid, split_top_level
from tasks.errors import InputError


def test_grid_values_split_at_top_level_commas_only():
    assert split_top_level("[title],[overview],[title,overview]") == ["[title]", "[overview]", "[title,overview]"]
    assert parse_grid("model.alpha=1,5,25") == ("model.alpha", ["1", "5", "25"])
    assert parse_grid("model.ids=[],[user_id,movie_id]") == ("model.ids", ["[]", "[user_id,movie_id]"])
    assert len(grid_variants(["a.b=1,2,3", "c.d=[x],[y]"])) == 6
    with pytest.raises(InputError, match="expected dotted.key=value1,value2"):
        parse_grid("model.alpha")


def test_compare_runs_every_variant_and_reuses_embeddings(prefect_server, tmp_path, small_csv):
    result = CliRunner().invoke(
        app,
        ["compare", "--set", f"data.dir={small_csv}", "--set", f"cache.dir={tmp_path / 'cache'}",
         "--grid", "embedding.fields=[title],[title,overview]", "--grid", "model.ids=[],[user_id,movie_id]",
         "--out", str(tmp_path / "cmp")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["variant"] for r in rows] == [
        "embedding.fields=[title], model.ids=[]",
        "embedding.fields=[title], model.ids=[user_id,movie_id]",
        "embedding.fields=[title,overview], model.ids=[]",
        "embedding.fields=[title,overview], model.ids=[user_id,movie_id]",
    ]
    # Titles are embedded once (first variant); the overviews once (third); the rest come from the cache.
    assert rows[0]["texts_embedded"] > 0 and rows[1]["texts_embedded"] == 0
    assert rows[2]["texts_embedded"] > 0 and rows[3]["texts_embedded"] == 0
    assert rows[0]["n_features"] + 384 == rows[2]["n_features"]
    assert [r["model"] for r in rows] == [
        "ridge, title", "hybrid (user+movie ids), title", "ridge, title+overview", "hybrid (user+movie ids), title+overview"
    ]
    folders = ["fields-title_ids-none", "fields-title_ids-user_id+movie_id",
               "fields-title+overview_ids-none", "fields-title+overview_ids-user_id+movie_id"]  # fmt: skip
    for row, folder in zip(rows, folders):  # the table holds each variant's own metrics, in a folder named for it
        assert row["out_dir"] == str((tmp_path / "cmp-variants" / folder).resolve())
        metrics = json.loads((tmp_path / "cmp-variants" / folder / "metrics.json").read_text())
        assert row["test_rmse"] == metrics["test_rmse"] and row["bias_rmse"] == metrics["baselines"]["bias"]["test_rmse"]
    table = (tmp_path / "cmp" / "compare.md").read_text().splitlines()
    assert len(table) >= 2 + 4 and "bias RMSE" in table[0] and "alpha" in table[0]
    assert "cmp-variants/` (`fields-title_ids-none`" in (tmp_path / "cmp" / "compare.md").read_text()
    assert f"  {folders[1]}: hybrid (user+movie ids), title, random split" in result.output
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    # one parent flow run holds the variants and the comparison artifact (it was once made outside any run)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["movie-ratings-compare"])))
        assert artifacts and artifacts[0].flow_run_id is not None
        parent = client.read_flow_run(artifacts[0].flow_run_id)
        assert client.read_flow(parent.flow_id).name == "movie-ratings-compare"


def test_bad_grid_value_fails_before_running(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--grid", "model.alpha=1,-5", "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2
    assert "'model.alpha': Input should be greater than 0" in result.stderr
    assert not (tmp_path / "cmp").exists()


def test_variant_names_and_folders_are_readable_and_distinct():
    cfg = load_config(overrides=["model.kind=fm", "model.text_components=0", "model.alpha=3"])
    assert model_name(cfg, ["model.kind=fm", "model.text_components=0", "model.alpha=3"]) == "fm, no text, title+overview, model.alpha=3"
    cfg = load_config(overrides=["model.kind=fm", "model.text_bias=true"])
    assert model_name(cfg, ["model.kind=fm"]) == "fm, learned text column + 16 text components, title+overview"
    assert model_name(load_config(overrides=["model.ids=[user_id]"]), []) == "hybrid (user ids), title+overview"
    assert folder_names([["split.strategy=movie", "model.kind=fm"], ["model.ids=[]"], []]) == [
        "strategy-movie_kind-fm", "ids-none", "base"
    ]
    assert folder_names([["model.alphas=[1, 2]"], ["model.alphas=[1,2]"]]) == ["alphas-1+2", "alphas-1+2-2"]
    assert all("/" not in n and ".." not in n for n in folder_names([["data.dir=../../etc"], ["x.y=a/b"]]))


def test_each_row_is_drawn_against_its_own_baselines():
    """compare.png once drew the first row's (random split) baselines across every row."""
    rows = [{"test_rmse": 0.80, "global_mean_rmse": 1.01, "bias_rmse": 0.82},
            {"test_rmse": 0.93, "global_mean_rmse": 1.02, "bias_rmse": 0.96}]  # fmt: skip
    points = baseline_points(rows)
    assert points["bias (user + movie)"] == [(0.82, 0), (0.96, 1)]
    assert points["global mean"] == [(1.01, 0), (1.02, 1)] and points["user mean"] == []
