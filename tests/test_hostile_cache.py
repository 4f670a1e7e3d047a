"""A cache directory others can write: nothing found there runs code or is used unverified.

Planted Prefect result records (pickle, Prefect's own json decoder naming classes, the wrong shape)
and flipped bytes in embedding files must each be a cache miss: warning, recompute, and the same
results as a clean run."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.flowrun import run_flow
from tests.test_caching import comparable, tasks_run


# A protocol-0 pickle that calls os.system("touch <marker>") when unpickled, written out by hand.
def evil_pickle(marker: Path) -> bytes:
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def records(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "prefect-results").iterdir() if p.is_file() and not p.name.startswith("."))


def rewrite(path: Path, serializer: dict, payload: str) -> None:
    record = json.loads(path.read_bytes())
    record["metadata"]["serializer"] = serializer
    record["result"] = payload
    path.write_text(json.dumps(record))


def test_planted_pickle_record_never_runs_and_is_recomputed(prefect_server, tmp_path, small_csv, caplog):
    clean = run_flow(tmp_path, small_csv, "clean")
    marker = tmp_path / "pwned"
    planted = records(tmp_path / "cache")
    assert planted, "the first run persisted no result records"
    payload = base64.encodebytes(evil_pickle(marker)).decode()
    for path in planted:
        rewrite(path, {"type": "pickle", "picklelib": "pickle", "picklelib_version": None}, payload)

    again = run_flow(tmp_path, small_csv, "again")
    assert not marker.exists(), "a planted pickle record was unpickled"
    assert comparable(again) == comparable(clean)
    assert again["cached_tasks"] == []  # every planted record was a miss, and was overwritten
    third = run_flow(tmp_path, small_csv, "third")
    assert set(third["cached_tasks"]) == tasks_run(third)  # every result we write validates as its stage's shape


def test_prefect_json_records_naming_classes_are_refused(prefect_server, tmp_path, small_csv):
    """Prefect's own 'json' serializer imports the class a record names (``__class__``,
    ``__exc_type__``); such a record must not even be decoded."""
    clean = run_flow(tmp_path, small_csv, "clean")
    for path in records(tmp_path / "cache"):
        rewrite(path, {"type": "json"}, json.dumps({"__exc_type__": "builtins.SystemExit", "message": "3"}))
    again = run_flow(tmp_path, small_csv, "again")
    assert comparable(again) == comparable(clean) and again["cached_tasks"] == []


def test_record_of_the_wrong_shape_is_a_miss(prefect_server, tmp_path, small_csv, caplog):
    clean = run_flow(tmp_path, small_csv, "clean")
    for path in records(tmp_path / "cache"):
        rewrite(path, {"type": "movie-ratings-json"}, json.dumps({"unexpected": [1, 2, 3]}))
    again = run_flow(tmp_path, small_csv, "again")
    assert comparable(again) == comparable(clean)
    assert "cached result unusable" in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x80\x04K\x01.",  # a bare pickle
        b'{"metadata": {"serializer": {"type": "pickle"}}, "result": "gARLAS4="}',
        b'{"metadata": {"serializer": {"type": "movie-ratings-json"}}, "result": "{not json"}',
        b'{"metadata": {"serializer": {"type": "movie-ratings-json"}}, "result": "{}", "extra": 1}',
        b'[1, 2, 3]',
    ],
)
def test_checked_record_refuses_anything_we_did_not_write(content):
    from tasks.records import checked_record

    with pytest.raises(ValueError):
        checked_record(content)


def test_checked_record_accepts_what_the_serializer_writes():
    from tasks.records import PlainJSONSerializer, checked_record

    serializer = PlainJSONSerializer()
    record = {"metadata": {"serializer": {"type": "movie-ratings-json"}, "storage_key": "k", "expiration": None,
                           "prefect_version": "3.9.1", "storage_block_id": None},
              "result": serializer.dumps({"a": [1, 2.5]}).decode()}  # fmt: skip
    content = json.dumps(record).encode()
    assert checked_record(content) == content
    assert serializer.loads(record["result"].encode()) == {"a": [1, 2.5]}
    # a failed task's exception is kept as plain data, never as a class to import
    assert json.loads(serializer.dumps(ValueError("bad"))) == {"error": "ValueError", "message": "bad"}


def test_flipped_bytes_in_embedding_files_never_reach_the_results(prefect_server, tmp_path, small_csv, caplog):
    """The run after the damage recomputes what depended on it (its records are gone, as after a code
    change) and must read the vector files: the damaged ones are removed and embedded again."""
    import shutil

    from tests.test_embed import flip_bytes

    clean = run_flow(tmp_path, small_csv, "clean")
    chunks = sorted((tmp_path / "cache" / "embeddings").rglob("*.parquet"))
    assert chunks
    for i, chunk in enumerate(chunks):
        flip_bytes(chunk, seed=i)
    shutil.rmtree(tmp_path / "cache" / "prefect-results")
    again = run_flow(tmp_path, small_csv, "again")
    assert "is damaged" in caplog.text
    assert again["embedding"]["texts_embedded"] == clean["embedding"]["texts_embedded"]
    assert comparable(again) == comparable(clean)


def test_record_pointing_outside_the_store_is_a_miss(prefect_server, tmp_path, small_csv, caplog):
    """A planted record whose references name a file elsewhere (with that file's true sha256) must
    not make a stage read it: references are only good for objects of this store."""
    clean = run_flow(tmp_path, small_csv, "clean")
    outside = tmp_path / "elsewhere.parquet"
    changed = 0
    for path in records(tmp_path / "cache"):
        record = json.loads(path.read_bytes())
        value = json.loads(record["result"])
        if isinstance(value, dict) and isinstance(value.get("ratings"), dict):  # the load stage's result
            original = Path(value["ratings"]["path"])
            outside.write_bytes(original.read_bytes())  # same bytes, same sha256, outside the store
            value["ratings"]["path"] = str(outside)
            record["result"] = json.dumps(value)
            path.write_text(json.dumps(record))
            changed += 1
    assert changed == 1
    again = run_flow(tmp_path, small_csv, "again")
    assert "load: cached result unusable" in caplog.text and "is not an object of the store" in caplog.text
    assert "load" not in again["cached_tasks"] and comparable(again) == comparable(clean)
