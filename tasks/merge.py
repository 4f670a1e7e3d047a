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


def positions(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The position of each value among ``ids`` (unique), -1 where absent. Small non-negative integer
    ids (MovieLens') go through a lookup table, one gather per value (int32 positions); others through
    a hash index."""
    ids, values = np.asarray(ids), np.asarray(values)
    integers = ids.dtype.kind in "iu" and values.dtype.kind in "iu" and len(ids) > 0 and len(values) > 0
    if not integers or ids.min() < 0 or ids.max() > 8 * len(ids) + (1 << 20):
        return pd.Index(ids).get_indexer(values)
    index = np.int32 if len(ids) < 2**31 else np.int64  # positions as narrow as they fit: half the bytes to gather
    table = np.full(int(ids.max()) + 1, -1, dtype=index)
    table[ids] = np.arange(len(ids), dtype=index)
    if values.min() >= 0 and values.max() < len(table):
        return table[values]
    inside = (values >= 0) & (values < len(table))
    out = np.full(len(values), -1, dtype=index)
    out[inside] = table[values[inside]]
    return out


def merge_ratings(
    ratings: pd.DataFrame,
    users: pd.DataFrame,
    movies: pd.DataFrame,
    movie_has_embedding: np.ndarray,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> pd.DataFrame:
    """ratings ⋈ users ⋈ movies on ids → ``user_idx``, ``movie_idx`` (int32), ``rating`` (float32)
    [, ``timestamp``], without rows whose user or movie is unknown or whose movie lacks an embedding."""
    user_idx = positions(users["user_id"].to_numpy(), ratings["user_id"].to_numpy())
    movie_idx = positions(movies["movie_id"].to_numpy(), ratings["movie_id"].to_numpy())
    known = (user_idx >= 0) & (movie_idx >= 0)
    embedded = np.append(np.asarray(movie_has_embedding, dtype=bool), False)[movie_idx]  # -1 (unknown): False
    keep = known & embedded
    kept = slice(None) if keep.all() else keep  # the usual case keeps every row: views, no boolean gathers
    columns = {
        "user_idx": user_idx[kept].astype(np.int32, copy=False),
        "movie_idx": movie_idx[kept].astype(np.int32, copy=False),
        "rating": ratings["rating"].to_numpy(dtype=np.float32)[kept],
    }
    if "timestamp" in ratings.columns:
        columns["timestamp"] = ratings["timestamp"].to_numpy()[kept]
    rows = pd.DataFrame(columns, copy=False)
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
    """Join the loaded tables; a movie counts as embedded when every field has a vector. The
    timestamps are stored apart from the rows (see ``MergedRows``)."""
    present = np.logical_and.reduce([get_array(v.present) for v in vectors.values()])
    rows = merge_ratings(
        get_table(loaded.ratings), get_table(loaded.users), get_table(loaded.movies), present, run_logger(log)
    )
    store = Store(cache_dir)
    timestamps = store.put_array(rows.pop("timestamp").to_numpy(), keep=False) if "timestamp" in rows.columns else None
    return MergedRows(rows=store.put_table(rows), n_rows=len(rows), timestamps=timestamps)
