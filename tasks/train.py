"""Fit the model and evaluate it: the Ridge (``tasks/ridge.py``) or the hybrid with id bias terms
(``tasks/hybrid.py``), alpha chosen on the validation part when ``model.alphas`` is set, metrics beside
the global-mean and the other baselines, the coefficients ranked. Splitting lives in ``splits.py``,
the partition statistics in ``ridge.py``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from configs.schema import ModelConfig
from tasks.baselines import fitted_baselines, side_metrics
from tasks.caching import run_logger
from tasks.features import load_blocks
from tasks.results import FeatureBlocks, MergedRows, SplitRows, StatsRefs, TrainedModel
from tasks.ridge import (
    BlockScores,
    FeatureMoments,
    RidgeFit,
    RowStats,
    centred_system,
    dense_ridge_fit,
    feature_moments,
    get_stats,
    partition_stats,
    reduce_stats,
    row_stats,
    solve,
    solve_path,
)
from tasks.scoring import Targets, clipped
from tasks.stage import stage
from tasks.support import rmse_by_movie_support
from tasks.store import Store, get_array

if TYPE_CHECKING:  # the fm and the hybrid (scipy) are imported where they are fitted: a cached run never loads them
    from tasks.fm import FMFit
    from tasks.hybrid import HybridFit, HybridSystem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rows:
    """Rating rows: who (position in the user block), what (position in the movie block), the rating."""

    user_idx: np.ndarray
    movie_idx: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame, positions: np.ndarray | None = None) -> Rows:
        """The rows of a merged-rows table (only those at ``positions`` when given), ratings as float64."""
        columns = [table[c].to_numpy() for c in ("user_idx", "movie_idx", "rating")]
        if positions is not None:  # gathered before the ratings are widened: half the bytes moved
            columns = [column[positions] for column in columns]
        return cls(columns[0], columns[1], columns[2].astype(np.float64, copy=positions is None))

    def take(self, positions: np.ndarray) -> Rows:
        return Rows(self.user_idx[positions], self.movie_idx[positions], self.y[positions])

    def __len__(self) -> int:
        return len(self.y)


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


def reported(trained: TrainedModel, top_k: int) -> TrainedModel:
    """The trained model with its rankings cut to the ``top_k`` features that are reported."""
    return trained.model_copy(
        update={"top": trained.top[:top_k], "rankings": {name: r[:top_k] for name, r in trained.rankings.items()}}
    )


def pick_solver(solver: str, n_rows: int, n_features: int) -> str:
    """'auto': the dense reference only while the matrix is small (≤ 2M cells), factorized beyond.
    Decided once, in the flow; the train stage gets the result."""
    if solver != "auto":
        return solver
    return "dense" if n_rows * n_features <= 2_000_000 else "factorized"


def grid_edge(alpha: float, alphas: list[float]) -> str | None:
    """'lowest' or 'highest' when the chosen alpha is an end of its grid (the best one may lie
    beyond it), else None."""
    if len(alphas) > 1 and alpha in (min(alphas), max(alphas)):
        return "lowest" if alpha == min(alphas) else "highest"
    return None


def warn_at_grid_edge(alpha: float, alphas: list[float], logger) -> None:
    """The chosen alpha at an end of its grid means the best one may lie beyond it."""
    side = grid_edge(alpha, alphas)
    if side:
        logger.warning(
            "alpha %s is the %s value of model.alphas %s: the best alpha may lie beyond the grid; extend it "
            "(e.g. --set 'model.alphas=[...]')", alpha, side, sorted(alphas),
        )  # fmt: skip


def best_alpha(fits: Iterable[BlockScores], U: np.ndarray, M: np.ndarray, validation: Rows) -> tuple[float, list[dict]]:
    """The alpha path, for every model kind: score each candidate fit (one per alpha) on the
    validation rows; the alpha with the lowest RMSE, and the curve."""
    target = Targets(validation.y)
    curve = [
        {"alpha": fit.alpha,
         "validation_rmse": target.metrics(fit.predict(U, M, validation.user_idx, validation.movie_idx))["rmse"]}
        for fit in fits
    ]  # fmt: skip
    return min(curve, key=lambda point: point["validation_rmse"])["alpha"], curve


def ridge_path(
    U: np.ndarray, M: np.ndarray, rows: Rows, alphas: list[float], solver: str, stats: RowStats | None = None
) -> Iterator[RidgeFit]:
    """A Ridge fit per alpha: the factorized solver gets them all from one eigendecomposition (of
    ``stats`` when given, e.g. reduced from partitions), the dense one refits each."""
    if solver == "dense":
        return (dense_ridge_fit(U, M, rows.user_idx, rows.movie_idx, rows.y, alpha) for alpha in alphas)
    stats = stats or row_stats(U, M.shape[0], rows.user_idx, rows.movie_idx, rows.y)
    return iter(solve_path(centred_system(U, M, stats), alphas))


def hybrid_system(U: np.ndarray, M: np.ndarray, rows: Rows, ids, id_alpha: float) -> HybridSystem:
    from tasks.hybrid import HybridSystem

    return HybridSystem(U, M, rows.user_idx, rows.movie_idx, rows.y, "user_id" in ids, "movie_id" in ids, id_alpha)


def hybrid_path(U: np.ndarray, M: np.ndarray, rows: Rows, alphas: list[float], ids, id_alpha: float) -> Iterator[HybridFit]:
    """A hybrid fit per alpha on one system, each warm-started from the previous alpha's solution."""
    from tasks.hybrid import hybrid_fit

    system = hybrid_system(U, M, rows, ids, id_alpha)
    del rows  # the system holds what it needs of them
    start = None
    for alpha in alphas:
        fit = hybrid_fit(system, alpha, start)
        start = fit.solution
        yield fit


