"""The OpenVINO backends against torch float32 on a fixed set of realistic texts, which backend
'auto' picks, the identities vectors are stored under, and the converted model kept in the cache
(a damaged or planted one is converted again, never trusted)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from tasks.demo_data import generate
from tasks.encoder import backend_identity, pick_backend, resolve_model, sentence_encoder
from tasks.errors import InputError
from tasks.openvino_backend import MODELS_DIR_ENV, exported_ir, openvino_encoder, pooling_mode

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def source():
    return resolve_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    movies = generate(users=5, movies=120, ratings=10, seed=11)["movies"]
    return movies["overview"].dropna().tolist()[:80] + movies["title"].tolist()[:80] + ["", "a"]


@pytest.fixture(scope="module")
def reference(source, texts) -> np.ndarray:
    return sentence_encoder(source, "cpu", 16, True, "float32")(texts)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_openvino_vectors_equal_torch_float32(source, texts, reference, tmp_path, precision):
    encode = openvino_encoder(source.path, source.identity, "openvino", tmp_path, 16, True, precision)
    vectors = encode(texts)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert cosines(vectors, reference).min() >= 0.9999  # equivalent: shares torch's stored vectors
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encode([]).shape == (0, reference.shape[1])


def test_openvino_int8_is_close_but_stored_apart(source, texts, reference, tmp_path):
    int8 = backend_identity(source.identity, "openvino-int8")
    vectors = openvino_encoder(source.path, int8, "openvino-int8", tmp_path, 16, True, "float32")(texts)
    real = cosines(vectors[:-2], reference[:-2])  # the overviews and titles
    assert real.min() >= 0.99
    assert real.min() < 0.9999  # really different vectors: they must not mix with torch's
    # degenerate texts drift further (measured: '' 0.938, 'a' 0.988): why int8 is never 'auto'
    assert cosines(vectors[-2:], reference[-2:]).min() > 0.9
    assert backend_identity(source.identity, "openvino") == source.identity
    assert int8 != source.identity


def test_int8_identity_follows_its_calibration_texts(source, monkeypatch):
    """Other calibration texts (a changed generator) make another int8 model: other stored vectors."""
    import tasks.openvino_backend as backend

    before = backend_identity(source.identity, "openvino-int8")
    monkeypatch.setattr(backend, "calibration_hash", lambda: "another generator")
    assert backend_identity(source.identity, "openvino-int8") != before


def test_converted_model_is_kept_in_cache_dir_and_a_planted_one_is_redone(source, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    cache = tmp_path / "cache"
    shared = exported_ir(source.path, source.identity, "openvino", tmp_path / "first")  # converted once here
    folder = cache / "models" / "openvino" / shared.name
    shutil.copytree(shared, folder)  # a second cache dir that already holds the same conversion
    with caplog.at_level(logging.INFO):
        assert exported_ir(source.path, source.identity, "openvino", cache, logging.getLogger("t")) == folder
    assert "converting" not in caplog.text  # reused, no torch import needed
    with open(folder / "model.bin", "r+b") as fh:  # flip bytes of the weights: a damaged or planted file
        fh.seek(4096)
        fh.write(b"\x00" * 64)
    with caplog.at_level(logging.INFO):
        exported_ir(source.path, source.identity, "openvino", cache, logging.getLogger("t"))
    assert "converting the model to OpenVINO" in caplog.text
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "openvino" and set(manifest["files"]) == {"model.xml", "model.bin"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def _model_with(tmp_path, source, modules: list[dict]):
    folder = tmp_path / "model"
    shutil.copytree(source.path, folder)
    (folder / "modules.json").write_text(json.dumps(modules))
    return str(folder)


def test_auto_picks_openvino_on_cpu_and_torch_for_what_it_cannot_run(source, tmp_path):
    assert pooling_mode(source.path) == "mean"
    assert pick_backend("auto", "cpu", source.path) == "openvino"
    assert pick_backend("torch", "cpu", source.path) == "torch"
    assert pick_backend("auto", "cuda", source.path) == "torch"  # the GPU path stays torch (fp16/bf16 there)
    dense = _model_with(tmp_path, source, [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ])  # fmt: skip
    assert pick_backend("auto", "cpu", dense) == "torch"
    with pytest.raises(InputError, match=r"^embedding.backend=openvino: cannot run this model with OpenVINO \(modules "):
        pick_backend("openvino", "cpu", dense)


def test_flow_rmse_is_the_same_with_either_backend(prefect_server, tmp_path, small_csv):
    """The run's test RMSE with OpenVINO (auto on this CPU) and with torch: within 0.002."""
    from tests.flowrun import run_flow

    torch_doc = run_flow(tmp_path / "t", small_csv, extra=["embedding.backend=torch"])
    ov_doc = run_flow(tmp_path / "o", small_csv, extra=["embedding.backend=auto"])
    assert (torch_doc["embedding"]["backend"], ov_doc["embedding"]["backend"]) == ("torch", "openvino")
    assert abs(torch_doc["test_rmse"] - ov_doc["test_rmse"]) < 0.002
