"""Which Prefect API `make deploy` / `make worker` / `make serve` talk to, and why.

    python scripts/api_url.py http://127.0.0.1:4200/api     # prints: URL<TAB>where it came from

The user's own choice wins: an exported PREFECT_API_URL, else PREFECT_API_URL in the active profile
of the user's Prefect profiles file (PREFECT_PROFILES_PATH, else ~/.prefect/profiles.toml; the
Makefile points PREFECT_HOME at the project, so Prefect itself would not read that file), else the
local server of `make server` (the argument). Reads the TOML directly: no Prefect import, instant.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path


def profile_api_url(path: Path, environ: dict[str, str]) -> tuple[str, str] | None:
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, ValueError):  # unreadable, not UTF-8, not TOML: as if there were none
        return None
    active = environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return (url, f"profile '{active}' in {path}") if url else None


def api_url(local: str, environ: dict[str, str] = os.environ, home: Path = Path.home()) -> tuple[str, str]:
    if environ.get("PREFECT_API_URL"):
        return environ["PREFECT_API_URL"], "PREFECT_API_URL"
    path = Path(environ.get("PREFECT_PROFILES_PATH") or home / ".prefect" / "profiles.toml")
    return profile_api_url(path, environ) or (local, "the local server of make server")


if __name__ == "__main__":
    url, source = api_url(sys.argv[1])
    print(f"{url}\t{source}")
