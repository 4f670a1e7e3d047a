"""The command line around Prefect's temporary server: a damaged database named in one line, and no
server process left behind after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_outputs import assert_one_error_line, cli_run


def test_corrupt_prefect_database_is_named(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "prefect.db").write_bytes(b"this is not a database" * 100)
    proc = cli_run("--set", f"cache.dir={tmp_path / 'c'}", "--out", str(tmp_path / "o"), cwd=tmp_path,
                   env_extra={"PREFECT_HOME": str(home)})  # fmt: skip
    assert_one_error_line(proc, f"Prefect database {home / 'prefect.db'} is damaged")
    assert "mv " in proc.stderr and not (tmp_path / "o").exists()


def test_healthy_or_missing_database_passes(tmp_path):
    import sqlite3

    from flows.prefect_setup import check_database

    check_database(tmp_path / "missing.db")
    db = tmp_path / "ok.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    check_database(db)


def server_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "uvicorn"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its table entry waits to be reaped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_kill_9_leaves_no_ephemeral_server_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows", "run", "--set", f"cache.dir={tmp_path / 'c'}", "--out", str(tmp_path / "o"),
         "--set", "data.demo.ratings=500"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline, children = time.time() + 120, []
    while time.time() < deadline and not children and proc.poll() is None:
        children = server_children(proc.pid)
        time.sleep(0.2)
    assert children, "the run never started an ephemeral server"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(c) for c in children):
        time.sleep(0.2)
    assert not any(alive(c) for c in children), "the ephemeral server outlived its killed parent"
