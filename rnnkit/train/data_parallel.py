"""Data parallelism for the trainer: every rank takes its rows of the same batch, and the
ranks' gradients are summed into the full batch's gradient, all in one collective call.

Why the result is the full batch's gradient: a loss averages over its valid items (steps
inside the lengths, or rows), so rank r's gradient is g_r = (1 / n_r) sum_r dL_i. Scaled by
n_r / n (n = the items of the whole batch, summed over the ranks) and summed,
sum_r (n_r / n) g_r = (1 / n) sum_i dL_i: the full batch's, however unevenly the rows and
their lengths fall. Gradient clipping, the optimiser's step and the non-finite checks then
run on that same sum on every rank, so the ranks stay bit-identical.

The gradients are views into one contiguous buffer (per dtype), so the sum is one
``all_reduce`` call with no copies (``GradientBuffer``). A recurrent state carried between
batches (text streams) is each rank's rows of it; a checkpoint holds the whole batch's, so a
run can resume on another number of ranks.
"""
from __future__ import annotations

import gc
import inspect

import numpy as np

from rnnkit.data.batch import Batch

ALIGN = 16          # each gradient starts on a 64-byte boundary of the buffer (float32)


def rows(n: int, rank: int, world_size: int) -> slice:
    """Rank's contiguous share of n rows; the first n % world_size ranks take one more."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def _take(x, part: slice):
    """Rows `part` of an array, or of each array in a tuple (seq2seq inputs and lengths)."""
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(_take(a, part) for a in x)
    return np.asarray(x)[part]


def _num_rows(x) -> int:
    return _num_rows(x[0]) if isinstance(x, tuple) else len(x)


class GradientBuffer:
    """The model's gradients moved into one contiguous array per dtype: every dict or list
    inside the model that held a gradient array holds its view instead, so backward writes
    straight into the buffer. Where some other holder keeps the old array (found by the
    garbage collector's referrers), nothing is moved and ``gather``/``scatter`` copy."""

    def __init__(self, model):
        self.model, self.views = model, {}
        by_dtype: dict = {}
        for name, g in model.grads.items():
            by_dtype.setdefault(g.dtype, []).append(name)
        self.buffers = []
        for dtype, names in by_dtype.items():
            offsets, size = {}, 0
            for name in names:
                offsets[name] = size
                size += -(-model.grads[name].size // ALIGN) * ALIGN
            flat = np.zeros(size, dtype)
            for name in names:
                g = model.grads[name]
                self.views[name] = flat[offsets[name]:offsets[name] + g.size].reshape(g.shape)
            self.buffers.append(flat)
        self.shared = self._rebind()

    def _rebind(self) -> bool:
        """Replace every reference to an old gradient array inside the model by its view;
        False (and nothing replaced) if any reference is out of reach."""
        slots, seen = [], set()

        def visit(obj):
            if id(obj) in seen or isinstance(obj, (np.ndarray, str, bytes, int, float)):
                return
            seen.add(id(obj))
            if isinstance(obj, dict):
                items = list(obj.items())
            elif isinstance(obj, list):
                items = list(enumerate(obj))
            elif isinstance(obj, tuple):
                items = [(None, v) for v in obj]
            elif type(obj).__module__.startswith("rnnkit") and hasattr(obj, "__dict__"):
                return visit(vars(obj))
            else:
                return
            for key, value in items:
                if isinstance(value, np.ndarray):
                    slots.append((obj, key, value))
                else:
                    visit(value)

        visit(self.model)
        old = {id(g): g for g in self.model.grads.values()}
        found = [slot for slot in slots if id(slot[2]) in old]
        if any(isinstance(obj, tuple) for obj, _, _ in found):
            return False
        # every referrer of an old array is a holder found above (or this function's own
        # bookkeeping); anything else would keep writing into the old array
        ours = {id(obj) for obj, _, _ in found} | {id(slot) for slot in slots} | {id(old)}
        for g in old.values():
            if any(id(ref) not in ours and not inspect.isframe(ref)
                   for ref in gc.get_referrers(g)):
                return False
        names = {id(g): name for name, g in self.model.grads.items()}
        for obj, key, value in found:
            view = self.views[names[id(value)]]
            view[...] = value
            obj[key] = view
        return True

    def gather(self) -> None:
        """The gradients into the buffers (a no-op where they live there)."""
        if not self.shared:
            for name, g in self.model.grads.items():
                self.views[name][...] = g

    def scatter(self) -> None:
        """The buffers' sums back into the gradients (a no-op where they live there)."""
        if not self.shared:
            for name, g in self.model.grads.items():
                g[...] = self.views[name]


class DataParallel:
    """What the trainer asks of the ranks, one object per trainer; with one rank every
    method leaves things as they are (and costs nothing)."""

    def __init__(self, comm, model, seed: int):
        self.comm, self.model, self.seed = comm, model, seed
        self.active = comm.world_size > 1
        self.writes = comm.rank == 0        # the rank that writes files
        self.grads = GradientBuffer(model) if self.active else None
        self.local_weight, self.empty = 0.0, False

    # --- data ---------------------------------------------------------------------------
    def shard(self, batch: Batch) -> Batch:
        """This rank's rows of the batch (every rank reads the same batches). A batch with
        fewer rows than ranks leaves some without: they run its first row and weigh it 0, so
        that every rank meets every collective."""
        if not self.active:
            return batch
        part = rows(_num_rows(batch.inputs), self.comm.rank, self.comm.world_size)
        self.empty = part.start == part.stop
        if self.empty:
            part = slice(0, 1)
        return Batch(_take(batch.inputs, part), _take(batch.targets, part),
                     _take(batch.lengths, part))

    def step_rng(self, rng: np.random.Generator, step: int) -> np.random.Generator:
        """Dropout masks: the trainer's generator on one rank; else one from
        (seed, step, rank), so that each rank's masks differ and a resumed run draws the same."""
        if not self.active:
            return rng
        return np.random.default_rng([self.seed, step, self.comm.rank])

    # --- the step -----------------------------------------------------------------------
    def mean_loss(self, loss: float, targets, lengths) -> float:
        """The whole batch's mean loss from this rank's (nan on every rank if any rank's is
        not finite); remembers n_r / n for ``mean_gradients``. The loss must average over
        the items ``Batch.size`` counts (valid steps of per-step targets, else rows), or
        over a fixed multiple of them (features of each step)."""
        if not self.active:
            return loss
        count = 0.0 if self.empty else float(Batch(None, targets, lengths).size)
        local = np.array([count, count * loss if count else 0.0])   # (n_r, n_r * loss_r)
        self.comm.all_reduce(local)
        total, loss_sum = local
        self.local_weight = count / total if total else 0.0
        return float(loss_sum / total) if total else loss

    def mean_gradients(self) -> None:
        """model.grads <- the whole batch's gradient: each rank's scaled by n_r / n, summed."""
        if not self.active:
            return
        grads = self.grads
        grads.gather()
        for flat in grads.buffers:
            flat *= flat.dtype.type(self.local_weight)
            self.comm.all_reduce(flat)
        grads.scatter()

    def agree(self, signal: str | None, late: bool) -> tuple[str | None, bool]:
        """Whether any rank was interrupted or is due a timed checkpoint: the ranks decide
        together, else one would wait alone in the next collective."""
        if not self.active:
            return signal, late
        flags = np.array([signal is not None, late], dtype=np.float64)
        self.comm.all_reduce(flags)
        if flags[0] and signal is None:
            signal = "a signal on another rank"
        return signal, bool(flags[1])

    # --- weights and checkpoints ----------------------------------------------------------
    def broadcast_weights(self, optimizer) -> None:
        """Rank 0's parameters (and optimiser slots) to every rank: the same start, new or
        resumed."""
        if not self.active:
            return
        for p in self.model.params.values():
            self.comm.broadcast(p)
        for arrays in getattr(optimizer, "slots", {}).values():
            for a in arrays.values():
                self.comm.broadcast(a)

    def whole_state(self, carry):
        """The carried state of the whole batch from each rank's rows (states are
        (layers, N, H): rows on axis 1); every rank gets it. A collective."""
        if not self.active or carry is None:
            return carry
        parts = carry if isinstance(carry, tuple) else (carry,)
        n = np.array([parts[0].shape[1]], dtype=np.int64)
        self.comm.all_reduce(n)
        part = rows(int(n[0]), self.comm.rank, self.comm.world_size)
        whole = []
        for a in parts:
            full = np.zeros((a.shape[0], int(n[0])) + a.shape[2:], a.dtype)
            full[:, part] = a                # x + 0 is exact: the sum is a gather
            self.comm.all_reduce(full)
            whole.append(full)
        return tuple(whole) if isinstance(carry, tuple) else whole[0]

    def own_state(self, carry):
        """This rank's rows of a whole batch's carried state (from a checkpoint)."""
        if not self.active or carry is None:
            return carry
        parts = carry if isinstance(carry, tuple) else (carry,)
        part = rows(parts[0].shape[1], self.comm.rank, self.comm.world_size)
        own = tuple(np.ascontiguousarray(a[:, part]) for a in parts)
        return own if isinstance(carry, tuple) else own[0]

    def barrier(self) -> None:
        if self.active:
            self.comm.barrier()
