"""Models: compositions of layers with one flat dict of named parameters."""
from rnnkit.models.language_model import LanguageModel

__all__ = ["LanguageModel"]
