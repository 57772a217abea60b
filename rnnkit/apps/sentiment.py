"""Sentiment analysis (many-to-one, note 002): a label for each snippet of text.

Data: a CSV with a header, one snippet a row, a text column and an integer label column
(e.g. rotten_tomatoes.csv: `text,label`, 1 = fresh). The rows are split once, stratified by
label and seeded, into train / validation / test (80/10/10), and the split is saved in the
run folder (split.json) so that evaluation reads the same test rows. The word vocabulary
comes from the training rows only. A bidirectional LSTM or GRU reads each snippet at its own
length (rnnkit.apps.classifier) and a softmax over the labels reads its pooled states;
training keeps the weights with the best validation accuracy and stops when it stalls.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit import schema
from rnnkit.apps import common
from rnnkit.apps.classifier import (POOLINGS, SequenceClassifier, accuracy_trainer, finish,
                                    probabilities, score)
from rnnkit.apps.common import setting
from rnnkit.data import SequenceDataset, WordVocab, tokenize
from rnnkit.errors import RnnkitError, fail
from rnnkit.optim import make_optimizer
from rnnkit.serialize import load_json, save_json
from rnnkit.train import TrainConfig

SUMMARY = "sentiment analysis: label short texts (e.g. film reviews) with a bidirectional RNN"
FORMAT = "a CSV file with a header row, a text column and an integer label column"
DATA_SET = "rotten_tomatoes"    # read from the cache when --data is '' (rnnkit data get)


@dataclass
class SentimentConfig:
    data: str = setting("", f"training data: {FORMAT}; or a data set's name; empty = the "
                        f"cached {DATA_SET!r} (rnnkit data get {DATA_SET})")
    text_column: str = setting("text", "name of the text column")
    label_column: str = setting("label", "name of the label column (integers)")
    label_names: str = setting("", "names of the labels in order, comma-separated; empty = "
                               "negative,positive for 0/1 labels, else the values")
    split_seed: int = setting(0, "seed of the stratified train/validation/test split")
    val_fraction: float = setting(0.1, "fraction of the rows for validation")
    test_fraction: float = setting(0.1, "fraction of the rows for the test")
    min_freq: int = setting(2, "keep words seen at least this often in the training rows")
    max_vocab: int = setting(30000, "largest vocabulary (most frequent words first, <pad> and "
                             "<unk> included)", lo=3)
    cell: str = setting("gru", "recurrent cell", common.CELL_CHOICES)
    bidirectional: bool = setting(True, "read each text both ways")
    pooling: str = setting("meanmax", "how the states become one vector: last (final states of "
                           "both directions), mean, max or meanmax over the words", POOLINGS)
    embed_dim: int = setting(64, "size of each word's embedding vector")
    hidden_size: int = setting(64, "units per direction")
    num_layers: int = setting(1, "stacked recurrent layers")
    embed_dropout: float = setting(0.5, "dropout on the word vectors")
    dropout: float = setting(0.5, "dropout on the pooled vector before the output layer")
    batch_size: int = setting(32, "texts per batch")
    optimizer: str = setting("adamw", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(2e-3, "learning rate")
    weight_decay: float = setting(0.05, "weight decay (adam: L2 in the gradient; adamw: "
                                  "decoupled)")
    schedule: str = setting("constant", "learning-rate schedule", common.SCHEDULE_CHOICES)


Config = SentimentConfig


@dataclass
class EvaluateOptions:
    data: str = setting("", "score every row of this CSV instead of the run's test split")
    split: str = setting("test", "which part of the run's split to score", ("test", "val"))


@dataclass
class PredictOptions:
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    # the defaults are the setting chosen on validation by benchmarks/apps/sentiment.py
    return TrainConfig(epochs=12.0, val_every=0, patience=2, log_every=20, clip_norm=5.0)


def read_rows(path: str, text_column: str, label_column: str) -> tuple[list, list]:
    """(texts, labels as strings) of a CSV; one clear line for a missing or malformed file."""
    p = common.require_file(path, FORMAT, DATA_SET)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for flag, col in (("--text-column", text_column), ("--label-column", label_column)):
                if col not in header:
                    fail(str(p), f"{FORMAT} (a column named {col!r}, {flag})",
                         f"columns {header}")
            texts, labels = [], []
            for line, row in enumerate(reader, start=2):
                text, label = row.get(text_column), row.get(label_column)
                if not text or not text.strip() or label is None or not label.strip():
                    fail(f"{p}:{line}", "a text and a label", f"{row}")
                try:
                    int(label)
                except ValueError:
                    fail(f"{p}:{line}", "an integer label", repr(label))
                texts.append(text)
                labels.append(label.strip())
    except (UnicodeDecodeError, csv.Error) as e:
        raise RnnkitError(f"{p}: expected {FORMAT} in UTF-8, got {e}") from None
    if len(texts) < 10:
        fail(str(p), f"{FORMAT} with at least 10 rows", f"{len(texts)} rows")
    return texts, labels


def stratified_split(labels, val: float, test: float, seed: int) -> dict:
    """Row indices of train / val / test, each label's rows shuffled and cut in proportion."""
    for name, frac in (("val_fraction", val), ("test_fraction", test)):
        if not 0 < frac < 0.5:
            fail(name, "a fraction in (0, 0.5)", repr(frac))
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    parts = {"train": [], "val": [], "test": []}
    for label in sorted(set(labels.tolist())):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test, n_val = int(round(len(rows) * test)), int(round(len(rows) * val))
        parts["test"] += rows[:n_test].tolist()
        parts["val"] += rows[n_test:n_test + n_val].tolist()
        parts["train"] += rows[n_test + n_val:].tolist()
    return {k: sorted(v) for k, v in parts.items()}


