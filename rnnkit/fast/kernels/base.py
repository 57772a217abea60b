"""What the fast scan asks of a cell's compiled loops, and the dispatch they share.

A kernel runs a scan's time loop one of three ways, chosen by rnnkit.fast.kernels.select:
split over the threads by hidden units (inference, ``by_units``: rnnkit.fast.kernels.columns),
the whole loop compiled (``whole_loop``; its batch over ``parts`` threads), or a compiled
step per time step around a BLAS product (``parallel``: the step over all threads). Each
cell's file gives only its row functions, its loops and the arguments they take.
"""
from __future__ import annotations

from functools import partial

from rnnkit.fast.kernels import columns
from rnnkit.fast.kernels.fastmath import get_num_threads


class LoopKernel:
    grads_in_gates = True           # backward overwrites the gates with their gradients
    adds_bias = True                # forward adds k["bx"] to the projection itself
    projects_input = False          # at inference the whole loop projects x (kernels.select)
    input_gemm = 0                  # its product: the loop's own (0) or MKL's (kernels.select)
    by_units = None                 # inference: the OpenBLAS of a loop split by units
    units_in_loop = False           # ... which then projects each step's input itself
    shared_threads = False          # its MKL products on all of MKL's threads (kernels.select)
    units_kind = None               # the cell's loop in rnnkit.fast.kernels.columns

    def __init__(self, whole_loop: bool, gemm: int = 0, parts: int = 1):
        self.whole_loop, self.gemm = whole_loop, gemm     # see rnnkit.fast.kernels.select
        self.parts = parts          # the whole loop's batch split over this many threads
        self.parallel = False       # the step kernels over all threads (set by the scan)

    def forward(self, k, cache, gx, h, c, n_active, reverse, out, x=None):
        """The loop over all steps: gx (T, N, G) the input projection (or x, when the loop
        projects it itself), h, c the states (N, H), updated in place, out (T, N, H)."""
        if self.by_units is not None:
            columns.run(self.units_kind, self.by_units, k, x, h, c, n_active, reverse, out,
                        self.units_in_loop)
        elif self.whole_loop:
            self.forward_whole(k, cache, h, c, n_active, reverse, out, x)
        else:
            self.forward_steps(k, cache, gx, h, c, n_active, reverse, out)

    def run(self, serial, parallel, args: tuple) -> None:
        """A whole loop: on this thread, or its batch split over ``parts`` threads."""
        if self.parts > 1:
            parallel(self.parts, *args)
        else:
            serial(*args)

    def step_kernel(self, serial, parallel):
        """A step's compiled pass: on this thread, or over all threads (``parallel``)."""
        return partial(parallel, get_num_threads()) if self.parallel else serial

    @staticmethod
    def steps(T: int, reverse: bool, backward: bool = False, t0: int = 0):
        """The steps in the order the loop visits them (backward: the other way)."""
        forward = reverse == backward
        return range(t0, t0 + T) if forward else range(t0 + T - 1, t0 - 1, -1)
