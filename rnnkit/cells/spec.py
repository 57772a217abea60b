"""What a cell says about itself, so that nothing else keeps a list of cells.

A cell file (importing only NumPy) defines its reference pair (``x_step``, ``x_step_back``)
and a ``SPEC`` dict of the fields below; ``rnnkit/cells/__init__.py`` registers it in one
line. The layers, ``init``, ``SequenceModel``, ``save``/``load``, the ONNX and PyTorch
converters and the fast path read the spec instead of string registries and isinstance
chains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rnnkit.errors import RnnkitError, check_number, fail

# an option's kind: a tuple of allowed values, bool, or "positive or None"
POSITIVE_OR_NONE = "positive or None"


@dataclass(frozen=True)
class CellSpec:
    name: str                     # "lstm": the --cell value and the registry key
    layer: str                    # "LSTM": the layer class name files record
    equations: str                # as the notes write them
    step: Callable                # step(x_t, *states, p, **options) -> (*states_t, cache)
    step_back: Callable           # step_back(*dstates_t, cache, p, **options)
    #                               -> (dx_t, *dstates_{t-1}, grads)
    params: Callable              # params(D, H, **options) -> {name: (shape, kind)}
    states: tuple = ("h",)        # the carried state; the output is states[0]
    gates: tuple = ()             # order of the fused gate blocks in W_xh, W_hh, b_*
    options: dict = field(default_factory=dict)       # option -> (default, kind)
    onnx_op: str | None = None    # the ONNX operator it maps to; None: not exportable
    torch_module: str | None = None   # torch.nn.<name>; None: no conversion
    fast: str | None = None       # the fast path's implementation of it; None: reference only

    @property
    def has_cell_state(self) -> bool:
        return len(self.states) > 1

    @property
    def n_gates(self) -> int:
        return max(1, len(self.gates))

    def defaults(self) -> dict:
        return {name: default for name, (default, _) in self.options.items()}

    def resolve(self, options: dict) -> dict:
        """The options with defaults filled in, each checked against its kind."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            fail(f"{self.name} option", f"one of {sorted(self.options)}",
                 ", ".join(map(repr, unknown)))
        out = {**self.defaults(), **options}
        for name, value in out.items():
            out[name] = _checked(name, value, self.options[name][1])
        return out


def _checked(name: str, value, kind):
    if kind is bool:
        if not isinstance(value, bool):
            fail(name, "True or False", repr(value))
        return value
    if kind == POSITIVE_OR_NONE:
        if value is None:
            return None
        try:
            return check_number(name, value, 0, lo_open=True)
        except RnnkitError:
            fail(name, "None or a positive threshold", repr(value))
    if value not in kind:
        fail(name, f"one of {kind}", repr(value))
    return value


def build(spec: dict) -> CellSpec:
    """A cell file's SPEC dict -> CellSpec."""
    return CellSpec(**spec)
