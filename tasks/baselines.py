"""Baselines on the model's own split: what a rating predictor has to beat.

- global mean: the training mean for everyone;
- user mean / movie mean: the training mean of the user's / movie's ratings (the global mean for a
  user or movie without training ratings);
- bias: the standard regularized user + movie bias model ``r̂ = μ + b_u + b_m`` (μ the training mean),
  the minimizer of ``Σ (r − μ − b_u − b_m)² + λ_u Σ b_u² + λ_m Σ b_m²`` as in Koren's "Factor in the
  neighbors" and Surprise's ``BaselineOnly`` (λ_u = 15, λ_m = 10). Surprise approaches it by alternating
  sweeps (``b_m = Σ(r − μ − b_u) / (λ_m + n_m)``, then ``b_u``), which converge slowly along a few
  directions (on 5M generated ratings its 10 sweeps leave predictions up to 3e-4 from the minimizer's,
  ~100 sweeps reach 1e-9); here it is solved by conjugate gradients on the movie biases with the user
  biases eliminated (the sweeps' own division as preconditioner): 6 iterations there, each two sparse
  products over the rows like a sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tasks.cg import conjugate_gradients, count_matrix
from tasks.scoring import Targets, clipped

BASELINES = ("global_mean", "user_mean", "movie_mean", "bias")


def group_means(index: np.ndarray, y: np.ndarray, size: int, fallback: float) -> np.ndarray:
    """Mean of y per group (0..size-1); ``fallback`` for groups without rows."""
    counts = np.bincount(index, minlength=size)
    sums = np.bincount(index, weights=y, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


@dataclass
class BiasModel:
    mean: float
    user_bias: np.ndarray
    movie_bias: np.ndarray
    iterations: int = 0

    def predict(self, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        return self.mean + self.user_bias[user_idx] + self.movie_bias[movie_idx]


def fit_bias_model(
    user_idx: np.ndarray,
    movie_idx: np.ndarray,
    y: np.ndarray,
    n_users: int,
    n_movies: int,
    reg_user: float = 15.0,
    reg_movie: float = 10.0,
    tol: float = 1e-10,
) -> BiasModel:
    """Regularized user + movie biases (see the module docstring), O(rows) per CG iteration, until the
    remaining error changes the training predictions by about ``tol`` (RMS) or less."""
    y = np.asarray(y, dtype=np.float64)
    mean = float(y.mean())
    counts = count_matrix(user_idx, movie_idx, n_users, n_movies)
    n_u = np.bincount(user_idx, minlength=n_users)
    n_m = np.bincount(movie_idx, minlength=n_movies)
    e_u = np.bincount(user_idx, weights=y, minlength=n_users) - mean * n_u  # Σ (r − μ) per user
    e_m = np.bincount(movie_idx, weights=y, minlength=n_movies) - mean * n_m
    d_u, d_m = reg_user + n_u, reg_movie + n_m
    d_u[d_u == 0], d_m[d_m == 0] = 1.0, 1.0  # no rows and no penalty (λ = 0): nothing to fit, bias 0
    # b_u = (e_u − C b_m) / d_u for given b_m; what remains for b_m: d_m b_m − Cᵀ (C b_m / d_u) = e_m − Cᵀ (e_u / d_u)
    movie_bias, iterations = conjugate_gradients(
        lambda b_m: d_m * b_m - counts.T @ ((counts @ b_m) / d_u), lambda r: r / d_m,
        e_m - counts.T @ (e_u / d_u), np.zeros(n_movies), tol * np.sqrt(max(len(y), 1)), max_iter=1000,
    )  # fmt: skip
    user_bias = (e_u - counts @ movie_bias) / d_u
    return BiasModel(mean=mean, user_bias=user_bias, movie_bias=movie_bias, iterations=iterations)


@dataclass
class PartialScores:
    """A predictor of the form const + per_user[u] + per_movie[m] (either part may be absent)."""

    const: float
    per_user: np.ndarray | None = None
    per_movie: np.ndarray | None = None

    def predict(self, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        return self.rows_predictor(user_idx, movie_idx)(slice(None))

    def rows_predictor(self, user_idx: np.ndarray, movie_idx: np.ndarray) -> Callable[[slice], np.ndarray]:
        """``predict`` for a slice of the rows at a time."""

        def predict(rows: slice) -> np.ndarray:
            pred = np.full(len(user_idx[rows]), self.const)
            if self.per_user is not None:
                pred += self.per_user[user_idx[rows]]
            if self.per_movie is not None:
                pred += self.per_movie[movie_idx[rows]]
            return pred

        return predict


def fit_baselines(
    user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, train: np.ndarray, n_users: int, n_movies: int,
    reg_user: float = 15.0, reg_movie: float = 10.0,
) -> dict[str, PartialScores]:  # fmt: skip
    """Each baseline fitted on the rows at the ``train`` positions (see ``fitted_baselines``)."""
    return fitted_baselines(user_idx[train], movie_idx[train], y[train], n_users, n_movies, reg_user, reg_movie)


def fitted_baselines(
    u: np.ndarray, m: np.ndarray, y: np.ndarray, n_users: int, n_movies: int, reg_user: float = 15.0,
    reg_movie: float = 10.0,
) -> dict[str, PartialScores]:  # fmt: skip
    """Each baseline fitted on the training rows (u, m, y), as per-user/per-movie score vectors (no
    per-row arrays)."""
    yt = np.asarray(y, dtype=np.float64)
    mean = float(yt.mean())
    bias = fit_bias_model(u, m, yt, n_users, n_movies, reg_user, reg_movie)
    return {
        "global_mean": PartialScores(mean),
        "user_mean": PartialScores(0.0, per_user=group_means(u, yt, n_users, mean)),
        "movie_mean": PartialScores(0.0, per_movie=group_means(m, yt, n_movies, mean)),
        "bias": PartialScores(bias.mean, per_user=bias.user_bias, per_movie=bias.movie_bias),
    }


def baseline_predictions(
    user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, train: np.ndarray, n_users: int, n_movies: int,
    reg_user: float = 15.0, reg_movie: float = 10.0,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Each baseline's prediction for every row, fitted on the training rows only."""
    fitted = fit_baselines(user_idx, movie_idx, y, train, n_users, n_movies, reg_user, reg_movie)
    return {name: scores.predict(user_idx, movie_idx) for name, scores in fitted.items()}


