"""rnnkit: recurrent neural networks in NumPy with explicit backpropagation through time."""
from rnnkit.fast import workspace
from rnnkit.errors import RnnkitError
from rnnkit.layers.scan import use
from rnnkit.layers import (GRU, LSTM, RNN, Dense, Embedding, Recurrent, last_step_backward,
                           last_step_forward)
from rnnkit.models.io import load, save

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "Dense", "Embedding", "last_step_forward",
           "last_step_backward", "RnnkitError", "save", "load", "use", "workspace"]


def __getattr__(name: str):
    # ``rnnkit.onnx`` (export, load, run) needs the onnx package: imported on first use only,
    # so that the engine itself still needs nothing but NumPy.
    if name == "onnx":
        import importlib
        return importlib.import_module("rnnkit.onnx")
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
