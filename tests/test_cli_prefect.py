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


def test_a_first_run_with_bad_input_creates_no_prefect_database(tmp_path):
    """On a new PREFECT_HOME the server (which creates the database) starts only once the input is
    checked: bad input leaves no half-migrated database behind."""
    home = tmp_path / "prefect-home"
    proc = cli_run("--set", f"data.dir={tmp_path / 'missing'}", "--set", f"cache.dir={tmp_path / 'c'}",
                   cwd=tmp_path, env_extra={"PREFECT_HOME": str(home)})  # fmt: skip
    assert_one_error_line(proc, str(tmp_path / "missing"))
    assert not (home / "prefect.db").exists()


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


def test_our_temporary_server_is_started_as_prefect_starts_its_own(monkeypatch):
    """flows/temporary_server.py copies Prefect's command and environment: a Prefect upgrade that
    changes them fails here."""
    import prefect.server.api.server as prefect_server

    from flows.temporary_server import SERVER_ENVIRONMENT, server_command

    calls = []
    monkeypatch.setattr(prefect_server.subprocess, "Popen", lambda args, env: calls.append((args, env)))
    prefect_server.SubprocessASGIServer(port=8123)._run_uvicorn_command()
    prefect_server.SubprocessASGIServer._instances.pop(8123, None)
    (args, env), = calls
    assert args == server_command(8123)
    assert SERVER_ENVIRONMENT.items() <= env.items()


def test_startup_stamp_follows_the_installation_the_migration_and_the_memo(tmp_path):
    import sqlite3

    from flows.temporary_server import STAMP, record_start, started_before

    db = tmp_path / "prefect.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
    connection.execute("INSERT INTO alembic_version VALUES ('a1')")
    connection.commit()
    assert not started_before(db)
    record_start(db)
    assert not (tmp_path / STAMP).exists()  # no memo of a block registration yet: nothing to skip
    (tmp_path / "memo_store.toml").write_text('block_auto_registration = "h1"\n')
    record_start(db)
    assert started_before(db)
    (tmp_path / "memo_store.toml").write_text('block_auto_registration = "h2"\n')  # another registration
    assert not started_before(db)
    record_start(db)
    connection.execute("UPDATE alembic_version SET version_num = 'a2'")  # migrated by another Prefect
    connection.commit()
    connection.close()
    assert not started_before(db)


def test_a_warm_cli_run_is_recorded_on_the_early_server(tmp_path):
    """Two command-line runs without PREFECT_API_URL: the second starts the server early (the
    database exists), skips its start-up work, and Prefect records its flow run, task runs and
    artifacts as for the first; the results are the same."""
    import json
    import sqlite3

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for name in ("first", "second"):
        proc = subprocess.run(
            [sys.executable, "-m", "flows", "run", "--set", f"cache.dir={tmp_path / 'c'}", "--out", str(tmp_path / name),
             "--set", "data.demo.ratings=500", "--set", "data.demo.movies=40", "--set", "data.demo.users=50"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (home / "movie-ratings-server.json").exists()  # written once the first server was up
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("first", "second")]
    assert metrics[0]["test_rmse"] == metrics[1]["test_rmse"] and metrics[1]["cached_tasks"]
    connection = sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True)
    runs = connection.execute("SELECT id, state_type FROM flow_run ORDER BY created").fetchall()
    assert [state for _, state in runs] == ["COMPLETED", "COMPLETED"]
    tasks, artifacts = (
        [{row[0] for row in connection.execute(f"SELECT {column} FROM {table} WHERE flow_run_id = ?", (run,))} for run, _ in runs]
        for table, column in (("task_run", "name"), ("artifact", "key"))
    )  # fmt: skip
    connection.close()
    stages = {"demo-data", "load", "model-source", "embed-title", "embed-overview", "merge", "features", "split", "train", "plots"}
    assert tasks[1] == stages and stages < tasks[0]  # the first run embedded too (embed-chunk task runs)
    assert {"movie-ratings-metrics", "movie-ratings-top-coefficients", "movie-ratings-report", "movie-ratings-outputs"} <= artifacts[1]


def test_no_early_server_when_the_profile_names_an_api(tmp_path, monkeypatch):
    from flows import temporary_server

    (tmp_path / "prefect.db").write_bytes(b"")
    (tmp_path / "profiles.toml").write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://team:4200/api"\n')
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    assert temporary_server.profile_names_an_api()
    temporary_server.start_early()
    assert temporary_server._server is None
    (tmp_path / "profiles.toml").write_text('active = "local"\n[profiles.local]\n')
    assert not temporary_server.profile_names_an_api()
