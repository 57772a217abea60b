"""Time series for the forecasting app: the transform the model learns on, its inverse, and
the baselines every forecast is compared with.

A transform makes a series stationary enough to learn (note 004's stock problem, Box-Jenkins):

    level_t = log y_t  (transforms with "log")   or  y_t
    z_t     = level_t - level_{t-1}               "diff"
            = level_t - level_{t-s}               "seasonal_diff" (s = the season)
            = (level_t - level_{t-1}) - (level_{t-s} - level_{t-s-1})     "both_diff"
            = level_t                             "none" / "log"

z at time t exists from t = lag (the largest lag used) on. Inverting a forecast of z_t,
z_{t+1}, ... walks forward, solving for level_t and taking the earlier levels from the data
where known (before the forecast's origin) and from the forecast itself after.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail

TRANSFORMS = ("none", "log", "diff", "log_diff", "seasonal_diff", "log_seasonal_diff",
              "both_diff", "log_both_diff")


def differencing(transform: str, season: int) -> dict:
    """The differencing polynomial as {lag: coefficient}: z_t = sum_c coef_c level_{t-c}.
    diff: (1 - B); seasonal_diff: (1 - B^s); both_diff: (1 - B)(1 - B^s), Box-Jenkins'
    d = D = 1."""
    if transform not in TRANSFORMS:
        fail("transform", f"one of {TRANSFORMS}", repr(transform))
    if ("seasonal" in transform or "both" in transform) and season < 2:
        fail("season", f"a period >= 2 for transform {transform!r}", season)
    if "seasonal" in transform:
        return {0: 1.0, season: -1.0}
    if "both" in transform:
        return {0: 1.0, 1: -1.0, season: -1.0, season + 1: 1.0}
    return {0: 1.0, 1: -1.0} if transform.endswith("diff") else {0: 1.0}


def lag_of(transform: str, season: int) -> int:
    """How many points the transform uses up: z exists from this time on."""
    return max(differencing(transform, season))


def levels(y: np.ndarray, transform: str) -> np.ndarray:
    if transform.startswith("log"):
        if np.any(y <= 0):
            fail("series", f"positive values for transform {transform!r}",
                 f"minimum {y.min()} (use a transform without log)")
        return np.log(y)
    return y.astype(np.float64)


def forward(y: np.ndarray, transform: str, season: int) -> np.ndarray:
    """z (T - lag,): z[i] is the transformed value at time i + lag."""
    lev, poly = levels(y, transform), differencing(transform, season)
    lag = max(poly)
    return sum(c * lev[lag - k:len(lev) - k] for k, c in poly.items())


def invert(z_paths: np.ndarray, y: np.ndarray, t0: int, transform: str, season: int) -> np.ndarray:
    """Forecasts of z at times t0, t0+1, ... (S, h) -> forecasts of y (S, h), given the data
    y before t0 (only y[:t0] is read)."""
    poly = differencing(transform, season)
    lev = levels(y[:t0], transform)
    S, h = z_paths.shape
    out = np.empty((S, h))
    for k in range(h):
        level = z_paths[:, k].astype(np.float64).copy()
        for c, coef in poly.items():
            if c:
                back = t0 + k - c
                level -= coef * (lev[back] if back < t0 else out[:, back - t0])
        out[:, k] = level
    return np.exp(out) if transform.startswith("log") else out


def baselines(y: np.ndarray, t0: int, h: int, season: int) -> dict:
    """Forecasts of y[t0:t0+h] made at origin t0 (knowing y[:t0]): naive (the last value),
    seasonal naive (the value one season before) and seasonal naive scaled by the growth over
    the last season (y[t-s] * y[t0-1] / y[t0-1-s]). Seasonal ones need season >= 2 and
    h <= season."""
    last = y[t0 - 1]
    out = {"naive": np.full(h, last)}
    if season >= 2 and h <= season and t0 - 1 - season >= 0:
        seasonal = y[t0 - season:t0 - season + h]
        out["seasonal_naive"] = seasonal.astype(np.float64)
        out["seasonal_naive_growth"] = seasonal * (last / y[t0 - 1 - season])
    return out


def rmse(pred, actual) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(actual)) ** 2)))


def mae(pred, actual) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(actual))))
