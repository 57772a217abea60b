"""Speech recognition: spoken digit strings (or any short utterances) to text with a stacked
bidirectional LSTM or GRU trained by CTC over characters or words (Graves et al. 2006; notes:
speech recognition as sequence labelling without a segmentation).

    x_1..x_K   log-mel features (rnnkit.audio), `stack` frames a step, 10 ms each
    h_t        BiLSTM/GRU stack over the steps
    y_t        softmax(W_hy h_t + b_y) over blank + " abcdefghijklmnopqrstuvwxyz'" (--units
               chars: any words) or blank + the training transcripts' words (--units words:
               a closed vocabulary, saved as words.json in the run folder)
    loss       -ln p(transcript | x), summed over the alignments (rnnkit.ctc)
    decoding   best path (greedy) or prefix beam search

Data: a corpus folder with manifest.tsv (rnnkit.apps.speech_corpus; `rnnkit speech synth`
makes one). Without --val-data / --test-data the utterances are split once, seeded, into
train / validation / test (split.json in the run folder). Training keeps the weights with
the lowest validation word error rate. Word and character error rates come from jiwer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.apps import common
from rnnkit.apps.common import setting
from rnnkit.audio import RATE, features_of, normalise, log_mel, read_wav, spec_augment, \
    stack_frames
from rnnkit.apps.speech_corpus import DIGIT_WORDS, read_manifest
from rnnkit.ctc import ctc_trainer_loss, greedy_decode, log_softmax, prefix_beam_search
from rnnkit.data.batch import Batch
from rnnkit.data.batching import bucket_batches, check_start, epoch_rng, pad_sequences
from rnnkit.data.vocab import WordVocab
from rnnkit import schema
from rnnkit.errors import fail
from rnnkit.models import SequenceModel
from rnnkit.optim import make_optimizer
from rnnkit.serialize import load_json, save_json
from rnnkit.train import TrainConfig

SUMMARY = "speech recognition: spoken digit strings to text (BiLSTM + CTC); synth makes a corpus"
PREDICT_VERB = "transcribe"
TOOLS = {"synth": "rnnkit.apps.speech_corpus"}       # `rnnkit speech synth`
ALPHABET = " abcdefghijklmnopqrstuvwxyz'"             # class k + 1; class 0 is the blank


@dataclass
class SpeechConfig:
    data: str = setting("", "a corpus folder with manifest.tsv (PATH<TAB>TRANSCRIPT a line)")
    val_data: str = setting("", "a corpus for validation; empty = part of --data")
    test_data: str = setting("", "a corpus for `evaluate`; empty = part of --data")
    val_fraction: float = setting(0.1, "share of --data for validation (without --val-data)")
    test_fraction: float = setting(0.1, "share of --data for the test (without --test-data)")
    split_seed: int = setting(0, "seed of the train/validation/test split")
    n_mels: int = setting(40, "mel channels per 10 ms frame", lo=8, hi=128)
    stack: int = setting(3, "frames joined into one recurrent step (fewer, wider steps)",
                         lo=1, hi=8)
    units: str = setting("chars", "CTC classes: chars (spells any word) or words (the "
                         "training transcripts' words only)", ("chars", "words"))
    spec_augment: bool = setting(True, "mask random bands and runs of the training features")
    cell: str = setting("lstm", "recurrent cell", common.CELL_CHOICES)
    hidden_size: int = setting(128, "units per direction")
    num_layers: int = setting(2, "stacked bidirectional layers")
    dropout: float = setting(0.1, "dropout between the recurrent layers")
    batch_size: int = setting(32, "utterances per batch")
    optimizer: str = setting("adam", "optimiser", ("sgd", "rmsprop", "adam", "adamw"))
    lr: float = setting(2e-3, "learning rate")
    schedule: str = setting("cosine", "learning-rate schedule", common.SCHEDULE_CHOICES)


Config = SpeechConfig


LEXICON_HELP = ("comma-separated words: each decoded word becomes the closest of them by "
                "edit distance; 'digits' = zero,oh,one..nine; empty = the spelling as decoded")


@dataclass
class EvaluateOptions:
    data: str = setting("", "score this corpus instead of the run's test utterances")
    beam: int = setting(1, "beam width of the prefix beam search; 1 = greedy", lo=1, hi=64)
    lexicon: str = setting("", LEXICON_HELP)


@dataclass
class PredictOptions:
    beam: int = setting(1, "beam width of the prefix beam search; 1 = greedy", lo=1, hi=64)
    lexicon: str = setting("", LEXICON_HELP)
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=20.0, val_every=0, patience=4, log_every=20, clip_norm=5.0)


# --- text <-> classes -----------------------------------------------------------------------
def encode(text: str, where: str = "transcript") -> np.ndarray:
    bad = sorted(set(text) - set(ALPHABET))
    if bad:
        fail(where, f"lower-case letters, spaces and apostrophes ({ALPHABET.strip()!r})",
             f"{text!r} with {bad}")
    return np.array([ALPHABET.index(c) + 1 for c in text], np.int64)


def decode(labels) -> str:
    return " ".join("".join(ALPHABET[k - 1] for k in labels).split())


class Chars:
    """CTC over characters: class 0 the blank, class k + 1 ALPHABET[k]."""
    size = len(ALPHABET) + 1

    @staticmethod
    def encode(text: str, where: str = "transcript") -> np.ndarray:
        return encode(text, where)

    @staticmethod
    def decode(labels) -> str:
        return decode(labels)


class Words:
    """CTC over words: class 0 the blank (WordVocab's <pad>), then the words of the training
    transcripts, which are all this model can write (words.json in the run folder)."""
    FILE = "words.json"

    def __init__(self, vocab: WordVocab):
        if vocab.unk_id is not None or vocab.bos_id is not None or vocab.eos_id is not None:
            fail(Words.FILE, "a word list without <unk>, <bos>, <eos>", str(vocab.tokens[:4]))
        self.vocab, self.size = vocab, len(vocab)

    @classmethod
    def of(cls, texts) -> "Words":
        return cls(WordVocab(sorted({w for t in texts for w in t.split()}), unk=False))

    def encode(self, text: str, where: str = "transcript") -> np.ndarray:
        unknown = [w for w in text.split() if w not in self.vocab]
        if unknown:
            fail(where, f"only the {self.size - 1} words of the run's {Words.FILE} (a model "
                 "trained with --units words knows only its training transcripts' words)",
                 f"{text!r} with {unknown}")
        return self.vocab.encode(text.split())

    def decode(self, labels) -> str:
        return self.vocab.decode(labels)


def units_of(cfg, run_dir: Path):
    return Chars() if cfg.units == "chars" else Words(WordVocab.load(run_dir / Words.FILE))


def lexicon_words(lexicon: str) -> list[str]:
    if lexicon == "digits":
        return list(DIGIT_WORDS) + ["oh"]
    words = [w.strip().lower() for w in lexicon.split(",") if w.strip()]
    for w in words:
        encode(w, "lexicon")
    return words


def snap(text: str, words: list[str]) -> str:
    """Each word of `text` replaced by the closest of `words` (Levenshtein distance over the
    longer word's length, so "thr" is "three", not "two"; the first listed wins a tie): a
    closed vocabulary repairs misspellings such as "feven"."""
    if not words:
        return text
    from rapidfuzz.distance import Levenshtein
    return " ".join(min(words, key=lambda w: Levenshtein.normalized_distance(t, w)) for t in text.split())


# --- data -----------------------------------------------------------------------------------
def load_corpus(path: str, n_mels: int, name: str = "--data") -> tuple[list, list]:
    """(normalised log-mel features (K, n_mels) per utterance, transcripts)."""
    rows = read_manifest(path, name)
    feats = [normalise(log_mel(read_wav(wav), n_mels)) for wav, _, _ in rows]
    texts = [text for _, text, _ in rows]
    for i, t in enumerate(texts):
        encode(t, f"{path} utterance {i + 1}")
    return feats, texts


class SpeechDataset:
    """Utterances as batches: features stacked `stack` frames a step, right-padded, with
    their lengths; targets (N, S) character classes right-padded with -1. Similar lengths
    share a batch (bucket_batches); with ``augment`` each training batch gets its own
    SpecAugment masks from (seed, epoch, batch), so a resumed run sees the same masks."""

    stateful = False

    def __init__(self, features: list, texts: list, batch_size: int, stack: int, *,
                 seed: int = 0, shuffle: bool = True, augment: bool = False, units=Chars(),
                 source: str = "transcripts"):
        self.features, self.stack, self.units = features, stack, units
        self.labels = [units.encode(t, f"{source} utterance {i + 1}")
                       for i, t in enumerate(texts)]
        self.steps = np.array([-(-len(f) // stack) for f in features], np.int64)
        self.batch_size, self.seed = batch_size, seed
        self.shuffle, self.augment = shuffle, augment

    def __len__(self) -> int:
        return len(self.features)

    def num_batches(self, epoch: int = 0) -> int:
        return -(-len(self) // self.batch_size)

    def batches(self, epoch: int, start: int = 0):
        plan = bucket_batches(self.steps, self.batch_size,
                              epoch_rng(self.seed, epoch) if self.shuffle else None)
        start = check_start(start, len(plan))
        return (self._batch(idx, epoch, b) for b, idx in enumerate(plan) if b >= start)

    def _batch(self, idx, epoch: int, b: int) -> Batch:
        rng = np.random.default_rng([self.seed, epoch, b])
        feats = [spec_augment(self.features[i], rng) if self.augment else self.features[i]
                 for i in idx]
        x, lengths = pad_sequences([stack_frames(f, self.stack) for f in feats])
        y, _ = pad_sequences([self.labels[i] for i in idx], pad_value=-1)
        return Batch(inputs=x.astype(np.float32), targets=y, lengths=lengths)


# the run folder's split.json: utterance numbers of the corpus's manifest
SPLIT = {"train": schema.ListOf(schema.Int(0)), "val": schema.ListOf(schema.Int(0)),
         "test": schema.ListOf(schema.Int(0)), "utterances": schema.Int(1)}


def _split(n: int, cfg: SpeechConfig) -> dict:
    order = np.random.default_rng(cfg.split_seed).permutation(n)
    n_val = 0 if cfg.val_data else int(round(n * cfg.val_fraction))
    n_test = 0 if cfg.test_data else int(round(n * cfg.test_fraction))
    if n - n_val - n_test < 1 or (not cfg.val_data and n_val < 1):
        fail("data", "enough utterances for a train and a validation part",
             f"{n} utterances with val_fraction={cfg.val_fraction}, "
             f"test_fraction={cfg.test_fraction}")
    return {"val": sorted(order[:n_val].tolist()),
            "test": sorted(order[n_val:n_val + n_test].tolist()),
            "train": sorted(order[n_val + n_test:].tolist()), "utterances": n}


# --- model, scoring -------------------------------------------------------------------------
def _model(cfg: SpeechConfig, units, seed=None) -> SequenceModel:
    return SequenceModel(input_size=cfg.n_mels * cfg.stack, hidden_size=cfg.hidden_size,
                         num_layers=cfg.num_layers, cell=cfg.cell, bidirectional=True,
                         dropout=cfg.dropout, output_size=units.size, readout="steps",
                         seed=seed)


def transcribe_batch(model, x: np.ndarray, lengths, beam: int = 1,
                     words: list[str] = (), units=Chars()) -> list[str]:
    logits, _, _ = model.forward(x, None, lengths, grad=False)
    lp = log_softmax(logits.astype(np.float64))
    if beam == 1:
        paths = greedy_decode(lp, lengths)
    else:
        paths = [prefix_beam_search(lp[n, :int(lengths[n])], beam)[0] for n in range(len(lp))]
    return [snap(units.decode(labels), list(words)) for labels in paths]


def error_rates(references: list, hypotheses: list) -> dict:
    import jiwer
    return {"wer": float(jiwer.wer(references, hypotheses)),
            "cer": float(jiwer.cer(references, hypotheses))}


def score_data(model, data, beam: int = 1, words: list[str] = ()) -> tuple[float, dict, list]:
    """(mean CTC loss, {wer, cer}, hypotheses in the data's order) over a dataset."""
    loss_fn = ctc_trainer_loss()
    refs, hyps, total, count = [], [], 0.0, 0
    for batch in data.batches(0):
        logits, _, _ = model.forward(batch.inputs, None, batch.lengths, grad=False)
        total += loss_fn(logits, batch.targets, batch.lengths)[0] * len(batch.lengths)
        count += len(batch.lengths)
        hyps += transcribe_batch(model, batch.inputs, batch.lengths, beam, words, data.units)
        refs += [data.units.decode(t[t >= 0]) for t in batch.targets]
    return total / max(count, 1), error_rates(refs, hyps), hyps


def _val_score(model, data) -> tuple[float, float]:
    loss, rates, _ = score_data(model, data)
    return loss, 1.0 - rates["wer"]             # higher is better: word accuracy


# --- the app's verbs ------------------------------------------------------------------------
def _parts(cfg: SpeechConfig, run_dir: Path, log) -> dict:
    feats, texts = load_corpus(cfg.data, cfg.n_mels)
    path = run_dir / "split.json"
    split = schema.check(load_json(path), SPLIT, str(path))
    rows = [i for part in ("train", "val", "test") for i in split[part]]
    if max(rows, default=0) >= split["utterances"] or len(set(rows)) != len(rows) or \
            not split["train"]:
        fail(str(path), f"distinct utterance numbers below utterances = "
             f"{split['utterances']}, some for training", "repeated or larger ones, or none")
    if split["utterances"] != len(feats):
        fail(cfg.data, f"the {split['utterances']} utterances the run was split from",
             f"{len(feats)} (the manifest changed since training)")
    parts = {k: ([feats[i] for i in split[k]], [texts[i] for i in split[k]])
             for k in ("train", "val", "test")}
    if cfg.val_data:
        parts["val"] = load_corpus(cfg.val_data, cfg.n_mels, "--val-data")
    return parts


def _build(cfg, tcfg, run_dir, log):
    parts, units = _parts(cfg, run_dir, log), units_of(cfg, run_dir)
    train = SpeechDataset(*parts["train"], cfg.batch_size, cfg.stack, seed=tcfg.seed,
                          augment=cfg.spec_augment, units=units, source=f"{cfg.data} (train)")
    val = SpeechDataset(*parts["val"], 64, cfg.stack, shuffle=False, units=units,
                        source=f"{cfg.val_data or cfg.data} (validation)")
    model = _model(cfg, units, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = common.ScoredTrainer(model, ctc_trainer_loss(), optimizer, train, val,
                                   config=tcfg, run_dir=run_dir, log=log, score_fn=_val_score,
                                   score_name="word_accuracy")
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def _finish(trainer, log) -> dict:
    summary = common.fit(trainer, log)
    log(f"best validation WER {1 + trainer.best_val:.4f} (weights in best.safetensors); "
        f"`rnnkit speech evaluate {trainer.run_dir}` scores the test utterances")
    return dict(summary, best_val_wer=1 + trainer.best_val)


def train(cfg: SpeechConfig, tcfg: TrainConfig, run_dir, log=print) -> dict:
    common.check_choices(cfg)
    rows = read_manifest(cfg.data)              # a bad corpus is reported before any folder
    for extra, flag in ((cfg.val_data, "--val-data"), (cfg.test_data, "--test-data")):
        if extra:
            read_manifest(extra, flag)
    split = _split(len(rows), cfg)
    run_dir = common.new_run(run_dir)
    save_json(run_dir / "split.json", split)
    if cfg.units == "words":
        Words.of(rows[i][1] for i in split["train"]).vocab.save(run_dir / Words.FILE)
    common.save_run_config(run_dir, cfg, tcfg, kind="speech")
    trainer = _build(cfg, tcfg, run_dir, log)
    log(f"speech: {len(trainer.train_data)} training / {len(trainer.val_data)} validation "
        f"utterances, {cfg.n_mels} mels x {cfg.stack} frames a step, Bi{cfg.cell.upper()} "
        f"{cfg.num_layers} x {cfg.hidden_size}; run folder {run_dir}")
    return _finish(trainer, log)


def resume(run_dir, log=print, **train_overrides) -> dict:
    trainer = common.restore_run(run_dir, SpeechConfig, "speech", train_overrides,
                                 lambda cfg, tcfg, run: _build(cfg, tcfg, run, log), log)
    return _finish(trainer, log)


def _load(run_dir, best: bool = True):
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, SpeechConfig, "speech")
    units = units_of(cfg, run_dir)
    model = _model(cfg, units)
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, model, units


def evaluate(run_dir, log=print, data: str = "", beam: int = 1, lexicon: str = "") -> dict:
    """WER, CER and CTC loss on the run's test utterances, or on every utterance of `data`."""
    run_dir, cfg, model, units = _load(run_dir)
    source = data or cfg.test_data
    if source:
        feats, texts = load_corpus(source, cfg.n_mels, "--data" if data else "--test-data")
    else:
        feats, texts = _parts(cfg, run_dir, log)["test"]
        if not feats:
            fail("data", "a corpus to score (the run kept no test part: test_fraction=0)",
                 "none")
    dataset = SpeechDataset(feats, texts, 64, cfg.stack, shuffle=False, units=units,
                            source=source or f"{cfg.data} (test)")
    start = time.perf_counter()
    loss, rates, _ = score_data(model, dataset, beam, lexicon_words(lexicon))
    seconds = time.perf_counter() - start
    audio = sum(len(f) for f in feats) * 0.01
    return common.write_eval(run_dir, {
        "app": "speech", "data": source or f"{cfg.data} (test split)", "utterances": len(feats),
        "words": sum(len(t.split()) for t in texts), "beam": beam, "lexicon": lexicon,
        **rates, "ctc_loss": loss,
        "real_time_factor": seconds / max(audio, 1e-9)})


def predict(run_dir, inputs: list, *, beam: int = 1, lexicon: str = "",
            best: bool = True) -> list:
    """The transcript of each WAV file, with the real-time factor of its decoding."""
    _, cfg, model, units = _load(run_dir, best)
    words = lexicon_words(lexicon)
    results = []
    for item in inputs:
        start = time.perf_counter()
        x = read_wav(item)
        f = features_of(x, cfg.n_mels, cfg.stack)
        text = transcribe_batch(model, f[None], np.array([len(f)]), beam, words, units)[0]
        rtf = (time.perf_counter() - start) / (len(x) / RATE)
        results.append({"input": item, "transcript": text, "seconds": len(x) / RATE,
                        "real_time_factor": rtf, "text": f"{text}\t{item}"})
    return results
