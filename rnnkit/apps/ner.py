"""Named-entity recognition (note 001: many-to-many aligned, bidirectional): CoNLL-2003 style
data -> character-aware BiLSTM(-CRF) tagger (rnnkit.models.tagger) -> trainer -> entity F1.

The data folder holds ``train.txt``, ``valid.txt`` and ``test.txt`` in the CoNLL format
(rnnkit.data.conll). Vocabularies come from train.txt only; the trainer validates at the end
of each epoch by entity-level F1 on valid.txt (seqeval, which matches conlleval) and keeps
the best weights. The run folder holds:

    config.json          the resolved app, training and model configuration
    words.json chars.json tags.json   the vocabularies and the tag set
    checkpoints/         weights, optimiser, RNG and data position (rnnkit.train.checkpoint)
    best.safetensors     the weights with the best validation F1
    metrics.jsonl        training rows; validation rows whose val_loss is 1 - F1
    loss_curve.png       at the end; eval.json after ``evaluate``
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from rnnkit.data.conll import (FORMAT_HELP, Encoder, TagSet, TaggingDataset, build_char_vocab,
                               build_word_vocab, read_conll)
from rnnkit import schema
from rnnkit.apps import common
from rnnkit.data.vocab import CharVocab, WordVocab
from rnnkit.data.fetch import resolve
from rnnkit.errors import RnnkitError, fail
from rnnkit.models.io import sizes_fit
from rnnkit.models.tagger import OUTPUTS, Tagger
from rnnkit.optim import OPTIMIZERS, make_optimizer, make_schedule
from rnnkit.serialize import load_json, save_json
from rnnkit.train import Callback, Trainer, TrainConfig

SUMMARY = "named entities: tag people, places, organisations in sentences (CoNLL-2003 data)"
SPLITS = ("train", "valid", "test")
DATA_SET = "conll2003"      # read from the cache when --data is '' (rnnkit data get)
EXAMPLE = "EU rejects German call to boycott British lamb ."


def _opt(default, help: str, choices=None):
    meta = {"help": help} if choices is None else {"help": help, "choices": tuple(choices)}
    return field(default=default, metadata=meta)


@dataclass
class NERConfig:
    data: str = _opt("", "folder with train.txt, valid.txt and test.txt in " + FORMAT_HELP +
                     f"; empty = the cached {DATA_SET!r} (rnnkit data get {DATA_SET} "
                     "--accept-licence)")
    word_dim: int = _opt(100, "size of the word embeddings (random, learnt)")
    char_dim: int = _opt(25, "size of the character embeddings")
    char_hidden: int = _opt(25, "units of each direction of the character BiLSTM")
    case_dim: int = _opt(8, "size of the casing-class embedding (0: none)")
    hidden_size: int = _opt(100, "units of each direction of the word BiLSTM")
    num_layers: int = _opt(1, "stacked word BiLSTM layers")
    dropout: float = _opt(0.5, "dropout on the word vectors and the BiLSTM's outputs")
    output: str = _opt("crf", "output layer: a CRF over tag sequences, or softmax per word",
                       OUTPUTS)
    min_freq: int = _opt(1, "keep training words seen at least this many times")
    lower_digits: bool = _opt(True, "word embeddings keyed by lower-cased words with digits "
                              "as 0 (the characters keep the spelling)")
    unk_replace: float = _opt(0.5, "probability of reading a word seen once in training as "
                              "<unk> (trains the unknown-word vector)")
    batch_size: int = _opt(32, "sentences per batch")
    optimizer: str = _opt("adam", "optimiser", sorted(OPTIMIZERS))
    lr: float = _opt(2e-3, "learning rate")
    schedule: str = _opt("constant", "learning-rate schedule over the run",
                         ("constant", "cosine", "step"))
    eval_batch_size: int = _opt(256, "sentences per batch when tagging (validation, evaluate)")


Config = NERConfig          # (the name rnnkit.apps' interface reads)


@dataclass
class EvaluateOptions:
    split: str = _opt("test", "which split of the data folder to score", SPLITS)
    data: str = _opt("", "another data folder to score (default: the run's)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=20, val_every=0, log_every=50, clip_norm=5.0, patience=0)


def data_path(cfg: NERConfig, split: str) -> Path:
    if split not in SPLITS:
        fail("split", f"one of {SPLITS}", repr(split))
    return resolve(cfg.data, DATA_SET) / f"{split}.txt"


# --- tagging and scoring -------------------------------------------------------------------
def tag(model: Tagger, encoder: Encoder, tagset: TagSet, sentences: list[list[str]],
        batch_size: int = 256) -> list[list[str]]:
    """Tag sequences for tokenised sentences, in their order (batched by length)."""
    order = np.argsort([len(s) for s in sentences], kind="stable")
    out: list = [None] * len(sentences)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        inputs, lengths = encoder.batch([sentences[i] for i in idx])
        ids = model.predict(inputs, lengths)
        for row, i in enumerate(idx):
            out[i] = tagset.decode(ids[row, :lengths[row]])
    return out


def score(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 (seqeval's default = conlleval), per type too."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                    "f1": float(v["f1-score"]),
                    "support": int(v["support"])} for k, v in report.items() if " avg" not in k}
    words = sum(len(s) for s in gold)
    right = sum(g == p for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps))
    return {"f1": float(f1_score(gold, predicted, zero_division=0)),
            "precision": float(precision_score(gold, predicted, zero_division=0)),
            "recall": float(recall_score(gold, predicted, zero_division=0)),
            "token_accuracy": right / max(words, 1), "per_type": per_type}


class _F1Trainer(Trainer):
    """Validates by entity F1: its validation "loss" is 1 - F1 on the validation sentences,
    so the trainer's best weights and early stopping follow F1."""

    def __init__(self, *args, encoder: Encoder, tagset: TagSet, eval_batch_size: int, **kw):
        super().__init__(*args, **kw)
        self.encoder, self.tagset, self.eval_batch_size = encoder, tagset, eval_batch_size

    def evaluate(self, data: TaggingDataset) -> float:
        predicted = tag(self.model, self.encoder, self.tagset,
                        [s.words for s in data.sentences], self.eval_batch_size)
        return 1.0 - score([s.tags for s in data.sentences], predicted)["f1"]


