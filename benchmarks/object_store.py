"""The object store's cost: the same runs with cache.dir on the local disk and on S3 (moto's server
on 127.0.0.1, started here), cold (empty store) and warm (a rerun), through the CLI as a user runs it.

    .venv/bin/python benchmarks/object_store.py                 # demo profile + an ML-1M-size set
    .venv/bin/python benchmarks/object_store.py --sets demo

moto is an in-memory S3 written in Python on this machine: no network latency, but its request
handling takes CPU from the run. A real bucket adds per-request latency (tens of ms) instead; the
request counts stay what they are here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.processes import free_port, start, stop, wait_for_port  # noqa: E402

BIN = Path(sys.executable).parent
SETS = {
    "demo": {"config": None, "data": None},
    "ml1m": {"config": "configs/ml-1m.yaml", "data": {"users": 6_040, "movies": 3_900, "ratings": 1_000_209}},
}


def run_cli(sets: list[str], config: str | None, env: dict, out: Path) -> tuple[float, dict]:
    args = [str(BIN / "movie-ratings"), "run", *(["--config", config] if config else [])]
    args += [a for s in sets for a in ("--set", s)] + ["--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-object-store-"))
    port = free_port()
    moto = start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), work / "moto.log", cwd=work)
    s3_env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
              "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MOVIE_RATINGS_MODELS_DIR"}
    env.update(s3_env, TQDM_DISABLE="1", PREFECT_HOME=str(work / "prefect"))
    rows = []
    try:
        wait_for_port(port, moto, work / "moto.log")
        import s3fs

        fs = s3fs.S3FileSystem(key="bench", secret="bench", client_kwargs={"endpoint_url": s3_env["AWS_ENDPOINT_URL"]})
        fs.mkdir("bench")
        for name in args.sets:
            spec = SETS[name]
            sets = []
            if spec["data"]:
                from tasks.demo_data import write_demo_data

                data = work / name / "data"
                write_demo_data(data, layout="ml-1m", seed=0, **spec["data"])
                sets.append(f"data.dir={data}")
            for store, cache in (("local disk", str(work / name / "cache")), ("S3 (moto)", f"s3://bench/{name}")):
                for phase in ("cold", "warm"):
                    wall, doc = run_cli([*sets, f"cache.dir={cache}"], spec["config"], env, work / name / "out" / f"{store}-{phase}")
                    objects = len(fs.find(f"bench/{name}")) if cache.startswith("s3://") else None
                    rows.append((name, store, phase, wall, doc["seconds"]["flow_body"], doc["embedding"]["texts_embedded"],
                                 len(doc["cached_tasks"]), objects, doc["test_rmse"]))  # fmt: skip
                    print(f"{name:5} {store:11} {phase:5} wall {wall:6.1f} s  flow body {rows[-1][4]:6.2f} s", flush=True)
    finally:
        stop(moto)
    print()
    print("| set | store | run | wall s | flow body s | texts embedded | cached stages | objects in bucket | test RMSE |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, store, phase, wall, body, embedded, cached, objects, rmse in rows:
        print(f"| {name} | {store} | {phase} | {wall:.1f} | {body:.2f} | {embedded} | {cached} | {objects if objects is not None else ''} | {rmse:.6f} |")


if __name__ == "__main__":
    main()
