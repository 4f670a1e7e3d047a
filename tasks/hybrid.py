"""The hybrid Ridge: user features and movie embeddings plus per-user and/or per-movie bias terms
(one-hot ``user_id`` / ``movie_id`` columns) with their own penalty.

    r̂ = b + [U[u] | M[m]]·w + a[u] + c[m]        min ‖y − r̂‖² + α‖w‖² + α_id (‖a‖² + ‖c‖²)

The id blocks are never materialized: every product goes through the sparse user × movie count
matrix C of the training rows (``C c`` sums movie terms per user, ``Cᵀ a`` user terms per movie).
The intercept is unpenalized, as in scikit-learn's Ridge.

The user biases are eliminated exactly. Each user's equation involves no other user's bias, so for
the rest fixed it has a closed form, ``a = (s_u − n_u (b + U w_u) − C (M w_m + c)) / (n_u + α_id)``,
and conjugate gradients run on the smaller system in x = (b, w, c) (the Schur complement). Its
preconditioner is the exact inverse of the (b, w, c) block alone: a dense (1 + d) Schur block (one
Cholesky factor per alpha) and the diagonal ``n_m + α_id``. That leaves CG only the coupling of users
and movies through the ratings, weak on rating data but for a few directions (all user biases against
the intercept): 5-6 iterations per alpha on 5M generated ratings, where CG on the whole system with a
block-Jacobi preconditioner (diagonal id blocks) took ~115. An iteration costs two sparse products with
C (O(ratings)) and four with M (O(movies·d)); memory stays O(users + movies + d²).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from tasks.cg import count_matrix
from tasks.ridge import BlockScores, FeatureMoments, RowStats


@dataclass
class HybridFit(BlockScores):
    coef: np.ndarray  # (d,) feature weights
    intercept: float
    alpha: float
    user_bias: np.ndarray | None  # (users,) or None when user ids are off
    movie_bias: np.ndarray | None  # (movies,)
    iterations: int = 0
    moments: FeatureMoments | None = None
    solution: np.ndarray | None = field(default=None, repr=False)  # CG's x: a warm start for a neighbouring fit

    def partial_scores(self, U: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d_u = U.shape[1]
        per_user = U @ self.coef[:d_u] + (self.user_bias if self.user_bias is not None else 0.0)
        per_movie = M @ self.coef[d_u:] + (self.movie_bias if self.movie_bias is not None else 0.0)
        return per_user, per_movie


class HybridSystem:
    """The normal equations of one set of training rows, user biases eliminated (reusable across
    alphas; ``id_alpha`` is part of the elimination)."""

    def __init__(
        self, U: np.ndarray, M: np.ndarray, user_idx: np.ndarray, movie_idx: np.ndarray, y: np.ndarray,
        user_ids: bool, movie_ids: bool, id_alpha: float,
    ):  # fmt: skip
        self.U, self.M = U, M
        self.users, self.movies = U.shape[0], M.shape[0]
        self.d_u, self.d = U.shape[1], U.shape[1] + M.shape[1]
        self.head = 1 + self.d  # x = (b, w, c): the dense head, then the movie biases
        self.user_ids, self.movie_ids, self.id_alpha = user_ids, movie_ids, id_alpha
        y = np.asarray(y, dtype=np.float64)
        self.C = count_matrix(user_idx, movie_idx, self.users, self.movies)
        self.n_u = np.bincount(user_idx, minlength=self.users).astype(np.float64)
        self.n_m = np.bincount(movie_idx, minlength=self.movies).astype(np.float64)
        self.s_u = np.bincount(user_idx, weights=y, minlength=self.users)
        self.s_m = np.bincount(movie_idx, weights=y, minlength=self.movies)
        self.stats = RowStats(n=len(y), y_sum=float(y.sum()), y_sq=float(y @ y), n_u=self.n_u, n_m=self.n_m,
                              s_u=self.s_u, s_m=self.s_m, ctu=np.asarray(self.C.T @ U))  # fmt: skip
        # 1 / (n + α_id) per user and movie; 0 where that side has no bias terms (nothing to eliminate / invert).
        self.user_scale = 1.0 / (self.n_u + id_alpha) if user_ids else np.zeros(self.users)
        self.movie_scale = 1.0 / (self.n_m + id_alpha) if movie_ids else np.zeros(self.movies)
        a0 = self.user_scale * self.s_u  # the eliminated biases at x = 0
        e_u, e_m = self.s_u - self.n_u * a0, self.s_m - self.C.T @ a0
        self.rhs = np.concatenate([[e_u.sum()], U.T @ e_u, M.T @ e_m] + ([e_m] if movie_ids else []))
        self.schur_block = self._schur_block()

    def _schur_block(self) -> np.ndarray:
        """The (b, w) block of [[(b, w) block, coupling], [coupling, diag(n_m + α_id)]] with the movie
        biases eliminated (α added per fit): Gram of [1 | F] over the rows minus Bᵀ diag(dm) B, B =
        [n_m, Cᵀ U, n_m M] the (b, w) ↔ c coupling, dm = movie_scale (0: no movie biases)."""
        U, M, n_u, n_m, dm, ctu = self.U, self.M, self.n_u, self.n_m, self.movie_scale, self.stats.ctu
        kept = n_m - n_m * n_m * dm  # what each movie's rows still weigh once its bias absorbed its mean
        top = np.concatenate([[self.stats.n - (n_m * n_m * dm).sum()], U.T @ n_u - ctu.T @ (n_m * dm), M.T @ kept])
        uu = U.T @ (U * n_u[:, None]) - ctu.T @ (ctu * dm[:, None])
        um = (ctu * (1.0 - n_m * dm)[:, None]).T @ M
        gram = np.block([[uu, um], [um.T, weighted_gram(M, kept)]])
        return np.block([[top[:1, None], top[None, 1:]], [top[1:, None], gram]])

    def unknowns(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """(b, w, a, c) of a solution x: the eliminated user biases recovered in closed form."""
        b, w = float(x[0]), x[1 : self.head]
        c = x[self.head :] if self.movie_ids else np.zeros(self.movies)
        pm = self.M @ w[self.d_u :] + c
        a = self.user_scale * (self.s_u - self.n_u * (b + self.U @ w[: self.d_u]) - self.C @ pm)
        return b, w, a, c

    def apply(self, x: np.ndarray, alpha: float) -> np.ndarray:
        """The Schur complement times x: the (b, w, c) rows of the full operator at (x, a(x)), a(x) the
        user biases' response -(n_u (b + U w_u) + C pm) / (n_u + α_id). No rating × feature matrix."""
        b, w = x[0], x[1 : self.head]
        c = x[self.head :] if self.movie_ids else 0.0
        pm = self.M @ w[self.d_u :] + c  # per-movie part of each row's prediction
        c_pm = self.C @ pm
        pu = self.U @ w[: self.d_u]
        pu = pu - self.user_scale * (self.n_u * (b + pu) + c_pm)  # plus the eliminated user biases
        gu = self.n_u * (b + pu) + c_pm  # Σ over each user's rows of the prediction
        gm = self.n_m * (b + pm) + self.C.T @ pu  # Σ over each movie's rows
        out = [[gu.sum()], self.U.T @ gu + alpha * w[: self.d_u], self.M.T @ gm + alpha * w[self.d_u :]]
        return np.concatenate(out + ([gm + self.id_alpha * c] if self.movie_ids else []))

    def factor(self, alpha: float):
        """Cholesky factor of the Schur block with α on the weights' diagonal."""
        block = self.schur_block + np.diag(np.r_[0.0, np.full(self.d, alpha)])
        # One thread: OpenBLAS's threaded factorization of a matrix this small took 70-190 ms on 2 busy
        # cores (inside a Prefect task), one thread 12 ms.
        with threadpool_limits(1, user_api="blas"):
            return scipy.linalg.cho_factor(block + 1e-12 * np.eye(len(block)))

    def preconditioner(self, alpha: float):
        """The exact inverse of the (b, w, c) block (no user biases): the Schur block's Cholesky factor
        for (b, w), then the movie biases from their diagonal."""
        factor = self.factor(alpha)
        head, d_u, n_m, dm, ctu, M = self.head, self.d_u, self.n_m, self.movie_scale, self.stats.ctu, self.M

        def solve(r: np.ndarray) -> np.ndarray:
            if not self.movie_ids:
                return scipy.linalg.cho_solve(factor, r)
            v = dm * r[head:]
            h = scipy.linalg.cho_solve(factor, r[:head] - np.concatenate([[n_m @ v], ctu.T @ v, M.T @ (n_m * v)]))
            coupled = n_m * h[0] + ctu @ h[1 : 1 + d_u] + n_m * (M @ h[1 + d_u :])
            return np.concatenate([h, dm * (r[head:] - coupled)])

        return solve

    def solve(self, alpha: float, x0: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
        """Preconditioned CG on ``apply`` with ``preconditioner`` (``conjugate_gradients``' iterates,
        to rounding), arranged so that an iteration passes over M twice instead of four times: M times
        the search direction is carried along (M p ← M z + β M p, M z being the preconditioner's own
        product), and the operator's Mᵀ gm shares one pass with the preconditioner's Mᵀ (n_m v), two
        products over M's rows block by block, because the step length needs only (M p)·gm. M is the
        largest thing an iteration reads (62,000 × 778 floats at 25M ratings, ~16 ms a pass)."""
        head, d_u, M, factor = self.head, self.d_u, self.M, self.factor(alpha)
        wu, wm, ids = slice(1, 1 + d_u), slice(1 + d_u, head), self.movie_ids

        def sums(p: np.ndarray, Mp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Σ over each user's and each movie's rows of the prediction change p makes (a(p) included)."""
            pm = Mp + p[head:] if ids else Mp
            c_pm = self.C @ pm
            pu = self.U @ p[wu]
            pu = pu - self.user_scale * (self.n_u * (p[0] + pu) + c_pm)
            return self.n_u * (p[0] + pu) + c_pm, self.n_m * (p[0] + pm) + self.C.T @ pu

        def operator(p: np.ndarray, gu: np.ndarray, gm: np.ndarray, mt_gm: np.ndarray) -> np.ndarray:
            out = np.empty_like(p)
            out[0], out[wu], out[wm] = gu.sum(), self.U.T @ gu + alpha * p[wu], mt_gm + alpha * p[wm]
            if ids:
                out[head:] = gm + self.id_alpha * p[head:]
            return out

        def transposed(gm: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            """(Mᵀ gm, Mᵀ (n_m v)) in one pass over M, v = the movie-bias residual scaled."""
            if not ids:
                return gm @ M, None
            return pair_products(M, gm, self.n_m * self.movie_scale * r[head:])

        def precondition(r: np.ndarray, mt_v: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
            """(z, M z_w) with z the preconditioner's answer to r (see ``preconditioner``)."""
            if not ids:
                z = scipy.linalg.cho_solve(factor, r)
                return z, M @ z[wm]
            v = self.movie_scale * r[head:]
            h = scipy.linalg.cho_solve(factor, r[:head] - np.concatenate([[self.n_m @ v], self.stats.ctu.T @ v, mt_v]))
            mh = M @ h[wm]
            coupled = self.n_m * h[0] + self.stats.ctu @ h[wu] + self.n_m * mh
            return np.concatenate([h, self.movie_scale * (r[head:] - coupled)]), mh

        # One BLAS thread: these products are memory-bound, and idle BLAS threads spinning after each
        # call took the cores the count matrix's threads need (6 iterations at 25M: 1.0-1.4 s, 0.8 s).
        with threadpool_limits(1, user_api="blas"):
            x = x0.copy()
            gu, gm = sums(x, M @ x[wm])
            r = self.rhs - operator(x, gu, gm, np.zeros(M.shape[1]))
            mt_gm, mt_v = transposed(gm, r)
            r[wm] -= mt_gm
            z, mp = precondition(r, mt_v)
            p, rz = z.copy(), float(r @ z)
            for iteration in range(max_iter):
                if np.sqrt(max(rz, 0.0)) <= tol:
                    return x, iteration
                gu, gm = sums(p, mp)
                ap = operator(p, gu, gm, np.zeros(M.shape[1]))  # its Mᵀ gm comes with the next pass
                step = rz / (float(p @ ap) + float(mp @ gm))  # p_wᵀ Mᵀ gm = (M p_w)·gm
                x += step * p
                r -= step * ap
                mt_gm, mt_v = transposed(gm, r)
                r[wm] -= step * mt_gm
                z, mz = precondition(r, mt_v)
                rz, rz_old = float(r @ z), rz
                p = z + (rz / rz_old) * p
                mp = M @ p[wm] if (iteration + 1) % 50 == 0 else mz + (rz / rz_old) * mp  # no drift from rounding
            return x, max_iter


def pair_products(M: np.ndarray, a: np.ndarray, b: np.ndarray, rows_per_block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(Mᵀ a, Mᵀ b) reading M from memory once: block by block of rows, the second product finds the
    block in cache (BLAS's two-column product packs a copy of M instead; this takes ~2/3 of two passes)."""
    out_a, out_b = np.zeros(M.shape[1]), np.zeros(M.shape[1])
    for start in range(0, len(M), rows_per_block):
        block = M[start : start + rows_per_block]
        out_a += a[start : start + rows_per_block] @ block
        out_b += b[start : start + rows_per_block] @ block
    return out_a, out_b


def weighted_gram(M: np.ndarray, weights: np.ndarray, rows_per_block: int = 4096) -> np.ndarray:
    """Mᵀ diag(weights) M for weights ≥ 0: BLAS syrk (one triangle, half a matrix product's work) over
    blocks of rows scaled by √weights in one reused buffer, instead of a scaled copy of all of M."""
    syrk = scipy.linalg.get_blas_funcs("syrk", (M,))
    gram = np.zeros((M.shape[1], M.shape[1]), dtype=M.dtype, order="F")
    buffer = np.empty((min(rows_per_block, len(M)), M.shape[1]), dtype=M.dtype)
    root = np.sqrt(weights)
    for start in range(0, len(M), rows_per_block):
        block = buffer[: min(rows_per_block, len(M) - start)]
        np.multiply(M[start : start + len(block)], root[start : start + len(block), None], out=block)
        gram = syrk(1.0, block.T, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)  # += blockᵀ block (upper)
    upper = np.triu(gram)
    return upper + np.triu(upper, 1).T


def hybrid_fit(
    system: HybridSystem, alpha: float, x0: np.ndarray | None = None, tol: float = 1e-10, max_iter: int = 500
) -> HybridFit:
    """Solve for one alpha, warm-started from ``x0`` (another fit's ``solution``, e.g. a neighbouring
    alpha's or the same alpha's on fewer rows). ``tol``: CG stops once the energy norm of the remaining
    error, per training row, is below it (about the RMS change still to come in the training predictions)."""
    x0 = np.zeros_like(system.rhs) if x0 is None else x0
    x, iterations = system.solve(alpha, x0, tol * np.sqrt(max(system.stats.n, 1)), max_iter)
    b, w, a, c = system.unknowns(x)
    return HybridFit(
        coef=w.copy(), intercept=b, alpha=alpha, user_bias=a if system.user_ids else None,
        movie_bias=c.copy() if system.movie_ids else None, iterations=iterations, solution=x,
    )  # fmt: skip
