"""Character-level language model: text generation and next-character prediction (notes 000, 004).

Data -> model -> trainer -> evaluation, for any UTF-8 text (default: the bundled Shakespeare
sample). The text is one stream cut into `batch_size` contiguous rows; each batch continues
every row, so the recurrent state is carried from batch to batch (truncated BPTT with
`seq_len`-step chunks). The last `val_fraction` of the text is held out. The run folder holds
everything needed to resume, evaluate or generate (rnnkit.apps.common), plus vocab.json.

Generation samples each character from softmax(logits / temperature), optionally kept to the
`top_k` most likely characters or to the smallest set whose probability reaches `top_p`
(nucleus sampling, Holtzman et al. 2019), renormalised.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.apps import common
from rnnkit.apps.common import setting
from rnnkit.data import CharVocab, TextStream, bundled_text
from rnnkit.data.fetch import resolve
from rnnkit.errors import RnnkitError, check_int, fail
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import make_optimizer
from rnnkit.train import Trainer, TrainConfig

SUMMARY = "text generation: a character-level language model trained on any UTF-8 text"
PREDICT_VERB = "generate"
PREDICT_NEEDS_INPUT = False          # no prime given: the run's configured prime
MAX_LENGTH = 1_000_000               # characters generated at once (more is a mistake, not a wish)


@dataclass
class CharLMConfig:
    text: str = setting("", "UTF-8 text file to train on, or a data set's name (shakespeare: "
                        "the full 5 MB); empty = the bundled 1 MB Shakespeare sample",
                        aliases=("--data",))
    cell: str = setting("lstm", "recurrent cell", common.CELL_CHOICES)
    hidden_size: int = setting(256, "units per recurrent layer", lo=1)
    embed_dim: int = setting(64, "size of each character's embedding vector", lo=1)
    num_layers: int = setting(1, "stacked recurrent layers", lo=1)
    dropout: float = setting(0.0, "dropout between stacked layers", lo=0, hi=0.99)
    batch_size: int = setting(32, "rows of the text read side by side", lo=1)
    seq_len: int = setting(64, "steps per truncated-BPTT chunk", lo=1)
    val_fraction: float = setting(0.05, "fraction at the end of the text held out for validation",
                                 lo=0, hi=0.9, lo_open=True)
    optimizer: str = setting("adam", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(3e-3, "learning rate", lo=0, lo_open=True)
    schedule: str = setting("constant", "learning-rate schedule: constant, cosine (to 0 over "
                            "the run) or step (x0.1 at 1/3 and 2/3)", common.SCHEDULE_CHOICES)
    sample_length: int = setting(400, "characters to generate after training", lo=0,
                                 hi=MAX_LENGTH)
    temperature: float = setting(0.7, "sampling temperature (lower = more conservative)",
                                 lo=0, lo_open=True)
    prime: str = setting("ROMEO.\n", "text the generated sample starts from")


Config = CharLMConfig


@dataclass
class PredictOptions:
    length: int = setting(400, "characters to generate after each prime", lo=0, hi=MAX_LENGTH)
    temperature: float = setting(0.7, "sampling temperature (lower = more conservative)",
                                 lo=0, lo_open=True)
    top_k: int = setting(0, "sample only from the k most likely characters; 0 = all", lo=0)
    top_p: float = setting(1.0, "sample only from the most likely characters whose "
                           "probabilities add up to p (nucleus sampling); 1 = all",
                           lo=0, hi=1, lo_open=True)
    seed: int = setting(0, "seed of the sampling", lo=0)
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


@dataclass
class EvaluateOptions:
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=1.0, val_every=100, log_every=10, clip_norm=5.0)


def _read_text(cfg: CharLMConfig) -> str:
    if not cfg.text:
        return bundled_text()
    path = resolve(cfg.text, flag="--text")
    if not path.is_file():
        raise RnnkitError(f"text: expected a UTF-8 text file, got {cfg.text!r} (no such file)")
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as e:
        raise RnnkitError(f"text: expected a UTF-8 text file, got {cfg.text!r} ({e})") from None


def _streams(cfg: CharLMConfig, vocab: CharVocab):
    ids = vocab.encode(_read_text(cfg))
    split = int(len(ids) * (1 - cfg.val_fraction))
    need = cfg.batch_size * cfg.seq_len + 1
    for name, part in (("training", ids[:split]), ("validation", ids[split:])):
        if len(part) < need:
            fail("text", f"a {name} part of at least batch_size * seq_len + 1 = {need} "
                 "characters", f"{len(part)} (a longer text, or smaller --batch-size/--seq-len)")
    return (TextStream(ids[:split], cfg.batch_size, cfg.seq_len),
            TextStream(ids[split:], cfg.batch_size, cfg.seq_len))


def _model(cfg: CharLMConfig, vocab: CharVocab, seed=None) -> LanguageModel:
    return LanguageModel(len(vocab), cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.cell,
                         cfg.dropout, seed=seed)


def _build(cfg: CharLMConfig, tcfg: TrainConfig, run_dir: Path, vocab: CharVocab, log):
    common.check_choices(cfg)
    train, val = _streams(cfg, vocab)
    model = _model(cfg, vocab, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = Trainer(model, softmax_cross_entropy, optimizer, train, val, config=tcfg,
                      run_dir=run_dir, log=log)
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def sample_token(z: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0) -> int:
    """One token from softmax(z / temperature), kept to the top_k most likely and to the
    smallest most-likely set of probability >= top_p, renormalised. With top_k = 0 and
    top_p = 1 this is LanguageModel.generate's draw (the same generator calls)."""
    z = z.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    if top_k > 0 or top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        keep = np.zeros(p.size, bool)
        k = p.size if top_k <= 0 else min(top_k, p.size)
        if top_p < 1.0:
            cum = np.cumsum(p[order]) / p.sum()
            k = min(k, int(np.searchsorted(cum, top_p)) + 1)    # the first index reaching p
        keep[order[:k]] = True
        p = np.where(keep, p, 0.0)
    return int(rng.choice(p.size, p=p / p.sum()))