class _LogF1(Callback):
    def __init__(self, log):
        self.log = log

    def on_validation_end(self, trainer, logs):
        epochs = logs["step"] / trainer.train_data.num_batches(0)
        f1, best = 100 * (1 - logs["val_loss"]), 100 * (1 - logs["best_val_loss"])
        self.log(f"step {logs['step']} ({epochs:.2f} epochs): validation entity F1 {f1:.2f} "
                 f"(best {best:.2f})")


# --- the run folder ----------------------------------------------------------------------------
def _save_run(run_dir: Path, cfg, tcfg, model, words, chars, tagset) -> None:
    words.save(run_dir / "words.json")
    chars.save(run_dir / "chars.json")
    save_json(run_dir / "tags.json", {"tags": tagset.tags})
    save_json(run_dir / "config.json", {"app": asdict(cfg), "train": asdict(tcfg),
                                        "kind": "ner", "model": model.config})


def _load_run(run_dir: Path):
    """-> (app config, train config, model config, Encoder, TagSet) of a run folder."""
    _, cfg, tcfg, saved = common.load_run_config(run_dir, NERConfig, "ner")
    if not isinstance(saved.get("model"), dict):
        fail(str(run_dir / "config.json"), "the tagger's settings in 'model'", saved.get("model"))
    model_config = saved["model"]
    weights = run_dir / "best.safetensors"
    if weights.is_file():
        sizes_fit(model_config, weights, run_dir / "config.json")
    encoder = Encoder(WordVocab.load(run_dir / "words.json"),
                      CharVocab.load(run_dir / "chars.json"), cfg.lower_digits)
    tags = schema.check(load_json(run_dir / "tags.json"), {"tags": schema.ListOf(str)},
                        str(run_dir / "tags.json"))["tags"]
    tagset = TagSet(tags)
    return cfg, tcfg, model_config, encoder, tagset


