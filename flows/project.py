"""The deployments of ``prefect.yaml``, read with Prefect's own model of that file and its own
schedule conversion (the ``active`` flag of a schedule included), so `movie-ratings serve` serves
exactly what `prefect deploy --all` registers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

from tasks.errors import InputError

PROJECT_FILE = Path(__file__).resolve().parents[1] / "prefect.yaml"


def read_project(path: Path = PROJECT_FILE) -> tuple[PrefectYamlModel, dict[str, Any]]:
    """The validated project file and its raw mapping (schedules are converted from the raw form)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return PrefectYamlModel.model_validate(raw), raw


def deployment(name: str, path: Path = PROJECT_FILE) -> tuple[DeploymentConfig, list[dict[str, Any]]]:
    """One deployment of the project file and its schedules as Prefect builds them."""
    project, raw = read_project(path)
    for spec, spec_raw in zip(project.deployments, raw.get("deployments") or []):
        if spec.name == name:
            return spec, [_schedule_config_to_deployment_schedule(s) for s in spec_raw.get("schedules") or []]
    have = ", ".join(d.name or "?" for d in project.deployments)
    raise InputError(f"{path.name}: no deployment named {name!r} (have: {have})")
