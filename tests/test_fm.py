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
            "hybrid": ["model.ids=[user_id,movie_id]", "model.alphas=null"],
            "default": [],  # the demo profile as it is
        }.items()
    }
    return {
        key: run_flow(tmp, None, f"{key[0]}-{key[1]}", extra=[f"split.strategy={key[0]}", *extra], cache_dir=tmp / "cache")
        for key, extra in variants.items()
    }


@pytest.mark.parametrize("split", ["random", "movie"])
def test_the_default_profile_is_never_worse_than_a_baseline(results, split):
    """Safe defaults: the demo profile (hybrid Ridge, alpha chosen on a validation part that follows
    the split) beats the global, user, movie means and the bias model on its own held-out part."""
    default = results[(split, "default")]
    assert default["solver"] == "hybrid" and "alpha_curve" in default
    for name, figures in default["baselines"].items():
        assert default["test_rmse"] < figures["test_rmse"], name


@pytest.fixture(scope="module")
def medium():
    """A generated set with enough movies for the cold-start ordering to be more than sampler noise
    (3,000 users, 2,000 movies, 300,000 ratings; at the demo's 400 movies fm, hybrid and the
    learned text column are within the ±0.005 of the FM's seed): the blocks the flow would build,
    realistic overviews embedded by the bundled model."""
    import numpy as np

    from tasks.demo_data import generate
    from tasks.encoder import pick_precision, resolve_model, sentence_encoder
    from tasks.features import genre_block, user_block
    from tasks.train import Rows

    tables = generate(users=3000, movies=2000, ratings=300_000, seed=0)
    movies, r = tables["movies"], tables["ratings"]
    encode = sentence_encoder(resolve_model("all-MiniLM-L6-v2"), "cpu", 64, True, pick_precision("auto", "cpu"))
    text = np.hstack([encode(movies["title"].tolist()), encode(movies["overview"].fillna("").tolist())])
    genres = genre_block(movies["genres"], len(movies))[0]
    U, M = user_block(tables["users"])[0], np.hstack([text, genres])
    groups = {"title": 384, "overview": 384, "genres": genres.shape[1]}
    rows = Rows(r["user_id"].to_numpy() - 1, r["movie_id"].to_numpy() - 1, r["rating"].to_numpy(float))
    return U, M, groups, rows


def _fm_and_rivals(medium, split: str) -> dict[str, float]:
    import numpy as np

    from tasks.baselines import fitted_metrics, fit_baselines
    from tasks.splits import split_positions, validation_part
    from tasks.train import evaluate

    U, M, groups, rows = medium
    train, test = split_positions(split, rows.user_idx, rows.movie_idx, None, 0.2, 42)
    fitting = rows.take(train)
    validation = validation_part(split, fitting.user_idx, fitting.movie_idx, None, 0.1, 42)
    rmse = {}
    for name, k in {"fm": 16, "fm-no-text": 0}.items():  # the default: 16 text components, no learned column
        _, metrics = evaluate(U, M, rows, train, test, alpha=1.0, fm=dict(
            movie_groups=groups, rank=10, iterations=100, text_components=k, seed=0))  # fmt: skip
        rmse[name] = metrics["test_rmse"]
    _, hybrid = evaluate(U, M, rows, train, test, alpha=1.0, alphas=[1, 10, 100, 1000, 10000],
                         validation=validation, ids=["user_id", "movie_id"])  # fmt: skip
    rmse["hybrid"] = hybrid["test_rmse"]
    baselines = fit_baselines(rows.user_idx, rows.movie_idx, rows.y, train, U.shape[0], M.shape[0])
    for name, figures in fitted_metrics(baselines, rows.user_idx, rows.movie_idx, rows.y, train, test).items():
        rmse[name] = figures["test_rmse"]
    assert np.isfinite(list(rmse.values())).all()
    return rmse


@pytest.mark.parametrize("split", ["random", "movie"])
def test_fm_beats_the_hybrid_and_every_baseline(medium, split):
    rmse = _fm_and_rivals(medium, split)
    for name in ("hybrid", "global_mean", "user_mean", "movie_mean", "bias"):
        assert rmse["fm"] < rmse[name], (name, rmse)
    if split == "movie":  # the text helps the cold start...
        assert rmse["fm"] < rmse["fm-no-text"] - 0.005, rmse
    else:  # ...and costs nothing on seen movies
        assert rmse["fm"] < rmse["fm-no-text"] + 0.001, rmse


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


def test_learned_text_column_predicts_unseen_movies_biases():
    """The learned column recovers a bias hidden in a few of 300 text dimensions, and a rated movie's
    value is out-of-fold: it is never a copy of the bias the movie's own ratings gave."""
    import numpy as np

    from tasks.fm import MovieBiases, learned_text_bias

    rng = np.random.default_rng(0)
    n_users, n_movies = 300, 600
    content = rng.normal(size=(n_movies, 300))
    movie_bias = content[:, :5] @ rng.normal(0, 0.3, 5)
    u, m = rng.integers(0, n_users, 60_000), rng.integers(0, n_movies, 60_000)
    y = 3.5 + rng.normal(0, 0.3, n_users)[u] + movie_bias[m] + rng.normal(0, 0.8, len(u))
    seen = m < 500  # movies 500+ are never rated
    biases = MovieBiases.of(u[seen], m[seen], y[seen], n_movies)
    column, coef, intercept, mse = learned_text_bias(content, biases)
    genres_only = biases.out_of_fold(content[:, 250:])[1]  # columns without the signal
    assert mse < 0.5 * genres_only
    unseen = np.arange(500, n_movies)
    assert np.corrcoef(column[unseen], movie_bias[unseen])[0, 1] > 0.8
    assert np.allclose(column[unseen], content[unseen] @ coef + intercept)
    in_sample = content[biases.rated] @ coef + intercept
    assert np.abs(column[biases.rated] - in_sample).mean() > 0.02  # out-of-fold, not the fit to itself
