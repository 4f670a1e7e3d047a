"""What the cache saves: cold run, warm rerun, alpha change, one edited overview — seconds and texts embedded.

    .venv/bin/python benchmarks/cache.py            # demo profile + a larger generated set
    .venv/bin/python benchmarks/cache.py --sets demo

Runs the real flow in-process (Prefect's ephemeral server, started once before timing; the model is
loaded by the first cold run, so the demo set's cold run includes importing torch and loading it).
"flow call s" is the wall time of the flow call, Prefect's run bookkeeping included (~0.8 s, most of
it joining the heartbeat thread at the end); "flow body s" is the flow function's own work up to the
outputs (metrics.json `seconds.flow_body`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.schema import load_config  # noqa: E402
from tasks.demo_data import write_demo_data  # noqa: E402

SETS = {
    "demo": {"users": 600, "movies": 400, "ratings": 40_000},
    "large": {"users": 3_000, "movies": 3_000, "ratings": 300_000},
}


def run(data_dir: Path, cache_dir: Path, out: Path, *overrides: str) -> tuple[float, dict]:
    from flows.rating_flow import run_with_config

    cfg = load_config(overrides=[f"data.dir={data_dir}", f"cache.dir={cache_dir}", *overrides])
    started = time.perf_counter()
    doc = run_with_config(cfg, str(out))
    return time.perf_counter() - started, doc


def edit_one_overview(data_dir: Path) -> None:
    movies = pd.read_csv(data_dir / "movies.csv", dtype=str, keep_default_na=False)
    row = movies.index[movies["overview"] != ""][0]
    movies.loc[row, "overview"] += " An unexpected twist changes everything."
    movies.to_csv(data_dir / "movies.csv", index=False)


def bench_set(name: str, size: dict, work: Path) -> list[dict]:
    from tasks.encoder import forget_models

    data_dir, cache_dir = work / name / "data", work / name / "cache"
    write_demo_data(data_dir, seed=0, **size)
    forget_models()  # each set's cold run loads the model itself
    rows = []
    for scenario, overrides, prepare in (
        ("cold", (), None),
        ("warm rerun", (), None),
        ("alpha change", ("model.alpha=2",), None),
        ("one overview edited", ("model.alpha=2",), edit_one_overview),
    ):
        if prepare:
            prepare(data_dir)
        seconds, doc = run(data_dir, cache_dir, work / name / "out" / scenario.replace(" ", "-"), *overrides)
        rows.append(
            {
                "set": name,
                "ratings": size["ratings"],
                "movies": size["movies"],
                "scenario": scenario,
                "flow call s": round(seconds, 2),
                "flow body s": doc["seconds"]["flow_body"],
                "texts embedded": doc["embedding"]["texts_embedded"],
                "cache hits": doc["embedding"]["cache_hits"],
                "cached tasks": len(doc["cached_tasks"]),
            }
        )
        print(rows[-1], flush=True)
    cold = rows[0]["flow body s"]
    for row in rows:
        row["body % of cold"] = round(100 * row["flow body s"] / cold, 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from prefect import flow

    @flow
    def warm_up() -> None:  # starts the ephemeral server outside the timed runs
        return None

    warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        rows = [row for name in args.sets for row in bench_set(name, SETS[name], Path(tmp))]
    print()
    print(pd.DataFrame(rows).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(rows).to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
