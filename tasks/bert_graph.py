"""A BERT encoder built as an OpenVINO graph straight from its config and safetensors weights.

Why: converting through torch (``ov.convert_model`` on a traced module) needs torch and
sentence-transformers imported — 5.2 s on this 2-core machine before the 1.1 s conversion, paid by
every cold run. Building the same network from OpenVINO's own operations needs neither: ~0.3 s.
The graph is HF's ``BertModel`` forward, op for op (embeddings + LayerNorm, then per layer:
self-attention with the additive padding mask, output dense + residual + LayerNorm, GELU feed-forward
+ residual + LayerNorm), returning the last hidden states; tests/test_backends.py checks its vectors
against sentence-transformers' torch float32 ones.

Only what is checked here is built; anything else (another architecture, relative positions, other
activations, weights that are not one float32/float16 safetensors file) is ``Unsupported`` and the
caller converts through torch as before. Reading safetensors never runs code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ACTIVATIONS = {"gelu": "erf", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


class Unsupported(Exception):
    """Not a network this module builds (the caller falls back to the torch conversion)."""


def transformer_folder(model_path: str | Path) -> Path:
    """The folder of a sentence-transformers model's Transformer module (``modules.json``'s first
    entry; the model folder itself for most models)."""
    folder = Path(model_path)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        return folder / modules[0].get("path", "")
    except (OSError, ValueError, IndexError, AttributeError):
        return folder


def bert_config(folder: Path) -> dict:
    """config.json when it describes a network ``build`` reproduces, else Unsupported."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise Unsupported(f"no readable config.json ({exc.__class__.__name__})") from None
    checks = {
        "model_type": config.get("model_type") == "bert",
        "position_embedding_type": config.get("position_embedding_type", "absolute") == "absolute",
        "hidden_act": config.get("hidden_act") in ACTIVATIONS,
        "is_decoder": not config.get("is_decoder", False),
        "hidden_size": config.get("hidden_size", 0) % max(config.get("num_attention_heads", 0), 1) == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed or not config.get("num_attention_heads"):
        raise Unsupported(f"config.json {failed or ['num_attention_heads']} is not a plain BERT encoder")
    return config


def bert_weights(folder: Path, layers: int) -> dict[str, np.ndarray]:
    """The encoder's tensors as float32 arrays, names without a ``bert.`` prefix."""
    path = folder / "model.safetensors"
    if not path.is_file():
        raise Unsupported("no model.safetensors (sharded or .bin weights are converted through torch)")
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # e.g. bfloat16 tensors, which NumPy has no type for
        raise Unsupported(f"model.safetensors not readable as NumPy ({exc})") from None
    prefix = "" if "embeddings.word_embeddings.weight" in tensors else "bert."
    stored = {int(k.split(".")[len(prefix.split(".")) + 1]) for k in tensors
              if k.startswith(f"{prefix}encoder.layer.") and k.split(".")[len(prefix.split(".")) + 1].isdigit()}  # fmt: skip
    if len(stored) != layers or stored != set(range(len(stored))):  # never range(layers): it may be 10**9
        from tasks.errors import InputError

        raise InputError(
            f"embedding.model {folder}: model.safetensors does not match config.json: it holds {len(stored)} "
            f"encoder layers, config.json says num_hidden_layers={layers}"
        )
    names = [*_EMBEDDING_NAMES, *(f"encoder.layer.{i}.{n}" for i in range(layers) for n in _LAYER_NAMES)]
    missing = [n for n in names if prefix + n not in tensors]
    if missing:
        raise Unsupported(f"model.safetensors lacks {missing[0]}")
    weights = {n: tensors[prefix + n] for n in names}
    odd = [n for n, w in weights.items() if w.dtype not in (np.float32, np.float16)]
    if odd:
        raise Unsupported(f"{odd[0]} is {weights[odd[0]].dtype}")
    return {n: w.astype(np.float32, copy=False) for n, w in weights.items()}


def check_shapes(folder: Path, config: dict, weights: dict[str, np.ndarray]) -> None:
    """InputError naming the first tensor whose shape is not the one config.json implies (a damaged
    or mismatched model folder: neither OpenVINO nor torch could run it)."""
    from tasks.errors import InputError

    hidden, inner = config["hidden_size"], config.get("intermediate_size", 4 * config["hidden_size"])
    expected = {
        "embeddings.word_embeddings.weight": (config.get("vocab_size"), hidden),
        "embeddings.position_embeddings.weight": (config.get("max_position_embeddings"), hidden),
        "embeddings.token_type_embeddings.weight": (config.get("type_vocab_size", 2), hidden),
    }
    for name in weights:
        part = name.split(".")
        if name in expected:
            continue
        if part[-2] == "LayerNorm" or name.endswith(("attention.output.dense.bias", "output.dense.bias")):
            expected[name] = (hidden,)
        elif name.endswith(("query.weight", "key.weight", "value.weight", "attention.output.dense.weight")):
            expected[name] = (hidden, hidden)
        elif name.endswith(("query.bias", "key.bias", "value.bias")):
            expected[name] = (hidden,)
        elif name.endswith("intermediate.dense.weight"):
            expected[name] = (inner, hidden)
        elif name.endswith("intermediate.dense.bias"):
            expected[name] = (inner,)
        elif name.endswith("output.dense.weight"):
            expected[name] = (hidden, inner)
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise InputError(
                f"embedding.model {folder}: model.safetensors does not match config.json: {name} is "
                f"{'x'.join(map(str, weights[name].shape))}, config.json implies {'x'.join(map(str, shape))}"
            )


_EMBEDDING_NAMES = [
    "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
]  # fmt: skip
_LAYER_NAMES = [
    f"{part}.{kind}"
    for part in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense",
    )
    for kind in ("weight", "bias")
] + [f"{part}.LayerNorm.{kind}" for part in ("attention.output", "output") for kind in ("weight", "bias")]  # fmt: skip


