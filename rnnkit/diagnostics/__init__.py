"""Seeing what the notes teach: step tables of a cell's forward and backward pass
(``trace``: ``trace_cell``, ``trace_model``), how the gradient flows back through time
(``flow``: ``jacobian_norms``, ``gradient_flow``, ``compare_cells``, ``plot_flow``) and the
long-memory tasks (``memory_tasks``, ``memory_runner``). ``rnnkit trace`` and
``rnnkit memory`` run them from the command line (rnnkit.cli.TOOLS)."""
from rnnkit.diagnostics.flow import (compare_cells, gradient_flow, jacobian_norms,
                                     jacobian_products, plot_flow)
from rnnkit.diagnostics.trace import Trace, format_table, trace_cell, trace_model

__all__ = ["Trace", "format_table", "trace_cell", "trace_model", "jacobian_products",
           "jacobian_norms", "gradient_flow", "compare_cells", "plot_flow"]
