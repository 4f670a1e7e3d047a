"""The run report: a markdown page with the metrics, the top coefficients and both figures embedded
as data URIs (they render in the Prefect UI offline; ``file://`` links do not)."""

from __future__ import annotations

import base64
import io

from PIL import Image


def compact_png(png: bytes, max_width: int = 900, colors: int = 64) -> bytes:
    """A smaller PNG for embedding: at most ``max_width`` pixels wide, palette of ``colors``."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    buf = io.BytesIO()
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# The width each figure is embedded at in the report artifact.
REPORT_WIDTHS = {"scatter": 900, "coefficients": 700, "support": 700, "alpha_curve": 600}


def report_images(figures: dict[str, bytes | None]) -> dict[str, bytes]:
    """The figures (name → PNG, None: not drawn) as the report embeds them: ``compact_png`` at
    ``REPORT_WIDTHS``. Made by the plots stage, so a cached run does not compact them again."""
    return {name: compact_png(png, max_width=REPORT_WIDTHS[name]) for name, png in figures.items() if png}


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def markdown_table(header: list[str], rows: list[list[str]], numeric: list[bool] | None = None) -> str:
    """A GitHub-flavoured markdown table; ``numeric`` columns are right-aligned."""
    numeric = numeric or [False] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" ---: " if n else " --- " for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fm_text(document: dict) -> str:
    """How the FM saw the text: 'learned text column + 16 text components', 'no text', …"""
    parts = (["learned text column"] if document.get("text_bias") else []) + (
        [f"{document['text_components']} text components"] if document.get("text_components") else []
    )
    return " + ".join(parts) or "no text"


def data_line(document: dict) -> str:
    """Which data the run read, in one line (the CLI's summary and the report say the same)."""
    data = document["data"]
    users = ", ".join(data["user_features"]) or "none (the release has no user table: the user block is empty)"
    scale = "-".join(f"{v:g}" for v in data["rating_scale"])
    return (f"data: {data['layout']} layout ({data['release']}), ratings {scale} ({data['rating_scale_source']}), "
            f"user features: {users}, texts embedded: {', '.join(data['embedded_fields'])}")  # fmt: skip


def model_summary(document: dict) -> str:
    if document.get("kind") == "fm":
        return f"FM rank {document['rank']}, {document['iterations']} iterations, {fm_text(document)}"
    edge = document.get("alpha_at_grid_edge")
    warning = f" — the {edge} value of `model.alphas`: the best alpha may lie beyond it, extend the grid" if edge else ""
    return f"Ridge alpha = {document['alpha']}{warning}"


def support_section(document: dict, png: bytes | None) -> list[str]:
    """Test RMSE by how many training ratings the test movie had: the table, then the figure."""
    table = document.get("rmse_by_movie_support")
    if not table:
        return []
    names = [k for k in table[0] if k not in ("support", "n_test")]
    body = markdown_table(
        ["training ratings of the movie", "test rows", *(n.replace("_", " ") for n in names)],
        [[row["support"], f"{row['n_test']:,}", *("" if row[n] is None else f"{row[n]:.4f}" for n in names)]
         for row in table],
        [False] + [True] * (len(names) + 1),
    )  # fmt: skip
    figure = [f"![support]({data_uri(png)})", ""] if png else []
    return ["## Where does the model help? RMSE by movie support", body, "", *figure]


def alpha_section(document: dict, png: bytes | None) -> list[str]:
    """The validation curve that chose alpha: the table, the figure, and a word when the choice is an
    end of the grid."""
    curve = document.get("alpha_curve")
    if not curve:
        return []
    body = markdown_table(
        ["alpha", "validation RMSE", ""],
        [[f"{p['alpha']:g}", f"{p['validation_rmse']:.4f}", "← chosen" if p["alpha"] == document["alpha"] else ""]
         for p in curve],
        [True, True, False],
    )  # fmt: skip
    edge = document.get("alpha_at_grid_edge")
    note = [f"The chosen alpha is the {edge} value of `model.alphas`: the best may lie beyond it; extend the grid.", ""]
    figure = [f"![alpha curve]({data_uri(png)})", ""] if png else []
    return ["## How alpha was chosen (validation part of the training rows)", body, "", *(note if edge else []), *figure]


def outputs_markdown(out_dir: str, files: list[str]) -> str:
    """The outputs artifact: the folder as copyable text (browsers refuse file:// links from a web
    page) and what is in it."""
    listing = "\n".join(f"- `{name}`" for name in files)
    return f"# Output folder\n\n```\n{out_dir}\n```\n\n{listing}\n\nEverything in it is also in the report artifact.\n"


def report_markdown(
    document: dict, scatter_png: bytes, coefficients_png: bytes, out_dir: str, support_png: bytes | None = None,
    alpha_png: bytes | None = None,
) -> str:  # fmt: skip
    """Markdown for the report artifact; the figures as ``report_images`` makes them."""
    baselines = document["baselines"]
    metrics = markdown_table(
        ["test", document.get("kind", "ridge"), *(name.replace("_", " ") for name in baselines)],
        [[name.upper(), f"{document[f'test_{name}']:.4f}", *(f"{b[f'test_{name}']:.4f}" for b in baselines.values())]
         for name in ("rmse", "mae", "r2")],
        [False] + [True] * (len(baselines) + 1),
    )  # fmt: skip
    top = markdown_table(
        ["rank", "feature", "coef"],
        [[str(i + 1), f"`{t['name']}`", f"{t['coef']:+.4f}"] for i, t in enumerate(document["top_features"])],
        [True, False, True],
    )
    emb = document["embedding"]
    cfg = document["config"]
    return "\n".join(
        [
            "# movie-ratings run report",
            "",
            f"{document['n_rows']:,} rows (of {document['n_ratings']:,} ratings loaded), {document['n_features']} features; "
            f"{model_summary(document)}, model `{cfg['embedding']['model']}`, "
            f"{cfg['split']['strategy']} split, seed {cfg['split']['seed']}.",
            f"Embedding: {emb['texts_embedded']:,} texts embedded in this run, {emb['cache_hits']:,} from the cache.",
            data_line(document)[0].upper() + data_line(document)[1:] + ".",
            f"Outputs: `{out_dir}`",
            "",
            "## Metrics",
            metrics,
            "",
            "## Top features against the rating",
            f"![scatter]({data_uri(scatter_png)})",
            "",
            *support_section(document, support_png),
            *alpha_section(document, alpha_png),
            "## Top coefficients",
            f"![coefficients]({data_uri(coefficients_png)})",
            "",
            top,
        ]
    )
