"""The hybrid Ridge (features + per-user/per-movie bias terms) against scikit-learn on the
materialized matrix with one-hot id columns."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from tasks.hybrid import HybridSystem, hybrid_fit
from tasks.train import Rows, evaluate
from tests.test_features_train import random_problem


def one_hot(index: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(index), size))
    out[np.arange(len(index)), index] = 1.0
    return out


@pytest.mark.parametrize("ids", [("user_id",), ("movie_id",), ("user_id", "movie_id")])
@pytest.mark.parametrize("alpha, id_alpha", [(1.0, 10.0), (5.0, 0.5)])
def test_hybrid_equals_sklearn_with_one_hot_ids(ids, alpha, id_alpha):
    U, M, u, m, y = random_problem(seed=21, n_users=40, n_movies=30, n_rows=900)
    fit = hybrid_fit(HybridSystem(U, M, u, m, y, "user_id" in ids, "movie_id" in ids, id_alpha), alpha)
    # A column scaled by s under penalty α is a column with penalty α / s²: s = sqrt(α / α_id).
    s = np.sqrt(alpha / id_alpha)
    blocks = [U[u], M[m]]
    if "user_id" in ids:
        blocks.append(s * one_hot(u, U.shape[0]))
    if "movie_id" in ids:
        blocks.append(s * one_hot(m, M.shape[0]))
    ref = Ridge(alpha=alpha, solver="cholesky").fit(np.hstack(blocks), y)
    d = U.shape[1] + M.shape[1]
    np.testing.assert_allclose(fit.coef, ref.coef_[:d], rtol=1e-5, atol=1e-8)
    assert fit.intercept == pytest.approx(ref.intercept_, rel=1e-6)
    rest = ref.coef_[d:] * s
    if "user_id" in ids:
        np.testing.assert_allclose(fit.user_bias, rest[: U.shape[0]], rtol=1e-5, atol=1e-8)
        rest = rest[U.shape[0] :]
    if "movie_id" in ids:
        np.testing.assert_allclose(fit.movie_bias, rest, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fit.predict(U, M, u, m), ref.predict(np.hstack(blocks)), rtol=1e-6)


def test_unseen_ids_get_zero_bias():
    U, M, u, m, y = random_problem(seed=2, n_users=30, n_movies=20, n_rows=300)
    keep = m != 7
    fit = hybrid_fit(HybridSystem(U, M, u[keep], m[keep], y[keep], True, True, 5.0), 1.0)
    assert fit.movie_bias[7] == pytest.approx(0.0, abs=1e-10)


def test_tolerance_bounds_the_prediction_error():
    """``tol`` is about the RMS error left in the training predictions; a looser one stops sooner."""
    U, M, u, m, y = random_problem(seed=5, n_users=200, n_movies=150, n_rows=6000)
    system = HybridSystem(U, M, u, m, y, True, True, 10.0)
    s = np.sqrt(1.0 / 10.0)
    X = np.hstack([U[u], M[m], s * one_hot(u, 200), s * one_hot(m, 150)])
    reference = Ridge(alpha=1.0, solver="cholesky").fit(X, y).predict(X)
    iterations = []
    for tol in (1e-4, 1e-7, 1e-10):
        fit = hybrid_fit(system, 1.0, tol=tol)
        assert np.sqrt(np.mean((fit.predict(U, M, u, m) - reference) ** 2)) <= 10 * tol
        iterations.append(fit.iterations)
    assert iterations == sorted(iterations) and iterations[0] < iterations[-1] <= 30


def test_warm_start_from_a_neighbouring_alpha_gives_the_same_fit_sooner():
    U, M, u, m, y = random_problem(seed=6, n_users=200, n_movies=150, n_rows=6000)
    system = HybridSystem(U, M, u, m, y, True, True, 10.0)
    cold = hybrid_fit(system, 10.0)
    warm = hybrid_fit(system, 10.0, x0=hybrid_fit(system, 1.0).solution)
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.predict(U, M, u, m), cold.predict(U, M, u, m), atol=1e-8)


def test_evaluate_refits_the_chosen_alpha_from_the_path():
    """The final fit on all training rows starts from the chosen alpha's solution without the
    validation rows, and ends where a cold fit ends."""
    U, M, u, m, y = random_problem(seed=7, n_users=200, n_movies=150, n_rows=6000)
    rows = Rows(u, m, y)
    train, test = np.arange(5000), np.arange(5000, 6000)
    validation = np.random.default_rng(0).random(5000) < 0.1
    fit, metrics = evaluate(U, M, rows, train, test, alpha=5.0, alphas=[0.1, 10.0, 1000.0], validation=validation,
                            ids=["user_id", "movie_id"], id_alpha=10.0)  # fmt: skip
    assert len(metrics["cg_iterations_path"]) == 3
    cold = hybrid_fit(HybridSystem(U, M, u[train], m[train], y[train], True, True, 10.0), metrics["alpha"])
    assert metrics["cg_iterations"] < cold.iterations
    np.testing.assert_allclose(fit.predict(U, M, u, m), cold.predict(U, M, u, m), atol=1e-8)


@pytest.mark.parametrize("blocked_from", [0, 10**9])
def test_count_matrix_of_rows_grouped_by_user_or_not(monkeypatch, blocked_from):
    """Rows grouped by user become the CSR arrays as they are; any order, repeated pairs included,
    gives the same products, in one block or in row blocks multiplied on threads."""
    from tasks import cg
    from tasks.cg import count_matrix

    monkeypatch.setattr(cg, "BLOCKED_FROM", blocked_from)
    rng = np.random.default_rng(3)
    u, m = rng.integers(0, 20, 500), rng.integers(0, 15, 500)
    u[1], m[1] = u[0], m[0]  # a repeated pair
    dense = np.zeros((25, 15))
    np.add.at(dense, (u, m), 1.0)
    order = np.argsort(u, kind="stable")
    x = rng.normal(size=15)
    for users, movies in ((u, m), (u[order], m[order])):
        counts = count_matrix(users, movies, 25, 15)
        np.testing.assert_allclose(counts @ x, dense @ x, atol=1e-12)
        np.testing.assert_allclose(counts.T @ np.arange(25.0), dense.T @ np.arange(25.0), atol=1e-12)
        per_user, per_movie = rng.normal(size=(25, 3)), rng.normal(size=(15, 2))  # matrices too (Cᵀ U)
        np.testing.assert_allclose(counts.T @ per_user, dense.T @ per_user, atol=1e-12)
        np.testing.assert_allclose(counts @ per_movie, dense @ per_movie, atol=1e-12)
        assert len(counts.blocks) == (cg.BLOCKS if blocked_from == 0 else 1)
        assert [b[0] for b in counts.blocks] == sorted(b[0] for b in counts.blocks) and counts.blocks[-1][1] == 25


def test_the_hybrid_on_a_blocked_count_matrix_equals_the_one_block_fit(monkeypatch):
    from tasks import cg

    U, M, u, m, y = random_problem(seed=5, n_users=60, n_movies=40, n_rows=1500)
    fits = []
    for blocked_from in (10**9, 0):
        monkeypatch.setattr(cg, "BLOCKED_FROM", blocked_from)
        system = HybridSystem(U, M, u, m, y, True, True, 10.0)
        assert len(system.C.blocks) == (1 if blocked_from else cg.BLOCKS)
        fits.append(hybrid_fit(system, 1.0))
    np.testing.assert_allclose(fits[0].coef, fits[1].coef, atol=1e-10)
    np.testing.assert_allclose(fits[0].user_bias, fits[1].user_bias, atol=1e-10)
    np.testing.assert_allclose(fits[0].movie_bias, fits[1].movie_bias, atol=1e-10)


@pytest.mark.parametrize("rows_per_block", [1, 7, 4096])
def test_weighted_gram_and_square_sums_by_blocks_equal_the_direct_products(rows_per_block):
    from tasks.hybrid import weighted_gram
    from tasks.ridge import weighted_square_sums

    rng = np.random.default_rng(8)
    M, weights = rng.normal(size=(50, 6)), rng.random(50) * 20
    weights[::5] = 0.0  # movies without rows
    np.testing.assert_allclose(weighted_gram(M, weights, rows_per_block), M.T @ (M * weights[:, None]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weighted_square_sums(M, weights, rows_per_block), (M * M).T @ weights, rtol=1e-12)


@pytest.mark.parametrize("ids", [("user_id",), ("movie_id",), ("user_id", "movie_id")])
def test_the_two_pass_solver_follows_plain_cg_on_the_operator(ids):
    """``HybridSystem.solve`` (two passes over M per iteration) takes plain CG's steps on ``apply``
    with ``preconditioner``: the same iterations and the same solution, cold or warm-started."""
    from tasks.cg import conjugate_gradients

    U, M, u, m, y = random_problem(seed=11, n_users=150, n_movies=120, n_rows=5000)
    system = HybridSystem(U, M, u, m, y, "user_id" in ids, "movie_id" in ids, 10.0)
    tol = 1e-10 * np.sqrt(len(y))
    start = None
    for alpha in (0.5, 20.0):
        x0 = np.zeros_like(system.rhs) if start is None else start
        plain, plain_iterations = conjugate_gradients(
            lambda v, alpha=alpha: system.apply(v, alpha), system.preconditioner(alpha), system.rhs, x0, tol, 500
        )
        fused, fused_iterations = system.solve(alpha, x0, tol, 500)
        assert fused_iterations == plain_iterations > 0
        np.testing.assert_allclose(fused, plain, rtol=1e-7, atol=1e-9)
        start = fused
