"""`movie-ratings compare`: run every combination of a grid of overrides (ablations) and put the test
figures of each variant beside the baselines, in one markdown table, one plot and an artifact.

Variants run one after the other as subflows of one `movie-ratings-compare` flow run, sharing the
cache: the embeddings of a field are computed once, whatever else the variants change.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from prefect import flow  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from configs.schema import RunConfig, apply_overrides, parse_override, validate_config  # noqa: E402
from flows.rating_flow import run_with_config  # noqa: E402
from tasks.errors import InputError  # noqa: E402
from tasks.outputs import check_out_dir, write_run_outputs  # noqa: E402
from tasks.records import PlainJSONSerializer  # noqa: E402
from tasks.plots import figure_png  # noqa: E402
from tasks.report import compact_png, data_uri, markdown_table  # noqa: E402


def split_top_level(text: str) -> list[str]:
    """'[a],[b, c],5' → ['[a]', '[b, c]', '5']: commas inside brackets or quotes do not split."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_grid(item: str) -> tuple[str, list[str]]:
    """'model.alpha=1,5,25' → ('model.alpha', ['1', '5', '25']) (each value parsed as YAML later)."""
    key, sep, values = item.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise InputError(f"--grid {item!r}: expected dotted.key=value1,value2,... e.g. model.alpha=1,5,25")
    return key.strip(), split_top_level(values)


def grid_variants(grids: list[str]) -> list[list[str]]:
    """Every combination of the grids, as lists of ``key=value`` overrides."""
    axes = [[f"{key}={value}" for value in values] for key, values in map(parse_grid, grids)]
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def variant_configs(base: dict, variants: list[list[str]], source: str) -> list[RunConfig]:
    """Validate every variant before anything runs, so a bad grid value fails at once."""
    configs = []
    for overrides in variants:
        raw = apply_overrides(copy.deepcopy(base), overrides)
        configs.append(validate_config(raw, f"{source} with {' '.join(overrides) or 'no grid'}"))
    return configs


def variant_label(overrides: list[str]) -> str:
    return ", ".join(f"{'.'.join(parse_override(o)[0])}={o.partition('=')[2]}" for o in overrides) or "base"


def comparison_rows(variants: list[list[str]], documents: list[dict]) -> list[dict]:
    rows = []
    for overrides, doc in zip(variants, documents):
        row = {"variant": variant_label(overrides), "test_rmse": doc["test_rmse"], "test_r2": doc["test_r2"],
               "test_mae": doc["test_mae"], "n_features": doc["n_features"], "alpha": doc["alpha"],
               "split": doc["split_strategy"], "texts_embedded": doc["embedding"]["texts_embedded"],
               "out_dir": doc["out_dir"]}  # fmt: skip
        for name, figures in doc["baselines"].items():
            row[f"{name}_rmse"] = figures["test_rmse"]
        rows.append(row)
    return rows


def comparison_markdown(rows: list[dict]) -> str:
    baselines = [k for k in rows[0] if k.endswith("_rmse") and k != "test_rmse"]
    head = ["variant", "split", "test RMSE", "test R²", "test MAE", "features", *[b[:-5].replace("_", " ") + " RMSE" for b in baselines]]
    cells = [
        [row["variant"], row["split"], f"{row['test_rmse']:.4f}", f"{row['test_r2']:.4f}", f"{row['test_mae']:.4f}",
         str(row["n_features"]), *[f"{row[b]:.4f}" for b in baselines]]
        for row in rows
    ]  # fmt: skip
    return markdown_table(head, cells, [False, False] + [True] * (len(head) - 2)) + "\n"


def comparison_png(rows: list[dict]) -> bytes:
    """Test RMSE and R² per variant; the baselines' RMSE as horizontal lines."""
    labels = [r["variant"] for r in rows]
    fig, (ax_rmse, ax_r2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(rows) + 2.5))
    positions = range(len(rows))
    ax_rmse.barh(positions, [r["test_rmse"] for r in rows], color="tab:blue")
    for name, style in (("global_mean_rmse", ":"), ("user_mean_rmse", "-."), ("movie_mean_rmse", "--"), ("bias_rmse", "-")):
        if name in rows[0]:
            ax_rmse.axvline(rows[0][name], color="tab:red", linestyle=style, label=name[:-5].replace("_", " "))
    lows = [r["test_rmse"] for r in rows] + [rows[0].get("bias_rmse", rows[0]["test_rmse"])]
    ax_rmse.set_xlim(min(lows) * 0.95, max(r.get("global_mean_rmse", r["test_rmse"]) for r in rows) * 1.02)
    ax_rmse.set_yticks(list(positions), labels)
    ax_rmse.invert_yaxis()  # first variant on top, as in the table
    ax_r2.invert_yaxis()
    ax_rmse.set_xlabel("test RMSE (lower is better)")
    ax_rmse.legend(fontsize=8)
    ax_r2.barh(positions, [r["test_r2"] for r in rows], color="tab:green")
    ax_r2.set_yticks(list(positions), [""] * len(rows))
    ax_r2.set_xlabel("test R²")
    fig.suptitle("Variants against the baselines (baselines of the first variant's split)")
    fig.tight_layout()
    return figure_png(fig, dpi=90)


@flow(name="movie-ratings-compare", result_serializer=PlainJSONSerializer())
def variants_dir(out: str | Path) -> Path:
    """Where each variant's own output folder goes: ``<out>-variants/<i>/``."""
    out = Path(out)
    return out.parent / f"{out.name}-variants"


def compare_flow(configs: list[RunConfig], variants: list[list[str]], out: str | None = None) -> dict:
    """Run each variant (a subflow each, sharing the cache) and write compare.md, compare.png and
    compare.json to ``out`` (default outputs/compare-<run name>/); each variant's own outputs go to
    ``<out>-variants/<i>/``."""
    out_dir = Path(out or Path("outputs") / f"compare-{flow_run.get_name() or 'run'}")
    check_out_dir(out_dir)
    for i in range(len(configs)):
        check_out_dir(variants_dir(out_dir) / str(i))
    documents = [
        run_with_config(config, str(variants_dir(out_dir) / str(i)))
        for i, config in enumerate(configs)
    ]
    rows = comparison_rows(variants, documents)
    markdown = comparison_markdown(rows)
    png = comparison_png(rows)
    write_run_outputs(
        out_dir,
        {"compare.md": markdown.encode(), "compare.png": png, "compare.json": (json.dumps(rows, indent=2) + "\n").encode()},
    )
    create_markdown_artifact(
        key="movie-ratings-compare",
        markdown="# movie-ratings: variants against the baselines\n\n" + markdown + f"\n![comparison]({data_uri(compact_png(png))})\n",
        description=f"{len(rows)} variants; outputs in {out_dir}",
    )
    return {"rows": rows, "out_dir": str(out_dir.resolve())}