def _label_names(cfg: SentimentConfig, classes: list) -> list:
    if cfg.label_names:
        names = [n.strip() for n in cfg.label_names.split(",")]
        if len(names) != len(classes):
            fail("label_names", f"{len(classes)} names (the data has labels {classes})",
                 f"{len(names)}")
        return names
    return ["negative", "positive"] if classes == ["0", "1"] else list(classes)


def _encode(vocab: WordVocab, texts: list) -> list:
    # an empty token list (a text of spaces only) would be a sequence of length 0
    return [ids if len(ids) else np.array([vocab.unk_id], np.int64)
            for ids in (vocab.encode(t) for t in texts)]


def _datasets(cfg, vocab, texts, targets, split, seed):
    def part(name, shuffle):
        idx = split[name]
        return SequenceDataset(_encode(vocab, [texts[i] for i in idx]), targets[idx],
                               cfg.batch_size, seed=seed, shuffle=shuffle)
    return part("train", True), part("val", False), part("test", False)


def _model(cfg: SentimentConfig, vocab_size: int, num_classes: int, seed=None):
    return SequenceClassifier(vocab_size=vocab_size, embed_dim=cfg.embed_dim,
                              hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                              cell=cfg.cell, bidirectional=cfg.bidirectional,
                              pooling=cfg.pooling, embed_dropout=cfg.embed_dropout,
                              dropout=cfg.dropout, num_classes=num_classes, seed=seed)


# the run folder's labels.json and split.json (row indices of the data file)
LABELS = {"classes": schema.ListOf(str, max_len=10_000), "names": schema.ListOf(str, 10_000)}
SPLIT = {"train": schema.ListOf(schema.Int(0)), "val": schema.ListOf(schema.Int(0)),
         "test": schema.ListOf(schema.Int(0)), "rows": schema.Int(10), "seed": schema.Int(0)}


def load_labels(run_dir: Path) -> dict:
    path = run_dir / "labels.json"
    meta = schema.check(load_json(path), LABELS, str(path))
    classes = meta["classes"]
    if len(classes) < 2 or len(set(classes)) != len(classes) or \
            not all(c.lstrip("-").isdigit() for c in classes) or \
            len(meta["names"]) != len(classes):
        fail(str(path), "distinct integer classes (at least 2) and a name for each",
             f"classes {classes[:5]}, names {meta['names'][:5]}")
    return meta


def load_split(run_dir: Path) -> dict:
    path = run_dir / "split.json"
    split = schema.check(load_json(path), SPLIT, str(path))
    rows = [i for part in ("train", "val", "test") for i in split[part]]
    if max(rows, default=0) >= split["rows"] or len(set(rows)) != len(rows):
        fail(str(path), f"distinct row numbers below rows = {split['rows']}",
             "repeated or larger ones")
    return split


def _build(cfg, tcfg, run_dir, texts, labels, log):
    meta = load_labels(run_dir)
    vocab = WordVocab.load(run_dir / "vocab.json")
    split = load_split(run_dir)
    if split["rows"] != len(texts):
        fail(cfg.data, f"the {split['rows']} rows the run was split from",
             f"{len(texts)} rows (the file changed since training)")
    targets = np.array([meta["classes"].index(v) for v in labels], np.int64)
    train, val, _ = _datasets(cfg, vocab, texts, targets, split, tcfg.seed)
    model = _model(cfg, len(vocab), len(meta["classes"]), seed=tcfg.seed)
    decay = {"weight_decay": cfg.weight_decay} if cfg.weight_decay else {}
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr, **decay)
    return accuracy_trainer(model, optimizer, train, val, cfg, tcfg, run_dir, log)


