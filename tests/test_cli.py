"""The command line: exit code 2 and one clear line for every bad input, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.errors import InputError
from tests.test_load import BAD_INPUTS, RANGE_RATINGS, write_bad, write_dir


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_exits_2_with_its_message(prefect_server, runner, tmp_path, name):
    root, expected = write_bad(tmp_path / "data", name)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--set", f"data.dir={root}", "--set", f"cache.dir={tmp_path / 'c'}", "--out", str(out)])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    for piece in expected:
        assert piece in error_lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "model.alhpa=1"], "unknown key 'model.alhpa'"),
        (["--set", "split.test_size=2"], "'split.test_size'"),
        (["--config", "/nonexistent.yaml"], "cannot read"),
        (["--set", "embedding.model=/no/such/model"], "no such local folder"),
    ],
)
def test_bad_config_exits_2(prefect_server, runner, tmp_path, args, message):
    result = runner.invoke(app, ["run", *args, "--set", f"cache.dir={tmp_path}", "--set", "data.demo.ratings=100"])
    assert result.exit_code == 2
    assert message in result.stderr


def test_subprocess_prints_one_line_and_no_traceback(prefect_server, tmp_path):
    """The real entry point (`python -m flows`), against the session's Prefect server."""
    root = write_dir(tmp_path / "data", ratings=RANGE_RATINGS)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    proc = subprocess.run(
        [sys.executable, "-m", "flows", "run", "--set", f"data.dir={root}", "--set", f"cache.dir={tmp_path / 'c'}",
         "--set", "data.rating_scale=1-5", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ratings.csv: column 'rating': 2 of 5 values outside 1-5")
    # Prefect's own records of the failure (task failed, flow failed) do not repeat it on the terminal
    assert (proc.stdout + proc.stderr).count("values outside 1-5") == 1
    assert " ERROR " not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_demo_data_command_writes_both_layouts(tmp_path, runner):
    result = runner.invoke(app, ["demo-data", str(tmp_path / "csv"), "--users", "20", "--movies", "10", "--ratings", "100"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["movies.csv", "ratings.csv", "users.csv"]
    result = runner.invoke(app, ["demo-data", str(tmp_path / "dat"), "--layout", "ml-1m", "--ratings", "100"])
    assert sorted(p.name for p in (tmp_path / "dat").iterdir()) == ["movies.dat", "overviews.csv", "ratings.dat", "users.dat"]
    assert runner.invoke(app, ["demo-data", str(tmp_path / "x"), "--layout", "tsv"]).exit_code == 2


def test_demo_data_never_overwrites_data_files(tmp_path, runner):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "ratings.csv").write_text("user_id,movie_id,rating\n1,2,5\n")
    result = runner.invoke(app, ["demo-data", str(tmp_path / "mine"), "--ratings", "100"])
    assert result.exit_code == 2
    assert "ratings.csv already there; choose a new or empty folder" in result.stderr
    assert (tmp_path / "mine" / "ratings.csv").read_text() == "user_id,movie_id,rating\n1,2,5\n"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["ratings.csv"]


def test_serve_reads_prefect_yaml_with_prefects_model_and_honours_active(tmp_path):
    from flows.project import PROJECT_FILE, deployment
    from flows.rating_flow import movie_ratings

    spec, schedules = deployment("demo")
    built = movie_ratings.to_deployment(name=spec.name, parameters=spec.parameters, schedules=schedules)
    assert [(s.schedule.cron, s.active) for s in built.schedules] == [("0 6 * * *", True)]
    paused = tmp_path / "prefect.yaml"
    paused.write_text(PROJECT_FILE.read_text().replace("active: true", "active: false"))
    spec, schedules = deployment("demo", paused)
    built = movie_ratings.to_deployment(name=spec.name, parameters=spec.parameters, schedules=schedules)
    assert [s.active for s in built.schedules] == [False]
    with pytest.raises(InputError, match="no deployment named 'nope' \\(have: demo, ml-1m\\)"):
        deployment("nope")


def test_alpha_at_the_edge_of_its_grid_is_said_everywhere(prefect_server, runner, tmp_path, small_csv):
    """A two-value grid always picks an end: the run warns, and the summary, metrics.json and the
    report say so (it once picked the lowest alpha silently)."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--set", f"data.dir={small_csv}", "--set", f"cache.dir={tmp_path / 'c'}",
                                 "--set", "model.alphas=[1000,10000]", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    edge = metrics["alpha_at_grid_edge"]
    assert edge == ("lowest" if metrics["alpha"] == 1000 else "highest")
    assert f"(the {edge} value of model.alphas: extend the grid)" in result.output
    from tasks.report import model_summary

    assert "extend the grid" in model_summary(metrics)
    from tasks.train import grid_edge

    assert grid_edge(1.0, [0.001, 1.0, 1e6]) is None and grid_edge(1e6, [1e6, 1.0]) == "highest"


def test_the_run_log_warns_at_a_grid_edge(caplog):
    import logging

    from tasks.train import warn_at_grid_edge

    logger = logging.getLogger("test-edge")
    with caplog.at_level(logging.WARNING, logger="test-edge"):
        warn_at_grid_edge(0.1, [0.1, 1.0, 10.0], logger)
        warn_at_grid_edge(1.0, [0.1, 1.0, 10.0], logger)
    assert [r.getMessage() for r in caplog.records] == [
        "alpha 0.1 is the lowest value of model.alphas [0.1, 1.0, 10.0]: the best alpha may lie beyond the grid; "
        "extend it (e.g. --set 'model.alphas=[...]')"
    ]
