"""The cells' fused NumPy forms, for the fast scan: the reference cells (rnnkit.cells)
rewritten for speed (sigmoids as tanh of halved weights, buffers reused, gradients in place).
Pinned to the reference cells by tests."""
from rnnkit.fast.fused.gru import GRUCell
from rnnkit.fast.fused.lstm import LSTMCell
from rnnkit.fast.fused.rnn import ElmanCell

__all__ = ["ElmanCell", "LSTMCell", "GRUCell"]
