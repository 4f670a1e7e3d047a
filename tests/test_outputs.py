"""The output folder: never the user's files. Only an empty folder or an earlier output folder of
this tool is written to, and then only the tool's own files change; everything else stops before
any work with one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.errors import InputError
from tasks.outputs import MARKER, check_out_dir, write_run_outputs

NOT_OURS = "exists and is not a movie-ratings output folder"


def user_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "thesis.tex").write_text("years of work")
    (root / "data").mkdir()
    (root / "data" / "notes.txt").write_text("keep me")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_new_folder_gets_the_files_and_a_marker(tmp_path):
    out = write_run_outputs(tmp_path / "a" / "b", {"metrics.json": b"{}", "scatter.png": b"png"})
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "metrics.json", "scatter.png"])
    assert json.loads((out / MARKER).read_text()) == {"tool": "movie-ratings", "files": ["metrics.json", "scatter.png"]}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_rerun_replaces_only_its_own_files(tmp_path):
    out = write_run_outputs(tmp_path / "run", {"metrics.json": b"1", "alpha_curve.png": b"old"})
    (out / "my-notes.md").write_text("the user's own file")
    write_run_outputs(out, {"metrics.json": b"2", "scatter.png": b"new"})
    assert (out / "metrics.json").read_bytes() == b"2"
    assert not (out / "alpha_curve.png").exists()  # written by the tool last time, not this time
    assert (out / "my-notes.md").read_text() == "the user's own file"
    assert json.loads((out / MARKER).read_text())["files"] == ["metrics.json", "scatter.png"]


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    write_run_outputs(tmp_path / "empty", {"metrics.json": b"{}"})
    assert (tmp_path / "empty" / "metrics.json").exists()


@pytest.mark.parametrize(
    "marker",
    [None, "not json", json.dumps({"tool": "other"}), json.dumps({"tool": "movie-ratings", "files": ["../../etc/passwd"]})],
)
def test_a_folder_of_user_files_is_refused_and_left_alone(tmp_path, marker):
    root = user_folder(tmp_path / "mine")
    if marker is not None:
        (root / MARKER).write_text(marker)
    before = snapshot(root)
    for call in (lambda: check_out_dir(root), lambda: write_run_outputs(root, {"thesis.tex": b"x"})):
        with pytest.raises(InputError, match=NOT_OURS):
            call()
    assert snapshot(root) == before


def test_an_existing_file_is_refused(tmp_path):
    target = tmp_path / "existing_file.txt"
    target.write_text("data")
    with pytest.raises(InputError, match=f"--out {target}: {NOT_OURS}"):
        write_run_outputs(target, {"metrics.json": b"{}"})
    assert target.read_text() == "data"


def test_parent_is_a_file_or_not_writable(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"is a file, not a folder"):
        check_out_dir(tmp_path / "f" / "out")
    with pytest.raises(InputError, match=r"--out /proc/x: cannot write in /proc"):
        check_out_dir("/proc/x")


def cli_run(*args: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # no server: must fail before one starts
    env.update(env_extra or {})
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root)
    return subprocess.run(
        [sys.executable, "-m", "flows", "run", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, expected: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]


@pytest.mark.parametrize(
    "make_out, expected",
    [
        (lambda d: ".", f"--out .: {NOT_OURS}"),
        (lambda d: "existing_file.txt", f"--out existing_file.txt: {NOT_OURS}"),
        (lambda d: "data", f"--out data: {NOT_OURS}"),
        (lambda d: "/proc/x", "--out /proc/x: cannot write in /proc"),
        (lambda d: "existing_file.txt/out", "existing_file.txt is a file, not a folder"),
    ],
    ids=["dot", "file", "user-folder", "proc", "parent-is-file"],
)
def test_cli_refuses_bad_out_before_any_work(tmp_path, make_out, expected):
    work = user_folder(tmp_path / "work")
    (work / "existing_file.txt").write_text("mine")
    before = snapshot(work)
    started = time.perf_counter()
    proc = cli_run("--out", make_out(work), "--set", f"cache.dir={tmp_path / 'cache'}", cwd=work)
    seconds = time.perf_counter() - started
    assert_one_error_line(proc, expected)
    assert snapshot(work) == before
    assert not (tmp_path / "cache" / "objects").exists()  # stopped before the pipeline
    assert seconds < 30, f"took {seconds:.1f} s: the check must come before Prefect starts"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("cache.dir={tmp}/file", "cache.dir {tmp}/file: is a file, not a folder"),
        ("cache.dir=/proc/cache", "cache.dir /proc/cache: cannot create or write it"),
        ("runner.kind=dask", None),
        ("data.dir={tmp}/nowhere", "data dir {tmp}/nowhere: does not exist or is not a directory"),
    ],
)
def test_cli_refuses_bad_paths_before_any_work(tmp_path, override, expected):
    (tmp_path / "file").write_text("x")
    args = ["--set", override.format(tmp=tmp_path)]
    if override == "runner.kind=dask":  # a scheduler address where nothing listens (port 9 = discard)
        args += ["--set", "runner.address=tcp://127.0.0.1:9"]
        expected = "runner.address tcp://127.0.0.1:9: no Dask scheduler reachable"
    if not override.startswith("cache.dir"):
        args += ["--set", f"cache.dir={tmp_path / 'cache'}"]
    proc = cli_run(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_error_line(proc, expected.format(tmp=tmp_path))
    assert not (tmp_path / "out").exists()


def test_cli_cuda_device_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = cli_run("--set", "embedding.device=cuda", "--set", f"cache.dir={tmp_path}", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert_one_error_line(proc, "embedding.device=cuda: no CUDA GPU is visible")


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail with EFBIG, as on a full disk
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_in_cache_dir_is_one_line(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "flows", "run", "--set", f"cache.dir={tmp_path / 'cache'}", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300, preexec_fn=_file_size_limit(64_000),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {tmp_path / 'cache'}") and "(File too large)" in last, last
    assert not (tmp_path / "out").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]  # nothing half-written left behind


def test_full_disk_in_out_leaves_nothing(tmp_path):
    script = (
        "import sys\nfrom tasks.errors import InputError\nfrom tasks.outputs import write_run_outputs\n"
        "try:\n    write_run_outputs(sys.argv[1], {'metrics.json': b'{}', 'scatter.png': b'x' * 200_000})\n"
        "except InputError as exc:\n    print(exc)\n    sys.exit(2)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out")], capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[1], preexec_fn=_file_size_limit(100_000),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.startswith(f"--out {tmp_path / 'out'}: cannot write the outputs (File too large)")
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging folder


def _listener(reply: bytes | None):
    """A TCP server on a free port that sends ``reply`` to each connection (None: stays silent)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if reply is not None:
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


@pytest.mark.parametrize(
    "reply, expected",
    [(b"HTTP/1.1 200 OK\r\n\r\n" + b"\xff" * 64, "something answers on that port, but not a Dask scheduler"),
     (None, "connected, but nothing answered within 1 s: not a Dask scheduler")],  # fmt: skip
    ids=["http", "silent"],
)
def test_something_else_on_the_dask_port_is_named(reply, expected):
    from tasks.preflight import check_dask_address

    server = _listener(reply)
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        with pytest.raises(InputError, match=f"runner.address {address}: no Dask scheduler reachable \\({expected}"):
            check_dask_address(address, timeout=1.0)
    finally:
        server.close()


def test_a_real_dask_scheduler_passes():
    from distributed import LocalCluster

    from tasks.preflight import check_dask_address

    with LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        check_dask_address(cluster.scheduler_address)
