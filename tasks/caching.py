"""How our Prefect tasks are cached: keys from input hashes, results as small JSON.

Prefect's default policy keys on the flow run id (no hits across runs) and its INPUTS policy hashes a
path as a string, not the file's bytes. Our tasks receive content hashes instead (sha256 of the raw
data files, ``StoredRef``s of store objects, the model's identity), so hashing the inputs as JSON
*is* hashing the content. The key also folds in a hash of this package's source (the code a task
calls, not only its own body), so changing any stage's code invalidates its results.

``tasks/stage.py`` applies this policy to every stage; its results are plain JSON written and read by
``tasks/records.py``: a record that is not what we wrote (another serializer, a pickle payload, a
wrong shape) is a cache miss, never code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from pydantic import BaseModel


PACKAGE_DIR = Path(__file__).resolve().parent


def _code_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


CODE_VERSION = _code_version()


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class InputHashes(CachePolicy):
    """Key = sha256(task name, code version, inputs as canonical JSON)."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        payload = {"task": task_ctx.task.name, "code": CODE_VERSION, "inputs": jsonable(inputs or {})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


INPUT_HASHES = InputHashes()


def run_logger(fallback: logging.Logger) -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run (logs reach the UI), else ``fallback``."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return fallback
