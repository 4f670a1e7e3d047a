"""Shared fixtures: one real Prefect test server per session, small generated data sets, and a
deterministic stand-in encoder for tests about caching/alignment (the real model is tested too)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One folder of converted (OpenVINO) models for the whole session, instead of one conversion per
# test cache dir (tests/test_backends.py checks the default, <cache.dir>/models, itself).
os.environ.setdefault("MOVIE_RATINGS_MODELS_DIR", os.path.join(tempfile.gettempdir(), f"movie-ratings-test-models-{os.getuid()}"))

# Prefect configures logging (dictConfig: the root logger's handlers replaced) when ``prefect.main``
# is first imported (``from prefect import task`` does it). Imported here, before any test, so that it
# never happens inside a test and drops the handler pytest's caplog put on the root logger (a test
# run alone then saw no log records).
import prefect.main  # noqa: E402,F401

SMALL = {"users": 80, "movies": 50, "ratings": 2500, "seed": 3}


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API (temporary SQLite database) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory) -> Path:
    from tasks.demo_data import write_demo_data

    out = tmp_path_factory.mktemp("small_csv")
    write_demo_data(out, layout="csv", **SMALL)
    return out


@pytest.fixture(scope="session")
def small_dat(tmp_path_factory) -> Path:
    from tasks.demo_data import write_demo_data

    out = tmp_path_factory.mktemp("small_dat")
    write_demo_data(out, layout="ml-1m", **SMALL)
    return out


class HashEncoder:
    """texts → deterministic unit vectors derived from sha256(text); counts what it was asked."""

    def __init__(self, dim: int = 8):
        self.dim = dim
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts])

    @property
    def n_embedded(self) -> int:
        return sum(len(c) for c in self.calls)


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder()


class S3Server:
    """moto's S3-compatible server on 127.0.0.1: the environment a client needs, and fresh buckets."""

    def __init__(self, port: int):
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self._n = 0

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(
            key="testing", secret="testing", client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
        )  # fmt: skip

    def bucket(self) -> str:
        """A new, empty bucket: its s3:// URL."""
        self._n += 1
        name = f"bucket-{self._n}"
        self.filesystem().mkdir(name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's server mode) for the session, stopped at the end."""
    import sys

    from tests.processes import free_port, start, stop, wait_for_port

    folder = tmp_path_factory.mktemp("moto")
    port = free_port()
    log = folder / "moto.log"
    proc = start([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                 {**os.environ}, log, cwd=folder)  # fmt: skip
    try:
        wait_for_port(port, proc, log)
        yield S3Server(port)
    finally:
        stop(proc)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process talks to the moto server through the standard AWS variables (as users' runs do)."""
    import s3fs

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # instances remember the credentials they were made with
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()
