"""Helper: run the real flow with profile + overrides, the way the CLI does."""

from __future__ import annotations

from pathlib import Path

from configs.schema import load_config


def run_flow(tmp_path: Path, data_dir, out_name: str = "out", extra=(), return_state: bool = False, cache_dir=None):
    from flows.rating_flow import run_with_config

    cache_dir = cache_dir or tmp_path / "cache"
    overrides = [f"cache.dir={cache_dir}", *extra]
    if data_dir is not None:
        overrides.append(f"data.dir={data_dir}")
    return run_with_config(load_config(overrides=overrides), str(tmp_path / out_name), return_state=return_state)
