"""Machine translation (many-to-many, notes 003-004): an encoder-decoder with attention.

Data: a parallel TSV (rnnkit.data.parallel), e.g. en_fr_bible.tsv (`en<TAB>fr`). Pairs whose
source has at most `max_words` words (and whose target at most 1.5 times as many) are kept,
shuffled once with `split_seed`, and cut into a test set, a validation set and the training
rest; the test and validation pairs are written into the run folder (test.tsv, val.tsv) and
the training pairs' line numbers into split.json, so that evaluation reads the same pairs.
The units are words (lower-cased, elisions split, words seen at least `min_freq` times in
the training pairs, <unk> for the rest) or BPE subword pieces learnt by SentencePiece from
each language's training sentences (`--units bpe`, rnnkit.data.subwords): pieces spell
rare words and names instead of <unk>, and a few thousand pieces make a smaller output layer
than the ~10k French words of the Bible. Vocabularies come from the training pairs only.

The model is rnnkit.models.Seq2Seq: a bidirectional encoder, a bridge to the decoder's first
state, Luong attention, teacher forcing. Training keeps the weights with the best greedy BLEU
on the validation pairs (best.safetensors). `evaluate` scores greedy and beam search with
sacrebleu (BLEU and chrF, both lower-cased: the vocabulary is); `predict` translates lines and
can draw the attention weights (--attention-plot).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.apps import common
from rnnkit.apps.common import setting
from rnnkit.apps.heatmap import plot_attention
from rnnkit.apps.translate_pairs import (DATA_SET, held_out, load_split, run_file, select_pairs,
                                         sha256, split_pairs, training_pairs, write_tsv)
from rnnkit.data.batching import pad_sequences
from rnnkit.data.parallel import ParallelDataset, build_vocab, encode, tokens
from rnnkit.data.subwords import UNITS, Subwords, Words
from rnnkit.data.vocab import WordVocab
from rnnkit.errors import fail
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import Seq2Seq
from rnnkit.models.decoding import beam_search, greedy
from rnnkit.optim import make_optimizer
from rnnkit.serialize import save_json
from rnnkit.train import TrainConfig

SUMMARY = "machine translation: an encoder-decoder with attention, greedy and beam search"
APP = "translate"


@dataclass
class TranslateConfig:
    data: str = setting("", "parallel data: a UTF-8 TSV with a header naming the languages "
                        "(e.g. en<TAB>fr) and one sentence pair a line; or a data set's "
                        f"name (en_es_bible); empty = the cached {DATA_SET!r}")
    source: str = setting("en", "the source language's column")
    target: str = setting("", "the target language's column ('' = the other one)")
    max_words: int = setting(25, "keep pairs whose source has at most this many words (and "
                             "the target at most 1.5 times as many)")
    train_max_words: int = setting(0, "also train on the longer pairs up to this many source "
                                   "words; the held-out pairs stay within max_words (0 = "
                                   "max_words)")
    split_seed: int = setting(0, "seed of the test / validation / training split")
    test_size: int = setting(1000, "pairs held out for the test")
    val_size: int = setting(500, "pairs held out for validation (model selection by BLEU)")
    units: str = setting("words", "what the model reads and writes: words, or BPE subword "
                         "pieces (SentencePiece) learnt from the training pairs", UNITS)
    subword_vocab: int = setting(4000, "pieces of each language's BPE model (--units bpe)")
    min_freq: int = setting(2, "keep words seen at least this often in the training pairs")
    max_vocab: int = setting(20000, "largest vocabulary of each language")
    cell: str = setting("lstm", "recurrent cell", common.CELL_CHOICES)
    embed_dim: int = setting(256, "size of each word's embedding vector")
    hidden_size: int = setting(256, "encoder units per direction")
    bidirectional: bool = setting(True, "read the source both ways")
    num_layers: int = setting(1, "stacked layers in the encoder and the decoder")
    dec_hidden_size: int = setting(512, "decoder units")
    attention: str = setting("general", "attention: Luong dot / general, Bahdanau additive",
                             ("none", "additive", "dot", "general"))
    input_feeding: bool = setting(False, "feed h~_{t-1} into the next decoder step (Luong)")
    dropout: float = setting(0.0, "dropout on the embeddings, between stacked layers and "
                             "before the output layer")
    label_smoothing: float = setting(0.0, "train against (1 - e) onehot + e / V (validation "
                                     "loss stays the plain cross-entropy)")
    batch_size: int = setting(64, "sentence pairs per batch")
    optimizer: str = setting("adam", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(1e-3, "learning rate")
    schedule: str = setting("constant", "learning-rate schedule", common.SCHEDULE_CHOICES)


Config = TranslateConfig


@dataclass
class EvaluateOptions:
    split: str = setting("test", "which held-out pairs to score", ("test", "val"))
    beam: int = setting(5, "beam width (greedy search is scored too)")
    alpha: float = setting(0.6, "length normalisation of beam search ((5 + L) / 6)^alpha")
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


@dataclass
class PredictOptions:
    beam: int = setting(5, "beam width; 0 = greedy search")
    alpha: float = setting(0.6, "length normalisation of beam search ((5 + L) / 6)^alpha")
    attention_plot: str = setting("", "write the attention weights as a heat map to this PNG "
                                  "(several inputs: one file each, numbered)")
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=10.0, val_every=0, patience=3, log_every=20, clip_norm=5.0)


def loss_fn(logits, targets, lengths, label_smoothing: float = 0.0):
    """Cross-entropy per target unit, padded steps excluded."""
    return softmax_cross_entropy(logits, targets, None if lengths is None else lengths[1],
                                 label_smoothing=label_smoothing)


# --- data (rnnkit.apps.translate_pairs) ------------------------------------------------
@dataclass
class Side:
    """One language's units (words or subword pieces) and their vocabulary."""
    units: Words | Subwords
    vocab: WordVocab

    def split(self, text: str) -> list:
        return self.units.split(text)

    def encode(self, text: str) -> np.ndarray:
        return encode(self.vocab, self.units.split(text))


