"""Where does text help? Test RMSE by how many training ratings the test movie had.

A movie with 0 training ratings is cold start (only its features are known); with many, ids and
biases dominate. The table has one row per support bin with the test rows in it and the RMSE of the
model and of each baseline on those rows."""

from __future__ import annotations

import numpy as np

# (label, lowest, highest) training ratings of the test row's movie
SUPPORT_BINS = (("0", 0, 0), ("1-5", 1, 5), ("6-20", 6, 20), ("21-100", 21, 100), (">100", 101, np.inf))


def rmse_by_movie_support(
    train_movies: np.ndarray, test_movies: np.ndarray, test_y: np.ndarray, n_movies: int,
    predictions: dict[str, np.ndarray],
) -> list[dict]:  # fmt: skip
    """``train_movies`` / ``test_movies``: the movie of each training / test row; ``predictions``: name
    → prediction for each test row (the model first, then the baselines)."""
    support = np.bincount(train_movies, minlength=n_movies)[test_movies]
    table = []
    for label, low, high in SUPPORT_BINS:
        rows = (support >= low) & (support <= high)
        entry: dict = {"support": label, "n_test": int(rows.sum())}
        y = test_y[rows]
        for name, pred in predictions.items():
            entry[name] = float(np.sqrt(np.mean((pred[rows] - y) ** 2))) if rows.any() else None
        table.append(entry)
    return table
