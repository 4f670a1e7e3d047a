"""Features as two blocks instead of one wide row per rating.

- user block ``U`` (users x d_u): ``age``, ``gender_<value>``, ``occupation_<value>`` (one-hot over
  the values present in the data, sorted);
- movie block ``M`` (movies x d_m): ``title_embedding_i``, ``overview_embedding_i``.

The feature row of a rating (u, m) is ``[U[u] | M[m]]``; names come from the data and the embedding
dimension, never from a hard-coded list.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from prefect import task

from tasks.caching import TASK_OPTIONS, run_logger
from tasks.store import Store, get_array, get_table

log = logging.getLogger(__name__)

USER_CATEGORIES = ("gender", "occupation")


def user_block(users: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Age as a number plus one-hot gender and occupation; rows in the order of ``users``."""
    columns = [users["age"].to_numpy(dtype=np.float64)[:, None]]
    names = ["age"]
    for column in USER_CATEGORIES:
        values = users[column].astype(str).to_numpy()
        levels = sorted(set(values))
        codes = np.searchsorted(np.array(levels), values)
        onehot = np.zeros((len(users), len(levels)), dtype=np.float64)
        onehot[np.arange(len(users)), codes] = 1.0
        columns.append(onehot)
        names.extend(f"{column}_{level}" for level in levels)
    return np.hstack(columns), names


def movie_block(embeddings: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Concatenate per-field embeddings (e.g. {'title': (n, d), 'overview': (n, d)}) in the given order."""
    blocks, names = [], []
    for field, vectors in embeddings.items():
        blocks.append(np.asarray(vectors, dtype=np.float64))
        names.extend(f"{field}_embedding_{i}" for i in range(vectors.shape[1]))
    return np.hstack(blocks), names


def gather_rows(U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
    """The dense feature matrix ``[U[user_idx] | M[movie_idx]]`` of the given rows (reference path, tests)."""
    return np.hstack([U[user_idx], M[movie_idx]])


def feature_column(U: np.ndarray, M: np.ndarray, j: int, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
    """Feature j of each row, without building the matrix."""
    d_u = U.shape[1]
    return U[user_idx, j] if j < d_u else M[movie_idx, j - d_u]


@task(name="features", **TASK_OPTIONS)
def features_task(users: dict, embedded: dict[str, dict], cache_dir: str) -> dict:
    """User and movie blocks in the store, plus the feature names (user block first)."""
    U, user_names = user_block(get_table(users))
    M, movie_names = movie_block({field: get_array(e["vectors"]) for field, e in embedded.items()})
    run_logger(log).info(
        "features: %d user columns (%d users), %d movie columns (%d movies)", U.shape[1], U.shape[0], M.shape[1], M.shape[0]
    )
    store = Store(cache_dir)
    return {
        "U": store.put_array(U).model_dump(),
        "M": store.put_array(M).model_dump(),
        "names": store.put_json(user_names + movie_names).model_dump(),
        "n_features": len(user_names) + len(movie_names),
        "n_users": U.shape[0],
        "n_movies": M.shape[0],
    }
