"""Where the seconds of a warm rerun go: the demo run as a user starts it, every result cached.

    .venv/bin/python benchmarks/warm_run.py                 # = make bench-warm
    .venv/bin/python benchmarks/warm_run.py --runs 5 --modes early,prefect
    .venv/bin/python benchmarks/warm_run.py --repo ../other-checkout --modes prefect   # another version's figures

Runs `python -m flows run` (the `movie-ratings run` command) in a fresh process per run, against a
cache and a PREFECT_HOME of its own (``--work``; the first run fills them and is not counted), and
reads the phases off the timestamps of Prefect's log lines:

- *ready*: start until "Starting temporary server" — interpreter, our imports and Prefect's,
  config, preflight (in mode ``prefect`` the line comes when Prefect starts the server);
- *first API call*: start until "Beginning flow run" — the flow run exists on the API server;
- *flow*: until the flow run's "Finished in state" line (metrics.json `seconds.flow_body` is the
  flow function's own part of it; the rest is outputs, artifacts and Prefect's bookkeeping);
- *exit*: from there until the process has exited (server stopped, interpreter shut down).

Modes: ``early`` (the default: the command line starts Prefect's temporary server while it imports,
``flows/temporary_server.py``) and ``prefect`` (``MOVIE_RATINGS_EARLY_SERVER=0``: Prefect starts it
on the first API call). Import seconds and the server's own start are measured in fresh processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| \w+\s+\| (.*)$")
MARKS = {
    "ready": "Starting temporary server on",
    "first_api_call": "Beginning flow run",
    "flow_end": "Finished in state",
}
IMPORTS = {
    "prefect": "import prefect",
    "a run's imports (Prefect's included)": "import flows.cli, tasks.preflight, flows.rating_flow",
    "prefect.server.api.server": "import prefect.server.api.server",
}


def environment(home: Path, mode: str, repo: Path = ROOT) -> dict[str, str]:
    # Python's defaults: bytecode caches written (read on the next run), no Prefect API configured
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PYTHONDONTWRITEBYTECODE")}
    env.update(
        PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(repo), MOVIE_RATINGS_EARLY_SERVER="0" if mode == "prefect" else "1",
    )  # fmt: skip
    return env


def log_times(output: str, started: float) -> dict[str, float]:
    """Seconds after ``started`` (epoch) of the first log line holding each mark (the flow's end: the
    flow run's line, not a task's)."""
    day = dt.datetime.fromtimestamp(started).replace(hour=0, minute=0, second=0, microsecond=0)
    found: dict[str, float] = {}
    for line in output.splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        h, m, s, ms, text = match.groups()
        at = (day + dt.timedelta(hours=int(h), minutes=int(m), seconds=int(s), milliseconds=int(ms))).timestamp()
        if at < started - 60:  # the run crossed midnight
            at += 86_400
        for name, mark in MARKS.items():
            if name not in found and mark in text and (name != "flow_end" or text.startswith("Flow run")):
                found[name] = at - started
    return found


def one_run(work: Path, mode: str, index: int, repo: Path) -> dict:
    out = work / "outputs" / f"{mode}-{index}"
    command = [sys.executable, "-m", "flows", "run", "--set", f"cache.dir={work / 'cache'}", "--out", str(out)]
    env = environment(work / "prefect-home", mode, repo)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_epoch, started = time.time(), time.perf_counter()
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    marks = log_times(proc.stdout + "\n" + proc.stderr, started_epoch)
    document = json.loads((out / "metrics.json").read_text())
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),  # the command and its server
        **marks,
        "flow_body": document["seconds"]["flow_body"],
        "exit": wall - marks.get("flow_end", wall),
        "cached": len(document.get("cached_tasks", [])),
    }


def import_seconds(statement: str, repo: Path) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = environment(Path(tempfile.gettempdir()), "early", repo)
    return float(subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout)


def server_start_seconds(home: Path, database_known: bool) -> float:
    """Prefect's temporary server alone: process start until its API answers, on the database in
    ``home``; with ``database_known`` it skips the start-up work an earlier start did (migration check,
    block registration), as a warm rerun's server does."""
    database = f"Path({str(home / 'prefect.db')!r})" if database_known else "None"
    code = (
        "import time; from pathlib import Path; t = time.perf_counter()\n"
        "from flows.temporary_server import TemporaryServer\n"
        f"s = TemporaryServer({database}); s.start(); s.wait(120); print(time.perf_counter() - t); s.stop()\n"
    )
    env = environment(home, "early")
    return float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)


def median(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    return f"{statistics.median(values):.2f}" if values else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed warm reruns per mode")
    parser.add_argument("--modes", default="early,prefect", help="comma-separated: early, prefect")
    parser.add_argument("--work", type=Path, default=None, help="cache + PREFECT_HOME folder (default: a new temporary one)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose code runs (default: this one)")
    args = parser.parse_args()
    repo = args.repo.resolve()
    work = args.work or Path(tempfile.mkdtemp(prefix="warm-run-"))
    (work / "prefect-home").mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", file=sys.stderr)
    first = one_run(work, "early", 0, repo)  # fills the cache (and creates Prefect's database); not counted
    print(f"filling run: {first['wall']:.1f} s", file=sys.stderr)

    rows = {}
    for mode in args.modes.split(","):
        rows[mode] = [one_run(work, mode, i + 1, repo) for i in range(args.runs)]
    print(f"\nWarm rerun of the demo profile ({repo}), {args.runs} runs per mode (median s; wall also min–max):\n")
    print("| mode | wall s | min–max | CPU s | ready | first API call | flow | flow body | exit | cached tasks |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode, runs in rows.items():
        walls = [r["wall"] for r in runs]
        flow = [r["flow_end"] - r["first_api_call"] for r in runs if "flow_end" in r and "first_api_call" in r]
        print(
            f"| {mode} | {median(runs, 'wall')} | {min(walls):.2f}–{max(walls):.2f} | {median(runs, 'cpu')} | "
            f"{median(runs, 'ready')} | {median(runs, 'first_api_call')} | "
            f"{statistics.median(flow):.2f} | {median(runs, 'flow_body')} | {median(runs, 'exit')} | {runs[0]['cached']} |"
        )
    print("\nImports in a fresh process (s):\n")
    for label, statement in IMPORTS.items():
        print(f"- {label}: {import_seconds(statement, repo):.2f}")
    home = work / "prefect-home"
    print(f"- Prefect's temporary server alone, start until its API answers: {server_start_seconds(home, False):.2f} "
          f"(full start-up), {server_start_seconds(home, True):.2f} (skipping the start-up work done before)")  # fmt: skip


if __name__ == "__main__":
    main()
