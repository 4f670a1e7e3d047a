"""Which MovieLens release a data folder holds, and reading its files into raw tables.

Every release GroupLens ships maps onto the same three tables (ratings; users with whatever features
exist; movies with title, genres and, when the user supplies them, overviews), plus tags and links
where the release has them:

==========  =====================================  ==========================================  ========
layout      files                                  users                                       ratings
==========  =====================================  ==========================================  ========
csv         ratings.csv|.csv.gz|.parquet,          users.csv (gender, age, occupation)          as given
            users.csv, movies.csv (+ overview)
ml-100k     u.data (tab), u.user, u.item (|,       u.user (age, gender, occupation names)       1-5
            latin-1, 19 genre flags)
ml-1m       ratings.dat, users.dat, movies.dat     users.dat (gender, age bucket, occ. code)    1-5
            ('::', latin-1)
ml-10m      ratings.dat, movies.dat, tags.dat      none                                         0.5-5
ml-latest   ratings.csv (userId, movieId, ...),    none                                         0.5-5
            movies.csv, tags.csv, links.csv
            (20M, 25M, 32M, latest, latest-small)
==========  =====================================  ==========================================  ========

Any layout may add ``overviews.csv``: ``movie_id`` (or ``movieId``) and ``overview``, or ``tmdbId`` /
``imdbId`` and ``overview`` joined through ``links.csv``. A folder that mixes the files of two
layouts is refused with one line rather than read half one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from tasks.errors import InputError
from tasks.hashing import sha256_file
from tasks.tables import Table, check_columns, csv_header, read_csv, read_separated, require

RATINGS_FILES = ("ratings.csv", "ratings.csv.gz", "ratings.parquet")
# MovieLens-100K's u.item: five fields, then one 0/1 flag per genre in this order (its u.genre).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRES = "(no genres listed)"  # the CSV releases' value for a movie without genres


@dataclass(frozen=True)
class Layout:
    name: str
    release: str  # what the log and the errors call it
    ratings: tuple[str, ...]  # the ratings file (one of)
    required: tuple[str, ...]
    optional: tuple[str, ...]
    scale: tuple[float, float] | None  # the release's documented rating scale (None: from the data)

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.ratings, *self.required, *self.optional)


LAYOUTS = {
    "csv": Layout("csv", "notebook CSV", RATINGS_FILES, ("users.csv", "movies.csv"), ("overviews.csv",), None),
    "ml-100k": Layout("ml-100k", "MovieLens 100K", ("u.data",), ("u.user", "u.item"), ("overviews.csv",), (1.0, 5.0)),
    "ml-1m": Layout("ml-1m", "MovieLens 1M", ("ratings.dat",), ("users.dat", "movies.dat"), ("overviews.csv",), (1.0, 5.0)),
    "ml-10m": Layout("ml-10m", "MovieLens 10M", ("ratings.dat",), ("movies.dat",), ("tags.dat", "overviews.csv"), (0.5, 5.0)),
    "ml-latest": Layout(
        "ml-latest", "MovieLens 20M/25M/32M/latest", ("ratings.csv",), ("movies.csv",),
        ("tags.csv", "links.csv", "overviews.csv"), (0.5, 5.0),
    ),
}  # fmt: skip
# The files that identify a layout: one of them beside another layout's files makes a mixed folder.
DATA_FILES = sorted({n for layout in LAYOUTS.values() for n in layout.files} - {"overviews.csv"})
EXPECTED = (
    "the notebook's ratings.csv (user_id, movie_id, rating) + users.csv + movies.csv, or a MovieLens release: "
    "100K (u.data, u.user, u.item), 1M (ratings.dat, users.dat, movies.dat), 10M (ratings.dat, movies.dat), "
    "20M/25M/32M/latest (ratings.csv with userId, movieId, rating + movies.csv)"
)


def _present(data_dir: Path, names: tuple[str, ...] | list[str]) -> list[str]:
    """Which of ``names`` exist in ``data_dir``; a folder with such a name is an error, not a file."""
    found = []
    for name in names:
        path = data_dir / name
        if path.exists():
            if not path.is_file():
                raise InputError(f"data dir {data_dir}: {name} is a folder, not a file")
            found.append(name)
    return found


def ratings_columns(path: Path) -> list[str]:
    """The column names of a ratings CSV or Parquet file (as the file spells them)."""
    if path.suffix == ".parquet":
        try:
            return pq.read_schema(path).names
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise InputError(f"{path.name}: cannot read as Parquet ({exc})") from None
    try:
        return csv_header(path)
    except (EOFError, OSError) as exc:
        raise InputError(f"{path.name}: cannot read it, is it a complete gzip file? ({exc})") from None


def detect_layout(data_dir: Path) -> str:
    """The layout's name, from the files present (and, for ratings.csv, its header: GroupLens's
    ``userId`` or the notebook's ``user_id``). Two candidate ratings files, or the files of two
    layouts in one folder, are refused rather than one of them silently ignored."""
    if not data_dir.is_dir():
        raise InputError(f"data dir {data_dir}: does not exist or is not a directory")
    candidates = _present(data_dir, [*RATINGS_FILES, "ratings.dat", "u.data"])
    if len(candidates) > 1:
        raise InputError(
            f"data dir {data_dir}: several ratings files ({', '.join(candidates)}); keep exactly one of them"
        )
    if not candidates:
        raise InputError(f"data dir {data_dir}: no ratings file found; expected {EXPECTED}")
    found = candidates[0]
    if found == "u.data":
        name = "ml-100k"
    elif found == "ratings.dat":
        name = "ml-1m" if (data_dir / "users.dat").exists() else "ml-10m"
    else:
        name = "ml-latest" if "userId" in ratings_columns(data_dir / found) else "csv"
    layout = LAYOUTS[name]
    foreign = [n for n in _present(data_dir, DATA_FILES) if n not in layout.files]
    if foreign:
        raise InputError(
            f"data dir {data_dir}: {', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not belong beside {found} ({layout.release} layout, "
            f"which reads {', '.join((found, *layout.required, *layout.optional))}); keep one release per folder"
        )
    return name


def input_files(data_dir: Path, name: str) -> list[str]:
    """The files the loader reads for this layout, in a fixed order (the ones present)."""
    layout = LAYOUTS[name]
    ratings = [n for n in layout.ratings if (data_dir / n).is_file()][:1]
    return [*ratings, *layout.required, *[n for n in layout.optional if (data_dir / n).is_file()]]


def fingerprint(data_dir: Path) -> dict[str, str]:
    """sha256 of the bytes of each input file the loader reads (the load stage's cache key)."""
    return {n: sha256_file(data_dir / n) for n in input_files(data_dir, detect_layout(data_dir))}


# ---------------------------------------------------------------- cheap checks before any work

# Per CSV file: the columns the loader needs, as the file spells them.
CSV_COLUMNS = {
    ("csv", "ratings"): ["user_id", "movie_id", "rating"],
    ("csv", "users.csv"): ["user_id", "gender", "age", "occupation"],
    ("csv", "movies.csv"): ["movie_id", "title"],
    ("ml-latest", "ratings"): ["userId", "movieId", "rating"],
    ("ml-latest", "movies.csv"): ["movieId", "title", "genres"],
    ("ml-latest", "tags.csv"): ["movieId", "tag"],
    ("ml-latest", "links.csv"): ["movieId"],
}
OVERVIEW_KEYS = ("movie_id", "movieId", "tmdbId", "imdbId")


def _header_problem(path: Path, found: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in found]
    if not missing:
        return
    shown = ", ".join(found)[:200] or "none"
    if not shown.isprintable() or "\ufffd" in shown:  # binary or not UTF-8: say so, do not print it
        raise InputError(f"{path.name}: not a CSV text file (its first line is not UTF-8 text); "
                         f"expected a header with {', '.join(required)}")  # fmt: skip
    raise InputError(f"{path.name}: missing column(s) {', '.join(map(repr, missing))} (found: {shown})")


def check_data_dir(data_dir: str | Path) -> str:
    """Cheap checks before any work: the layout, each file present and a file, the CSV headers (or
    the Parquet schema) holding the columns the loader needs. Returns the layout's name."""
    data_dir = Path(data_dir).expanduser()
    name = detect_layout(data_dir)
    layout = LAYOUTS[name]
    for file in layout.required:
        require(data_dir / file, f"the {layout.release} layout needs {', '.join((*layout.ratings[:1], *layout.required))}")
    present = input_files(data_dir, name)
    for file in present:
        path = data_dir / file
        if file == present[0]:
            required = CSV_COLUMNS.get((name, "ratings"))
            if required:
                _header_problem(path, ratings_columns(path), required)
        elif file == "overviews.csv":
            header = csv_header(path)
            _header_problem(path, header, ["overview"])
            keys = [k for k in OVERVIEW_KEYS if k in header]
            if not keys:
                raise InputError(f"{file}: no key column; expected one of {', '.join(OVERVIEW_KEYS)} beside 'overview' "
                                 f"(found: {', '.join(header)[:200]})")  # fmt: skip
            if keys[0] in ("tmdbId", "imdbId") and "links.csv" not in present:
                raise InputError(f"{file}: keyed by {keys[0]}, which needs links.csv (movieId, imdbId, tmdbId) beside it")
        elif (name, file) in CSV_COLUMNS:
            _header_problem(path, csv_header(path), CSV_COLUMNS[(name, file)])
    return name


# ---------------------------------------------------------------- reading


@dataclass
class RawData:
    """A layout's files as raw tables, columns already named as the loader expects (``user_id``,
    ``movie_id``, ``title``, ``genres`` as 'A|B', ``tag``, ``overview``, ``imdb_id``, ``tmdb_id``)."""

    layout: Layout
    ratings: Path
    users: Table | None  # None: the release has no user table
    movies: Table
    tags: Table | None = None
    links: Table | None = None
    overviews: Table | None = None


def _optional_csv(data_dir: Path, name: str) -> Table | None:
    return read_csv(data_dir / name, camel=True) if (data_dir / name).is_file() else None


def _flags_to_genres(table: Table, names: tuple[str, ...]) -> None:
    """MovieLens-100K's 0/1 genre flags → one 'A|B' genres column ('unknown' is no genre)."""
    flags = table.frame[list(names)].fillna("0").to_numpy() == "1"
    table.frame["genres"] = ["|".join(n for n, on in zip(names, row) if on and n != "unknown") for row in flags]
    table.frame = table.frame.drop(columns=list(names))


def read_raw(data_dir: Path, name: str) -> RawData:
    """Read the layout's files (present and a file: ``check_data_dir`` ran before, but a run from the
    UI may not have; ``require`` says which file is missing)."""
    layout = LAYOUTS[name]
    need = f"the {layout.release} layout needs {', '.join((*layout.ratings[:1], *layout.required))}"
    files = {f: require(data_dir / f, need) for f in layout.required}
    ratings = data_dir / input_files(data_dir, name)[0]
    overviews = _optional_csv(data_dir, "overviews.csv")
    if name == "csv":
        return RawData(layout, ratings, read_csv(files["users.csv"]), read_csv(files["movies.csv"]), overviews=overviews)
    if name == "ml-latest":
        movies = read_csv(files["movies.csv"], camel=True)
        check_columns(movies, ["movie_id", "title", "genres"])
        tags, links = _optional_csv(data_dir, "tags.csv"), _optional_csv(data_dir, "links.csv")
        return RawData(layout, ratings, None, movies, tags=tags, links=links, overviews=overviews)
    if name == "ml-100k":
        users = read_separated(files["u.user"], ["user_id", "age", "gender", "occupation", "zip"], b"|")
        fields = ["movie_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
        movies = read_separated(files["u.item"], fields, b"|")
        _flags_to_genres(movies, ML100K_GENRES)
        return RawData(layout, ratings, users, movies, overviews=overviews)
    movies = read_separated(files["movies.dat"], ["movie_id", "title", "genres"])
    if name == "ml-1m":
        users = read_separated(files["users.dat"], ["user_id", "gender", "age", "occupation", "zip"])
        return RawData(layout, ratings, users, movies, overviews=overviews)
    tags_path = data_dir / "tags.dat"
    tags = read_separated(tags_path, ["user_id", "movie_id", "tag", "timestamp"]) if tags_path.is_file() else None
    return RawData(layout, ratings, None, movies, tags=tags, overviews=overviews)

