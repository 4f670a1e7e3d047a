"""The OpenVINO backend: the same sentence-transformers model, run by OpenVINO's CPU runtime.

Measured on this 2-core CPU (AVX512-BF16), realistic overviews, against the torch path in bfloat16
(docs/performance.md, ``benchmarks/embed_backends.py``): OpenVINO in bf16 ~1.4x faster with vectors
equal to torch float32's (cosine ≥ 0.9999, so they share the per-text store's vectors); OpenVINO with
static int8 weights and activations (nncf, calibrated on a fixed set of generated texts) ~2.2x on
realistic overviews, cosine ≥ 0.99 — different vectors, so they are stored under their own identity;
texts of fewer than 16 tokens (titles, '', 'a') run unquantized there (``routed``), since int8 drifts
on them to cosine 0.83–0.96.

How: the model's transformer is converted once to an OpenVINO IR (``model.xml`` + ``model.bin``; a
BERT encoder is built from its safetensors weights by ``tasks/bert_graph.py`` in ~0.3 s, other models
are traced through torch, ~6 s with its imports) into ``<cache.dir>/models/openvino/<key>/`` with a
manifest of the files' sha256 (on an object store: store objects and a manifest, copied into a
private local folder to open); later runs read the IR without importing torch at all. An IR is an
XML graph plus raw weights: reading one never runs code. Tokenizing uses the model's
``tokenizer.json`` through ``tokenizers``; pooling (mean or CLS, as the model's
``1_Pooling/config.json`` says) and normalizing are done here in NumPy.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from tasks import locations
from tasks.atomic import staged_folder
from tasks.errors import InputError
from tasks.hashing import sha256_file

EXPORT_VERSION = "2"  # bump when the export below changes: old IRs are then not reused
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CALIBRATION_SEED = 20261127
KINDS = ("openvino", "openvino-int8")
INT8_MIN_TOKENS = 16  # int8 texts have at least this many tokens; shorter ones run unquantized (``routed``)

Encoder = Callable[[list[str]], np.ndarray]


class Unsupported(Exception):
    """The model's pipeline is not one this backend reproduces (the caller falls back to torch)."""


def available() -> bool:
    try:
        version("openvino")
    except PackageNotFoundError:
        return False
    return True


def pooling_mode(model_path: str | os.PathLike) -> str:
    """'mean' or 'cls' from a sentence-transformers folder (Transformer → Pooling [→ Normalize]);
    Unsupported for anything else (dense layers, max pooling, custom modules)."""
    folder = Path(model_path)
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError) as exc:
        raise Unsupported(f"no readable modules.json ({exc.__class__.__name__})") from None
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise Unsupported(f"modules {kinds}: only Transformer, Pooling[, Normalize] is converted")
    pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise Unsupported(f"pooling {modes}: only mean or CLS pooling is converted")