def alpha_curve(
    U: np.ndarray, M: np.ndarray, rows: Rows, alphas: list[float], solver: str, validation: np.ndarray,
    stats: RowStats | None = None,
) -> list[dict]:  # fmt: skip
    """Validation RMSE of each Ridge alpha: fit on the rows outside ``validation`` (a mask), score on
    the rows inside."""
    return best_alpha(ridge_path(U, M, rows.take(~validation), alphas, solver, stats), U, M, rows.take(validation))[1]


def evaluate(U: np.ndarray, M: np.ndarray, rows: Rows, train: np.ndarray, test: np.ndarray, **options) -> tuple[RidgeFit | HybridFit | FMFit, dict]:
    """``evaluate_sides`` on the rows at the ``train`` and ``test`` positions of ``rows``."""
    return evaluate_sides(U, M, rows.take(train), rows.take(test), **options)


def evaluate_sides(
    U: np.ndarray,
    M: np.ndarray,
    fitting: Rows,
    tested: Rows,
    *,
    alpha: float,
    solver: str = "factorized",
    alphas: list[float] | None = None,
    validation: np.ndarray | None = None,
    stats: dict[str, RowStats] | None = None,
    ids: list[str] | tuple[str, ...] = (),
    id_alpha: float = 10.0,
    fm: dict | None = None,
    predictions: dict[str, np.ndarray] | None = None,
    scale: tuple[float, float] | list[float] | None = None,
) -> tuple[RidgeFit | HybridFit | FMFit, dict]:
    """Fit on the ``fitting`` rows (``alpha``, or the best of ``alphas`` scored on the ``validation``
    mask over them); metrics of the model and of the global-mean baseline on both sides (``tested``:
    the test rows). ``solver``: 'dense' or 'factorized' (already decided, see ``pick_solver``);
    ``stats``: the fitting rows' statistics reduced from partitions ({'all'} or {'fit', 'val'}),
    computed here when not given. ``ids``: the hybrid model with per-user/per-movie bias terms. ``fm``:
    the factorization machine's settings (``fit_fm`` keyword arguments) instead of any of these.
    ``predictions``: a dict that receives the model's predictions of the test rows under 'test' (so
    callers need not predict again). ``scale``: the rating scale (low, high) predictions are clipped
    to before scoring."""
    sides = {"train": fitting, "test": tested}
    if fm is not None:
        from tasks.fm import fit_fm

        fit = fit_fm(U, M, fitting.user_idx, fitting.movie_idx, fitting.y, **fm)
        fit.moments = feature_moments(U, M, row_stats(U, M.shape[0], fitting.user_idx, fitting.movie_idx, fitting.y))
        metrics = {"solver": "fm", "alpha": None, **{k: v for k, v in fm.items() if k in ("rank", "iterations", "seed")}}
        metrics.update(text_components=fit.text_components, text_bias=fit.text_bias)
        return fit, score(fit, U, M, sides, metrics, predictions, scale)
    if alphas and validation is None:
        raise ValueError("evaluate: alphas need a validation mask over the train rows")
    metrics: dict = {"solver": "hybrid" if ids else solver}
    if ids:
        from tasks.hybrid import hybrid_fit

        metrics.update(ids=list(ids), id_alpha=id_alpha)
        start = None
        if alphas:
            path = list(hybrid_path(U, M, fitting.take(~validation), alphas, ids, id_alpha))
            alpha, metrics["alpha_curve"] = best_alpha(path, U, M, fitting.take(validation))
            metrics["cg_iterations_path"] = [fit.iterations for fit in path]
            start = next(fit.solution for fit in path if fit.alpha == alpha)  # the same alpha without the validation rows
            del path  # each fit holds its per-user biases and solution
        system = hybrid_system(U, M, fitting, ids, id_alpha)
        fit, train_stats = hybrid_fit(system, alpha, start), system.stats
        metrics["cg_iterations"] = fit.iterations
    else:
        if solver == "factorized" and stats is None:
            stats = partition_stats(
                U, M.shape[0], fitting.user_idx, fitting.movie_idx, fitting.y, np.arange(len(fitting)),
                val_mask=validation if alphas else None,
            )  # fmt: skip
        if alphas:
            alpha, metrics["alpha_curve"] = best_alpha(
                ridge_path(U, M, fitting.take(~validation), alphas, solver, stats["fit"] if stats else None),
                U, M, fitting.take(validation),
            )  # fmt: skip
        if solver == "dense":
            fit = dense_ridge_fit(U, M, fitting.user_idx, fitting.movie_idx, fitting.y, alpha)
            train_stats = row_stats(U, M.shape[0], fitting.user_idx, fitting.movie_idx, fitting.y)
        else:
            train_stats = stats["all"] if "all" in stats else stats["fit"] + stats["val"]
            fit = solve(centred_system(U, M, train_stats), alpha)
    fit.moments = feature_moments(U, M, train_stats)
    metrics["alpha"] = alpha
    return fit, score(fit, U, M, sides, metrics, predictions, scale)


