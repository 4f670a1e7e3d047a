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

    def summary(self) -> str:
        """What the result holds, in one line: logged when it comes from the cache, so a cached
        run's log tells the same story as a fresh one."""
        return type(self).__name__


class LoadedData(Result):
    """The validated input tables in the store, and what loading counted."""

    layout: str
    release: str
    ratings: StoredRef
    users: StoredRef
    movies: StoredRef
    stats: dict[str, int]
    rating_scale: list[float]  # [low, high]
    scale_source: str  # 'given', 'release' (its documented scale) or 'data' (min and max of the file)
    user_features: list[str]  # the users table's feature columns; [] when the release has no user table
    texts: dict[str, int]  # movie text field → movies that have one (only the fields the movies table has)

    def summary(self) -> str:
        s = self.stats
        return (f"{self.layout} layout ({self.release}): {s['n_ratings']:,} ratings, {s['n_users']:,} users, "
                f"{s['n_movies']:,} movies")  # fmt: skip


class EmbeddedField(Result):
    """One text field of the movies table as vectors aligned to its rows."""

    vectors: StoredRef
    present: StoredRef
    stats: dict[str, Any]

    def summary(self) -> str:
        s = self.stats
        return f"{s.get('texts_unique', '?'):,} distinct texts, vectors of {s.get('dim', '?')} dimensions"


class MergedRows(Result):
    """Ratings joined to users and movies: ``rows`` holds user_idx, movie_idx, rating; the rows'
    timestamps, when the ratings have them, are an array of their own (only split.strategy=time reads
    them, so the other stages never read or write them)."""

    rows: StoredRef
    n_rows: int
    timestamps: StoredRef | None = None

    def summary(self) -> str:
        return f"{self.n_rows:,} rows with their user's features and movie's embeddings"


class FeatureBlocks(Result):
    """The user block U, the movie block M and the feature names (user columns first)."""

    U: StoredRef
    M: StoredRef
    names: StoredRef
    n_features: int
    n_users: int
    n_movies: int
    movie_groups: dict[str, int]  # columns of each part of M, in order: text fields, then "genres"

    def summary(self) -> str:
        parts = ", ".join(f"{name} {n}" for name, n in self.movie_groups.items())
        return f"{self.n_features} features: user block of {self.n_users:,} users, movie block of {self.n_movies:,} movies ({parts})"


class SplitRows(Result):
    """Train/test positions of the merged rows and the validation mask of the training rows."""

    train: StoredRef
    test: StoredRef
    validation: StoredRef
    n_train: int
    n_test: int

    def summary(self) -> str:
        return f"{self.n_train:,} train / {self.n_test:,} test rows"


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

    def summary(self) -> str:
        return f"Ridge sums over {int(self.n):,} rows"


class TrainedModel(Result):
    """Coefficients, metrics beside the baselines, and the feature rankings."""

    coef: StoredRef
    metrics: dict[str, Any]
    top: list[dict[str, Any]]
    rankings: dict[str, list[dict[str, Any]]]
    n_train: int
    n_test: int

    def summary(self) -> str:
        m = self.metrics
        alpha = f", alpha {m['alpha']:g}" if m.get("alpha") is not None else ""
        return (f"{m.get('kind', 'ridge')} ({m.get('solver')}{alpha}): test RMSE {m['test_rmse']:.4f}, "
                f"bias baseline {m['baselines']['bias']['test_rmse']:.4f}" if "baselines" in m and "bias" in m["baselines"]
                else f"{m.get('kind', 'ridge')}: test RMSE {m['test_rmse']:.4f}")  # fmt: skip


class Figures(Result):
    """The run's figures as PNGs in the store."""

    scatter: StoredRef
    coefficients: StoredRef
    correlations: dict[str, float]
    support: StoredRef  # RMSE by the test movie's number of training ratings
    alpha_curve: StoredRef | None = None
    report: dict[str, StoredRef]  # the same figures as the report artifact embeds them (tasks/report.py: report_images)

    def summary(self) -> str:
        return "scatter, coefficients, support" + (", alpha curve" if self.alpha_curve else "") + " figures"


class DemoFolder(StoredRef):
    model_config = ConfigDict(extra="forbid")

