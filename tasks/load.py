"""Load and validate a ratings data directory: the notebook's CSV layout or any MovieLens release
(``tasks/layouts.py`` detects which and reads its files).

Every problem a user can fix becomes one ``InputError`` line naming the file, the column and a few
example rows (with their line numbers), e.g.
``ratings.csv: column 'rating': 2 of 9 values outside 1-5, e.g. line 4 (user_id=1, movie_id=3, rating=7)``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tasks.caching import run_logger
from tasks.errors import InputError
from tasks.merge import positions
from tasks.layouts import LAYOUTS, NO_GENRES, RawData, check_data_dir, detect_layout, fingerprint, read_raw
from tasks.movielens import GENDERS, ML100K_OCCUPATIONS, OCCUPATIONS
from tasks.results import LoadedData
from tasks.stage import stage
from tasks.store import Store
from tasks.tables import (
    CAMEL,
    Table,
    camel_table,
    check_columns,
    check_not_empty,
    check_unique,
    csv_header,
    integer_column,
    numeric_column,
    optional_text,
    read_csv,
    read_separated,
    text_column,
)

__all__ = ["OCCUPATIONS", "check_data_dir", "data_fingerprint", "detect_layout", "load_dataset", "loaded_data"]

DAT_RATING_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
RATING_TYPES = {"user_id": pa.int64(), "movie_id": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
TEXT_FIELDS = ("title", "overview", "genres", "tags")  # the movie texts a run can embed
USUAL_SCALES = ((1.0, 5.0), (0.5, 5.0), (0.0, 5.0), (1.0, 10.0), (0.0, 10.0))  # others: the file may hold a typo
TAGS_PER_MOVIE = 20  # a movie's tags text: its most applied tags, at most this many

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Validated tables. ratings: user_id, movie_id, rating[, timestamp]; users: user_id and whatever
    features the release has (gender, age, occupation; none for the CSV releases); movies: movie_id,
    title, overview (may be all missing)[, genres 'A|B'][, tags]."""

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    layout: str
    files: dict[str, Path]
    stats: dict[str, int] = field(default_factory=dict)
    rating_scale: tuple[float, float] = (1.0, 5.0)
    scale_source: str = "given"


# ---------------------------------------------------------------- ratings


def _ratings_format(path: Path) -> str:
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix == ".dat":
        return "dat"
    return "tab" if path.name == "u.data" else "csv"


def read_ratings_table(path: Path) -> Table:
    """The ratings file as strings (slow, exact): used to word the error when the fast path fails."""
    kind = _ratings_format(path)
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(f"{path.name}: cannot read as Parquet ({exc})") from None
        return camel_table(frame, path.name, 1, unit="row")
    if kind in ("dat", "tab"):
        return read_separated(path, list(DAT_RATING_COLUMNS), b"::" if kind == "dat" else b"\t")
    return read_csv(path, camel=True)


