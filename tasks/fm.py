"""``model.kind=fm``: a Bayesian factorization machine whose user and movie factors come from their
features, so a movie nobody has rated gets factors from its genres and text (cold start).

The engine is myFM (Gibbs-sampled FM, C++; https://github.com/tohtsky/myFM), fed through its
*relation blocks*: one row per user ``[standardized user features | user id]`` and one row per movie
``[genres | text components | movie id]``, indexed by each rating's (user, movie) — the block
structure this project already has, so the rating × feature matrix is never built. A rating is

    w0 + w·x_u + w·x_m + Σ_{i<j} <v_i, v_j> x_i x_j       (x = the user's row next to the movie's row)

- **ids**: an id column is set only for users/movies with training ratings; an unseen one has none
  (rather than a factor drawn from the prior), so its prediction comes from its features alone.
- **text**: the title/overview embeddings (hundreds of dimensions, which overfit: 768 raw MiniLM
  dimensions made myFM worse on MovieLens-1M cold start) enter as their top ``text_components``
  principal components (computed over all movies' texts, no ratings involved), scaled so the whole
  text block weighs like one id column.
- **groups**: user features, user ids, genres, text, movie ids each get their own prior
  (``group_shapes``), as myFM recommends for blocks of different kinds.

Predictions average the kept Gibbs samples and are clipped to the training ratings' range. The
linear weights are mapped back onto the project's feature names (text components onto embedding
dimensions), so ``top_features`` ranks the same names as the Ridge.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tasks.ridge import FeatureMoments

log = logging.getLogger(__name__)


def _myfm():
    # myFM 0.4.0 imports pkg_resources (setuptools < 81, pinned in pyproject.toml) and warns about it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import myfm
    return myfm


@dataclass
class FMFit:
    """A fitted FM: predicts any (user, movie) pair from the two relation blocks."""

    model: object  # myfm.MyFMRegressor
    user_rows: sp.csr_matrix
    movie_rows: sp.csr_matrix
    coef: np.ndarray  # linear weights on the project's feature names (U columns, then M columns)
    intercept: float
    low: float
    high: float
    alpha: float | None = None  # no penalty to choose: the priors are sampled
    moments: FeatureMoments | None = None

    def predict(self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        blocks = relation_blocks(self.user_rows, self.movie_rows, user_idx, movie_idx)
        return np.clip(self.model.predict(None, blocks), self.low, self.high)


def relation_blocks(user_rows: sp.csr_matrix, movie_rows: sp.csr_matrix, user_idx: np.ndarray, movie_idx: np.ndarray):
    myfm = _myfm()
    return [
        myfm.RelationBlock(np.asarray(user_idx, dtype=np.int64), user_rows),
        myfm.RelationBlock(np.asarray(movie_idx, dtype=np.int64), movie_rows),
    ]


def text_projection(text: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Top principal components of the movies' text block: (scores, axes, scale) with
    ``scores = (text - mean) @ axes.T / scale`` and the block's total variance that of one id column."""
    if components <= 0 or text.shape[1] == 0:
        return np.zeros((text.shape[0], 0)), np.zeros((0, text.shape[1])), 1.0
    centred = text - text.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[: min(components, vt.shape[0])]
    scores = centred @ axes.T
    scale = float(np.sqrt((scores**2).sum(axis=1).mean())) or 1.0
    return scores / scale, axes, scale


def seen(index: np.ndarray, size: int) -> sp.csr_matrix:
    """Identity rows for the ids present in ``index`` (training rows), zero rows for the others."""
    on = np.zeros(size)
    on[np.unique(index)] = 1.0
    return sp.diags(on, format="csr")


def progress(iterations: int, logger: logging.Logger | logging.LoggerAdapter):
    """myFM's per-iteration callback: a log line every fifth of the run (the UI's run log), and a
    plain label for myFM's own terminal bar (its default shows its noise precision as "alpha = …",
    which reads like our Ridge penalty)."""
    every = max(iterations // 5, 1)

    def callback(i: int, fm, hyper, history) -> tuple[bool, str]:
        if (i + 1) % every == 0 or i + 1 == iterations:
            logger.info("fm: Gibbs sampling %d/%d iterations", i + 1, iterations)
        return False, "fm: Gibbs sampling"

    return callback


def fit_fm(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray,
    movie_groups: dict[str, int], rank: int, iterations: int, text_components: int, seed: int,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> FMFit:  # fmt: skip
    """Fit on the given (training) rows. ``movie_groups``: the column count of each part of M in
    order (text fields first, then 'genres'), as FeatureBlocks records it."""
    myfm = _myfm()
    n_text = sum(n for name, n in movie_groups.items() if name != "genres")
    text, genres = M[:, :n_text], M[:, n_text:]
    mean_u, std_u = U.mean(axis=0), U.std(axis=0)
    std_u = np.where(std_u > 0, std_u, 1.0)
    scores, axes, scale = text_projection(text, text_components)
    user_parts = [sp.csr_matrix((U - mean_u) / std_u), seen(user_idx, U.shape[0])]
    movie_parts = [sp.csr_matrix(genres), sp.csr_matrix(scores), seen(movie_idx, M.shape[0])]
    groups = [p.shape[1] for p in user_parts + movie_parts]
    user_rows, movie_rows = sp.hstack(user_parts, format="csr"), sp.hstack(movie_parts, format="csr")
    keep = [i for i, g in enumerate(groups) if g]
    model = myfm.MyFMRegressor(rank=rank, random_seed=seed)
    burn_in = min(iterations // 5, 50)
    model.fit(
        None, np.asarray(y, dtype=np.float64), X_rel=relation_blocks(user_rows, movie_rows, user_idx, movie_idx),
        n_iter=iterations, n_kept_samples=max(iterations - burn_in, 1), group_shapes=[groups[i] for i in keep],
        callback=progress(iterations, logger),
    )  # fmt: skip
    samples = model.predictor_.samples
    w = np.mean([s.w for s in samples], axis=0)
    w0 = float(np.mean([s.w0 for s in samples]))
    d_u = U.shape[1]
    w_user = w[:d_u] / std_u
    offset = d_u + U.shape[0]
    w_genres = w[offset : offset + genres.shape[1]]
    w_text = axes.T @ w[offset + genres.shape[1] : offset + genres.shape[1] + scores.shape[1]] / scale
    intercept = w0 - float(mean_u @ w_user) - float(text.mean(axis=0) @ w_text)
    return FMFit(
        model=model, user_rows=user_rows, movie_rows=movie_rows, coef=np.concatenate([w_user, w_text, w_genres]),
        intercept=intercept, low=float(np.min(y)), high=float(np.max(y)),
    )  # fmt: skip
