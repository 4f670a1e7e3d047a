"""Store objects verified once per process: reused while their file is unchanged, re-verified when it
changed, bounded in memory, and never writable by whoever reads them."""

from __future__ import annotations

import io
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks import locations, store
from tasks.store import Store, broken_refs, get_array, get_table, npy_array
from tasks.verified_objects import FileStamp, VerifiedObjects


@pytest.fixture(autouse=True)
def empty_memory():
    store.VERIFIED.clear()
    yield
    store.VERIFIED.clear()


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Every file the store reads from disk."""
    seen: list[str] = []
    original = locations.read_bytes

    def counting(location: str) -> bytes:
        seen.append(location)
        return original(location)

    monkeypatch.setattr(locations, "read_bytes", counting)
    return seen


def flip_in_place(path: str) -> None:
    """One byte changed, same size, same inode (after a pause: a file system stamps times in ticks)."""
    time.sleep(0.05)
    flipped(path)


def flipped(path: str) -> None:
    """Flip one byte near the end of the file, writing in place (same inode, same size)."""
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    data[-3] ^= 0xFF
    with open(path, "r+b") as fh:
        fh.write(bytes(data))


def test_an_array_written_or_read_once_is_not_read_again_and_is_read_only(tmp_path, reads):
    s = Store(tmp_path)
    ref = s.put_array(np.arange(12.0).reshape(3, 4))
    first = get_array(ref)
    assert reads == []  # kept when written
    store.VERIFIED.clear()
    again, more = get_array(ref), get_array(ref)
    assert reads == [ref.path]  # read and verified once, then kept
    np.testing.assert_array_equal(again, np.arange(12.0).reshape(3, 4))
    assert more is again and not again.flags.writeable and not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        again[0, 0] = 5.0


def test_a_file_changed_since_it_was_verified_is_verified_again(tmp_path):
    ref = Store(tmp_path).put_array(np.arange(1000.0))
    get_array(ref)
    flip_in_place(ref.path)
    with pytest.raises(OSError, match="does not match its sha256"):
        get_array(ref)
    assert broken_refs(ref) == [f"{ref.path} does not match its sha256"]


def test_a_replaced_file_is_verified_again(tmp_path, reads):
    ref = Store(tmp_path).put_array(np.arange(10.0))
    os.replace(_write(tmp_path / "copy.npy", Path(ref.path).read_bytes()), ref.path)  # same bytes, another file (inode)
    np.testing.assert_array_equal(get_array(ref), np.arange(10.0))
    assert reads == [ref.path]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_the_next_process_finds_a_damaged_file(tmp_path):
    """In-process memory never outlives the process: a new one (an empty memory) hashes the file."""
    ref = Store(tmp_path).put_array(np.arange(1000.0))
    assert broken_refs(ref) == []
    flipped(ref.path)
    store.VERIFIED.clear()
    assert broken_refs(ref) == [f"{ref.path} does not match its sha256"]


def test_broken_refs_skips_the_hash_of_an_unchanged_verified_file(tmp_path, monkeypatch):
    ref = Store(tmp_path).put_array(np.arange(10.0))
    hashed: list = []
    monkeypatch.setattr(store, "sha256_file", lambda path: hashed.append(path) or "x")
    assert broken_refs(ref) == [] and hashed == []
    store.VERIFIED.clear()
    assert broken_refs(ref) == [f"{ref.path} does not match its sha256"] and len(hashed) == 1


def test_a_table_is_a_copy_on_write_frame(tmp_path):
    frame = pd.DataFrame({"user_idx": np.arange(5, dtype=np.int32), "rating": np.linspace(1, 5, 5, dtype=np.float32)})
    ref = Store(tmp_path).put_table(frame)
    got = get_table(ref)
    got["rating"] = 0.0
    got["extra"] = 1
    got.loc[0, "user_idx"] = 99
    frame.loc[1, "user_idx"] = 77  # the writer's own frame changes later
    pd.testing.assert_frame_equal(get_table(ref), pd.read_parquet(ref.path))
    assert get_table(ref)["user_idx"].tolist() == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(get_table(ref, columns=["rating"]), pd.read_parquet(ref.path, columns=["rating"]))


def test_only_tables_whose_parquet_round_trip_is_exact_are_kept_when_written(tmp_path, reads):
    s = Store(tmp_path)
    numeric = s.put_table(pd.DataFrame({"a": np.arange(3, dtype=np.int64), "b": [0.5, np.nan, 2.0], "c": [True, False, True]}))
    texts = s.put_table(pd.DataFrame({"a": [1, 2], "title": ["x", None]}))
    indexed = s.put_table(pd.DataFrame({"a": [1.0, 2.0]}, index=[5, 7]))
    for ref in (numeric, texts, indexed):
        pd.testing.assert_frame_equal(get_table(ref), pd.read_parquet(ref.path))
    assert reads == [texts.path, indexed.path]


def test_memory_is_bounded_least_recently_used_first(tmp_path):
    paths = []
    for i in range(4):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x")
        paths.append(str(path))
    memory = VerifiedObjects(max_bytes=250)
    for i in range(3):
        memory.put(paths[i], "sha", "array", i, 100, FileStamp.of(paths[i]))
    assert memory.get(paths[0], "sha", "array") is None and memory.nbytes == 200  # evicted: the oldest
    memory.get(paths[1], "sha", "array")  # now the most recently used
    memory.put(paths[3], "sha", "array", 3, 100, FileStamp.of(paths[3]))
    assert memory.get(paths[2], "sha", "array") is None and memory.get(paths[1], "sha", "array") == 1
    memory.put(paths[0], "sha", "array", 0, 251, FileStamp.of(paths[0]))  # larger than the bound: not kept
    assert memory.get(paths[0], "sha", "array") is None and memory.nbytes <= 250


def test_object_store_urls_are_never_kept():
    memory = VerifiedObjects(max_bytes=1000)
    memory.put("s3://bucket/x.npy", "sha", "array", 1, 10, FileStamp.of("s3://bucket/x.npy"))
    assert len(memory) == 0


def test_npy_arrays_decode_like_np_load_and_refuse_objects():
    for array in (np.arange(24, dtype=np.int32).reshape(2, 3, 4), np.asfortranarray(np.eye(3)[:, :2]), np.array(3.5),
                  np.zeros((0, 4)), np.array([True, False])):  # fmt: skip
        buf = io.BytesIO()
        np.save(buf, array)
        got = npy_array(buf.getvalue())
        np.testing.assert_array_equal(got, array)
        assert got.dtype == array.dtype and got.shape == array.shape and not got.flags.writeable
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        npy_array(buf.getvalue())


def test_npy_array_is_a_view_of_the_bytes_it_is_given():
    """No copy of the data (bytes or the bytearray put_array has in hand); a header longer than the
    first 64 KiB read for it is refused as np.load refuses it."""
    from tasks.store import npy_bytes

    data = npy_bytes(np.arange(100_000, dtype=np.int64))
    assert np.shares_memory(npy_array(data), np.frombuffer(data, dtype=np.uint8))
    frozen = bytes(data)
    assert np.shares_memory(npy_array(frozen), np.frombuffer(frozen, dtype=np.uint8))
    wide = np.zeros(2, dtype=[(f"field_{i:05d}", "<f8") for i in range(3000)])  # a ~70 KB format-2.0 header
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "format 2.0 can only be read by NumPy >= 1.9"
        np.save(buf, wide)
    with pytest.raises(ValueError, match="large"):  # what np.load(allow_pickle=False) says
        np.load(io.BytesIO(buf.getvalue()), allow_pickle=False)
    with pytest.raises(ValueError, match="large"):
        npy_array(buf.getvalue())


def test_a_vector_chunk_is_read_once_while_unchanged_and_checked_again_when_changed(tmp_path, hash_encoder, reads, caplog):
    from tasks.embed import embed_texts
    from tasks.vector_store import EmbeddingStore

    store_ = EmbeddingStore(tmp_path, "m")
    texts = [f"text {i}" for i in range(10)]
    embed_texts(texts, hash_encoder, store_, "m", chunk_size=10)  # plans, embeds, reads the chunk back
    (chunk,) = [p for p in reads if p.endswith(".parquet")]
    assert store_.keys() == store_.keys() and len(store_.load(set(store_.keys()))) == 10
    assert reads.count(chunk) == 1
    flip_in_place(chunk)
    with caplog.at_level("WARNING"):
        assert store_.keys() == set()  # verified again: damaged, removed
    assert "is damaged" in caplog.text


def test_npy_bytes_are_what_np_save_writes():
    """Same bytes, so the same sha256 and store name as np.save gave."""
    from tasks.store import npy_bytes

    for array in (np.arange(24, dtype=np.int32).reshape(2, 3, 4), np.asfortranarray(np.eye(3)[:, :2]), np.array(3.5),
                  np.zeros((0, 4)), np.array([True, False]), np.arange(10.0)[::2], np.ones((3, 2), dtype=">f4")):  # fmt: skip
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        assert bytes(npy_bytes(array)) == buf.getvalue()
        got = npy_array(npy_bytes(array))
        np.testing.assert_array_equal(got, array)
        assert not got.flags.writeable
    with pytest.raises(ValueError, match="allow_pickle=False"):
        npy_bytes(np.array([1, "a"], dtype=object))
