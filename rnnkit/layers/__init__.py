"""Sequence layers (scan over time, stacking, bidirectional, lengths), heads and embeddings."""
from rnnkit.layers.attention import Attention
from rnnkit.layers.bridge import Bridge
from rnnkit.layers.dense import Dense
from rnnkit.layers.embedding import Embedding
from rnnkit.layers.recurrent import GRU, LSTM, RNN, Recurrent
from rnnkit.layers.select import last_step_backward, last_step_forward

__all__ = ["Attention", "Bridge", "RNN", "LSTM", "GRU", "Recurrent", "Dense", "Embedding",
           "last_step_forward", "last_step_backward"]
