"""Sequence layers (scan over time, stacking, bidirectional, lengths), heads and embeddings."""
from rnnkit.layers.attention import Attention
from rnnkit.layers.bridge import Bridge
from rnnkit.layers.dense import Dense
from rnnkit.layers.embedding import Embedding
from rnnkit.layers.normalised import LayerNormGRU, LayerNormLSTM
from rnnkit.layers.recurrent import GRU, LSTM, RNN, Recurrent
from rnnkit.layers.select import last_step_backward, last_step_forward

# the layer class of each cell the applications offer (--cell)
BY_CELL = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "lnlstm": LayerNormLSTM, "lngru": LayerNormGRU}

__all__ = ["Attention", "Bridge", "RNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU",
           "BY_CELL", "Recurrent", "Dense", "Embedding",
           "last_step_forward", "last_step_backward"]
