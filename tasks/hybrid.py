"""The hybrid Ridge: user features and movie embeddings plus per-user and/or per-movie bias terms
(one-hot ``user_id`` / ``movie_id`` columns) with their own penalty.

    r̂ = b + [U[u] | M[m]]·w + a[u] + c[m]        min ‖y − r̂‖² + α‖w‖² + α_id (‖a‖² + ‖c‖²)

The id blocks are never materialized. The normal equations are solved by conjugate gradients with a
matrix-free operator: every product goes through the sparse user × movie count matrix C of the
training rows (``C c`` sums movie terms per user, ``Cᵀ a`` user terms per movie), so an iteration
costs O(ratings + (users + movies)·d) and memory stays O(users + movies + d²). The preconditioner is
block-Jacobi: the exact inverse of the (intercept, w) block and the diagonal ``n_u + α_id`` /
``n_m + α_id`` of the id blocks. The intercept is unpenalized, as in scikit-learn's Ridge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from tasks.ridge import BlockScores, FeatureMoments


@dataclass
class HybridFit(BlockScores):
    coef: np.ndarray  # (d,) feature weights
    intercept: float
    alpha: float
    user_bias: np.ndarray | None  # (users,) or None when user ids are off
    movie_bias: np.ndarray | None  # (movies,)
    iterations: int = 0
    moments: FeatureMoments | None = None

    def partial_scores(self, U: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d_u = U.shape[1]
        per_user = U @ self.coef[:d_u] + (self.user_bias if self.user_bias is not None else 0.0)
        per_movie = M @ self.coef[d_u:] + (self.movie_bias if self.movie_bias is not None else 0.0)
        return per_user, per_movie


class HybridSystem:
    """The normal-equation operator of one set of training rows (reusable across alphas)."""

    def __init__(
        self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray,
        user_ids: bool, movie_ids: bool,
    ):  # fmt: skip
        self.U, self.M = U, M
        self.users, self.movies = U.shape[0], M.shape[0]
        self.d_u, self.d = U.shape[1], U.shape[1] + M.shape[1]
        self.user_ids, self.movie_ids = user_ids, movie_ids
        y = np.asarray(y, dtype=np.float64)
        self.C = sp.csr_matrix((np.ones(len(y)), (user_idx, movie_idx)), shape=(self.users, self.movies))
        self.CT = self.C.T.tocsr()
        self.n = float(len(y))
        self.n_u = np.asarray(self.C.sum(axis=1)).ravel()
        self.n_m = np.asarray(self.C.sum(axis=0)).ravel()
        s_u = np.bincount(user_idx, weights=y, minlength=self.users)
        s_m = np.bincount(movie_idx, weights=y, minlength=self.movies)
        parts = [np.array([y.sum()]), U.T @ s_u, M.T @ s_m]
        if user_ids:
            parts.append(s_u)
        if movie_ids:
            parts.append(s_m)
        self.rhs = np.concatenate(parts)
        # Uncentred Gram of [1 | F]: the dense block the preconditioner inverts exactly.
        ctu = self.CT @ U
        top = np.concatenate([[self.n], U.T @ self.n_u, M.T @ self.n_m])
        gram = np.block([[U.T @ (U * self.n_u[:, None]), ctu.T @ M], [M.T @ ctu, M.T @ (M * self.n_m[:, None])]])
        self.dense_block = np.block([[top[:1, None], top[None, 1:]], [top[1:, None], gram]])

    def split(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        b, w = theta[0], theta[1 : 1 + self.d]
        rest = theta[1 + self.d :]
        a = rest[: self.users] if self.user_ids else np.zeros(self.users)
        c = rest[self.users :] if self.user_ids and self.movie_ids else (rest if self.movie_ids else np.zeros(self.movies))
        return b, w, a, c

    def apply(self, theta: np.ndarray, alpha: float, id_alpha: float) -> np.ndarray:
        """(X̃ᵀX̃ + P) θ without X̃: per-user and per-movie sums of the row predictions via C."""
        b, w, a, c = self.split(theta)
        pu = self.U @ w[: self.d_u] + a  # per-user part of each row's prediction
        pm = self.M @ w[self.d_u :] + c  # per-movie part
        gu = self.n_u * (b + pu) + self.C @ pm  # Σ over each user's rows of the prediction
        gm = self.n_m * (b + pm) + self.CT @ pu  # Σ over each movie's rows
        out = [np.array([gu.sum()]), self.U.T @ gu + alpha * w[: self.d_u], self.M.T @ gm + alpha * w[self.d_u :]]
        if self.user_ids:
            out.append(gu + id_alpha * a)
        if self.movie_ids:
            out.append(gm + id_alpha * c)
        return np.concatenate(out)

    def preconditioner(self, alpha: float, id_alpha: float):
        block = self.dense_block + np.diag(np.r_[0.0, np.full(self.d, alpha)])
        factor = scipy.linalg.cho_factor(block + 1e-12 * np.eye(len(block)))
        diag = []
        if self.user_ids:
            diag.append(1.0 / (self.n_u + id_alpha))
        if self.movie_ids:
            diag.append(1.0 / (self.n_m + id_alpha))
        diag = np.concatenate(diag) if diag else np.empty(0)
        head = 1 + self.d

        def solve(r: np.ndarray) -> np.ndarray:
            return np.concatenate([scipy.linalg.cho_solve(factor, r[:head]), diag * r[head:]])

        return solve


def conjugate_gradients(apply, precondition, rhs: np.ndarray, x0: np.ndarray, tol: float, max_iter: int):
    """Preconditioned CG for a symmetric positive definite operator; returns (x, iterations)."""
    x = x0.copy()
    r = rhs - apply(x)
    z = precondition(r)
    p = z.copy()
    rz = r @ z
    norm_rhs = np.linalg.norm(rhs) or 1.0
    for iteration in range(1, max_iter + 1):
        if np.linalg.norm(r) <= tol * norm_rhs:
            return x, iteration - 1
        ap = apply(p)
        step = rz / (p @ ap)
        x += step * p
        r -= step * ap
        z = precondition(r)
        rz, rz_old = r @ z, rz
        p = z + (rz / rz_old) * p
    return x, max_iter


def hybrid_fit(
    system: HybridSystem, alpha: float, id_alpha: float, x0: np.ndarray | None = None, tol: float = 1e-13,
    max_iter: int = 2000,
) -> tuple[HybridFit, np.ndarray]:  # fmt: skip
    """Solve for one alpha (warm-started from ``x0``); returns the fit and the raw solution vector."""
    x0 = np.zeros_like(system.rhs) if x0 is None else x0
    theta, iterations = conjugate_gradients(
        lambda t: system.apply(t, alpha, id_alpha), system.preconditioner(alpha, id_alpha), system.rhs, x0, tol, max_iter
    )
    b, w, a, c = system.split(theta)
    fit = HybridFit(
        coef=w.copy(), intercept=float(b), alpha=alpha,
        user_bias=a.copy() if system.user_ids else None, movie_bias=c.copy() if system.movie_ids else None,
        iterations=iterations,
    )  # fmt: skip
    return fit, theta
