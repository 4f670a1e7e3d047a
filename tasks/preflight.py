"""Checks that need no data processing, run before any work: the output folder, the cache folder,
the data folder's layout and headers, the device and the Dask scheduler.

The CLI runs them before it starts Prefect (a bad path fails in a fraction of a second, not after
the ephemeral server's start-up), and the flow runs them again first thing, for runs started from
the UI or a deployment. Each failure is one ``InputError`` line naming the culprit.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlparse

from tasks.atomic import probe_write
from tasks.errors import InputError
from tasks.locations import check_remote_store, is_remote, local_path
from tasks.load import check_data_dir
from tasks.outputs import check_out_dir

DASK_CONNECT_SECONDS = 5.0


def check_cache_dir(cache_dir: str | os.PathLike) -> str:
    """The cache folder exists (or is created) and is writable; an object-store URL accepts a probe
    object and gives it back (credentials, bucket and endpoint checked in one round trip)."""
    if is_remote(cache_dir):
        check_remote_store(str(cache_dir))
        return str(cache_dir)
    path = local_path(cache_dir)
    if path.exists() and not path.is_dir():
        raise InputError(f"cache.dir {cache_dir}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_write(path)
    except OSError as exc:
        raise InputError(f"cache.dir {cache_dir}: cannot create or write it ({exc.strerror or exc})") from None
    return str(path)


def check_device(device: str) -> None:
    """An explicit CUDA/MPS device must exist (torch is imported only for those)."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available():
            raise InputError(f"embedding.device={device}: no CUDA GPU is visible to torch {torch.__version__} (use auto or cpu)")
        if index >= torch.cuda.device_count():
            raise InputError(f"embedding.device={device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("embedding.device=mps: Apple's MPS backend is not available here (use auto or cpu)")


def check_dask_address(address: str, timeout: float = DASK_CONNECT_SECONDS) -> None:
    """The scheduler's TCP port accepts a connection within ``timeout`` seconds."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or not parsed.port:
        raise InputError(f"runner.address {address!r}: expected tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")
    started = time.monotonic()

    def unreachable(reason: str) -> InputError:
        return InputError(
            f"runner.address {address}: no Dask scheduler reachable ({reason} after {time.monotonic() - started:.1f} s); "
            f"start one with `dask scheduler` or leave runner.address empty for a local cluster"
        )

    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout) as conn:
            greeting = _read_greeting(conn, timeout)
    except OSError as exc:
        raise unreachable("timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))) from None
    # Something listens; a Dask scheduler greets first with its handshake (msgpack naming
    # "compression" and "pickle-protocol"). Handing anything else to distributed's client can end in
    # a MemoryError (bytes read as a frame length of exabytes) and a 10 s hang at exit.
    if not greeting:
        raise unreachable(f"connected, but nothing answered within {timeout:.0f} s: not a Dask scheduler")
    if b"pickle-protocol" not in greeting:
        raise unreachable(f"something answers on that port, but not a Dask scheduler ({greeting[:24]!r})")


def _read_greeting(conn: socket.socket, timeout: float, size: int = 128) -> bytes:
    data = b""
    conn.settimeout(timeout)
    try:
        while len(data) < size and b"pickle-protocol" not in data:
            chunk = conn.recv(size)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def preflight(config, out: str | os.PathLike | None) -> None:
    """Every check above for one run configuration (``configs.schema.RunConfig``)."""
    if out is not None:
        check_out_dir(out)
    check_cache_dir(config.cache.location)
    if config.data.dir:
        check_data_dir(config.data.dir)
    check_device(config.embedding.device)
    if config.runner.kind == "dask" and config.runner.address:
        check_dask_address(config.runner.address)
