"""The figures: readable (no overlapping tick labels) whatever the scale of the features."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tasks.plots import scatter_figure  # noqa: E402


def _overlaps(labels) -> bool:
    boxes = [t.get_window_extent() for t in labels if t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize("scale", [1e-4, 0.013, 1.0, 37.0, 12345.0])
def test_scatter_x_tick_labels_never_overlap(scale):
    rng = np.random.default_rng(0)
    rating = rng.integers(1, 6, 3000).astype(float)
    features = [(f"overview_embedding_{i}", rng.normal(-0.3 * scale, scale, 3000) - 0.0123, 0.1) for i in range(6)]
    fig = scatter_figure(features, rating, 0.3, 0, "t")
    fig.canvas.draw()
    for ax in fig.axes:
        assert not _overlaps(ax.get_xticklabels()), [t.get_text() for t in ax.get_xticklabels()]
        assert 2 <= len([t for t in ax.get_xticklabels() if t.get_text()]) <= 7


def test_report_shows_how_alpha_was_chosen_and_outputs_are_copyable_text():
    from tasks.report import alpha_section, outputs_markdown

    doc = {"alpha": 10.0, "alpha_at_grid_edge": None,
           "alpha_curve": [{"alpha": 1.0, "validation_rmse": 0.91}, {"alpha": 10.0, "validation_rmse": 0.9},
                           {"alpha": 100.0, "validation_rmse": 0.95}]}  # fmt: skip
    from tasks.plots import alpha_curve_png

    text = "\n".join(alpha_section(doc, alpha_curve_png(doc["alpha_curve"], 10.0)))
    assert "| 10 | 0.9000 | ← chosen |" in text and text.count("← chosen") == 1
    assert "data:image/png;base64," in text and "extend the grid" not in text
    edge = "\n".join(alpha_section({**doc, "alpha": 1.0, "alpha_at_grid_edge": "lowest"}, None))
    assert "the lowest value of `model.alphas`" in edge
    assert alpha_section({"alpha": 5.0}, None) == []
    out = outputs_markdown("/data/runs/x y", ["metrics.json", "scatter.png"])
    assert "```\n/data/runs/x y\n```" in out and "file://" not in out and "- `scatter.png`" in out