def _tagger(model_config: dict, run_dir: Path) -> Tagger:
    """The run's tagger from config.json's "model" settings, refused by name if they are not."""
    source = run_dir / "config.json"
    try:
        return Tagger(**model_config)
    except TypeError as e:
        raise RnnkitError(f"{source}: expected the tagger's settings in 'model', got {e}") from None
    except RnnkitError as e:
        raise RnnkitError(f"{source}: model.{e}") from None


def _build(cfg: NERConfig, tcfg: TrainConfig, run_dir: Path, model: Tagger, encoder: Encoder,
           tagset: TagSet, log, callbacks=()) -> _F1Trainer:
    sentences = read_conll(data_path(cfg, "train"))
    word_freq = np.zeros(len(encoder.words), np.int64)
    ids = np.concatenate([encoder.word_ids(s.words) for s in sentences])
    np.add.at(word_freq, ids, 1)
    train = TaggingDataset(sentences, encoder, tagset, cfg.batch_size, seed=tcfg.seed,
                           unk_replace=cfg.unk_replace, word_freq=word_freq)
    valid = TaggingDataset(read_conll(data_path(cfg, "valid")), encoder, tagset,
                           cfg.eval_batch_size, shuffle=False)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = _F1Trainer(model, model.loss, optimizer, train, valid, config=tcfg,
                         run_dir=run_dir, log=log, callbacks=[_LogF1(log), *callbacks],
                         encoder=encoder, tagset=tagset, eval_batch_size=cfg.eval_batch_size)
    total = trainer.total_steps
    shapes = {"constant": {}, "cosine": {"total_steps": total},
              "step": {"step_size": max(1, total // 3)}}
    if cfg.schedule not in shapes:
        fail("schedule", f"one of {sorted(shapes)}", repr(cfg.schedule))
    trainer.schedule = make_schedule(cfg.schedule, cfg.lr, **shapes[cfg.schedule])
    return trainer


def _check_config(cfg: NERConfig) -> None:
    for f in fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            fail(f.name, f"one of {choices}", repr(getattr(cfg, f.name)))


def train(cfg: NERConfig, tcfg: TrainConfig, run_dir: str | Path, log=print,
          callbacks=()) -> dict:
    """Train a tagger from scratch into `run_dir`; returns the trainer's summary with the best
    validation F1. `callbacks` (rnnkit.train.Callback) are added to the trainer's."""
    _check_config(cfg)
    import seqeval  # noqa: F401  (validation needs it: say so before training, not after)
    run_dir = common.new_run(run_dir)
    sentences = read_conll(data_path(cfg, "train"))
    words, _ = build_word_vocab(sentences, cfg.min_freq, cfg.lower_digits)
    chars, tagset = build_char_vocab(sentences), TagSet.from_sentences(sentences)
    encoder = Encoder(words, chars, cfg.lower_digits)
    model = Tagger(num_words=len(words), num_chars=len(chars), num_tags=len(tagset),
                   word_dim=cfg.word_dim, char_dim=cfg.char_dim, char_hidden=cfg.char_hidden,
                   case_dim=cfg.case_dim, hidden_size=cfg.hidden_size,
                   num_layers=cfg.num_layers, dropout=cfg.dropout, output=cfg.output,
                   seed=tcfg.seed)
    _save_run(run_dir, cfg, tcfg, model, words, chars, tagset)
    trainer = _build(cfg, tcfg, run_dir, model, encoder, tagset, log, callbacks)
    log(f"NER: {len(sentences)} training sentences, {len(words)} words, {len(chars)} "
        f"characters, {len(tagset)} tags; {cfg.output} tagger, BiLSTM {cfg.hidden_size}; "
        f"{trainer.train_data.num_batches(0)} batches per epoch, {trainer.total_steps} in all")
    return _finish(trainer)


def _finish(trainer: _F1Trainer) -> dict:
    summary = trainer.fit()
    best = 1.0 - trainer.best_val
    trainer.log(f"best validation entity F1 {100 * best:.2f} (weights in "
                f"{trainer.run_dir / 'best.safetensors'})")
    return dict(summary, best_val_f1=best)


def resume(run_dir: str | Path, log=print, **train_overrides) -> dict:
    """Continue a run from its latest checkpoint; overrides such as epochs=30 extend it."""
    run_dir = Path(run_dir)
    cfg, tcfg, model_config, encoder, tagset = _load_run(run_dir)
    tcfg = common.resume_config(tcfg, train_overrides)
    model = _tagger(model_config, run_dir)
    save_json(run_dir / "config.json", {"app": asdict(cfg), "train": asdict(tcfg),
                                        "kind": "ner", "model": model.config})
    trainer = _build(cfg, tcfg, run_dir, model, encoder, tagset, log)
    trainer.restore()
    log(f"resumed {run_dir} at batch {trainer.step} (epoch {trainer.epoch}), "
        f"training to {trainer.total_steps}")
    return _finish(trainer)


def load_model(run_dir: str | Path, best: bool = True):
    """-> (model with the run's best or latest weights, encoder, tagset, app config)."""
    run_dir = Path(run_dir)
    cfg, _, model_config, encoder, tagset = _load_run(run_dir)
    model = _tagger(model_config, run_dir)
    common.load_weights(model, run_dir, best)
    return model, encoder, tagset, cfg


def evaluate(run_dir: str | Path, split: str = "test", data: str | None = None,
             log=print) -> dict:
    """Entity-level F1 of the run's best weights on a split of its data folder (or of `data`);
    writes eval.json into the run folder."""
    run_dir = Path(run_dir)
    model, encoder, tagset, cfg = load_model(run_dir)
    if data:
        cfg.data = data
    sentences = read_conll(data_path(cfg, split))
    unknown = sorted({t for s in sentences for t in s.tags} - set(tagset.tags))
    if unknown:
        raise RnnkitError(f"{data_path(cfg, split)}: expected the training tags "
                          f"{tagset.tags} (as {run_dir / 'tags.json'} lists them), got "
                          f"unknown tags {unknown[:5]}")
    predicted = tag(model, encoder, tagset, [s.words for s in sentences], cfg.eval_batch_size)
    result = dict(score([s.tags for s in sentences], predicted), split=split,
                  file=str(data_path(cfg, split)), sentences=len(sentences),
                  words=sum(len(s.words) for s in sentences))
    save_json(run_dir / "eval.json", result)
    log(f"{split}: entity F1 {100 * result['f1']:.2f} (precision {100 * result['precision']:.2f}, "
        f"recall {100 * result['recall']:.2f}) over {len(sentences)} sentences")
    return result


def entities(words: list[str], tags: list[str]) -> list[dict]:
    """The entities of a tagged sentence: type, text, first and last word index."""
    from seqeval.metrics.sequence_labeling import get_entities
    return [{"type": kind, "text": " ".join(words[a:b + 1]), "start": a, "end": b}
            for kind, a, b in get_entities(tags)]


def predict(run_dir: str | Path, sentences: list[str], log=None) -> list[dict]:
    """Tag whitespace-tokenised sentences: one dict per sentence (words, tags, entities, and
    "text": the sentence with its entities bracketed, e.g. ``[ORG EU] rejects [MISC German]
    call``, which ``log`` prints if given)."""
    if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
        fail("sentences", "a list of sentences (strings)", type(sentences).__name__)
    tokenised = []
    for i, s in enumerate(sentences):
        if not isinstance(s, str) or not s.split():
            fail(f"sentences[{i}]", "a sentence of at least one word", repr(s))
        tokenised.append(s.split())
    model, encoder, tagset, cfg = load_model(run_dir)
    results = []
    for words, tags in zip(tokenised, tag(model, encoder, tagset, tokenised,
                                          cfg.eval_batch_size)):
        found = entities(words, tags)
        marked = list(words)
        for e in found:
            marked[e["start"]] = f"[{e['type']} " + marked[e["start"]]
            marked[e["end"]] += "]"
        results.append({"words": words, "tags": tags, "entities": found,
                        "text": " ".join(marked)})
        if log is not None:
            log(results[-1]["text"])
    return results