def baseline_metrics(
    user_idx: np.ndarray,
    movie_idx: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    n_users: int,
    n_movies: int,
    reg_user: float = 15.0,
    reg_movie: float = 10.0,
) -> dict[str, dict[str, float]]:
    """{baseline: {train_rmse, train_mae, train_r2, test_rmse, test_mae, test_r2}} of freshly fitted
    baselines (see ``fitted_metrics``)."""
    fitted = fit_baselines(user_idx, movie_idx, y, train, n_users, n_movies, reg_user, reg_movie)
    return fitted_metrics(fitted, user_idx, movie_idx, y, train, test)


def fitted_metrics(
    fitted: dict[str, PartialScores], user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray,
    train: np.ndarray, test: np.ndarray, scale: tuple[float, float] | list[float] | None = None,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """The metrics of fitted baselines on the rows at the ``train`` and ``test`` positions (see
    ``side_metrics``)."""
    sides = {side: (user_idx[rows], movie_idx[rows], y[rows]) for side, rows in (("train", train), ("test", test))}
    return side_metrics(fitted, sides, scale)


def side_metrics(
    fitted: dict[str, PartialScores], sides: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    scale: tuple[float, float] | list[float] | None = None, test_predictions: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """{baseline: {train_rmse, train_mae, train_r2, test_rmse, ...}} of fitted baselines on each side's
    rows ({'train': (u, m, y), 'test': (u, m, y)}), predictions clipped to ``scale`` when given and
    scored block by block of rows; ``test_predictions``, when given, receives each baseline's
    predictions of all the test rows."""
    out: dict[str, dict[str, float]] = {name: {} for name in fitted}
    for side, (users, movies, ratings) in sides.items():
        target = Targets(ratings)
        for name, scores in fitted.items():
            if side == "test" and test_predictions is not None:
                test_predictions[name] = clipped(scores.predict(users, movies), scale, in_place=True)
                values = target.metrics(test_predictions[name])
            else:
                predict = scores.rows_predictor(users, movies)
                values = target.metrics_of(lambda rows, predict=predict: clipped(predict(rows), scale, in_place=True))
            for metric, value in values.items():
                out[name][f"{side}_{metric}"] = value
    return out
