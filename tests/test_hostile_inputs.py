"""Inputs nobody listed: each gives one line naming the culprit (an InputError), never a traceback,
and never silently wrong data."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from configs.schema import load_config
from tasks.errors import InputError
from tasks.load import check_data_dir, load_dataset
from tests.test_load import MOVIES, RATINGS, USERS, write_dir


def one_line_error(func, *args) -> str:
    with pytest.raises(InputError) as err:
        func(*args)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["ratings.csv", "users.csv", "movies.csv"])
def test_a_folder_named_like_a_data_file(tmp_path, name):
    root = write_dir(tmp_path / "d")
    (root / name).unlink()
    (root / name).mkdir()
    for check in (check_data_dir, load_dataset):
        assert f"{name} is a folder, not a file" in one_line_error(check, root)


def test_header_with_spaces_is_trimmed(tmp_path):
    root = write_dir(tmp_path, ratings=RATINGS.replace("user_id,movie_id,rating,timestamp", " user_id , movie_id , rating , timestamp "))
    ds = load_dataset(root)
    assert ds.ratings["rating"].tolist() == [4, 5, 3, 1, 2]
    assert check_data_dir(root) == "csv"


def test_utf8_bom_is_dropped(tmp_path):
    root = write_dir(tmp_path)
    (root / "movies.csv").write_bytes(b"\xef\xbb\xbf" + MOVIES.encode())
    assert load_dataset(root).movies["movie_id"].tolist() == [10, 20, 30]


@pytest.mark.parametrize(
    "content, expected",
    [
        (lambda: gzip.compress(RATINGS.encode())[:30], "ratings.csv.gz: cannot read it, is it a complete gzip file?"),
        (lambda: RATINGS.encode(), "ratings.csv.gz: cannot read it, is it a complete gzip file?"),
    ],
    ids=["truncated", "plain-text"],
)
def test_bad_gzip(tmp_path, content, expected):
    root = write_dir(tmp_path)
    (root / "ratings.csv").unlink()
    (root / "ratings.csv.gz").write_bytes(content())
    assert expected in one_line_error(load_dataset, root)


def test_good_gzip_loads(tmp_path):
    root = write_dir(tmp_path)
    (root / "ratings.csv").unlink()
    (root / "ratings.csv.gz").write_bytes(gzip.compress(RATINGS.encode()))
    assert len(load_dataset(root).ratings) == 5


def test_two_ratings_files_are_refused(tmp_path):
    root = write_dir(tmp_path)
    (root / "ratings.csv.gz").write_bytes(gzip.compress(RATINGS.encode()))
    message = one_line_error(check_data_dir, root)
    assert "several ratings files (ratings.csv, ratings.csv.gz); keep exactly one" in message
    (root / "ratings.csv.gz").unlink()
    (root / "ratings.dat").write_text("1::10::4::100\n")
    assert "several ratings files (ratings.csv, ratings.dat)" in one_line_error(load_dataset, root)


def test_random_bytes_as_movies_csv(tmp_path):
    root = write_dir(tmp_path)
    (root / "movies.csv").write_bytes(np.random.default_rng(0).bytes(4000))
    message = one_line_error(load_dataset, root)
    assert message.startswith("movies.csv: ") and message.isprintable()
    assert "not a CSV text file" in one_line_error(check_data_dir, root)


def test_one_non_utf8_byte_names_its_line_and_never_garbles_the_rest(tmp_path):
    root = write_dir(tmp_path)
    text = "movie_id,title,overview\n10,Amélie à Paris,A café.\n20,Beta (1991),A romance.\n30,Gamma,Caf\xe9 noir.\n"
    data = text.encode("utf-8").replace("Caf\xe9 noir".encode("utf-8"), b"Caf\xe9 noir")  # one latin-1 byte
    (root / "movies.csv").write_bytes(data)
    message = one_line_error(load_dataset, root)
    assert message.startswith("movies.csv: line 4, column 13: byte 0xe9 is not UTF-8")
    (root / "movies.csv").write_bytes(text.encode("utf-8"))
    assert load_dataset(root).movies["title"].iloc[0] == "Amélie à Paris"


@pytest.mark.parametrize("huge", ["99999999999999999999999", "-99999999999999999999999", "9007199254740993"])
def test_huge_ids_are_named(tmp_path, huge):
    users = USERS.replace("3,M,18,writer", f"{huge},M,18,writer")
    message = one_line_error(load_dataset, write_dir(tmp_path, users=users))
    assert "users.csv: column 'user_id': 1 of 3 values are too large" in message
    assert f"user_id={huge}" in message


def test_two_different_huge_ids_are_not_called_a_repeat(tmp_path):
    users = USERS.replace("2,M,35", "99999999999999999999998,M,35").replace("3,M,18", "99999999999999999999999,M,18")
    message = one_line_error(load_dataset, write_dir(tmp_path, users=users))
    assert "too large" in message and "repeat" not in message


def test_unexpected_gender_and_occupation_are_warned(tmp_path, caplog):
    users = USERS.replace("2,M,35,programmer", "2,X,35,astronaut").replace("3,M,18,writer", "3,M,18,11")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(write_dir(tmp_path, users=users))
    assert "users.csv: column 'gender': 1 of 3 values are not among the documented ones (X)" in caplog.text
    assert "users.csv: column 'occupation': 1 of 3 values are not among the documented ones (astronaut)" in caplog.text
    assert "line 3 (user_id=2" in caplog.text
    assert ds.users.set_index("user_id")["occupation"].to_dict() == {1: "lawyer", 2: "astronaut", 3: "lawyer"}


def test_documented_values_give_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        load_dataset(write_dir(tmp_path))
    assert "not among the documented ones" not in caplog.text


def test_double_colon_inside_a_dat_title_names_the_line(tmp_path, small_dat):
    import shutil

    root = Path(shutil.copytree(small_dat, tmp_path / "dat"))
    lines = (root / "movies.dat").read_bytes().split(b"\n")
    movie_id, title, genres = lines[4].split(b"::")
    lines[4] = b"::".join([movie_id, title + b"::Part II", genres])
    (root / "movies.dat").write_bytes(b"\n".join(lines))
    message = one_line_error(load_dataset, root)
    assert message.startswith("movies.dat: 1 of ")
    assert "do not have 3 '::'-separated fields (movie_id, title, genres), e.g. line 5" in message
    assert "Part II" in message


def test_config_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"model:\n  alpha: 2\n# caf\xe9\n")
    message = one_line_error(load_config, path)
    assert message.startswith(f"config {path}: not UTF-8 text (byte 0xe9")


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.alpha=.inf", "'model.alpha': Input should be a finite number"),
        ("model.alpha=.nan", "'model.alpha': Input should be a finite number"),
        ("model.alpha=0", "'model.alpha': Input should be greater than 0"),
        ("model.alphas=[1, .inf]", "'model.alphas.1': Input should be a finite number"),
        ("model.id_alpha=.inf", "'model.id_alpha': Input should be a finite number"),
        ("model.bias_reg_user=.inf", "'model.bias_reg_user': Input should be a finite number"),
        ("split.test_size=.nan", "'split.test_size': Input should be a finite number"),
    ],
)
def test_non_finite_parameters_are_refused_at_config_time(override, message):
    assert message in one_line_error(load_config, None, [override])
