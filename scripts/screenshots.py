"""Screenshots of the Prefect UI for the README, taken with headless Chromium.

Usage: .venv/bin/python scripts/screenshots.py [--out-dir docs/images]

Starts a throwaway Prefect server (temporary PREFECT_HOME, a free port: the pictures show no URL),
runs the demo flow against it — the demo profile exactly as `make run` runs it, so the numbers in the
pictures are the README's — then screenshots the flow-run page (ui-flow-run.png) and the
`movie-ratings-report` artifact (ui-report.png), and copies that same run's scatter.png,
coefficients.png, support.png and printed summary (run-summary.txt, the README's table) beside them.
Drives the same headless Chromium (Selenium + chromium-driver, scripts/browser.py) as the real-browser
test; also takes the custom-run form (ui-run-form.png). Needs `apt-get install -y chromium chromium-driver`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.browser import headless_chromium, missing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"
FLOW_NAME = "movie-ratings"
REPORT_KEY = "movie-ratings-report"
DEMO_ARGS: list[str] = []  # the demo profile as `make run` runs it: the README's table and pictures agree
RUN_FILES = ("scatter.png", "coefficients.png", "support.png")


class ScreenshotError(RuntimeError):
    """A step failed; the message says which and why."""


def free_port() -> int:
    """Out: a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """In: port, environment (PREFECT_HOME set), log file. Out: the server process, in its own process group."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_healthy(server: subprocess.Popen, base: str, log: Path, timeout: float = 90.0) -> None:
    """In: server process, its base URL, its log. Returns once GET /api/health answers; raises otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ScreenshotError(f"prefect server exited ({server.returncode}):\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise ScreenshotError(f"prefect server not healthy at {base} after {timeout:.0f}s:\n{tail(log)}")


def stop_server(server: subprocess.Popen) -> None:
    """In: the server process. Terminates its whole process group (kills it after 15 s)."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)


def tail(path: Path, lines: int = 20) -> str:
    """In: a text file. Out: its last `lines` lines."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_flow(env: dict[str, str], tmp: Path) -> str:
    """In: environment pointing at the server, scratch folder. Runs the demo flow; raises if it
    fails. Out: the summary it printed (stdout)."""
    scratch = ["--set", f"cache.dir={tmp / 'cache'}", "--out", str(tmp / "out")]
    command = [str(BIN / "movie-ratings"), "run", *DEMO_ARGS, *scratch]
    try:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise ScreenshotError("movie-ratings run took longer than 900 s") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise ScreenshotError(f"movie-ratings run failed ({done.returncode}):\n{output}")
    return done.stdout


def deploy(env: dict[str, str]) -> str:
    """The work pool and the deployments of prefect.yaml on the throwaway server; the id of
    movie-ratings/demo (for the custom-run form's picture)."""
    for args in (["work-pool", "create", "movie-ratings", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
        done = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ScreenshotError(f"prefect {' '.join(args)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")

    async def demo_id() -> str:
        from prefect import get_client

        async with get_client() as client:
            return str((await client.read_deployment_by_name("movie-ratings/demo")).id)

    return asyncio.run(demo_id())


async def find_ids(key: str = REPORT_KEY) -> tuple[str, str]:
    """Out: (id of the latest flow run of FLOW_NAME, id of its ``key`` artifact); needs PREFECT_API_URL set."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, FlowFilter, FlowFilterName,
    )  # fmt: skip
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        flow_filter = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
        runs = await client.read_flow_runs(flow_filter=flow_filter, sort=FlowRunSort.START_TIME_DESC, limit=1)
        if not runs:
            raise ScreenshotError(f"no flow run of {FLOW_NAME!r} on the server")
        artifact_filter = ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id])
        )
        artifacts = await client.read_artifacts(artifact_filter=artifact_filter, limit=1)
        if not artifacts:
            raise ScreenshotError(f"flow run {runs[0].name} has no {key!r} artifact")
        return str(runs[0].id), str(artifacts[0].id)


def screenshot(driver, url: str, target: Path, size: str, settle: float = 6.0) -> None:
    """In: the browser, page URL, PNG path, window size 'W,H'. Writes the PNG once the page settled
    (the UI renders after its API calls)."""
    width, height = (int(v) for v in size.split(","))
    driver.set_window_size(width, height)
    driver.get(url)
    time.sleep(settle)
    target.unlink(missing_ok=True)
    if not driver.save_screenshot(str(target)):
        raise ScreenshotError(f"chromium could not screenshot {url}")


def take_screenshots(out_dir: Path) -> list[Path]:
    """In: output folder. Runs server + flow + Chromium end to end. Out: the PNG paths written."""
    with tempfile.TemporaryDirectory(prefix="movie-ratings-shots-") as name:
        tmp = Path(name)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_API_URL": f"{base}/api",
            "PREFECT_UI_API_URL": f"{base}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        }
        os.environ.update(env)
        server = start_server(port, env, tmp / "server.log")
        try:
            wait_healthy(server, base, tmp / "server.log")
            print(f"prefect server up at {base}; running the flow...", flush=True)
            summary = run_flow(env, tmp)
            flow_run_id, artifact_id = asyncio.run(find_ids())
            outputs_id = asyncio.run(find_ids("movie-ratings-outputs"))[1]
            out_dir.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:
                shutil.copyfile(tmp / "out" / name, out_dir / name)
            (out_dir / "run-summary.txt").write_text(summary.replace(str(tmp / "out"), "outputs/<run name>"))
            pages = [
                (f"{base}/v2/runs/flow-run/{flow_run_id}", out_dir / "ui-flow-run.png", "1400,1000"),
                (f"{base}/v2/artifacts/artifact/{artifact_id}", out_dir / "ui-report.png", "1400,3300"),
                (f"{base}/v2/artifacts/artifact/{outputs_id}", out_dir / "ui-outputs.png", "1400,700"),
                (f"{base}/deployments/deployment/{deploy(env)}/run", out_dir / "ui-run-form.png", "1400,1400"),
            ]
            driver = headless_chromium()
            try:
                for url, target, size in pages:
                    screenshot(driver, url, target, size)
            finally:
                driver.quit()
        finally:
            stop_server(server)
        return [target for _, target, _ in pages] + [out_dir / n for n in (*RUN_FILES, "run-summary.txt")]


def main() -> int:
    """Parses --out-dir, takes the screenshots, prints the paths. Out: exit status (2 = Chromium missing)."""
    parser = argparse.ArgumentParser(description="Screenshot the Prefect UI for the README.")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/images"), help="relative to the repo root")
    out_dir = REPO / parser.parse_args().out_dir
    if missing():
        print(f"error: no headless browser: {missing()}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        paths = take_screenshots(out_dir)
    except ScreenshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    print(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
