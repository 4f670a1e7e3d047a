"""Model quality on an ML-1M-size generated set: the baselines, the Ridge, the hybrid, the FM with and
without text, and a plain Bayesian FM on ids only (myFM, the classic MovieLens recipe), on a random
and a movie (cold start) split.

    .venv/bin/python benchmarks/quality.py                     # 6,040 users, 3,900 movies, 1,000,209 ratings
    .venv/bin/python benchmarks/quality.py --ratings 200000    # quicker

Each project variant runs the real flow in a fresh process (the embeddings are computed once, by the
first variant, and shared through the per-text store); the table gives its test RMSE, the train
stage's seconds (fit + evaluate, baselines included) and the process's peak RSS. The ids-only FM is
fitted here directly with myFM on the same rows and split. Figures are on generated data: see
docs/quality.md for what they mean and the MovieLens-1M command.
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

VARIANTS = {
    "ridge (alpha by validation)": ["model.ids=[]"],
    "hybrid (user+movie ids)": ["model.ids=[user_id,movie_id]"],
    "fm, 16 text PCs (default)": ["model.kind=fm"],
    "fm, 32 text PCs": ["model.kind=fm", "model.text_components=32"],
    "fm, learned text column instead": ["model.kind=fm", "model.text_bias=true", "model.text_components=0"],
    "fm, no text": ["model.kind=fm", "model.text_components=0"],
}


def run_variant(data_dir: Path, cache: Path, out: Path, split: str, overrides: list[str]) -> tuple[dict, float]:
    """One flow run in a fresh process under /usr/bin/time; (metrics.json, peak RSS GB)."""
    args = ["--set", f"data.dir={data_dir}", "--set", f"cache.dir={cache}", "--set", f"split.strategy={split}"]
    for item in overrides:
        args += ["--set", item]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "flows", "run", "--config", "ml-1m", *args, "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"variant failed: {' '.join(overrides)}\n{proc.stderr[-3000:]}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return json.loads((out / "metrics.json").read_text()), peak_kb / 1e6


def ids_only_fm(data_dir: Path, split: str, rank: int, iterations: int) -> tuple[float, float]:
    """myFM on one-hot user and movie ids only, same rows (all movies have texts here) and split."""
    import numpy as np
    import scipy.sparse as sp

    from tasks.fm import _myfm
    from tasks.load import load_dataset
    from tasks.splits import split_positions

    ds = load_dataset(data_dir)
    users = {u: i for i, u in enumerate(ds.users["user_id"])}
    movies = {m: i for i, m in enumerate(ds.movies["movie_id"])}
    u = ds.ratings["user_id"].map(users).to_numpy()
    m = ds.ratings["movie_id"].map(movies).to_numpy()
    y = ds.ratings["rating"].to_numpy(np.float64)
    keep = ds.movies["overview"].notna().to_numpy()[m]  # the flow drops movies without an overview
    u, m, y = u[keep], m[keep], y[keep]
    train, test = split_positions(split, u, m, None, 0.2, 42)
    myfm = _myfm()
    user_rows, movie_rows = sp.identity(len(users), format="csr"), sp.identity(len(movies), format="csr")

    def blocks(rows):
        return [myfm.RelationBlock(u[rows], user_rows), myfm.RelationBlock(m[rows], movie_rows)]

    started = time.perf_counter()
    model = myfm.MyFMRegressor(rank=rank, random_seed=0)
    model.fit(None, y[train], X_rel=blocks(train), n_iter=iterations, n_kept_samples=iterations - min(iterations // 5, 50))
    pred = np.clip(model.predict(None, blocks(test)), 1, 5)
    return float(np.sqrt(np.mean((pred - y[test]) ** 2))), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6_040)
    parser.add_argument("--movies", type=int, default=3_900)
    parser.add_argument("--ratings", type=int, default=1_000_209)
    parser.add_argument("--splits", default="random,movie")
    args = parser.parse_args()
    from tasks.demo_data import write_demo_data

    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        data = work / "data"
        write_demo_data(data, users=args.users, movies=args.movies, ratings=args.ratings, seed=0, layout="ml-1m")
        rows = []
        for split in args.splits.split(","):
            for name, overrides in VARIANTS.items():
                started = time.perf_counter()
                doc, peak = run_variant(data, work / "cache", work / "out" / f"{split}-{len(rows)}", split, overrides)
                if not rows or rows[-1]["split"] != split:
                    for baseline, figures in doc["baselines"].items():
                        rows.append({"split": split, "model": f"baseline: {baseline.replace('_', ' ')}",
                                     "test RMSE": figures["test_rmse"], "fit s": None, "peak GB": None})  # fmt: skip
                rows.append({"split": split, "model": name, "test RMSE": doc["test_rmse"],
                             "fit s": doc["seconds"]["train"], "peak GB": peak,
                             "alpha": doc.get("alpha"), "wall s": time.perf_counter() - started})  # fmt: skip
                print(f"{split:7} {name:32} RMSE {doc['test_rmse']:.4f}  train {doc['seconds']['train']:.1f} s  peak {peak:.2f} GB", flush=True)
            rmse, seconds = ids_only_fm(data, split, rank=10, iterations=200)
            rows.append({"split": split, "model": "myFM ids only (rank 10, 200 it.)", "test RMSE": rmse, "fit s": seconds, "peak GB": None})
            print(f"{split:7} {'myFM ids only':32} RMSE {rmse:.4f}  fit {seconds:.1f} s", flush=True)
    print()
    print("| split | model | test RMSE | fit + evaluate s | peak RSS GB |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row in rows:
        fit = "" if row["fit s"] is None else f"{row['fit s']:.1f}"
        peak = "" if row["peak GB"] is None else f"{row['peak GB']:.2f}"
        print(f"| {row['split']} | {row['model']} | {row['test RMSE']:.4f} | {fit} | {peak} |")


if __name__ == "__main__":
    main()
