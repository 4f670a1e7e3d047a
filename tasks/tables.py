"""Raw tables and the checks on their columns, shared by every release layout (tasks/layouts.py) and
the loader (tasks/load.py).

A ``Table`` remembers its file and where its rows sit in it, so every problem becomes one
``InputError`` line naming the file, the column *as the file spells it* (``movieId`` in MovieLens
25M, ``movie_id`` in the notebook's CSVs) and a few example rows with their line numbers.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.errors import InputError

EXAMPLES = 3
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
# GroupLens's CSV releases spell ids in camelCase; inside we use the notebook's names.
CAMEL = {"userId": "user_id", "movieId": "movie_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"}


@dataclass
class Table:
    """A raw table with where it came from, so errors can point at lines of the file."""

    frame: pd.DataFrame
    file: str
    first_line: int  # file line of data row 0 (2 for CSV with a header, 1 for .dat)
    unit: str = "line"  # "row" for Parquet
    spelled: dict[str, str] = field(default_factory=dict)  # our column name → the file's

    def label(self, column: str) -> str:
        return self.spelled.get(column, column)

    def where(self, positions: np.ndarray, columns: list[str]) -> str:
        rows = []
        for pos in positions[:EXAMPLES]:
            values = ", ".join(
                f"{self.label(c)}={_show(self.frame[c].iloc[pos])}" for c in columns if c in self.frame
            )
            rows.append(f"{self.unit} {int(pos) + self.first_line} ({values})")
        return "e.g. " + "; ".join(rows)

    def fail(self, column: str | None, problem: str, mask: np.ndarray, show: list[str]) -> InputError:
        positions = np.flatnonzero(mask)
        col = f"column '{self.label(column)}': " if column else ""
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


# ---------------------------------------------------------------- reading files


def require(path: Path, hint: str) -> Path:
    if not path.exists():
        raise InputError(f"{path.name}: missing in {path.parent} ({hint})")
    if not path.is_file():
        raise InputError(f"data dir {path.parent}: {path.name} is a folder, not a file")
    return path


def read_bytes(path: Path) -> bytes:
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


def read_csv(path: Path, camel: bool = False) -> Table:
    """A UTF-8 CSV file with a header, every value a string; ``camel``: GroupLens's ``movieId`` &c.
    are renamed to ``movie_id`` &c. (errors still say ``movieId``)."""
    text = decode_utf8(read_bytes(path), path.name)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path.name}: cannot parse as CSV ({str(exc).strip().splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return camel_table(frame, path.name, 2) if camel else Table(frame, path.name, 2)


def camel_table(frame: pd.DataFrame, file: str, first_line: int, unit: str = "line") -> Table:
    """A table whose GroupLens camelCase ids are renamed to ours, remembering the file's spelling."""
    spelled = {ours: theirs for theirs, ours in CAMEL.items() if theirs in frame.columns}
    return Table(frame.rename(columns=CAMEL), file, first_line, unit, spelled)


def decode_legacy(raw: bytes) -> str:
    """GroupLens's old files (.dat, u.item) are latin-1; a file re-saved as UTF-8 reads as UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


SEPARATOR_NAMES = {b"::": "'::'", b"|": "'|'", b"\t": "tab"}


def read_separated(path: Path, names: list[str], sep: bytes = b"::") -> Table:
    """GroupLens's header-less files ('::' for .dat, '|' or tab for MovieLens-100K), no quoting.
    A line with another number of fields (e.g. a '::' inside a title) is named, not shifted into the
    wrong columns."""
    text = decode_legacy(read_bytes(path).replace(b"\r\n", b"\n"))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sep_text = sep.decode()
    counts = np.fromiter((line.count(sep_text) for line in lines), dtype=np.int64, count=len(lines))
    bad = np.flatnonzero(counts != len(names) - 1)
    what = SEPARATOR_NAMES.get(sep, repr(sep_text))
    if bad.size:
        examples = "; ".join(f"line {i + 1} ({lines[i][:60]!r})" for i in bad[:EXAMPLES])
        raise InputError(
            f"{path.name}: {bad.size} of {len(lines)} lines do not have {len(names)} {what}-separated fields "
            f"({', '.join(names)}), e.g. {examples}"
        )
    if not lines:
        return Table(pd.DataFrame({n: pd.Series(dtype=str) for n in names}), path.name, 1)
    body = "\n".join(lines).replace(sep_text, "\x1f")
    try:
        frame = pd.read_csv(
            io.StringIO(body), sep="\x1f", header=None, names=names, dtype=str, quoting=csv.QUOTE_NONE,
            keep_default_na=False, na_values=[""], engine="c", index_col=False,
        )  # fmt: skip
    except pd.errors.ParserError as exc:
        raise InputError(f"{path.name}: not in the {what}-separated MovieLens format ({str(exc).strip()})") from None
    return Table(frame, path.name, 1)


def csv_header(path: Path) -> list[str]:
    """The header's column names, trimmed (`` user_id , rating`` names user_id and rating)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
        return [c.strip().strip('"') for c in fh.readline().rstrip("\r\n").split(",")]


# ---------------------------------------------------------------- checking columns


def check_columns(table: Table, required: list[str]) -> None:
    missing = [c for c in required if c not in table.frame.columns]
    if missing:
        found = ", ".join(table.label(str(c)) for c in table.frame.columns) or "none"
        wanted = ", ".join(repr(table.label(m)) for m in missing)
        raise InputError(f"{table.file}: missing column(s) {wanted} (found: {found})")


def check_not_empty(table: Table) -> None:
    if len(table.frame) == 0:
        raise InputError(f"{table.file}: no rows (an empty table)")


def numeric_column(table: Table, column: str, show: list[str]) -> pd.Series:
    raw = table.frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() | ~np.isfinite(values.astype("float64"))).to_numpy()
    if bad.any():
        raise table.fail(column, "values are missing or not numbers", bad, show)
    return values


MAX_ID = 2**53  # ids above this lose their last digits in float64 (and overflow int64 further up)


def integer_column(table: Table, column: str, show: list[str] | None = None) -> pd.Series:
    values = numeric_column(table, column, show or [column])
    as_float = values.astype("float64")
    huge = (as_float.abs() >= MAX_ID).to_numpy()
    if huge.any():
        raise table.fail(column, f"values are too large (ids must be below 2^53 = {MAX_ID})", huge, show or [column])
    frac = (as_float != np.floor(as_float)).to_numpy()
    if frac.any():
        raise table.fail(column, "values are not whole numbers", frac, show or [column])
    return values.astype("int64")


def text_column(table: Table, column: str, show: list[str]) -> pd.Series:
    values = table.frame[column].astype("string").str.strip()
    bad = (values.isna() | (values == "")).to_numpy()
    if bad.any():
        raise table.fail(column, "values are missing", bad, show)
    return values.astype(object)


def optional_text(table: Table, column: str) -> pd.Series:
    """Stripped text, blanks as None (a missing text is for the embedding policy to decide)."""
    values = table.frame[column].astype("string").str.strip()
    return values.astype(object).where((values.fillna("") != "").to_numpy(), None)


def check_unique(table: Table, keys: pd.DataFrame | pd.Series, column: str, what: str, show: list[str]) -> None:
    dup = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        raise table.fail(column, f"rows repeat {what}", dup, show)
