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
from tasks.caching import run_logger
from tasks.results import EmbeddedField, FeatureBlocks, LoadedData, MergedRows
from tasks.stage import stage
from tasks.store import Store, get_array, get_json, get_table

log = logging.getLogger(__name__)

USER_CATEGORIES = ("gender", "occupation")


def user_block(users: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Age as a number plus one-hot gender and occupation, those the table has (none for a release
    without a user table: a block of 0 columns); rows in the order of ``users``."""
    columns = [np.zeros((len(users), 0))]
    names = []
    if "age" in users.columns:
        columns.append(users["age"].to_numpy(dtype=np.float64)[:, None])
        names.append("age")
    for column in (c for c in USER_CATEGORIES if c in users.columns):
        values = users[column].astype(str).to_numpy()
        levels = sorted(set(values))
        codes = np.searchsorted(np.array(levels), values)
        onehot = np.zeros((len(users), len(levels)), dtype=np.float64)
        onehot[np.arange(len(users)), codes] = 1.0
        columns.append(onehot)
        names.extend(f"{column}_{level}" for level in levels)
    return np.hstack(columns), names


def genre_block(genres: pd.Series | None, n_movies: int) -> tuple[np.ndarray, list[str]]:
    """Multi-hot genres ('Action|Comedy') as ``genre_<name>`` columns, names sorted; no column for a
    table without genres."""
    if genres is None:
        return np.zeros((n_movies, 0)), []
    onehot = genres.fillna("").astype(str).str.get_dummies(sep="|")
    onehot = onehot[sorted(c for c in onehot.columns if c.strip())]
    return onehot.to_numpy(dtype=np.float64), [f"genre_{c}" for c in onehot.columns]


def movie_block(embeddings: dict[str, np.ndarray], extra: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Concatenate per-field embeddings (e.g. {'title': (n, d), 'overview': (n, d)}) in the given order,
    then the ``extra`` columns (the genres; their names are the caller's), as one float64 matrix
    written in place (no per-field float64 copies)."""
    parts = [*embeddings.values(), *([extra] if extra is not None else [])]
    block = np.empty((len(parts[0]), sum(p.shape[1] for p in parts)), dtype=np.float64)
    names, start = [], 0
    for part in parts:
        block[:, start : start + part.shape[1]] = part
        start += part.shape[1]
    for field, vectors in embeddings.items():
        names.extend(f"{field}_embedding_{i}" for i in range(vectors.shape[1]))
    return block, names


def gather_rows(U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
    """The dense feature matrix ``[U[user_idx] | M[movie_idx]]`` of the given rows (reference path, tests)."""
    return np.hstack([U[user_idx], M[movie_idx]])


def feature_column(U: np.ndarray, M: np.ndarray, j: int, user_idx: np.ndarray, movie_idx: np.ndarray) -> np.ndarray:
    """Feature j of each row, without building the matrix."""
    d_u = U.shape[1]
    return U[user_idx, j] if j < d_u else M[movie_idx, j - d_u]


@stage("features", result=FeatureBlocks)
def feature_blocks(loaded: LoadedData, vectors: dict[str, EmbeddedField], genres: bool, cache_dir: str) -> FeatureBlocks:
    """User and movie blocks in the store, plus the feature names (user block first). The movie block
    is the text embeddings, then (``genres`` and a genres column) the genre multi-hot."""
    U, user_names = user_block(get_table(loaded.users))
    fields = {field: get_array(v.vectors) for field, v in vectors.items()}
    movies = get_table(loaded.movies)
    G, genre_names = genre_block(movies["genres"] if genres and "genres" in movies.columns else None, len(movies))
    if genres and not genre_names:
        run_logger(log).info("features: the movies table has no genres; no genre block")
    M, movie_names = movie_block(fields, G)
    movie_names += genre_names
    groups = {field: v.shape[1] for field, v in fields.items()} | ({"genres": len(genre_names)} if genre_names else {})
    run_logger(log).info(
        "features: %d user columns (%d users), %d movie columns (%d movies)", U.shape[1], U.shape[0], M.shape[1], M.shape[0]
    )
    store = Store(cache_dir)
    return FeatureBlocks(
        U=store.put_array(U),
        M=store.put_array(M),
        names=store.put_json(user_names + movie_names),
        n_features=len(user_names) + len(movie_names),
        n_users=U.shape[0],
        n_movies=M.shape[0],
        movie_groups=groups,
    )


def load_blocks(features: FeatureBlocks, rows: MergedRows) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str]]:
    """The user and movie blocks, the merged rows and the feature names, read from the store."""
    return get_array(features.U), get_array(features.M), get_table(rows.rows), get_json(features.names)