def _sides(run_dir: Path, cfg) -> tuple[Side, Side]:
    sides = []
    for name in ("source", "target"):
        units = Words() if cfg.units == "words" else \
            Subwords.load(run_file(run_dir, f"subwords_{name}.model"))
        sides.append(Side(units, WordVocab.load(run_file(run_dir, f"vocab_{name}.json"))))
    return sides[0], sides[1]


# --- model, decoding, scores ---------------------------------------------------------------
def make_model(cfg: TranslateConfig, src_size: int, tgt_size: int, seed=None) -> Seq2Seq:
    return Seq2Seq(src_vocab=src_size, tgt_vocab=tgt_size, embed_dim=cfg.embed_dim,
                   hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                   bidirectional=cfg.bidirectional, dec_hidden_size=cfg.dec_hidden_size,
                   cell=cfg.cell, attention=cfg.attention, input_feeding=cfg.input_feeding,
                   dropout=cfg.dropout, seed=seed)


def decode(model, src_ids: list, tgt_vocab: WordVocab, beam: int = 5, alpha: float = 0.6,
           batch_size: int = 64) -> list:
    """Each source's (target ids, attention (len + 1, its Ts) or None), in the given order;
    beam 0 = greedy search. Sources of similar length share a batch; a batch may generate
    at most 1.5 times its longest source plus 5 words."""
    if not isinstance(beam, int) or beam < 0:
        fail("beam", "an integer >= 0 (0 = greedy search)", repr(beam))
    order = np.argsort([len(s) for s in src_ids], kind="stable")
    out = [None] * len(src_ids)
    bos, eos = tgt_vocab.bos_id, tgt_vocab.eos_id
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        src, lengths = pad_sequences([src_ids[i] for i in idx])
        max_len = int(1.5 * src.shape[1]) + 5
        if beam == 0:
            d = greedy(model, src, lengths, bos=bos, eos=eos, max_len=max_len)
        else:
            d = beam_search(model, src, lengths, bos=bos, eos=eos, max_len=max_len, beam=beam,
                            alpha=alpha)
        for k, i in enumerate(idx):          # padding got weight 0: cut it off
            att = d.attention[k]
            out[i] = (d.tokens[k], None if att is None else att[:, :lengths[k]])
    return out


