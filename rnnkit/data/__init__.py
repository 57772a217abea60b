"""Vocabularies and batching for sequence data, and the bundled demo text."""
from rnnkit.data.text import CharVocab, bundled_text, lm_batches

__all__ = ["CharVocab", "bundled_text", "lm_batches"]
