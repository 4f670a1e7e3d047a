"""Loading both layouts, and each bad input's one-line message (file, column, example lines)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.errors import InputError
from tasks.load import OCCUPATIONS, data_fingerprint, load_dataset

USERS = "user_id,gender,age,occupation\n1,F,25,lawyer\n2,M,35,programmer\n3,M,18,writer\n"
MOVIES = "movie_id,title,overview\n10,Alpha (1990),A heist.\n20,Beta (1991),A romance.\n30,Gamma (1992),\n"
RATINGS = "user_id,movie_id,rating,timestamp\n1,10,4,100\n1,20,5,101\n2,10,3,102\n3,30,1,103\n2,20,2,104\n"


def write_dir(root: Path, ratings: str = RATINGS, users: str = USERS, movies: str = MOVIES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.csv").write_text(ratings)
    (root / "users.csv").write_text(users)
    (root / "movies.csv").write_text(movies)
    return root


def test_csv_layout_loads_typed_tables(tmp_path):
    ds = load_dataset(write_dir(tmp_path))
    assert ds.layout == "csv"
    assert list(ds.ratings.columns) == ["user_id", "movie_id", "rating", "timestamp"]
    assert ds.ratings["rating"].tolist() == [4, 5, 3, 1, 2]
    assert ds.users.set_index("user_id")["occupation"].to_dict() == {1: "lawyer", 2: "programmer", 3: "writer"}
    assert pd.isna(ds.movies.loc[2, "overview"])  # missing overview kept; the policy decides later
    assert ds.stats["n_ratings_loaded"] == 5


def test_both_layouts_give_the_same_rows(small_csv, small_dat):
    a, b = load_dataset(small_csv), load_dataset(small_dat)
    assert (a.layout, b.layout) == ("csv", "ml-1m")
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.movies[["movie_id", "title", "overview"]], b.movies[["movie_id", "title", "overview"]])


def test_ml1m_occupation_codes_become_names(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::10::4::978300760\n2::10::5::978300761\n")
    (tmp_path / "users.dat").write_text("1::F::1::11::48067\n2::M::56::18::70072\n")
    (tmp_path / "movies.dat").write_bytes("10::Amélie (2001)::Comedy|Romance\n".encode("latin-1"))
    (tmp_path / "overviews.csv").write_text('movie_id,overview\n10,"A shy waitress, Paris."\n')
    ds = load_dataset(tmp_path)
    assert ds.users["occupation"].tolist() == ["lawyer", "tradesman/craftsman"]
    assert OCCUPATIONS[11] == "lawyer" and len(OCCUPATIONS) == 21
    assert ds.movies["title"].tolist() == ["Amélie (2001)"]  # latin-1 decoded
    assert ds.movies["overview"].tolist() == ["A shy waitress, Paris."]


def test_ml1m_without_overviews_loads_titles_and_genres(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::10::4::978300760\n")
    (tmp_path / "users.dat").write_text("1::F::1::11::48067\n")
    (tmp_path / "movies.dat").write_text("10::Heat (1995)::Action|Crime\n")
    ds = load_dataset(tmp_path)
    assert ds.movies["overview"].isna().all() and ds.movies["genres"].tolist() == ["Action|Crime"]
    assert ds.rating_scale == (1.0, 5.0) and ds.scale_source == "release"


RANGE_RATINGS = RATINGS.replace("2,10,3,102", "2,10,7,102").replace("3,30,1,103", "3,30,0,103")


def test_ratings_outside_a_given_scale_are_named(tmp_path):
    root = write_dir(tmp_path, ratings=RANGE_RATINGS)
    with pytest.raises(InputError) as err:
        load_dataset(root, rating_scale=(1.0, 5.0))
    message = str(err.value)
    for piece in ["ratings.csv: column 'rating': 2 of 5 values outside 1-5 (data.rating_scale)",
                  "line 4 (user_id=2, movie_id=10, rating=7)", "line 5 (user_id=3, movie_id=30, rating=0)"]:  # fmt: skip
        assert piece in message


def test_auto_scale_of_the_notebook_layout_is_the_files_range(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        ds = load_dataset(write_dir(tmp_path, ratings=RANGE_RATINGS))
    assert ds.rating_scale == (0.0, 7.0) and ds.scale_source == "data"
    assert "on a 0-7 scale (data)" in caplog.text
    assert "ratings.csv: ratings span 0-7, not a usual scale (1-5, 0.5-5, 0-5, 1-10, 0-10)" in caplog.text


def test_movies_limit_keeps_first_movies_in_file_order(tmp_path):
    ds = load_dataset(write_dir(tmp_path), movies_limit=2)
    assert ds.movies["movie_id"].tolist() == [10, 20]
    assert set(ds.ratings["movie_id"]) == {10, 20}
    assert ds.stats["n_ratings_outside_movies_limit"] == 1
    assert ds.stats["n_ratings_loaded"] == 5


def test_unknown_ids_are_counted_and_dropped(tmp_path, caplog):
    ratings = RATINGS + "9,10,4,105\n1,99,3,106\n"
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(write_dir(tmp_path, ratings=ratings))
    assert ds.stats["n_ratings_unknown_ids"] == 2
    assert len(ds.ratings) == 5
    assert "dropped 2 of 7 ratings reference unknown users or movies (1 unknown users, 1 unknown movies)" in caplog.text
    assert "line 7 (user_id=9, movie_id=10)" in caplog.text


# Each bad input: (files to write, the exact pieces the one-line message must contain).
BAD_INPUTS = {
    "missing_column": (
        {"ratings": "user_id,movie_id,score\n1,10,4\n"},
        ["ratings.csv: missing column(s) 'rating'", "found: user_id, movie_id, score"],
    ),
    "rating_not_a_number": (
        {"ratings": RATINGS.replace("1,20,5,101", "1,20,five,101")},
        ["ratings.csv: column 'rating': 1 of 5 values are missing or not numbers", "line 3 (user_id=1, movie_id=20, rating='five')"],
    ),
    "id_not_whole": (
        {"users": USERS.replace("2,M,35", "2.5,M,35")},
        ["users.csv: column 'user_id': 1 of 3 values are not whole numbers", "line 3 (user_id=2.5, gender='M', age=35"],
    ),
    "duplicate_user": (
        {"users": USERS + "2,F,50,artist\n"},
        ["users.csv: column 'user_id': 2 of 4 rows repeat a user_id", "line 3 (user_id=2,", "line 5 (user_id=2,"],
    ),
    "duplicate_movie": (
        {"movies": MOVIES + "20,Beta again,Another.\n"},
        ["movies.csv: column 'movie_id': 2 of 4 rows repeat a movie_id", "line 3 (movie_id=20, title='Beta (1991)')"],
    ),
    "duplicate_rating": (
        {"ratings": RATINGS + "1,20,3,200\n"},
        ["ratings.csv: column 'user_id, movie_id': 2 of 6 rows repeat a (user_id, movie_id) pair", "line 3 (user_id=1, movie_id=20, rating=5)", "line 7"],
    ),
    "empty_table": (
        {"ratings": "user_id,movie_id,rating\n"},
        ["ratings.csv: no rows (an empty table)"],
    ),
    "missing_gender": (
        {"users": USERS.replace("3,M,18", "3,,18")},
        ["users.csv: column 'gender': 1 of 3 values are missing", "line 4 (user_id=3, gender=<missing>"],
    ),
    "no_ratings_file": (
        {"ratings": None},
        ["no ratings file found; expected the notebook's ratings.csv (user_id, movie_id, rating)", "MovieLens release: 100K (u.data"],
    ),
}


def write_bad(root: Path, name: str) -> tuple[Path, list[str]]:
    files, expected = BAD_INPUTS[name]
    write_dir(root, **{k: v for k, v in files.items() if v is not None})
    for table, content in files.items():
        if content is None:
            (root / f"{table}.csv").unlink()
    return root, expected


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_message(tmp_path, name):
    root, expected = write_bad(tmp_path / name, name)
    with pytest.raises(InputError) as err:
        load_dataset(root)
    message = str(err.value)
    assert "\n" not in message
    for piece in expected:
        assert piece in message


def test_unknown_ids_error_mode(tmp_path):
    root = write_dir(tmp_path, ratings=RATINGS + "9,10,4,105\n")
    with pytest.raises(InputError, match=r"ratings.csv: 1 of 6 ratings reference unknown users or movies, e\.g\. line 7 \(user_id=9, movie_id=10\)"):
        load_dataset(root, unknown_ids="error")


def test_missing_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_fingerprint_follows_content_not_mtime(tmp_path):
    root = write_dir(tmp_path)
    before = data_fingerprint(root)
    (root / "users.csv").write_text(USERS)  # same bytes, new mtime
    assert data_fingerprint(root) == before
    (root / "users.csv").write_text(USERS.replace("lawyer", "artist"))
    after = data_fingerprint(root)
    assert after["users.csv"] != before["users.csv"] and after["ratings.csv"] == before["ratings.csv"]


def test_parquet_ratings(tmp_path):
    root = write_dir(tmp_path)
    frame = pd.read_csv(root / "ratings.csv")
    (root / "ratings.csv").unlink()
    frame.to_parquet(root / "ratings.parquet")
    ds = load_dataset(root)
    assert len(ds.ratings) == 5 and ds.ratings["rating"].dtype == "float32"


@pytest.mark.parametrize("layout", ["csv", "ml-1m", "parquet"])
def test_streaming_reader_equals_the_exact_reader(tmp_path, layout):
    from tasks.demo_data import write_demo_data
    from tasks.load import read_ratings_fast, read_ratings_table, validate_ratings

    write_demo_data(tmp_path, users=30, movies=20, ratings=400, seed=4, layout="ml-1m" if layout == "ml-1m" else "csv")
    path = tmp_path / ("ratings.dat" if layout == "ml-1m" else "ratings.csv")
    if layout == "parquet":
        pd.read_csv(path).to_parquet(tmp_path / "ratings.parquet")
        path = tmp_path / "ratings.parquet"
    fast = read_ratings_fast(path)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, validate_ratings(read_ratings_table(path)))


@pytest.mark.parametrize("name", ["rating_not_a_number", "rating_out_of_range", "duplicate_rating", "missing_column"])
def test_streaming_reader_defers_bad_files_to_the_exact_reader(tmp_path, name):
    from tasks.load import read_ratings_fast

    if name == "rating_out_of_range":
        root = write_dir(tmp_path, ratings=RANGE_RATINGS)
    else:
        root, _ = write_bad(tmp_path / name, name)
    assert read_ratings_fast(root / "ratings.csv", (1.0, 5.0)) is None


@pytest.mark.parametrize("pairs, unique", [
    ([(1, 10), (1, 20), (2, 10), (3, 5)], True),  # sorted by user, then movie: the one-pass check
    ([(2, 10), (1, 20), (1, 10), (3, 5)], True),  # unsorted: every pair hashed
    ([(1, 10), (1, 20), (1, 20), (3, 5)], False),  # sorted, a pair repeated next to itself
    ([(1, 20), (3, 5), (1, 10), (1, 20)], False),  # unsorted, repeated far apart
])  # fmt: skip
def test_streaming_reader_finds_repeated_pairs_sorted_or_not(tmp_path, pairs, unique):
    from tasks.load import read_ratings_fast

    path = tmp_path / "ratings.csv"
    path.write_text("user_id,movie_id,rating\n" + "".join(f"{u},{m},4\n" for u, m in pairs))
    assert (read_ratings_fast(path) is not None) == unique


@pytest.mark.parametrize("block", [1, 3, 1 << 20])
def test_block_checks_of_sorted_ratings_agree_with_the_whole_array(monkeypatch, block):
    """The uniqueness check of (user, movie) pairs and the users derived from the ratings go by
    blocks of rows; across block edges they agree with the whole-array answers."""
    from tasks import load

    monkeypatch.setattr(load, "BLOCK", block)
    rng = np.random.default_rng(4)
    for _ in range(50):
        users = np.sort(rng.integers(0, 4, 9))
        movies = rng.integers(0, 5, 9)
        key = users * 5 + movies
        assert load.pairs_increase(users, movies) == bool((np.diff(key) > 0).all())
        shuffled = rng.permutation(users)
        for values in (users, shuffled):
            np.testing.assert_array_equal(load.distinct_values(values), np.unique(values))
    assert load.pairs_increase(np.array([], dtype=np.int64), np.array([], dtype=np.int64))


def test_ratings_integers_are_narrowed_only_where_every_value_fits():
    """int32 where the whole column fits (MovieLens' ids and second timestamps), int64 kept for ids or
    millisecond timestamps beyond it; values unchanged either way."""
    from tasks.load import narrowed

    frame = pd.DataFrame({
        "user_id": np.array([1, 2**31 - 1], dtype=np.int64),
        "movie_id": np.array([5, 2**31], dtype=np.int64),
        "rating": np.array([4.0, 3.5], dtype=np.float32),
        "timestamp": np.array([978300760, 1_600_000_000_000], dtype=np.int64),
    })  # fmt: skip
    out = narrowed(frame)
    assert out.dtypes.astype(str).to_dict() == {"user_id": "int32", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}
    for column in frame.columns:
        np.testing.assert_array_equal(out[column].to_numpy(), frame[column].to_numpy())
    negative = narrowed(pd.DataFrame({"timestamp": np.array([-(2**31), 0], dtype=np.int64)}))
    assert negative["timestamp"].dtype == np.int32
    assert narrowed(frame.iloc[:0])["user_id"].dtype == np.int64  # nothing to check: left as it is
