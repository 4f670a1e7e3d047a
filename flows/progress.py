"""Progress of long work in the Prefect UI: a progress artifact per key, updated by a callback."""

from __future__ import annotations

from collections.abc import Callable

from prefect.artifacts import create_progress_artifact, update_progress_artifact


def progress_artifact(key: str, description: str) -> Callable[[int, int], None]:
    """Create a progress artifact at 0 % and return ``update(done, total)``."""
    artifact_id = create_progress_artifact(0.0, key=key, description=description)

    def update(done: int, total: int) -> None:
        update_progress_artifact(artifact_id, progress=100.0 * done / max(total, 1))

    return update
