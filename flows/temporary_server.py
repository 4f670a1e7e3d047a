"""Prefect's temporary API server, started by the command line as soon as the run's configuration
is valid, so that its start-up overlaps the run's own imports.

With no ``PREFECT_API_URL``, Prefect starts a temporary server on the first API call of a run: after
every import, and only once its client has imported ``prefect.server.api.server`` (~1.5 s) to
start it. The server then needs ~3 s (mostly its own imports) before it answers. Here the same
process is started earlier, with the command and environment of Prefect's
``SubprocessASGIServer._run_uvicorn_command`` (uvicorn on ``create_app``, UI off, ephemeral
services only), and Prefect is pointed at it through ``PREFECT_API_URL``: the same server app on the
same database, so the run is recorded exactly as in Prefect's own ephemeral mode.
``tests/test_cli_prefect.py`` checks the command against Prefect's.

Like Prefect's, the server is stopped from an ``atexit`` hook (after Prefect has sent its last
logs and events), and the kernel stops it if this process is killed (``PR_SET_PDEATHSIG``).
``MOVIE_RATINGS_EARLY_SERVER=0`` leaves the start to Prefect.

Start-up work: on every start Prefect's server checks its database migrations (~0.1 s) and imports
every installed Prefect collection (here prefect-dask, which imports dask.distributed: ~0.5 s) only to
hash the block registry and find it unchanged since the last start (``memo_store.toml``). Once one of
our servers has started on a database with this installation, later ones skip both
(``PREFECT_SERVER_DATABASE_MIGRATE_ON_START``, ``PREFECT_SERVER_REGISTER_BLOCKS_ON_START``) while
nothing changed: the site-packages folder (it changes when a package is installed or removed), the
database's migration version and Prefect's memo are what they were then (``movie-ratings-server.json``
beside the database).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

STARTUP_FAILURE = 3  # uvicorn's exit code when it cannot bind its port (another process took it)
# What Prefect sets for its temporary server (prefect/server/api/server.py, _run_uvicorn_command).
SERVER_ENVIRONMENT = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
SKIP_STARTUP_WORK = {
    "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false", "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}  # fmt: skip
DATABASE_SETTINGS = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")
STAMP = "movie-ratings-server.json"

logger = logging.getLogger("prefect")  # where Prefect logs its own "Starting temporary server" line


def enabled() -> bool:
    return os.environ.get("MOVIE_RATINGS_EARLY_SERVER", "1") != "0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def site_packages() -> Path:
    """The folder Prefect is installed in, found without importing it."""
    return Path(importlib.util.find_spec("prefect").origin).parent.parent


def server_command(port: int) -> list[str]:
    """The command line Prefect runs for its temporary server."""
    return [
        sys.executable, "-m", "uvicorn", "--app-dir", str(site_packages()), "--factory",
        "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
        "--lifespan", "on",
    ]  # fmt: skip


def startup_state(database: Path) -> dict:
    """What the server's start-up work depends on: the installed packages, the database's migration
    version and Prefect's memo of its last block registration (None where unreadable)."""
    try:
        memo = tomllib.loads((database.parent / "memo_store.toml").read_text(encoding="utf-8")).get("block_auto_registration")
    except (OSError, tomllib.TOMLDecodeError):
        memo = None
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)
        try:
            migration = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        finally:
            connection.close()
    except (sqlite3.Error, TypeError):
        migration = None
    return {"site_packages_mtime_ns": site_packages().stat().st_mtime_ns, "migration": migration, "memo": memo}


