"""Variable-length sequences into right-padded batches, grouped by length.

`pad_sequences` stacks sequences of different lengths into one (N, T[, D]) array plus their
lengths; `bucket_batches` groups indices of similar length so that little of each batch is
padding; `SequenceDataset` is the data source a trainer consumes (`rnnkit.data.batch`), its
order fixed by (seed, epoch) so that a run resumed at batch `start` sees the same batches.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from rnnkit.data.batch import Batch
from rnnkit.errors import as_array, check_flag, check_int, check_number, fail


def check_sequences(name: str, seqs: Sequence) -> list[np.ndarray]:
    """`seqs` as a list of arrays, all (T_i,) or all (T_i, D) with the same D, T_i >= 1."""
    if isinstance(seqs, (str, bytes)) or not hasattr(seqs, "__len__"):
        fail(name, "a list of 1-d (T,) or 2-d (T, D) arrays", type(seqs).__name__)
    try:
        arrays = [as_array(f"{name}[{i}]", s) for i, s in enumerate(seqs)]
    except TypeError:       # (not iterable)
        fail(name, "a list of 1-d (T,) or 2-d (T, D) arrays", type(seqs).__name__)
    if not arrays:
        fail(name, "at least one sequence", "an empty list")
    first = arrays[0]
    if first.ndim not in (1, 2):
        fail(f"{name}[0]", "a 1-d (T,) id array or a 2-d (T, D) feature array",
             f"shape {first.shape}")
    want = "(T,)" if first.ndim == 1 else f"(T, {first.shape[1]}) like {name}[0]"
    for i, a in enumerate(arrays):
        if a.ndim != first.ndim or a.shape[1:] != first.shape[1:]:
            fail(f"{name}[{i}]", f"shape {want}", f"shape {a.shape}")
        if len(a) == 0:
            fail(f"{name}[{i}]", "at least one step", "length 0")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            fail(f"{name}[{i}]", "finite values", "NaN or infinite values")
    return arrays


def pad_sequences(seqs: Sequence, pad_value=0, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad sequences to the longest one.

    seqs: N arrays, each (T_i,) ids or (T_i, D) features.
    Returns padded (N, T) or (N, T, D) with T = max T_i (``pad_value`` after each sequence's
    end; dtype defaults to the common dtype of the inputs) and lengths (N,) int64.
    """
    arrays = check_sequences("seqs", seqs)
    lengths = np.array([len(a) for a in arrays], np.int64)
    if dtype is not None:
        try:
            dtype = None if isinstance(dtype, (int, list, tuple)) else np.dtype(dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biuf":
            fail("dtype", "None or a numeric dtype (int64, float32, ...)", repr(dtype))
    dtype = np.result_type(*{a.dtype for a in arrays}) if dtype is None else dtype
    check_number("pad_value", pad_value, -np.inf, np.inf)
    if dtype.kind in "biu" and pad_value != int(pad_value):
        fail("pad_value", f"an integer (the padded array is {dtype.name})", repr(pad_value))
    padded = np.full((len(arrays), int(lengths.max())) + arrays[0].shape[1:], pad_value, dtype)
    for row, a in zip(padded, arrays):
        row[:len(a)] = a
    return padded, lengths


def bucket_batches(lengths, batch_size: int, rng: np.random.Generator | None,
                   bucket_size_multiplier: int = 50) -> list[np.ndarray]:
    """Index batches whose members have similar lengths; every index appears exactly once.

    The indices are shuffled with `rng`, cut into buckets of ``batch_size *
    bucket_size_multiplier``, each bucket sorted by length and cut into batches, and the order
    of the batches shuffled with `rng`: similar lengths share a batch, yet the batches differ
    from epoch to epoch. `rng` None keeps the given order (buckets of consecutive indices,
    batches from shortest to longest within each). There are ceil(N / batch_size) batches;
    only the last batch of the last bucket can be smaller than `batch_size`.
    """
    lengths = as_array("lengths", lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or lengths.size == 0:
        fail("lengths", "a non-empty 1-d array of integer lengths", f"shape {lengths.shape}, "
             f"dtype {lengths.dtype}")
    if lengths.min() < 1:
        fail("lengths", "lengths >= 1", f"min {lengths.min()}")
    _check_positive("batch_size", batch_size)
    _check_positive("bucket_size_multiplier", bucket_size_multiplier)
    if rng is not None and not isinstance(rng, np.random.Generator):
        fail("rng", "a np.random.Generator or None", type(rng).__name__)
    n = len(lengths)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    bucket = batch_size * bucket_size_multiplier
    batches = []
    for s in range(0, n, bucket):
        idx = order[s:s + bucket]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        batches.extend(idx[b:b + batch_size] for b in range(0, len(idx), batch_size))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator for one epoch: a function of (seed, epoch) only, so resuming is exact."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        fail("seed", "an integer >= 0", repr(seed))
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
        fail("epoch", "an integer >= 0", repr(epoch))
    return np.random.default_rng([int(seed), int(epoch)])


def check_start(start: int, num_batches: int) -> int:
    if not isinstance(start, (int, np.integer)) or not 0 <= start <= num_batches:
        fail("start", f"an integer in [0, {num_batches}] (the epoch's number of batches)",
             repr(start))
    return int(start)


def _check_positive(name: str, value) -> None:
    check_int(name, value)


class ArrayDataset:
    """Equal-length examples X (M, ...) with targets y (M, ...) of any dtype (class ids stay
    integers) as a data source: a permutation per epoch from (seed, epoch), or in order."""

    stateful = False

    def __init__(self, X: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True):
        for name, a in (("X", X), ("y", y)):
            if not isinstance(a, np.ndarray) or a.ndim < 1 or len(a) == 0:
                fail(name, "a NumPy array of at least one example (M, ...)",
                     f"shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__)
        if len(X) != len(y):
            fail("y", f"{len(X)} targets (one per example)", f"{len(y)}")
        check_flag("shuffle", shuffle)
        _check_positive("batch_size", batch_size)
        epoch_rng(seed, 0)
        self.X, self.y, self.batch_size = X, y, int(batch_size)
        self.seed, self.shuffle = int(seed), shuffle

    def __len__(self) -> int:
        return len(self.X)

    def num_batches(self, epoch: int = 0) -> int:
        return -(-len(self.X) // self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = (epoch_rng(self.seed, epoch).permutation(len(self)) if self.shuffle
                 else np.arange(len(self)))
        first = check_start(start, self.num_batches(epoch)) * self.batch_size
        return (Batch(inputs=self.X[order[s:s + self.batch_size]],
                      targets=self.y[order[s:s + self.batch_size]])
                for s in range(first, len(self), self.batch_size))


class SequenceDataset:
    """Variable-length sequences with a label each, or with a target at every step.

    inputs: N arrays, (T_i,) ids or (T_i, D) features. targets: N labels (N,) (or any
    fixed-shape value per sequence), or, with ``per_step_targets=True``, N arrays (T_i[, K])
    as long as their inputs, right-padded with `target_pad_value` like the inputs (a loss
    masks them using ``Batch.lengths``).

    Each batch is padded only to its own longest sequence. With ``bucket=True`` batches group
    similar lengths (`bucket_batches`); with ``shuffle=True`` the order changes every epoch.
    The order is a function of (seed, epoch) only, so ``batches(epoch, start)`` equals the
    tail of ``batches(epoch)`` from batch `start` on.
    """

    stateful = False

    def __init__(self, inputs: Sequence, targets, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, bucket: bool = True, per_step_targets: bool = False,
                 pad_value=0, target_pad_value=0, bucket_size_multiplier: int = 50):
        self.inputs = check_sequences("inputs", inputs)
        n = len(self.inputs)
        if per_step_targets:
            self.targets = check_sequences("targets", targets)
            if len(self.targets) != n:
                fail("targets", f"{n} sequences (one per input)", f"{len(self.targets)}")
            for i, (x, t) in enumerate(zip(self.inputs, self.targets)):
                if len(t) != len(x):
                    fail(f"targets[{i}]", f"{len(x)} steps (as many as inputs[{i}])",
                         f"{len(t)}")
        else:
            try:
                self.targets = np.asarray(targets)
            except ValueError:                   # ragged: per-step targets without the flag
                fail("targets", "one fixed-shape label per input (or per_step_targets=True)",
                     "sequences of different lengths")
            if self.targets.ndim == 0 or len(self.targets) != n:
                fail("targets", f"one label per input sequence, shape ({n},)",
                     f"shape {self.targets.shape}")
        _check_positive("batch_size", batch_size)
        epoch_rng(seed, 0)                       # validates the seed now, not mid-training
        self.lengths = np.array([len(x) for x in self.inputs], np.int64)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.shuffle, self.bucket = shuffle, bucket
        self.per_step_targets = per_step_targets
        self.pad_value, self.target_pad_value = pad_value, target_pad_value
        self.bucket_size_multiplier = bucket_size_multiplier

    def __len__(self) -> int:
        return len(self.inputs)

    def num_batches(self, epoch: int = 0) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """The example indices of each batch of `epoch`, in order."""
        rng = epoch_rng(self.seed, epoch) if self.shuffle else None
        if self.bucket:
            return bucket_batches(self.lengths, self.batch_size, rng,
                                  self.bucket_size_multiplier)
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        return [order[s:s + self.batch_size] for s in range(0, len(self), self.batch_size)]

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        plan = self.batch_indices(epoch)
        return self._padded(plan[check_start(start, len(plan)):])   # checks now, not lazily

    def _padded(self, plan: list[np.ndarray]) -> Iterator[Batch]:
        for idx in plan:
            x, lengths = pad_sequences([self.inputs[i] for i in idx], self.pad_value)
            if self.per_step_targets:
                y, _ = pad_sequences([self.targets[i] for i in idx], self.target_pad_value)
            else:
                y = self.targets[idx]
            yield Batch(inputs=x, targets=y, lengths=lengths)
