"""Each split strategy's guarantee, and reproducibility from the seed."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.errors import InputError
from tasks.splits import split_positions

RNG = np.random.default_rng(0)
N = 3000
USER = RNG.integers(0, 120, N)
MOVIE = RNG.integers(0, 80, N)
TIME = RNG.integers(0, 10**6, N)


@pytest.mark.parametrize("strategy", ["random", "user", "movie", "time"])
def test_partition_and_reproducible(strategy):
    train, test = split_positions(strategy, USER, MOVIE, TIME, 0.2, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == N
    again = split_positions(strategy, USER, MOVIE, TIME, 0.2, seed=3)
    np.testing.assert_array_equal(test, again[1])
    assert 0.1 < len(test) / N < 0.3


def test_user_split_holds_out_whole_users():
    train, test = split_positions("user", USER, MOVIE, TIME, 0.2, seed=1)
    assert not set(USER[test]) & set(USER[train])
    assert len(set(USER[test])) == round(0.2 * len(set(USER)))
    other = split_positions("user", USER, MOVIE, TIME, 0.2, seed=2)[1]
    assert set(USER[other]) != set(USER[test])


def test_movie_split_holds_out_whole_movies():
    train, test = split_positions("movie", USER, MOVIE, TIME, 0.25, seed=1)
    assert not set(MOVIE[test]) & set(MOVIE[train])


def test_time_split_tests_each_users_latest_ratings():
    train, test = split_positions("time", USER, MOVIE, TIME, 0.2, seed=0)
    for user in np.unique(USER):
        tr, te = TIME[train][USER[train] == user], TIME[test][USER[test] == user]
        if len(te):
            assert tr.max() <= te.min()
        n = (USER == user).sum()
        assert len(te) == min(round(0.2 * n), n - 1)


def test_time_split_needs_timestamps():
    with pytest.raises(InputError, match="no timestamp"):
        split_positions("time", USER, MOVIE, None, 0.2, 0)


def test_random_split_is_the_seeds_smallest_keys():
    """The test rows are the 20 % of rows with the smallest of the seed's uniform keys."""
    from tasks.splits import split_rows

    train, test = split_rows(1000, 0.2, seed=9)
    expected = np.sort(np.argsort(np.random.default_rng(9).random(1000), kind="stable")[:200])
    np.testing.assert_array_equal(test, expected)
    np.testing.assert_array_equal(train, np.setdiff1d(np.arange(1000), expected))


def test_smallest_keys_breaks_ties_by_position():
    """Keys equal to the cut-off: the first ones by position are taken, exactly n of them."""
    from tasks.splits import smallest_keys

    keys = np.array([0.5, 0.1, 0.5, 0.9, 0.5, 0.2])
    np.testing.assert_array_equal(np.flatnonzero(smallest_keys(keys, 3)), [0, 1, 5])
    np.testing.assert_array_equal(np.flatnonzero(smallest_keys(keys, 4)), [0, 1, 2, 5])
    assert smallest_keys(np.zeros(7), 3).sum() == 3


def test_random_split_is_uniform():
    """Every row is equally likely to be held out (over seeds), as with a permutation's first rows."""
    from tasks.splits import split_rows

    counts = np.zeros(50)
    for seed in range(2000):
        counts[split_rows(50, 0.2, seed)[1]] += 1
    # binomial(2000, 0.2) per row: mean 400, sd ~17.9
    assert abs(counts.mean() - 400) < 1e-9 and counts.min() > 330 and counts.max() < 470


@pytest.mark.parametrize("strategy", ["random", "user", "movie", "time"])
def test_split_with_validation_is_the_split_then_the_validation_part(strategy):
    """The random strategy's two draws run side by side: the same positions and mask as one after
    the other, on the train rows."""
    from tasks.splits import split_positions, split_with_validation, validation_part

    rng = np.random.default_rng(1)
    u, m, t = rng.integers(0, 30, 2000), rng.integers(0, 40, 2000), rng.integers(0, 10**6, 2000)
    train, test, validation = split_with_validation(strategy, u, m, t, 0.2, 0.1, 5)
    ref_train, ref_test = split_positions(strategy, u, m, t, 0.2, 5)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(test, ref_test)
    np.testing.assert_array_equal(validation, validation_part(strategy, u[train], m[train], t[train], 0.1, 6))
