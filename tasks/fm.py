"""``model.kind=fm``: a Bayesian factorization machine whose user and movie factors come from their
features, so a movie nobody has rated gets factors from its genres and text (cold start).

The engine is myFM (Gibbs-sampled FM, C++; https://github.com/tohtsky/myFM), fed through its
*relation blocks*: one row per user ``[standardized user features | user id]`` and one row per movie
``[genres | learned text column | text components | movie id]``, indexed by each rating's (user, movie) — the block
structure this project already has, so the rating × feature matrix is never built. A rating is

    w0 + w·x_u + w·x_m + Σ_{i<j} <v_i, v_j> x_i x_j       (x = the user's row next to the movie's row)

- **ids**: an id column is set only for users/movies with training ratings; an unseen one has none
  (rather than a factor drawn from the prior), so its prediction comes from its features — plus,
  for a movie, what an id adds as its content predicts it (``cold_start_correction``: the features'
  weights are learned beside the ids and explain only what the ids leave).
- **text**: the title/overview embeddings are hundreds of dimensions, which overfit (768 raw MiniLM
  dimensions made myFM worse on MovieLens-1M cold start), so they enter projected:
  - ``text_components`` (default 16): the top principal components (over all movies' texts, no
    ratings involved), scaled so the block weighs like one id column; through the interactions they
    carry a movie's tone to the users who like it;
  - a *learned* projection for a movie without ratings: ``cold_start_correction`` (a ridge on the
    full embeddings predicting what an id adds);
  - ``text_bias`` (off): also one learned column in the FM, the movie's bias as a ridge on [text |
    genres] predicts it (out-of-fold for rated movies). Measured on the generated ML-1M-size set:
    cold start 0.9822 with 16 components, 0.9877 with the learned column instead, 1.0020 without
    text (docs/quality.md).
- **groups**: user features, user ids, genres, learned text, text components, movie ids each get their own prior
  (``group_shapes``), as myFM recommends for blocks of different kinds.

Predictions average the last ``kept_samples`` Gibbs samples and are clipped to the training ratings' range. The
linear weights are mapped back onto the project's feature names (text components and the learned
column onto embedding dimensions and genres), so ``top_features`` ranks the same names as the Ridge.
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
    text_components: int = 0  # principal components of the text used
    text_bias: bool = False  # whether the learned text column was used
    seen_movies: np.ndarray | None = None  # movies with training ratings (they have an id column)
    cold_correction: np.ndarray | None = None  # added for a movie without an id (``cold_start_correction``)

    def predict(self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
        blocks = relation_blocks(self.user_rows, self.movie_rows, user_idx, movie_idx)
        pred = self.model.predict(None, blocks)
        if self.cold_correction is not None and self.seen_movies is not None:
            movie_idx = np.asarray(movie_idx)
            pred = pred + np.where(self.seen_movies[movie_idx], 0.0, self.cold_correction[movie_idx])
        return np.clip(pred, self.low, self.high)


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


RIDGE_ALPHAS = np.logspace(-2, 4, 13)


@dataclass
class MovieBiases:
    """The training rows' movie biases as a target for the movie's content: the regularized bias
    (after user biases) with the shrinkage undone, weighted by how reliable it is (n / (n + 10)),
    for the rated movies, in ``folds`` fixed movie folds."""

    rated: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    fold: np.ndarray

    @classmethod
    def of(cls, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray, n_movies: int, folds: int = 5, seed: int = 0):
        from tasks.baselines import fit_bias_model

        bias = fit_bias_model(user_idx, movie_idx, y, int(user_idx.max()) + 1, n_movies)  # the minimizer (CG)
        counts = np.bincount(movie_idx, minlength=n_movies)
        rated = np.flatnonzero(counts > 0)
        weight = counts[rated] / (counts[rated] + 10.0)
        fold = np.random.default_rng(seed).permutation(len(rated)) % folds
        return cls(rated, bias.movie_bias[rated] / weight, weight, fold)

    @property
    def folds(self) -> int:
        return int(self.fold.max()) + 1 if len(self.fold) else 0

    def penalty(self, X: np.ndarray) -> float:
        """The ridge penalty for predicting the biases from X: generalized cross-validation (leave
        one movie out) over ``RIDGE_ALPHAS`` on every rated movie."""
        from sklearn.linear_model import RidgeCV

        return float(RidgeCV(alphas=RIDGE_ALPHAS).fit(X[self.rated], self.target, sample_weight=self.weight).alpha_)

    def out_of_fold(self, X: np.ndarray, alpha: float | None = None) -> tuple[np.ndarray, float]:
        """Each rated movie's bias predicted from its row of X by a ridge that never saw the movie
        (penalty ``alpha``, or ``penalty(X)``); (predictions, weighted mean squared error)."""
        from sklearn.linear_model import Ridge

        alpha = self.penalty(X) if alpha is None else alpha
        pred = np.zeros(len(self.rated))
        for f in range(self.folds):
            train, test = self.fold != f, self.fold == f
            model = Ridge(alpha=alpha).fit(X[self.rated[train]], self.target[train], sample_weight=self.weight[train])
            pred[test] = model.predict(X[self.rated[test]])
        return pred, float(np.sum(self.weight * (pred - self.target) ** 2) / self.weight.sum())


def learned_text_bias(content: np.ndarray, biases: MovieBiases) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A learned one-column projection of the movie's content (genres + text embeddings): its bias
    as a ridge predicts it. Rated movies get their out-of-fold prediction (so the FM learns how far
    to trust it on a movie it has not seen, as on a cold start); the others the prediction of a ridge
    on every rated movie. Returns (column for every movie, that ridge's coefficients, intercept, the
    out-of-fold weighted MSE)."""
    from sklearn.linear_model import Ridge

    alpha = biases.penalty(content)
    model = Ridge(alpha=alpha).fit(content[biases.rated], biases.target, sample_weight=biases.weight)
    column = model.predict(content)
    column[biases.rated], mse = biases.out_of_fold(content, alpha)
    return column, np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), mse


