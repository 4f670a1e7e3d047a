"""Embedding: the per-text cache, missing-text policies, corrupted chunks, and the real bundled model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tasks.embed import embed_texts, prepare_texts
from tasks.vector_store import EmbeddingStore
from tasks.encoder import resolve_model, sentence_encoder
from tasks.errors import InputError
from tasks.features import movie_block


def test_identical_texts_are_embedded_once_and_rows_keep_their_text(tmp_path, hash_encoder):
    texts = ["b text", "a", "b text", None, "ccc"]
    store = EmbeddingStore(tmp_path, "model-x")
    result = embed_texts(texts, hash_encoder, store, "model-x", chunk_size=2)
    assert hash_encoder.n_embedded == 3  # 3 distinct texts
    assert result.present.tolist() == [True, True, True, False, True]
    for i, text in enumerate(texts):
        expected = hash_encoder.vector(text) if text is not None else np.zeros(hash_encoder.dim)
        np.testing.assert_allclose(result.vectors[i], expected, rtol=1e-6)
    assert result.stats | {"texts_per_second": None, "seconds": 0} == {
        "texts_total": 4, "texts_unique": 3, "texts_embedded": 3, "cache_hits": 0,
        "texts_per_second": None, "seconds": 0, "dim": 8, "texts_repaired": 0,
    }  # fmt: skip
    # Sorted by length before chunking: the short text goes first.
    assert hash_encoder.calls[0] == ["a", "ccc"]


def test_second_run_reuses_the_cache_and_an_edit_reembeds_one_text(tmp_path, hash_encoder):
    store = EmbeddingStore(tmp_path, "m")
    texts = [f"overview number {i}" for i in range(20)]
    embed_texts(texts, hash_encoder, store, "m", chunk_size=8)
    first = hash_encoder.n_embedded
    again = embed_texts(texts, hash_encoder, store, "m", chunk_size=8)
    assert hash_encoder.n_embedded == first and again.stats["cache_hits"] == 20
    edited = texts[:5] + ["an edited overview"] + texts[6:]
    result = embed_texts(edited, hash_encoder, store, "m", chunk_size=8)
    assert hash_encoder.n_embedded == first + 1 and result.stats["texts_embedded"] == 1
    np.testing.assert_allclose(result.vectors[5], hash_encoder.vector("an edited overview"), rtol=1e-6)


def test_another_model_identity_does_not_share_vectors(tmp_path, hash_encoder):
    embed_texts(["x", "y"], hash_encoder, EmbeddingStore(tmp_path, "m1"), "m1")
    embed_texts(["x", "y"], hash_encoder, EmbeddingStore(tmp_path, "m2"), "m2")
    assert hash_encoder.n_embedded == 4


def test_corrupted_chunk_is_logged_and_recomputed(tmp_path, hash_encoder, caplog):
    store = EmbeddingStore(tmp_path, "m")
    texts = [f"t{i}" for i in range(6)]
    embed_texts(texts, hash_encoder, store, "m", chunk_size=3)
    chunks = sorted(Path(store.dir).glob("*.parquet"))
    assert len(chunks) == 2
    chunks[0].write_bytes(chunks[0].read_bytes()[:40])  # truncated
    with caplog.at_level(logging.WARNING):
        result = embed_texts(texts, hash_encoder, store, "m", chunk_size=3)
    assert "is damaged" in caplog.text
    assert result.stats["texts_embedded"] == 3
    for i, text in enumerate(texts):
        np.testing.assert_allclose(result.vectors[i], hash_encoder.vector(text), rtol=1e-6)


def test_missing_text_policies():
    assert prepare_texts(["a", None, "  ", float("nan"), " b "], "drop") == (["a", None, None, None, "b"], 3)
    assert prepare_texts(["a", None], "empty") == (["a", ""], 1)


def test_all_missing_is_a_clear_error(tmp_path, hash_encoder):
    with pytest.raises(InputError, match="every value is missing"):
        embed_texts([None, None], hash_encoder, EmbeddingStore(tmp_path, "m"), "m", label="overviews")


def test_unreachable_hub_model_says_what_to_do():
    with pytest.raises(InputError) as err:
        resolve_model("movie-ratings-tests/no-such-model-7f3a")
    message = str(err.value)
    assert "cannot fetch it from the Hugging Face hub" in message
    assert "embedding.model=DIR" in message and "\n" not in message


def test_missing_local_folder(tmp_path):
    with pytest.raises(InputError, match="no such local folder"):
        resolve_model(str(tmp_path / "model"))


def test_local_model_identity_follows_its_weights_within_one_process(tmp_path):
    """The weights hash is kept per process (the CLI computes it while Prefect's server starts), but
    a weights file changed in between gives a new identity: vectors of other weights never mix."""
    import shutil

    from tasks.encoder import bundled_model_path, prehash

    folder = tmp_path / "model"
    shutil.copytree(bundled_model_path(), folder)
    prehash(str(folder))
    first = resolve_model(str(folder)).identity
    assert resolve_model(str(folder)).identity == first
    with open(folder / "model.safetensors", "r+b") as fh:  # same size, other bytes
        fh.seek(-64, 2)
        fh.write(bytes(64))
    changed = resolve_model(str(folder)).identity
    assert changed != first
    assert resolve_model(str(folder)).identity == changed


def test_bundled_model_column_names_follow_its_dimension(tmp_path):
    source = resolve_model("all-MiniLM-L6-v2")
    assert source.identity == resolve_model("all-MiniLM-L6-v2").identity
    assert source.identity != resolve_model("all-MiniLM-L6-v2", normalize=False).identity
    encode = sentence_encoder(source, "cpu", batch_size=8, normalize=True)
    texts = ["A lonely astronaut drifts through space.", "Two friends open a bakery in Paris."]
    result = embed_texts(texts, encode, EmbeddingStore(tmp_path, source.identity), source.identity)
    dim = result.vectors.shape[1]
    assert dim == 384  # all-MiniLM-L6-v2
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-5)  # normalize_embeddings
    M, names = movie_block({"title": result.vectors, "overview": result.vectors})
    assert names[0] == "title_embedding_0" and names[dim - 1] == f"title_embedding_{dim - 1}"
    assert names[dim] == "overview_embedding_0" and len(names) == 2 * dim == M.shape[1]


def test_bfloat16_gives_the_same_vectors_to_four_decimals():
    source = resolve_model("all-MiniLM-L6-v2")
    texts = ["A lonely astronaut drifts through space.", "Two friends open a bakery in Paris.", "Heat (1995)"]
    full = sentence_encoder(source, "cpu", batch_size=8, normalize=True, precision="float32")(texts)
    half = sentence_encoder(source, "cpu", batch_size=8, normalize=True, precision="bfloat16")(texts)
    assert half.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, rtol=1e-5)
    assert (full * half).sum(axis=1).min() > 0.999
    assert not np.array_equal(full, half)  # really computed in another precision


def flip_bytes(path, count: int = 20, seed: int = 0) -> None:
    """Flip ``count`` bytes inside the file's data pages (after the 4-byte magic, before the footer)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.choice(np.arange(4, len(data) // 2), size=count, replace=False):
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("seed", range(5))
def test_flipped_bytes_in_a_vector_file_are_never_used(tmp_path, hash_encoder, caplog, seed):
    """Flipped bytes may leave a Parquet file readable with wrong values (e.g. 7e33): the per-chunk
    checksum catches that, the chunk is removed and embedded again."""
    store = EmbeddingStore(tmp_path, "m")
    texts = [f"text number {i}" for i in range(97)]
    embed_texts(texts, hash_encoder, store, "m", chunk_size=97)
    (chunk,) = Path(store.dir).glob("*.parquet")
    flip_bytes(chunk, seed=seed)
    with caplog.at_level(logging.WARNING):
        assert store.keys() == set()  # planning sees the damaged chunk as missing
    assert "is damaged" in caplog.text and not chunk.exists()
    embed_texts(texts, hash_encoder, store, "m", chunk_size=97)
    flip_bytes(next(Path(store.dir).glob("*.parquet")), seed=seed)
    result = embed_texts(texts, hash_encoder, store, "m", chunk_size=97)
    assert result.stats["texts_embedded"] == 97
    expected = np.stack([hash_encoder.vector(t) for t in texts])
    np.testing.assert_array_equal(result.vectors, expected)


def test_a_chunk_without_checksum_is_recomputed(tmp_path, hash_encoder, caplog):
    """A planted file with the right name and plausible content but no checksum is not trusted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.vector_store import _chunk_name, text_key

    store = EmbeddingStore(tmp_path, "m")
    keys = [text_key("m", "x")]
    bogus = pa.table({"key": keys, "vector": pa.FixedSizeListArray.from_arrays(pa.array([7e33] * 8, pa.float32()), 8)})
    Path(store.dir).mkdir(parents=True)
    pq.write_table(bogus, Path(store.dir) / f"{_chunk_name(keys)}.parquet")
    with caplog.at_level(logging.WARNING):
        result = embed_texts(["x"], hash_encoder, store, "m")
    assert "no checksum" in caplog.text
    np.testing.assert_array_equal(result.vectors[0], hash_encoder.vector("x"))


def test_a_texts_vector_barely_depends_on_its_batch_mates():
    """Padding to a longer batch-mate changes the matrix shapes, hence the rounding: in float32 the
    vector of a text is the same to 1e-6 alone or in any batch; in bfloat16 (the auto precision on a
    CPU with native bf16) to cosine 0.9999 (max 1e-3 per component). The store keeps whichever vector
    a run computed first; docs/reliability.md gives the effect on metrics (~1e-6 RMSE)."""
    source = resolve_model("all-MiniLM-L6-v2")
    text = "Heat (1995)"
    mates = ["A seasoned detective hunts a meticulous crew of bank robbers across Los Angeles while his "
             "marriage falls apart and the thief weighs one last score against a quiet life. " * 2] * 5  # fmt: skip
    for precision, cos_min, max_abs in (("float32", 1 - 1e-6, 1e-6), ("bfloat16", 0.9999, 2e-3)):
        encode = sentence_encoder(source, "cpu", batch_size=64, normalize=True, precision=precision)
        alone, in_batch = encode([text])[0], encode([text, *mates])[0]
        assert float(alone @ in_batch) >= cos_min, precision
        assert float(np.abs(alone - in_batch).max()) <= max_abs, precision


def test_assemble_repairs_texts_lost_after_planning(tmp_path, hash_encoder, caplog):
    """A concurrent clean-up between planning and assembling: the lost texts are embedded again
    through the same embed_chunk, and counted."""
    from tasks.embed import assemble, plan_chunks

    store = EmbeddingStore(tmp_path, "m")
    texts = ["x", "yy", "zzz"]
    embed_texts(texts, hash_encoder, store, "m", chunk_size=2)
    assert plan_chunks(texts, "m", store, 2) == []
    for chunk in Path(store.dir).glob("*.parquet"):
        chunk.unlink()
    with caplog.at_level(logging.WARNING):
        result = assemble(texts, "m", store, "texts", encode=hash_encoder)
    assert result.stats["texts_repaired"] == 3 and "vanished" in caplog.text
    np.testing.assert_array_equal(result.vectors[2], hash_encoder.vector("zzz"))
    with pytest.raises(RuntimeError, match="not in the embedding store"):
        assemble(["new"], "m", store, "texts")


def test_a_worker_finds_the_model_where_its_own_install_keeps_it():
    """The flow sends its ModelSource to Dask workers; a worker whose install puts the bundled model
    elsewhere resolves the name again, and must find the same weights."""
    from dataclasses import replace

    from tasks.encoder import backend_identity, on_this_machine

    source = resolve_model("all-MiniLM-L6-v2")
    moved = replace(source, path="/nowhere/on/this/worker/model")
    assert on_this_machine(moved, normalize=True) == source
    int8 = replace(moved, identity=backend_identity(source.identity, "openvino-int8"), backend="openvino-int8")
    assert on_this_machine(int8, normalize=True).path == source.path
    other = replace(moved, identity="0" * 64)
    with pytest.raises(InputError, match="this machine has other weights"):
        on_this_machine(other, normalize=True)