def score(
    fit: BlockScores | FMFit, U: np.ndarray, M: np.ndarray, sides: dict[str, Rows], metrics: dict,
    predictions: dict[str, np.ndarray] | None = None, scale: tuple[float, float] | list[float] | None = None,
) -> dict:  # fmt: skip
    """Add the model's and the global-mean baseline's R², RMSE, MAE on both sides ({'train': rows,
    'test': rows}) to ``metrics`` (and the model's predictions of the test rows to ``predictions['test']``
    when given). The training side's are scored block by block of rows, never all at once."""
    global_mean = float(np.mean(sides["train"].y, dtype=np.float64))
    for side, part in sides.items():
        target = Targets(part.y)
        if side == "train" and isinstance(fit, BlockScores):
            predict = fit.rows_predictor(U, M, part.user_idx, part.movie_idx)
            model_metrics = target.metrics_of(lambda rows, predict=predict: clipped(predict(rows), scale, in_place=True))
        else:
            pred = clipped(fit.predict(U, M, part.user_idx, part.movie_idx), scale, in_place=True)  # a fresh array
            if predictions is not None and side == "test":
                predictions["test"] = pred
            model_metrics = target.metrics(pred)
        for name, value in model_metrics.items():
            metrics[f"{side}_{name}"] = value
        for name, value in target.metrics_of(lambda rows, y=part.y: np.full(len(y[rows]), global_mean)).items():
            metrics[f"baseline_{side}_{name}"] = value
    metrics.update(global_mean=global_mean, intercept=fit.intercept)
    return metrics


