"""tasks/process_memory.py: a freed large array's memory is reused without page faults; the user's
own settings win. Each case runs in a fresh interpreter (the settings are per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, resource, sys
from tasks.process_memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else {}
import numpy as np

def faults_of_second_array():
    a = np.ones(25_000_000)  # 200 MB, touched
    del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = np.ones(25_000_000)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults = faults_of_second_array()
hugepage_was = np._core.multiarray._set_madvise_hugepage(True)
print(json.dumps({"applied": applied, "faults": faults, "hugepage": bool(hugepage_was)}))
"""

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"), reason="glibc only"
)


def probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "NUMPY_MADVISE", "MOVIE_RATINGS_KEEP"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO, env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@linux_glibc
def test_a_freed_array_is_reused_without_page_faults():
    kept, default = probe("keep"), probe("default")
    assert kept["applied"] == {"malloc": True, "numpy_hugepage_off": True}
    assert kept["hugepage"] is False and default["hugepage"] is True
    # 200 MB is ~49k pages of 4 KiB or ~100 huge pages of 2 MiB: mapped afresh by default, reused when kept
    assert kept["faults"] < 20, kept
    assert default["faults"] >= 90, default


@linux_glibc
def test_the_users_settings_win():
    off = probe("keep", MOVIE_RATINGS_KEEP_MEMORY="0")
    assert off["applied"] == {"malloc": False, "numpy_hugepage_off": False} and off["hugepage"] is True
    assert off["faults"] >= 90
    assert probe("keep", MOVIE_RATINGS_KEEP_MEMORY="Off")["applied"] == off["applied"]
    theirs = probe("keep", MALLOC_MMAP_MAX_="65536", NUMPY_MADVISE_HUGEPAGE="1")
    assert theirs["applied"] == {"malloc": False, "numpy_hugepage_off": False} and theirs["hugepage"] is True


def test_numpy_already_imported_is_switched_too():
    """A flow run from the UI imports numpy long before the flow body calls keep_freed_memory."""
    code = (
        "import numpy as np, json\n"
        "from tasks.process_memory import keep_freed_memory\n"
        "applied = keep_freed_memory()\n"
        "print(json.dumps([applied['numpy_hugepage_off'], np._core.multiarray._set_madvise_hugepage(True)]))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUMPY_MADVISE", "MOVIE_RATINGS_KEEP"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False], out.stderr
