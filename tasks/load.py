"""Load and validate a ratings data directory (the notebook's CSV layout or native MovieLens-1M).

Every problem a user can fix becomes one ``InputError`` line naming the file, the column and a few
example rows (with their line numbers), e.g.
``ratings.csv: column 'rating': 2 of 9 values outside 1-5, e.g. line 4 (user_id=1, movie_id=3, rating=7)``.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
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
from tasks.hashing import sha256_file
from tasks.movielens import GENDERS, OCCUPATIONS
from tasks.results import LoadedData
from tasks.stage import stage
from tasks.store import Store

RATINGS_FILES = ("ratings.csv", "ratings.csv.gz", "ratings.parquet")
ML1M_FILES = ("ratings.dat", "users.dat", "movies.dat")
EXAMPLES = 3
DAT_RATING_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
RATING_TYPES = {"user_id": pa.int64(), "movie_id": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}


log = logging.getLogger(__name__)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class Table:
    """A raw table with where it came from, so errors can point at lines of the file."""

    frame: pd.DataFrame
    file: str
    first_line: int  # file line of data row 0 (2 for CSV with a header, 1 for .dat)
    unit: str = "line"  # "row" for Parquet

    def where(self, positions: np.ndarray, columns: list[str]) -> str:
        rows = []
        for pos in positions[:EXAMPLES]:
            values = ", ".join(f"{c}={_show(self.frame[c].iloc[pos])}" for c in columns if c in self.frame)
            rows.append(f"{self.unit} {int(pos) + self.first_line} ({values})")
        return "e.g. " + "; ".join(rows)

    def fail(self, column: str | None, problem: str, mask: np.ndarray, show: list[str]) -> InputError:
        positions = np.flatnonzero(mask)
        col = f"column '{column}': " if column else ""
        return InputError(
            f"{self.file}: {col}{len(positions)} of {len(self.frame)} {problem}, {self.where(positions, show)}"
        )


def _show(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "<missing>"
    text = str(value)
    if isinstance(value, str) and not _NUMBER.fullmatch(text.strip()):
        return repr(text[:40])  # quote text so blanks and odd characters show
    return text.strip()


@dataclass
class Dataset:
    """Validated tables. ratings: user_id, movie_id, rating[, timestamp]; users: user_id, gender, age,
    occupation; movies: movie_id, title, overview (overview may be missing)."""

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    layout: str
    files: dict[str, Path]
    stats: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- reading


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


def detect_layout(data_dir: Path) -> str:
    """'csv' or 'ml-1m', from the files present; two candidate ratings files are refused rather
    than one of them silently ignored."""
    if not data_dir.is_dir():
        raise InputError(f"data dir {data_dir}: does not exist or is not a directory")
    candidates = _present(data_dir, [*RATINGS_FILES, "ratings.dat"])
    if len(candidates) > 1:
        raise InputError(
            f"data dir {data_dir}: several ratings files ({', '.join(candidates)}); keep exactly one of them"
        )
    if candidates and candidates[0] in RATINGS_FILES:
        return "csv"
    if candidates:
        return "ml-1m"
    raise InputError(
        f"data dir {data_dir}: no ratings file found; expected one of {', '.join(RATINGS_FILES)} "
        f"(with users.csv, movies.csv) or MovieLens-1M's {', '.join(ML1M_FILES)} (with overviews.csv)"
    )


def _require(path: Path, hint: str) -> Path:
    if not path.exists():
        raise InputError(f"{path.name}: missing in {path.parent} ({hint})")
    if not path.is_file():
        raise InputError(f"data dir {path.parent}: {path.name} is a folder, not a file")
    return path


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped for ``.gz``; a truncated or fake gzip file is an InputError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, OSError, zlib.error) as exc:
        kind = "a complete gzip file" if path.suffix == ".gz" else "readable"
        raise InputError(f"{path.name}: cannot read it, is it {kind}? ({exc.__class__.__name__}: {exc})") from None


def decode_utf8(raw: bytes, name: str) -> str:
    """UTF-8 text (a BOM is dropped). A byte that is not UTF-8 stops the load with its line and
    column: re-decoding the whole file another way would silently garble correct text."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        excerpt = raw[start : start + 60].split(b"\n")[0].decode("utf-8", errors="replace")
        raise InputError(
            f"{name}: line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8 ({excerpt!r}); "
            f"save the file as UTF-8"
        ) from None


