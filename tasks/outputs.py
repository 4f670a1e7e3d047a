"""The run's output folder: metrics.json, top_coefficients.csv, scatter.png, coefficients.png.

Everything is written into a hidden staging folder beside the target and renamed into place at the
end, so a failed run leaves no half-written output folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Fields of metrics.json that users' scripts rely on (issue #3); more may be added, none removed.
METRIC_FIELDS = (
    "train_r2", "test_r2", "train_rmse", "test_rmse", "train_mae", "test_mae",
    "baseline_train_rmse", "baseline_test_rmse", "baseline_test_mae", "baseline_test_r2",
)  # fmt: skip


def metrics_document(
    loaded: dict, merged: dict, features: dict, trained: dict, embedding: dict, config: dict, seconds: dict
) -> dict[str, Any]:
    """The content of metrics.json."""
    metrics = trained["metrics"]
    return {
        "n_ratings": loaded["stats"]["n_ratings_loaded"],
        "n_ratings_used": loaded["stats"]["n_ratings"],
        "n_rows": merged["n_rows"],
        "n_train": trained["n_train"],
        "n_test": trained["n_test"],
        "n_features": features["n_features"],
        **{name: metrics[name] for name in METRIC_FIELDS},
        "global_mean": metrics["global_mean"],
        "intercept": metrics["intercept"],
        "alpha": metrics["alpha"],
        "solver": metrics["solver"],
        **{k: metrics[k] for k in ("ids", "id_alpha", "cg_iterations") if k in metrics},
        **({"alpha_curve": metrics["alpha_curve"]} if "alpha_curve" in metrics else {}),
        "top_features": [{"name": t["name"], "coef": t["coef"]} for t in trained["top"]],
        "top_standardized": [
            {"name": t["name"], "coef": t["coef"], "std": t["std"], "standardized": t["standardized"]}
            for t in trained["rankings"]["standardized"]
        ],
        "top_correlation": [
            {"name": t["name"], "correlation": t["correlation"], "coef": t["coef"]}
            for t in trained["rankings"]["correlation"]
        ],
        "baselines": metrics["baselines"],
        "split_strategy": config["split"]["strategy"],
        "embedding": embedding,
        "layout": loaded["layout"],
        "config": config,
        "seconds": seconds,
    }


def top_coefficients_csv(top: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "name", "coef", "abs_coef"])
    for t in top:
        writer.writerow([t["rank"], t["name"], repr(t["coef"]), repr(abs(t["coef"]))])
    return buf.getvalue().encode("utf-8")


def write_run_outputs(out_dir: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Write ``files`` (name → bytes) as the folder ``out_dir``, replacing an older one, atomically."""
    out = Path(out_dir).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the output folder is meant to be shared
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def metrics_json(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False) + "\n").encode("utf-8")
