"""The notebook's figures: a 2x3 scatter of the top features against the (jittered) rating, and a bar
chart of the top coefficients. Written as PNG bytes so callers can store them atomically."""

from __future__ import annotations

import io
import logging

import numpy as np
from pydantic import BaseModel

from tasks.caching import run_logger
from tasks.features import feature_column, load_blocks
from tasks.report import report_images
from tasks.results import FeatureBlocks, Figures, MergedRows, TrainedModel
from tasks.ridge import RowStats, feature_moments
from tasks.stage import stage
from tasks.store import Store

log = logging.getLogger(__name__)


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display on servers and workers), imported on first
    use: a run whose figures come from the cache never loads matplotlib (~0.3 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 80) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def scatter_png(
    features: list[tuple[str, np.ndarray, float]],
    rating: np.ndarray,
    jitter: float = 0.3,
    seed: int = 0,
    title: str = "Top features by |coef| against the rating",
    scale: tuple[float, float] | list[float] | None = None,
) -> bytes:
    """2x3 scatter of each (name, values, correlation) against rating + U(-jitter, jitter); the title
    of each subplot carries the correlation, computed by the caller on all rows (before jitter)."""
    return figure_png(scatter_figure(features, rating, jitter, seed, title, scale))


def rating_step(rating: np.ndarray) -> float:
    """The step between the rating values present (1 for whole stars, 0.5 for half stars)."""
    values = np.unique(np.asarray(rating, dtype=np.float64))
    gaps = np.diff(values)
    return float(gaps.min()) if gaps.size else 1.0


