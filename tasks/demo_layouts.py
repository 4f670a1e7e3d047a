"""The generated data set as files, in the notebook's CSV layout or a GroupLens release's layout,
written as GroupLens ships each release (its licence forbids redistributing the real files, so the
demos and the loader's tests use these).

==========  ==============================================================  ========  =======================
layout      files                                                           ratings   users
==========  ==============================================================  ========  =======================
csv         ratings.csv (or .parquet), users.csv, movies.csv (+ overview)   1-5       as generated
ml-100k     u.data (tab), u.user, u.item ('|', latin-1, 19 genre flags),    1-5       raw ages, 100K's
            u.genre, u.occupation                                                     occupation names
ml-1m       ratings.dat, users.dat, movies.dat ('::', latin-1),             1-5       age buckets, codes
            overviews.csv
ml-10m      ratings.dat, movies.dat, tags.dat ('::', latin-1)               0.5-5     none
ml-latest   ratings.csv, movies.csv, tags.csv, links.csv (camelCase         0.5-5     none
            headers; also ml-20m, ml-25m, ml-32m, ml-latest-small)
==========  ==============================================================  ========  =======================

The release layouts spell titles as GroupLens does ('Firm, The (1993)', a few with the original title
in brackets and a latin-1 accent, a few with a quoted series name) and list a few movies without
genres. In 10M and the CSV releases movie ids are sparse (as real ones, up to 65k and 200k+), ~40%
of users rate in half stars, and ~60% of movies carry tags drawn from their genres, the tone their
overview states and their craft. Every draw here comes from its own stream (``extra_rng``), never
from the generator's, so the csv and ml-1m files stay byte for byte what they were.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

import numpy as np
import pandas as pd

from tasks.demo_text import CRAFT_TAGS, GENRE_TAGS, THEME_TAGS
from tasks.layouts import ML100K_GENRES, NO_GENRES
from tasks.movielens import ML100K_OCCUPATIONS, OCCUPATIONS

OVERVIEW_CHOICES = ("auto", "none", "movie_id", "tmdb", "imdb")
OVERVIEW_KEYS = {"movie_id": "movie_id", "tmdb": "tmdbId", "imdb": "imdbId"}  # choice → overviews.csv key column
HALF_STAR_USERS = 0.4  # share of users who rate in half stars (10M, CSV releases)
TAGGED_MOVIES, MAX_TAGS = 0.6, 8  # share of movies with tags; tag applications per tagged movie: 1 to this
TAG_TIMES = (1_135_000_000, 1_700_000_000)  # tags began in 2006
SPARSE_IDS = {"ml-10m": 65_133, "ml-latest": 292_757}  # the releases' highest movie ids
NO_TMDB = 0.03  # share of movies without a tmdbId in links.csv
# Independent streams for what the release layouts add: np.random.default_rng([seed, stream]).
STREAMS = {"half stars": 1601, "movies": 1602, "tags": 1603, "links": 1604, "users": 1605, "dates": 1606}

# GroupLens's title spellings: the original title in brackets after the English one (latin-1 accents,
# commas), and a TV series' name in quotes.
ORIGINAL_TITLES = ("Cité des rêves, La", "Été meurtrier, L'", "Bête humaine, La", "Misérables, Les", "Fièvre")
SERIES = ("Great Performances", "American Playhouse", "Masterpiece Theatre")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# MovieLens-1M age bucket → the raw ages it covers (MovieLens-100K gives ages 7-73).
AGE_RANGES = {1: (7, 17), 18: (18, 24), 25: (25, 34), 35: (35, 44), 45: (45, 49), 50: (50, 55), 56: (56, 73)}
# MovieLens-1M occupation → the MovieLens-100K names it becomes (one drawn per user).
OCCUPATIONS_100K = {
    "other": ("other",), "academic/educator": ("educator", "librarian"), "artist": ("artist", "entertainment"),
    "clerical/admin": ("administrator",), "college/grad student": ("student",), "customer service": ("other",),
    "doctor/health care": ("doctor", "healthcare"), "executive/managerial": ("executive",), "farmer": ("other",),
    "homemaker": ("homemaker",), "K-12 student": ("student",), "lawyer": ("lawyer",), "programmer": ("programmer",),
    "retired": ("retired",), "sales/marketing": ("salesman", "marketing"), "scientist": ("scientist",),
    "self-employed": ("other",), "technician/engineer": ("technician", "engineer"),
    "tradesman/craftsman": ("technician",), "unemployed": ("none",), "writer": ("writer",),
}  # fmt: skip


@dataclass(frozen=True)
class Synthetic:
    """``generate()``'s tables and the hidden values behind them that the release layouts need."""

    tables: dict[str, pd.DataFrame]  # ratings, users, movies
    score: np.ndarray  # each rating's score before rounding, row-aligned with tables['ratings']
    user_pos: np.ndarray  # each rating's row in tables['users']
    movie_pos: np.ndarray  # each rating's row in tables['movies']
    tone: np.ndarray  # (movies, taste dimensions) -1/0/+1: the pole of each dimension its overview states
    craft: np.ndarray  # (movies,) -1/0/+1: the craft pole its overview states
    seed: int


