"""The main demo: a character-level LSTM trained on the bundled Shakespeare, then sampled.

Truncated BPTT over one long stream (note 001's unrolling, cut every `seq_len` steps with the
state carried across cuts), Adam, gradient clipping by global norm (notes 003/004).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from rnnkit.data import CharVocab, bundled_text, lm_batches
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import Adam, clip_grad_norm


@dataclass
class DemoConfig:
    cell: str = "lstm"
    hidden_size: int = 256
    embed_dim: int = 64
    num_layers: int = 1
    batch_size: int = 32
    seq_len: int = 64
    epochs: float = 1.0            # passes over the training text (fractions allowed)
    lr: float = 3e-3
    clip: float = 5.0
    val_fraction: float = 0.05
    sample_length: int = 400
    temperature: float = 0.7
    seed: int = 0
    log_every: int = 50


def evaluate(model: LanguageModel, ids: np.ndarray, cfg: DemoConfig) -> float:
    """Mean cross-entropy (nats per character) over a held-out stream, state carried."""
    state, total, count = None, 0.0, 0
    for x, y in lm_batches(ids, cfg.batch_size, cfg.seq_len):
        logits, state, _ = model.forward(x, state)
        loss, _ = softmax_cross_entropy(logits, y)
        total, count = total + loss * y.size, count + y.size
    return total / count


def run(cfg: DemoConfig = DemoConfig(), text: str | None = None, log=print) -> dict:
    text = bundled_text() if text is None else text
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    split = int(len(ids) * (1 - cfg.val_fraction))
    train_ids, val_ids = ids[:split], ids[split:]
    model = LanguageModel(len(vocab), cfg.embed_dim, cfg.hidden_size, cfg.num_layers,
                          cfg.cell, seed=cfg.seed)
    opt = Adam(model.params, lr=cfg.lr)
    log(f"rnnkit demo: {cfg.cell.upper()} {cfg.num_layers}x{cfg.hidden_size} on "
        f"{len(train_ids):,} training / {len(val_ids):,} validation characters, "
        f"vocabulary {len(vocab)}")
    val_before = evaluate(model, val_ids, cfg)
    log(f"validation loss before training: {val_before:.3f} nats/char "
        f"(uniform guess: {np.log(len(vocab)):.3f})")
    steps_per_epoch = (len(train_ids) - 1) // cfg.batch_size // cfg.seq_len
    total_steps = max(1, int(cfg.epochs * steps_per_epoch))
    step, state, start, recent = 0, None, time.perf_counter(), []
    while step < total_steps:
        for x, y in lm_batches(train_ids, cfg.batch_size, cfg.seq_len):
            model.zero_grad()
            logits, state, cache = model.forward(x, state, training=True)
            loss, dlogits = softmax_cross_entropy(logits, y)
            model.backward(dlogits, cache)
            norm = clip_grad_norm(model.grads, cfg.clip)
            opt.step(model.grads)
            step += 1
            recent.append(loss)
            if step % cfg.log_every == 0 or step == total_steps:
                rate = step * x.size / (time.perf_counter() - start)
                log(f"step {step:5d}/{total_steps}  loss {np.mean(recent):.3f}  "
                    f"grad norm {norm:6.2f}  {rate:,.0f} chars/s")
                recent = []
            if step == total_steps:
                break
        state = None                                   # a new pass starts a new stream
    val_after = evaluate(model, val_ids, cfg)
    log(f"validation loss after {step} steps: {val_after:.3f} nats/char "
        f"(train time {time.perf_counter() - start:.0f} s)")
    prime = "ROMEO.\n"
    sample = vocab.decode(model.generate(list(vocab.encode(prime)), cfg.sample_length,
                                         temperature=cfg.temperature,
                                         rng=np.random.default_rng(cfg.seed)))
    log("\n--- sample (temperature %.1f) ---\n%s%s" % (cfg.temperature, prime, sample))
    return {"config": asdict(cfg), "val_loss_before": val_before, "val_loss_after": val_after,
            "steps": step, "sample": prime + sample}