def _rating_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Typed Arrow record batches of the ratings file, columns named user_id, movie_id, rating[,
    timestamp]; raises pa.ArrowInvalid on a value that does not convert. Never builds Python objects
    per row."""
    kind = _ratings_format(path)
    if kind == "parquet":
        parquet = pq.ParquetFile(path)
        names = {CAMEL.get(n, n): n for n in parquet.schema_arrow.names}
        columns = [c for c in RATING_TYPES if c in names]
        for batch in parquet.iter_batches(batch_size=1 << 20, columns=[names[c] for c in columns]):
            yield pa.RecordBatch.from_arrays(
                [batch.column(names[c]).cast(RATING_TYPES[c]) for c in columns], names=columns
            )
        return
    if kind == "csv":
        source = str(path)
        header = [CAMEL.get(c, c) for c in csv_header(path)]
        read = pacsv.ReadOptions(block_size=1 << 24, column_names=header, skip_rows=1)
        parse = pacsv.ParseOptions()
        columns = [c for c in RATING_TYPES if c in header]
    else:  # '::' (replaced by one byte: Arrow's delimiter is one character) or tab, no header
        raw = path.read_bytes()
        source = pa.BufferReader(raw.replace(b"::", b"\x1f") if kind == "dat" else raw)
        read = pacsv.ReadOptions(column_names=list(DAT_RATING_COLUMNS), block_size=1 << 24)
        parse = pacsv.ParseOptions(delimiter="\x1f" if kind == "dat" else "\t", quote_char=False)
        columns = list(DAT_RATING_COLUMNS)
    convert = pacsv.ConvertOptions(
        column_types={c: RATING_TYPES[c] for c in columns}, include_columns=columns, strings_can_be_null=False
    )
    # The whole file at once: Arrow parses its blocks on every core (the streaming reader uses one), and
    # the columns are concatenated in memory anyway.
    yield from pacsv.read_csv(source, read_options=read, parse_options=parse, convert_options=convert).to_batches()


def read_ratings_fast(path: Path, scale: tuple[float, float] | None = None) -> pd.DataFrame | None:
    """Ratings as numpy columns, streamed in Arrow batches; None when anything is off (missing
    column, unparsable value, null, not finite, outside ``scale``, duplicate pair), so that the
    exact, slower reader can name the problem."""
    chunks: dict[str, list[np.ndarray]] = {}
    try:
        for batch in _rating_batches(path):
            for name, column in zip(batch.schema.names, batch.columns):
                if column.null_count:
                    return None
                chunks.setdefault(name, []).append(column.to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError, EOFError, zlib.error):
        return None
    if not {"user_id", "movie_id", "rating"} <= chunks.keys():
        return None
    frame = pd.DataFrame({name: np.concatenate(parts) for name, parts in chunks.items()}, copy=False)  # no 2nd copy
    rating = frame["rating"].to_numpy()
    if frame.empty or not np.isfinite(rating).all():
        return None
    if scale is not None and not ((rating >= scale[0]) & (rating <= scale[1])).all():
        return None
    if frame["user_id"].min() < 0 or frame["movie_id"].min() < 0:
        return None
    users, movies = frame["user_id"].to_numpy(), frame["movie_id"].to_numpy()
    # Sorted by user, then movie (as GroupLens ships them): unique in one pass; else hash every pair.
    if not pairs_increase(users, movies) and pd.Series(users * (int(movies.max()) + 1) + movies).duplicated().any():
        return None
    return frame[[c for c in RATING_TYPES if c in frame.columns]]


BLOCK = 1 << 20  # rows per block of the checks below: their temporaries stay small


def pairs_increase(first: np.ndarray, second: np.ndarray) -> bool:
    """Each row's (first, second) pair is greater than the previous row's (sorted by first, then
    second, no pair twice); checked by blocks of rows."""
    for start in range(0, max(len(first) - 1, 0), BLOCK):
        a, b = first[start : start + BLOCK + 1], second[start : start + BLOCK + 1]
        if not ((a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (b[1:] > b[:-1]))).all():
            return False
    return True


def distinct_values(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)``; in one pass, without sorting, when they are sorted already (the ratings
    of a MovieLens file are grouped by user)."""
    for start in range(0, max(len(values) - 1, 0), BLOCK):
        a = values[start : start + BLOCK + 1]
        if not (a[1:] >= a[:-1]).all():
            return np.unique(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values.copy()


def _scale_text(scale: tuple[float, float]) -> str:
    return f"{scale[0]:g}-{scale[1]:g}"


def validate_ratings(table: Table, scale: tuple[float, float] | None = (1.0, 5.0), scale_name: str = "") -> pd.DataFrame:
    """Typed ratings; ``scale`` (low, high) bounds them (None: any finite number)."""
    check_columns(table, ["user_id", "movie_id", "rating"])
    check_not_empty(table)
    show = ["user_id", "movie_id", "rating"]
    out = pd.DataFrame(
        {
            "user_id": integer_column(table, "user_id", show),
            "movie_id": integer_column(table, "movie_id", show),
            "rating": numeric_column(table, "rating", show).astype("float32"),
        }
    )
    if scale is not None:
        bad = ((out["rating"] < scale[0]) | (out["rating"] > scale[1])).to_numpy()
        if bad.any():
            raise table.fail("rating", f"values outside {_scale_text(scale)}{scale_name}", bad, show)
    if "timestamp" in table.frame.columns:
        out["timestamp"] = integer_column(table, "timestamp", show + ["timestamp"])
    check_unique(table, out[["user_id", "movie_id"]], "user_id, movie_id", "a (user_id, movie_id) pair", show)
    return out


def read_ratings(path: Path, scale: tuple[float, float] | None, scale_name: str) -> pd.DataFrame:
    ratings = read_ratings_fast(path, scale)
    if ratings is None:  # something is off: the exact reader finds it and words the error
        ratings = validate_ratings(read_ratings_table(path), scale, scale_name)
    return narrowed(ratings)


def narrowed(ratings: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as int32 where every value fits (MovieLens' ids and timestamps do, until
    2038): the table the load stage stores is 20 bytes a rating instead of 28 (at 25M ratings 200 MB
    less to hash and write, and the merge's timestamps 100 MB less)."""
    low, high = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    out = {}
    for name in ratings.columns:
        values = ratings[name].to_numpy()
        if values.dtype.kind == "i" and values.itemsize > 4 and len(values) and low <= values.min() and values.max() <= high:
            values = values.astype(np.int32)
        out[name] = values
    return pd.DataFrame(out, copy=False)


def resolve_scale(
    given: tuple[float, float] | None, raw: RawData
) -> tuple[tuple[float, float] | None, str, str]:
    """The scale ratings are checked against, where it comes from ('given', 'release', or 'data':
    the min and max of the file, known after reading), and how an error names it."""
    if given is not None:
        return given, "given", " (data.rating_scale)"
    if raw.layout.scale is not None:
        return raw.layout.scale, "release", f" (the {raw.layout.release} scale; set data.rating_scale to change it)"
    return None, "data", ""


# ---------------------------------------------------------------- users and movies


def validate_users(
    table: Table,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    occupations: tuple[str, ...] = OCCUPATIONS,
) -> pd.DataFrame:
    logger = logger or log
    check_columns(table, ["user_id", "gender", "age", "occupation"])
    check_not_empty(table)
    show = ["user_id", "gender", "age", "occupation"]
    out = pd.DataFrame(
        {
            "user_id": integer_column(table, "user_id", show),
            "gender": text_column(table, "gender", show),
            "age": numeric_column(table, "age", show).astype("float64"),
            "occupation": text_column(table, "occupation", show),
        }
    )
    bad = ((out["age"] < 0) | (out["age"] > 130)).to_numpy()
    if bad.any():
        raise table.fail("age", "values outside 0-130", bad, show)
    if occupations is OCCUPATIONS:
        out["occupation"] = occupation_names(out["occupation"])
    check_unique(table, out["user_id"], "user_id", "a user_id", show)
    documented = {
        "gender": ", ".join(GENDERS),
        "occupation": "MovieLens-1M occupation codes 0-20 or their names"
        if occupations is OCCUPATIONS
        else ", ".join(occupations),
    }
    for column, known in (("gender", GENDERS), ("occupation", occupations)):
        odd = ~out[column].isin(known).to_numpy()
        if odd.any():
            values = ", ".join(sorted(map(str, out[column][odd].unique()))[:5])
            logger.warning(
                "%s: column '%s': %d of %d values are not among the documented ones (%s); each is kept as its "
                "own category (documented: %s), %s",
                table.file, column, int(odd.sum()), len(odd), values, documented[column],
                table.where(np.flatnonzero(odd), show),
            )  # fmt: skip
    return out


def occupation_names(codes: pd.Series) -> pd.Series:
    """MovieLens codes 0-20 → names (e.g. 11 → 'lawyer'), code by code; names and other values are
    kept as they are (``validate_users`` warns about the unexpected ones)."""
    numeric = pd.to_numeric(codes, errors="coerce")
    is_code = (numeric.notna() & numeric.between(0, len(OCCUPATIONS) - 1) & (numeric % 1 == 0)).to_numpy()
    out = codes.astype(object).copy()
    out[is_code] = [OCCUPATIONS[int(i)] for i in numeric[is_code]]
    return out


def validate_movies(table: Table) -> pd.DataFrame:
    """movie_id, title (a missing one is for the embedding policy), overview (None when the file
    has none), genres when the file has them ('(no genres listed)' → None)."""
    check_columns(table, ["movie_id", "title"])
    check_not_empty(table)
    show = ["movie_id", "title"]
    frame = table.frame
    out = pd.DataFrame(
        {
            "movie_id": integer_column(table, "movie_id", show),
            "title": frame["title"].astype("string").str.strip().astype(object),
            "overview": (
                optional_text(table, "overview") if "overview" in frame.columns else pd.Series([None] * len(frame), dtype=object)
            ),
        }
    )
    if "genres" in frame.columns:
        genres = optional_text(table, "genres")
        out["genres"] = genres.where(genres != NO_GENRES, None)
    check_unique(table, out["movie_id"], "movie_id", "a movie_id", show)
    return out


def tags_text(tags: Table, movie_ids: pd.Series, limit: int = TAGS_PER_MOVIE) -> pd.Series:
    """Each movie's tags as one text: its most applied distinct tags (lowercased; ties in
    alphabetical order), at most ``limit``, joined with ', '; None for a movie nobody tagged."""
    check_columns(tags, ["movie_id", "tag"])
    movie = integer_column(tags, "movie_id", ["movie_id", "tag"])
    tag = tags.frame["tag"].astype("string").str.strip().str.lower()
    applied = pd.DataFrame({"movie_id": movie, "tag": tag}).dropna()
    applied = applied[applied["tag"] != ""]
    counts = applied.groupby(["movie_id", "tag"]).size().rename("n").reset_index()
    counts = counts.sort_values(["movie_id", "n", "tag"], ascending=[True, False, True])
    top = counts.groupby("movie_id").head(limit)  # still sorted by movie: each movie's tags in one run
    ids, words = top["movie_id"].to_numpy(), top["tag"].tolist()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=np.int64)
    ends = np.r_[starts[1:], len(ids)]
    # one join per run of a list (pandas' groupby(...).agg(", ".join) took ~0.8 s on ML-25M's 1M tags)
    text = pd.Series([", ".join(words[a:b]) for a, b in zip(starts, ends)], index=ids[starts], dtype=object)
    return pd.Series(text.reindex(movie_ids.to_numpy()).to_numpy(), dtype=object)


def _key_values(table: Table, column: str) -> pd.Series:
    """An id column as integers; IMDb ids may be written tt0114709 or 0114709."""
    values = table.frame[column]
    if column == "imdb_id":
        values = values.astype("string").str.strip().str.removeprefix("tt")
        table = Table(table.frame.assign(imdb_id=values), table.file, table.first_line, table.unit, table.spelled)
    return integer_column(table, column)


def joined_overviews(movies: pd.DataFrame, overviews: Table, links: Table | None) -> tuple[pd.Series, str]:
    """Each movie's overview from overviews.csv (keyed by movie id, or by TMDB/IMDb id through
    links.csv); returns the overviews aligned to ``movies`` and the key used."""
    frame = overviews.frame  # read with camel=True: movieId is movie_id here
    check_columns(overviews, ["overview"])
    key = next((k for k in ("movie_id", "tmdb_id", "imdb_id") if k in frame.columns), None)
    if key is None:
        raise InputError(f"{overviews.file}: no key column; expected movie_id, movieId, tmdbId or imdbId beside 'overview'")
    ids = _key_values(overviews, key)
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise overviews.fail(key, f"{overviews.label(key)} values appear more than once", dup, [key])
    text = pd.Series(optional_text(overviews, "overview").to_numpy(), index=ids.to_numpy())
    if key == "movie_id":
        return pd.Series(text.reindex(movies["movie_id"].to_numpy()).to_numpy(), dtype=object), key
    if links is None:
        raise InputError(f"{overviews.file}: keyed by {overviews.label(key)}, which needs links.csv (movieId, imdbId, tmdbId) beside it")
    check_columns(links, ["movie_id", key])
    has = links.frame[key].astype("string").str.strip().fillna("") != ""
    linked = Table(links.frame[has.to_numpy()].reset_index(drop=True), links.file, links.first_line, spelled=links.spelled)
    by_movie = pd.Series(_key_values(linked, key).to_numpy(), index=integer_column(linked, "movie_id").to_numpy())
    by_movie = by_movie[~by_movie.index.duplicated()]
    external = by_movie.reindex(movies["movie_id"].to_numpy())
    return pd.Series(text.reindex(external.to_numpy()).to_numpy(), dtype=object), overviews.label(key)


def _none_for_missing(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna().to_numpy(), None)


def movies_table(raw: RawData, logger: logging.Logger | logging.LoggerAdapter) -> pd.DataFrame:
    """The movies with every text the folder has: its overviews (own column, else overviews.csv),
    genres, and tags (tags.csv/tags.dat) when present."""
    movies = validate_movies(raw.movies)
    if raw.overviews is not None:
        joined, key = joined_overviews(movies, raw.overviews, raw.links)
        own = movies["overview"].notna()
        movies["overview"] = _none_for_missing(movies["overview"].where(own, joined))
        logger.info(
            "%s: overviews for %d of %d movies (joined on %s)",
            raw.overviews.file, int(joined.notna().sum()), len(movies), key,
        )  # fmt: skip
    if raw.tags is not None:
        movies["tags"] = _none_for_missing(tags_text(raw.tags, movies["movie_id"]))
    return movies


# ---------------------------------------------------------------- the whole folder


def load_dataset(
    data_dir: str | Path,
    movies_limit: int | None = None,
    unknown_ids: str = "drop",
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    rating_scale: tuple[float, float] | None = None,
) -> Dataset:
    """Read and validate a data directory; ratings of unknown users/movies are counted and dropped
    (``unknown_ids='drop'``) or rejected (``'error'``). ``movies_limit`` keeps the first N movies in
    file order, and their ratings only (the notebook's ``movies.loc[:N-1]``). ``rating_scale``
    (low, high) bounds the ratings; None: the release's documented scale, or for the notebook's CSVs
    the min and max of the file."""
    logger = logger or log
    data_dir = Path(data_dir).expanduser()
    layout = detect_layout(data_dir)
    raw = read_raw(data_dir, layout)
    scale, scale_source, scale_name = resolve_scale(rating_scale, raw)
    occupations = ML100K_OCCUPATIONS if layout == "ml-100k" else OCCUPATIONS
    users = validate_users(raw.users, logger, occupations) if raw.users is not None else None
    movies = movies_table(raw, logger)
    ratings = read_ratings(raw.ratings, scale, scale_name)
    if scale is None:
        scale = (float(ratings["rating"].min()), float(ratings["rating"].max()))
        if scale not in USUAL_SCALES:
            logger.warning(
                "%s: ratings span %s, not a usual scale (%s); if a value is a typo, set data.rating_scale "
                "(e.g. 1-5) to have it named",
                raw.ratings.name, _scale_text(scale), ", ".join(map(_scale_text, USUAL_SCALES)),
            )  # fmt: skip
    derived = users is None
    if derived:  # no user table: the users are the ones who rated, without features
        users = pd.DataFrame({"user_id": distinct_values(ratings["user_id"].to_numpy())})
    n_loaded = len(ratings)

    rated_users, rated_movies = ratings["user_id"].to_numpy(), ratings["movie_id"].to_numpy()
    known_user = np.ones(n_loaded, dtype=bool) if derived else positions(users["user_id"].to_numpy(), rated_users) >= 0
    known_movie = positions(movies["movie_id"].to_numpy(), rated_movies) >= 0
    unknown = ~(known_user & known_movie)
    if unknown.any():
        msg_problem = "ratings reference unknown users or movies"
        kind = _ratings_format(raw.ratings)
        where = Table(ratings, raw.ratings.name, 2 if kind == "csv" else 1, "row" if kind == "parquet" else "line")
        if unknown_ids == "error":
            raise where.fail(None, msg_problem, unknown, ["user_id", "movie_id"])
        logger.warning(
            "%s: dropped %d of %d %s (%d unknown users, %d unknown movies), %s",
            where.file, int(unknown.sum()), n_loaded, msg_problem, int((~known_user).sum()),
            int((~known_movie).sum()), where.where(np.flatnonzero(unknown), ["user_id", "movie_id"]),
        )  # fmt: skip
        ratings = ratings.loc[~unknown]

    n_limited = 0
    if movies_limit is not None and movies_limit < len(movies):
        movies = movies.iloc[:movies_limit]
        keep = ratings["movie_id"].isin(movies["movie_id"])
        n_limited = int((~keep).sum())
        ratings = ratings.loc[keep]
        logger.info("movies_limit=%d: kept the first %d movies and %d ratings", movies_limit, len(movies), len(ratings))

    stats = {
        "n_ratings_loaded": n_loaded,
        "n_ratings_unknown_ids": int(unknown.sum()),
        "n_ratings_outside_movies_limit": n_limited,
        "n_ratings": len(ratings),
        "n_users": len(users),
        "n_movies": len(movies),
    }
    features = [c for c in ("gender", "age", "occupation") if c in users.columns]
    texts = [f for f in TEXT_FIELDS if f in movies.columns and movies[f].notna().any()]
    logger.info(
        "loaded %s layout (%s) from %s: %d ratings on a %s scale (%s), %d users (features: %s), %d movies (texts: %s)",
        layout, raw.layout.release, data_dir, n_loaded, _scale_text(scale), scale_source, len(users),
        ", ".join(features) or "none, the release has no user table", len(movies), ", ".join(texts),
    )  # fmt: skip
    files = {"ratings": raw.ratings, **{t.file: data_dir / t.file for t in (raw.users, raw.movies, raw.tags, raw.links, raw.overviews) if t is not None}}  # fmt: skip
    return Dataset(
        ratings=ratings.reset_index(drop=True),
        users=users.reset_index(drop=True),
        movies=movies.reset_index(drop=True),
        layout=layout,
        files=files,
        stats=stats,
        rating_scale=scale,
        scale_source=scale_source,
    )


def data_fingerprint(data_dir: str | Path) -> dict[str, str]:
    """sha256 of the bytes of each input file the loader reads (the load task's cache key)."""
    return fingerprint(Path(data_dir).expanduser())


# ---------------------------------------------------------------- Prefect wrapper


@stage("load", result=LoadedData)
def loaded_data(
    data_dir: str,
    input_hashes: dict[str, str],
    movies_limit: int | None,
    unknown_ids: str,
    cache_dir: str,
    rating_scale: tuple[float, float] | None = None,
) -> LoadedData:
    """Load + validate, and put the tables in the store. ``input_hashes`` (from ``data_fingerprint``)
    is not read here: it makes the cache key follow the files' content rather than their path."""
    dataset = load_dataset(data_dir, movies_limit, unknown_ids, run_logger(log), rating_scale)
    store = Store(cache_dir)
    movies = dataset.movies
    return LoadedData(
        layout=dataset.layout,
        release=LAYOUTS[dataset.layout].release,
        ratings=store.put_table(dataset.ratings),
        users=store.put_table(dataset.users),
        movies=store.put_table(movies),
        stats=dataset.stats,
        rating_scale=list(dataset.rating_scale),
        scale_source=dataset.scale_source,
        user_features=[c for c in ("gender", "age", "occupation") if c in dataset.users.columns],
        texts={f: int(movies[f].notna().sum()) for f in TEXT_FIELDS if f in movies.columns},
    )
