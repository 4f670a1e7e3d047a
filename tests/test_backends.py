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
    """Every vector within cosine 0.99 of torch float32, degenerate texts too (they run unquantized);
    the long ones really from the int8 model, so they must not mix with torch's."""
    from tasks.openvino_backend import INT8_MIN_TOKENS, Tokenize

    int8 = backend_identity(source.identity, "openvino-int8")
    vectors = openvino_encoder(source.path, int8, "openvino-int8", tmp_path, 16, True, "float32")(texts)
    got = cosines(vectors, reference)
    assert got.min() >= 0.99
    long = Tokenize(source.path).lengths(texts) >= INT8_MIN_TOKENS
    assert long[:80].all() and not long[-2:].any()  # the overviews run in int8, '' and 'a' do not
    assert got[long].min() < 0.9999  # really different vectors
    assert got[~long].min() >= 0.9999  # the short ones: the unquantized model (float32 here)
    assert backend_identity(source.identity, "openvino") == source.identity
    assert int8 != source.identity


def test_routed_sends_short_texts_to_the_unquantized_model(source):
    """By token count ([CLS] and [SEP] included), in the caller's order."""
    from tasks.openvino_backend import Tokenize, routed

    calls = {"short": [], "long": []}

    def fake(name, value):
        def encode(batch):
            calls[name].append(list(batch))
            return np.full((len(batch), 3), value, dtype=np.float32)
        return encode

    tokenize = Tokenize(source.path)
    texts = ["a long enough text about a heist that goes wrong in a small town", "", "Heat", "another long text about two friends"]
    lengths = tokenize.lengths(texts)
    assert lengths[1] == 2 and lengths[2] == 3  # [CLS] [SEP]; [CLS] heat [SEP]
    encode = routed(tokenize, short=fake("short", 1.0), long=fake("long", 2.0), min_tokens=int(lengths[3]))
    out = encode(texts)
    assert out[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0]
    assert calls == {"short": [["", "Heat"]], "long": [[texts[0], texts[3]]]}
    assert encode([]).shape[0] == 0


def test_int8_identity_follows_its_calibration_texts_and_routing(source, monkeypatch):
    """Other calibration texts (a changed generator) make another int8 model, another routing other
    vectors for short texts: either is stored apart."""
    import tasks.openvino_backend as backend

    before = backend_identity(source.identity, "openvino-int8")
    monkeypatch.setattr(backend, "calibration_hash", lambda: "another generator")
    assert backend_identity(source.identity, "openvino-int8") != before
    monkeypatch.undo()
    monkeypatch.setattr(backend, "INT8_MIN_TOKENS", 9)
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


