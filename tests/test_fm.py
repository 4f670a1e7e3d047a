"""model.kind=fm against the hybrid Ridge and the baselines on the demo data, on random and movie
(cold start) splits; text helping the cold start; genres; the RMSE-by-support table; determinism."""

from __future__ import annotations

import json

import pytest

from configs.schema import load_config
from tasks.errors import InputError
from tests.flowrun import run_flow

FM = ["model.kind=fm", "model.iterations=120"]


@pytest.fixture(scope="module")
def results(prefect_server, tmp_path_factory):
    """Each variant once on the demo data (600 users, 400 movies, 40,000 ratings), one shared cache."""
    tmp = tmp_path_factory.mktemp("fm")
    variants = {
        (split, name): extra
        for split in ("random", "movie")
        for name, extra in {
            "fm": [*FM],
            "fm-no-text": [*FM, "model.text_components=0"],
            "hybrid": ["model.ids=[user_id,movie_id]", "model.alphas=null"],
            "default": [],  # the demo profile as it is
        }.items()
    }
    return {
        key: run_flow(tmp, None, f"{key[0]}-{key[1]}", extra=[f"split.strategy={key[0]}", *extra], cache_dir=tmp / "cache")
        for key, extra in variants.items()
    }


@pytest.mark.parametrize("split", ["random", "movie"])
def test_fm_beats_the_hybrid_and_every_baseline(results, split):
    fm = results[(split, "fm")]
    assert fm["kind"] == "fm" and fm["solver"] == "fm"
    # the hybrid with alpha 5, and the default profile's hybrid with alpha chosen on validation
    assert fm["test_rmse"] < min(results[(split, "hybrid")]["test_rmse"], results[(split, "default")]["test_rmse"])
    for name, figures in fm["baselines"].items():
        assert fm["test_rmse"] < figures["test_rmse"], name


@pytest.mark.parametrize("split", ["random", "movie"])
def test_the_default_profile_is_never_worse_than_a_baseline(results, split):
    """Safe defaults: the demo profile (hybrid Ridge, alpha chosen on a validation part that follows
    the split) beats the global, user, movie means and the bias model on its own held-out part."""
    default = results[(split, "default")]
    assert default["solver"] == "hybrid" and "alpha_curve" in default
    for name, figures in default["baselines"].items():
        assert default["test_rmse"] < figures["test_rmse"], name


def test_text_helps_the_cold_start(results):
    assert results[("movie", "fm")]["test_rmse"] < results[("movie", "fm-no-text")]["test_rmse"]


def test_rmse_by_movie_support(results):
    cold = results[("movie", "fm")]["rmse_by_movie_support"]
    assert [row["support"] for row in cold] == ["0", "1-5", "6-20", "21-100", ">100"]
    assert cold[0]["n_test"] == results[("movie", "fm")]["n_test"]  # every test movie is unseen
    assert cold[0]["model"] == pytest.approx(results[("movie", "fm")]["test_rmse"])
    assert cold[0]["bias"] == pytest.approx(results[("movie", "fm")]["baselines"]["bias"]["test_rmse"])
    warm = results[("random", "fm")]["rmse_by_movie_support"]
    assert sum(row["n_test"] for row in warm) == results[("random", "fm")]["n_test"]
    assert all(row["model"] is None for row in warm if row["n_test"] == 0)


def test_fm_is_seeded_and_ranks_the_same_feature_names(results, prefect_server, tmp_path):
    again = run_flow(tmp_path, None, "again", extra=[*FM])
    first = results[("random", "fm")]
    assert again["test_rmse"] == first["test_rmse"]  # same seed, same numbers (fresh cache)
    names = {t["name"] for t in first["top_features"]}
    assert names and all(n.startswith(("age", "gender_", "occupation_", "genre_", "title_", "overview_")) for n in names)
    other = run_flow(tmp_path, None, "seed", extra=[*FM, "model.seed=1"], cache_dir=tmp_path / "cache")
    assert other["test_rmse"] != first["test_rmse"]


def test_genre_block_and_the_seed_profile_without_it(results, prefect_server, tmp_path):
    doc = results[("random", "hybrid")]
    from tasks.demo_data import GENRE_NAMES

    assert doc["n_features"] == 1 + 2 + 21 + 2 * 384 + len(GENRE_NAMES)  # age, gender, occupation, texts, genres
    seed = load_config("seed", ["data.dir=x"])
    assert seed.features.genres is False and seed.model.alpha == 5.0 and not seed.model.alphas


def test_support_figure_and_report(results):
    from pathlib import Path

    out = Path(results[("movie", "fm")]["out_dir"])
    assert (out / "support.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "metrics.json").read_text())["rmse_by_movie_support"][0]["support"] == "0"


@pytest.mark.parametrize("override", ["model.rank=0", "model.iterations=0", "model.kind=svm", "model.text_components=-1"])
def test_bad_fm_settings_are_one_line(override):
    with pytest.raises(InputError) as err:
        load_config(overrides=[override])
    assert "\n" not in str(err.value) and override.split("=")[0] in str(err.value)
