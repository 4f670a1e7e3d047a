"""Split, Ridge regression on the user and movie blocks, metrics and ranked coefficients.

The Ridge is solved from the normal equations assembled per block, never from the rating x feature
matrix. With training rows r = (u, m), C the sparse users x movies count matrix and n_u, n_m its row
and column sums::

    XᵀX = [[Uᵀ diag(n_u) U, Uᵀ C M], [Mᵀ Cᵀ U, Mᵀ diag(n_m) M]]     Xᵀy = [Uᵀ s_u, Mᵀ s_m]

and, as ``sklearn.linear_model.Ridge(fit_intercept=True)`` does, the intercept is left unpenalized by
centring: ``Gc = XᵀX − n μμᵀ``, ``bc = Xᵀy − n μ ȳ``, ``w = (Gc + αI)⁻¹ bc``, ``b = ȳ − μ·w``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from prefect import task
from pydantic import BaseModel

from tasks.caching import TASK_OPTIONS, run_logger
from tasks.store import Store, get_array, get_json, get_table

log = logging.getLogger(__name__)


def split_rows(n_rows: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/test positions (sorted), reproducible from the seed; both sides non-empty."""
    if n_rows < 2:
        raise ValueError(f"cannot split {n_rows} row(s) into train and test")
    order = np.random.default_rng(seed).permutation(n_rows)
    n_test = min(max(int(round(n_rows * test_size)), 1), n_rows - 1)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


@dataclass
class RidgeFit:
    coef: np.ndarray  # (d_u + d_m,)
    intercept: float

    def predict(self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        d_u = U.shape[1]
        per_user = U @ self.coef[:d_u]
        per_movie = M @ self.coef[d_u:]
        return per_user[user_idx] + per_movie[movie_idx] + self.intercept


def normal_equations(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """XᵀX, Xᵀy, column sums Xᵀ1, Σy and n for the rows (user_idx, movie_idx, y), by blocks."""
    n = len(y)
    y = np.asarray(y, dtype=np.float64)
    counts = sp.csr_matrix(
        (np.ones(n), (user_idx, movie_idx)), shape=(U.shape[0], M.shape[0])
    )  # duplicates are summed
    n_u = np.asarray(counts.sum(axis=1)).ravel()
    n_m = np.asarray(counts.sum(axis=0)).ravel()
    s_u = np.bincount(user_idx, weights=y, minlength=U.shape[0])
    s_m = np.bincount(movie_idx, weights=y, minlength=M.shape[0])
    uu = U.T @ (U * n_u[:, None])
    mm = M.T @ (M * n_m[:, None])
    um = U.T @ (counts @ M)
    gram = np.block([[uu, um], [um.T, mm]])
    xty = np.concatenate([U.T @ s_u, M.T @ s_m])
    col_sums = np.concatenate([U.T @ n_u, M.T @ n_m])
    return gram, xty, col_sums, float(y.sum()), n


def ridge_fit(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, alpha: float
) -> RidgeFit:
    """Ridge with an unpenalized intercept on rows [U[user_idx] | M[movie_idx]], equal to sklearn's."""
    gram, xty, col_sums, y_sum, n = normal_equations(U, M, user_idx, movie_idx, y)
    mu = col_sums / n
    y_mean = y_sum / n
    centred = gram - n * np.outer(mu, mu)
    rhs = xty - n * mu * y_mean
    system = centred + alpha * np.eye(len(mu))
    try:
        coef = scipy.linalg.solve(system, rhs, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        coef = scipy.linalg.lstsq(system, rhs)[0]  # alpha = 0 with collinear one-hots
    return RidgeFit(coef=coef, intercept=float(y_mean - mu @ coef))


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², RMSE and MAE (R² as sklearn.metrics.r2_score)."""
    y = np.asarray(y, dtype=np.float64)
    err = y - np.asarray(pred, dtype=np.float64)
    ss_res = float(err @ err)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "rmse": float(np.sqrt(ss_res / len(y))),
        "mae": float(np.abs(err).mean()),
    }


def top_coefficients(coef: np.ndarray, names: list[str], k: int) -> list[dict]:
    """The k largest |coef|, as the notebook ranked them: [{rank, name, coef}, ...]."""
    order = np.argsort(-np.abs(coef), kind="stable")[:k]
    return [{"rank": r + 1, "name": names[j], "coef": float(coef[j]), "index": int(j)} for r, j in enumerate(order)]


def evaluate(
    U: np.ndarray,
    M: np.ndarray,
    user_idx: np.ndarray,
    movie_idx: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    alpha: float,
) -> tuple[RidgeFit, dict[str, float]]:
    """Fit on the train rows; metrics of the model and of the global-mean baseline on both sides."""
    fit = ridge_fit(U, M, user_idx[train], movie_idx[train], y[train], alpha)
    pred = fit.predict(U, M, user_idx, movie_idx)
    global_mean = float(np.mean(y[train], dtype=np.float64))
    metrics: dict[str, float] = {}
    for side, rows in (("train", train), ("test", test)):
        for name, value in regression_metrics(y[rows], pred[rows]).items():
            metrics[f"{side}_{name}"] = value
        for name, value in regression_metrics(y[rows], np.full(len(rows), global_mean)).items():
            metrics[f"baseline_{side}_{name}"] = value
    metrics["global_mean"] = global_mean
    metrics["intercept"] = fit.intercept
    return fit, metrics


def load_blocks(features: dict, rows: dict) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str]]:
    return get_array(features["U"]), get_array(features["M"]), get_table(rows["rows"]), get_json(features["names"])


@task(name="train", **TASK_OPTIONS)
def train_task(features: dict, rows: dict, split: BaseModel, model: BaseModel, cache_dir: str) -> dict:
    """Split, fit the Ridge, evaluate against the global-mean baseline, rank the coefficients."""
    logger = run_logger(log)
    U, M, table, names = load_blocks(features, rows)
    user_idx, movie_idx = table["user_idx"].to_numpy(), table["movie_idx"].to_numpy()
    y = table["rating"].to_numpy(dtype=np.float64)
    train, test = split_rows(len(y), split.test_size, split.seed)
    logger.info("split: %d train, %d test rows (test_size=%s, seed=%d)", len(train), len(test), split.test_size, split.seed)
    fit, metrics = evaluate(U, M, user_idx, movie_idx, y, train, test, model.alpha)
    top = top_coefficients(fit.coef, names, model.top_k)
    logger.info(
        "Ridge(alpha=%s): train R² %.4f, test R² %.4f, test RMSE %.4f (global-mean baseline %.4f), test MAE %.4f",
        model.alpha, metrics["train_r2"], metrics["test_r2"], metrics["test_rmse"], metrics["baseline_test_rmse"],
        metrics["test_mae"],
    )  # fmt: skip
    return {
        "coef": Store(cache_dir).put_array(fit.coef).model_dump(),
        "metrics": metrics,
        "top": top,
        "n_train": len(train),
        "n_test": len(test),
    }