def _ir_vectors(folder, source, texts) -> np.ndarray:
    from tasks.openvino_backend import Tokenize, openvino, pool

    core = openvino().Core()
    compiled = core.compile_model(core.read_model(str(folder / "model.xml")), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    features = Tokenize(source.path)(texts)
    return pool(compiled(features)[0], features["attention_mask"], "mean", True)


def test_bert_graph_and_torch_trace_give_torch_float32_vectors(source, texts, reference, tmp_path, monkeypatch):
    """The IR built from the weights (no torch) and the torch-traced fallback are the same network."""
    from tasks import bert_graph
    from tasks.openvino_backend import _convert

    (tmp_path / "built").mkdir()
    _convert(source.path, tmp_path / "built" / "model.xml", "openvino")
    monkeypatch.setattr(bert_graph, "build", lambda path: (_ for _ in ()).throw(bert_graph.Unsupported("test")))
    (tmp_path / "traced").mkdir()
    _convert(source.path, tmp_path / "traced" / "model.xml", "openvino")
    built, traced = _ir_vectors(tmp_path / "built", source, texts), _ir_vectors(tmp_path / "traced", source, texts)
    assert cosines(built, reference).min() >= 0.99999 and cosines(traced, reference).min() >= 0.99999
    assert np.abs(built - traced).max() < 1e-4
    assert '<net name="bert"' in (tmp_path / "built" / "model.xml").read_text()  # bert_graph's, not traced
    assert '<net name="bert"' not in (tmp_path / "traced" / "model.xml").read_text()


def test_bert_graph_conversion_never_imports_torch(source, tmp_path):
    """A cold run's conversion of a BERT model: no torch, sentence-transformers or transformers import."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from tasks.openvino_backend import _convert; "
        f"_convert({source.path!r}, Path({str(tmp_path / 'model.xml')!r}), 'openvino'); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "model.bin").stat().st_size > 80e6  # the weights, float32


def test_bert_graph_reads_prefixed_and_half_weights_and_refuses_other_networks(source, texts, reference, tmp_path):
    """A BertFor… checkpoint ('bert.' names, float16) builds the same encoder; what it cannot build
    (another architecture, relative positions, .bin weights) is Unsupported, so the torch path runs."""
    from safetensors.numpy import load_file, save_file

    from tasks import bert_graph

    folder = tmp_path / "prefixed"
    shutil.copytree(source.path, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({f"bert.{k}": v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()},
              str(folder / "model.safetensors"))  # fmt: skip
    (tmp_path / "ir").mkdir()
    ov = __import__("tasks.openvino_backend", fromlist=["openvino"]).openvino()
    ov.save_model(bert_graph.build(folder), str(tmp_path / "ir" / "model.xml"), compress_to_fp16=False)
    assert cosines(_ir_vectors(tmp_path / "ir", source, texts), reference).min() >= 0.999  # float16 weights

    config = json.loads((folder / "config.json").read_text())
    for change, why in (({"model_type": "roberta"}, "model_type"), ({"position_embedding_type": "relative_key"},
                        "position_embedding_type"), ({"hidden_act": "relu"}, "hidden_act")):  # fmt: skip
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(bert_graph.Unsupported, match=why):
            bert_graph.build(folder)
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 10**9}))  # hostile: fails fast
    with pytest.raises(InputError, match="holds 6 encoder layers, config.json says num_hidden_layers=1000000000$"):
        bert_graph.build(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(bert_graph.Unsupported, match="no model.safetensors"):
        bert_graph.build(folder)


def test_first_run_preparation_converts_and_loads_once(tmp_path, monkeypatch):
    """What the CLI does while Prefect's server starts: on a cache without a converted model it
    converts and loads it (the run's chunk tasks then find that encoder); never again once the
    cache holds it, and nothing for torch, remote caches or hub names."""
    from configs.schema import EmbeddingConfig
    from tasks import embed

    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.setattr(embed, "_OPENVINO", {})
    cache = str(tmp_path / "cache")
    embedding = EmbeddingConfig(backend="openvino")
    assert embed.prepare_first_run(embedding, cache)
    assert len(list((tmp_path / "cache" / "models" / "openvino").glob("*/manifest.json"))) == 1
    (key, encoder), = embed._OPENVINO.items()
    assert encoder(["a film"]).shape == (1, 384)
    assert not embed.prepare_first_run(embedding, cache)  # converted already: a warm run does nothing
    assert not embed.prepare_first_run(EmbeddingConfig(backend="torch"), str(tmp_path / "other"))
    assert not embed.prepare_first_run(embedding, "s3://bucket/cache")
    assert not embed.prepare_first_run(EmbeddingConfig(model="org/not-here-7f3a", backend="openvino"), str(tmp_path / "x"))
    assert list(embed._OPENVINO) == [key] and not (tmp_path / "other").exists() and not (tmp_path / "x").exists()


def test_a_model_folder_whose_weights_do_not_match_its_config_is_one_error_line(source, tmp_path):
    """A hostile or damaged local model (config.json says 768 wide, the weights are 384): one line
    naming the folder and the tensor, exit 2, no traceback, the chunk not retried."""
    from tests.test_outputs import cli_run

    folder = tmp_path / "model"
    shutil.copytree(source.path, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 768}))
    proc = cli_run("--set", f"embedding.model={folder}", "--set", f"cache.dir={tmp_path / 'c'}", "--set",
                   "data.demo.ratings=300", "--set", "data.demo.movies=20", "--set", "data.demo.users=30",
                   "--out", str(tmp_path / "o"), cwd=tmp_path, env_extra={"TQDM_DISABLE": "1"})  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in output and " ERROR " not in output, output
    message = (f"error: embedding.model {folder}: model.safetensors does not match config.json: "
               "embeddings.word_embeddings.weight is 30522x384, config.json implies 30522x768")  # fmt: skip
    assert proc.stderr.strip().splitlines()[-1] == message
    assert output.count("does not match config.json") == 1 and "Retry" not in output
    assert not (tmp_path / "o").exists()
