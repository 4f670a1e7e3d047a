"""The generator: deterministic, well-formed, in every layout (the notebook's CSVs and each GroupLens release's
files, as GroupLens ships them), with signal a linear model can find."""

from __future__ import annotations

import csv
import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

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


def test_realistic_overviews_are_long_grammatical_sentences():
    movies = generate(users=20, movies=300, ratings=500, seed=4)["movies"]
    texts = movies["overview"].dropna()
    words = texts.str.split().str.len()
    assert words.between(60, 120).all() and words.median() > 70
    sentences = [s for t in texts for s in t.split(". ") if s]
    assert all(s[0].isupper() for s in sentences)
    assert texts.str.endswith(".").all()
    # the agreement slips of the old generator ("A poet find", "journalists follows", "the war during the war")
    assert not texts.str.contains(r"\b(?:poet|journalists) (?:find|follows)\b|during the war", regex=True).any()
    titles = movies["title"]
    assert titles.str.fullmatch(r"\S.* \(\d{4}\)").all() and not titles.str.contains(r"\bThe The\b|\bof the The\b").any()
    short = generate(users=20, movies=50, ratings=100, seed=4, text_length="short")["movies"]["overview"].dropna()
    assert short.str.split().str.len().max() < 60


def test_realistic_texts_say_what_genres_cannot():
    """A cold-start model reading the overview's words predicts a movie's mean rating better than one
    reading its genres only (movie-grouped cross-validation) — the text is worth embedding."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    tables = generate(users=400, movies=600, ratings=60_000, seed=0)
    movies = tables["movies"].dropna(subset=["overview"])
    mean = tables["ratings"].groupby("movie_id")["rating"].mean()
    movies = movies[movies["movie_id"].isin(mean.index)]
    y = mean.loc[movies["movie_id"]].to_numpy()
    genres = movies["genres"].str.get_dummies("|").to_numpy(float)
    words = CountVectorizer(binary=True, min_df=3).fit_transform(movies["overview"]).toarray()
    model = RidgeCV(alphas=np.logspace(-1, 3, 9))
    r2_genres = cross_val_score(model, genres, y, cv=5).mean()
    r2_words = cross_val_score(model, np.hstack([genres, words]), y, cv=5).mean()
    assert r2_words > r2_genres + 0.03, (r2_genres, r2_words)


# ---------------------------------------------------------------- the release layouts (issue #16)

# GroupLens's own vocabularies, spelled out here (not imported) so a wrong constant in the code fails.
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]  # fmt: skip
ML100K_OCCUPATIONS = ["administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
                      "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
                      "retired", "salesman", "scientist", "student", "technician", "writer"]  # fmt: skip
RELEASE_GENRES = {"Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
                  "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
                  "Western"}  # fmt: skip
SMALL_SET = {"users": 30, "movies": 60, "ratings": 600, "seed": 1}
LAYOUT_FILES = {
    "csv": ["movies.csv", "ratings.csv", "users.csv"],
    "ml-100k": ["u.data", "u.genre", "u.item", "u.occupation", "u.user"],
    "ml-1m": ["movies.dat", "overviews.csv", "ratings.dat", "users.dat"],
    "ml-10m": ["movies.dat", "ratings.dat", "tags.dat"],
    "ml-latest": ["links.csv", "movies.csv", "ratings.csv", "tags.csv"],
    "ml-20m": ["links.csv", "movies.csv", "ratings.csv", "tags.csv"],
    "ml-25m": ["links.csv", "movies.csv", "ratings.csv", "tags.csv"],
    "ml-32m": ["links.csv", "movies.csv", "ratings.csv", "tags.csv"],
    "ml-latest-small": ["links.csv", "movies.csv", "ratings.csv", "tags.csv"],
}


def _write(root, layout, **kwargs):
    write_demo_data(root, layout=layout, **{**SMALL_SET, **kwargs})
    return root


def _dat(path, fields, encoding="latin-1"):
    """A '::' file split by hand (pandas' python engine would treat '::' as a regex)."""
    rows = [line.split("::") for line in path.read_bytes().decode(encoding).splitlines()]
    assert {len(r) for r in rows} == {fields}, path.name
    return pd.DataFrame(rows)


def test_csv_and_ml1m_bytes_are_those_before_the_release_layouts(tmp_path):
    """sha256 of the files written before the release layouts were added: the existing layouts, their
    caches and tests see the same bytes (the release layouts draw from streams of their own)."""
    expected = {
        "csv": {"movies.csv": "4697acf60348d99c950a72af98c05e1b66bc8e9bfad3dbd11cd3bd6535972484",
                "ratings.csv": "5d47a47c911f62af4e7dee1b22f6e24d213828807dd694c64b57fc4adca92fbe",
                "users.csv": "ae0cea3f54b3532c5057b8b66db5db39056a12644af24fc5597b846270f13d20"},
        "ml-1m": {"movies.dat": "2de635905ff4ccc753cbde22410ea1c0e8473a7d366a22d959bd8e256bbe6bbb",
                  "overviews.csv": "ebc6a1bd7beb5bb18e0c5b80e5592b66bac6292c6bae8d9394e455326cb8f7f6",
                  "ratings.dat": "b94263cfa66d5347001be8dee4a2b853a35c51187860070290ee15c594f51b79",
                  "users.dat": "37021f1f7f279f4fc61ecd432a21199a382c32acf983cd05392c07e8a75394aa"},
    }  # fmt: skip
    for layout, files in expected.items():
        written = write_demo_data(tmp_path / layout, users=30, movies=20, ratings=300, seed=1, layout=layout)
        assert {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in written.items()} == files


@pytest.mark.parametrize("layout", sorted(LAYOUT_FILES))
def test_each_layout_writes_exactly_its_files_same_seed_same_bytes(tmp_path, layout):
    a = write_demo_data(tmp_path / "a", layout=layout, **SMALL_SET)
    b = write_demo_data(tmp_path / "b", layout=layout, **SMALL_SET)
    c = write_demo_data(tmp_path / "c", layout=layout, **{**SMALL_SET, "seed": 2})
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(a) == LAYOUT_FILES[layout]
    assert all(a[n].read_bytes() == b[n].read_bytes() for n in a)
    assert any(a[n].read_bytes() != c[n].read_bytes() for n in a)


def test_ml100k_as_grouplens_ships_it(tmp_path):
    root = _write(tmp_path, "ml-100k")
    data = pd.read_csv(root / "u.data", sep="\t", header=None)
    assert data.shape == (600, 4) and (data.dtypes == np.int64).all()
    assert set(data[2]) <= {1, 2, 3, 4, 5} and data[3].between(8e8, 2e9).all()
    users = pd.read_csv(root / "u.user", sep="|", header=None, dtype={4: str})
    assert users.shape == (30, 5) and users[0].tolist() == list(range(1, 31))
    assert users[1].between(7, 73).all() and users[1].nunique() > 10  # raw ages, not 1M's seven buckets
    assert set(users[2]) <= {"F", "M"} and set(users[3]) <= set(ML100K_OCCUPATIONS)
    assert users[4].str.fullmatch(r"\d{5}").all()

    raw = (root / "u.item").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # latin-1, as GroupLens's: an 'é' is one byte
    items = pd.read_csv(root / "u.item", sep="|", header=None, encoding="latin-1", quoting=csv.QUOTE_NONE)
    assert items.shape == (60, 24) and items[0].tolist() == list(range(1, 61))
    assert items[1].str.contains("é").any() and items[1].str.fullmatch(r".+ \(\d{4}\)").all()
    assert items[2].str.fullmatch(r"\d\d-[A-Z][a-z]{2}-\d{4}").all() and items[3].isna().all()
    assert items[4].str.startswith("http://us.imdb.com/M/title-exact?").all()
    flags = items.iloc[:, 5:].set_axis(ML100K_GENRES, axis=1)
    assert set(np.unique(flags.to_numpy())) == {0, 1} and (flags.sum(axis=1) >= 1).all()
    generated = generate(**{k: SMALL_SET[k] for k in ("users", "movies", "ratings", "seed")})["movies"]
    for (_, row), genres in zip(flags.iterrows(), generated["genres"]):
        listed = [g for g in ML100K_GENRES if row[g]]
        assert listed == ["unknown"] or listed == sorted(genres.split("|"), key=ML100K_GENRES.index)
    assert flags["unknown"].sum() >= 1
    assert set(data[0]) <= set(users[0]) and set(data[1]) <= set(items[0])

    genre = pd.read_csv(root / "u.genre", sep="|", header=None)
    assert genre[0].tolist() == ML100K_GENRES and genre[1].tolist() == list(range(19))
    assert (root / "u.occupation").read_text().splitlines() == ML100K_OCCUPATIONS


def test_ml10m_as_grouplens_ships_it(tmp_path):
    root = _write(tmp_path, "ml-10m")
    lines = (root / "ratings.dat").read_text().splitlines()
    assert all(re.fullmatch(r"\d+::\d+::(?:[1-5]|[0-4]\.5)::\d+", line) for line in lines)  # '5', '3.5'; never '5.0'
    ratings = _dat(root / "ratings.dat", 4).astype(float)
    assert set(ratings[2]) <= {x / 2 for x in range(1, 11)} and (ratings[2] % 1 == 0.5).any()
    assert ratings[[0, 1]].apply(tuple, axis=1).is_monotonic_increasing  # sorted by user, then movie
    movies = _dat(root / "movies.dat", 3)
    ids = movies[0].astype(int)
    assert ids.is_monotonic_increasing and ids.tolist() != list(range(1, 61)) and ids.max() > 1000  # sparse ids
    assert movies[1].str.fullmatch(r".+ \(\d{4}\)").all()
    genres = movies[2].str.split("|").explode()
    assert (movies[2] == "(no genres listed)").sum() >= 1 and set(genres) - {"(no genres listed)"} <= RELEASE_GENRES
    assert set(ratings[1].astype(int)) <= set(ids)
    tags = _dat(root / "tags.dat", 4)
    assert set(tags[1].astype(int)) <= set(ids) and tags[0].astype(int).between(1, 30).all()
    assert tags[2].str.fullmatch(r"[a-z][a-z ()-]*").all() and tags[3].astype(int).between(1.1e9, 1.8e9).all()


def test_ml_latest_as_grouplens_ships_it(tmp_path):
    root = _write(tmp_path, "ml-latest")
    headers = {n: (root / n).read_text().splitlines()[0] for n in LAYOUT_FILES["ml-latest"]}
    assert headers == {"ratings.csv": "userId,movieId,rating,timestamp", "movies.csv": "movieId,title,genres",
                       "tags.csv": "userId,movieId,tag,timestamp", "links.csv": "movieId,imdbId,tmdbId"}  # fmt: skip
    rating_text = pd.read_csv(root / "ratings.csv", dtype=str)["rating"]
    assert rating_text.str.fullmatch(r"[0-5]\.[05]").all()
    assert (rating_text == "3.5").any() and (rating_text == "4.0").any()
    movies = pd.read_csv(root / "movies.csv")
    assert movies["movieId"].is_monotonic_increasing and movies["movieId"].max() > 1000
    assert movies["movieId"].tolist() != list(range(1, 61))
    assert (movies["genres"] == "(no genres listed)").any()
    assert movies["title"].str.contains(",").any() and movies["title"].str.contains('"').any()
    assert movies["title"].str.contains("é").any()  # UTF-8 here
    # The same titles as the 10M layout's movies.dat: commas and quotes survive the CSV quoting.
    dat_titles = _dat(_write(tmp_path / "10m", "ml-10m") / "movies.dat", 3)[1]
    assert movies["title"].tolist() == dat_titles.tolist()
    links = pd.read_csv(root / "links.csv", dtype=str)
    assert links["movieId"].astype(int).tolist() == movies["movieId"].tolist()  # every movie, once
    assert links["imdbId"].str.fullmatch(r"\d{7}").all() and links["imdbId"].is_unique
    tmdb = links["tmdbId"].dropna()
    assert 1 <= links["tmdbId"].isna().sum() <= 6 and tmdb.str.fullmatch(r"[1-9]\d*").all() and tmdb.is_unique
    ratings, tags = pd.read_csv(root / "ratings.csv"), pd.read_csv(root / "tags.csv")
    assert set(ratings["movieId"]) <= set(movies["movieId"]) and set(tags["movieId"]) <= set(movies["movieId"])
    assert tags["userId"].between(1, 30).all() and not tags.duplicated(["userId", "movieId", "tag"]).any()
    assert 0.4 < tags["movieId"].nunique() / len(movies) < 0.8  # ~60% of movies tagged


def test_half_stars_are_per_user_and_from_the_same_score(tmp_path):
    root = _write(tmp_path, "ml-latest", users=200, movies=100, ratings=8000, seed=3)
    ratings = pd.read_csv(root / "ratings.csv")
    half_share = (ratings["rating"] % 1 == 0.5).groupby(ratings["userId"]).mean()
    assert (half_share == 0).sum() > 80 and (half_share > 0.25).sum() > 40  # whole-star users and half-star users
    assert 0.25 < (half_share > 0).mean() < 0.55  # ~40% of users
    # Each rating is the whole-star one or within half a star of it (the same hidden score).
    tables = generate(users=200, movies=100, ratings=8000, seed=3)
    position = {movie: i + 1 for i, movie in enumerate(pd.read_csv(root / "movies.csv")["movieId"])}
    whole = tables["ratings"].set_index(["user_id", "movie_id"])["rating"]
    keyed = ratings.assign(movie_id=ratings["movieId"].map(position)).set_index(["userId", "movie_id"])["rating"]
    diff = (keyed - whole.reindex(keyed.index)).abs()
    assert diff.max() <= 0.5 and (diff == 0).mean() > 0.7
    only_whole = half_share.index[half_share == 0]
    assert (diff[diff.index.get_level_values(0).isin(only_whole)] == 0).all()


def test_tags_say_what_genres_and_overviews_say(tmp_path):
    from tasks.demo_text import CRAFT_TAGS, GENRE_NAMES, GENRE_TAGS, THEME_TAGS, THEMES

    vocabulary = [t for ts in GENRE_TAGS.values() for t in ts] + [t for p in THEME_TAGS for ts in p for t in ts]
    vocabulary += [t for ts in CRAFT_TAGS for t in ts]
    assert len(vocabulary) == len(set(vocabulary)) and all(t == t.lower() for t in vocabulary)
    assert list(GENRE_TAGS) == GENRE_NAMES and len(THEME_TAGS) == len(THEMES)

    root = _write(tmp_path, "ml-latest", users=200, movies=300, ratings=6000, seed=0, overviews="movie_id")
    tags = pd.read_csv(root / "tags.csv")
    genres = pd.read_csv(root / "movies.csv").set_index("movieId")["genres"]
    for genre, words in GENRE_TAGS.items():
        listed = genres[tags.loc[tags["tag"].isin(words), "movieId"]]
        listed = listed[listed != "(no genres listed)"]  # the movie has genres; the release does not list them
        assert len(listed) > 10 and all(genre in names.split("|") for names in listed)
    overview = pd.read_csv(root / "overviews.csv").set_index("movie_id")["overview"]
    agree = []
    for (neg, pos), poles in zip(THEME_TAGS, THEMES):
        for words, sentences in ((neg, poles[0]), (pos, poles[1])):
            movies = set(tags.loc[tags["tag"].isin(words), "movieId"]) & set(overview.index)
            agree += [any(s in overview[m] for s in sentences) for m in movies]
    assert len(agree) > 100 and np.mean(agree) > 0.9


def test_overviews_choices(tmp_path):
    def write(name, layout, overviews):
        return _write(tmp_path / name, layout, overviews=overviews)

    for key, column in (("tmdb", "tmdbId"), ("imdb", "imdbId"), ("movie_id", "movie_id")):
        root = write(key, "ml-25m", key)
        found = pd.read_csv(root / "overviews.csv", dtype=str, encoding="utf-8")
        assert list(found.columns) == [column, "overview"] and len(found) >= 50
        links = pd.read_csv(root / "links.csv", dtype=str).rename(columns={"movieId": "movie_id"})
        assert set(found[column]) <= set(links[column].dropna())  # the release's (sparse) ids, imdbId zero-padded
    root = write("csv-none", "csv", "none")
    assert "overview" not in pd.read_csv(root / "movies.csv").columns and not (root / "overviews.csv").exists()
    root = write("csv-id", "csv", "movie_id")
    assert "overview" not in pd.read_csv(root / "movies.csv").columns
    assert list(pd.read_csv(root / "overviews.csv").columns) == ["movie_id", "overview"]
    assert not (write("1m-none", "ml-1m", "none") / "overviews.csv").exists()
    root = write("100k-id", "ml-100k", "movie_id")
    assert set(pd.read_csv(root / "overviews.csv")["movie_id"]) <= set(range(1, 61))
    refused = [("ml-1m", {"overviews": "tmdb"}), ("csv", {"overviews": "imdb"}), ("ml-10m", {"overviews": "x"}),
               ("ml-10m", {"ratings_format": "parquet"}), ("nope", {})]  # fmt: skip
    for layout, kwargs in refused:
        with pytest.raises(ValueError):
            write_demo_data(tmp_path / "bad", layout=layout, **kwargs, **SMALL_SET)
    assert not (tmp_path / "bad").exists()  # refused before any work


def test_demo_data_command_writes_release_layouts(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    small = ["--users", "20", "--movies", "15", "--ratings", "100"]
    command = [sys.executable, "-m", "flows", "demo-data"]
    proc = subprocess.run([*command, str(tmp_path / "25m"), "--layout", "ml-25m", *small],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "25m").iterdir()) == LAYOUT_FILES["ml-25m"]
    proc = subprocess.run([*command, str(tmp_path / "x"), "--layout", "nope"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        ("error: demo-data: layout 'nope': use one of csv, ml-100k, ml-1m, ml-10m, ml-latest, ml-20m, ml-25m, ml-32m, "
         "ml-latest-small")
    ]
    runner = CliRunner()
    for args, message in [
        (["--layout", "ml-10m", "--ratings-format", "parquet"], "'parquet' only applies to the csv layout"),
        (["--layout", "ml-1m", "--overviews", "tmdb"], "overviews 'tmdb' needs links.csv"),
        (["--overviews", "everything"], "overviews 'everything': use one of auto, none, movie_id, tmdb, imdb"),
    ]:
        result = runner.invoke(app, ["demo-data", str(tmp_path / "y"), *args, *small])
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    result = runner.invoke(app, ["demo-data", str(tmp_path / "z"), "--layout", "ml-100k", "--overviews", "movie_id",
                                 *small])  # fmt: skip
    assert result.exit_code == 0 and (tmp_path / "z" / "overviews.csv").exists()
    # Another release's files count as the user's data too.
    result = runner.invoke(app, ["demo-data", str(tmp_path / "z"), "--layout", "ml-latest", *small])
    assert result.exit_code == 2 and "u.data, u.genre, u.item, u.occupation, u.user already there" in result.stderr
