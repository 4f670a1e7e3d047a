"""The hybrid Ridge (features + per-user/per-movie bias terms) against scikit-learn on the
materialized matrix with one-hot id columns."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from tasks.hybrid import HybridSystem, hybrid_fit
from tests.test_features_train import random_problem


def one_hot(index: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(index), size))
    out[np.arange(len(index)), index] = 1.0
    return out


@pytest.mark.parametrize("ids", [("user_id",), ("movie_id",), ("user_id", "movie_id")])
@pytest.mark.parametrize("alpha, id_alpha", [(1.0, 10.0), (5.0, 0.5)])
def test_hybrid_equals_sklearn_with_one_hot_ids(ids, alpha, id_alpha):
    U, M, u, m, y = random_problem(seed=21, n_users=40, n_movies=30, n_rows=900)
    system = HybridSystem(U, M, u, m, y, "user_id" in ids, "movie_id" in ids)
    fit, _ = hybrid_fit(system, alpha, id_alpha)
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
    fit, _ = hybrid_fit(HybridSystem(U, M, u[keep], m[keep], y[keep], True, True), 1.0, 5.0)
    assert fit.movie_bias[7] == pytest.approx(0.0, abs=1e-10)
