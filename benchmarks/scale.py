"""Notebook-style dense pandas path vs the project, side by side, on generated data sets.

    .venv/bin/python benchmarks/scale.py                       # profile201, ml1m, ml25m
    .venv/bin/python benchmarks/scale.py --sets profile201 ml1m
    .venv/bin/python benchmarks/scale.py --sets ml25m --work /tmp/bench-scale   # keep data + embeddings

For each set: the project's cold run embeds every text once (the per-text store is then shared by both
paths, so the fit figures are "embeddings cached"); each path then runs in a fresh process, which
reports its stage timings, test R² and peak RSS. The notebook path (``notebook_path`` below) does
what the notebook did: pandas frames with embedding lists, merge, dropna, one-hot, a dense rating x
feature frame, ``Ridge(alpha=5)``. It runs under an address-space cap (``--notebook-memory-gb``); for
the 25M set it is not run and the memory its matrix alone would need is reported. Embedding speed is
compared on the same texts: the notebook's loop (chunks of 256, default batch, float32) against the
project's (distinct texts, sorted by length, bfloat16 where native). With ``--work DIR`` the generated
data and the per-text store stay in DIR/<set>/ for the next run: the data is generated only once and
the "cold" run finds its texts already embedded (the timed project run always gets a fresh cache).

First, unless ``--no-cold-1m``: the cold ML-1M-size run as a user runs it, the command
``movie-ratings run --config configs/ml-1m.yaml --set data.dir=<generated ml-1m layout> --set
cache.dir=<empty folder>`` in a subprocess (temporary Prefect server, model load and every text
embedded included): its wall time, peak RSS (``os.wait4``: the command's process and the processes
it waited for) and texts/s from its metrics.json. Its figures are printed beside the stage table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETS = {
    "profile201": {"users": 600, "movies": 400, "ratings": 40_000, "movies_limit": 201},
    "ml1m": {"users": 6_040, "movies": 3_900, "ratings": 1_000_209, "movies_limit": None},
    # MovieLens 25M's own layout: ratings.csv with userId/movieId, half stars, no user table, tags
    "ml25m": {"users": 162_000, "movies": 62_000, "ratings": 25_000_000, "movies_limit": None, "layout": "ml-25m"},
}
EMBED_SAMPLE = 2_000  # texts for the embedding speed comparison


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB


# ---------------------------------------------------------------- workers (run in fresh processes)


def project_path(data_dir: str, cache_dir: str, movies_limit: int | None) -> dict:
    """The real flow with every text already in the per-text store (a fresh Prefect result store)."""
    from prefect import flow

    from configs.schema import load_config
    from flows.rating_flow import run_with_config

    @flow
    def warm_up() -> None:
        return None

    warm_up()  # Prefect's ephemeral server starts outside the timed run
    overrides = [f"data.dir={data_dir}", f"cache.dir={cache_dir}", f"data.movies_limit={movies_limit or 'null'}"]
    cfg = load_config(overrides=overrides)
    started = time.perf_counter()
    doc = run_with_config(cfg, str(Path(cache_dir) / "out"))
    seconds = doc["seconds"]
    fields = doc["embedding"]["fields"]
    return {
        "layout": doc["layout"],
        "fields": "+".join(fields),
        "load s": seconds["load"],
        "split s": seconds["split"],
        "embed s (cached)": round(sum(seconds[f"embed_{f}"] for f in fields), 3),
        "merge+features s": round(seconds["merge"] + seconds["features"], 3),
        "fit+evaluate s": seconds["train"],
        "plots s": seconds["plots"],
        "embedding s (new texts)": round(sum(f["seconds"] for f in fields.values()), 3),
        "total s": round(time.perf_counter() - started, 2),
        "texts embedded": doc["embedding"]["texts_embedded"],
        "test R2": round(doc["test_r2"], 4),
        "rows": doc["n_rows"],
        "features": doc["n_features"],
    }


def stored_vectors(cache_dir: str) -> dict[str, "object"]:
    """Every vector of the per-text store, by key (what the notebook would have computed)."""
    import pyarrow.parquet as pq

    vectors = {}
    for path in (Path(cache_dir) / "embeddings").rglob("*.parquet"):
        table = pq.read_table(path)
        for key, vector in zip(table.column("key").to_pylist(), table.column("vector").to_pylist()):
            vectors[key] = vector
    return vectors


def notebook_path(data_dir: str, cache_dir: str, movies_limit: int | None) -> dict:
    """The notebook's way, embeddings looked up instead of recomputed."""
    import pandas as pd
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import train_test_split

    from tasks.vector_store import text_key
    from tasks.encoder import resolve_model

    identity = resolve_model("all-MiniLM-L6-v2").identity
    vectors = stored_vectors(cache_dir)
    stages = {}
    t = time.perf_counter()
    ratings_path = Path(data_dir) / "ratings.csv"
    ratings = pd.read_csv(ratings_path) if ratings_path.exists() else pd.read_parquet(Path(data_dir) / "ratings.parquet")
    users = pd.read_csv(Path(data_dir) / "users.csv")
    movies = pd.read_csv(Path(data_dir) / "movies.csv")
    if movies_limit:
        movies = movies.loc[: movies_limit - 1]
    stages["load s"] = time.perf_counter() - t

    t = time.perf_counter()
    for field in ("title", "overview"):  # the notebook's per-movie embedding lists
        movies[f"{field}_embedding"] = [
            vectors.get(text_key(identity, text.strip())) if isinstance(text, str) and text.strip() else None
            for text in movies[field]
        ]
    stages["embed s (cached)"] = time.perf_counter() - t

    t = time.perf_counter()
    df = ratings.merge(users, on="user_id").merge(movies, on="movie_id")
    df = df.dropna(subset=["title_embedding", "overview_embedding"]).reset_index(drop=True)
    onehot = pd.get_dummies(df[["gender", "occupation"]], dtype=float)
    title = pd.DataFrame(df["title_embedding"].tolist()).add_prefix("title_embedding_")
    overview = pd.DataFrame(df["overview_embedding"].tolist()).add_prefix("overview_embedding_")
    X = pd.concat([df[["age"]], onehot, title, overview], axis=1)
    y = df["rating"]
    stages["merge+features s"] = time.perf_counter() - t

    t = time.perf_counter()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    model = Ridge(alpha=5.0).fit(X_train, y_train)
    test_r2 = model.score(X_test, y_test)
    stages["fit+evaluate s"] = time.perf_counter() - t
    return {
        **{k: round(v, 3) for k, v in stages.items()},
        "total s": round(sum(stages.values()), 2),
        "test R2": round(test_r2, 4),
        "rows": len(df),
        "features": X.shape[1],
    }


