"""`movie-ratings compare`: grids, every combination run, one table beside the baselines."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.compare import grid_variants, parse_grid, split_top_level
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
    for row in rows:  # the table holds each variant's own metrics
        metrics = json.loads((tmp_path / "cmp-variants" / str(rows.index(row)) / "metrics.json").read_text())
        assert row["test_rmse"] == metrics["test_rmse"] and row["bias_rmse"] == metrics["baselines"]["bias"]["test_rmse"]
    table = (tmp_path / "cmp" / "compare.md").read_text().splitlines()
    assert len(table) == 2 + 4 and "bias RMSE" in table[0]
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_grid_value_fails_before_running(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--grid", "model.alpha=1,-5", "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2
    assert "'model.alpha': Input should be greater than 0" in result.stderr
    assert not (tmp_path / "cmp").exists()