def translate_texts(model, sources: list, src: Side, tgt: Side, beam=5, alpha=0.6) -> list:
    """Detokenised translations of source sentences."""
    return [tgt.units.join(tgt.vocab.to_tokens(t)) for t, _ in
            decode(model, [src.encode(s) for s in sources], tgt.vocab, beam, alpha)]


def scores(hypotheses: list, references: list) -> dict:
    """Corpus BLEU and chrF (sacrebleu, lower-cased: the model's vocabulary is)."""
    from sacrebleu.metrics import BLEU, CHRF
    bleu, chrf = BLEU(lowercase=True), CHRF(lowercase=True)
    return {"bleu": bleu.corpus_score(hypotheses, [references]).score,
            "chrf": chrf.corpus_score(hypotheses, [references]).score,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def mean_loss(model, data: ParallelDataset) -> float:
    total, count = 0.0, 0
    for batch in data.batches(0):
        logits, _, _ = model.forward(batch.inputs, None, batch.lengths, grad=False)
        n = int(batch.lengths[1].sum())
        total, count = total + loss_fn(logits, batch.targets, batch.lengths)[0] * n, count + n
    return total / max(count, 1)


# --- training ------------------------------------------------------------------------------
def _build(cfg, tcfg, run_dir: Path, log):
    source, target = _sides(run_dir, cfg)
    train_src, train_tgt = training_pairs(cfg, run_dir)
    val_src, val_tgt = held_out(run_dir, "val")

    def dataset(src, tgt, shuffle):
        return ParallelDataset([source.encode(s) for s in src], [target.encode(t) for t in tgt],
                               cfg.batch_size, bos=target.vocab.bos_id, eos=target.vocab.eos_id,
                               seed=tcfg.seed, shuffle=shuffle)

    train, val = dataset(train_src, train_tgt, True), dataset(val_src, val_tgt, False)

    def score_fn(model, data):
        return mean_loss(model, data), scores(
            translate_texts(model, val_src, source, target, beam=0), val_tgt)["bleu"]

    model = make_model(cfg, len(source.vocab), len(target.vocab), seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    smoothed = (lambda *a: loss_fn(*a, label_smoothing=cfg.label_smoothing))
    trainer = common.ScoredTrainer(model, smoothed, optimizer, train, val, config=tcfg,
                                   run_dir=run_dir, log=log, score_fn=score_fn,
                                   score_name="bleu")
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def _fit(trainer, log) -> dict:
    """Train (the kernels compiled first); -> the summary with the best validation BLEU."""
    common.warm_up(*[_Rows(trainer.model, next(iter(trainer.train_data.batches(0))))] * 2, log)
    summary = trainer.fit()
    log(f"best validation BLEU (greedy) {-trainer.best_val:.2f} (weights in best.safetensors); "
        f"`rnnkit {APP} evaluate {trainer.run_dir}` scores the test pairs")
    return dict(summary, best_val_bleu=-trainer.best_val)


class _Rows:
    """A pair batch and the model seen through row numbers, so that common.warm_up, which
    slices a batch's rows, runs Seq2Seq on the first rows of a batch of (src, tgt_in) pairs."""

    def __init__(self, model, batch):
        self.model, self.batch = model, batch
        self.inputs, self.lengths = np.arange(len(batch.lengths[0]))[:, None], None

    def forward(self, rows, state, lengths, **kw):
        r = rows[:, 0]
        (src, tgt_in), (src_len, tgt_len) = self.batch.inputs, self.batch.lengths
        return self.model.forward((src[r, :src_len[r].max()], tgt_in[r, :tgt_len[r].max()]),
                                  None, (src_len[r], tgt_len[r]), **kw)

    def backward(self, dout, cache):
        return self.model.backward(dout, cache)

    def zero_grad(self):
        self.model.zero_grad()


def train(cfg: TranslateConfig, tcfg: TrainConfig, run_dir, log=print) -> dict:
    common.check_choices(cfg)
    if not 0.0 <= cfg.label_smoothing < 1.0:
        fail("label_smoothing", "a number in [0, 1)", repr(cfg.label_smoothing))
    if not isinstance(cfg.subword_vocab, int) or not 8 <= cfg.subword_vocab <= cfg.max_vocab:
        fail("subword_vocab", f"an integer in [8, max_vocab = {cfg.max_vocab}]",
             repr(cfg.subword_vocab))
    src, tgt, lines, short = select_pairs(cfg)
    split = {part: [short[i] for i in rows] for part, rows in
             split_pairs(len(short), cfg.test_size, cfg.val_size, cfg.split_seed).items()}
    split["train"] = sorted(split["train"] + sorted(set(range(len(src))) - set(short)))
    units = {}
    for name, texts in (("source", src), ("target", tgt)):
        words = [tokens(texts[k]) for k in split["train"]]
        units[name] = Words() if cfg.units == "words" else \
            Subwords.train(words, cfg.subword_vocab)
    train_src = [units["source"].split(src[k]) for k in split["train"]]
    train_tgt = [units["target"].split(tgt[k]) for k in split["train"]]
    # every piece a BPE model makes is kept: min_freq is for words
    min_freq = cfg.min_freq if cfg.units == "words" else 1
    src_vocab = build_vocab(train_src, min_freq, cfg.max_vocab, target=False)
    tgt_vocab = build_vocab(train_tgt, min_freq, cfg.max_vocab, target=True)
    run_dir = common.new_run(run_dir)
    src_vocab.save(run_dir / "vocab_source.json")
    tgt_vocab.save(run_dir / "vocab_target.json")
    for name, u in units.items():
        if isinstance(u, Subwords):
            u.save(run_dir / f"subwords_{name}.model")
    for part in ("test", "val"):
        write_tsv(run_dir / f"{part}.tsv", ("source", "target"),
                  [(src[k], tgt[k]) for k in split[part]])
    save_json(run_dir / "split.json", {
        "pairs": len(short), "seed": cfg.split_seed, "train": [lines[k] for k in split["train"]],
        "test": [lines[k] for k in split["test"]], "val": [lines[k] for k in split["val"]],
        "max_source_tokens": max(len(s) for s in train_src),
        "sha256": {part: sha256(run_dir / f"{part}.tsv") for part in ("test", "val")}})
    common.save_run_config(run_dir, cfg, tcfg, kind=APP)
    trainer = _build(cfg, tcfg, run_dir, log)
    log(f"{APP}: {len(split['train'])} / {len(split['val'])} / {len(split['test'])} pairs "
        f"(train / val / test) of at most {cfg.max_words} source words "
        f"({max(cfg.max_words, cfg.train_max_words)} in training), vocabularies "
        f"{len(src_vocab)} / {len(tgt_vocab)} {cfg.units}, {trainer.train_data.num_batches(0)} "
        f"batches an epoch; run folder {run_dir}")
    return _fit(trainer, log)


def resume(run_dir, log=print, **train_overrides) -> dict:
    trainer = common.restore_run(run_dir, TranslateConfig, APP, train_overrides,
                                 lambda cfg, tcfg, run: _build(cfg, tcfg, run, log), log)
    return _fit(trainer, log)


# --- using a trained run -------------------------------------------------------------------
def load_run(run_dir, best: bool = True):
    """(run folder, settings, source and target Side, model with trained weights)."""
    run_dir, cfg, _, _ = common.load_run_config(run_dir, TranslateConfig, APP)
    source, target = _sides(run_dir, cfg)
    model = make_model(cfg, len(source.vocab), len(target.vocab))
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, source, target, model


def evaluate(run_dir, log=print, split: str = "test", beam: int = 5, alpha: float = 0.6,
             best: bool = True) -> dict:
    """BLEU and chrF of greedy and beam search on the run's held-out pairs, with each one's
    speed; the translations go to RUN/translations_<split>.tsv."""
    if split not in ("test", "val"):
        fail("split", "'test' or 'val'", repr(split))
    if not isinstance(beam, int) or beam < 1:
        fail("beam", "an integer >= 1", repr(beam))
    run_dir, cfg, source, target, model = load_run(run_dir, best)
    src, refs = held_out(run_dir, split)
    results = {"app": APP, "split": split, "pairs": len(src), "beam_width": beam,
               "alpha": alpha, "weights": "best" if best else "latest"}
    outputs = {}
    for name, width in (("greedy", 0), ("beam", beam)):
        start = time.perf_counter()
        hyps = translate_texts(model, src, source, target, width, alpha)
        seconds = time.perf_counter() - start
        outputs[name] = hyps
        results[name] = dict(scores(hyps, refs), seconds=seconds,
                             sentences_per_s=len(src) / seconds)
        log(f"{name}{'' if not width else f' (beam {width}, alpha {alpha})'}: BLEU "
            f"{results[name]['bleu']:.2f}, chrF {results[name]['chrf']:.2f}, "
            f"{len(src) / seconds:.1f} sentences/s")
    write_tsv(run_dir / f"translations_{split}.tsv", ("source", "reference", "greedy", "beam"),
              zip(src, refs, outputs["greedy"], outputs["beam"]))
    return common.write_eval(run_dir, results)


def predict(run_dir, inputs: list, *, beam: int = 5, alpha: float = 0.6,
            attention_plot: str = "", best: bool = True) -> list:
    """A translation of each line (beam search, or greedy with beam 0); unknown words are read
    as <unk> and listed; --attention-plot draws where each target word looked."""
    run_dir, cfg, source, target, model = load_run(run_dir, best)
    limit = load_split(run_dir)["max_source_tokens"]
    words = []
    for i, text in enumerate(inputs, 1):
        w = source.split(text)
        if not w:
            fail(f"input {i}", "a sentence with at least one word", repr(text))
        if len(w) > limit:
            fail(f"input {i}", f"at most {limit} {cfg.units} (the longest source the model "
                 "was trained on)", f"{len(w)}")
        if all(t not in source.vocab for t in w):
            fail(f"input {i}", "at least one word seen in training", f"{text!r}")
        words.append(w)
    decoded = decode(model, [encode(source.vocab, w) for w in words], target.vocab, beam,
                     alpha)
    results = []
    for i, (text, w, (ids, att)) in enumerate(zip(inputs, words, decoded)):
        out = target.vocab.to_tokens(ids)
        translation = target.units.join(out)
        result = {"input": text, "translation": translation, "tokens": out,
                  "unknown_words": [t for t in w if t not in source.vocab],
                  "text": translation}
        if attention_plot:
            path = Path(attention_plot)
            if path.is_dir():
                fail("attention_plot", "a PNG file's path", f"{attention_plot!r} (a folder)")
            if len(inputs) > 1:
                path = path.with_name(f"{path.stem}_{i + 1}{path.suffix or '.png'}")
            if att is None:
                fail("attention_plot", "a run with attention", f"attention {cfg.attention!r}")
            plot_attention(path, w, out + ["<eos>"], att)
            result["attention_plot"] = str(path)
        results.append(result)
    return results
