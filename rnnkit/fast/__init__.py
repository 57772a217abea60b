"""Everything that exists only for speed, behind this one entry point.

The layers, losses and optimisers call the names below and nothing inside this package:
BLAS selection and MKL/OpenBLAS loading (blas, mkl, openblas), products made on an input
where it lies (strided), the buffer pool (workspace), the cells' fused NumPy forms and the
weights laid out for the loops (fused), the compiled time loops (kernels) and the scan that
runs them (scan). Each entry returns "not applicable" (None or False) where it does not
apply, and the caller then runs the reference (rnnkit.cells, rnnkit.layers.scan). Tests pin
every fast path to the reference. The choices that hold across calls (MKL on or off, the
compiled loops on or off, the current scan's library) live in one object per context,
rnnkit.fast.setting.Setting, not in module globals.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, kernels, lnscan, workspace
from rnnkit.fast import scan as _scan
from rnnkit.fast.fused import ElmanCell, GRUCell, LSTMCell
from rnnkit.fast.kernels.updates import adam_step, adam_update, scatter_add_rows
from rnnkit.fast.lnscan import LayerNormCell
from rnnkit.fast.rows import for_row_blocks
from rnnkit.fast.scan import Prepared

_FUSED = {"rnn": ElmanCell, "lstm": LSTMCell, "gru": GRUCell}
# the options each fused form (and its compiled loops) has; others run on the reference
_SUPPORTED = {"rnn": {"clip": None}, "lstm": {"peepholes": False, "clip": None},
              "gru": {"reset_after": True, "clip": None}}


def fused_cell(spec, options: dict):
    """The fused form of a cell (rnnkit.cells.spec.CellSpec ``fast``) with its options, for
    the fast scan; None where the fast path has none (the reference scan runs it)."""
    if spec.fast in ("lnlstm", "lngru"):       # (their own scan: rnnkit.fast.lnscan)
        return LayerNormCell(spec.fast, options["per_gate"])
    cls = _FUSED.get(spec.fast)
    if cls is None or any(options.get(k) != v for k, v in _SUPPORTED[spec.fast].items()):
        return None
    return cls(options["nonlinearity"]) if spec.fast == "rnn" else cls()


def applies(fused, dtype) -> bool:
    """Whether the fast scan runs this fused cell at this dtype: where a compiled loop
    serves it (float32, numba installed and not switched off); a fused form exists only for
    the variants the loops have (``fused_cell``)."""
    return fused is not None and kernels.serves(dtype)


def _scan_of(cell):
    return lnscan if isinstance(cell, LayerNormCell) else _scan


def scan_forward(cell, *args, **kwargs):
    """One direction of one layer on its fast scan (rnnkit.fast.scan, or rnnkit.fast.lnscan
    for the layer-normalised cells)."""
    return _scan_of(cell).scan_forward(cell, *args, **kwargs)


def scan_backward(cell, *args, **kwargs):
    return _scan_of(cell).scan_backward(cell, *args, **kwargs)


def Stepper(cell, *args):
    """The fast scan's one-step-at-a-time inference for this cell (rnnkit.fast.scan.Stepper)."""
    return _scan_of(cell).Stepper(cell, *args)


def numpy_products() -> None:
    """A reference scan ran, its per-step products on NumPy's BLAS: the products after it
    stay there too (rnnkit.fast.blas.choose: two libraries' threads must not take turns)."""
    blas.choose(0)


def cell_options(fused) -> tuple[str, dict]:
    """(cell name, options) of a fused cell object (layers built the old way,
    ``Recurrent(LSTMCell(), ...)``)."""
    for name, cls in _FUSED.items():
        if isinstance(fused, cls):
            return name, ({"nonlinearity": fused.nonlinearity} if name == "rnn" else {})
    return None, {}


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of a float array is finite; possibly False when all are but their
    absolute sum overflows (from 1M values MKL's ?asum reads it once, on its threads):
    rnnkit.errors.check_array then counts the non-finite values before it fails."""
    total = blas.absolute_sum(a)
    return bool(np.isfinite(a).all()) if total is None else bool(np.isfinite(total))


def matmul(a, b, out=None, accumulate: bool = False):
    return blas.matmul(a, b, out, accumulate=accumulate)


column_sums = blas.column_sums
empty = workspace.empty

__all__ = ["fused_cell", "applies", "numpy_products", "cell_options", "all_finite", "matmul",
           "column_sums", "empty",
           "scan_forward", "scan_backward", "Prepared", "Stepper", "adam_step", "adam_update",
           "scatter_add_rows", "for_row_blocks"]