@stage("train", result=TrainedModel)
def fitted_model(
    features: FeatureBlocks, rows: MergedRows, split: SplitRows, partitions: list[dict[str, StatsRefs]],
    model: ModelConfig, solver: str, cache_dir: str, rating_scale: list[float] | None = None,
) -> TrainedModel:  # fmt: skip
    """Fit (from the reduced partition statistics when given), evaluate against the baselines, rank
    every coefficient. ``model.top_k`` is not read here: the flow passes a fixed value so that
    changing it never refits (``reported`` cuts the rankings to it)."""
    logger = run_logger(log)
    U, M, table, names = load_blocks(features, rows)
    train, test = get_array(split.train), get_array(split.test)
    fitting, tested = Rows.of(table, train), Rows.of(table, test)  # each side gathered once, for every use
    del table
    stats = reduce_stats([get_stats(p) for p in partitions]) if partitions else None
    fm = None
    if model.kind == "fm":
        fm = dict(movie_groups=features.movie_groups, rank=model.rank, iterations=model.iterations,
                  text_components=model.text_components, text_bias=model.text_bias, seed=model.seed,
                  logger=logger)  # fmt: skip
    predicted: dict[str, np.ndarray] = {}
    fit, metrics = evaluate_sides(
        U, M, fitting, tested, alpha=model.alpha, solver=solver, alphas=model.alphas,
        validation=get_array(split.validation), stats=stats, ids=model.ids, id_alpha=model.id_alpha, fm=fm,
        predictions=predicted, scale=rating_scale,
    )  # fmt: skip
    metrics["kind"] = model.kind
    for point in metrics.get("alpha_curve", []):
        logger.info("alpha %s: validation RMSE %.4f", point["alpha"], point["validation_rmse"])
    if "alpha_curve" in metrics:
        warn_at_grid_edge(metrics["alpha"], model.alphas, logger)
        metrics["alpha_at_grid_edge"] = grid_edge(metrics["alpha"], model.alphas)
    rankings = feature_rankings(fit.coef, fit.moments, names, len(names))  # all: model.top_k applies when reported
    baselines = fitted_baselines(fitting.user_idx, fitting.movie_idx, fitting.y, U.shape[0], M.shape[0],
                                 model.bias_reg_user, model.bias_reg_movie)  # fmt: skip
    baseline_tests: dict[str, np.ndarray] = {}
    metrics["baselines"] = side_metrics(
        baselines, {side: (r.user_idx, r.movie_idx, r.y) for side, r in (("train", fitting), ("test", tested))},
        rating_scale, baseline_tests,
    )  # fmt: skip
    metrics["rmse_by_movie_support"] = rmse_by_movie_support(
        fitting.movie_idx, tested.movie_idx, tested.y, M.shape[0], {"model": predicted["test"], **baseline_tests}
    )
    for name, figures in metrics["baselines"].items():
        logger.info(
            "baseline %s: test RMSE %.4f, MAE %.4f, R² %.4f", name, figures["test_rmse"], figures["test_mae"], figures["test_r2"]
        )
    described = (f"FM(rank={model.rank}, {model.iterations} iterations, learned text column "
                 f"{'on' if metrics.get('text_bias') else 'off'}, {metrics.get('text_components')} text components)"
                 if model.kind == "fm" else f"Ridge(alpha={metrics['alpha']}, {metrics['solver']} solver"
                 + (f", {len(partitions)} partitions)" if partitions else ")"))  # fmt: skip
    logger.info(
        "%s: train R² %.4f, test R² %.4f, test RMSE %.4f (global-mean baseline %.4f), test MAE %.4f",
        described,
        metrics["train_r2"], metrics["test_r2"], metrics["test_rmse"], metrics["baseline_test_rmse"],
        metrics["test_mae"],
    )  # fmt: skip
    return TrainedModel(
        coef=Store(cache_dir).put_array(fit.coef), metrics=metrics, top=rankings["coef"], rankings=rankings,
        n_train=len(train), n_test=len(test),
    )  # fmt: skip
