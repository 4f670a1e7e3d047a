"""Split, fit the Ridge (``tasks/ridge.py``), evaluate against the global-mean baseline, rank the
coefficients; optionally pick alpha from a list on a validation part of the training rows."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from prefect import task
from pydantic import BaseModel

from tasks.caching import TASK_OPTIONS, run_logger
from tasks.ridge import (
    FeatureMoments,
    RidgeFit,
    RowStats,
    centred_system,
    dense_ridge_fit,
    feature_moments,
    row_stats,
    solve,
    solve_path,
)
from tasks.baselines import baseline_metrics
from tasks.hybrid import HybridFit, HybridSystem, hybrid_fit
from tasks.scoring import regression_metrics
from tasks.splits import split_positions, split_rows
from tasks.store import Store, get_array, get_json, get_table

log = logging.getLogger(__name__)


def top_coefficients(coef: np.ndarray, names: list[str], k: int) -> list[dict]:
    """The k largest |coef|, as the notebook ranked them: [{rank, name, coef, index}, ...]."""
    return ranked(coef, np.abs(coef), names, k)


def ranked(coef: np.ndarray, score: np.ndarray, names: list[str], k: int, **extra: np.ndarray) -> list[dict]:
    """The k features with the largest score (ties: lower index first), with their coef and extras."""
    order = np.argsort(-score, kind="stable")[:k]
    return [
        {"rank": r + 1, "name": names[j], "coef": float(coef[j]), "index": int(j),
         **{key: float(values[j]) for key, values in extra.items()}}
        for r, j in enumerate(order)
    ]  # fmt: skip


def feature_rankings(coef: np.ndarray, moments: FeatureMoments, names: list[str], k: int) -> dict[str, list[dict]]:
    """Three rankings: raw |coef| (not comparable across units: age in years vs one-hots vs unit-norm
    embedding dimensions), standardized |coef| × std (the change in rating per standard deviation),
    and |correlation with the rating|."""
    standardized = np.abs(coef) * moments.std
    extra = {"std": moments.std, "standardized": standardized, "correlation": moments.correlation}
    return {
        "coef": ranked(coef, np.abs(coef), names, k, **extra),
        "standardized": ranked(coef, standardized, names, k, **extra),
        "correlation": ranked(coef, np.abs(moments.correlation), names, k, **extra),
    }


def pick_solver(solver: str, n_rows: int, n_features: int) -> str:
    """'auto': the dense reference only while the matrix is small (≤ 2M cells), factorized beyond."""
    if solver != "auto":
        return solver
    return "dense" if n_rows * n_features <= 2_000_000 else "factorized"


def validation_mask(n_train: int, validation_size: float, seed: int) -> np.ndarray:
    """True for the training rows (by position) that score the alphas; the rest fit them."""
    mask = np.zeros(n_train, dtype=bool)
    mask[split_rows(n_train, validation_size, seed)[1]] = True
    return mask


def partition_stats(
    U: np.ndarray,
    n_movies: int,
    user_idx: np.ndarray,
    movie_idx: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    part: int = 0,
    n_parts: int = 1,
    val_mask: np.ndarray | None = None,
) -> dict[str, RowStats]:
    """Row statistics of one contiguous partition of the training rows: {'all': ...}, or
    {'fit': ..., 'val': ...} when a validation mask splits them. Partitions add up (``reduce_stats``)."""
    lo, hi = len(train) * part // n_parts, len(train) * (part + 1) // n_parts
    rows = train[lo:hi]
    groups = {"all": rows} if val_mask is None else {"fit": rows[~val_mask[lo:hi]], "val": rows[val_mask[lo:hi]]}
    return {name: row_stats(U, n_movies, user_idx[r], movie_idx[r], y[r]) for name, r in groups.items()}


def reduce_stats(parts: list[dict[str, RowStats]]) -> dict[str, RowStats]:
    return {name: sum((p[name] for p in parts[1:]), parts[0][name]) for name in parts[0]}


def alpha_curve(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray,
    alphas: list[float], solver: str, validation_size: float, seed: int, stats: dict[str, RowStats] | None = None,
    val_mask: np.ndarray | None = None,
) -> list[dict]:  # fmt: skip
    """Validation RMSE of each alpha: fit on part of the rows, score on the rest (``validation_size``).

    The factorized solver gets every alpha from one eigendecomposition of the fit part's statistics
    (``stats['fit']`` when given, e.g. reduced from partitions); the dense one refits each alpha."""
    if val_mask is None:
        val_mask = validation_mask(len(y), validation_size, seed)
    fit_part, val_part = np.flatnonzero(~val_mask), np.flatnonzero(val_mask)
    if solver == "dense":
        args = (U, M, user_idx[fit_part], movie_idx[fit_part], y[fit_part])
        fits = [dense_ridge_fit(*args, alpha) for alpha in alphas]
    else:
        fit_stats = stats["fit"] if stats else row_stats(U, M.shape[0], user_idx[fit_part], movie_idx[fit_part], y[fit_part])
        fits = solve_path(centred_system(U, M, fit_stats), alphas)
    curve = []
    for fit in fits:
        pred = fit.predict(U, M, user_idx[val_part], movie_idx[val_part])
        curve.append({"alpha": fit.alpha, "validation_rmse": regression_metrics(y[val_part], pred)["rmse"]})
    return curve


def evaluate(
    U: np.ndarray,
    M: np.ndarray,
    user_idx: np.ndarray,
    movie_idx: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    alpha: float,
    solver: str = "factorized",
    alphas: list[float] | None = None,
    validation_size: float = 0.1,
    seed: int = 0,
    stats: dict[str, RowStats] | None = None,
    ids: list[str] | tuple[str, ...] = (),
    id_alpha: float = 10.0,
    val_mask: np.ndarray | None = None,
) -> tuple[RidgeFit | HybridFit, dict]:
    """Fit on the train rows (alpha, or the best of ``alphas`` on a validation part of them); metrics
    of the model and of the global-mean baseline on both sides. ``stats``: the training rows'
    statistics reduced from partitions ({'all'} or {'fit', 'val'}); computed here when not given.
    ``ids``: the hybrid model with per-user/per-movie bias terms (tasks/hybrid.py). ``val_mask``: which
    training rows score the alphas (default: a random ``validation_size`` of them)."""
    if alphas and val_mask is None:
        val_mask = validation_mask(len(train), validation_size, seed + 1)
    if ids:
        fit, metrics = fit_hybrid(U, M, user_idx, movie_idx, y, train, alpha, alphas, val_mask, ids, id_alpha)
        return fit, score(fit, U, M, user_idx, movie_idx, y, train, test, metrics)
    solver = pick_solver(solver, len(train), U.shape[1] + M.shape[1])
    metrics: dict = {"solver": solver}
    if solver == "factorized" and stats is None:
        stats = partition_stats(U, M.shape[0], user_idx, movie_idx, y, train, val_mask=val_mask if alphas else None)
    if alphas:
        curve = alpha_curve(
            U, M, user_idx[train], movie_idx[train], y[train], alphas, solver, validation_size, seed + 1, stats, val_mask
        )
        alpha = min(curve, key=lambda point: point["validation_rmse"])["alpha"]
        metrics["alpha_curve"] = curve
    if solver == "dense":
        fit = dense_ridge_fit(U, M, user_idx[train], movie_idx[train], y[train], alpha)
        train_stats = row_stats(U, M.shape[0], user_idx[train], movie_idx[train], y[train])
    else:
        train_stats = stats["all"] if "all" in stats else stats["fit"] + stats["val"]
        fit = solve(centred_system(U, M, train_stats), alpha)
    fit.moments = feature_moments(U, M, train_stats)
    metrics["alpha"] = alpha
    return fit, score(fit, U, M, user_idx, movie_idx, y, train, test, metrics)


def fit_hybrid(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, train: np.ndarray,
    alpha: float, alphas: list[float] | None, val_mask: np.ndarray | None, ids, id_alpha: float,
) -> tuple[HybridFit, dict]:  # fmt: skip
    """The hybrid model on the training rows; alphas (if any) scored on a validation part of them."""
    user_ids, movie_ids = "user_id" in ids, "movie_id" in ids
    metrics: dict = {"solver": "hybrid", "ids": list(ids), "id_alpha": id_alpha}
    u, m, yt = user_idx[train], movie_idx[train], y[train]
    if alphas:
        fit_part, val_part = ~val_mask, val_mask
        system = HybridSystem(U, M, u[fit_part], m[fit_part], yt[fit_part], user_ids, movie_ids)
        curve, theta = [], None
        for candidate in alphas:
            candidate_fit, theta = hybrid_fit(system, candidate, id_alpha, theta)  # warm start along the path
            pred = candidate_fit.predict(U, M, u[val_part], m[val_part])
            curve.append({"alpha": candidate, "validation_rmse": regression_metrics(yt[val_part], pred)["rmse"]})
        alpha = min(curve, key=lambda point: point["validation_rmse"])["alpha"]
        metrics["alpha_curve"] = curve
    fit, _ = hybrid_fit(HybridSystem(U, M, u, m, yt, user_ids, movie_ids), alpha, id_alpha)
    fit.moments = feature_moments(U, M, row_stats(U, M.shape[0], u, m, yt))
    metrics.update(alpha=alpha, cg_iterations=fit.iterations)
    return fit, metrics


def score(
    fit: RidgeFit | HybridFit, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray,
    y: np.ndarray, train: np.ndarray, test: np.ndarray, metrics: dict,
) -> dict:  # fmt: skip
    """Add the model's and the global-mean baseline's R², RMSE, MAE on both sides to ``metrics``."""
    per_user, per_movie = fit.partial_scores(U, M)
    global_mean = float(np.mean(y[train], dtype=np.float64))
    for side, rows in (("train", train), ("test", test)):
        pred = per_user[user_idx[rows]] + per_movie[movie_idx[rows]] + fit.intercept
        for name, value in regression_metrics(y[rows], pred).items():
            metrics[f"{side}_{name}"] = value
        for name, value in regression_metrics(y[rows], np.full(len(rows), global_mean)).items():
            metrics[f"baseline_{side}_{name}"] = value
    metrics.update(global_mean=global_mean, intercept=fit.intercept)
    return metrics


def load_blocks(features: dict, rows: dict) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str]]:
    return get_array(features["U"]), get_array(features["M"]), get_table(rows["rows"]), get_json(features["names"])


def put_stats(store: Store, stats: dict[str, RowStats]) -> dict:
    """RowStats → JSON dict of store references (arrays as .npy)."""
    out = {}
    for name, st in stats.items():
        out[name] = {"n": st.n, "y_sum": st.y_sum, "y_sq": st.y_sq}
        for field in ("n_u", "n_m", "s_u", "s_m", "ctu"):
            out[name][field] = store.put_array(getattr(st, field)).model_dump()
    return out


def get_stats(refs: dict) -> dict[str, RowStats]:
    return {
        name: RowStats(
            n=r["n"], y_sum=r["y_sum"], y_sq=r["y_sq"], **{f: get_array(r[f]) for f in ("n_u", "n_m", "s_u", "s_m", "ctu")}
        )
        for name, r in refs.items()
    }


@task(name="split", **TASK_OPTIONS)
def split_task(rows: dict, split: BaseModel, validation_size: float, cache_dir: str) -> dict:
    """Train/test positions of the merged rows by split.strategy, reproducible from split.seed, and the
    validation part of the training rows (same strategy, seed + 1) that scores model.alphas: with the
    'movie' strategy its movies are unseen too, so alpha is chosen for cold start."""
    table = get_table(rows["rows"])
    timestamp = table["timestamp"].to_numpy() if "timestamp" in table.columns else None
    user_idx, movie_idx = table["user_idx"].to_numpy(), table["movie_idx"].to_numpy()
    train, test = split_positions(split.strategy, user_idx, movie_idx, timestamp, split.test_size, split.seed)
    val = split_positions(
        split.strategy, user_idx[train], movie_idx[train], None if timestamp is None else timestamp[train],
        validation_size, split.seed + 1,
    )[1]  # fmt: skip
    validation = np.zeros(len(train), dtype=bool)
    validation[val] = True
    run_logger(log).info(
        "split (%s): %d train, %d test rows (test_size=%s, seed=%d)",
        split.strategy, len(train), len(test), split.test_size, split.seed,
    )  # fmt: skip
    store = Store(cache_dir)
    return {"train": store.put_array(train).model_dump(), "test": store.put_array(test).model_dump(),
            "validation": store.put_array(validation).model_dump(), "n_train": len(train), "n_test": len(test)}  # fmt: skip


@task(name="gram", **TASK_OPTIONS)
def gram_task(
    features: dict, rows: dict, splits: dict, part: int, n_parts: int, with_validation: bool, cache_dir: str
) -> dict:
    """Row statistics of partition ``part`` of ``n_parts`` of the training rows (the map of a
    map-reduce; ``with_validation``: fit and validation parts apart, for the alpha path)."""
    U, table = get_array(features["U"]), get_table(rows["rows"])
    train = get_array(splits["train"])
    mask = get_array(splits["validation"]) if with_validation else None
    stats = partition_stats(
        U, features["n_movies"], table["user_idx"].to_numpy(), table["movie_idx"].to_numpy(),
        table["rating"].to_numpy(dtype=np.float64), train, part, n_parts, mask,
    )  # fmt: skip
    return put_stats(Store(cache_dir), stats)


@task(name="train", **TASK_OPTIONS)
def train_task(
    features: dict, rows: dict, splits: dict, partitions: list[dict], split: BaseModel, model: BaseModel, cache_dir: str
) -> dict:
    """Fit the Ridge (from the reduced partition statistics when given), evaluate against the
    global-mean baseline, rank the coefficients."""
    logger = run_logger(log)
    U, M, table, names = load_blocks(features, rows)
    user_idx, movie_idx = table["user_idx"].to_numpy(), table["movie_idx"].to_numpy()
    y = table["rating"].to_numpy(dtype=np.float64)
    train, test = get_array(splits["train"]), get_array(splits["test"])
    stats = reduce_stats([get_stats(p) for p in partitions]) if partitions else None
    fit, metrics = evaluate(
        U, M, user_idx, movie_idx, y, train, test, model.alpha, model.solver, model.alphas, model.validation_size,
        split.seed, stats, model.ids, model.id_alpha, get_array(splits["validation"]),
    )  # fmt: skip
    for point in metrics.get("alpha_curve", []):
        logger.info("alpha %s: validation RMSE %.4f", point["alpha"], point["validation_rmse"])
    rankings = feature_rankings(fit.coef, fit.moments, names, model.top_k)
    top = rankings["coef"]
    metrics["baselines"] = baseline_metrics(
        user_idx, movie_idx, y, train, test, U.shape[0], M.shape[0], model.bias_reg_user, model.bias_reg_movie
    )
    for name, figures in metrics["baselines"].items():
        logger.info(
            "baseline %s: test RMSE %.4f, MAE %.4f, R² %.4f", name, figures["test_rmse"], figures["test_mae"], figures["test_r2"]
        )
    logger.info(
        "Ridge(alpha=%s, %s solver%s): train R² %.4f, test R² %.4f, test RMSE %.4f (global-mean baseline %.4f), "
        "test MAE %.4f",
        metrics["alpha"], metrics["solver"], f", {len(partitions)} partitions" if partitions else "",
        metrics["train_r2"], metrics["test_r2"], metrics["test_rmse"], metrics["baseline_test_rmse"],
        metrics["test_mae"],
    )  # fmt: skip
    return {
        "coef": Store(cache_dir).put_array(fit.coef).model_dump(),
        "metrics": metrics,
        "top": top,
        "rankings": rankings,
        "n_train": len(train),
        "n_test": len(test),
    }
