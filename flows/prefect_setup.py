"""How the command line runs Prefect: offline, quiet, and without leaving processes behind.

With no ``PREFECT_API_URL`` Prefect starts a temporary ("ephemeral") API server in a subprocess on the
first API call, on the SQLite database under ``PREFECT_HOME``. Three things about it a user meets:

- a corrupt ``prefect.db`` makes that server fail to start, and Prefect reports only "Timed out while
  attempting to connect to ephemeral Prefect API server" after a dozen tracebacks: ``check_database``
  opens the file first and names it;
- on a busy machine the server can need more than Prefect's default 20 s to start: we allow 90 s;
- after ``kill -9`` of the command the server subprocess would live on (Prefect stops it from an
  ``atexit`` hook, which a SIGKILL skips): ``die_with_parent`` makes the kernel send it SIGTERM
  when our process ends (Linux ``PR_SET_PDEATHSIG``).

The command line starts that server itself, earlier than Prefect would (``flows/temporary_server.py``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import InputError

STARTUP_TIMEOUT_SECONDS = "90"
EPHEMERAL_TIMEOUT_MESSAGE = "Timed out while attempting to connect to ephemeral Prefect API server"


def quiet_offline_defaults() -> None:
    """Environment defaults for a command-line run (a user's own settings win): no telemetry (an
    offline machine would log an ERROR for each failed send) and a patient ephemeral server start."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", STARTUP_TIMEOUT_SECONDS)


def ephemeral_database() -> Path | None:
    """The SQLite file the ephemeral server will open; None when a server is configured
    (``PREFECT_API_URL``) or the database is not SQLite."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return None
    url = settings.server.database.connection_url
    url = url.get_secret_value() if url is not None else ""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix) or url.endswith(":memory:"):
        return None
    return Path(url[len(prefix) :])


def check_database(path: Path | None = None) -> None:
    """A present ``prefect.db`` must open as SQLite with a readable schema (a missing one is created
    by Prefect). Raises InputError naming the file and what to do."""
    path = path if path is not None else ephemeral_database()
    if path is None or not path.exists():
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(16)
        if header and header != b"SQLite format 3\x00":
            raise sqlite3.DatabaseError("file is not a database")
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except (OSError, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return  # another run holds it: a healthy database
        raise InputError(
            f"Prefect database {path} is damaged ({exc}); it only holds Prefect's run history: move it "
            f"away (mv {path} {path}.broken) and run again, or set PREFECT_HOME to another folder"
        ) from None


def _set_parent_death_signal() -> None:  # runs in the child, between fork and exec
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def die_with_parent() -> None:
    """Make Prefect's ephemeral server subprocess end with this process, even on SIGKILL.

    Prefect starts it with ``subprocess.Popen`` in ``prefect.server.api.server`` and offers no hook;
    we give that module a ``subprocess`` whose ``Popen`` adds a ``preexec_fn`` setting
    ``PR_SET_PDEATHSIG``. The signal follows the *thread* that started the child: Prefect starts the
    server from its process-long event-loop thread, so it fires when the process ends."""
    if not hasattr(os, "fork") or not Path("/proc/self").exists():  # Linux only
        return
    import functools
    import subprocess
    import types

    import prefect.server.api.server as server

    if getattr(server.subprocess, "_movie_ratings", False):
        return
    proxy = types.ModuleType("subprocess")
    proxy.__dict__.update(subprocess.__dict__)
    proxy.Popen = functools.partial(subprocess.Popen, preexec_fn=_set_parent_death_signal)
    proxy._movie_ratings = True
    server.subprocess = proxy


@contextmanager
def prepare_cli_run() -> Iterator[None]:
    """Around the flow call of a command-line run: everything above. With no Prefect API
    configured, the temporary server is ours (``flows/temporary_server.py``, started early) and the
    run sends no heartbeats: they let a lasting server notice a crashed run, and this server ends
    with the process (Prefect's heartbeat thread also held the end of each run up to 1 s)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    from flows import temporary_server

    quiet_offline_defaults()
    settings = get_current_settings()
    if settings.api.url:
        temporary_server.discard()
        yield
        return
    check_database()
    if not temporary_server.enabled():
        die_with_parent()
    else:
        temporary_server.use_temporary_server(ephemeral_database(), settings.server.ephemeral.startup_timeout_seconds)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