def cold_start_correction(
    model, user_rows: sp.csr_matrix, movie_rows: sp.csr_matrix, content: np.ndarray, user_idx: np.ndarray,
    movie_idx: np.ndarray, y: np.ndarray, seed: int, sample: int = 100_000,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """What a movie's id adds, as its content predicts it: for a movie without training ratings.

    Such a movie has no id column, so the FM alone predicts it as if an id added nothing — but the
    ids are fitted beside ``w0`` and the features, and need not average to zero nor be independent
    of the content (the features' weights are learned *with* the ids there, so they explain only
    what the ids leave). So (a sample of) the training ratings are predicted with their movie's id
    removed, each seen movie's mean residual is what its id adds, and a ridge on [text | genres]
    (penalty by cross-validation over movies, weights n / (n + 10)) predicts it for every movie.
    On the generated ML-1M-size set this moves the FM's cold-start RMSE from 0.9925 to 0.9866
    (docs/quality.md). Returns (per-movie correction, the ridge's penalty)."""
    from sklearn.linear_model import RidgeCV

    rows = np.random.default_rng(seed).permutation(len(y))[:sample]
    n_movies = movie_rows.shape[0]
    features = movie_rows[:, : movie_rows.shape[1] - n_movies]
    without_ids = sp.hstack([features, sp.csr_matrix((n_movies, n_movies))], format="csr")
    users, movies = user_idx[rows], movie_idx[rows]
    residual = np.asarray(y)[rows] - model.predict(None, relation_blocks(user_rows, without_ids, users, movies))
    counts = np.bincount(movies, minlength=n_movies)
    rated = np.flatnonzero(counts)
    mean = np.bincount(movies, weights=residual, minlength=n_movies)[rated] / counts[rated]
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(content[rated], mean, sample_weight=counts[rated] / (counts[rated] + 10.0))
    return ridge.predict(content), float(ridge.alpha_)


def kept_samples(iterations: int) -> int:
    """Gibbs samples averaged for predictions: the last ones after a burn-in of at least a fifth of
    the run, at most 100 (every prediction goes through each kept sample; at 200 iterations, 100
    instead of 160 cut the 1M-rating evaluation by ~5 s at equal RMSE, docs/quality.md)."""
    return max(min(iterations - iterations // 5, 100), 1)


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
    text_bias: bool = False, cold_start: bool = True, logger: logging.Logger | logging.LoggerAdapter = log,
) -> FMFit:  # fmt: skip
    """Fit on the given (training) rows. ``movie_groups``: the column count of each part of M in
    order (text fields first, then 'genres'), as FeatureBlocks records it. ``text_bias``: add the
    learned text column (``learned_text_bias``); ``text_components``: add that many principal
    components of the text (``text_projection``)."""
    myfm = _myfm()
    n_text = sum(n for name, n in movie_groups.items() if name != "genres")
    text, genres = M[:, :n_text], M[:, n_text:]
    mean_u, std_u = U.mean(axis=0), U.std(axis=0)
    std_u = np.where(std_u > 0, std_u, 1.0)
    biases = MovieBiases.of(user_idx, movie_idx, y, M.shape[0], seed=seed) if n_text and text_bias else None
    learned = np.zeros((M.shape[0], 0))
    if biases is not None and len(biases.rated) >= 2 * biases.folds:
        column, learned_coef, learned_c0, mse = learned_text_bias(M, biases)
        learned = column[:, None]
        logger.info("fm: learned text column: movie-bias validation MSE %.5f (genres only: %.5f)",
                    mse, biases.out_of_fold(genres)[1])  # fmt: skip
    scores, axes, scale = text_projection(text, text_components)
    user_parts = [sp.csr_matrix((U - mean_u) / std_u), seen(user_idx, U.shape[0])]
    movie_parts = [sp.csr_matrix(genres), sp.csr_matrix(learned), sp.csr_matrix(scores), seen(movie_idx, M.shape[0])]
    groups = [p.shape[1] for p in user_parts + movie_parts]
    user_rows, movie_rows = sp.hstack(user_parts, format="csr"), sp.hstack(movie_parts, format="csr")
    keep = [i for i, g in enumerate(groups) if g]
    model = myfm.MyFMRegressor(rank=rank, random_seed=seed)
    model.fit(
        None, np.asarray(y, dtype=np.float64), X_rel=relation_blocks(user_rows, movie_rows, user_idx, movie_idx),
        n_iter=iterations, n_kept_samples=kept_samples(iterations), group_shapes=[groups[i] for i in keep],
        callback=progress(iterations, logger),
    )  # fmt: skip
    samples = model.predictor_.samples
    w = np.mean([s.w for s in samples], axis=0)
    w0 = float(np.mean([s.w0 for s in samples]))
    d_u = U.shape[1]
    w_user = w[:d_u] / std_u
    at = d_u + U.shape[0]
    w_genres = w[at : at + genres.shape[1]]
    at += genres.shape[1]
    w_learned = w[at : at + learned.shape[1]]
    at += learned.shape[1]
    w_text = axes.T @ w[at : at + scores.shape[1]] / scale
    if learned.shape[1]:  # the learned column is a ridge on [text | genres]: its weight spreads over them
        w_text = w_text + w_learned[0] * learned_coef[:n_text]
        w_genres = w_genres + w_learned[0] * learned_coef[n_text:]
        w0 += w_learned[0] * learned_c0
    correction = None
    if cold_start:
        content = M if learned.shape[1] or scores.shape[1] else genres  # no text given: none here either
        correction, penalty = cold_start_correction(model, user_rows, movie_rows, content, user_idx, movie_idx, y, seed)
        logger.info("fm: a movie without training ratings gets what an id adds as its content predicts it "
                    "(mean %+.4f, ridge alpha %g)", float(correction.mean()), penalty)  # fmt: skip
    seen_movies = np.zeros(M.shape[0], dtype=bool)
    seen_movies[np.unique(movie_idx)] = True
    intercept = w0 - float(mean_u @ w_user) - float(text.mean(axis=0) @ (axes.T @ w[at : at + scores.shape[1]] / scale))
    return FMFit(
        model=model, user_rows=user_rows, movie_rows=movie_rows, coef=np.concatenate([w_user, w_text, w_genres]),
        intercept=intercept, low=float(np.min(y)), high=float(np.max(y)),
        text_components=scores.shape[1], text_bias=bool(learned.shape[1]), seen_movies=seen_movies,
        cold_correction=correction,
    )  # fmt: skip
