"""Scores of a rating predictor."""

from __future__ import annotations

from functools import cached_property

import numpy as np


class Targets:
    """The ratings one set of predictions is scored against; their total sum of squares is computed
    once however many predictors are scored (the model, the baselines, each alpha)."""

    def __init__(self, y: np.ndarray):
        self.y = np.asarray(y, dtype=np.float64)

    @cached_property
    def ss_tot(self) -> float:
        centred = self.y - self.y.mean()
        return float(centred @ centred)

    def metrics(self, pred: np.ndarray) -> dict[str, float]:
        """R², RMSE and MAE of ``pred`` (R² as sklearn.metrics.r2_score)."""
        err = self.y - np.asarray(pred, dtype=np.float64)
        ss_res = float(err @ err)
        mae = float(np.abs(err, out=err).mean())  # err is ours: no second temporary of len(y)
        ss_tot = self.ss_tot
        return {"r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0, "rmse": float(np.sqrt(ss_res / len(self.y))), "mae": mae}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², RMSE and MAE (R² as sklearn.metrics.r2_score)."""
    return Targets(y).metrics(pred)


def clipped(pred: np.ndarray, scale: tuple[float, float] | list[float] | None, in_place: bool = False) -> np.ndarray:
    """Predictions clipped to the rating scale (low, high); unchanged without one. ``in_place``: clip
    ``pred`` itself (a temporary of the caller's) instead of a copy."""
    if scale is None:
        return pred
    return np.clip(pred, scale[0], scale[1], out=pred if in_place else None)