def embedding_speed(data_dir: str) -> dict:
    """texts/s of the notebook's embedding loop and of the project's, on the same texts and model."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from tasks.encoder import pick_precision, resolve_model, sentence_encoder

    from tasks.load import load_dataset

    movies = load_dataset(data_dir).movies  # any layout; overviews, else tags, then titles
    longest = "overview" if movies["overview"].notna().any() else "tags"
    texts = [t for t in (movies[longest].tolist() + movies["title"].tolist()) if isinstance(t, str) and t][:EMBED_SAMPLE]
    source = resolve_model("all-MiniLM-L6-v2")
    model = SentenceTransformer(source.path, device="cpu")
    model.encode(texts[:32])  # warm-up
    t = time.perf_counter()
    for start in range(0, len(texts), 256):
        model.encode(texts[start : start + 256], normalize_embeddings=True)
    notebook = len(texts) / (time.perf_counter() - t)
    precision = pick_precision("auto", "cpu")
    encode = sentence_encoder(source, "cpu", batch_size=64, normalize=True, precision=precision)
    encode(texts[:32])
    t = time.perf_counter()
    distinct = sorted(set(texts), key=len)
    out = [encode(distinct[s : s + 256]) for s in range(0, len(distinct), 256)]
    np.vstack(out)
    project = len(texts) / (time.perf_counter() - t)
    return {"texts": len(texts), "distinct": len(distinct), "precision": precision,
            "notebook texts/s": round(notebook, 1), "project texts/s": round(project, 1)}  # fmt: skip


# ---------------------------------------------------------------- orchestration


def run_worker(kind: str, data_dir: Path, cache_dir: Path, movies_limit: int | None, memory_gb: float | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, str(data_dir), str(cache_dir), str(movies_limit or 0)]
    if memory_gb:
        cmd += ["--memory-gb", str(memory_gb)]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0][:120]}
    return json.loads(lines[-1])


def prepare(name: str, size: dict, work: Path) -> tuple[Path, Path, dict]:
    from tasks.demo_data import write_demo_data

    data_dir, cache_dir = work / name / "data", work / name / "embeddings-cache"
    t = time.perf_counter()
    done = data_dir / ".generated"  # written last: a half-written set is generated again
    if not done.exists():
        write_demo_data(data_dir, users=size["users"], movies=size["movies"], ratings=size["ratings"], seed=0,
                        layout=size.get("layout", "csv"))  # fmt: skip
        done.touch()
    generated = time.perf_counter() - t
    cold = run_worker("project", data_dir, cache_dir, size["movies_limit"], None)  # embeds every text
    print(f"[{name}] generated in {generated:.1f} s; cold project run: {cold}", flush=True)
    return data_dir, cache_dir, cold


def cold_cli_run(work: Path) -> dict:
    """``movie-ratings run --config configs/ml-1m.yaml`` on a generated ML-1M-layout set with an
    empty cache, as a subprocess: wall, peak RSS and embedding speed (see the module docstring)."""
    from tasks.demo_data import write_demo_data

    size = SETS["ml1m"]
    data_dir = work / "ml1m-cold" / "data"
    done = data_dir / ".generated"
    if not done.exists():
        write_demo_data(data_dir, users=size["users"], movies=size["movies"], ratings=size["ratings"], seed=0, layout="ml-1m")
        done.touch()
    cache_dir, out_dir = work / "ml1m-cold" / "cache", work / "ml1m-cold" / "out"
    for folder in (cache_dir, out_dir):
        shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, "-m", "flows", "run", "--config", str(REPO / "configs" / "ml-1m.yaml"),
           "--set", f"data.dir={data_dir}", "--set", f"cache.dir={cache_dir}", "--out", str(out_dir)]  # fmt: skip
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()  # drained while it runs: a full pipe would block the command
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": (stderr.strip().splitlines() or ["?"])[-1][:120]}
    doc = json.loads((out_dir / "metrics.json").read_text())
    emb = doc["embedding"]
    return {
        "command": " ".join(["movie-ratings", *cmd[3:]]),
        "wall s": round(wall, 2),
        "peak RSS GB": round(usage.ru_maxrss / 1e6, 2),  # Linux: KiB
        "texts embedded": emb["texts_embedded"],
        "texts/s": emb["texts_per_second"],
        "backend": emb["backend"],
        "flow body s": doc["seconds"]["flow_body"],
        "test R2": round(doc["test_r2"], 4),
        "rows": doc["n_rows"],
    }


def fresh_cache_with(embeddings_from: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    (into / "embeddings").symlink_to(embeddings_from / "embeddings")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--notebook-memory-gb", type=float, default=18.0)
    parser.add_argument("--work", type=Path, help="keep generated data and embeddings here between runs")
    parser.add_argument("--no-cold-1m", dest="cold_1m", action="store_false",
                        help="skip the cold ML-1M-size run of the `movie-ratings run` command")  # fmt: skip
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "DATA", "CACHE", "LIMIT"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-gb", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, data_dir, cache_dir, limit = args.worker
        if args.memory_gb:
            cap = int(args.memory_gb * 1e9)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            worker = {"project": project_path, "notebook": notebook_path}[kind]
            result = worker(data_dir, cache_dir, int(limit) or None)
        except MemoryError:
            result = {"error": f"MemoryError under a {args.memory_gb:g} GB cap"}
        print(json.dumps({**result, "peak RSS GB": round(peak_rss_gb(), 2)}), flush=True)
        return

    rows, speeds, cold_1m = [], [], None
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = args.work or Path(tmp)
        if args.cold_1m:
            cold_1m = cold_cli_run(work)
            print(f"[ml1m cold command] {cold_1m}", flush=True)
        for name in args.sets:
            size = SETS[name]
            data_dir, cache_dir, cold = prepare(name, size, work)
            project = run_worker("project", data_dir, fresh_cache_with(cache_dir, work / name / "p"), size["movies_limit"], None)
            if name == "ml25m":
                d = project.get("features", 793)
                need = project.get("rows", size["ratings"]) * d * 8 / 1e9
                notebook = {"error": f"not run: its float64 matrix alone needs {need:.0f} GB"}
            else:
                notebook = run_worker("notebook", data_dir, cache_dir, size["movies_limit"], args.notebook_memory_gb)
            for path, result in (("notebook", notebook), ("project", project)):
                rows.append({"set": name, "ratings": size["ratings"], "path": path, **result})
            if "total s" in notebook and "total s" in project:
                rows.append({"set": name, "path": "project / notebook",
                             **{k: round(project[k] / notebook[k], 3) for k in project
                                if k.endswith(" s") and k in notebook and notebook[k]},
                             "peak RSS GB": round(project["peak RSS GB"] / notebook["peak RSS GB"], 3)})  # fmt: skip
            speeds.append({"set": name, "cold embedding s": cold.get("embedding s (new texts)"),
                           "texts embedded": cold.get("texts embedded"), **embedding_speed(str(data_dir))})  # fmt: skip
            if not args.work:
                shutil.rmtree(work / name, ignore_errors=True)

    import pandas as pd

    if cold_1m is not None:
        print("\nCold ML-1M-size run, as a user runs it (empty cache: model load and every text embedded):")
        print(f"  {cold_1m.pop('command', '')}")
        print("  " + pd.DataFrame([cold_1m]).to_string(index=False, na_rep="").replace("\n", "\n  "))
    columns = ["set", "ratings", "path", "layout", "fields", "load s", "embed s (cached)", "merge+features s", "split s",
               "fit+evaluate s", "plots s", "total s", "peak RSS GB", "test R2", "rows", "features", "error"]  # fmt: skip
    table = pd.DataFrame(rows)
    print("\nEmbeddings cached (each path in a fresh process):")
    print(table[[c for c in columns if c in table.columns]].to_string(index=False, na_rep=""))
    speed = pd.DataFrame(speeds)
    speed["speed-up"] = (speed["project texts/s"] / speed["notebook texts/s"]).round(2)
    print("\n" + speed.to_string(index=False))


if __name__ == "__main__":
    main()
