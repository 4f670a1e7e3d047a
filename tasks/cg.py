"""Preconditioned conjugate gradients and the user × movie count matrix: shared by the hybrid
(``tasks/hybrid.py``) and the bias baseline (``tasks/baselines.py``), whose normal equations couple the
per-user and per-movie terms only through the counts of the training rows.

scipy.sparse.linalg.cg stops on the relative residual ‖r‖ / ‖b‖, which says little about the
predictions; this loop stops on ``rᵀ P⁻¹ r`` instead, the squared energy norm of the remaining error
when the preconditioner P is close to the operator: for these least-squares systems, about the sum of
the squared changes the training predictions still have to make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is imported where a matrix is built: a run whose fit is cached never loads it
    import scipy.sparse as sp


def count_matrix(user_idx: np.ndarray, movie_idx: np.ndarray, n_users: int, n_movies: int) -> sp.csr_matrix:
    """C[u, m] = the number of rows of user u and movie m (users × movies, CSR); ``C @ x`` sums a
    per-movie vector over each user's rows, ``C.T @ x`` a per-user vector over each movie's rows.
    Rows already grouped by user (MovieLens files are) become the CSR arrays as they are: a repeated
    pair stays two entries of 1, which every product sums the same."""
    import scipy.sparse as sp

    ones = np.ones(len(user_idx))
    if len(user_idx) and (user_idx[1:] >= user_idx[:-1]).all():
        index = np.int32 if max(len(user_idx), n_movies) < 2**31 else np.int64  # scipy's own choice: no copy
        indptr = np.zeros(n_users + 1, dtype=index)
        np.cumsum(np.bincount(user_idx, minlength=n_users), out=indptr[1:])
        return sp.csr_matrix((ones, np.asarray(movie_idx, dtype=index), indptr), shape=(n_users, n_movies))
    return sp.csr_matrix((ones, (user_idx, movie_idx)), shape=(n_users, n_movies))


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
