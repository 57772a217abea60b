"""One time step of each recurrent cell, forward and backward, as the notes write it."""
from rnnkit.cells.gru import GRUCell, from_pytorch_convention, to_pytorch_convention
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.rnn import ElmanCell

__all__ = ["ElmanCell", "LSTMCell", "GRUCell", "to_pytorch_convention",
           "from_pytorch_convention"]