def started_before(database: Path) -> bool:
    """One of our servers has started on ``database`` with this installation, and nothing changed since."""
    try:
        stamp = json.loads((database.parent / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    state = startup_state(database)
    return None not in state.values() and stamp == state


def record_start(database: Path) -> None:
    """After a full start-up (migrations checked, block types registered) on ``database``."""
    state = startup_state(database)
    if None in state.values():
        return
    stamp = database.parent / STAMP
    partial = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(json.dumps(state), encoding="utf-8")
        os.replace(partial, stamp)
    except OSError:
        partial.unlink(missing_ok=True)  # only an optimisation: the next start does the full start-up


class TemporaryServer:
    """One server subprocess: started at once, waited for when the run needs it, stopped at exit."""

    def __init__(self, database: Path | None = None) -> None:
        """``database``: the SQLite file the server will use, when known; None: the full start-up."""
        self.database = database
        self.skip_startup_work = database is not None and started_before(database)
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.healthy = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        from flows.prefect_setup import _set_parent_death_signal

        self.port = free_port()
        env = {**os.environ, **SERVER_ENVIRONMENT, **(SKIP_STARTUP_WORK if self.skip_startup_work else {})}
        on_parent_death = _set_parent_death_signal if sys.platform.startswith("linux") else None
        self.process = subprocess.Popen(server_command(self.port), env=env, preexec_fn=on_parent_death)

    def wait(self, timeout: float) -> None:
        """Until the API answers; RuntimeError with Prefect's own wording when it does not in time."""
        from flows.prefect_setup import EPHEMERAL_TIMEOUT_MESSAGE

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() == STARTUP_FAILURE:
                self.start()  # its port was taken between free_port() and uvicorn's bind
                continue
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        self.healthy = True
                        if self.database is not None and not self.skip_startup_work:
                            record_start(self.database)
                        return
            except OSError:
                pass
            time.sleep(0.05)
        code = self.process.poll()
        raise RuntimeError(f"{EPHEMERAL_TIMEOUT_MESSAGE}." + (f" Ephemeral server process exited with code {code}." if code else ""))

    def stop(self) -> None:
        if self.process is None:
            return
        if self.healthy:
            logger.info("Stopping temporary server on %s", self.api_url.removesuffix("/api"))
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


_server: TemporaryServer | None = None


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def profile_names_an_api() -> bool:
    """The active profile of Prefect's profiles file sets PREFECT_API_URL (read without Prefect)."""
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or prefect_home() / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def default_database() -> Path | None:
    """Prefect's default SQLite file, ``$PREFECT_HOME/prefect.db``, when the environment names no
    other database (a profile still may: ``use_temporary_server`` checks)."""
    if any(os.environ.get(name) for name in DATABASE_SETTINGS):
        return None
    return prefect_home() / "prefect.db"


def same_file(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


def _start(database: Path | None) -> TemporaryServer:
    server = TemporaryServer(database)
    server.start()
    atexit.register(server.stop)
    return server


def start_early(new_database: bool = False) -> None:
    """Start the server now if the run will likely need one: no ``PREFECT_API_URL`` in the
    environment or the active profile, and Prefect's database already there, or ``new_database``
    (the run's input is checked: a first run's server creates the database, ~7 s of migrations, and
    is not stopped half-way by bad input). ``use_temporary_server`` decides for sure, with Prefect's
    settings."""
    global _server
    database = default_database()
    if _server is not None or not enabled() or os.environ.get("PREFECT_API_URL") or database is None:
        return
    if not database.is_file() and not new_database:
        return
    if profile_names_an_api():
        return
    from flows.prefect_setup import check_database
    from tasks.errors import InputError

    try:
        check_database(database)
    except InputError:
        return  # prepare_cli_run names it
    _server = _start(database)


def use_temporary_server(database: Path | None, timeout: float) -> None:
    """Point this process (and the processes it starts) at the temporary server on ``database``
    (Prefect's settings say which), starting it unless ``start_early`` did, and wait until it
    answers. Only for runs with no Prefect API configured."""
    global _server
    from prefect.context import refresh_global_settings_context

    if _server is not None and not same_file(_server.database, database):
        discard()  # a profile names another database than the one start_early assumed
    if _server is None:
        _server = _start(database)
    logger.info("Starting temporary server on %s", _server.api_url.removesuffix("/api"))
    _server.wait(timeout)
    os.environ["PREFECT_API_URL"] = _server.api_url
    # It serves no UI: no "View at <url>" line that would be a dead link (Prefect's ephemeral mode prints none).
    os.environ.setdefault("PREFECT_UI_URL", "")
    refresh_global_settings_context()


def discard() -> None:
    """Stop a server ``start_early`` started that the run does not use."""
    global _server
    if _server is not None:
        _server.stop()
        _server = None
