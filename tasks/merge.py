"""Merge ratings with users and movies, and drop the rows whose movie has no embedding.

Rows refer to users and movies by *position* in the user and movie blocks (``user_idx``,
``movie_idx``) instead of copying features into each row. The notebook's bug, a ``pd.concat`` of a
re-indexed embedding frame after ``dropna``, cannot happen: a row's movie features are always looked up
by its own movie's position.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tasks.caching import run_logger
from tasks.errors import InputError
from tasks.results import EmbeddedField, LoadedData, MergedRows
from tasks.stage import stage
from tasks.store import Store, get_array, get_table

log = logging.getLogger(__name__)


def merge_ratings(
    ratings: pd.DataFrame,
    users: pd.DataFrame,
    movies: pd.DataFrame,
    movie_has_embedding: np.ndarray,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> pd.DataFrame:
    """ratings ⋈ users ⋈ movies on ids → ``user_idx``, ``movie_idx`` (int32), ``rating`` (float32)
    [, ``timestamp``], without rows whose user or movie is unknown or whose movie lacks an embedding."""
    user_idx = pd.Index(users["user_id"]).get_indexer(ratings["user_id"])
    movie_idx = pd.Index(movies["movie_id"]).get_indexer(ratings["movie_id"])
    known = (user_idx >= 0) & (movie_idx >= 0)
    embedded = np.zeros(len(ratings), dtype=bool)
    embedded[known] = np.asarray(movie_has_embedding, dtype=bool)[movie_idx[known]]
    keep = known & embedded
    rows = pd.DataFrame(
        {
            "user_idx": user_idx[keep].astype(np.int32),
            "movie_idx": movie_idx[keep].astype(np.int32),
            "rating": ratings["rating"].to_numpy(dtype=np.float32)[keep],
        }
    )
    if "timestamp" in ratings.columns:
        rows["timestamp"] = ratings["timestamp"].to_numpy()[keep]
    n_unknown = int((~known).sum())
    n_no_embedding = int((known & ~embedded).sum())
    logger.info(
        "merge: %d ratings in, %d rows out; dropped %d with unknown user/movie and %d whose movie has no "
        "embedding (%d movies without one)",
        len(ratings), len(rows), n_unknown, n_no_embedding, int((~np.asarray(movie_has_embedding)).sum()),
    )  # fmt: skip
    if len(rows) == 0:
        raise InputError("merge: no ratings left after joining users and movies and dropping movies without embeddings")
    return rows


@stage("merge", result=MergedRows)
def merged_rows(loaded: LoadedData, vectors: dict[str, EmbeddedField], cache_dir: str) -> MergedRows:
    """Join the loaded tables; a movie counts as embedded when every field has a vector."""
    present = np.logical_and.reduce([get_array(v.present) for v in vectors.values()])
    rows = merge_ratings(
        get_table(loaded.ratings), get_table(loaded.users), get_table(loaded.movies), present, run_logger(log)
    )
    return MergedRows(rows=Store(cache_dir).put_table(rows), n_rows=len(rows))