def generate(model: LanguageModel, prime: list[int], length: int, rng: np.random.Generator, *,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list[int]:
    """Feed `prime`, then sample `length` tokens one step at a time (sample_token)."""
    if not prime:
        fail("prime", "at least one character", "an empty prime")
    check_int("length", length, 0, MAX_LENGTH)
    if not temperature > 0:
        fail("temperature", "a positive number", repr(temperature))
    if not isinstance(top_k, int) or top_k < 0:
        fail("top_k", "an integer >= 0 (0 = all)", repr(top_k))
    if not 0 < top_p <= 1:
        fail("top_p", "a probability in (0, 1]", repr(top_p))
    with model.rnn.frozen():            # the weights are compared once, not once a token
        logits, state, _ = model.forward(np.asarray([prime]), grad=False)
        step = model.stepper(state)
        z, out = logits[0, -1], []
        for _ in range(length):
            token = sample_token(z, rng, temperature, top_k, top_p)
            out.append(token)
            z = step(np.asarray([token]))[0]
    return out


def _check_prime(prime: str, vocab: CharVocab) -> None:
    unknown = sorted(set(prime) - set(vocab.chars))
    if not prime or (unknown and vocab.unk is None):
        fail("prime", "at least one character, each seen in the training text",
             repr(prime) if not prime else f"unknown {unknown[:10]}")


def _sample(model, vocab: CharVocab, prime: str, length: int, seed: int, **how) -> str:
    out = generate(model, list(vocab.encode(prime)), length, np.random.default_rng(seed), **how)
    return prime + vocab.decode(out)


def _finish(trainer: Trainer, vocab: CharVocab, cfg: CharLMConfig, log) -> dict:
    summary = common.fit(trainer, log)
    val = trainer.evaluate(trainer.val_data)
    log(f"validation loss: {val:.4f} nats/char after {trainer.step} batches (best during the "
        f"run {trainer.best_val:.4f}, weights in best.safetensors); run folder {trainer.run_dir}")
    text = _sample(trainer.model, vocab, cfg.prime, cfg.sample_length, trainer.config.seed,
                   temperature=cfg.temperature)
    log(f"\n--- sample (temperature {cfg.temperature}) ---\n{text}")
    return dict(summary, val_loss=val, sample=text)


def train(cfg: CharLMConfig, tcfg: TrainConfig, run_dir: str | Path, log=print,
          reuse_folder: bool = False) -> dict:
    """Train from scratch into `run_dir`; print validation losses, then a sample.
    reuse_folder=True (the demo) trains into a folder that may hold an earlier run."""
    common.check_choices(cfg)
    vocab = CharVocab(_read_text(cfg))
    _check_prime(cfg.prime, vocab)          # before training, not after it
    run_dir = common.check_run_dir(run_dir) if reuse_folder else common.new_run(run_dir)
    trainer = _build(cfg, tcfg, run_dir, vocab, log)
    vocab.save(run_dir / "vocab.json")
    common.save_run_config(run_dir, cfg, tcfg, kind="text")
    log(f"char LM: {cfg.cell.upper()} {cfg.num_layers}x{cfg.hidden_size}, vocabulary "
        f"{len(vocab)}, {trainer.train_data.num_batches(0)} batches of {cfg.batch_size}x"
        f"{cfg.seq_len} per epoch, {trainer.total_steps} batches in all")
    before = trainer.evaluate(trainer.val_data)
    log(f"validation loss before training: {before:.4f} nats/char "
        f"(uniform: {np.log(len(vocab)):.4f})")
    return dict(_finish(trainer, vocab, cfg, log), val_loss_before=before)


def resume(run_dir: str | Path, log=print, **train_overrides) -> dict:
    """Continue a run from its latest checkpoint; overrides such as max_steps=2000 extend it."""
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, CharLMConfig, "text")
    tcfg = common.resume_config(tcfg, train_overrides)
    common.save_run_config(run_dir, cfg, tcfg, kind="text")
    vocab = CharVocab.load(run_dir / "vocab.json")
    trainer = _build(cfg, tcfg, run_dir, vocab, log)
    trainer.restore()
    log(f"resumed {run_dir} at batch {trainer.step} (epoch {trainer.epoch}), "
        f"training to {trainer.total_steps}")
    return _finish(trainer, vocab, cfg, log)


