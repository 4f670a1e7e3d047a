"""make deploy/worker/serve use the user's configured Prefect API, the local server otherwise."""

from __future__ import annotations

import subprocess

from scripts.api_url import api_url

LOCAL = "http://127.0.0.1:4200/api"


def test_exported_url_wins_then_the_active_profile_then_the_local_server(tmp_path):
    profiles = tmp_path / ".prefect" / "profiles.toml"
    assert api_url(LOCAL, {}, tmp_path) == (LOCAL, "the local server of make server")
    profiles.parent.mkdir()
    profiles.write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://team:4200/api"\n[profiles.x]\n')
    assert api_url(LOCAL, {}, tmp_path) == ("http://team:4200/api", f"profile 'team' in {profiles}")
    assert api_url(LOCAL, {"PREFECT_PROFILE": "x"}, tmp_path)[0] == LOCAL  # a profile without a URL
    assert api_url(LOCAL, {"PREFECT_API_URL": "http://mine/api"}, tmp_path) == ("http://mine/api", "PREFECT_API_URL")
    profiles.write_text("not [ toml")
    assert api_url(LOCAL, {}, tmp_path)[0] == LOCAL


def test_make_says_which_api_in_its_first_line(tmp_path):
    done = subprocess.run(["make", "-n", "worker", "STAMP=", "PORT=4301"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_API_URL": "http://team:9/api"})  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == 'echo "Prefect API: http://team:9/api (PREFECT_API_URL)"', done.stdout + done.stderr
    assert lines[1].startswith("PREFECT_API_URL=http://team:9/api ")
    done = subprocess.run(["make", "-n", "worker", "STAMP=", "PORT=4301"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})  # fmt: skip
    assert "Prefect API: http://127.0.0.1:4301/api (the local server of make server)" in done.stdout.splitlines()[0]


def test_make_help_shows_the_port_not_a_make_variable(tmp_path):
    done = subprocess.run(["make", "help", "PORT=4301"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "http://127.0.0.1:4301" in done.stdout and "$(PORT)" not in done.stdout


def test_a_profiles_file_that_is_not_toml_or_not_text_is_ignored(tmp_path):
    profiles = tmp_path / ".prefect" / "profiles.toml"
    profiles.parent.mkdir()
    profiles.write_bytes(b"\xff\xfe\x00garbage")
    assert api_url(LOCAL, {}, tmp_path)[0] == LOCAL


def test_serve_refuses_a_name_suffix_that_is_not_a_plain_name():
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["serve", "demo", "--name-suffix", "/../x"])
    assert result.exit_code == 2 and "--name-suffix '/../x': use letters" in result.stderr
