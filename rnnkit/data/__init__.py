"""Data for the models: vocabularies, padding and bucketing, token streams, time-series
windows and scalers, and data sources (`Batch`, `DataSource`) that a trainer resumes exactly;
the applications' real data sets (`get`, `load`, `set_path`: rnnkit.data.fetch).
"""
from rnnkit.data.batch import Batch, DataSource
from rnnkit.data.fetch import get, load, set_path
from rnnkit.data.batching import ArrayDataset, SequenceDataset, bucket_batches, pad_sequences
from rnnkit.data.scalers import MinMaxScaler, StandardScaler, scaler_from_dict
from rnnkit.data.streams import TextStream
from rnnkit.data.text import bundled_text, lm_batches
from rnnkit.data.timeseries import (WindowDataset, load_csv_series, make_windows,
                                    train_val_test_split)
from rnnkit.data.vocab import CharVocab, WordVocab, load_vocab, tokenize, vocab_from_dict

__all__ = ["Batch", "DataSource", "CharVocab", "WordVocab", "tokenize", "load_vocab",
           "vocab_from_dict", "pad_sequences", "bucket_batches", "ArrayDataset", "SequenceDataset",
           "TextStream", "bundled_text", "lm_batches", "StandardScaler", "MinMaxScaler",
           "scaler_from_dict", "make_windows", "train_val_test_split", "WindowDataset",
           "load_csv_series", "get", "load", "set_path"]
