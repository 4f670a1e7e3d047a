"""Keep the run's large arrays' memory in the process instead of handing it back and faulting it in again.

A 25M-rating run allocates and frees arrays of 100–500 MB dozens of times. By default glibc maps
each of them afresh (``mmap``) and unmaps it on free, so every new array is touched page by page
through the kernel; numpy also asks for transparent huge pages on them (``madvise``), and where the
kernel has to compact memory to find huge pages (a machine whose page cache holds the data files)
the first touch costs 1–3 ms per MB instead of ~0.06. On these 2 cores that was ~4 s of the 25M
run's ~22 s (``docs/performance.md``, "Process memory").

``keep_freed_memory`` therefore, once per process:
- tells glibc to serve large blocks from its heap and not to give freed memory back
  (``mallopt(M_MMAP_MAX, 0)``; ``M_TRIM_THRESHOLD`` 2 GiB, mallopt's largest): a freed array's pages are reused by the
  next one without a fault; the process's peak resident memory is unchanged (the heap only holds
  what was once in use at the same time), but it is not returned before the process ends;
- turns numpy's huge-page ``madvise`` off (``NUMPY_MADVISE_HUGEPAGE=0``, applied to an already
  imported numpy too).

Settings the user made (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, ``NUMPY_MADVISE_HUGEPAGE``
in the environment) win; ``MOVIE_RATINGS_KEEP_MEMORY=0`` (or false/no/off) turns all of it off. Without glibc
(macOS, musl) only the numpy part applies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB of free heap top before any is returned

_applied: dict[str, bool] | None = None


def keep_freed_memory() -> dict[str, bool]:
    """Apply the settings above (once per process); returns which ones took effect."""
    global _applied
    if _applied is None:
        _applied = _apply(os.environ)
        log.debug("process memory settings: %s", _applied)
    return _applied


def _apply(env: os._Environ | dict) -> dict[str, bool]:
    if env.get("MOVIE_RATINGS_KEEP_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return {"malloc": False, "numpy_hugepage_off": False}
    return {"malloc": _glibc_keeps_freed(env), "numpy_hugepage_off": _numpy_hugepage_off(env)}


def _glibc_keeps_freed(env: os._Environ | dict) -> bool:
    if "MALLOC_MMAP_MAX_" in env or "MALLOC_TRIM_THRESHOLD_" in env or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The trim threshold first: were only M_MMAP_MAX set, freed heap tops would still be trimmed.
    trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return trim and mallopt(M_MMAP_MAX, 0) == 1


def _numpy_hugepage_off(env: os._Environ | dict) -> bool:
    if "NUMPY_MADVISE_HUGEPAGE" in env:
        return False
    if "numpy" not in sys.modules:  # read by numpy when it is imported
        os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
        return True
    import numpy as np

    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or getattr(np.core, "multiarray", None)
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None:
        return False
    setter(False)
    return True
