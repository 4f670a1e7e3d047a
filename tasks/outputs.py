"""The run's output folder: metrics.json, top_coefficients.csv, scatter.png, coefficients.png.

A new folder is filled under a hidden staging name and renamed into place, so a failed run leaves no
half-written output folder. An existing path is only written to when it is an empty folder or an
earlier output folder of this tool (it holds ``MARKER``), and then only the tool's own files change.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from tasks.atomic import atomic_write_bytes, probe_write, staged_folder
from tasks.errors import InputError
from tasks.results import FeatureBlocks, Figures, LoadedData, MergedRows, TrainedModel
from tasks.store import get_bytes

# Fields of metrics.json that users' scripts rely on (issue #3); more may be added, none removed.
METRIC_FIELDS = (
    "train_r2", "test_r2", "train_rmse", "test_rmse", "train_mae", "test_mae",
    "baseline_train_rmse", "baseline_test_rmse", "baseline_test_mae", "baseline_test_r2",
)  # fmt: skip


def metrics_document(
    loaded: LoadedData, merged: MergedRows, features: FeatureBlocks, trained: TrainedModel, embedding: dict,
    config: dict, seconds: dict, cached: list[str],
) -> dict[str, Any]:  # fmt: skip
    """The content of metrics.json."""
    metrics = trained.metrics
    return {
        "n_ratings": loaded.stats["n_ratings_loaded"],
        "n_ratings_used": loaded.stats["n_ratings"],
        "n_rows": merged.n_rows,
        "n_train": trained.n_train,
        "n_test": trained.n_test,
        "n_features": features.n_features,
        **{name: metrics[name] for name in METRIC_FIELDS},
        "global_mean": metrics["global_mean"],
        "intercept": metrics["intercept"],
        "alpha": metrics["alpha"],
        "solver": metrics["solver"],
        "kind": metrics["kind"],
        **{k: metrics[k] for k in ("rank", "iterations", "text_components", "text_bias") if k in metrics},
        **{k: metrics[k] for k in ("ids", "id_alpha", "cg_iterations", "cg_iterations_path") if k in metrics},
        **{k: metrics[k] for k in ("alpha_curve", "alpha_at_grid_edge") if k in metrics},
        "top_features": [{"name": t["name"], "coef": t["coef"]} for t in trained.top],
        "top_standardized": [
            {"name": t["name"], "coef": t["coef"], "std": t["std"], "standardized": t["standardized"]}
            for t in trained.rankings["standardized"]
        ],
        "top_correlation": [
            {"name": t["name"], "correlation": t["correlation"], "coef": t["coef"]}
            for t in trained.rankings["correlation"]
        ],
        "baselines": metrics["baselines"],
        "rmse_by_movie_support": metrics["rmse_by_movie_support"],
        "split_strategy": config["split"]["strategy"],
        "embedding": embedding,
        "layout": loaded.layout,
        "data": {
            "layout": loaded.layout,
            "release": loaded.release,
            "rating_scale": loaded.rating_scale,
            "rating_scale_source": loaded.scale_source,
            "user_features": loaded.user_features,
            "movie_texts": loaded.texts,
            "embedded_fields": list(embedding["fields"]),
        },
        "config": config,
        "seconds": seconds,
        "cached_tasks": cached,
    }


def run_output_files(document: dict, trained: TrainedModel, plotted: Figures) -> dict[str, bytes]:
    """The files of the output folder, name → bytes (the figures read back from the store)."""
    files = {
        "metrics.json": metrics_json(document),
        "top_coefficients.csv": top_coefficients_csv(trained.top),
        "scatter.png": get_bytes(plotted.scatter),
        "coefficients.png": get_bytes(plotted.coefficients),
    }
    if plotted.alpha_curve is not None:
        files["alpha_curve.png"] = get_bytes(plotted.alpha_curve)
    files["support.png"] = get_bytes(plotted.support)
    return files


def top_coefficients_csv(top: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "name", "coef", "abs_coef"])
    for t in top:
        writer.writerow([t["rank"], t["name"], repr(t["coef"]), repr(abs(t["coef"]))])
    return buf.getvalue().encode("utf-8")


MARKER = ".movie-ratings-output.json"  # written with the outputs: what makes a folder ours to replace


def _not_ours(out: str | os.PathLike) -> InputError:
    return InputError(f"--out {out}: exists and is not a movie-ratings output folder")


def previous_outputs(folder: Path) -> list[str] | None:
    """The files an earlier run wrote into ``folder`` (from its marker), [] for an empty folder,
    None when the folder is not recognisably ours."""
    if not any(folder.iterdir()):
        return []
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    files = marker.get("files") if isinstance(marker, dict) and marker.get("tool") == "movie-ratings" else None
    if not isinstance(files, list) or not all(isinstance(f, str) and f and "/" not in f and f not in (".", "..") for f in files):
        return None
    return files


def check_out_dir(out: str | os.PathLike) -> Path:
    """Where the outputs will go, checked before any work: an existing path must be an empty folder or
    an earlier output folder of this tool (never the user's own files), and it must be writable, or
    creatable in its nearest existing parent. Raises InputError naming ``out``."""
    path = Path(out).expanduser().absolute()
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise _not_ours(out)
        if previous_outputs(path) is None:
            raise _not_ours(out)
        probe_dir = path
    else:
        probe_dir = path.parent
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise InputError(f"--out {out}: {probe_dir} is a file, not a folder")
    try:
        probe_write(probe_dir)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write in {probe_dir} ({exc.strerror or exc})") from None
    return path


def write_run_outputs(out_dir: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Write ``files`` (name → bytes) into ``out_dir`` with a marker listing them.

    A new folder appears complete or not at all (filled under a staging name, then renamed). An
    earlier output folder of this tool keeps any file it did not write: only its own files are
    replaced (each atomically) and those it wrote last time but not now are removed. Anything else
    at ``out_dir`` is refused (``check_out_dir``). A write that fails (disk full, permissions) is an
    InputError naming the folder."""
    out = check_out_dir(out_dir).resolve()
    marker = json.dumps({"tool": "movie-ratings", "files": sorted(files)}, indent=2).encode("utf-8")
    try:
        if not out.exists():
            with staged_folder(out.parent, out.name) as staging:
                for name, data in files.items():
                    (staging / name).write_bytes(data)
                (staging / MARKER).write_bytes(marker)
                os.rename(staging, out)
            return out
        stale = set(previous_outputs(out) or []) - set(files)
        for name, data in files.items():
            atomic_write_bytes(out / name, data)
        for name in stale:
            (out / name).unlink(missing_ok=True)
        atomic_write_bytes(out / MARKER, marker)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot write the outputs ({exc.strerror or exc})") from None
    return out


def metrics_json(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False) + "\n").encode("utf-8")
