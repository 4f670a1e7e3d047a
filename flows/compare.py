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


SHOWN_BY_MODEL_NAME = {"model.kind", "model.ids", "model.text_components", "model.text_bias", "embedding.fields",
                       "split.strategy"}  # fmt: skip


def model_name(config: RunConfig, overrides: list[str]) -> str:
    """What a reader needs to tell variants apart: 'hybrid (user+movie ids), title+overview',
    'fm, learned text column, title', 'ridge, title+overview, model.alpha=3' (other overrides as
    written; the split has its own column)."""
    model = config.model
    if model.kind == "fm":
        from tasks.report import fm_text

        name = f"fm, {fm_text({'text_bias': model.text_bias, 'text_components': model.text_components})}"
    elif model.ids:
        name = f"hybrid ({'+'.join(i.removesuffix('_id') for i in model.ids)} ids)"
    else:
        name = "ridge"
    parts = [name, "+".join(config.embedding.fields) or "no text"]
    parts += [f"{'.'.join(parse_override(o)[0])}={o.partition('=')[2]}" for o in overrides
              if '.'.join(parse_override(o)[0]) not in SHOWN_BY_MODEL_NAME]  # fmt: skip
    return ", ".join(parts)


def folder_names(variants: list[list[str]]) -> list[str]:
    """A folder name per variant from its overrides: 'strategy-movie_kind-fm', 'ids-none',
    'fields-title+overview'; 'base' without overrides; '-2', '-3' … when two would clash."""
    names, seen = [], {}
    for overrides in variants:
        parts = []
        for item in overrides:
            key, value = parse_override(item)[0][-1], item.partition("=")[2].strip()
            value = value.strip("[]").replace(", ", "+").replace(",", "+") or "none"
            value = "".join(c for c in value if c.isalnum() or c in "._+-")
            while ".." in value:  # one path component, nothing that reads like a parent folder
                value = value.replace("..", ".")
            parts.append(f"{key}-{value}")
        name = "_".join(parts)[:120] or "base"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def comparison_rows(variants: list[list[str]], documents: list[dict], configs: list[RunConfig]) -> list[dict]:
    rows = []
    for overrides, doc, config in zip(variants, documents, configs):
        row = {"variant": variant_label(overrides), "model": model_name(config, overrides), "test_rmse": doc["test_rmse"],
               "test_r2": doc["test_r2"], "test_mae": doc["test_mae"], "n_features": doc["n_features"],
               "alpha": doc["alpha"], "alpha_at_grid_edge": alpha_at_edge(doc), "split": doc["split_strategy"],
               "texts_embedded": doc["embedding"]["texts_embedded"], "out_dir": doc["out_dir"]}  # fmt: skip
        for name, figures in doc["baselines"].items():
            row[f"{name}_rmse"] = figures["test_rmse"]
        rows.append(row)
    return rows


def alpha_at_edge(doc: dict) -> bool:
    """Whether the alpha chosen from ``model.alphas`` is an end of the grid (the train stage records
    it: ``tasks/train.py::grid_edge``)."""
    return bool(doc.get("alpha_at_grid_edge"))


def comparison_markdown(rows: list[dict]) -> str:
    baselines = [k for k in rows[0] if k.endswith("_rmse") and k != "test_rmse"]
    head = ["model", "split", "test RMSE", "test R²", "test MAE", "alpha", "features",
            *[b[:-5].replace("_", " ") + " RMSE" for b in baselines]]  # fmt: skip
    cells = [
        [row["model"], row["split"], f"{row['test_rmse']:.4f}", f"{row['test_r2']:.4f}", f"{row['test_mae']:.4f}",
         "—" if row["alpha"] is None else f"{row['alpha']:g}" + (" (grid edge)" if row["alpha_at_grid_edge"] else ""),
         str(row["n_features"]), *[f"{row[b]:.4f}" for b in baselines]]
        for row in rows
    ]  # fmt: skip
    text = markdown_table(head, cells, [False, False] + [True] * (len(head) - 2)) + "\n"
    if any(row["alpha_at_grid_edge"] for row in rows):
        text += ("\n(grid edge): the best alpha is an end of `model.alphas`; a wider grid may do better, "
                 "e.g. `--set 'model.alphas=[0.001,0.01,…,1000000]'`.\n")  # fmt: skip
    return text


