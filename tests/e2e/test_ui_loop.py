"""The UI loop against a real Prefect server: pool + deployments from prefect.yaml, a worker, a run
with a parameter override, artifacts, logs, the schedule, a failing run's message, and `serve`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import processes
from tests.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMALL_DEMO = '{"demo": {"users": 80, "movies": 50, "ratings": 2500, "seed": 1}}'


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return processes.start(args, env, log, cwd=REPO)


@contextlib.contextmanager
def prefect_server(home: Path):
    """`prefect server start` on a free 127.0.0.1 port with PREFECT_HOME=home; yields the env to use."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PWD": str(REPO),  # prefect.yaml's pull step runs flows in this checkout
    }
    proc = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, home / "server.log")
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield {"env": env, "home": home, "api": env["PREFECT_API_URL"]}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect_home")) as running:
        yield running


@pytest.fixture
def own_server(tmp_path):
    """A second, empty server: `serve` must not share deployments with the worker's."""
    home = tmp_path / "prefect_home"
    home.mkdir()
    with prefect_server(home) as running:
        yield running


def prefect(server: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "prefect"), *args], env=server["env"], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def flow_run_id(output: str) -> str:
    return next(line.split("UUID:")[1].strip() for line in output.splitlines() if "UUID:" in line)


def client_call(server: dict, code: str) -> object:
    """Run `code` (an async body using `client`, ending in `return ...`) in a fresh process pointed at
    the server, so this test process's own Prefect settings stay untouched; returns its JSON result."""
    script = (
        "import asyncio, json\nfrom prefect import get_client\nfrom prefect.client.schemas.filters import *\n"
        "async def main():\n    async with get_client() as client:\n"
        + "\n".join("        " + line for line in code.strip().splitlines())
        + "\nprint(json.dumps(asyncio.run(main()), default=str))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=server["env"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_logs(server: dict, run_id: str) -> list:
    """[level, message] of every log line of a flow run, from the API."""
    return client_call(
        server,
        f"""
logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=["{run_id}"])))
return [[l.level, l.message] for l in logs]
""",
    )


def error_lines(logs: list) -> list[str]:
    return [message for level, message in logs if level >= 40]


def wait_final(server: dict, run_id: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client_call(
            server,
            f"""
r = await client.read_flow_run("{run_id}")
return {{"type": r.state.type.value, "name": r.state.name, "message": r.state.message, "parameters": r.parameters}}
""",
        )
        if run["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(2)
    pytest.fail(f"flow run {run_id} did not finish in {timeout} s")


@pytest.fixture(scope="module")
def deployed(server):
    prefect(server, "work-pool", "create", "movie-ratings", "--type", "process", "--overwrite")
    prefect(server, "--no-prompt", "deploy", "--all")
    worker = start(
        [str(BIN / "prefect"), "worker", "start", "--pool", "movie-ratings", "--type", "process"],
        server["env"], server["home"] / "worker.log",
    )  # fmt: skip
    yield server
    stop(worker)


def test_deployment_run_with_override_completes_with_artifacts_and_logs(deployed, tmp_path):
    out = tmp_path / "out"
    started = prefect(
        deployed, "deployment", "run", "movie-ratings/demo",
        "-p", 'model={"alpha": 3.25}', "-p", f"data={SMALL_DEMO}",
        "-p", json.dumps({"dir": str(tmp_path / "cache")}).join(["cache=", ""]), "-p", f"out={out}",
    )  # fmt: skip
    run_id = flow_run_id(started.stdout)
    run = wait_final(deployed, run_id)
    assert run["type"] == "COMPLETED", run
    assert run["parameters"]["model"] == {"alpha": 3.25}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"]["alpha"] == 3.25  # the override reached the flow
    assert metrics["config"]["data"]["demo"]["ratings"] == 2500

    artifacts = client_call(
        deployed,
        f"""
arts = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=["{run_id}"])))
return [{{"key": a.key, "type": a.type, "data": a.data}} for a in arts]
""",
    )
    by_key = {a["key"]: a for a in artifacts}
    assert {"movie-ratings-metrics", "movie-ratings-top-coefficients", "movie-ratings-report", "movie-ratings-outputs",
            "movie-ratings-embedding-title", "movie-ratings-embedding-overview"} <= set(by_key)  # fmt: skip
    table = json.loads(by_key["movie-ratings-metrics"]["data"])
    test_rmse = next(row for row in table if row["metric"] == "test_rmse")
    assert test_rmse["ridge"] == round(metrics["test_rmse"], 4)
    assert test_rmse["global_mean_baseline"] == round(metrics["baseline_test_rmse"], 4)
    top = json.loads(by_key["movie-ratings-top-coefficients"]["data"])
    assert [row["name"] for row in top] == [t["name"] for t in metrics["top_features"]] and len(top) == 20
    report = by_key["movie-ratings-report"]["data"]
    # scatter, support and coefficients figures, embedded so they render offline
    assert report.count("](data:image/png;base64,") == 3 and "alpha = 3.25" in report
    assert "RMSE by movie support" in report
    outputs = by_key["movie-ratings-outputs"]
    assert outputs["type"] == "markdown" and f"```\n{out.resolve()}\n```" in outputs["data"]  # copyable, no file:// link
    assert "file://" not in outputs["data"] and "- `metrics.json`" in outputs["data"]
    assert float(by_key["movie-ratings-embedding-overview"]["data"]) == 100.0

    text = "\n".join(message for _, message in run_logs(deployed, run_id))
    for piece in ("loaded csv layout", "rows out; dropped", "to embed in chunks", "texts/s", "Ridge(alpha=3.25, ",
                  "test RMSE", "cached tasks:"):  # fmt: skip
        assert piece in text, piece


def test_schedule_is_registered(deployed):
    schedules = client_call(
        deployed,
        """
demo = await client.read_deployment_by_name("movie-ratings/demo")
ml = await client.read_deployment_by_name("movie-ratings/ml-1m")
return {"demo": [(s.schedule.cron, s.active) for s in demo.schedules], "ml": len(ml.schedules), "pool": demo.work_pool_name}
""",
    )
    assert schedules == {"demo": [["0 6 * * *", True]], "ml": 0, "pool": "movie-ratings"}


def test_run_form_schema_has_titles_descriptions_and_bounds(deployed):
    """The UI's run form is rendered from the deployment's parameter schema."""
    schema = client_call(
        deployed,
        """
d = await client.read_deployment_by_name("movie-ratings/demo")
return d.parameter_openapi_schema
""",
    )
    assert {"data", "embedding", "split", "model", "plot", "cache", "runner"} <= set(schema["properties"])
    model = schema["definitions"]["ModelConfig"]["properties"]
    assert model["alpha"]["title"] == "Alpha" and model["alpha"]["exclusiveMinimum"] == 0.0 and model["alpha"]["default"] == 5.0
    assert "L2 penalty" in model["alpha"]["description"]
    split = schema["definitions"]["SplitConfig"]["properties"]
    assert split["strategy"]["enum"] == ["random", "user", "movie", "time"]
    assert split["test_size"]["exclusiveMaximum"] == 1.0
    # sections titled and described, advanced ones last and said so; no trap fields
    props = schema["properties"]
    titles = [props[k]["title"] for k in sorted(props, key=lambda k: props[k]["position"])]
    assert titles == ["Data", "Embedding", "Features", "Split", "Model", "Plot", "Cache (advanced)",
                      "Runner (advanced)", "Output folder (advanced)"]  # fmt: skip
    assert all(props[k].get("description") for k in props)
    assert props["out"] == {**props["out"], "type": "string", "default": ""}  # a text box, not a None/str switch
    data = schema["definitions"]["DataConfig"]["properties"]
    assert data["dir"]["type"] == "string" and data["dir"]["default"] == "" and "anyOf" not in data["dir"]
    assert props["cache"]["default"]["dir"] == ""  # not the server user's home baked in
    assert all(p.get("description") for d in schema["definitions"].values() for p in d["properties"].values())
    assert not [k for d in schema["definitions"].values() for k, p in d["properties"].items() if "anyOf" in p]
    assert model["alpha"]["description"].endswith("(> 0)") and model["rank"]["description"].endswith("(≥ 1, ≤ 512)")


def test_bad_data_dir_fails_with_the_message(deployed, tmp_path):
    started = prefect(
        deployed, "deployment", "run", "movie-ratings/ml-1m",
        "-p", json.dumps({"dir": str(tmp_path / "cache")}).join(["cache=", ""]),
    )  # fmt: skip
    run_id = flow_run_id(started.stdout)
    run = wait_final(deployed, run_id)
    line = "data dir /path/to/ml-1m: does not exist or is not a directory"
    assert run["type"] == "FAILED" and run["message"] == line  # the run header says why
    deadline = time.time() + 30
    while not error_lines(run_logs(deployed, run_id)) and time.time() < deadline:
        time.sleep(1)  # the run's process ships its last log lines after it has set the FAILED state
    time.sleep(2)  # then once more, after the process is surely gone: a duplicate would show now
    logs = run_logs(deployed, run_id)
    errors = error_lines(logs)
    assert errors == [line], logs  # logged once, one line, no engine traceback
    assert not any("Traceback" in message for _, message in logs)


def test_bad_parameter_is_refused_with_a_clear_message(deployed):
    proc = prefect(deployed, "deployment", "run", "movie-ratings/demo", "-p", 'model={"alpha": -1}', check=False)
    assert proc.returncode != 0
    assert "model.alpha" in proc.stdout + proc.stderr and "minimum of 0" in " ".join((proc.stdout + proc.stderr).split())


def test_serve_registers_the_same_schedule_and_runs(own_server, tmp_path):
    server = own_server
    serving = start([str(BIN / "movie-ratings"), "serve", "demo"], server["env"], tmp_path / "serve.log")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and "Your deployments are being served" not in (tmp_path / "serve.log").read_text():
            assert serving.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(1)
        info = client_call(
            server,
            """
d = await client.read_deployment_by_name("movie-ratings/demo")
return {"cron": [s.schedule.cron for s in d.schedules], "params": d.parameters, "pool": d.work_pool_name}
""",
        )
        # served by the process, no pool; the parameters of prefect.yaml (alpha chosen on validation)
        assert info == {"cron": ["0 6 * * *"], "params": {"model": {"alphas": [0.01, 0.1, 1, 10, 100, 1000, 10000, 100000], "ids": ["user_id", "movie_id"]}}, "pool": None}
        out = tmp_path / "out"
        started = prefect(
            server, "deployment", "run", "movie-ratings/demo", "-p", f"data={SMALL_DEMO}",
            "-p", json.dumps({"dir": str(tmp_path / "cache")}).join(["cache=", ""]), "-p", f"out={out}",
        )  # fmt: skip
        run = wait_final(server, flow_run_id(started.stdout))
        assert run["type"] == "COMPLETED", run
        assert (out / "metrics.json").exists()
    finally:
        stop(serving)


def test_serve_never_takes_over_a_worker_deployment_and_runs_beside_it(deployed, tmp_path):
    """The README's order (deploy, then serve) once broke every run: serve rewrote the pool's
    deployments without their pull step. Now serve refuses with one line, or serves beside them."""
    describe = """
d = await client.read_deployment_by_name("movie-ratings/{name}")
return {{"pool": d.work_pool_name, "pull": d.pull_steps, "paused": d.paused}}
"""
    before = client_call(deployed, describe.format(name="demo"))
    refused = subprocess.run([str(BIN / "movie-ratings"), "serve", "demo"], env=deployed["env"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: serve: movie-ratings/demo is deployed for work pool 'movie-ratings' on {deployed['env']['PREFECT_API_URL']} "
        "(make deploy); serving it would take it over and break the worker's runs. Run it with `make worker`, or "
        "serve beside it: movie-ratings serve --name-suffix=-served"
    ]
    beside = start([str(BIN / "movie-ratings"), "serve", "demo", "--name-suffix=-served"], deployed["env"], tmp_path / "serve.log")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and "Your deployments are being served" not in (tmp_path / "serve.log").read_text():
            assert beside.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(1)
        served = client_call(deployed, describe.format(name="demo-served"))
        assert served["pool"] is None
    finally:
        stop(beside)
    after = client_call(deployed, describe.format(name="demo"))
    assert after == before and after["pool"] == "movie-ratings" and after["pull"]  # untouched, still runnable


def test_make_worker_stops_on_ctrl_c(deployed, tmp_path):
    """`prefect worker start` was measured still running 20 s after SIGINT; `movie-ratings worker`
    (what `make worker` runs) stops within its grace period, its worker process included."""
    log = tmp_path / "worker.log"
    proc = start([str(BIN / "movie-ratings"), "worker", "--grace", "5"], deployed["env"], log)
    deadline = time.time() + 90
    while time.time() < deadline and "started" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        time.sleep(0.5)
    assert "started" in log.read_text(), log.read_text()
    child = int(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()[0])
    stopped_at = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
    proc.wait(timeout=20)
    assert time.time() - stopped_at < 8, log.read_text()
    assert "stopping the worker" in log.read_text()
    assert not os.path.exists(f"/proc/{child}"), "the prefect worker process outlived its wrapper"


def browser():
    """Headless Chromium through Selenium (scripts/browser.py, the driver of `make screenshots`)."""
    from scripts.browser import headless_chromium, missing

    if missing():
        pytest.skip(f"NOTICE: the real-browser check did not run: {missing()}")
    return headless_chromium()


def form_input(driver, section: str, field: str):
    """The input of ``field`` inside the run form's ``section`` (labels as the UI shows them)."""
    from selenium.webdriver.common.by import By

    prop = "contains(concat(' ', normalize-space(@class), ' '), ' schema-form-property ')"
    xpath = (f"//span[@class='schema-form-property__label' and normalize-space()='{section} (Optional)']"
             f"/ancestor::div[{prop}][1]//span[@class='schema-form-property__label' and "
             f"normalize-space()='{field} (Optional)']/ancestor::label[1]")  # fmt: skip
    return field_input(driver.find_element(By.XPATH, xpath))


def field_input(label):
    """The text box or number box of a form field, from its label."""
    from selenium.webdriver.common.by import By

    prop = "contains(concat(' ', normalize-space(@class), ' '), ' schema-form-property ')"
    return label.find_element(By.XPATH, f"ancestor::div[{prop}][1]").find_element(By.CSS_SELECTOR, "input, textarea")


def set_field(element, value: str) -> None:
    """Type ``value`` and wait until the box holds it (the form re-renders as it validates; on a busy
    machine a keystroke can land before it is ready)."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    for _ in range(3):
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(value)
        try:
            WebDriverWait(element.parent, 5).until(lambda _: element.get_attribute("value") == value)
            return
        except Exception:  # noqa: BLE001 - retyped below; the final check names the field
            continue
    assert element.get_attribute("value") == value, f"the form box holds {element.get_attribute('value')!r}, not {value!r}"


def submit_form(driver, timeout: float = 120) -> None:
    """Click Submit and wait for the UI to leave the form; if it stays, say what the page shows."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
    try:
        WebDriverWait(driver, timeout).until(lambda d: not d.current_url.rstrip("/").endswith("/run"))
    except TimeoutException:
        text = driver.find_element(By.TAG_NAME, "body").text
        errors = [line for line in text.splitlines() if any(w in line.lower() for w in ("error", "invalid", "must", "should"))]
        raise AssertionError(f"the run form was not submitted within {timeout:g} s; the page says: {errors[:5]}") from None


def test_custom_run_from_the_form_in_a_real_browser(deployed, tmp_path):
    """Headless Chromium fills the custom-run form of movie-ratings/demo (alpha, split seed, cache and
    output folders), submits it, the worker completes the run with those values, and the report
    artifact's figures load; a failing run's page shows its one-line reason."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base = deployed["env"]["PREFECT_API_URL"].removesuffix("/api")
    dep = client_call(deployed, 'd = await client.read_deployment_by_name("movie-ratings/demo")\nreturn str(d.id)')
    driver = browser()
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(f"{base}/deployments/deployment/{dep}/run")
        wait.until(ec.presence_of_element_located((By.XPATH, "//span[normalize-space()='Alpha (Optional)']")))
        out = tmp_path / "out"
        set_field(form_input(driver, "Model", "Alpha"), "3.25")
        set_field(form_input(driver, "Split", "Seed"), "7")
        set_field(form_input(driver, "Cache (advanced)", "Cache directory"), str(tmp_path / "cache"))
        set_field(form_input(driver, "Data", "Ratings"), "3000")
        out_label = driver.find_element(By.XPATH, "//span[normalize-space()='Output folder (advanced) (Optional)']/ancestor::label[1]")
        set_field(field_input(out_label), str(out))
        submit_form(driver)  # the UI goes back to the deployment
        run_id = client_call(deployed, f"""
runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=["{dep}"])))
ours = sorted((r for r in runs if not r.auto_scheduled and r.parameters.get("out") == "{out}"), key=lambda r: r.created)
return str(ours[-1].id)
""")  # fmt: skip
        run = wait_final(deployed, run_id)
        assert run["type"] == "COMPLETED", run
        metrics = json.loads((out / "metrics.json").read_text())
        config = metrics["config"]
        assert config["split"]["seed"] == 7 and config["data"]["demo"]["ratings"] == 3000
        assert config["model"]["alpha"] == 3.25
        report = client_call(deployed, f"""
arts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["movie-ratings-report"]),
    flow_run_id=ArtifactFilterFlowRunId(any_=["{run_id}"])))
return str(arts[0].id)
""")  # fmt: skip
        driver.get(f"{base}/artifacts/artifact/{report}")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']")) >= 3)
        loaded = driver.execute_script(
            "return [...document.images].filter(i => i.src.startsWith('data:image/png')).map(i => i.complete && i.naturalWidth)"
        )
        assert len(loaded) >= 3 and all(w and w > 100 for w in loaded), loaded  # every figure decoded
        # a failing run: its page carries the one-line reason
        started = prefect(deployed, "deployment", "run", "movie-ratings/ml-1m",
                          "-p", json.dumps({"dir": str(tmp_path / "cache")}).join(["cache=", ""]))  # fmt: skip
        failed = flow_run_id(started.stdout)
        assert wait_final(deployed, failed)["type"] == "FAILED"
        driver.get(f"{base}/runs/flow-run/{failed}")
        line = "data dir /path/to/ml-1m: does not exist or is not a directory"
        wait.until(lambda d: "Failed" in d.find_element(By.TAG_NAME, "body").text)
        driver.find_element(By.XPATH, "//*[normalize-space()='Logs']").click()
        wait.until(lambda d: line in d.find_element(By.TAG_NAME, "body").text)
        assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
