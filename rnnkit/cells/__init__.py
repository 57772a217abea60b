"""The cells: one time step each, forward and backward, as the notes write them.

Each cell is one file importing only NumPy: its reference pair (``rnn_step`` /
``rnn_step_back``, ``lstm_step`` / ``lstm_step_back``, ...) and a ``SPEC`` saying what it is
(name, options, parameter shapes, gate order, ONNX and PyTorch counterparts, its fast
implementation if any; rnnkit.cells.spec). Adding a cell is a new file and its name in
``MODULES``.
"""
from __future__ import annotations

import importlib

from rnnkit.cells.gru import from_pytorch_convention, to_pytorch_convention
from rnnkit.cells.spec import CellSpec, build
from rnnkit.errors import fail

MODULES = ("rnn", "lstm", "gru", "indrnn", "lnlstm", "lngru")       # the registered cells, one file each

CELLS: dict[str, CellSpec] = {}
for _module in MODULES:
    _spec = build(importlib.import_module(f"rnnkit.cells.{_module}").SPEC)
    CELLS[_spec.name] = _spec


def get(name: str) -> CellSpec:
    """The spec of the cell called ``name`` ("rnn", "lstm", ...) or of layer class ``name``
    ("LSTM", "IndRNN", ...)."""
    if isinstance(name, str):
        for spec in CELLS.values():
            if name in (spec.name, spec.layer):
                return spec
    fail("cell", f"one of {tuple(CELLS)}", repr(name))


__all__ = ["CELLS", "CellSpec", "MODULES", "get", "to_pytorch_convention",
           "from_pytorch_convention"]
