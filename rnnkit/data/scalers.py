"""Scalers fitted on the training part of a series, stored as plain JSON in checkpoints.

Both map ``x -> (x - shift) / scale`` per feature (the last axis), with statistics taken from
the array given to `fit` only; a 1-d series gets scalar statistics. Using one before `fit`
raises RnnkitError.
"""
from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np

from rnnkit.errors import fail


def float_array(name: str, x, min_ndim: int = 1) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf" or arr.ndim < min_ndim or arr.size == 0:
        fail(name, f"a non-empty numeric array of at least {min_ndim} dimension(s)",
             f"shape {arr.shape}, dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        fail(name, "finite values", f"{arr.size - np.count_nonzero(np.isfinite(arr))} NaN "
             "or infinite value(s)")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _digest(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


class _Scaler:
    """``transform(x) = (x - shift) / scale``; statistics per feature (the last axis) of the
    data given to `fit`, or one scalar pair when it was fitted on a 1-d series."""

    kind = ""
    _fields: tuple[str, ...] = ()          # fitted statistics
    _options: tuple[str, ...] = ()         # constructor arguments

    def __init__(self):
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.shift is not None

    def fit(self, x):
        x = float_array("x", x).astype(np.float64)
        self._fit(x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(-1, 1))
        if x.ndim == 1:                         # a univariate series: scalar statistics
            for f in self._fields:
                setattr(self, f, getattr(self, f)[0])
        self._derive()
        return self

    def _require_fit(self) -> None:
        if not self.fitted:
            fail("scaler", "fit(train) to be called before use",
                 f"an unfitted {type(self).__name__}")

    def _check(self, x) -> np.ndarray:
        self._require_fit()
        x = float_array("x", x)
        if np.ndim(self.shift) and x.shape[-1] != np.shape(self.shift)[0]:
            fail("x", f"{np.shape(self.shift)[0]} features on the last axis (as in fit)",
                 f"shape {x.shape}")
        return x

    def transform(self, x) -> np.ndarray:
        x = self._check(x)
        return ((x - self.shift) / self.scale).astype(x.dtype, copy=False)

    def inverse_transform(self, x) -> np.ndarray:
        x = self._check(x)
        return (x * self.scale + self.shift).astype(x.dtype, copy=False)

    def feature(self, j: int):
        """A scaler for feature `j` alone (e.g. to un-scale predictions of one column)."""
        self._require_fit()
        if not np.ndim(self.shift):
            fail("j", "a feature of a multivariate scaler", "a scaler fitted on a 1-d series")
        n = np.shape(self.shift)[0]
        if not isinstance(j, (int, np.integer)) or not 0 <= j < n:
            fail("j", f"a feature index in [0, {n - 1}]", repr(j))
        one = type(self).__new__(type(self))
        one.__dict__.update(self.__dict__)
        for f in self._fields:
            setattr(one, f, getattr(self, f)[j])
        one._derive()
        return one

    def to_dict(self) -> dict:
        """Plain JSON-able statistics, for a checkpoint's metadata."""
        self._require_fit()
        d = {"type": self.kind, **{k: list(getattr(self, k)) for k in self._options},
             **{f: np.asarray(getattr(self, f)).tolist() for f in self._fields}}
        return dict(d, sha256=_digest(d))

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict) or d.get("type") != cls.kind:
            fail("d", f"a dict with type {cls.kind!r} from {cls.__name__}.to_dict()",
                 repr(d)[:80])
        # a changed digit in a statistic is a valid number: the digest tells it (files
        # written before it was stored have none)
        if "sha256" in d and d["sha256"] != _digest({k: v for k, v in d.items()
                                                      if k != "sha256"}):
            fail("d", "statistics matching their sha256 (as written)", "changed statistics")
        scaler = cls(**{k: d[k] for k in cls._options if k in d})
        for f in cls._fields:
            if d.get(f) is None:
                fail("d", f"the fitted statistic {f!r}", "a dict without it (unfitted?)")
            try:
                value = np.asarray(d[f], np.float64)
            except (TypeError, ValueError):
                fail("d", f"numbers for the statistic {f!r}", repr(d[f])[:80])
            if value.ndim > 1 or value.size == 0 or not np.isfinite(value).all() or \
                    (f == "std" and (value < 0).any()):
                fail("d", f"finite numbers{' >= 0' if f == 'std' else ''} (one a feature) for "
                     f"the statistic {f!r}", repr(d[f])[:80])
            setattr(scaler, f, value)
        sizes = {np.asarray(getattr(scaler, f)).size for f in cls._fields}
        if len(sizes) > 1:
            fail("d", f"as many numbers in each of {list(cls._fields)}", repr(d)[:80])
        if cls._fields == ("min", "max") and (scaler.max < scaler.min).any():
            fail("d", "min <= max for every feature", repr(d)[:80])
        scaler._derive()
        return scaler


class StandardScaler(_Scaler):
    """Zero mean, unit variance: ``(x - mean) / std`` (a constant feature gets std 1)."""

    kind = "standard"
    _fields = ("mean", "std")

    def _fit(self, x2: np.ndarray) -> None:            # (T, F)
        self.mean, self.std = x2.mean(axis=0), x2.std(axis=0)

    def _derive(self) -> None:
        self.shift, self.scale = self.mean, np.where(self.std > 0, self.std, 1.0)


class MinMaxScaler(_Scaler):
    """Linear map of [min, max] onto ``feature_range`` (a constant feature maps to its low end).

    Values outside the training range map outside ``feature_range``; nothing is clipped.
    """

    kind = "minmax"
    _fields = ("min", "max")
    _options = ("feature_range",)

    def __init__(self, feature_range: Sequence[float] = (0.0, 1.0)):
        super().__init__()
        lo, hi = (float(v) for v in feature_range)
        if not lo < hi:
            fail("feature_range", "(low, high) with low < high", repr(tuple(feature_range)))
        self.feature_range = (lo, hi)

    def _fit(self, x2: np.ndarray) -> None:
        self.min, self.max = x2.min(axis=0), x2.max(axis=0)

    def _derive(self) -> None:
        lo, hi = self.feature_range
        span = np.where(self.max > self.min, self.max - self.min, hi - lo)
        self.scale = span / (hi - lo)
        self.shift = self.min - lo * self.scale


def scaler_from_dict(d: dict) -> StandardScaler | MinMaxScaler:
    kinds = {c.kind: c for c in (StandardScaler, MinMaxScaler)}
    if not isinstance(d, dict) or not isinstance(d.get("type"), str) or d["type"] not in kinds:
        fail("d", f"a scaler dict with type in {sorted(kinds)}", repr(d)[:80])
    return kinds[d["type"]].from_dict(d)
