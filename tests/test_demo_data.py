"""The generator: deterministic, well-formed, in both layouts, with signal a linear model can find."""

from __future__ import annotations

import numpy as np

from tasks.demo_data import generate, write_demo_data
from tasks.load import load_dataset


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = write_demo_data(tmp_path / "a", users=30, movies=20, ratings=300, seed=1)
    b = write_demo_data(tmp_path / "b", users=30, movies=20, ratings=300, seed=1)
    c = write_demo_data(tmp_path / "c", users=30, movies=20, ratings=300, seed=2)
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes()
    assert a["ratings.csv"].read_bytes() != c["ratings.csv"].read_bytes()


def test_tables_are_valid_and_sized(tmp_path):
    write_demo_data(tmp_path, users=50, movies=40, ratings=1000, seed=0)
    ds = load_dataset(tmp_path)  # passes every validation rule
    assert (len(ds.users), len(ds.movies), len(ds.ratings)) == (50, 40, 1000)
    assert ds.ratings["rating"].between(1, 5).all()
    assert not ds.ratings.duplicated(["user_id", "movie_id"]).any()
    assert ds.movies["overview"].notna().sum() >= 35  # a few missing overviews exercise the policy


def test_dense_corner_fills_every_pair():
    tables = generate(users=4, movies=3, ratings=50, seed=0)
    assert len(tables["ratings"]) == 12


def test_genre_words_drive_the_ratings():
    tables = generate(users=300, movies=200, ratings=20000, seed=0)
    r = tables["ratings"].merge(tables["movies"], on="movie_id")
    docs = r[r["genres"].str.contains("Documentary")]["rating"].mean()
    horror = r[r["genres"].str.contains("Horror")]["rating"].mean()
    assert docs - horror > 0.5
    assert np.isclose(r["rating"].mean(), tables["ratings"]["rating"].mean())


def test_baselines_rank_as_on_real_ratings():
    """global mean > user mean > movie mean > user + movie bias (test RMSE), as on MovieLens-1M."""
    import pandas as pd

    from tasks.baselines import baseline_metrics
    from tasks.splits import split_positions

    tables = generate(users=600, movies=400, ratings=40_000, seed=0)
    r = tables["ratings"]
    u = pd.Index(tables["users"]["user_id"]).get_indexer(r["user_id"])
    m = pd.Index(tables["movies"]["movie_id"]).get_indexer(r["movie_id"])
    train, test = split_positions("random", u, m, None, 0.2, 42)
    rmse = {k: v["test_rmse"] for k, v in baseline_metrics(u, m, r["rating"].to_numpy(float), train, test, 600, 400).items()}
    assert rmse["global_mean"] > rmse["user_mean"] > rmse["movie_mean"] > rmse["bias"]
