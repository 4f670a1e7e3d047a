"""What each stage produces: the shape of every task result that travels between stages.

Task results are small JSON documents of store references (``StoredRef``) and figures. They are
persisted in the cache as Prefect result records, so a record may come back damaged or planted; the
stage boundary (``tasks/stage.py``) validates every result against its model and treats one of the
wrong shape as a cache miss, never as a ``KeyError`` on every rerun.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.store import StoredRef


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoadedData(Result):
    """The validated input tables in the store, and what loading counted."""

    layout: str
    ratings: StoredRef
    users: StoredRef
    movies: StoredRef
    stats: dict[str, int]


class EmbeddedField(Result):
    """One text field of the movies table as vectors aligned to its rows."""

    vectors: StoredRef
    present: StoredRef
    stats: dict[str, Any]


class MergedRows(Result):
    """Ratings joined to users and movies: user_idx, movie_idx, rating[, timestamp]."""

    rows: StoredRef
    n_rows: int


class FeatureBlocks(Result):
    """The user block U, the movie block M and the feature names (user columns first)."""

    U: StoredRef
    M: StoredRef
    names: StoredRef
    n_features: int
    n_users: int
    n_movies: int
    movie_groups: dict[str, int]  # columns of each part of M, in order: text fields, then "genres"


class SplitRows(Result):
    """Train/test positions of the merged rows and the validation mask of the training rows."""

    train: StoredRef
    test: StoredRef
    validation: StoredRef
    n_train: int
    n_test: int


class StatsRefs(Result):
    """One group of Ridge row statistics (sums as numbers, per-user/per-movie arrays in the store)."""

    n: float
    y_sum: float
    y_sq: float
    n_u: StoredRef
    n_m: StoredRef
    s_u: StoredRef
    s_m: StoredRef
    ctu: StoredRef


class TrainedModel(Result):
    """Coefficients, metrics beside the baselines, and the feature rankings."""

    coef: StoredRef
    metrics: dict[str, Any]
    top: list[dict[str, Any]]
    rankings: dict[str, list[dict[str, Any]]]
    n_train: int
    n_test: int


class Figures(Result):
    """The run's figures as PNGs in the store."""

    scatter: StoredRef
    coefficients: StoredRef
    correlations: dict[str, float]
    support: StoredRef  # RMSE by the test movie's number of training ratings
    alpha_curve: StoredRef | None = None


class DemoFolder(StoredRef):
    model_config = ConfigDict(extra="forbid")

