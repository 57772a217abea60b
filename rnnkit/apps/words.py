"""Word-level language model: next-word prediction (note 004, "The cat sat on the" -> "mat").

Tokenizer (``rnnkit.data.tokenize``): a word is a run of letters, digits or underscores with
apostrophes inside it kept ("it's", "o'er", "e'en"); every other non-space character is a
token of its own (punctuation as tokens: "," "." "?" "!" ":" ...); line breaks are spaces;
lower-cased unless ``--no-lower``. The text's tokens are cut in time order: the first
1 - val_fraction - test_fraction train, then validation, then the last test_fraction test.
The vocabulary comes from the training tokens only: those seen at least ``min_freq`` times,
most frequent first, at most ``max_vocab`` ids with ``<pad>`` (0, never seen) and
``<unk>``, which every other token becomes in all three splits.

The model is Embedding -> LSTM/GRU/RNN -> Dense over the vocabulary (rnnkit.models.
LanguageModel), the input and output matrices tied if ``--tie-weights`` (then embed_dim must
equal hidden_size), trained with truncated BPTT exactly as the character model: each split
is one stream cut into ``batch_size`` contiguous rows whose state is carried from batch to
batch, ``seq_len`` steps a chunk. The output layer is one matrix product over all N*T steps.

Perplexity = exp(mean -log p(token | the tokens before it)) over a split read as
``batch_size`` rows with the state carried (each row starts from a zero state), every target
token counted, ``<unk>`` included; the tokens counted are ``counted_positions``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.apps import common
from rnnkit.apps.common import setting
from rnnkit.data import TextStream, WordVocab, bundled_text, tokenize
from rnnkit.data.vocab import UNK
from rnnkit.data.fetch import resolve
from rnnkit.errors import fail
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import make_optimizer
from rnnkit.train import Trainer, TrainConfig

SUMMARY = "next-word prediction: a word-level language model (perplexity, top-k next words)"
SPLITS = ("validation", "test")


@dataclass
class WordsConfig:
    data: str = setting("", "UTF-8 text file, or a data set's name (shakespeare); empty = "
                        "the bundled 1 MB Shakespeare sample",
                        aliases=("--text",))
    lower: bool = setting(True, "lower-case the text before tokenizing")
    min_freq: int = setting(3, "keep words seen at least this often in training; others <unk>")
    max_vocab: int = setting(30000, "at most this many ids (specials included); 0 = no limit")
    val_fraction: float = setting(0.05, "fraction of the tokens before the test part held out "
                                  "for validation")
    test_fraction: float = setting(0.05, "fraction of the tokens at the end held out for test")
    cell: str = setting("lstm", "recurrent cell", common.CELL_CHOICES)
    embed_dim: int = setting(256, "size of each word's embedding vector")
    hidden_size: int = setting(256, "units per recurrent layer")
    num_layers: int = setting(1, "stacked recurrent layers")
    dropout: float = setting(0.0, "dropout between stacked layers")
    tie_weights: bool = setting(True, "one matrix for input embeddings and output weights "
                                "(Press & Wolf 2017; needs embed_dim = hidden_size)")
    batch_size: int = setting(32, "rows of the token stream read side by side")
    seq_len: int = setting(35, "steps per truncated-BPTT chunk")
    optimizer: str = setting("adam", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(3e-3, "learning rate")
    schedule: str = setting("cosine", "learning-rate schedule: constant, cosine (to 0 over "
                            "the run) or step (x0.1 at 1/3 and 2/3)", common.SCHEDULE_CHOICES)


Config = WordsConfig


@dataclass
class PredictOptions:
    top_k: int = setting(5, "how many of the most likely next words to print")
    show_unk: bool = setting(False, "list <unk> (any rare word) among the predictions")
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


@dataclass
class EvaluateOptions:
    split: str = setting("both", "which held-out part to score", ("validation", "test", "both"))
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=1.0, val_every=200, log_every=10, clip_norm=5.0)


# --- data ----------------------------------------------------------------------------------
def read_tokens(cfg: WordsConfig) -> list[str]:
    if not cfg.data:
        text = bundled_text()
    else:
        path = resolve(cfg.data)
        if not path.is_file():
            fail("--data", "a UTF-8 text file", f"{cfg.data!r} (no such file)")
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError as e:
            fail("--data", "a UTF-8 text file", f"{cfg.data!r} ({e})")
    return tokenize(text, cfg.lower)


def split_tokens(tokens: list[str], cfg: WordsConfig) -> dict[str, list[str]]:
    """Time-ordered training / validation / test parts of the token list."""
    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(cfg, name) < 0.5:
            fail(name, "a fraction in (0, 0.5)", repr(getattr(cfg, name)))
    n = len(tokens)
    test_at = int(n * (1 - cfg.test_fraction))
    val_at = int(n * (1 - cfg.test_fraction - cfg.val_fraction))
    return {"train": tokens[:val_at], "validation": tokens[val_at:test_at],
            "test": tokens[test_at:]}


def build_vocab(train_tokens: list[str], cfg: WordsConfig) -> WordVocab:
    """From the training tokens only. (Joined by spaces the tokens tokenize back to
    themselves, so WordVocab.build counts exactly them.)"""
    if cfg.max_vocab and cfg.max_vocab < 3:
        fail("max_vocab", "0 (no limit) or at least 3 (<pad>, <unk> and one word)",
             repr(cfg.max_vocab))
    return WordVocab.build([" ".join(train_tokens)], min_freq=cfg.min_freq,
                           max_size=cfg.max_vocab or None, lower=cfg.lower)


def encoded_splits(cfg: WordsConfig, vocab: WordVocab | None = None):
    """(vocabulary, {split: ids}); the vocabulary is built unless given (a saved run's)."""
    parts = split_tokens(read_tokens(cfg), cfg)
    vocab = vocab or build_vocab(parts["train"], cfg)
    return vocab, {k: vocab.encode(v, add_specials=False) for k, v in parts.items()}


def _streams(cfg: WordsConfig, ids: dict, seed: int = 0):
    need = cfg.batch_size * cfg.seq_len + cfg.seq_len
    for name, what in (("train", "training"), ("validation", "validation")):
        if len(ids[name]) < need:
            fail("--data", f"a {what} part of at least batch_size * seq_len + seq_len = {need} "
                 "tokens", f"{len(ids[name])} (a longer text, or smaller --batch-size/--seq-len)")
    return (TextStream(ids["train"], cfg.batch_size, cfg.seq_len, random_offset=True, seed=seed),
            TextStream(ids["validation"], cfg.batch_size, cfg.seq_len))


def counted_positions(n: int, rows: int) -> np.ndarray:
    """The positions of a split of n tokens whose probability ``split_nll`` counts: the
    stream is cut into `rows` rows of (n - 1) // rows inputs; every input's next token."""
    per_row = (n - 1) // rows
    return (1 + np.arange(per_row * rows)).astype(np.int64)


def split_nll(model: LanguageModel, ids: np.ndarray, rows: int, seq_len: int) -> tuple:
    """(summed -log p in nats, tokens counted) over a split as `rows` rows read side by side,
    the state carried from chunk to chunk (the last chunk may be shorter)."""
    per_row = (len(ids) - 1) // rows
    if per_row < 1:
        fail("split", f"at least {rows + 1} tokens", f"{len(ids)}")
    x = ids[:per_row * rows].reshape(rows, per_row)
    y = ids[1:per_row * rows + 1].reshape(rows, per_row)
    total, state = 0.0, None
    for s in range(0, per_row, seq_len):
        logits, state, _ = model.forward(x[:, s:s + seq_len], state, grad=False)
        total += softmax_cross_entropy(logits, y[:, s:s + seq_len], reduction="sum")[0]
    return total, per_row * rows


# --- model and training --------------------------------------------------------------------
def _model(cfg: WordsConfig, vocab: WordVocab, seed=None) -> LanguageModel:
    return LanguageModel(len(vocab), cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.cell,
                         cfg.dropout, tie_weights=cfg.tie_weights, seed=seed)


def _build(cfg: WordsConfig, tcfg: TrainConfig, run_dir: Path, vocab, ids, log) -> Trainer:
    common.check_choices(cfg)
    train, val = _streams(cfg, ids, tcfg.seed)
    model = _model(cfg, vocab, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = Trainer(model, softmax_cross_entropy, optimizer, train, val, config=tcfg,
                      run_dir=run_dir, log=log)
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def _finish(trainer: Trainer, log) -> dict:
    summary = common.fit(trainer, log)
    log(f"best validation loss {trainer.best_val:.4f} nats/word (perplexity "
        f"{np.exp(trainer.best_val):.2f}) after {trainer.step} batches; weights in "
        f"{trainer.run_dir / 'best.safetensors'}")
    return dict(summary, best_val_perplexity=float(np.exp(trainer.best_val)))


def train(cfg: WordsConfig, tcfg: TrainConfig, run_dir: str | Path, log=print) -> dict:
    """Train from scratch into a new run folder (vocab.json, config.json, checkpoints, ...)."""
    common.check_choices(cfg)
    vocab, ids = encoded_splits(cfg)
    run_dir = common.new_run(run_dir)
    trainer = _build(cfg, tcfg, run_dir, vocab, ids, log)
    vocab.save(run_dir / "vocab.json")
    common.save_run_config(run_dir, cfg, tcfg, kind="words",
                           tokens={k: len(v) for k, v in ids.items()})
    unk = float(np.mean(ids["train"] == vocab.unk_id))
    log(f"words: {cfg.cell.upper()} {cfg.num_layers}x{cfg.hidden_size}, vocabulary "
        f"{len(vocab)} (min_freq {cfg.min_freq}; {100 * unk:.2f} % of training tokens <unk>), "
        f"{'tied' if cfg.tie_weights else 'untied'} embeddings {cfg.embed_dim}; tokens train "
        f"{len(ids['train'])} / validation {len(ids['validation'])} / test {len(ids['test'])}; "
        f"{trainer.total_steps} batches of {cfg.batch_size}x{cfg.seq_len}")
    return _finish(trainer, log)


def resume(run_dir: str | Path, log=print, **train_overrides) -> dict:
    """Continue a run from its latest checkpoint; overrides such as max_steps extend it."""
    run_dir, cfg, tcfg, saved = common.load_run_config(run_dir, WordsConfig, "words")
    tcfg = common.resume_config(tcfg, train_overrides)
    vocab, ids = encoded_splits(cfg, _vocab(run_dir))
    common.save_run_config(run_dir, cfg, tcfg, kind="words", tokens=saved.get("tokens"))
    trainer = _build(cfg, tcfg, run_dir, vocab, ids, log)
    trainer.restore()
    log(f"resumed {run_dir} at batch {trainer.step} (epoch {trainer.epoch}), training to "
        f"{trainer.total_steps}")
    return _finish(trainer, log)


# --- a trained run -------------------------------------------------------------------------
def _vocab(run_dir: Path) -> WordVocab:
    path = run_dir / "vocab.json"
    if not path.is_file():
        fail("RUN", "a run folder with its vocabulary (vocab.json, written by `rnnkit words "
             "train`)", f"{str(run_dir)!r} without vocab.json")
    return WordVocab.load(path)


def load_run(run_dir, best: bool = True):
    """(run folder, settings, TrainConfig, vocabulary, model with its weights)."""
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, WordsConfig, "words")
    vocab = _vocab(run_dir)
    model = _model(cfg, vocab)
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, tcfg, vocab, model


def evaluate(run_dir: str | Path, log=print, split: str = "both", best: bool = True) -> dict:
    """Perplexity on the validation and/or test part of the run's text, into eval.json."""
    if split not in ("validation", "test", "both"):
        fail("split", "one of ['validation', 'test', 'both']", repr(split))
    run_dir, cfg, _, vocab, model = load_run(run_dir, best)
    _, ids = encoded_splits(cfg, vocab)
    results = {"app": "words", "weights": "best" if best else "latest",
               "vocabulary": len(vocab)}
    for name in (SPLITS if split == "both" else (split,)):
        nll, count = split_nll(model, ids[name], cfg.batch_size, cfg.seq_len)
        results[name] = {"perplexity": float(np.exp(nll / count)), "nats_per_word": nll / count,
                         "tokens": count,
                         "unk_fraction": float(np.mean(ids[name] == vocab.unk_id))}
        log(f"{name}: perplexity {results[name]['perplexity']:.2f} over {count} tokens")
    return common.write_eval(run_dir, results)


def next_word_probabilities(model: LanguageModel, ids: np.ndarray) -> np.ndarray:
    """p(next word | ids) over the vocabulary, (V,) in float64."""
    logits, _, _ = model.forward(np.asarray(ids)[None, :], grad=False)
    z = logits[0, -1].astype(np.float64)
    p = np.exp(z - z.max())
    return p / p.sum()


def predict(run_dir: str | Path, inputs: list[str], *, top_k: int = 5, show_unk: bool = False,
            best: bool = True) -> list[dict]:
    """The top_k most likely next words after each line, with their probabilities."""
    if not isinstance(top_k, int) or top_k < 1:
        fail("--top-k", "an integer >= 1", repr(top_k))
    run_dir, cfg, _, vocab, model = load_run(run_dir, best)
    hidden = [vocab.pad_id] + ([] if show_unk else [vocab.unk_id])
    results = []
    for i, line in enumerate(inputs, 1):
        tokens = tokenize(line, cfg.lower)
        if not tokens:
            fail(f"input line {i}", "at least one word", f"{line!r} (no tokens)")
        ids = vocab.encode(tokens, add_specials=False)
        unknown = [t for t, j in zip(tokens, ids) if j == vocab.unk_id]
        if len(unknown) == len(tokens):
            fail(f"input line {i}", "at least one word of the vocabulary", f"{line!r}, all of "
                 f"whose words are unknown to this run ({len(vocab)} words; they would all "
                 f"read as {UNK})")
        p = next_word_probabilities(model, ids)
        p_shown = p.copy()
        p_shown[hidden] = -1.0
        order = np.argsort(-p_shown, kind="stable")[:min(top_k, len(vocab) - len(hidden))]
        words = [{"word": vocab.tokens[j], "probability": float(p[j])} for j in order]
        text = f"{line} -> " + " | ".join(f"{w['word']} {w['probability']:.4f}" for w in words)
        if unknown:
            text += f"   (read as {UNK}: {', '.join(unknown[:5])})"
        results.append({"input": line, "tokens": tokens, "unknown": unknown,
                        "next": words, "text": text})
    return results