def check(model_path: str | Path) -> None:
    """Unsupported unless ``build`` can make this model (reads config.json only)."""
    bert_config(transformer_folder(model_path))


def build(model_path: str | Path):
    """The ``openvino.Model`` (input_ids, attention_mask, token_type_ids: int64 [batch, tokens]) →
    last hidden states float32 [batch, tokens, hidden]."""
    import openvino.opset13 as op
    from openvino import Model

    folder = transformer_folder(model_path)
    config = bert_config(folder)
    layers, heads, hidden = config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"]
    eps = float(config.get("layer_norm_eps", 1e-12))
    gelu = ACTIVATIONS[config["hidden_act"]]
    w = bert_weights(folder, layers)
    check_shapes(folder, config, w)

    def const(array: np.ndarray):
        return op.constant(np.ascontiguousarray(array, dtype=np.float32))

    def linear(x, name: str):
        return op.add(op.matmul(x, const(w[f"{name}.weight"]), False, True), const(w[f"{name}.bias"]))

    def layer_norm(x, name: str):
        normed = op.mvn(x, op.constant(np.array([-1], dtype=np.int64)), True, eps, "inside_sqrt")
        return op.add(op.multiply(normed, const(w[f"{name}.weight"])), const(w[f"{name}.bias"]))

    inputs = {}
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        inputs[name] = op.parameter([-1, -1], np.int64, name=name)
        inputs[name].output(0).get_tensor().set_names({name})
    ids = inputs["input_ids"]

    length = op.gather(op.shape_of(ids, "i64"), op.constant(np.int64(1)), op.constant(np.int64(0)))
    positions = op.range(op.constant(np.int64(0)), length, op.constant(np.int64(1)), "i64")
    zero = op.constant(np.int64(0))
    x = op.add(
        op.add(
            op.gather(const(w["embeddings.word_embeddings.weight"]), ids, zero),
            op.gather(const(w["embeddings.token_type_embeddings.weight"]), inputs["token_type_ids"], zero),
        ),
        op.gather(const(w["embeddings.position_embeddings.weight"]), positions, zero),
    )
    x = layer_norm(x, "embeddings.LayerNorm")

    # HF's extended mask: 0 where attended, the dtype's minimum where padded, broadcast over heads/queries.
    keep = op.convert(op.unsqueeze(inputs["attention_mask"], op.constant(np.array([1, 2], dtype=np.int64))), "f32")
    mask = op.multiply(op.subtract(op.constant(np.float32(1)), keep), op.constant(np.finfo(np.float32).min))
    split = op.constant(np.array([0, 0, heads, hidden // heads], dtype=np.int64))
    merge = op.constant(np.array([0, 0, hidden], dtype=np.int64))
    order = op.constant(np.array([0, 2, 1, 3], dtype=np.int64))

    def heads_first(t):
        return op.transpose(op.reshape(t, split, True), order)

    for i in range(layers):
        at = f"encoder.layer.{i}"
        q, k, v = (heads_first(linear(x, f"{at}.attention.self.{n}")) for n in ("query", "key", "value"))
        context = op.scaled_dot_product_attention(q, k, v, mask, op.constant(np.float32(1 / np.sqrt(hidden // heads))))
        context = op.reshape(op.transpose(context, order), merge, True)
        x = layer_norm(op.add(linear(context, f"{at}.attention.output.dense"), x), f"{at}.attention.output.LayerNorm")
        inner = op.gelu(linear(x, f"{at}.intermediate.dense"), gelu)
        x = layer_norm(op.add(linear(inner, f"{at}.output.dense"), x), f"{at}.output.LayerNorm")

    x.output(0).get_tensor().set_names({"last_hidden_state"})
    return Model([op.result(x)], list(inputs.values()), "bert")