def scatter_figure(
    features: list[tuple[str, np.ndarray, float]], rating: np.ndarray, jitter: float, seed: int, title: str,
    scale: tuple[float, float] | list[float] | None = None,
):  # fmt: skip
    """The figure of ``scatter_png`` (x ticks at most 5 per panel, so embedding values such as
    -0.0123 do not run into each other). ``jitter`` is a fraction of the step between rating values,
    so half stars (step 0.5) get half the spread and never run into the next value; the y axis spans
    ``scale`` (default: the ratings' range)."""
    from matplotlib.ticker import MaxNLocator

    spread = jitter * rating_step(rating)
    jittered = rating + np.random.default_rng(seed).uniform(-spread, spread, size=len(rating))
    low, high = scale if scale is not None else (float(np.min(rating)), float(np.max(rating)))
    fig, axes = pyplot().subplots(2, 3, figsize=(13, 7))
    for ax, (name, values, corr) in zip(axes.ravel(), features):
        ax.scatter(values, jittered, s=2, alpha=0.3, rasterized=True)
        ax.set_ylim(low - spread - 0.1, high + spread + 0.1)
        ax.set_title(f"{name}\ncorr = {corr:.3f}", fontsize=10)
        ax.set_xlabel(name)
        ax.set_ylabel("rating (jittered)")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes.ravel()[len(features) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def all_rows_correlations(
    U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, rating: np.ndarray
) -> np.ndarray:
    """Every feature's correlation with the rating over all rows, from per-user and per-movie counts
    and sums (O(rows) once, then O((users + movies)·d)); no per-row feature column is gathered."""
    rating = np.asarray(rating, dtype=np.float64)
    stats = RowStats(
        n=len(rating), y_sum=float(rating.sum()), y_sq=float(rating @ rating),
        n_u=np.bincount(user_idx, minlength=U.shape[0]).astype(np.float64),
        n_m=np.bincount(movie_idx, minlength=M.shape[0]).astype(np.float64),
        s_u=np.bincount(user_idx, weights=rating, minlength=U.shape[0]),
        s_m=np.bincount(movie_idx, weights=rating, minlength=M.shape[0]),
        ctu=np.empty((0, 0)),  # not needed for moments
    )  # fmt: skip
    return feature_moments(U, M, stats).correlation


def coefficients_png(top: list[dict]) -> bytes:
    """Horizontal bars of the ranked coefficients (largest |coef| on top)."""
    names = [t["name"] for t in top][::-1]
    coefs = np.array([t["coef"] for t in top][::-1])
    fig, ax = pyplot().subplots(figsize=(8, 0.3 * len(top) + 1.5))
    ax.barh(names, coefs, color=np.where(coefs >= 0, "tab:blue", "tab:red"))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Ridge coefficient")
    ax.set_title(f"Top {len(top)} coefficients by |coef|")
    fig.tight_layout()
    return figure_png(fig)


def alpha_curve_png(curve: list[dict], chosen: float) -> bytes:
    """Validation RMSE against alpha (log scale), the chosen alpha marked."""
    alphas = np.array([p["alpha"] for p in curve])
    rmse = np.array([p["validation_rmse"] for p in curve])
    fig, ax = pyplot().subplots(figsize=(7, 4))
    positive = alphas > 0
    ax.plot(alphas[positive], rmse[positive], marker="o")
    ax.axvline(chosen, color="tab:red", linestyle="--", label=f"chosen alpha = {chosen:g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel("validation RMSE")
    ax.set_title("Ridge penalty: validation RMSE")
    ax.legend()
    fig.tight_layout()
    return figure_png(fig)


def support_png(table: list[dict], kind: str) -> bytes:
    """Test RMSE of the model and each baseline by the test movie's number of training ratings."""
    names = [k for k in table[0] if k not in ("support", "n_test")]
    bins = [row for row in table if row["n_test"]]
    fig, ax = pyplot().subplots(figsize=(8, 3.6))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [row[name] for row in bins]
        label = f"{kind} (model)" if name == "model" else name.replace("_", " ")
        ax.bar(np.arange(len(bins)) + (i - (len(names) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(range(len(bins)), [f"{row['support']}\n({row['n_test']:,} rows)" for row in bins])
    ax.set_xlabel("training ratings of the test movie")
    ax.set_ylabel("test RMSE")
    ax.set_ylim(0, max(row[n] for row in bins for n in names) * 1.1)  # from 0: differences at true scale
    ax.set_title("Where does the model help? RMSE by movie support")
    ax.legend(fontsize=8, ncol=len(names))
    fig.tight_layout()
    return figure_png(fig)


@stage("plots", result=Figures)
def figures(
    features: FeatureBlocks, rows: MergedRows, trained: TrainedModel, plot: BaseModel, top_k: int, cache_dir: str,
    rating_scale: list[float] | None = None,
) -> Figures:  # fmt: skip
    """Scatter of the top features (by |coef|) and the coefficient bars, as PNGs in the store."""
    U, M, table, names = load_blocks(features, rows)
    user_idx, movie_idx = table["user_idx"].to_numpy(), table["movie_idx"].to_numpy()
    rating = table["rating"].to_numpy(dtype=np.float64)
    top = trained.rankings[plot.rank_by][: min(plot.top_features, top_k)]
    all_corr = all_rows_correlations(U, M, user_idx, movie_idx, rating)
    correlations = {t["name"]: float(all_corr[t["index"]]) for t in top}
    n = len(rating)
    rng = np.random.default_rng(plot.seed)
    sample = np.sort(rng.choice(n, size=plot.max_points, replace=False)) if n > plot.max_points else np.arange(n)
    columns = [
        (t["name"], feature_column(U, M, t["index"], user_idx[sample], movie_idx[sample]), correlations[t["name"]])
        for t in top
    ]
    by = {"coef": "|coef|", "standardized": "|coef| x std", "correlation": "|correlation|"}[plot.rank_by]
    scatter = scatter_png(
        columns, rating[sample], plot.jitter, plot.seed + 1, title=f"Top features by {by} against the rating",
        scale=rating_scale,
    )
    run_logger(log).info(
        "plots: correlation with the rating of the top features: %s",
        ", ".join(f"{k}={v:.3f}" for k, v in correlations.items()),
    )
    store = Store(cache_dir)
    curve = trained.metrics.get("alpha_curve")
    pngs = {
        "scatter": scatter,
        "coefficients": coefficients_png(trained.top[:top_k]),
        "support": support_png(trained.metrics["rmse_by_movie_support"], trained.metrics["kind"]),
        "alpha_curve": alpha_curve_png(curve, trained.metrics["alpha"]) if curve else None,
    }
    stored = {name: store.put_bytes(png, "png") if png else None for name, png in pngs.items()}
    return Figures(
        **stored, correlations=correlations,
        report={name: store.put_bytes(png, "png") for name, png in report_images(pngs).items()},
    )  # fmt: skip
