"""Models: compositions of layers with one flat dict of named parameters.

Every model has ``config`` (the constructor's keyword arguments, JSON-able), ``params`` and
``grads`` (flat dicts with the same keys), ``zero_grad()``,
``forward(inputs, state, lengths, training=, rng=, grad=) -> (outputs, state, cache)`` and
``backward(doutputs, cache)``: all a trainer or a checkpoint needs to know.
"""
from rnnkit.errors import fail
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.sequence_model import SequenceModel

MODELS = {"LanguageModel": LanguageModel, "SequenceModel": SequenceModel, "Seq2Seq": Seq2Seq}


def build_model(class_name: str, config: dict):
    """Rebuild a model from its class name and config, as stored in checkpoints."""
    if class_name not in MODELS:
        fail("model class", f"one of {sorted(MODELS)}", repr(class_name))
    return MODELS[class_name](**config)


__all__ = ["SequenceModel", "LanguageModel", "Seq2Seq", "MODELS", "build_model"]
