"""Preconditioned conjugate gradients and the user × movie count matrix: shared by the hybrid
(``tasks/hybrid.py``) and the bias baseline (``tasks/baselines.py``), whose normal equations couple the
per-user and per-movie terms only through the counts of the training rows.

scipy.sparse.linalg.cg stops on the relative residual ‖r‖ / ‖b‖, which says little about the
predictions; this loop stops on ``rᵀ P⁻¹ r`` instead, the squared energy norm of the remaining error
when the preconditioner P is close to the operator: for these least-squares systems, about the sum of
the squared changes the training predictions still have to make.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is imported where a matrix is built: a run whose fit is cached never loads it
    import scipy.sparse as sp


BLOCKS = 4  # row blocks of a large count matrix: fixed, so results do not depend on the machine's cores
BLOCKED_FROM = 1_000_000  # ratings from which the products run on threads


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(usable_cores(), BLOCKS), thread_name_prefix="count-matrix")


class CountMatrix:
    """The users × movies count matrix as CSR row blocks (users split where the ratings are cut in
    equal parts). ``C @ x`` and ``C.T @ y`` multiply the blocks on threads: scipy's sparse products
    release the GIL, and at 25M ratings each product is ~20 ms on one core. ``C.T @ y`` adds the
    blocks' partial sums in block order, so the result does not depend on thread timing."""

    def __init__(self, blocks: list[tuple[int, int, sp.csr_matrix]], shape: tuple[int, int]):
        self.blocks = blocks  # (first user, end user, CSR of those users' rows)
        self.shape = shape

    def _map(self, product: Callable[[tuple[int, int, sp.csr_matrix]], np.ndarray]) -> list[np.ndarray]:
        if len(self.blocks) == 1 or usable_cores() == 1:
            return [product(block) for block in self.blocks]
        return list(_threads().map(product, self.blocks))

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        """C @ x: a per-movie vector (or matrix) summed over each user's rows."""
        parts = self._map(lambda block: block[2] @ x)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @property
    def T(self) -> _TransposedCounts:
        return _TransposedCounts(self)


class _TransposedCounts:
    def __init__(self, counts: CountMatrix):
        self.counts = counts

    def __matmul__(self, y: np.ndarray) -> np.ndarray:
        """Cᵀ @ y: a per-user vector (or matrix) summed over each movie's rows."""
        parts = self.counts._map(lambda block: block[2].T @ y[block[0] : block[1]])
        return functools.reduce(np.add, parts)


def count_matrix(user_idx: np.ndarray, movie_idx: np.ndarray, n_users: int, n_movies: int) -> CountMatrix:
    """C[u, m] = the number of rows of user u and movie m (users × movies); ``C @ x`` sums a per-movie
    vector over each user's rows, ``C.T @ x`` a per-user vector over each movie's rows. Rows already
    grouped by user (MovieLens files are) become the CSR arrays as they are: a repeated pair stays two
    entries of 1, which every product sums the same. From ``BLOCKED_FROM`` ratings on, ``BLOCKS`` row blocks."""
    import scipy.sparse as sp

    n_blocks = BLOCKS if len(user_idx) >= BLOCKED_FROM and n_users >= BLOCKS else 1
    if not (len(user_idx) and (user_idx[1:] >= user_idx[:-1]).all()):
        whole = sp.csr_matrix((np.ones(len(user_idx)), (user_idx, movie_idx)), shape=(n_users, n_movies))
        cuts = _cuts(whole.indptr, n_blocks)
        return CountMatrix([(a, b, whole[a:b]) for a, b in itertools.pairwise(cuts)], (n_users, n_movies))
    index = np.int32 if max(len(user_idx), n_movies) < 2**31 else np.int64  # scipy's own choice: no copy
    indptr = np.zeros(n_users + 1, dtype=index)
    np.cumsum(np.bincount(user_idx, minlength=n_users), out=indptr[1:])
    movies = np.asarray(movie_idx, dtype=index)
    if n_blocks == 1:
        return CountMatrix([(0, n_users, sp.csr_matrix((np.ones(len(movies)), movies, indptr), shape=(n_users, n_movies)))],
                           (n_users, n_movies))  # fmt: skip
    cuts = _cuts(indptr, n_blocks)
    blocks = []
    for a, b in itertools.pairwise(cuts):
        lo, hi = int(indptr[a]), int(indptr[b])
        # arrays of their own: scipy copies a view of a much larger array anyway
        block = sp.csr_matrix((np.ones(hi - lo), movies[lo:hi].copy(), indptr[a : b + 1] - indptr[a]), shape=(b - a, n_movies))
        blocks.append((a, b, block))
    return CountMatrix(blocks, (n_users, n_movies))


def _cuts(indptr: np.ndarray, n_blocks: int) -> list[int]:
    """User boundaries of ``n_blocks`` blocks with about equal numbers of ratings."""
    inner = np.searchsorted(indptr, np.arange(1, n_blocks) * indptr[-1] / n_blocks)
    return [0, *np.clip(inner, 0, len(indptr) - 1).tolist(), len(indptr) - 1]


def conjugate_gradients(
    apply: Callable[[np.ndarray], np.ndarray], precondition: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray,
    x0: np.ndarray, tol: float, max_iter: int,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Preconditioned CG for a symmetric positive definite operator, from ``x0``, until
    ``sqrt(rᵀ P⁻¹ r) <= tol`` (see the module docstring); returns (x, iterations)."""
    x = x0.copy()
    r = rhs - apply(x)
    z = precondition(r)
    p = z.copy()
    rz = float(r @ z)
    for iteration in range(max_iter):
        if np.sqrt(max(rz, 0.0)) <= tol:
            return x, iteration
        ap = apply(p)
        step = rz / float(p @ ap)
        x += step * p
        r -= step * ap
        z = precondition(r)
        rz, rz_old = float(r @ z), rz
        p = z + (rz / rz_old) * p
    return x, max_iter
