"""CPU embedding backends side by side, in one run: the notebook's loop, torch float32, torch
bfloat16 (the project's torch path), OpenVINO float32 / bfloat16 and OpenVINO int8, on the same
realistic generated overviews and titles, with each one's cosine to torch float32.

    .venv/bin/python benchmarks/embed_backends.py               # 600 overviews + 600 titles, 2 rounds
    .venv/bin/python benchmarks/embed_backends.py --texts 1000 --rounds 3

Each backend embeds the texts once to warm up, then ``--rounds`` times; the best round counts (the
machine's noise only ever slows a round down). Conversions to OpenVINO go to a temporary folder and
are timed separately ("convert s"). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def realistic_texts(n: int) -> tuple[list[str], list[str]]:
    from tasks.demo_data import generate

    movies = generate(users=5, movies=int(n * 1.1) + 10, ratings=10, seed=7)["movies"]
    return movies["overview"].dropna().tolist()[:n], movies["title"].tolist()[:n]


def best_rate(encode, texts: list[str], rounds: int) -> tuple[float, np.ndarray]:
    vectors = encode(texts)  # warm-up (and the vectors compared)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        encode(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best, vectors


def notebook_loop(source):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source.path, device="cpu")

    def encode(texts: list[str]) -> np.ndarray:  # chunks of 256 in the data's order, default batch 32, float32
        return np.vstack([model.encode(texts[i : i + 256], normalize_embeddings=True) for i in range(0, len(texts), 256)])

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=600, help="overviews, and as many titles")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from tasks.encoder import backend_identity, cpu_has_bf16, resolve_model, sentence_encoder
    from tasks.openvino_backend import openvino_encoder

    torch.set_num_threads(max(1, torch.get_num_threads()))
    source = resolve_model("all-MiniLM-L6-v2")
    overviews, titles = realistic_texts(args.texts)
    bf16 = "bfloat16" if cpu_has_bf16() else "float32"
    models = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    rows, reference = [], {}

    def run(name: str, make) -> None:
        started = time.perf_counter()
        encode = make()
        setup = time.perf_counter() - started
        row = {"backend": name, "setup s": round(setup, 1)}
        for label, texts in (("overviews", overviews), ("titles", titles)):
            rate, vectors = best_rate(encode, texts, args.rounds)
            reference.setdefault(label, vectors)  # the first row is torch float32
            cos = (vectors * reference[label]).sum(axis=1)
            row[f"{label}/s"] = round(rate, 1)
            row[f"min cos {label}"] = round(float(cos.min()), 5)
        rows.append(row)
        print(row, flush=True)

    def ov(kind: str, precision: str):
        identity = backend_identity(source.identity, kind)
        return lambda: openvino_encoder(source.path, identity, kind, models, args.batch_size, True, precision)

    run("torch float32", lambda: sentence_encoder(source, "cpu", args.batch_size, True, "float32"))
    run("notebook loop (torch float32, batch 32)", lambda: notebook_loop(source))
    run(f"torch {bf16} (project's torch path)", lambda: sentence_encoder(source, "cpu", args.batch_size, True, bf16))
    run("openvino float32", ov("openvino", "float32"))
    run(f"openvino {bf16} (auto's choice)", ov("openvino", bf16))
    run(f"openvino-int8 ({bf16} rest)", ov("openvino-int8", bf16))

    import pandas as pd

    table = pd.DataFrame(rows)
    base = table.loc[2, ["overviews/s", "titles/s"]]  # the project's torch path
    table["x torch path (overviews)"] = (table["overviews/s"] / base["overviews/s"]).round(2)
    table["x torch path (titles)"] = (table["titles/s"] / base["titles/s"]).round(2)
    print(f"\n{len(overviews)} realistic overviews, {len(titles)} titles, batch {args.batch_size}, "
          f"best of {args.rounds} rounds; setup = load (+ conversion on first use)\n")  # fmt: skip
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
