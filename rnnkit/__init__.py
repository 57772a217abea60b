"""rnnkit: recurrent neural networks in NumPy with explicit backpropagation through time."""
from rnnkit.errors import RnnkitError
from rnnkit.layers import (GRU, LSTM, RNN, Dense, Embedding, Recurrent, last_step_backward,
                           last_step_forward)

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "Dense", "Embedding", "last_step_forward",
           "last_step_backward", "RnnkitError"]
