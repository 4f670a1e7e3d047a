"""Caching on input hashes with real Prefect: only what changed reruns, damaged caches are recomputed,
kill -9 resumes from finished chunks, concurrent runs agree."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.flowrun import run_flow

UPSTREAM = {"load", "embed_title", "embed_overview", "merge", "features"}


def tasks_run(doc: dict) -> set[str]:
    """The cached steps a run took (the demo-data step only exists without data.dir)."""
    return set(doc["seconds"]) - {"flow_body"}


def comparable(doc: dict) -> dict:
    """The parts of a metrics document that must not depend on caching or timing."""
    return {k: v for k, v in doc.items() if k not in ("seconds", "cached_tasks", "embedding", "out_dir", "config")}


def store_keys(cache_dir: Path) -> list[str]:
    keys: list[str] = []
    for path in (cache_dir / "embeddings").rglob("*.parquet"):
        keys.extend(pq.read_table(path, columns=["key"]).column("key").to_pylist())
    return keys


@pytest.fixture
def data_copy(tmp_path, small_csv) -> Path:
    return Path(shutil.copytree(small_csv, tmp_path / "data"))


def test_seed_change_reruns_split_train_and_plots_only(prefect_server, tmp_path, small_csv):
    first = run_flow(tmp_path, small_csv, "a")
    assert first["cached_tasks"] == []
    changed = run_flow(tmp_path, small_csv, "b", extra=["split.seed=7"])
    assert set(changed["cached_tasks"]) == UPSTREAM  # split (and gram when used), train, plots rerun
    assert changed["test_rmse"] != first["test_rmse"]


def test_edited_overview_reembeds_exactly_that_text(prefect_server, tmp_path, data_copy):
    first = run_flow(tmp_path, data_copy, "a")
    movies = pd.read_csv(data_copy / "movies.csv", dtype=str, keep_default_na=False)
    row = movies.index[movies["overview"] != ""][3]
    movies.loc[row, "overview"] += " Now with a twist."
    movies.to_csv(data_copy / "movies.csv", index=False)

    second = run_flow(tmp_path, data_copy, "b")
    assert "load" not in second["cached_tasks"]
    assert second["embedding"]["fields"]["overview"]["texts_embedded"] == 1
    assert second["embedding"]["fields"]["title"]["texts_embedded"] == 0
    assert second["embedding"]["texts_embedded"] == 1
    assert second["embedding"]["cache_hits"] == first["embedding"]["texts_unique"] - 1 + (
        second["embedding"]["texts_unique"] - first["embedding"]["texts_unique"]
    )


def test_refresh_recomputes_everything(prefect_server, tmp_path, small_csv):
    first = run_flow(tmp_path, small_csv, "a")
    again = run_flow(tmp_path, small_csv, "b", extra=["cache.refresh=true"])
    assert again["cached_tasks"] == []
    assert again["embedding"]["texts_embedded"] == again["embedding"]["texts_unique"]
    assert comparable(again) == comparable(first)


def test_damaged_store_object_is_detected_and_recomputed(prefect_server, tmp_path, small_csv, caplog):
    first = run_flow(tmp_path, small_csv, "a")
    objects = sorted((tmp_path / "cache" / "objects").rglob("*.npy"), key=lambda p: p.stat().st_size)
    victim = objects[-1]  # the largest array: the movie block
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    victim.write_bytes(bytes(data))
    again = run_flow(tmp_path, small_csv, "b")
    assert "cached result unusable" in caplog.text and "does not match its sha256" in caplog.text
    assert comparable(again) == comparable(first)
    again2 = run_flow(tmp_path, small_csv, "c")  # repaired: everything cached again
    assert set(again2["cached_tasks"]) == tasks_run(again2)


def test_damaged_prefect_result_is_recomputed(prefect_server, tmp_path, small_csv):
    first = run_flow(tmp_path, small_csv, "a")
    for path in (tmp_path / "cache" / "prefect-results").iterdir():
        path.write_bytes(path.read_bytes()[:20])  # truncated JSON
    again = run_flow(tmp_path, small_csv, "b")
    assert comparable(again) == comparable(first)
    assert again["cached_tasks"] == []


def test_removed_demo_data_folder_is_regenerated(prefect_server, tmp_path):
    extra = ["data.demo.users=40", "data.demo.movies=25", "data.demo.ratings=800"]
    first = run_flow(tmp_path, None, "a", extra=extra)
    shutil.rmtree(tmp_path / "cache" / "demo-data")
    again = run_flow(tmp_path, None, "b", extra=extra)
    assert comparable(again) == comparable(first)
    assert (tmp_path / "cache" / "demo-data").is_dir()


def cli(prefect_server: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    return subprocess.Popen(
        [sys.executable, "-m", "flows", "run", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def many_movies(tmp_path_factory) -> Path:
    from tasks.demo_data import write_demo_data

    out = tmp_path_factory.mktemp("many_movies")
    write_demo_data(out, users=60, movies=700, ratings=5000, seed=5)
    return out


def test_kill_9_during_embedding_resumes_from_finished_chunks(prefect_server, tmp_path, many_movies):
    cache = tmp_path / "cache"
    proc = cli(prefect_server, "--set", f"data.dir={many_movies}", "--set", f"cache.dir={cache}",
               "--set", "embedding.chunk_size=16", "--out", str(tmp_path / "killed"))  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list((cache / "embeddings").rglob("*.parquet"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done_before = store_keys(cache)
    assert len(done_before) >= 3 * 16
    assert not (tmp_path / "killed").exists()

    resumed = run_flow(tmp_path, many_movies, "resumed", extra=["embedding.chunk_size=16"], cache_dir=cache)
    emb = resumed["embedding"]
    assert emb["texts_embedded"] == emb["texts_unique"] - len(done_before)
    assert emb["cache_hits"] == len(done_before)
    keys = store_keys(cache)
    assert len(keys) == len(set(keys)) == emb["texts_unique"]  # no text embedded twice


def test_two_concurrent_runs_on_one_cache_agree(prefect_server, tmp_path, small_csv):
    cache = tmp_path / "cache"
    procs = [
        cli(prefect_server, "--set", f"data.dir={small_csv}", "--set", f"cache.dir={cache}", "--out", str(tmp_path / name))
        for name in ("one", "two")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    one, two = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("one", "two"))
    assert comparable(one) == comparable(two)
    keys = store_keys(cache)
    assert len(keys) == len(set(keys))
    third = run_flow(tmp_path, small_csv, "three", cache_dir=cache)
    assert set(third["cached_tasks"]) == tasks_run(third) and comparable(third) == comparable(one)
