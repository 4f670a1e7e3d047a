"""cache.dir on an object store (a real S3-compatible server, moto's server mode): objects, per-text
vectors and Prefect result records published through verified temporary keys, damage detected,
planted records refused, and every way of pointing at a store that does not work is one line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks import locations
from tasks.errors import InputError
from tasks.preflight import check_cache_dir
from tasks.records import RemoteRecordStorage, checked_record
from tasks.store import Store, broken_refs, get_array, get_table
from tasks.vector_store import EmbeddingStore, text_key

BIN = Path(sys.executable).parent


def all_keys(fs, url: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(fs.find(url.removeprefix("s3://")))


def flip_object(fs, url: str) -> None:
    path = url.removeprefix("s3://")
    data = bytearray(fs.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(path, bytes(data))


def test_store_objects_round_trip_and_leave_no_temporary_keys(s3_env):
    root = s3_env.bucket() + "/cache"
    store = Store(root)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    table, array = store.put_table(frame), store.put_array(np.arange(12.0).reshape(3, 4))
    assert table.path.startswith(root + "/objects/") and table.path.endswith(f"{table.sha256}.parquet")
    pd.testing.assert_frame_equal(get_table(table), frame)
    np.testing.assert_array_equal(get_array(array), np.arange(12.0).reshape(3, 4))
    keys = all_keys(s3_env.filesystem(), root)
    assert len(keys) == 2 and not any(k.endswith(locations.TMP_SUFFIX) for k in keys)
    assert broken_refs({"a": table, "b": [array]}) == []


def test_a_flipped_or_missing_object_is_reported_and_a_put_repairs_it(s3_env):
    root = s3_env.bucket() + "/cache"
    store = Store(root)
    ref = store.put_array(np.ones(1000))
    flip_object(s3_env.filesystem(), ref.path)
    assert broken_refs(ref.model_dump()) == [f"{ref.path} does not match its sha256"]
    with pytest.raises(OSError, match="does not match its sha256"):
        get_array(ref)
    assert store.put_array(np.ones(1000)) == ref  # same content, same name: rewritten intact
    assert broken_refs(ref.model_dump()) == []
    locations.remove(ref.path)
    assert broken_refs(ref.model_dump()) == [f"{ref.path} is missing"]


def test_upload_that_does_not_arrive_intact_is_never_published(s3_env, monkeypatch):
    """The copy to the real key only happens after the temporary object was verified."""
    url = s3_env.bucket() + "/x/object.bin"
    monkeypatch.setattr(locations, "_arrived_intact", lambda fs, tmp, data: False)
    with pytest.raises(OSError, match="do not match what was sent"):
        locations.publish(url, b"payload")
    assert all_keys(s3_env.filesystem(), url.rsplit("/", 2)[0]) == []  # neither the object nor its temporary key


def test_vectors_on_the_object_store_damaged_chunk_is_removed_and_missing(s3_env, caplog):
    root = s3_env.bucket() + "/cache"
    store = EmbeddingStore(root, "model-identity")
    keys = [text_key("model-identity", t) for t in ("a", "b", "c")]
    path = store.save(keys, np.eye(3, dtype=np.float32))
    assert locations.list_files(store.dir, ".parquet") == [path]
    found = store.load(set(keys))
    np.testing.assert_array_equal(found[keys[1]], [0, 1, 0])
    flip_object(s3_env.filesystem(), path)
    with caplog.at_level(logging.WARNING):
        assert store.load(set(keys)) == {}
    assert "is damaged" in caplog.text and locations.list_files(store.dir, ".parquet") == []


def test_remote_record_storage_refuses_a_planted_pickle_record(s3_env):
    root = s3_env.bucket() + "/cache/prefect-results"
    storage = RemoteRecordStorage(basepath=root)
    planted = json.dumps({"metadata": {"serializer": {"type": "pickle"}, "storage_key": "k"}, "result": "gASV"}).encode()
    locations.publish(f"{root}/planted-key", planted)
    with pytest.raises(ValueError, match="serializer"):
        storage.read_path("planted-key", _sync=True)
    good = json.dumps({"metadata": {"serializer": {"type": "movie-ratings-json"}, "storage_key": "k"},
                       "result": json.dumps({"n": 1})}).encode()  # fmt: skip
    assert storage.write_path("good-key", good, _sync=True) == f"{root}/good-key"
    assert checked_record(storage.read_path("good-key", _sync=True)) == good
    assert "settings" not in json.dumps(storage.model_dump()) or storage.settings == {}  # no credentials kept


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing bucket", "cannot write and read it back (FileNotFoundError: The specified bucket does not exist)"),
        ("no bucket", "name a bucket (and a prefix)"),
        ("unknown scheme", "no filesystem for nope://"),
        ("unreachable", "cannot reach the endpoint http://127.0.0.1:"),
        ("no credentials", "no credentials"),
    ],
)
def test_a_store_that_does_not_work_is_one_line_naming_the_url(s3_env, monkeypatch, tmp_path, case, message):
    from tests.processes import free_port

    import s3fs

    url = {"missing bucket": "s3://no-such-bucket/cache", "no bucket": "s3://", "unknown scheme": "nope://x/y"}.get(
        case, s3_env.bucket() + "/cache"
    )
    if case == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    if case == "no credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/credentials either
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        check_cache_dir(url)
    assert str(caught.value).startswith(f"cache.dir {url}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value) and time.perf_counter() - started < 15  # not the client's ~25 s of retries


def test_cli_refuses_an_unusable_store_before_any_work(s3_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_"))}
    env.update(s3_server.env, PREFECT_HOME=str(tmp_path / "prefect"), HOME=str(tmp_path))
    started = time.perf_counter()
    proc = subprocess.run([str(BIN / "movie-ratings"), "run", "--set", "cache.dir=s3://no-such-bucket/cache",
                           "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: cache.dir s3://no-such-bucket/cache: cannot write and read it back "
        "(FileNotFoundError: The specified bucket does not exist)"
    ]
    assert not (tmp_path / "prefect" / "prefect.db").exists()  # before Prefect's server started
    assert not (tmp_path / "out").exists()
    assert time.perf_counter() - started < 60


def comparable(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("seconds", "cached_tasks", "embedding", "out_dir", "config")}


def test_flow_on_the_object_store_equals_the_local_store_and_reruns_from_it(prefect_server, s3_env, tmp_path, small_csv):
    """The whole flow (real Prefect) with cache.dir=s3://…: the same metrics as a local store, result
    records in the bucket, and a second run entirely from the bucket."""
    from tests.flowrun import run_flow

    local = run_flow(tmp_path, small_csv, "local", cache_dir=tmp_path / "local-cache")
    root = s3_env.bucket() + "/cache"
    remote = run_flow(tmp_path, small_csv, "remote", cache_dir=root)
    assert comparable(remote) == comparable(local)
    assert remote["cached_tasks"] == []
    fs = s3_env.filesystem()
    keys = all_keys(fs, root)
    assert any("/prefect-results/" in k for k in keys) and any("/embeddings/" in k for k in keys)
    assert not any(k.endswith(locations.TMP_SUFFIX) for k in keys)
    again = run_flow(tmp_path, small_csv, "again", cache_dir=root)
    assert set(again["cached_tasks"]) == set(again["seconds"]) - {"flow_body"}
    assert again["embedding"]["texts_embedded"] == 0 and comparable(again) == comparable(local)


def test_credentials_in_the_url_are_refused_before_they_are_stored_anywhere():
    from configs.schema import load_config

    with pytest.raises(InputError, match="credentials do not belong in cache.dir") as caught:
        load_config(overrides=["cache.dir=s3://AKIAEXAMPLE:secret@bucket/cache"])
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="credentials do not belong in the URL"):
        check_cache_dir("s3://AKIAEXAMPLE:secret@bucket/cache")
    assert load_config(overrides=["cache.dir=s3://bucket/cache"]).cache.location == "s3://bucket/cache"


def test_converted_model_on_the_store_is_verified_and_a_planted_manifest_is_converted_again(s3_env, monkeypatch, caplog, tmp_path):
    """The OpenVINO files are store objects listed by a manifest; a manifest naming files elsewhere
    (or a damaged object) makes the model be converted again, and OpenVINO only opens checked copies."""
    from tasks import openvino_backend as ov

    conversions = []

    def fake_convert(model_path, out_xml, kind):  # the real conversion is tested in test_backends.py
        conversions.append(kind)
        out_xml.write_bytes(b"<net/>")
        out_xml.with_suffix(".bin").write_bytes(b"\x00" * 64)

    monkeypatch.setattr(ov, "_convert", fake_convert)
    monkeypatch.delenv(ov.MODELS_DIR_ENV, raising=False)
    root = s3_env.bucket() + "/cache"
    logger = logging.getLogger("t")
    folder = ov.exported_ir("/model", "identity", "openvino", root, logger)
    assert (folder / "model.bin").read_bytes() == b"\x00" * 64 and conversions == ["openvino"]
    assert folder.parent.parent.name.startswith("movie-ratings-") and oct(folder.parent.parent.stat().st_mode)[-3:] == "700"
    assert ov.exported_ir("/model", "identity", "openvino", root, logger) == folder and len(conversions) == 1

    manifest_at = f"{root}/models/openvino/{ov.export_key('identity', 'openvino')}.json"
    manifest = json.loads(locations.read_bytes(manifest_at))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not a model")
    manifest["files"]["model.bin"]["path"] = str(secret)
    manifest["files"]["model.bin"]["sha256"] = __import__("hashlib").sha256(b"not a model").hexdigest()
    locations.publish(manifest_at, json.dumps(manifest).encode())
    with caplog.at_level(logging.WARNING):
        again = ov.exported_ir("/model", "identity", "openvino", root, logger)
    assert "names files outside the store" in caplog.text and len(conversions) == 2
    assert (again / "model.bin").read_bytes() == b"\x00" * 64
