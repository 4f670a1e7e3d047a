"""Feature blocks and the block-wise Ridge, checked against sklearn on the materialized matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from tasks.features import feature_column, gather_rows, user_block
from tasks.ridge import dense_ridge_fit, ridge_fit, row_stats
from tasks.scoring import regression_metrics
from tasks.splits import split_rows, validation_part
from tasks.train import Rows, alpha_curve, evaluate, top_coefficients


def test_user_block_names_come_from_the_data():
    users = pd.DataFrame(
        {"user_id": [1, 2, 3], "gender": ["M", "F", "M"], "age": [18.0, 56.0, 25.0],
         "occupation": ["writer", "lawyer", "writer"]}
    )  # fmt: skip
    U, names = user_block(users)
    assert names == ["age", "gender_F", "gender_M", "occupation_lawyer", "occupation_writer"]
    np.testing.assert_array_equal(U, [[18, 0, 1, 0, 1], [56, 1, 0, 1, 0], [25, 0, 1, 0, 1]])


def random_problem(seed: int, n_users=40, n_movies=30, n_rows=900, d_u=5, d_m=7):
    rng = np.random.default_rng(seed)
    U = np.hstack([rng.uniform(1, 60, (n_users, 1)), rng.normal(size=(n_users, d_u - 1))])
    M = rng.normal(size=(n_movies, d_m))
    pairs = rng.choice(n_users * n_movies, size=n_rows, replace=False)
    u, m = (pairs // n_movies).astype(np.int32), (pairs % n_movies).astype(np.int32)
    y = np.clip(np.rint(3 + 0.02 * U[u, 0] + M[m] @ rng.normal(size=d_m) * 0.3 + rng.normal(size=n_rows)), 1, 5)
    return U, M, u, m, y


@pytest.mark.parametrize("alpha", [0.01, 1.0, 5.0, 100.0])
def test_block_ridge_equals_sklearn_ridge(alpha):
    U, M, u, m, y = random_problem(seed=int(alpha * 100))
    fit = ridge_fit(U, M, u, m, y, alpha)
    ref = Ridge(alpha=alpha, fit_intercept=True).fit(gather_rows(U, M, u, m), y)
    np.testing.assert_allclose(fit.coef, ref.coef_, rtol=1e-6, atol=1e-10)
    assert fit.intercept == pytest.approx(ref.intercept_, rel=1e-6)
    np.testing.assert_allclose(fit.predict(U, M, u, m), ref.predict(gather_rows(U, M, u, m)), rtol=1e-8)


def test_ranked_coefficients_match_sklearn():
    U, M, u, m, y = random_problem(seed=1)
    names = [f"user_{i}" for i in range(U.shape[1])] + [f"title_embedding_{i}" for i in range(M.shape[1])]
    fit = ridge_fit(U, M, u, m, y, 5.0)
    ref = Ridge(alpha=5.0).fit(gather_rows(U, M, u, m), y)
    top = top_coefficients(fit.coef, names, 6)
    expected = np.argsort(-np.abs(ref.coef_))[:6]
    assert [t["name"] for t in top] == [names[j] for j in expected]
    np.testing.assert_allclose([t["coef"] for t in top], ref.coef_[expected], rtol=1e-6)
    assert [t["rank"] for t in top] == list(range(1, 7))


def test_split_is_reproducible_disjoint_and_sized():
    train, test = split_rows(1000, 0.2, seed=42)
    assert len(test) == 200 and len(train) == 800
    assert not set(train) & set(test) and set(train) | set(test) == set(range(1000))
    again = split_rows(1000, 0.2, seed=42)
    np.testing.assert_array_equal(test, again[1])
    assert not np.array_equal(test, split_rows(1000, 0.2, seed=43)[1])


@pytest.mark.parametrize("block_rows", [7, 1 << 18])
def test_metrics_match_sklearn(monkeypatch, block_rows):
    """Scored block by block of rows (across block edges too), a predictor asked per block included."""
    from tasks import scoring

    monkeypatch.setattr(scoring, "BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(0)
    y, pred = rng.integers(1, 6, 200).astype(float), rng.normal(3.5, 1, 200)
    asked = []
    for got in (regression_metrics(y, pred), scoring.Targets(y).metrics_of(lambda rows: asked.append(rows) or pred[rows])):
        assert got["r2"] == pytest.approx(r2_score(y, pred), rel=1e-12)
        assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)), rel=1e-12)
        assert got["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-12)
    assert len(asked) == -(-200 // block_rows)


def test_evaluate_reports_model_and_global_mean_baseline():
    U, M, u, m, y = random_problem(seed=5, n_rows=1200)
    train, test = split_rows(len(y), 0.2, 0)
    fit, metrics = evaluate(U, M, Rows(u, m, y), train, test, alpha=1.0)
    baseline = np.full(len(test), y[train].mean())
    assert metrics["baseline_test_rmse"] == pytest.approx(np.sqrt(mean_squared_error(y[test], baseline)))
    assert metrics["test_r2"] == pytest.approx(r2_score(y[test], fit.predict(U, M, u[test], m[test])))
    assert metrics["test_rmse"] < metrics["baseline_test_rmse"]  # the data has signal


def test_feature_column_gathers_without_the_matrix():
    U, M, u, m, _ = random_problem(seed=2)
    X = gather_rows(U, M, u, m)
    for j in (0, U.shape[1] - 1, U.shape[1], X.shape[1] - 1):
        np.testing.assert_array_equal(feature_column(U, M, j, u, m), X[:, j])


def test_row_stats_of_partitions_add_up():
    U, M, u, m, y = random_problem(seed=3)
    whole = row_stats(U, M.shape[0], u, m, y)
    a = row_stats(U, M.shape[0], u[:300], m[:300], y[:300])
    b = row_stats(U, M.shape[0], u[300:], m[300:], y[300:])
    total = a + b
    assert total.n == whole.n and total.y_sum == pytest.approx(whole.y_sum)
    np.testing.assert_allclose(total.ctu, whole.ctu)
    np.testing.assert_allclose(total.s_m, whole.s_m)


@pytest.mark.parametrize("solver", ["dense", "factorized"])
def test_alpha_curve_matches_separate_sklearn_fits(solver):
    U, M, u, m, y = random_problem(seed=4, n_rows=1000)
    alphas = [0.1, 3.0, 50.0, 1000.0]
    validation = validation_part("random", u, m, None, 0.2, seed=9)
    curve = alpha_curve(U, M, Rows(u, m, y), alphas, solver, validation)
    fit_part, val_part = split_rows(len(y), 0.2, 9)
    np.testing.assert_array_equal(np.flatnonzero(validation), val_part)
    for point, alpha in zip(curve, alphas):
        ref = Ridge(alpha=alpha).fit(gather_rows(U, M, u[fit_part], m[fit_part]), y[fit_part])
        pred = ref.predict(gather_rows(U, M, u[val_part], m[val_part]))
        assert point["alpha"] == alpha
        assert point["validation_rmse"] == pytest.approx(np.sqrt(mean_squared_error(y[val_part], pred)), rel=1e-6)


def test_evaluate_picks_the_best_alpha_from_the_curve():
    U, M, u, m, y = random_problem(seed=6, n_rows=1200)
    train, test = split_rows(len(y), 0.2, 0)
    validation = validation_part("random", u[train], m[train], None, 0.1, seed=1)
    fit, metrics = evaluate(U, M, Rows(u, m, y), train, test, alpha=5.0, alphas=[0.01, 10.0, 1e6], validation=validation)
    best = min(metrics["alpha_curve"], key=lambda p: p["validation_rmse"])
    assert metrics["alpha"] == best["alpha"] == fit.alpha != 1e6
    assert len(metrics["alpha_curve"]) == 3


def test_dense_and_factorized_solvers_agree():
    U, M, u, m, y = random_problem(seed=8)
    a, b = ridge_fit(U, M, u, m, y, 2.0), dense_ridge_fit(U, M, u, m, y, 2.0)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-6, atol=1e-10)
    assert a.intercept == pytest.approx(b.intercept, rel=1e-9)


@pytest.mark.parametrize("alpha", [0.5, 5.0, 50.0])
def test_factorized_equals_sklearn_on_the_notebooks_201_movie_profile(tmp_path, hash_encoder, alpha):
    from tasks.demo_data import write_demo_data
    from tasks.embed import embed_texts, prepare_texts
    from tasks.vector_store import EmbeddingStore
    from tasks.features import movie_block
    from tasks.load import load_dataset
    from tasks.merge import merge_ratings

    write_demo_data(tmp_path / "data", users=150, movies=260, ratings=9000, seed=2)
    ds = load_dataset(tmp_path / "data", movies_limit=201)
    assert len(ds.movies) == 201
    store = EmbeddingStore(tmp_path / "cache", "m")
    emb = {f: embed_texts(prepare_texts(ds.movies[f].tolist(), "drop")[0], hash_encoder, store, "m") for f in ("title", "overview")}
    rows = merge_ratings(ds.ratings, ds.users, ds.movies, emb["title"].present & emb["overview"].present)
    U, _ = user_block(ds.users)
    M, _ = movie_block({f: e.vectors for f, e in emb.items()})
    u, m, y = rows["user_idx"].to_numpy(), rows["movie_idx"].to_numpy(), rows["rating"].to_numpy(np.float64)
    fit = ridge_fit(U, M, u, m, y, alpha)
    ref = Ridge(alpha=alpha).fit(gather_rows(U, M, u, m), y)
    np.testing.assert_allclose(fit.coef, ref.coef_, rtol=1e-6, atol=1e-9)
    assert fit.intercept == pytest.approx(ref.intercept_, rel=1e-6)


def test_feature_moments_match_the_materialized_matrix():
    from tasks.ridge import feature_moments

    U, M, u, m, y = random_problem(seed=12)
    moments = feature_moments(U, M, row_stats(U, M.shape[0], u, m, y))
    X = gather_rows(U, M, u, m)
    np.testing.assert_allclose(moments.std, X.std(axis=0), rtol=1e-8)
    expected = [np.corrcoef(X[:, j], y)[0, 1] for j in range(X.shape[1])]
    np.testing.assert_allclose(moments.correlation, expected, rtol=1e-7, atol=1e-12)


def test_standardized_ranking_differs_from_the_raw_one():
    """Age in years gets a small coefficient per year but moves ratings most per standard deviation;
    a rare one-hot gets a big coefficient yet matters little. Raw |coef| ranks them the other way."""
    from tasks.ridge import feature_moments
    from tasks.train import feature_rankings

    rng = np.random.default_rng(0)
    n_users, n_movies = 400, 30
    age = rng.uniform(18, 60, n_users)
    rare = (rng.random(n_users) < 0.02).astype(float)
    U = np.column_stack([age, rare])
    M = rng.normal(size=(n_movies, 3))
    pairs = rng.choice(n_users * n_movies, 6000, replace=False)
    u, m = pairs // n_movies, pairs % n_movies
    y = 1.0 + 0.06 * age[u] + 0.8 * rare[u] + rng.normal(0, 0.3, len(u))
    fit = ridge_fit(U, M, u, m, y, 1.0)
    moments = feature_moments(U, M, row_stats(U, n_movies, u, m, y))
    rankings = feature_rankings(fit.coef, moments, ["age", "rare", "e0", "e1", "e2"], 2)
    assert [t["name"] for t in rankings["coef"]] == ["rare", "age"]
    assert [t["name"] for t in rankings["standardized"]] == ["age", "rare"]
    assert rankings["correlation"][0]["name"] == "age"
    assert rankings["standardized"][0]["standardized"] == pytest.approx(abs(fit.coef[0]) * age[u].std(), rel=1e-6)


def test_all_rows_correlations_match_numpy():
    from tasks.plots import all_rows_correlations

    U, M, u, m, y = random_problem(seed=14)
    X = gather_rows(U, M, u, m)
    expected = [np.corrcoef(X[:, j], y)[0, 1] for j in range(X.shape[1])]
    np.testing.assert_allclose(all_rows_correlations(U, M, u, m, y), expected, rtol=1e-7, atol=1e-12)
