"""The notebook's misalignment: after dropna, a pd.concat with a re-indexed embedding frame pairs
rows with the wrong movie's embedding. Rows here refer to movies by position, so that cannot happen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.embed import embed_texts, prepare_texts
from tasks.vector_store import EmbeddingStore
from tasks.errors import InputError
from tasks.features import gather_rows, movie_block, user_block
from tasks.merge import merge_ratings

USERS = pd.DataFrame({"user_id": [7, 8], "gender": ["F", "M"], "age": [25.0, 40.0], "occupation": ["writer", "lawyer"]})
MOVIES = pd.DataFrame(
    {
        "movie_id": [101, 102, 103, 104, 105],
        "title": ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"],
        "overview": ["A heist.", None, "A romance.", "", "A war story."],  # 102 and 104 have none
    }
)
RATINGS = pd.DataFrame(
    {
        "user_id": [7, 7, 8, 8, 7, 8, 8],
        "movie_id": [105, 102, 103, 101, 104, 101, 105],
        "rating": np.array([5, 4, 3, 2, 1, 4, 2], dtype=np.float32),
    }
)


def notebook_way(encoder) -> pd.DataFrame:
    """What the notebook did: dropna on the merged frame, then concat a freshly indexed embedding frame."""
    df = RATINGS.merge(USERS, on="user_id").merge(MOVIES.replace("", None), on="movie_id").dropna()
    emb = pd.DataFrame(encoder(df["overview"].tolist()).tolist())  # index 0..n-1
    emb.columns = [f"overview_embedding_{i}" for i in emb.columns]
    return pd.concat([df, emb], axis=1)


def test_the_notebook_pattern_misaligns_rows(hash_encoder):
    df = notebook_way(hash_encoder)
    assert len(df) > len(RATINGS) - 2  # concat made extra rows of NaN instead of aligning
    rows = df.dropna()
    mismatched = [
        not np.allclose(r[[c for c in df.columns if c.startswith("overview_embedding_")]].to_numpy(dtype=float),
                        hash_encoder.vector(r["overview"]))
        for _, r in rows.iterrows()
    ]  # fmt: skip
    assert any(mismatched)  # a row carries another movie's embedding
    assert len(rows) < len(RATINGS) - 2  # and rows that did have an embedding were lost


def test_every_row_keeps_its_own_movies_embedding(tmp_path, hash_encoder):
    texts, n_missing = prepare_texts(MOVIES["overview"].tolist(), "drop")
    assert n_missing == 2
    emb = embed_texts(texts, hash_encoder, EmbeddingStore(tmp_path, "m"), "m")
    rows = merge_ratings(RATINGS, USERS, MOVIES, emb.present)
    assert len(rows) == 5  # the ratings of 102 and 104 are dropped
    U, _ = user_block(USERS)
    M, names = movie_block({"overview": emb.vectors})
    X = gather_rows(U, M, rows["user_idx"].to_numpy(), rows["movie_idx"].to_numpy())
    kept = RATINGS[~RATINGS["movie_id"].isin([102, 104])].reset_index(drop=True)
    overview_of = MOVIES.set_index("movie_id")["overview"]
    for i, rating in kept.iterrows():
        np.testing.assert_allclose(X[i, U.shape[1]:], hash_encoder.vector(overview_of[rating["movie_id"]]), rtol=1e-6)
        age = USERS.set_index("user_id").loc[rating["user_id"], "age"]
        assert X[i, 0] == age
        assert rows.loc[i, "rating"] == rating["rating"]


def test_unknown_ids_are_dropped_in_merge_too(hash_encoder):
    ratings = pd.concat([RATINGS, pd.DataFrame({"user_id": [99], "movie_id": [101], "rating": [3.0]})])
    rows = merge_ratings(ratings, USERS, MOVIES, np.ones(len(MOVIES), dtype=bool))
    assert len(rows) == len(RATINGS)
    assert rows["user_idx"].dtype == np.int32 and rows["rating"].dtype == np.float32


def test_nothing_left_is_a_clear_error():
    with pytest.raises(InputError, match="no ratings left"):
        merge_ratings(RATINGS, USERS, MOVIES, np.zeros(len(MOVIES), dtype=bool))



@pytest.mark.parametrize("ids", [np.array([7, 3, 11]), np.array([7, 3, 11]) + 10**12, np.array(["7", "3", "11"])])
def test_positions_by_lookup_table_or_hash(ids):
    """Small ids take the lookup table, huge or text ones the hash index: the same positions."""
    from tasks.merge import positions

    values = np.array([11, 7, 7, 3, 8, -1, 12, 500])
    values = values.astype(str) if ids.dtype.kind == "U" else values + (ids[0] - 7)
    np.testing.assert_array_equal(positions(ids, values), [2, 0, 0, 1, -1, -1, -1, -1])
    np.testing.assert_array_equal(positions(ids, values), pd.Index(ids).get_indexer(values))