@dataclass(frozen=True)
class FileOptions:
    parquet: bool  # ratings as Parquet (csv layout only)
    overviews: str  # one of OVERVIEW_CHOICES


def extra_rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[stream]])


# ---------------------------------------------------------------- encodings


def csv_bytes(frame: pd.DataFrame, float_format: str | None = None) -> bytes:
    return frame.to_csv(index=False, float_format=float_format).encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def separated_bytes(frame: pd.DataFrame, sep: str = "::", encoding: str = "latin-1") -> bytes:
    """GroupLens's header-less files: fields joined by ``sep``, no quoting, one line per row."""
    if frame.empty:
        return b""
    columns = [frame[c].astype(str) for c in frame.columns]
    lines = columns[0]
    for column in columns[1:]:
        lines = lines + sep + column
    return ("\n".join(lines) + "\n").encode(encoding)


def star_text(rating: np.ndarray) -> np.ndarray:
    """Ratings as the .dat releases write them: '5' for whole stars, '3.5' for halves."""
    whole = rating == np.floor(rating)
    return np.where(whole, rating.astype(np.int64).astype(str), rating.astype(str))


# ---------------------------------------------------------------- what the releases add


def half_star_ratings(data: Synthetic) -> np.ndarray:
    """Each rating from the same score as the whole-star one: ~40% of users (drawn per user) round it
    to half stars (0.5-5), the others to whole stars (1-5), as real users of the 10M+ releases do."""
    halves = extra_rng(data.seed, "half stars").random(len(data.tables["users"])) < HALF_STAR_USERS
    half = np.clip(np.rint(data.score * 2) / 2, 0.5, 5.0)
    whole = np.clip(np.rint(data.score), 1.0, 5.0)
    return np.where(halves[data.user_pos], half, whole)


def grouplens_title(title: str) -> str:
    """'The Firm (1993)' → 'Firm, The (1993)': GroupLens moves a leading article to the end."""
    name, year = title[:-7], title[-7:]
    return f"{name[4:]}, The{year}" if name.startswith("The ") else title


