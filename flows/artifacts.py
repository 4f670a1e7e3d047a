"""The run's artifacts in the Prefect UI, under stable keys so the Artifacts page keeps their history."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.report import outputs_markdown, report_markdown
from tasks.results import Figures
from tasks.store import get_bytes


def publish_artifacts(document: dict, out_dir: Path, plotted: Figures, files: list[str]) -> None:
    """The run's artifacts, under stable keys so the UI's Artifacts page keeps their history: metrics
    and top-coefficient tables, a markdown report with every figure, the output folder's path and
    files (as text: a file:// link is dead in a browser)."""
    rows = []
    for name in ("r2", "rmse", "mae"):
        for side in ("train", "test"):
            row = {"metric": f"{side}_{name}", document["kind"]: round(document[f"{side}_{name}"], 4)}
            for baseline, figures in document["baselines"].items():
                row[f"{baseline}_baseline"] = round(figures[f"{side}_{name}"], 4)
            rows.append(row)
    create_table_artifact(
        key="movie-ratings-metrics",
        table=rows,
        description=f"Ridge vs the baselines on the same {document['split_strategy']} split "
        f"({document['n_rows']} rows, {document['n_features']} features). Outputs: {out_dir}",
    )
    create_table_artifact(
        key="movie-ratings-top-coefficients",
        table=[{"rank": i + 1, **t} for i, t in enumerate(document["top_features"])],
        description="Ridge coefficients ranked by |coef|",
    )
    images = {name: get_bytes(ref) for name, ref in plotted.report.items()}
    create_markdown_artifact(
        key="movie-ratings-report",
        markdown=report_markdown(
            document, images["scatter"], images["coefficients"], str(out_dir), images["support"], images.get("alpha_curve"),
        ),
        description="Metrics, the top features against the rating, and the top coefficients",
    )
    create_markdown_artifact(
        key="movie-ratings-outputs",
        markdown=outputs_markdown(str(out_dir), files),
        description=f"The run's output folder: {out_dir}",
    )