def _read_csv(path: Path) -> pd.DataFrame:
    text = decode_utf8(_read_bytes(path), path.name)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path.name}: cannot parse as CSV ({str(exc).strip().splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_dat(path: Path, names: list[str]) -> pd.DataFrame:
    """MovieLens '::'-separated, latin-1, no header, no quoting. A line with another number of
    fields (e.g. a '::' inside a title) is named, not shifted into the wrong columns."""
    raw = _read_bytes(path).replace(b"::", b"\x1f")
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    counts = np.fromiter((line.count(b"\x1f") for line in lines), dtype=np.int64, count=len(lines))
    bad = np.flatnonzero(counts != len(names) - 1)
    if bad.size:
        examples = "; ".join(
            f"line {i + 1} ({lines[i].decode('latin-1').replace(chr(0x1F), '::')[:60]!r})" for i in bad[:EXAMPLES]
        )
        raise InputError(
            f"{path.name}: {bad.size} of {len(lines)} lines do not have {len(names)} '::'-separated fields "
            f"({', '.join(names)}), e.g. {examples}"
        )
    try:
        return pd.read_csv(
            io.BytesIO(raw), sep="\x1f", header=None, names=names, dtype=str, encoding="latin-1",
            quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[""], engine="c", index_col=False,
        )  # fmt: skip
    except pd.errors.ParserError as exc:
        raise InputError(f"{path.name}: not in the '::'-separated MovieLens format ({str(exc).strip()})") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame({n: pd.Series(dtype=str) for n in names})


REQUIRED_COLUMNS = {
    "ratings": ["user_id", "movie_id", "rating"],
    "users.csv": ["user_id", "gender", "age", "occupation"],
    "movies.csv": ["movie_id", "title", "overview"],
}


def check_data_dir(data_dir: str | Path) -> str:
    """Cheap checks before any work: the layout, each file present and a file, the CSV headers (or
    the Parquet schema) holding the columns the loader needs. Returns the layout."""
    data_dir = Path(data_dir).expanduser()
    layout = detect_layout(data_dir)
    if layout == "ml-1m":
        for name in (*ML1M_FILES, "overviews.csv"):
            _require(data_dir / name, "MovieLens-1M layout: ratings.dat, users.dat, movies.dat and overviews.csv")
        return layout
    ratings = data_dir / next(n for n in RATINGS_FILES if (data_dir / n).is_file())
    for name in ("users.csv", "movies.csv"):
        _require(data_dir / name, ", ".join(REQUIRED_COLUMNS[name]))
    headers = {name: (data_dir / name, _csv_header(data_dir / name)) for name in ("users.csv", "movies.csv")}
    if ratings.suffix == ".parquet":
        try:
            names = pq.read_schema(ratings).names
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise InputError(f"{ratings.name}: cannot read as Parquet ({exc})") from None
    else:
        try:
            names = _csv_header(ratings)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(f"{ratings.name}: cannot read it, is it a complete gzip file? ({exc})") from None
    headers["ratings"] = (ratings, names)
    for key, (path, found) in headers.items():
        missing = [c for c in REQUIRED_COLUMNS[key] if c not in found]
        if missing:
            shown = ", ".join(found)[:200] or "none"
            if not shown.isprintable() or "\ufffd" in shown:  # binary or not UTF-8: say so, do not print it
                raise InputError(f"{path.name}: not a CSV text file (its first line is not UTF-8 text); "
                                 f"expected a header with {', '.join(REQUIRED_COLUMNS[key])}")  # fmt: skip
            raise InputError(f"{path.name}: missing column(s) {', '.join(map(repr, missing))} (found: {shown})")
    return layout


def read_csv_layout(data_dir: Path) -> tuple[Table, Table, dict[str, Path]]:
    ratings_path = next(data_dir / n for n in RATINGS_FILES if (data_dir / n).exists())
    users_path = _require(data_dir / "users.csv", "user_id, gender, age, occupation")
    movies_path = _require(data_dir / "movies.csv", "movie_id, title, overview")
    users = Table(_read_csv(users_path), users_path.name, 2)
    movies = Table(_read_csv(movies_path), movies_path.name, 2)
    files = {"ratings": ratings_path, "users": users_path, "movies": movies_path}
    return users, movies, files


def read_ratings_table(path: Path) -> Table:
    """The ratings file as strings (slow, exact): used to word the error when the fast path fails."""
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(f"{path.name}: cannot read as Parquet ({exc})") from None
        return Table(frame, path.name, 1, unit="row")
    if path.suffix == ".dat":
        return Table(_read_dat(path, list(DAT_RATING_COLUMNS)), path.name, 1)
    return Table(_read_csv(path), path.name, 2)


def _csv_header(path: Path) -> list[str]:
    """The header's column names, trimmed (`` user_id , rating`` names user_id and rating)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
        return [c.strip() for c in fh.readline().rstrip("\r\n").split(",")]


def _rating_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Typed Arrow record batches of the ratings file; raises pa.ArrowInvalid on a value that does not
    convert. Never builds Python objects per row."""
    if path.suffix == ".parquet":
        parquet = pq.ParquetFile(path)
        columns = [c for c in RATING_TYPES if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=1 << 20, columns=columns):
            yield pa.RecordBatch.from_arrays(
                [batch.column(c).cast(RATING_TYPES[c]) for c in columns], names=columns
            )
        return
    if path.suffix == ".dat":
        source = pa.BufferReader(path.read_bytes().replace(b"::", b"\x1f"))
        read = pacsv.ReadOptions(column_names=list(DAT_RATING_COLUMNS), block_size=1 << 24)
        parse = pacsv.ParseOptions(delimiter="\x1f", quote_char=False)
        columns = list(DAT_RATING_COLUMNS)
    else:
        source = str(path)
        header = _csv_header(path)
        read = pacsv.ReadOptions(block_size=1 << 24, column_names=header, skip_rows=1)
        parse = pacsv.ParseOptions()
        columns = [c for c in RATING_TYPES if c in header]
    convert = pacsv.ConvertOptions(
        column_types={c: RATING_TYPES[c] for c in columns}, include_columns=columns, strings_can_be_null=False
    )
    yield from pacsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)


def read_ratings_fast(path: Path) -> pd.DataFrame | None:
    """Ratings as numpy columns, streamed in Arrow batches; None when anything is off (missing
    column, unparsable value, null, out of range, duplicate pair), so that the exact, slower reader
    can name the problem."""
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
    frame = pd.DataFrame({name: np.concatenate(parts) for name, parts in chunks.items()})
    if frame.empty or not frame["rating"].between(1, 5).all():
        return None
    key = frame["user_id"].to_numpy() * (int(frame["movie_id"].max()) + 1) + frame["movie_id"].to_numpy()
    if pd.Series(key).duplicated().any():
        return None
    return frame[[c for c in RATING_TYPES if c in frame.columns]]


def read_ml1m_layout(data_dir: Path) -> tuple[Table, Table, dict[str, Path]]:
    paths = {n: _require(data_dir / f"{n}.dat", "MovieLens-1M layout") for n in ("ratings", "users", "movies")}
    overviews_path = _require(data_dir / "overviews.csv", "the .dat layout needs overviews.csv: movie_id, overview")
    users = Table(_read_dat(paths["users"], ["user_id", "gender", "age", "occupation", "zip"]), "users.dat", 1)
    movies_frame = _read_dat(paths["movies"], ["movie_id", "title", "genres"])
    overviews = Table(_read_csv(overviews_path), "overviews.csv", 2)
    _check_columns(overviews, ["movie_id", "overview"])
    ov_ids = _integer_column(overviews, "movie_id")
    dup = ov_ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise overviews.fail("movie_id", "movie ids appear more than once", dup, ["movie_id"])
    ov = pd.Series(overviews.frame["overview"].to_numpy(), index=ov_ids.to_numpy())
    movies = Table(movies_frame, "movies.dat", 1)
    ids = pd.to_numeric(movies_frame["movie_id"], errors="coerce")
    movies_frame["overview"] = ov.reindex(ids.to_numpy()).to_numpy()
    files = {**paths, "overviews": overviews_path}
    return users, movies, files


# ---------------------------------------------------------------- validating


def _check_columns(table: Table, required: list[str]) -> None:
    missing = [c for c in required if c not in table.frame.columns]
    if missing:
        found = ", ".join(map(str, table.frame.columns)) or "none"
        raise InputError(f"{table.file}: missing column(s) {', '.join(repr(m) for m in missing)} (found: {found})")


def _check_not_empty(table: Table) -> None:
    if len(table.frame) == 0:
        raise InputError(f"{table.file}: no rows (an empty table)")


def _numeric_column(table: Table, column: str, show: list[str]) -> pd.Series:
    raw = table.frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        problem = "values are missing or not numbers"
        raise table.fail(column, problem, bad, show)
    return values


MAX_ID = 2**53  # ids above this lose their last digits in float64 (and overflow int64 further up)


def _integer_column(table: Table, column: str, show: list[str] | None = None) -> pd.Series:
    values = _numeric_column(table, column, show or [column])
    as_float = values.astype("float64")
    huge = (as_float.abs() >= MAX_ID).to_numpy()
    if huge.any():
        raise table.fail(column, f"values are too large (ids must be below 2^53 = {MAX_ID})", huge, show or [column])
    frac = (as_float != np.floor(as_float)).to_numpy()
    if frac.any():
        raise table.fail(column, "values are not whole numbers", frac, show or [column])
    return values.astype("int64")


def _text_column(table: Table, column: str, show: list[str]) -> pd.Series:
    values = table.frame[column].astype("string").str.strip()
    bad = (values.isna() | (values == "")).to_numpy()
    if bad.any():
        raise table.fail(column, "values are missing", bad, show)
    return values.astype(object)


def _check_unique(table: Table, keys: pd.DataFrame | pd.Series, column: str, what: str, show: list[str]) -> None:
    dup = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        raise table.fail(column, f"rows repeat {what}", dup, show)


def validate_ratings(table: Table) -> pd.DataFrame:
    _check_columns(table, ["user_id", "movie_id", "rating"])
    _check_not_empty(table)
    show = ["user_id", "movie_id", "rating"]
    out = pd.DataFrame(
        {
            "user_id": _integer_column(table, "user_id", show),
            "movie_id": _integer_column(table, "movie_id", show),
            "rating": _numeric_column(table, "rating", show).astype("float32"),
        }
    )
    bad = ((out["rating"] < 1) | (out["rating"] > 5)).to_numpy()
    if bad.any():
        raise table.fail("rating", "values outside 1-5", bad, show)
    if "timestamp" in table.frame.columns:
        out["timestamp"] = _integer_column(table, "timestamp", show + ["timestamp"])
    _check_unique(table, out[["user_id", "movie_id"]], "user_id, movie_id", "a (user_id, movie_id) pair", show)
    return out


def validate_users(table: Table, logger: logging.Logger | logging.LoggerAdapter | None = None) -> pd.DataFrame:
    logger = logger or log
    _check_columns(table, ["user_id", "gender", "age", "occupation"])
    _check_not_empty(table)
    show = ["user_id", "gender", "age", "occupation"]
    out = pd.DataFrame(
        {
            "user_id": _integer_column(table, "user_id", show),
            "gender": _text_column(table, "gender", show),
            "age": _numeric_column(table, "age", show).astype("float64"),
            "occupation": _text_column(table, "occupation", show),
        }
    )
    bad = ((out["age"] < 0) | (out["age"] > 130)).to_numpy()
    if bad.any():
        raise table.fail("age", "values outside 0-130", bad, show)
    out["occupation"] = occupation_names(out["occupation"])
    _check_unique(table, out["user_id"], "user_id", "a user_id", show)
    for column, known in (("gender", GENDERS), ("occupation", OCCUPATIONS)):
        odd = ~out[column].isin(known).to_numpy()
        if odd.any():
            values = ", ".join(sorted(map(str, out[column][odd].unique()))[:5])
            logger.warning(
                "%s: column '%s': %d of %d values are not among the documented ones (%s); each is kept as its "
                "own category (documented: %s), %s",
                table.file, column, int(odd.sum()), len(odd), values,
                ", ".join(GENDERS) if column == "gender" else "MovieLens-1M occupation codes 0-20 or their names",
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
    _check_columns(table, ["movie_id", "title", "overview"])
    _check_not_empty(table)
    show = ["movie_id", "title"]
    out = pd.DataFrame(
        {
            "movie_id": _integer_column(table, "movie_id", show),
            "title": table.frame["title"].astype("string").str.strip().astype(object),
            "overview": table.frame["overview"].astype("string").str.strip().astype(object),
        }
    )
    if "genres" in table.frame.columns:
        out["genres"] = table.frame["genres"].astype(object)
    _check_unique(table, out["movie_id"], "movie_id", "a movie_id", show)
    return out


def load_dataset(
    data_dir: str | Path,
    movies_limit: int | None = None,
    unknown_ids: str = "drop",
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Dataset:
    """Read and validate a data directory; ratings of unknown users/movies are counted and dropped
    (``unknown_ids='drop'``) or rejected (``'error'``). ``movies_limit`` keeps the first N movies in
    file order, and their ratings only (the notebook's ``movies.loc[:N-1]``)."""
    logger = logger or log
    data_dir = Path(data_dir).expanduser()
    layout = detect_layout(data_dir)
    reader = read_csv_layout if layout == "csv" else read_ml1m_layout
    users_t, movies_t, files = reader(data_dir)
    users = validate_users(users_t, logger)
    movies = validate_movies(movies_t)
    ratings = read_ratings_fast(files["ratings"])
    if ratings is None:  # something is off: the exact reader finds it and words the error
        ratings = validate_ratings(read_ratings_table(files["ratings"]))
    n_loaded = len(ratings)

    known_user = ratings["user_id"].isin(users["user_id"]).to_numpy()
    known_movie = ratings["movie_id"].isin(movies["movie_id"]).to_numpy()
    unknown = ~(known_user & known_movie)
    if unknown.any():
        msg_problem = "ratings reference unknown users or movies"
        suffix = files["ratings"].suffix
        where = Table(ratings, files["ratings"].name, 2 if suffix in (".csv", ".gz") else 1, "row" if suffix == ".parquet" else "line")
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
    logger.info(
        "loaded %s layout from %s: %d ratings, %d users, %d movies",
        layout, data_dir, n_loaded, len(users), len(movies),
    )  # fmt: skip
    return Dataset(
        ratings=ratings.reset_index(drop=True),
        users=users.reset_index(drop=True),
        movies=movies.reset_index(drop=True),
        layout=layout,
        files=files,
        stats=stats,
    )


def data_fingerprint(data_dir: str | Path) -> dict[str, str]:
    """sha256 of the bytes of each input file the loader reads (the load task's cache key)."""
    data_dir = Path(data_dir).expanduser()
    layout = detect_layout(data_dir)
    if layout == "csv":
        names = [next(n for n in RATINGS_FILES if (data_dir / n).exists()), "users.csv", "movies.csv"]
    else:
        names = [*ML1M_FILES, "overviews.csv"]
    return {name: sha256_file(data_dir / name) for name in names if (data_dir / name).exists()}


# ---------------------------------------------------------------- Prefect wrapper


@stage("load", result=LoadedData)
def loaded_data(
    data_dir: str,
    input_hashes: dict[str, str],
    movies_limit: int | None,
    unknown_ids: str,
    cache_dir: str,
) -> LoadedData:
    """Load + validate, and put the tables in the store. ``input_hashes`` (from ``data_fingerprint``)
    is not read here: it makes the cache key follow the files' content rather than their path."""
    dataset = load_dataset(data_dir, movies_limit, unknown_ids, run_logger(log))
    store = Store(cache_dir)
    return LoadedData(
        layout=dataset.layout,
        ratings=store.put_table(dataset.ratings),
        users=store.put_table(dataset.users),
        movies=store.put_table(dataset.movies),
        stats=dataset.stats,
    )
