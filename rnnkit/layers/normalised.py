"""The layer-normalised LSTM and GRU layers (rnnkit.cells.lnlstm, lngru; docs/ln_cells.md).

Recurrent layers like LSTM and GRU in every way (stacking, bidirectional, lengths, state,
save/load, SequenceModel(cell="lnlstm")), on their cells; no ONNX operator or torch.nn
module computes them, so the converters refuse them.
"""
from __future__ import annotations

from rnnkit.layers.recurrent import Recurrent, set_forget_bias


class LayerNormLSTM(Recurrent):
    """Layer-normalised LSTM layer (``rnnkit.cells.lnlstm``): ``per_gate`` normalises each
    gate's pre-activations on their own (default: all 4H together, as Ba et al. and haste);
    ``forget_bias`` sets b_xf (b_hf = 0) if given, as LSTM's."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 per_gate: bool = False, forget_bias: float | None = None, **kwargs):
        super().__init__("lnlstm", input_size, hidden_size, num_layers, per_gate=per_gate,
                         **kwargs)
        if forget_bias is not None:
            set_forget_bias(self, forget_bias)


class LayerNormGRU(Recurrent):
    """Layer-normalised GRU layer in the notes' convention h_t = (1 - z) h_{t-1} + z h~
    (``rnnkit.cells.lngru``); ``per_gate`` as LayerNormLSTM's."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 per_gate: bool = False, **kwargs):
        super().__init__("lngru", input_size, hidden_size, num_layers, per_gate=per_gate,
                         **kwargs)