def sparse_ids(n: int, highest: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct increasing ids in 1..max(highest, 3n): gaps like the real releases' ids."""
    return np.sort(rng.choice(max(highest, 3 * n), size=n, replace=False)) + 1


def release_movies(data: Synthetic, highest_id: int | None) -> pd.DataFrame:
    """The movies as a release lists them: ids 1..n (``highest_id`` None) or sparse, GroupLens's title
    spelling, ~2% (at least one each) with an original title, a quoted series name, or no genres ('')."""
    movies = data.tables["movies"]
    n = len(movies)
    rng = extra_rng(data.seed, "movies")
    order = rng.permutation(n)
    k = max(1, n // 50)
    titles = [grouplens_title(t) for t in movies["title"]]
    for j, i in enumerate(order[:k]):
        titles[i] = f"{titles[i][:-7]} ({ORIGINAL_TITLES[j % len(ORIGINAL_TITLES)]}){titles[i][-7:]}"
    for j, i in enumerate(order[k : 2 * k]):
        titles[i] = f'"{SERIES[j % len(SERIES)]}" {titles[i]}'
    genres = movies["genres"].to_numpy(dtype=object).copy()
    genres[order[2 * k : 3 * k]] = ""
    ids = np.arange(1, n + 1, dtype=np.int64) if highest_id is None else sparse_ids(n, highest_id, rng)
    return pd.DataFrame(
        {"movie_id": ids, "title": titles, "genres": genres, "year": movies["title"].str[-5:-1].astype(int),
         "overview": movies["overview"].to_numpy()}
    )  # fmt: skip


def release_ratings(data: Synthetic, movie_ids: np.ndarray) -> pd.DataFrame:
    """Half-star ratings under the release's movie ids, sorted by user then movie as GroupLens's are."""
    ratings = data.tables["ratings"]
    frame = pd.DataFrame(
        {"userId": ratings["user_id"].to_numpy(), "movieId": movie_ids[data.movie_pos],
         "rating": half_star_ratings(data), "timestamp": ratings["timestamp"].to_numpy()}
    )  # fmt: skip
    return frame.sort_values(["userId", "movieId"], kind="stable", ignore_index=True)


def tag_vocabulary(genres: list[str], tone: np.ndarray, craft: int) -> list[str]:
    """The tags a movie may get: its genres', its stated tone poles' and its craft pole's."""
    vocabulary = [tag for genre in genres for tag in GENRE_TAGS[genre]]
    vocabulary += [tag for d, pole in enumerate(tone) if pole for tag in THEME_TAGS[d][int(pole > 0)]]
    if craft:
        vocabulary += CRAFT_TAGS[int(craft > 0)]
    return vocabulary


def tag_applications(data: Synthetic, movie_ids: np.ndarray) -> pd.DataFrame:
    """~60% of movies get 1-8 tag applications by random users (each tag once per user and movie),
    sorted by user then movie; columns userId, movieId, tag, timestamp."""
    rng = extra_rng(data.seed, "tags")
    movies, user_ids = data.tables["movies"], data.tables["users"]["user_id"].to_numpy()
    tagged = np.flatnonzero(rng.random(len(movies)) < TAGGED_MOVIES)
    counts = rng.integers(1, MAX_TAGS + 1, len(movies))
    users, items, tags = [np.empty(0, np.int64)], [np.empty(0, np.int64)], []
    for i in tagged:
        vocabulary = tag_vocabulary(movies["genres"].iat[i].split("|"), data.tone[i], int(data.craft[i]))
        tags += [vocabulary[j] for j in rng.integers(len(vocabulary), size=counts[i])]
        users.append(user_ids[rng.integers(len(user_ids), size=counts[i])])
        items.append(np.full(counts[i], movie_ids[i]))
    frame = pd.DataFrame(
        {"userId": np.concatenate(users), "movieId": np.concatenate(items), "tag": pd.Series(tags, dtype=object),
         "timestamp": rng.integers(*TAG_TIMES, size=len(tags))}
    )  # fmt: skip
    frame = frame.drop_duplicates(["userId", "movieId", "tag"])
    return frame.sort_values(["userId", "movieId"], kind="stable", ignore_index=True)


def movie_links(movie_ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """links.csv: distinct 7-digit zero-padded imdbIds, distinct tmdbIds, ~3% (at least one) blank."""
    n = len(movie_ids)
    imdb = rng.choice(2_990_000, size=n, replace=False) + 10_000
    tmdb = pd.array(rng.choice(1_000_000, size=n, replace=False) + 1, dtype="Int64")
    tmdb[rng.permutation(n)[: max(1, round(NO_TMDB * n))]] = pd.NA
    return pd.DataFrame({"movieId": movie_ids, "imdbId": [f"{i:07d}" for i in imdb], "tmdbId": tmdb})


def overviews_file(key: str, keys, overview: pd.Series) -> dict[str, bytes]:
    """overviews.csv (utf-8): ``key`` and ``overview`` for each movie that has both."""
    frame = pd.DataFrame({key: keys, "overview": overview.to_numpy()})
    return {"overviews.csv": csv_bytes(frame.dropna().reset_index(drop=True))}


def ml100k_users(users: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """u.user's columns: a raw age within the user's 1M age bucket and a 100K occupation name for
    the user's 1M occupation, so the features keep the signal the ratings were drawn from."""
    low = users["age"].map(lambda a: AGE_RANGES[a][0]).to_numpy()
    high = users["age"].map(lambda a: AGE_RANGES[a][1]).to_numpy()
    age = rng.integers(low, high + 1)
    options = [OCCUPATIONS_100K[o] for o in users["occupation"]]
    picks = rng.random(len(users))
    occupation = [names[int(p * len(names))] for names, p in zip(options, picks)]
    return pd.DataFrame(
        {"user_id": users["user_id"], "age": age, "gender": users["gender"], "occupation": occupation,
         "zip": users["zip"]}
    )  # fmt: skip


def ml100k_items(movies: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """u.item's 24 fields: id, title, release date (01-Jan-1995), an empty video release date, IMDb
    URL, then one 0/1 flag per genre in u.genre's order ('unknown' for a movie without genres)."""
    day = rng.integers(1, 29, len(movies))
    month = rng.integers(0, 12, len(movies))
    flags = movies["genres"].str.get_dummies("|").reindex(columns=list(ML100K_GENRES), fill_value=0)
    flags["unknown"] = (flags.sum(axis=1) == 0).astype(int)
    return pd.concat(
        [pd.DataFrame({
            "movie_id": movies["movie_id"], "title": movies["title"],
            "release_date": [f"{d:02d}-{MONTHS[m]}-{y}" for d, m, y in zip(day, month, movies["year"])],
            "video_release_date": "",
            "imdb_url": ["http://us.imdb.com/M/title-exact?" + quote(t, safe="()',:", encoding="latin-1")
                         for t in movies["title"]],
        }), flags.astype(int)],
        axis=1,
    )  # fmt: skip


# ---------------------------------------------------------------- one writer per layout


def _overview_choice(options: FileOptions, default: str | None) -> str | None:
    """The key of the overviews.csv to write (None: none): 'auto' gives the layout's default."""
    if options.overviews == "auto":
        return default
    return None if options.overviews == "none" else OVERVIEW_KEYS[options.overviews]


def csv_files(data: Synthetic, options: FileOptions) -> dict[str, bytes]:
    """ratings.csv (or .parquet), users.csv, movies.csv with the overview column ('auto'), or
    without it and overviews.csv beside ('movie_id'), or without overviews ('none')."""
    ratings, movies = data.tables["ratings"], data.tables["movies"]
    key = _overview_choice(options, None)
    inline = options.overviews == "auto"
    files = {
        **({"ratings.parquet": parquet_bytes(ratings)} if options.parquet else {"ratings.csv": csv_bytes(ratings)}),
        "users.csv": csv_bytes(data.tables["users"]),
        "movies.csv": csv_bytes(movies if inline else movies.drop(columns="overview")),
    }
    if key:
        files |= overviews_file(key, movies["movie_id"].to_numpy(), movies["overview"])
    return files


def ml1m_files(data: Synthetic, options: FileOptions) -> dict[str, bytes]:
    """ratings.dat, users.dat (occupation codes), movies.dat ('::', latin-1) and overviews.csv."""
    users = data.tables["users"].copy()
    users["occupation"] = users["occupation"].map({n: i for i, n in enumerate(OCCUPATIONS)})
    movies = data.tables["movies"]
    files = {
        "ratings.dat": separated_bytes(data.tables["ratings"]),
        "users.dat": separated_bytes(users[["user_id", "gender", "age", "occupation", "zip"]]),
        "movies.dat": separated_bytes(movies[["movie_id", "title", "genres"]]),
    }
    key = _overview_choice(options, "movie_id")
    if key:
        files |= overviews_file(key, movies["movie_id"].to_numpy(), movies["overview"])
    return files


def ml100k_files(data: Synthetic, options: FileOptions) -> dict[str, bytes]:
    """u.data (tab), u.user, u.item ('|', latin-1), u.genre and u.occupation, no headers."""
    movies = release_movies(data, None)
    ratings = data.tables["ratings"]
    files = {
        "u.data": separated_bytes(ratings[["user_id", "movie_id", "rating", "timestamp"]], "\t"),
        "u.user": separated_bytes(ml100k_users(data.tables["users"], extra_rng(data.seed, "users")), "|"),
        "u.item": separated_bytes(ml100k_items(movies, extra_rng(data.seed, "dates")), "|"),
        "u.genre": "".join(f"{name}|{i}\n" for i, name in enumerate(ML100K_GENRES)).encode("latin-1"),
        "u.occupation": "".join(f"{name}\n" for name in ML100K_OCCUPATIONS).encode("latin-1"),
    }
    key = _overview_choice(options, None)
    if key:
        files |= overviews_file(key, movies["movie_id"].to_numpy(), movies["overview"])
    return files


def ml10m_files(data: Synthetic, options: FileOptions) -> dict[str, bytes]:
    """ratings.dat (half stars: '5', '3.5'), movies.dat, tags.dat ('::', latin-1); no users file."""
    movies = release_movies(data, SPARSE_IDS["ml-10m"])
    ids = movies["movie_id"].to_numpy()
    ratings = release_ratings(data, ids)
    ratings["rating"] = star_text(ratings["rating"].to_numpy())
    listed = movies[["movie_id", "title"]].assign(genres=movies["genres"].replace("", NO_GENRES))
    files = {
        "ratings.dat": separated_bytes(ratings),
        "movies.dat": separated_bytes(listed),
        "tags.dat": separated_bytes(tag_applications(data, ids)),
    }
    key = _overview_choice(options, None)
    if key:
        files |= overviews_file(key, ids, movies["overview"])
    return files


def ml_latest_files(data: Synthetic, options: FileOptions) -> dict[str, bytes]:
    """ratings.csv (4.0, 3.5), movies.csv ('(no genres listed)'), tags.csv and links.csv, utf-8 with
    camelCase headers and CSV quoting; no users file. Overviews may be keyed by tmdbId or imdbId."""
    movies = release_movies(data, SPARSE_IDS["ml-latest"])
    ids = movies["movie_id"].to_numpy()
    links = movie_links(ids, extra_rng(data.seed, "links"))
    titles = pd.DataFrame({"movieId": ids, "title": movies["title"], "genres": movies["genres"].replace("", NO_GENRES)})
    files = {
        "ratings.csv": csv_bytes(release_ratings(data, ids), float_format="%.1f"),
        "movies.csv": csv_bytes(titles),
        "tags.csv": csv_bytes(tag_applications(data, ids)),
        "links.csv": csv_bytes(links),
    }
    key = _overview_choice(options, None)
    if key:
        keys = ids if key == "movie_id" else links[key].array  # keeps tmdbId an integer with blanks
        files |= overviews_file(key, keys, movies["overview"])
    return files


class DemoLayout(NamedTuple):
    files: tuple[str, ...]  # every file it may write
    overviews: tuple[str, ...]  # the overviews choices it takes
    write: Callable[[Synthetic, FileOptions], dict[str, bytes]]


MOVIE_ID_OVERVIEWS = ("auto", "none", "movie_id")
DEMO_LAYOUTS = {
    "csv": DemoLayout(
        ("ratings.csv", "ratings.parquet", "users.csv", "movies.csv", "overviews.csv"), MOVIE_ID_OVERVIEWS, csv_files
    ),
    "ml-100k": DemoLayout(
        ("u.data", "u.user", "u.item", "u.genre", "u.occupation", "overviews.csv"), MOVIE_ID_OVERVIEWS, ml100k_files
    ),
    "ml-1m": DemoLayout(("ratings.dat", "users.dat", "movies.dat", "overviews.csv"), MOVIE_ID_OVERVIEWS, ml1m_files),
    "ml-10m": DemoLayout(("ratings.dat", "movies.dat", "tags.dat", "overviews.csv"), MOVIE_ID_OVERVIEWS, ml10m_files),
    "ml-latest": DemoLayout(
        ("ratings.csv", "movies.csv", "tags.csv", "links.csv", "overviews.csv"), OVERVIEW_CHOICES, ml_latest_files
    ),
}  # fmt: skip
# 20M, 25M, 32M and latest(-small) share one format.
ALIASES = {"ml-20m": "ml-latest", "ml-25m": "ml-latest", "ml-32m": "ml-latest", "ml-latest-small": "ml-latest"}
LAYOUT_NAMES = (*DEMO_LAYOUTS, *ALIASES)
DEMO_FILES = tuple(sorted({name for layout in DEMO_LAYOUTS.values() for name in layout.files}))


def chosen_layout(layout: str, ratings_format: str, overviews: str) -> str:
    """The layout's own name (an alias resolved) after checking the three choices go together;
    ValueError with one line naming the valid choices otherwise."""
    name = ALIASES.get(layout, layout)
    if name not in DEMO_LAYOUTS:
        raise ValueError(f"layout {layout!r}: use one of {', '.join(LAYOUT_NAMES)}")
    if ratings_format not in ("auto", "csv", "parquet"):
        raise ValueError(f"ratings format {ratings_format!r}: use auto, csv or parquet")
    if ratings_format == "parquet" and name != "csv":
        raise ValueError(
            f"ratings format 'parquet' only applies to the csv layout ({layout} writes its ratings as GroupLens does)"
        )
    if overviews not in OVERVIEW_CHOICES:
        raise ValueError(f"overviews {overviews!r}: use one of {', '.join(OVERVIEW_CHOICES)}")
    if overviews not in DEMO_LAYOUTS[name].overviews:
        takes = ", ".join(DEMO_LAYOUTS[name].overviews)
        raise ValueError(f"overviews {overviews!r} needs links.csv (the ml-latest layouts); {layout} takes {takes}")
    return name
