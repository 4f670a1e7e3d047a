"""Ridge regression on rows ``[U[u] | M[m]]`` without the rating x feature matrix.

With training rows r = (u, m), C the sparse users x movies count matrix, n_u / n_m its row / column
sums and s_u / s_m the per-user / per-movie rating sums::

    XᵀX = [[Uᵀ diag(n_u) U, (Cᵀ U)ᵀ M], [Mᵀ (Cᵀ U), Mᵀ diag(n_m) M]]     Xᵀy = [Uᵀ s_u, Mᵀ s_m]

Everything that touches the ratings is in ``RowStats`` (counts, sums and CᵀU: O(ratings·d_u) to
build, O((users + movies)·d_u) to hold), and row sets add up, so partitions of the ratings can be
summarised separately (threads or Dask) and reduced. The rest costs O(movies·d_m² + users·d_u² + d³).

The intercept is unpenalized exactly as ``sklearn.linear_model.Ridge(fit_intercept=True)``: centre
with the training means, ``Gc = XᵀX − n μμᵀ``, ``bc = Xᵀy − n μ ȳ``, ``w = (Gc + αI)⁻¹ bc``,
``b = ȳ − μ·w``. One eigendecomposition of ``Gc`` solves every alpha.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tasks.results import FeatureBlocks, MergedRows, SplitRows, StatsRefs
from tasks.stage import stage
from tasks.store import Store, get_array, get_table

STAT_ARRAYS = ("n_u", "n_m", "s_u", "s_m", "ctu")


@dataclass
class RowStats:
    """Sufficient statistics of a set of rating rows for the Ridge normal equations."""

    n: int
    y_sum: float
    y_sq: float  # Σ y²
    n_u: np.ndarray  # (users,) ratings per user
    n_m: np.ndarray  # (movies,) ratings per movie
    s_u: np.ndarray  # (users,) rating sums per user
    s_m: np.ndarray  # (movies,) rating sums per movie
    ctu: np.ndarray  # (movies, d_u) = Cᵀ U

    def __add__(self, other: RowStats) -> RowStats:
        return RowStats(
            n=self.n + other.n,
            y_sum=self.y_sum + other.y_sum,
            y_sq=self.y_sq + other.y_sq,
            n_u=self.n_u + other.n_u,
            n_m=self.n_m + other.n_m,
            s_u=self.s_u + other.s_u,
            s_m=self.s_m + other.s_m,
            ctu=self.ctu + other.ctu,
        )


def row_stats(U: np.ndarray, n_movies: int, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray) -> RowStats:
    """Summarise rows (user_idx, movie_idx, y); O(rows·d_u)."""
    import scipy.sparse as sp  # scipy is imported where it is used: a fully cached run never loads it

    n_users = U.shape[0]
    y = np.asarray(y, dtype=np.float64)
    counts = sp.csr_matrix((np.ones(len(y)), (movie_idx, user_idx)), shape=(n_movies, n_users))
    return RowStats(
        n=len(y),
        y_sum=float(y.sum()),
        y_sq=float(y @ y),
        n_u=np.bincount(user_idx, minlength=n_users).astype(np.float64),
        n_m=np.bincount(movie_idx, minlength=n_movies).astype(np.float64),
        s_u=np.bincount(user_idx, weights=y, minlength=n_users),
        s_m=np.bincount(movie_idx, weights=y, minlength=n_movies),
        ctu=np.asarray(counts @ U),
    )


@dataclass
class FeatureMoments:
    std: np.ndarray  # (d,) standard deviation of each feature over the rows
    correlation: np.ndarray  # (d,) Pearson correlation of each feature with the rating (0 if constant)


def feature_moments(U: np.ndarray, M: np.ndarray, stats: RowStats) -> FeatureMoments:
    """Per-feature std and correlation with y over the rows, from their statistics: O((users + movies)·d)."""
    n = stats.n
    mean = np.concatenate([U.T @ stats.n_u, M.T @ stats.n_m]) / n
    mean_sq = np.concatenate([weighted_square_sums(U, stats.n_u), weighted_square_sums(M, stats.n_m)]) / n
    mean_xy = np.concatenate([U.T @ stats.s_u, M.T @ stats.s_m]) / n
    y_mean = stats.y_sum / n
    std = np.sqrt(np.clip(mean_sq - mean * mean, 0.0, None))
    std_y = np.sqrt(max(stats.y_sq / n - y_mean * y_mean, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where((std > 1e-12) & (std_y > 0), (mean_xy - mean * y_mean) / (std * std_y), 0.0)
    return FeatureMoments(std=std, correlation=corr)


def weighted_square_sums(X: np.ndarray, weights: np.ndarray, rows_per_block: int = 4096) -> np.ndarray:
    """Σ_i weights[i] · X[i, j]² for each column j, by blocks of rows (no squared copy of all of X)."""
    out = np.zeros(X.shape[1])
    for start in range(0, len(X), rows_per_block):
        block = X[start : start + rows_per_block]
        out += (block * block).T @ weights[start : start + rows_per_block]
    return out


@dataclass
class CentredSystem:
    """``Gc w = bc`` plus what is needed to recover the intercept."""

    gram: np.ndarray  # Gc (d x d)
    rhs: np.ndarray  # bc (d,)
    mean_x: np.ndarray  # μ (d,)
    mean_y: float


def centred_system(U: np.ndarray, M: np.ndarray, stats: RowStats) -> CentredSystem:
    uu = U.T @ (U * stats.n_u[:, None])
    mm = M.T @ (M * stats.n_m[:, None])
    um = stats.ctu.T @ M
    gram = np.block([[uu, um], [um.T, mm]])
    xty = np.concatenate([U.T @ stats.s_u, M.T @ stats.s_m])
    mean_x = np.concatenate([U.T @ stats.n_u, M.T @ stats.n_m]) / stats.n
    mean_y = stats.y_sum / stats.n
    gram -= stats.n * np.outer(mean_x, mean_x)
    return CentredSystem(gram=gram, rhs=xty - stats.n * mean_x * mean_y, mean_x=mean_x, mean_y=mean_y)


class BlockScores:
    """A model whose prediction for (u, m) is per_user[u] + per_movie[m] + intercept (the Ridge, the
    hybrid, the baselines' bias model): subclasses give ``partial_scores``."""

    intercept: float

    def partial_scores(self, U: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def predict(self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        """A gather of per-user and per-movie partial scores; no feature matrix."""
        return self.rows_predictor(U, M, user_idx, movie_idx)(slice(None))

    def rows_predictor(
        self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray
    ) -> Callable[[slice], np.ndarray]:
        """``predict`` for a slice of the rows at a time (the partial scores computed once)."""
        per_user, per_movie = self.partial_scores(U, M)
        return lambda rows: per_user[user_idx[rows]] + per_movie[movie_idx[rows]] + self.intercept


@dataclass
class RidgeFit(BlockScores):
    coef: np.ndarray  # (d_u + d_m,)
    intercept: float
    alpha: float
    moments: FeatureMoments | None = None  # of the training rows, when evaluate() computed them

    def partial_scores(self, U: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d_u = U.shape[1]
        return U @ self.coef[:d_u], M @ self.coef[d_u:]


def solve(system: CentredSystem, alpha: float) -> RidgeFit:
    import scipy.linalg

    matrix = system.gram + alpha * np.eye(len(system.rhs))
    try:
        coef = scipy.linalg.solve(matrix, system.rhs, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        coef = scipy.linalg.lstsq(matrix, system.rhs)[0]  # alpha = 0 with collinear one-hots
    return RidgeFit(coef=coef, intercept=float(system.mean_y - system.mean_x @ coef), alpha=alpha)


def solve_path(system: CentredSystem, alphas: list[float]) -> list[RidgeFit]:
    """Every alpha from one eigendecomposition of Gc: w(α) = V diag(1/(λ+α)) Vᵀ bc."""
    import scipy.linalg

    eigvals, eigvecs = scipy.linalg.eigh(system.gram)
    eigvals = np.clip(eigvals, 0.0, None)  # Gc is PSD; tiny negative values are rounding
    projected = eigvecs.T @ system.rhs
    fits = []
    for alpha in alphas:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(eigvals + alpha > 0, 1.0 / (eigvals + alpha), 0.0)  # alpha 0: pseudo-inverse
        coef = eigvecs @ (scale * projected)
        fits.append(RidgeFit(coef=coef, intercept=float(system.mean_y - system.mean_x @ coef), alpha=alpha))
    return fits


def ridge_fit(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, alpha: float
) -> RidgeFit:
    """Factorized Ridge on rows [U[user_idx] | M[movie_idx]]; equal to sklearn's Ridge on that matrix."""
    return solve(centred_system(U, M, row_stats(U, M.shape[0], user_idx, movie_idx, y)), alpha)


def dense_ridge_fit(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, alpha: float
) -> RidgeFit:
    """The reference: scikit-learn's Ridge on the materialized rating x feature matrix."""
    from sklearn.linear_model import Ridge

    X = np.hstack([U[user_idx], M[movie_idx]])
    model = Ridge(alpha=alpha, fit_intercept=True).fit(X, np.asarray(y, dtype=np.float64))
    return RidgeFit(coef=np.asarray(model.coef_, dtype=np.float64), intercept=float(model.intercept_), alpha=alpha)


# ---------------------------------------------------------------- partitions (the map of a map-reduce)


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
    """The statistics of all partitions together (each group summed)."""
    return {name: sum((p[name] for p in parts[1:]), parts[0][name]) for name in parts[0]}


def put_stats(store: Store, stats: dict[str, RowStats]) -> dict[str, StatsRefs]:
    """RowStats → references in the store (sums as numbers, arrays as .npy)."""
    return {
        name: StatsRefs(n=st.n, y_sum=st.y_sum, y_sq=st.y_sq, **{f: store.put_array(getattr(st, f)) for f in STAT_ARRAYS})
        for name, st in stats.items()
    }


def get_stats(refs: dict[str, StatsRefs]) -> dict[str, RowStats]:
    return {
        name: RowStats(n=int(r.n), y_sum=r.y_sum, y_sq=r.y_sq, **{f: get_array(getattr(r, f)) for f in STAT_ARRAYS})
        for name, r in refs.items()
    }


def _row_stats_run_name() -> str:
    from prefect.runtime import task_run

    params = task_run.parameters
    return f"row-stats {params['part'] + 1}/{params['n_parts']}"


@stage("gram", result=dict[str, StatsRefs], run_name=_row_stats_run_name)
def partition_row_stats(
    features: FeatureBlocks, rows: MergedRows, split: SplitRows, part: int, n_parts: int, with_validation: bool,
    cache_dir: str,
) -> dict[str, StatsRefs]:  # fmt: skip
    """Row statistics of partition ``part`` of ``n_parts`` of the training rows (``with_validation``:
    fit and validation parts apart, for the alpha path). The task keeps its name ``gram``, the key of
    its timing in metrics.json."""
    U, table = get_array(features.U), get_table(rows.rows)
    mask = get_array(split.validation) if with_validation else None
    stats = partition_stats(
        U, features.n_movies, table["user_idx"].to_numpy(), table["movie_idx"].to_numpy(),
        table["rating"].to_numpy(dtype=np.float64), get_array(split.train), part, n_parts, mask,
    )  # fmt: skip
    return put_stats(Store(cache_dir), stats)
