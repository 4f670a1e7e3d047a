"""Feature blocks and the block-wise Ridge, checked against sklearn on the materialized matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from tasks.features import feature_column, gather_rows, user_block
from tasks.train import evaluate, regression_metrics, ridge_fit, split_rows, top_coefficients


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


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(1, 6, 200).astype(float), rng.normal(3.5, 1, 200)
    got = regression_metrics(y, pred)
    assert got["r2"] == pytest.approx(r2_score(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(mean_absolute_error(y, pred))


def test_evaluate_reports_model_and_global_mean_baseline():
    U, M, u, m, y = random_problem(seed=5, n_rows=1200)
    train, test = split_rows(len(y), 0.2, 0)
    fit, metrics = evaluate(U, M, u, m, y, train, test, alpha=1.0)
    baseline = np.full(len(test), y[train].mean())
    assert metrics["baseline_test_rmse"] == pytest.approx(np.sqrt(mean_squared_error(y[test], baseline)))
    assert metrics["test_r2"] == pytest.approx(r2_score(y[test], fit.predict(U, M, u[test], m[test])))
    assert metrics["test_rmse"] < metrics["baseline_test_rmse"]  # the data has signal


def test_feature_column_gathers_without_the_matrix():
    U, M, u, m, _ = random_problem(seed=2)
    X = gather_rows(U, M, u, m)
    for j in (0, U.shape[1] - 1, U.shape[1], X.shape[1] - 1):
        np.testing.assert_array_equal(feature_column(U, M, j, u, m), X[:, j])