def _load(run_dir, best: bool):
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, CharLMConfig, "text")
    vocab = CharVocab.load(run_dir / "vocab.json")
    model = _model(cfg, vocab)
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, tcfg, vocab, model


def evaluate(run_dir: str | Path, log=print, best: bool = True) -> dict:
    """Validation nats per character (the held-out end of the text), into eval.json."""
    run_dir, cfg, tcfg, vocab, model = _load(run_dir, best)
    _, val = _streams(cfg, vocab)
    trainer = Trainer(model, softmax_cross_entropy, None, val, config=tcfg, log=log)
    nats = trainer.evaluate(val)
    return common.write_eval(run_dir, {
        "app": "text", "weights": "best" if best else "latest",
        "val_nats_per_char": nats, "val_bits_per_char": nats / np.log(2),
        "val_chars": val.num_batches(0) * cfg.batch_size * cfg.seq_len})


def predict(run_dir: str | Path, inputs: list[str], *, length: int = 400,
            temperature: float = 0.7, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
            best: bool = True) -> list[dict]:
    """Generate `length` characters after each prime (none: the run's configured prime)."""
    run_dir, cfg, _, vocab, model = _load(run_dir, best)
    results = []
    for i, prime in enumerate(inputs or [cfg.prime]):
        try:
            vocab.encode(prime)
        except RnnkitError:
            unknown = sorted(set(prime) - set(vocab.chars))
            fail("prime", "only characters seen in training", f"unknown {unknown[:10]}")
        text = _sample(model, vocab, prime, length, seed + i, temperature=temperature,
                       top_k=top_k, top_p=top_p)
        results.append({"prime": prime, "text": text})
    return results


def sample(run_dir: str | Path, *, length: int | None = None, temperature: float | None = None,
           prime: str | None = None, seed: int = 0, best: bool = True) -> str:
    """Generate text from a run's best (or latest) weights (the old API; see predict)."""
    _, cfg, _, _, _ = _load(run_dir, best)
    return predict(run_dir, [prime if prime is not None else cfg.prime],
                   length=length if length is not None else cfg.sample_length,
                   temperature=temperature if temperature is not None else cfg.temperature,
                   seed=seed, best=best)[0]["text"]
