"""The distributed path without a shared disk: a real S3-compatible server (moto), `dask scheduler`
and two `dask worker` processes, each in its own empty folder with its own HOME, and the demo flow
run by the CLI with cache.dir=s3://…. Checked: the same metrics as a local run; nothing written under
the workers' or the flow's own folders; a second run entirely from the bucket; a damaged object in
the bucket detected and recomputed."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, start, stop, wait_for_port

BIN = Path(sys.executable).parent
# What a machine of the cluster has: the installed package, PATH, a locale. Nothing of this test's
# environment (no PREFECT_*, no MOVIE_RATINGS_MODELS_DIR shared folder of converted models).
BASE_ENV = {"PATH": os.environ["PATH"], "LANG": os.environ.get("LANG", "C.UTF-8"), "TOKENIZERS_PARALLELISM": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TQDM_DISABLE": "1"}  # fmt: skip
STAGE_LABELS = {"load": "load", "merge": "merge", "features": "features", "split": "split", "train": "train",
                "embed": "embed_overview"}  # the stage a log line names → its label in cached_tasks
VOLATILE = ("seconds", "cached_tasks", "embedding", "out_dir", "config")


def files_under(folder: Path, allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        name for name in (str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if not name.startswith(allowed)
    )  # fmt: skip


def same_numbers(a, b, path: str = "") -> list[str]:
    """Where two JSON documents differ: numbers by more than 1e-9, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in same_numbers(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same_numbers(x, y, f"{path}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture
def cluster(tmp_path, s3_server):
    """A scheduler and two workers on 127.0.0.1, each process in its own empty folder and HOME, with
    only the store's credentials and endpoint in its environment. Yields (address, {name: folder})."""
    port = free_port()
    folders = {name: tmp_path / name for name in ("scheduler", "worker-1", "worker-2")}
    procs = []
    try:
        for name, folder in folders.items():
            (folder / "home").mkdir(parents=True)
            env = {**BASE_ENV, **s3_server.env, "HOME": str(folder / "home")}
            if name == "scheduler":
                args = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
            else:
                args = [str(BIN / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--no-dashboard",
                        "--name", name]  # fmt: skip
            procs.append(start(args, env, tmp_path / f"{name}.log", cwd=folder))
            if name == "scheduler":
                wait_for_port(port, procs[0], tmp_path / "scheduler.log")
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield f"tcp://127.0.0.1:{port}", folders
    finally:
        for proc in reversed(procs):
            stop(proc)


def cli_run(tmp_path: Path, name: str, env: dict, *sets: str) -> tuple[dict, str]:
    """`movie-ratings run` (the demo profile) from an empty folder with its own HOME; (metrics, log)."""
    folder = tmp_path / f"flow-{name}"
    (folder / "home").mkdir(parents=True)
    env = {**BASE_ENV, **env, "HOME": str(folder / "home"), "PREFECT_HOME": str(tmp_path / f"prefect-{name}")}
    args = [str(BIN / "movie-ratings"), "run", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path / "out" / name)]
    proc = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # The flow draws its figures: matplotlib keeps its font list in ~/.cache/matplotlib, as in any
    # program that plots. Nothing else may appear.
    assert files_under(folder, ("home/.cache/matplotlib/",)) == [], f"the flow wrote into its folders: {files_under(folder)}"
    return json.loads((tmp_path / "out" / name / "metrics.json").read_text()), proc.stderr


def test_demo_flow_on_dask_workers_that_share_no_disk_with_the_store_on_s3(tmp_path, s3_server, cluster):
    address, folders = cluster
    local, _ = cli_run(tmp_path, "local", {}, f"cache.dir={tmp_path / 'local-cache'}")

    bucket = s3_server.bucket()
    store = f"{bucket}/movie-ratings"
    remote_sets = ("runner.kind=dask", f"runner.address={address}", f"cache.dir={store}")
    first, _ = cli_run(tmp_path, "first", s3_server.env, *remote_sets)
    assert first["embedding"]["texts_embedded"] == local["embedding"]["texts_embedded"] > 0
    differences = same_numbers({k: v for k, v in first.items() if k not in VOLATILE},
                               {k: v for k, v in local.items() if k not in VOLATILE})  # fmt: skip
    assert differences == []
    for name, folder in folders.items():
        assert files_under(folder) == [], f"{name} wrote into its own folders: {files_under(folder)}"

    fs = s3_server.filesystem()
    keys = fs.find(store.removeprefix("s3://"))
    prefixes = {k.removeprefix(store.removeprefix("s3://") + "/").split("/")[0] for k in keys}
    assert {"objects", "embeddings", "prefect-results", "models"} <= prefixes  # everything went to the bucket
    assert not any(k.endswith(".tmp") for k in keys)

    second, _ = cli_run(tmp_path, "second", s3_server.env, *remote_sets)
    assert set(second["cached_tasks"]) == set(second["seconds"]) - {"flow_body"}  # every stage from the bucket
    assert second["embedding"]["texts_embedded"] == 0
    assert same_numbers({k: v for k, v in second.items() if k not in VOLATILE},
                        {k: v for k, v in first.items() if k not in VOLATILE}) == []  # fmt: skip

    # Damage the largest table in the bucket: the stage that made it finds out, runs again, repairs it.
    objects = [k for k in keys if "/objects/" in k and k.endswith(".parquet")]
    damaged = max(objects, key=lambda k: fs.info(k)["size"])
    data = bytearray(fs.cat_file(damaged))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(damaged, bytes(data))
    third, log = cli_run(tmp_path, "third", s3_server.env, *remote_sets)
    found = re.findall(r"- (\S+): cached result unusable \(([^)]*)\)", log)
    assert len(found) == 1 and found[0][1] == f"s3://{damaged} does not match its sha256", log[-3000:]
    stage = found[0][0]
    assert stage in STAGE_LABELS and STAGE_LABELS[stage] not in third["cached_tasks"]
    assert set(third["cached_tasks"]) == set(second["cached_tasks"]) - {STAGE_LABELS[stage]}
    assert same_numbers({k: v for k, v in third.items() if k not in VOLATILE},
                        {k: v for k, v in first.items() if k not in VOLATILE}) == []  # fmt: skip
    import hashlib

    assert hashlib.sha256(fs.cat_file(damaged)).hexdigest() == damaged.rsplit("/", 1)[1].split(".")[0]  # repaired

    # The plain Ridge's per-partition sums (row-stats tasks) on the workers, reading and writing the bucket.
    ridge = ("model.ids=[]", "model.solver=factorized", "runner.partitions=3")
    local_ridge, _ = cli_run(tmp_path, "local-ridge", {}, f"cache.dir={tmp_path / 'local-cache'}", *ridge)
    remote_ridge, _ = cli_run(tmp_path, "remote-ridge", s3_server.env, *remote_sets, *ridge)
    assert remote_ridge["solver"] == "factorized" and "gram" in remote_ridge["seconds"]
    assert "gram" not in remote_ridge["cached_tasks"] and "embed_title" in remote_ridge["cached_tasks"]
    assert same_numbers({k: v for k, v in remote_ridge.items() if k not in VOLATILE},
                        {k: v for k, v in local_ridge.items() if k not in VOLATILE}) == []  # fmt: skip
    for name, folder in folders.items():
        assert files_under(folder) == [], f"{name} wrote into its own folders: {files_under(folder)}"