def max_seq_length(model_path: str | os.PathLike) -> int:
    try:
        return int(json.loads((Path(model_path) / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512


class Tokenize:
    """The model's tokenizer.json through ``tokenizers`` alone: truncation at the model's
    max_seq_length, padding to the longest text of each batch (what SentenceTransformer does)."""

    def __init__(self, model_path: str | os.PathLike):
        from tokenizers import Tokenizer

        path = Path(model_path) / "tokenizer.json"
        if not path.is_file():
            raise Unsupported("no tokenizer.json")
        self.tokenizer = Tokenizer.from_file(str(path))
        pad = self._pad_token(Path(model_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_seq_length(model_path))
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad)

    @staticmethod
    def _pad_token(folder: Path) -> str:
        try:
            token = json.loads((folder / "tokenizer_config.json").read_text()).get("pad_token", "[PAD]")
        except (OSError, ValueError):
            token = "[PAD]"
        return token.get("content", "[PAD]") if isinstance(token, dict) else str(token)

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Tokens of each text, special tokens included, after truncation."""
        return np.array([sum(e.attention_mask) for e in self.tokenizer.encode_batch(texts)], dtype=np.int64)

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Token states (n, t, d) → sentence vectors (n, d) float32, as sentence-transformers pools them."""
    if mode == "cls":
        vectors = hidden[:, 0, :].astype(np.float32)
    else:
        weights = mask[..., None].astype(np.float32)
        vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    if normalize:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors.astype(np.float32)


def int8_recipe() -> str:
    """What makes the int8 backend's vectors: its calibration texts and the routing of short texts
    (part of its identity, so a change of either never mixes old and new int8 vectors in the store)."""
    return f"{calibration_hash()}|short<{INT8_MIN_TOKENS}:unquantized"


@functools.lru_cache(maxsize=1)
def calibration_hash() -> str:
    """sha256 of the calibration texts: part of the int8 identity, so a change of the generator
    (hence of the int8 model) never mixes old and new int8 vectors in the store."""
    return hashlib.sha256("\x1f".join(calibration_texts()).encode()).hexdigest()


def calibration_texts() -> list[str]:
    """A fixed set of realistic generated overviews and titles for int8 calibration (the same on every
    machine, so the int8 model, and its identity, do not depend on the user's data)."""
    from tasks.demo_data import generate

    movies = generate(users=5, movies=160, ratings=10, seed=CALIBRATION_SEED)["movies"]
    texts = [t for t in movies["overview"].dropna().tolist()] + movies["title"].tolist()
    # every other one: 158 texts quantize in 5.4 s instead of 7.4 s for 316, with the same cosines
    # to float32 (overviews ≥ 0.9925 vs 0.9927 on benchmarks/embed_backends.py's 600)
    return texts[::2]


def export_key(identity: str, kind: str) -> str:
    versions = {p: _version(p) for p in ("openvino", "nncf", "torch", "transformers")}
    return hashlib.sha256(json.dumps([identity, kind, EXPORT_VERSION, versions]).encode()).hexdigest()[:24]


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


@contextlib.contextmanager
def _no_telemetry() -> Iterator[None]:
    """OpenVINO's converter and nncf start usage telemetry when imported (Google Analytics; it
    writes ``~/intel/`` on the way, also on a Dask worker or an offline machine). Imported inside
    this block they find no telemetry package and use their own no-op stubs."""
    saved = sys.modules.get("openvino_telemetry")
    sys.modules["openvino_telemetry"] = None  # `import openvino_telemetry` raises ImportError
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["openvino_telemetry"]
        else:
            sys.modules["openvino_telemetry"] = saved


def openvino():
    """The ``openvino`` module, imported without its telemetry (``_no_telemetry``)."""
    if "openvino" not in sys.modules:
        with _no_telemetry():  # `import openvino` imports openvino.tools.ovc, whose telemetry starts at import
            return importlib.import_module("openvino")
    return sys.modules["openvino"]


def _convert(model_path: str, out_xml: Path, kind: str) -> None:
    """The model's transformer as an OpenVINO IR (token states out): built from its weights by
    ``bert_graph`` for BERT encoders (no torch import), else traced through torch. int8: nncf's static
    quantization with the transformer preset (SmoothQuant), calibrated on ``calibration_texts``."""
    from tasks import bert_graph

    ov = openvino()
    try:
        try:
            model = bert_graph.build(model_path)
        except bert_graph.Unsupported:
            model = _traced(model_path)
    except (RuntimeError, ValueError, OSError, KeyError) as exc:  # a damaged or odd model folder
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
        raise InputError(
            f"embedding.model {model_path}: cannot convert it to OpenVINO ({reason}); "
            "check the model folder, or run it with embedding.backend=torch"
        ) from None
    if kind == "openvino-int8":
        with _no_telemetry():
            import nncf

        tokenize = Tokenize(model_path)
        texts = calibration_texts()
        batches = [tokenize(texts[i : i + 8]) for i in range(0, len(texts), 8)]
        model = nncf.quantize(
            model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches)
        )
    ov.save_model(model, str(out_xml), compress_to_fp16=False)


def _traced(model_path: str):
    """torch → OpenVINO: the sentence-transformers model's transformer traced on two short texts."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    transformer = st[0].auto_model.eval()

    class TokenStates(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]

    example = {k: torch.from_numpy(v) for k, v in Tokenize(model_path)(["a short text", "a somewhat longer text"]).items()}
    with torch.no_grad():
        return openvino().convert_model(TokenStates(transformer), example_input=example)


MODEL_FILES = ("model.xml", "model.bin")


def _manifest(folder: Path) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in MODEL_FILES}


MODELS_DIR_ENV = "MOVIE_RATINGS_MODELS_DIR"


def models_root(cache_dir: str | os.PathLike) -> str:
    """Where converted models live: ``$MOVIE_RATINGS_MODELS_DIR`` when set (one folder shared by
    several cache dirs, e.g. the test session's), else ``<cache.dir>/models`` (a folder, or a prefix
    of the object store the cache is on)."""
    override = os.environ.get(MODELS_DIR_ENV)
    return str(Path(override).expanduser()) if override else locations.join(locations.normalized(cache_dir), "models")


def has_local_export(identity: str, kind: str, cache_dir: str | os.PathLike) -> bool:
    """A converted copy for (model, kind) is in a local ``models_root`` (existence only: ``exported_ir``
    checks its files when it is used)."""
    root = models_root(cache_dir)
    return not locations.is_remote(root) and (Path(root) / "openvino" / export_key(identity, kind) / "manifest.json").is_file()


def exported_ir(model_path: str, identity: str, kind: str, cache_dir: str | os.PathLike, logger=None) -> Path:
    """The local IR folder for (model, kind), converted on first use and kept under ``models_root``;
    a copy whose files do not match its manifest (damaged or planted) is converted again."""
    root = models_root(cache_dir)
    if locations.is_remote(root):
        return _exported_to_store(model_path, identity, kind, root, logger)
    root = Path(root) / "openvino"
    folder = root / export_key(identity, kind)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("files") == _manifest(folder):
            return folder
    except (OSError, ValueError):
        pass
    if logger:
        logger.info("converting the model to OpenVINO (%s) once, into %s", kind, folder)
    root.mkdir(parents=True, exist_ok=True)
    with staged_folder(root, folder.name) as staging:
        _convert(model_path, staging / "model.xml", kind)
        manifest = {"kind": kind, "identity": identity, "files": _manifest(staging)}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:  # another process published it first: same content
            pass
    return folder


def _exported_to_store(model_path: str, identity: str, kind: str, root: str, logger=None) -> Path:
    """The converted model on an object store: its files are store objects (named by their sha256)
    and ``<root>/openvino/<key>.json`` lists them, published last, so a reader sees a whole model or
    none, whichever worker converted it. OpenVINO opens files, so each process verifies the objects
    into a private local folder first (``_local_copy``)."""
    from tasks.store import Store, as_ref

    manifest_at = locations.join(root, "openvino", f"{export_key(identity, kind)}.json")
    store = Store(root)
    try:
        manifest = json.loads(locations.read_bytes(manifest_at))
        refs = {name: as_ref(ref) for name, ref in manifest["files"].items()}
        outside = [ref.path for ref in refs.values() if not store.holds(ref)]
        if outside:
            raise ValueError(f"it names files outside the store: {outside[0]}")
        return _local_copy(refs)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # damaged manifest or object
        if logger:
            logger.warning("converted model %s is damaged (%s); converting it again", manifest_at, exc)
    if logger:
        logger.info("converting the model to OpenVINO (%s) once, into %s", kind, manifest_at)
    with tempfile.TemporaryDirectory(prefix="movie-ratings-openvino-") as tmp:
        _convert(model_path, Path(tmp) / "model.xml", kind)
        refs = {name: store.put_bytes((Path(tmp) / name).read_bytes(), name.rsplit(".", 1)[1]) for name in MODEL_FILES}
    manifest = {"kind": kind, "identity": identity, "files": {name: ref.model_dump() for name, ref in refs.items()}}
    locations.publish(manifest_at, json.dumps(manifest, indent=1).encode())
    return _local_copy(refs)


def _local_copy(refs: dict) -> Path:
    """The model files, checked against their sha256, in this user's private temporary folder (one
    folder per content, reused while its files still match)."""
    from tasks.store import get_bytes

    if set(refs) != set(MODEL_FILES):
        raise ValueError(f"manifest lists {sorted(refs)}, not {list(MODEL_FILES)}")
    content = hashlib.sha256("".join(refs[name].sha256 for name in MODEL_FILES).encode()).hexdigest()[:32]
    parent = locations.private_temp_dir("openvino")
    folder = parent / content
    try:
        if _manifest(folder) == {name: refs[name].sha256 for name in MODEL_FILES}:
            return folder
    except OSError:  # not there yet, or a file of it removed
        pass
    with staged_folder(parent, content) as staging:
        for name in MODEL_FILES:
            (staging / name).write_bytes(get_bytes(refs[name]))  # OSError when the object is damaged
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:  # another process of this user put the same files there first
            pass
    return folder


def openvino_encoder(
    model_path: str, identity: str, kind: str, cache_dir: str | os.PathLike, batch_size: int, normalize: bool,
    precision: str, logger=None,
) -> Encoder:  # fmt: skip
    """texts → float32 (n, d) vectors through OpenVINO on the CPU. ``precision`` 'bfloat16' runs in
    bf16 (OpenVINO's default on a CPU with bf16), 'float32' in f32. 'openvino-int8' embeds texts of
    fewer than ``INT8_MIN_TOKENS`` tokens with the model unquantized (``routed``)."""
    mode = pooling_mode(model_path)
    tokenize = Tokenize(model_path)
    hint = "bf16" if precision in ("bfloat16", "float16") else "f32"
    encode = _ir_encoder(exported_ir(model_path, identity, kind, cache_dir, logger), hint, tokenize, mode, normalize, batch_size)
    if kind != "openvino-int8":
        return encode
    # the unquantized IR under the int8 identity's key: converted with it, never confused with it
    full = _ir_encoder(exported_ir(model_path, identity, "openvino", cache_dir, logger), hint, tokenize, mode, normalize, batch_size)
    return routed(tokenize, short=full, long=encode)


def routed(tokenize: Tokenize, short: Encoder, long: Encoder, min_tokens: int | None = None) -> Encoder:
    """Texts of fewer than ``min_tokens`` tokens ([CLS] and [SEP] included) through ``short``, the
    others through ``long``. int8's quantization noise is averaged over a text's tokens by the mean
    pooling: measured against float32 on the fixed generated set, texts of 9+ tokens stay ≥ 0.995,
    shorter ones fall to 0.83 ('...': 0.86, '': 0.94, titles of 6–8 tokens 0.88–0.96); realistic
    overviews have 69–148 tokens, titles 6–12, so the overviews, where the time goes, run in int8."""
    min_tokens = INT8_MIN_TOKENS if min_tokens is None else min_tokens

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return long(texts)
        is_short = tokenize.lengths(texts) < min_tokens
        parts = [(idx, f([texts[i] for i in idx])) for idx, f in ((np.flatnonzero(is_short), short),
                                                                  (np.flatnonzero(~is_short), long)) if len(idx)]  # fmt: skip
        out = np.empty((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for idx, vectors in parts:
            out[idx] = vectors
        return out

    return encode


def _ir_encoder(folder: Path, hint: str, tokenize: Tokenize, mode: str, normalize: bool, batch_size: int) -> Encoder:
    """texts → vectors through the IR in ``folder``, compiled for the CPU with precision ``hint``."""
    ov = openvino()
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(folder / "model.xml")), "CPU",
        {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1},
    )  # fmt: skip
    request = compiled.create_infer_request()
    names = {i.get_any_name() for i in compiled.inputs}

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, compiled.outputs[0].get_partial_shape()[-1].get_length()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            picked = order[start : start + batch_size]
            features = tokenize([texts[i] for i in picked])
            hidden = request.infer({k: v for k, v in features.items() if k in names})[0]
            for i, vector in zip(picked, pool(hidden, features["attention_mask"], mode, normalize)):
                out[i] = vector
        return np.stack(out).astype(np.float32)

    return encode


def check_backend(kind: str, model_path: str) -> None:
    """An explicitly chosen OpenVINO backend that cannot run this model: one line saying why."""
    if not available():
        raise InputError(f"embedding.backend={kind}: the openvino package is not installed (pip install openvino nncf)")
    try:
        pooling_mode(model_path)
        Tokenize(model_path)
    except Unsupported as exc:
        raise InputError(f"embedding.backend={kind}: cannot run this model with OpenVINO ({exc}); use torch") from None
