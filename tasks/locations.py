"""Where the store lives: a local folder, or an fsspec URL (``s3://bucket/prefix``, ``gs://…``).

Every read and write of the cache (store objects, per-text vectors, converted models, Prefect result
records) goes through these functions, so the same code serves a laptop's ``~/.cache`` and a bucket
that Dask workers on other machines share. A *location* is a string: a local path, or a URL whose
scheme names an fsspec filesystem (``file://`` is a local path). Credentials and endpoints are never
ours to configure: fsspec's filesystems read their usual environment and config (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``~/.aws/config``).

Publishing is atomic in both cases. Locally: temp file + rename (``tasks/atomic.py``). Object stores
have no rename, but a PUT or a server-side copy makes an object appear whole or not at all: the bytes
go to a unique temporary key, are verified there (size, and the MD5 the store computed on arrival,
else read back), and only then copied to their real key.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from tasks.atomic import atomic_write_bytes
from tasks.errors import InputError

TMP_SUFFIX = ".tmp"


def is_remote(location: str | os.PathLike) -> bool:
    """A URL with a scheme other than ``file`` (one-letter schemes are Windows drives)."""
    scheme = urlsplit(str(location)).scheme
    return len(scheme) > 1 and scheme != "file"


def has_credentials(location: str | os.PathLike) -> bool:
    """A URL carrying ``user[:secret]@`` before its host."""
    return is_remote(location) and "@" in urlsplit(str(location)).netloc


def local_path(location: str | os.PathLike) -> Path:
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    return Path(text).expanduser()


def normalized(location: str | os.PathLike) -> str:
    """A store root as one canonical string: an absolute-looking local path or the URL itself."""
    return str(location).rstrip("/") if is_remote(location) else str(local_path(location))


def join(root: str | os.PathLike, *parts: str) -> str:
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return str(local_path(root).joinpath(*parts))


def basename(location: str) -> str:
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def private_temp_dir(name: str) -> Path:
    """``<tmp>/movie-ratings-<uid>/<name>``: this user's local working copies when the cache is on an
    object store (the demo data the loader reads, a converted model OpenVINO opens). The top folder
    is private (0700) and must be ours: one another user created could hold planted files."""
    top = Path(tempfile.gettempdir()) / f"movie-ratings-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    top.mkdir(mode=0o700, exist_ok=True)
    info = top.stat()
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise InputError(f"{top}: belongs to another user or is open to others; remove it or set TMPDIR")
    folder = top / name
    folder.mkdir(exist_ok=True)
    return folder


def filesystem(location: str):
    """(fsspec filesystem, path inside it) for a URL; fsspec keeps one instance per protocol and options."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:
        scheme = urlsplit(location).scheme
        raise InputError(f"cache.dir {location}: no filesystem for {scheme}:// ({exc})") from None


def read_bytes(location: str) -> bytes:
    """The whole object; FileNotFoundError when there is none."""
    if not is_remote(location):
        return local_path(location).read_bytes()
    fs, path = filesystem(location)
    return fs.cat_file(path)


def list_files(folder: str, suffix: str) -> list[str]:
    """Locations of the files directly in ``folder`` whose names end with ``suffix``, sorted; none
    when the folder does not exist. Temporary keys of unfinished writes are left out."""
    if not is_remote(folder):
        path = local_path(folder)
        return [str(p) for p in sorted(path.glob(f"*{suffix}"))] if path.is_dir() else []
    fs, path = filesystem(folder)
    fs.invalidate_cache(path)
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return sorted(fs.unstrip_protocol(n) for n in names if n.endswith(suffix) and not n.endswith(TMP_SUFFIX))


def remove(location: str) -> None:
    """Delete a file or object if it is there."""
    if not is_remote(location):
        local_path(location).unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass


def _arrived_intact(fs, tmp: str, data: bytes) -> bool:
    """The temporary object holds ``data``: same size and the MD5 the store computed (S3's ETag of a
    single-part upload), or, where the store gives no MD5, the same bytes read back."""
    fs.invalidate_cache(tmp)
    info = fs.info(tmp)
    if int(info.get("size", -1)) != len(data):
        return False
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if len(etag) == 32 and "-" not in etag:
        return etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    return fs.cat_file(tmp) == data


def publish(location: str, data: bytes, durable: bool = True) -> None:
    """Write ``data`` at ``location`` so that readers see all of it or nothing (``durable``: see
    ``atomic_write_bytes``; remote stores are always)."""
    if not is_remote(location):
        atomic_write_bytes(local_path(location), data, durable)
        return
    fs, path = filesystem(location)
    tmp = f"{path}.{uuid.uuid4().hex}{TMP_SUFFIX}"
    try:
        fs.pipe_file(tmp, data)
        if not _arrived_intact(fs, tmp, data):
            raise OSError(f"{location}: the uploaded bytes do not match what was sent")
        fs.copy(tmp, path)
    finally:
        try:
            fs.rm_file(tmp)
        except (FileNotFoundError, OSError):
            pass
    fs.invalidate_cache(path.rsplit("/", 1)[0])


def describe_failure(exc: BaseException) -> str:
    """One line for a failed store access: the error's kind and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    if "credential" in f"{kind} {text}".lower():
        return f"no credentials ({kind}: {text}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the store's own config"
    return f"{kind}: {text}" if text else kind


ENDPOINT_CONNECT_SECONDS = 5.0


def _endpoint(fs) -> str | None:
    """The HTTP endpoint an S3 filesystem talks to (AWS_ENDPOINT_URL, ~/.aws/config or AWS's own)."""
    if "s3" not in getattr(fs, "protocol", ()) or not hasattr(fs, "connect"):
        return None
    fs.connect()
    return fs.s3.meta.endpoint_url


def _reachable(endpoint: str, timeout: float = ENDPOINT_CONNECT_SECONDS) -> bool:
    """A TCP connection to the endpoint opens within ``timeout`` (the S3 client would retry for ~25 s)."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_remote_store(root: str) -> None:
    """Write, read back and delete a probe object under ``root``: InputError (one line naming the
    URL and what failed) for a bad URL, missing credentials, a missing bucket or an unreachable endpoint."""
    if has_credentials(root):
        raise InputError("cache.dir: credentials do not belong in the URL; set them in the environment")
    fs, path = filesystem(root)
    if not path.strip("/"):
        raise InputError(f"cache.dir {root}: name a bucket (and a prefix), e.g. s3://my-bucket/movie-ratings")
    try:
        endpoint = _endpoint(fs)
    except Exception as exc:  # noqa: BLE001 - a broken AWS config file, an unknown region
        raise InputError(f"cache.dir {root}: cannot set up its client ({describe_failure(exc)})") from None
    if endpoint and not _reachable(endpoint):
        raise InputError(
            f"cache.dir {root}: cannot reach the endpoint {endpoint} (check AWS_ENDPOINT_URL or the network)"
        )
    probe = join(root, f".movie-ratings-probe-{uuid.uuid4().hex}")
    try:
        publish(probe, b"probe")
        if read_bytes(probe) != b"probe":
            raise OSError("a probe object read back differs from what was written")
        remove(probe)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - every store failure becomes one line, before any work
        raise InputError(f"cache.dir {root}: cannot write and read it back ({describe_failure(exc)})") from None
