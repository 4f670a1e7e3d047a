"""Baselines against direct computations on a tiny hand-made data set."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.baselines import baseline_metrics, baseline_predictions, fit_bias_model

# users 0..2, movies 0..2; rows 0-4 train, rows 5-7 test (user 2 and movie 2 appear only in test)
USER = np.array([0, 0, 1, 1, 0, 1, 2, 0])
MOVIE = np.array([0, 1, 0, 1, 1, 1, 0, 2])
Y = np.array([5.0, 3.0, 4.0, 2.0, 4.0, 3.0, 5.0, 1.0])
TRAIN, TEST = np.arange(5), np.arange(5, 8)


def test_means_by_hand():
    pred = baseline_predictions(USER, MOVIE, Y, TRAIN, n_users=3, n_movies=3)
    mean = (5 + 3 + 4 + 2 + 4) / 5
    np.testing.assert_allclose(pred["global_mean"], mean)
    # user 0 rated 5, 3, 4 in training; user 1 rated 4, 2; user 2 has no training rating → global mean
    np.testing.assert_allclose(pred["user_mean"][TEST], [3.0, mean, 4.0])
    # movie 1 got 3, 2, 4; movie 0 got 5, 4; movie 2 none → global mean
    np.testing.assert_allclose(pred["movie_mean"][TEST], [3.0, 4.5, mean])


def test_bias_model_solves_the_regularized_least_squares():
    rng = np.random.default_rng(0)
    u, m = rng.integers(0, 6, 200), rng.integers(0, 5, 200)
    y = 3.5 + rng.normal(0, 0.5, 6)[u] + rng.normal(0, 0.7, 5)[m] + rng.normal(0, 0.3, 200)
    model = fit_bias_model(u, m, y, 6, 5, reg_user=3.0, reg_movie=2.0)
    # Stationarity of  Σ (y − μ − b_u − b_m)² + λ_u Σ b_u² + λ_m Σ b_m²  with μ fixed at the mean.
    resid = y - model.predict(u, m)
    np.testing.assert_allclose(np.bincount(u, weights=resid, minlength=6), 3.0 * model.user_bias, atol=1e-8)
    np.testing.assert_allclose(np.bincount(m, weights=resid, minlength=5), 2.0 * model.movie_bias, atol=1e-8)
    assert model.mean == pytest.approx(y.mean())


def test_metrics_per_baseline_and_side():
    out = baseline_metrics(USER, MOVIE, Y, TRAIN, TEST, 3, 3)
    assert set(out) == {"global_mean", "user_mean", "movie_mean", "bias"}
    mean = Y[TRAIN].mean()
    expected_rmse = np.sqrt(np.mean((Y[TEST] - mean) ** 2))
    assert out["global_mean"]["test_rmse"] == pytest.approx(expected_rmse)
    user_pred = np.array([3.0, mean, 4.0])
    assert out["user_mean"]["test_mae"] == pytest.approx(np.mean(np.abs(Y[TEST] - user_pred)))
    assert set(out["bias"]) == {"train_rmse", "train_mae", "train_r2", "test_rmse", "test_mae", "test_r2"}


def test_bias_model_stops_early_at_the_fixed_point_of_many_alternating_sweeps():
    """Conjugate gradients reach, in a few iterations, what Surprise's alternating sweeps approach
    (1,000 sweeps here): the same biases to 1e-9."""
    rng = np.random.default_rng(1)
    u, m = rng.integers(0, 300, 8000), rng.integers(0, 200, 8000)
    y = np.clip(np.rint(3.5 + rng.normal(0, 0.5, 300)[u] + rng.normal(0, 0.7, 200)[m] + rng.normal(0, 1, 8000)), 1, 5)
    model = fit_bias_model(u, m, y, 300, 200, reg_user=15.0, reg_movie=10.0)
    n_u, n_m = np.bincount(u, minlength=300), np.bincount(m, minlength=200)
    b_u, b_m = np.zeros(300), np.zeros(200)
    for _ in range(1000):
        b_m = np.bincount(m, weights=y - y.mean() - b_u[u], minlength=200) / (10.0 + n_m)
        b_u = np.bincount(u, weights=y - y.mean() - b_m[m], minlength=300) / (15.0 + n_u)
    assert model.iterations <= 15
    np.testing.assert_allclose(model.user_bias, b_u, atol=1e-9)
    np.testing.assert_allclose(model.movie_bias, b_m, atol=1e-9)


def test_bias_model_without_penalty_leaves_unrated_users_and_movies_at_zero():
    rng = np.random.default_rng(2)
    u, m = rng.integers(0, 5, 100), rng.integers(0, 4, 100)
    y = rng.normal(3.0, 1.0, 100)
    model = fit_bias_model(u, m, y, 7, 6, reg_user=0.0, reg_movie=0.0)  # users 5, 6 and movies 4, 5 have no rows
    assert np.isfinite(model.user_bias).all() and np.isfinite(model.movie_bias).all()
    np.testing.assert_array_equal(model.user_bias[5:], 0.0)
    np.testing.assert_array_equal(model.movie_bias[4:], 0.0)
    resid = y - model.predict(u, m)  # and the rest is the unpenalized least-squares fit
    np.testing.assert_allclose(np.bincount(u, weights=resid), 0.0, atol=1e-8)
    np.testing.assert_allclose(np.bincount(m, weights=resid), 0.0, atol=1e-8)
