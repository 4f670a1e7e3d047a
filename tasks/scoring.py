"""Scores of a rating predictor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property

import numpy as np

BLOCK_ROWS = 1 << 18  # rows scored at a time: a block's predictions and errors stay in cache


class Targets:
    """The ratings predictions are scored against, block by block of rows (no error array of the
    whole length); their total sum of squares is computed once however many predictors are scored
    (the model, the baselines, each alpha)."""

    def __init__(self, y: np.ndarray):
        self.y = np.asarray(y, dtype=np.float64)

    def _blocks(self) -> Iterator[slice]:
        return (slice(start, start + BLOCK_ROWS) for start in range(0, len(self.y), BLOCK_ROWS))

    @cached_property
    def ss_tot(self) -> float:
        mean = self.y.mean()
        return sum(float(c @ c) for c in (self.y[rows] - mean for rows in self._blocks()))

    def metrics(self, pred: np.ndarray) -> dict[str, float]:
        """R², RMSE and MAE of ``pred`` (R² as sklearn.metrics.r2_score)."""
        return self.metrics_of(lambda rows: pred[rows])

    def metrics_of(self, predict: Callable[[slice], np.ndarray]) -> dict[str, float]:
        """R², RMSE and MAE of a predictor asked for one block of rows at a time (``predict(rows)``):
        its predictions never exist for all rows at once."""
        ss_res = abs_sum = 0.0
        for rows in self._blocks():
            err = self.y[rows] - np.asarray(predict(rows), dtype=np.float64)
            ss_res += float(err @ err)
            abs_sum += float(np.abs(err, out=err).sum())
        n, ss_tot = len(self.y), self.ss_tot
        return {"r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0, "rmse": float(np.sqrt(ss_res / n)), "mae": abs_sum / n}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², RMSE and MAE (R² as sklearn.metrics.r2_score)."""
    return Targets(y).metrics(pred)


def clipped(pred: np.ndarray, scale: tuple[float, float] | list[float] | None, in_place: bool = False) -> np.ndarray:
    """Predictions clipped to the rating scale (low, high); unchanged without one. ``in_place``: clip
    ``pred`` itself (a temporary of the caller's) instead of a copy."""
    if scale is None:
        return pred
    return np.clip(pred, scale[0], scale[1], out=pred if in_place else None)
