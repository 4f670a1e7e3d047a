"""Scores of a rating predictor."""

from __future__ import annotations

import numpy as np


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², RMSE and MAE (R² as sklearn.metrics.r2_score)."""
    y = np.asarray(y, dtype=np.float64)
    err = y - np.asarray(pred, dtype=np.float64)
    ss_res = float(err @ err)
    mae = float(np.abs(err, out=err).mean())  # err is ours: no second temporary of len(y)
    centred = y - y.mean()
    ss_tot = float(centred @ centred)
    return {"r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0, "rmse": float(np.sqrt(ss_res / len(y))), "mae": mae}


def clipped(pred: np.ndarray, scale: tuple[float, float] | list[float] | None) -> np.ndarray:
    """Predictions clipped to the rating scale (low, high); unchanged without one."""
    return pred if scale is None else np.clip(pred, scale[0], scale[1])