BASELINE_MARKS = (("global_mean_rmse", "x", "global mean"), ("user_mean_rmse", "^", "user mean"),
                  ("movie_mean_rmse", "s", "movie mean"), ("bias_rmse", "D", "bias (user + movie)"))  # fmt: skip


def baseline_points(rows: list[dict]) -> dict[str, list[tuple[float, int]]]:
    """(RMSE, row position) of each baseline for every row that has it: each row's own split."""
    return {
        name: [(r[key], i) for i, r in enumerate(rows) if r.get(key) is not None] for key, _, name in BASELINE_MARKS
    }


def comparison_png(rows: list[dict]) -> bytes:
    """Test RMSE per variant as bars from 0 (so lengths compare honestly), each row's own baselines —
    on that row's split — as markers on its bar, the value at the end of each bar; test R² beside."""
    labels = [f"{r['model']}\n{r['split']} split" for r in rows]
    fig, (ax_rmse, ax_r2) = plt.subplots(
        1, 2, figsize=(13, 0.62 * len(rows) + 2.2), gridspec_kw={"width_ratios": [3, 1]}, sharey=True
    )
    positions = list(range(len(rows)))
    ax_rmse.barh(positions, [r["test_rmse"] for r in rows], color="tab:blue", alpha=0.8, label="model")
    points_of = baseline_points(rows)
    for _, marker, name in BASELINE_MARKS:
        points = points_of[name]
        if points:
            ax_rmse.scatter(*zip(*points), marker=marker, color="tab:red", zorder=3, s=36, label=name)
    for i, r in enumerate(rows):
        ax_rmse.text(r["test_rmse"] / 2, i, f"{r['test_rmse']:.4f}", va="center", ha="center", color="white", fontsize=9)
    top = max(max(r.get(k) or 0 for k, _, _ in BASELINE_MARKS) for r in rows)
    ax_rmse.set_xlim(0, max(top, max(r["test_rmse"] for r in rows)) * 1.08)
    ax_rmse.set_yticks(positions, labels, fontsize=8)
    ax_rmse.invert_yaxis()  # first variant on top, as in the table
    ax_rmse.set_xlabel("test RMSE, axis from 0 (lower is better); markers: that row's baselines on its own split")
    ax_rmse.legend(fontsize=8, loc="lower right")
    ax_r2.barh(positions, [r["test_r2"] for r in rows], color="tab:green")
    ax_r2.axvline(0, color="black", linewidth=0.8)
    ax_r2.set_xlabel("test R²")
    fig.suptitle("Each variant against the baselines of its own split")
    fig.tight_layout()
    return figure_png(fig, dpi=90)


def variants_dir(out: str | Path) -> Path:
    """Where each variant's own output folder goes: ``<out>-variants/<folder name>/``."""
    out = Path(out)
    return out.parent / f"{out.name}-variants"


@flow(name="movie-ratings-compare", result_serializer=PlainJSONSerializer())
def compare_flow(configs: list[RunConfig], variants: list[list[str]], out: str | None = None) -> dict:
    """Run each variant (a subflow each, sharing the cache) and write compare.md, compare.png and
    compare.json to ``out`` (default outputs/compare-<run name>/); each variant's own outputs go to
    ``<out>-variants/<folder name>/`` (``folder_names``)."""
    out_dir = Path(out or Path("outputs") / f"compare-{flow_run.get_name() or 'run'}")
    folders = [variants_dir(out_dir) / name for name in folder_names(variants)]
    check_out_dir(out_dir)
    for folder in folders:
        check_out_dir(folder)
    documents = [run_with_config(config, str(folder)) for config, folder in zip(configs, folders)]
    rows = comparison_rows(variants, documents, configs)
    where = ", ".join(f"`{f.name}`" for f in folders)
    markdown = comparison_markdown(rows) + f"\nEach variant's own outputs: `{variants_dir(out_dir)}/` ({where}).\n"
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
