"""Train/test split strategies, each reproducible from its seed.

- ``random``: a random ``test_size`` fraction of the ratings;
- ``user``: a random ``test_size`` fraction of the users, all their ratings in test (test users unseen);
- ``movie``: the same for movies: cold start, where the embeddings are all that is known of a test movie;
- ``time``: for each user, the latest ``test_size`` fraction of their ratings (by timestamp) in test.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from configs.schema import SplitConfig
from tasks.caching import run_logger
from tasks.errors import InputError
from tasks.results import MergedRows, SplitRows
from tasks.stage import stage
from tasks.store import Store, get_array, get_table

log = logging.getLogger(__name__)

STRATEGIES = ("random", "user", "movie", "time")


def split_rows(n_rows: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/test positions (sorted), reproducible from the seed; both sides non-empty. The
    test rows are the ``test_count`` rows with the smallest of the seed's uniform keys (``smallest_keys``)."""
    if n_rows < 2:
        raise InputError(f"split: cannot split {n_rows} row(s) into train and test")
    in_test = smallest_keys(np.random.default_rng(seed).random(n_rows), test_count(n_rows, test_size))
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def smallest_keys(keys: np.ndarray, n_test: int) -> np.ndarray:
    """True for the ``n_test`` smallest ``keys``; of keys equal to the cut-off, the first ones.

    A uniformly random subset of that size, like the first ``n_test`` of a permutation, in O(rows):
    one selection (``np.partition``) instead of a Fisher-Yates shuffle, whose random swaps through
    memory took ~1.2 s of 25M rows (the selection ~0.2 s)."""
    cut = np.partition(keys, n_test - 1)[n_test - 1]
    in_test = keys < cut
    ties = np.flatnonzero(keys == cut)[: n_test - int(np.count_nonzero(in_test))]  # float64 keys: ~never > 1
    in_test[ties] = True
    return in_test


def test_count(n_rows: int, test_size: float) -> int:
    """Rows a random split puts in test: round(n_rows × test_size), at least 1, at most n_rows − 1."""
    return min(max(int(round(n_rows * test_size)), 1), n_rows - 1)


def split_by_group(group: np.ndarray, test_size: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """All rows of a random ``test_size`` fraction of the groups (users or movies) go to test."""
    groups = np.unique(group)
    if len(groups) < 2:
        raise InputError(f"split.strategy={what}: needs at least 2 {what}s with ratings, found {len(groups)}")
    chosen = split_rows(len(groups), test_size, seed)[1]
    in_test = np.isin(group, groups[chosen])
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def split_by_time(user: np.ndarray, timestamp: np.ndarray | None, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Each user's latest ratings (round(test_size × n), at most n − 1) in test; ties keep file order."""
    if timestamp is None:
        raise InputError("split.strategy=time: the ratings have no timestamp column")
    order = np.lexsort((np.arange(len(user)), timestamp, user))  # by user, then time, then row
    sorted_users = user[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(user)])
    n_test = np.minimum(np.round(counts * test_size).astype(int), counts - 1)
    rank_from_end = np.repeat(starts + counts, counts) - np.arange(len(user)) - 1  # 0 = the user's latest
    in_test = np.zeros(len(user), dtype=bool)
    in_test[order] = rank_from_end < np.repeat(n_test, counts)
    if not in_test.any():
        raise InputError("split.strategy=time: no user has enough ratings to hold any out")
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def split_positions(
    strategy: str,
    user_idx: np.ndarray,
    movie_idx: np.ndarray,
    timestamp: np.ndarray | None,
    test_size: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test row positions for a strategy (see the module docstring)."""
    if strategy == "random":
        return split_rows(len(user_idx), test_size, seed)
    if strategy == "user":
        return split_by_group(user_idx, test_size, seed, "user")
    if strategy == "movie":
        return split_by_group(movie_idx, test_size, seed, "movie")
    if strategy == "time":
        return split_by_time(user_idx, timestamp, test_size)
    raise ValueError(f"unknown split strategy {strategy!r}")


def validation_part(
    strategy: str, user_idx: np.ndarray, movie_idx: np.ndarray, timestamp: np.ndarray | None, size: float, seed: int
) -> np.ndarray:
    """True for the rows (of the training part) that score the alphas: the same strategy as the
    train/test split, so with 'movie' the validation movies are unseen too and alpha is chosen for
    cold start."""
    return held_out(len(user_idx), split_positions(strategy, user_idx, movie_idx, timestamp, size, seed)[1])


def held_out(n_rows: int, positions: np.ndarray) -> np.ndarray:
    """True at ``positions`` of ``n_rows``."""
    mask = np.zeros(n_rows, dtype=bool)
    mask[positions] = True
    return mask


def split_with_validation(
    strategy: str, user_idx: np.ndarray, movie_idx: np.ndarray, timestamp: np.ndarray | None, test_size: float,
    validation_size: float, seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Train and test positions (``split_positions``, ``seed``) and the validation mask over the train
    rows (``validation_part``, ``seed + 1``). For 'random' the mask depends only on how many rows
    train has, so it is drawn on a second thread beside the split's (numpy releases the GIL)."""
    if strategy == "random" and len(user_idx) >= 2:
        n_train = len(user_idx) - test_count(len(user_idx), test_size)
        with ThreadPoolExecutor(max_workers=1) as pool:
            mask = pool.submit(lambda: held_out(n_train, split_rows(n_train, validation_size, seed + 1)[1]))
            train, test = split_rows(len(user_idx), test_size, seed)
            return train, test, mask.result()
    train, test = split_positions(strategy, user_idx, movie_idx, timestamp, test_size, seed)
    validation = validation_part(
        strategy, user_idx[train], movie_idx[train], None if timestamp is None else timestamp[train], validation_size, seed + 1
    )
    return train, test, validation


# ---------------------------------------------------------------- the stage


@stage("split", result=SplitRows)
def split_of(rows: MergedRows, split: SplitConfig, validation_size: float, cache_dir: str) -> SplitRows:
    """Train/test positions of the merged rows by split.strategy, reproducible from split.seed, and the
    validation part of the training rows (same strategy, seed + 1) that scores model.alphas."""
    table = get_table(rows.rows, columns=["user_idx", "movie_idx"])  # the ratings are not read here
    timestamp = get_array(rows.timestamps) if split.strategy == "time" and rows.timestamps else None
    user_idx, movie_idx = table["user_idx"].to_numpy(), table["movie_idx"].to_numpy()
    train, test, validation = split_with_validation(
        split.strategy, user_idx, movie_idx, timestamp, split.test_size, validation_size, split.seed
    )
    run_logger(log).info(
        "split (%s): %d train, %d test rows (test_size=%s, seed=%d)",
        split.strategy, len(train), len(test), split.test_size, split.seed,
    )  # fmt: skip
    if len(user_idx) < 2**31:  # stored as int32: half the bytes to hash, write and read (160 → 80 MB at 25M)
        train, test = train.astype(np.int32), test.astype(np.int32)
    store = Store(cache_dir)
    return SplitRows(
        train=store.put_array(train), test=store.put_array(test), validation=store.put_array(validation),
        n_train=len(train), n_test=len(test),
    )  # fmt: skip
