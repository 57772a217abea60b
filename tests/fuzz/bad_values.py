"""Hypothesis strategies of bad values, one per kind of argument (issue 29, part 3).

Each strategy yields only values that a correct API must refuse: wrong types, NaN and
infinity, negatives, zeros, sizes no memory holds, wrong shapes, ranks and dtypes, ragged
lists, empty batches, NumPy scalars of the wrong kind and None where None means nothing.
Arrays are made fresh for each example (a call may keep or change what it is given).
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

NAN, INF = float("nan"), float("inf")

# neither numbers nor arrays: what a confused caller passes anywhere
_FOREIGN = [None, "3", b"3", [3], (3,), {"a": 1}, object(), 1j, np.array([1, 2])]


def _fresh(makers: list) -> st.SearchStrategy:
    """One of ``makers`` (functions of no argument), called at each draw."""
    return st.sampled_from(makers).map(lambda make: make())


def sizes(lo: int = 1, huge: bool = True) -> st.SearchStrategy:
    """Bad values for an integer size or count that must be >= lo; ``huge``: also sizes no
    memory holds (for a count of steps or a batch size a huge value is merely large)."""
    fixed = [1.5, float(lo + 1), NAN, INF, -INF, True, np.float64(lo + 2), np.float32(2.0),
             np.int64(lo - 1), "2", None, [2], 2 ** 63, 10 ** 30]
    return st.one_of(st.sampled_from(fixed + [v for v in _FOREIGN if v is not None]),
                     st.integers(max_value=lo - 1),
                     st.integers(min_value=2 ** 40, max_value=2 ** 70) if huge else st.nothing(),
                     st.floats(allow_nan=True, allow_infinity=True))


def seeds() -> st.SearchStrategy:
    """Bad values for a seed (None, an integer >= 0 or a np.random.Generator are good)."""
    return st.one_of(st.integers(max_value=-1),
                     st.sampled_from([1.5, NAN, INF, "0", b"0", np.float64(1.0), np.int64(-3),
                                      object(), 1j, {"seed": 1}]))


def rngs() -> st.SearchStrategy:
    """Bad values where a np.random.Generator (or None) is expected."""
    return st.sampled_from([3, -1, 1.5, "rng", np.random, np.random.RandomState(0), [1, 2],
                            object()])


def probabilities(lo: float = 0.0, hi: float = 1.0) -> st.SearchStrategy:
    """Bad values for a probability in [lo, hi)."""
    return st.one_of(st.floats(max_value=lo, exclude_max=True), st.floats(min_value=hi),
                     st.sampled_from([NAN, INF, -INF, "0.1", None, [0.1], True, 1j,
                                      np.array([0.1]), np.complex128(0.1)]))


def positive_numbers() -> st.SearchStrategy:
    """Bad values for a finite number > 0 (a learning rate, a temperature, a threshold)."""
    return st.one_of(st.floats(max_value=0.0), st.integers(max_value=0),
                     st.sampled_from([NAN, INF, -INF, "1", None, [1.0], True, 1j,
                                      np.array([1.0]), np.float64(NAN)]))


def nonnegative_numbers() -> st.SearchStrategy:
    return st.one_of(st.floats(max_value=0.0, exclude_max=True), st.integers(max_value=-1),
                     st.sampled_from([NAN, INF, "0", None, [0.0], True, 1j]))


def flags() -> st.SearchStrategy:
    """Bad values for True/False."""
    return st.sampled_from([None, "yes", "False", 2, 1.0, [True], np.array([True, False])])


def choices(good: tuple) -> st.SearchStrategy:
    """Bad values for a name from ``good`` (unknown names, other types, unhashables)."""
    return st.one_of(st.text(max_size=8).filter(lambda s: s not in good),
                     st.sampled_from([None, 3, 1.5, [good[0]], {good[0]: 1}, good[0].upper()
                                      if good[0].upper() not in good else "?", b"x"]))


def dtypes() -> st.SearchStrategy:
    """Bad values for a float dtype (float32 and float64 are good)."""
    return st.sampled_from(["float16", "int32", "int64", "complex64", "bool", "foo", "",
                            np.int64, np.float16, int, str, object, 3, None, [np.float32],
                            np.dtype("U3")])


def arrays(shape: tuple, dtype=np.float32, *, fixed: tuple | None = None,
           none_ok: bool = False, list_ok: bool = False,
           any_float: bool = False) -> st.SearchStrategy:
    """Bad values for a float array of ``shape``: ``fixed`` says which axes must keep their
    size (default all but the first; the first and a time axis may be any size >= 1)."""
    shape = tuple(shape)
    fixed = tuple(range(1, len(shape))) if fixed is None else fixed
    dtype = np.dtype(dtype)

    def good():
        return np.random.default_rng(0).standard_normal(shape).astype(dtype)

    def poisoned(value, k):
        def make():
            a = good()
            a.reshape(-1)[k % a.size] = value
            return a
        return make

    makers = [lambda: good()[..., None], lambda: good().reshape(-1)[:1].reshape(()),
              lambda: good().reshape(shape[0], -1) if len(shape) > 2 else good()[None, None],
              lambda: good()[:0],                                    # an empty batch
              lambda: good().astype(np.int64), lambda: good().astype(np.float16),
              lambda: good().astype(np.complex128), lambda: good() > 0,
              lambda: good().astype(object), lambda: good().astype(str),
              lambda: 1.0, lambda: np.float32(1.0), lambda: "x", lambda: object()]
    if not any_float:       # (a layer of one dtype takes no other)
        makers.append(lambda: good().astype(np.float64 if dtype == np.float32 else np.float32))
    if len(shape) > 1:
        makers.append(lambda: good()[:, :0])                         # no time steps / features
    for axis in fixed:
        for size in (shape[axis] + 1, max(shape[axis] - 1, 0)):
            if size != shape[axis]:
                def resized(axis=axis, size=size):
                    s = list(shape)
                    s[axis] = size
                    return np.zeros(s, dtype)
                makers.append(resized)
    for k, value in enumerate([NAN, INF, -INF]):
        makers.append(poisoned(value, 7 * k + 1))
    if not none_ok:
        makers.append(lambda: None)
    if not list_ok:
        makers.append(lambda: good().tolist())
    return _fresh(makers)


def id_arrays(shape: tuple, vocab: int, *, none_ok: bool = False) -> st.SearchStrategy:
    """Bad values for an integer id array of ``shape`` with ids in [0, vocab)."""
    def good():
        return np.arange(int(np.prod(shape))).reshape(shape) % vocab

    def with_id(value):
        def make():
            a = good()
            a.reshape(-1)[-1] = value
            return a
        return make

    makers = [with_id(-1), with_id(vocab), with_id(vocab + 10 ** 6), with_id(-(2 ** 40)),
              lambda: good().astype(np.float64), lambda: good().astype(np.float32) + 0.5,
              lambda: np.full(shape, np.nan), lambda: good().astype(str), lambda: good() > 0,
              lambda: good().astype(object), lambda: good()[..., None],
              lambda: good().reshape(-1)[0], lambda: "abc",
              lambda: [[0, 1], [2]], lambda: 1.5, lambda: object()]
    if len(shape) > 1:          # (an empty 1-d sequence is a fine one: it decodes to "")
        makers += [lambda: good()[:0], lambda: good()[:, :0]]
    if not none_ok:
        makers.append(lambda: None)
    return _fresh(makers)


def lengths(N: int, T: int) -> st.SearchStrategy:
    """Bad values for ``lengths`` of a right-padded (N, T) batch (None is good)."""
    ragged = [[T], [1, 1]] if N == 2 else [[T]] * N + [[1, 1]]
    makers = [lambda: np.zeros(N, np.int64), lambda: np.full(N, T + 1),
              lambda: np.full(N, -1), lambda: np.full(N, float(T)),
              lambda: np.full(N, np.nan), lambda: np.full(N + 1, T), lambda: np.full(N - 1, T),
              lambda: np.full((N, 1), T), lambda: np.full(N, T).astype(str),
              lambda: np.full(N, True), lambda: [T] * (N - 1) + [1.5],
              lambda: [T] * (N - 1) + ["x"], lambda: ragged, lambda: T, lambda: float(T),
              lambda: "1", lambda: object(), lambda: [T] * (N - 1) + [None],
              lambda: np.full(N, 2 ** 62), lambda: [T] * (N - 1) + [2 ** 70],
              lambda: np.full(N, T).astype(object), lambda: np.full(N, T, np.uint64)[:0]]
    return st.one_of(_fresh(makers),
                     st.lists(st.integers(), min_size=N, max_size=N).filter(
                         lambda ls: not all(1 <= v <= T for v in ls)))


def dicts_of_arrays(keys: tuple, shape: tuple, exact: bool = True) -> st.SearchStrategy:
    """Bad values for a dict {name: float array} with ``keys`` of ``shape`` (``exact``: those
    keys and shapes only; else any names and shapes, at least one entry)."""
    def make(change):
        def build():
            d = {k: np.ones(shape) for k in keys}
            return change(d)
        return build

    def drop(d):
        d.pop(keys[0])
        return d

    def extra(d):
        d["unknown"] = np.ones(shape)
        return d

    def nan(d):
        d[keys[0]][...] = np.nan
        return d

    makers = [make(lambda d: {k: v.tolist() for k, v in d.items()}),
              make(lambda d: {k: v.astype(np.int64) for k, v in d.items()}),
              make(lambda d: {k: v.astype(str) for k, v in d.items()}),
              make(lambda d: {k: None for k in d}),
              make(lambda d: {3: v for v in d.values()}),
              make(lambda d: list(d.values())), lambda: None, lambda: "grads", lambda: 3]
    if exact:
        makers += [make(drop), make(extra), make(nan), lambda: {},
                   make(lambda d: {k: v[..., None] for k, v in d.items()})]
    return _fresh(makers)