def _finish(trainer, log) -> dict:
    return finish(trainer, log, "sentiment", "the test split")


def train(cfg: SentimentConfig, tcfg: TrainConfig, run_dir, log=print) -> dict:
    common.check_choices(cfg)
    texts, labels = read_rows(cfg.data, cfg.text_column, cfg.label_column)
    split = stratified_split(labels, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    run_dir = common.new_run(run_dir)
    classes = sorted(set(labels), key=int)
    vocab = WordVocab.build([texts[i] for i in split["train"]], min_freq=cfg.min_freq,
                            max_size=cfg.max_vocab)
    vocab.save(run_dir / "vocab.json")
    save_json(run_dir / "split.json", dict(split, rows=len(texts), seed=cfg.split_seed))
    save_json(run_dir / "labels.json", {"classes": classes,
                                        "names": _label_names(cfg, classes)})
    common.save_run_config(run_dir, cfg, tcfg, kind="sentiment")
    trainer = _build(cfg, tcfg, run_dir, texts, labels, log)
    log(f"sentiment: {len(split['train'])} / {len(split['val'])} / {len(split['test'])} rows "
        f"(train / val / test), vocabulary {len(vocab)}, {'Bi' if cfg.bidirectional else ''}"
        f"{cfg.cell.upper()} {cfg.hidden_size}, pooling {cfg.pooling}; run folder {run_dir}")
    return _finish(trainer, log)


def resume(run_dir, log=print, **train_overrides) -> dict:
    def build(cfg, tcfg, run):
        return _build(cfg, tcfg, run, *read_rows(cfg.data, cfg.text_column, cfg.label_column),
                      log)

    return _finish(common.restore_run(run_dir, SentimentConfig, "sentiment", train_overrides,
                                      build, log), log)


def _load(run_dir, best: bool = True):
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, SentimentConfig, "sentiment")
    vocab = WordVocab.load(run_dir / "vocab.json")
    meta = load_labels(run_dir)
    model = _model(cfg, len(vocab), len(meta["classes"]))
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, tcfg, vocab, meta, model


def evaluate(run_dir, log=print, data: str = "", split: str = "test") -> dict:
    """Accuracy and loss on the run's test (or validation) rows, or on every row of `data`."""
    run_dir, cfg, tcfg, vocab, meta, model = _load(run_dir)
    texts, labels = read_rows(data or cfg.data, cfg.text_column, cfg.label_column)
    unknown = sorted(set(labels) - set(meta["classes"]), key=int)
    if unknown:
        fail("data", f"labels among {meta['classes']} (those seen in training)",
             f"labels {unknown}")
    if data:
        rows = list(range(len(texts)))
    else:
        saved = load_split(run_dir)
        if saved["rows"] != len(texts):
            fail(cfg.data, f"the {saved['rows']} rows the run was split from",
                 f"{len(texts)} rows (the file changed since training)")
        rows = saved[split]
    targets = np.array([meta["classes"].index(labels[i]) for i in rows], np.int64)
    source = SequenceDataset(_encode(vocab, [texts[i] for i in rows]), targets, 256,
                             shuffle=False)
    loss, accuracy = score(model, source)
    majority = float(np.bincount(targets).max() / len(targets))
    return common.write_eval(run_dir, {
        "app": "sentiment", "data": data or cfg.data or DATA_SET, "split": "all rows" if data else split,
        "rows": len(rows), "accuracy": accuracy, "loss": loss,
        "majority_class_accuracy": majority})


def predict(run_dir, inputs: list, *, best: bool = True) -> list:
    """Label and probability for each text."""
    _, cfg, _, vocab, meta, model = _load(run_dir, best)
    results = []
    for i, text in enumerate(inputs, 1):
        words = tokenize(text, vocab.lower)
        unknown = [w for w in words if w not in vocab]
        if not words or len(unknown) == len(words):
            fail(f"input {i}", "at least one word seen in training",
                 f"{text!r} (unknown words: {unknown[:5]})" if words else f"{text!r}")
        logits, _, _ = model.forward(vocab.encode(text)[None], grad=False)
        p = probabilities(logits)[0]
        k = int(p.argmax())
        results.append({"input": text, "label": meta["names"][k], "probability": float(p[k]),
                        "probabilities": dict(zip(meta["names"], map(float, p))),
                        "unknown_words": unknown,
                        "text": f"{meta['names'][k]}\t{p[k]:.3f}\t{text}"})
    return results
