"""Character-level language model: text generation and next-character prediction (notes 000, 004).

Data -> model -> trainer -> evaluation, for any UTF-8 text (default: the bundled Shakespeare
sample). The text is one stream cut into `batch_size` contiguous rows; each batch continues
every row, so the recurrent state is carried from batch to batch (truncated BPTT with
`seq_len`-step chunks). The run folder holds everything needed to resume or sample:

    config.json          the resolved app and training configuration
    vocab.json           the character vocabulary
    checkpoints/         weights, optimiser, RNG and data position (see rnnkit.train.checkpoint)
    best.safetensors     the weights with the best validation loss
    metrics.jsonl        training and validation rows; loss_curve.png at the end
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit.data import CharVocab, TextStream, bundled_text
from rnnkit.errors import RnnkitError
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import make_optimizer, make_schedule
from rnnkit.serialize import load_arrays, load_json, save_json
from rnnkit.train import Trainer, TrainConfig
from rnnkit.train.checkpoint import load_params


@dataclass
class CharLMConfig:
    text: str = ""                 # UTF-8 text file; "" = the bundled 1 MB Shakespeare sample
    cell: str = "lstm"             # rnn, lstm or gru
    hidden_size: int = 256
    embed_dim: int = 64
    num_layers: int = 1
    dropout: float = 0.0           # between stacked layers
    batch_size: int = 32
    seq_len: int = 64              # truncated-BPTT chunk length
    val_fraction: float = 0.05     # the end of the text, held out
    optimizer: str = "adam"
    lr: float = 3e-3
    schedule: str = "constant"     # constant, cosine (to 0 over the run) or step (x0.1 at 1/3, 2/3)
    sample_length: int = 400
    temperature: float = 0.7
    prime: str = "ROMEO.\n"


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=1.0, val_every=100, log_every=10, clip_norm=5.0)


def _read_text(cfg: CharLMConfig) -> str:
    if not cfg.text:
        return bundled_text()
    path = Path(cfg.text)
    if not path.is_file():
        raise RnnkitError(f"text: expected a UTF-8 text file, got {cfg.text!r} (no such file)")
    return path.read_text("utf-8")


def _build(cfg: CharLMConfig, tcfg: TrainConfig, run_dir: Path, vocab: CharVocab, log):
    ids = vocab.encode(_read_text(cfg))
    split = int(len(ids) * (1 - cfg.val_fraction))
    train = TextStream(ids[:split], cfg.batch_size, cfg.seq_len)
    val = TextStream(ids[split:], cfg.batch_size, cfg.seq_len)
    model = LanguageModel(len(vocab), cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.cell,
                          cfg.dropout, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = Trainer(model, softmax_cross_entropy, optimizer, train, val, config=tcfg,
                      run_dir=run_dir, log=log)
    total = trainer.total_steps
    shapes = {"constant": {}, "cosine": {"total_steps": total},
              "step": {"step_size": max(1, total // 3)}}
    if cfg.schedule not in shapes:
        raise RnnkitError(f"schedule: expected one of {sorted(shapes)}, got {cfg.schedule!r}")
    trainer.schedule = make_schedule(cfg.schedule, cfg.lr, **shapes[cfg.schedule])
    return trainer


def _sample(model: LanguageModel, vocab: CharVocab, cfg: CharLMConfig, seed: int) -> str:
    prime = vocab.encode(cfg.prime)
    out = model.generate(list(prime), cfg.sample_length, temperature=cfg.temperature,
                         rng=np.random.default_rng(seed))
    return cfg.prime + vocab.decode(out)


def _finish(trainer: Trainer, vocab: CharVocab, cfg: CharLMConfig, log) -> dict:
    summary = trainer.fit()
    val = trainer.evaluate(trainer.val_data)
    log(f"validation loss: {val:.4f} nats/char after {trainer.step} batches (best during the "
        f"run {trainer.best_val:.4f}, weights in best.safetensors); run folder {trainer.run_dir}")
    text = _sample(trainer.model, vocab, cfg, trainer.config.seed)
    log(f"\n--- sample (temperature {cfg.temperature}) ---\n{text}")
    return dict(summary, val_loss=val, sample=text)


def train(cfg: CharLMConfig, tcfg: TrainConfig, run_dir: str | Path, log=print) -> dict:
    """Train from scratch into `run_dir`; print validation losses, then a sample."""
    run_dir = Path(run_dir)
    vocab = CharVocab(_read_text(cfg))
    vocab.save(run_dir / "vocab.json")
    save_json(run_dir / "config.json", {"app": asdict(cfg), "train": asdict(tcfg)})
    trainer = _build(cfg, tcfg, run_dir, vocab, log)
    log(f"char LM: {cfg.cell.upper()} {cfg.num_layers}x{cfg.hidden_size}, vocabulary "
        f"{len(vocab)}, {trainer.train_data.num_batches(0)} batches of {cfg.batch_size}x"
        f"{cfg.seq_len} per epoch, {trainer.total_steps} batches in all")
    before = trainer.evaluate(trainer.val_data)
    log(f"validation loss before training: {before:.4f} nats/char "
        f"(uniform: {np.log(len(vocab)):.4f})")
    return dict(_finish(trainer, vocab, cfg, log), val_loss_before=before)


def resume(run_dir: str | Path, log=print, **train_overrides) -> dict:
    """Continue a run from its latest checkpoint; overrides such as max_steps=2000 extend it."""
    run_dir = Path(run_dir)
    saved = load_json(run_dir / "config.json")
    cfg = CharLMConfig(**saved["app"])
    tcfg = TrainConfig(**dict(saved["train"], **train_overrides))
    save_json(run_dir / "config.json", {"app": asdict(cfg), "train": asdict(tcfg)})
    vocab = CharVocab.load(run_dir / "vocab.json")
    trainer = _build(cfg, tcfg, run_dir, vocab, log)
    trainer.restore()
    log(f"resumed {run_dir} at batch {trainer.step} (epoch {trainer.epoch}), "
        f"training to {trainer.total_steps}")
    return _finish(trainer, vocab, cfg, log)


def sample(run_dir: str | Path, *, length: int | None = None, temperature: float | None = None,
           prime: str | None = None, seed: int = 0, best: bool = True) -> str:
    """Generate text from a run's best (or latest) weights."""
    run_dir = Path(run_dir)
    saved = load_json(run_dir / "config.json")
    cfg = CharLMConfig(**saved["app"])
    cfg.sample_length = length if length is not None else cfg.sample_length
    cfg.temperature = temperature if temperature is not None else cfg.temperature
    cfg.prime = prime if prime is not None else cfg.prime
    vocab = CharVocab.load(run_dir / "vocab.json")
    model = LanguageModel(len(vocab), cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.cell,
                          cfg.dropout)
    weights = run_dir / "best.safetensors"
    if best and weights.is_file():
        load_params(model, load_arrays(weights), str(weights))
    else:
        from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint
        ck = load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))
        load_params(model, ck["model_params"], str(ck["path"]))
    return _sample(model, vocab, cfg, seed)
