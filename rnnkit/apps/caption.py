"""One-to-many generation (the notes' image captioning, at MNIST size): the English name of
the digit in an image, letter by letter ("seven"), or of two digits side by side (a 28 x 56
image) as two words ("three five").

    f_k = GRU(rows of tile k)'s final state       tile k = columns 28k .. 28k+27, k = 0, 1;
                                                   one encoder reads every tile's 28 rows of
                                                   28 pixels, as `rnnkit mnist` reads a digit
    f   = [f_0; f_1]                               f_1 = 0 for a single image
    s_0 = tanh(W_b f + b_b)                        rnnkit.models.Seq2Seq, one-to-many
    y_t ~ softmax(W_hy s_t + b_y)                  characters, from <bos> to <eos>

The caption's loss trains everything end to end: the decoder's backward returns dL/df and the
encoder's backward takes it (no digit labels are used). The vocabulary is the 26 letters,
space, <bos> and <eos>.

Data (rnnkit.apps.caption_data): an .npz as `rnnkit mnist` reads it (digits/mnist.npz). The
last `val_size` training images validate, the test images are scored by `evaluate` only.
Pairs are fixed and seeded (`pair_seed`): `train_pairs` pairs of training images, as many
pairs as validation images among those, and `test_pairs` pairs of test images; their indices
are saved in the run folder (pairs.safetensors). `--pairs {single,pair,mixed}` says what
trains and validates. `--shift S` moves every training tile by whole pixels drawn from [-S,
S] each epoch (the usual augmentation of MNIST readers); validation, evaluation and
prediction never shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.apps import common
from rnnkit.apps.caption_data import (BOS, EOS, MAX_TILES, NAMES, VOCAB, CaptionData,
                                      draw_pairs, examples, load_pairs, split_images,
                                      targets_of, tiles_of)
from rnnkit.apps.common import setting
from rnnkit.apps.mnist import load_images
from rnnkit.data.batch import Batch
from rnnkit.errors import RnnkitError, fail
from rnnkit.init import as_rng
from rnnkit.layers import BY_CELL
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import Seq2Seq
from rnnkit.models.decoding import beam_search, greedy
from rnnkit.optim import make_optimizer
from rnnkit.serialize import save_arrays
from rnnkit.train import TrainConfig

SUMMARY = "image captioning (one-to-many): spell the digits in one or two MNIST images"
CELLS = BY_CELL
MAX_LEN = 2 * max(map(len, NAMES)) + 2         # "three three" and <eos>


@dataclass
class CaptionConfig:
    data: str = setting("", "the images: an .npz file with x_train (M, 28, 28), y_train (M,), "
                        "x_test, y_test (as mnist.npz)")
    pairs: str = setting("mixed", "what trains and validates: single images, pairs side by "
                         "side, or both", ("single", "pair", "mixed"))
    train_pairs: int = setting(27500, "pairs made from the training images")
    test_pairs: int = setting(10000, "pairs made from the test images")
    pair_seed: int = setting(0, "seed of the pairs")
    val_size: int = setting(5000, "the last this many training images are held out for "
                            "validation (and as many pairs of them)")
    train_limit: int = setting(0, "train on only the first this many images; 0 = all")
    shift: int = setting(0, "training only: move each training tile by whole pixels drawn "
                         "from [-shift, shift] down and across, anew each epoch (zeros come "
                         "in at the edges); 0 = off", lo=0, hi=27)
    cell: str = setting("gru", "recurrent cell of encoder and decoder", common.CELL_CHOICES)
    hidden_size: int = setting(128, "units of the encoder (per direction)")
    bidirectional: bool = setting(False, "read each tile's rows both ways")
    embed_dim: int = setting(16, "size of each character's embedding")
    dec_hidden_size: int = setting(128, "units of the decoder")
    batch_size: int = setting(128, "captions per batch")
    optimizer: str = setting("adam", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(2e-3, "learning rate")
    schedule: str = setting("cosine", "learning-rate schedule", common.SCHEDULE_CHOICES)


Config = CaptionConfig


@dataclass
class EvaluateOptions:
    split: str = setting("test", "which images to caption", ("test", "val"))
    beam: int = setting(5, "beam width of the beam-search figures (greedy is always scored)")
    # 0: a caption's length follows from the number of images, and GNMT's normalisation
    # (alpha 0.6) made a weak model's beam add a second word to a single digit's name
    alpha: float = setting(0.0, "length normalisation of beam search (0 = none)")


@dataclass
class PredictOptions:
    beam: int = setting(0, "beam width; 0 = greedy")
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=5.0, val_every=0, patience=0, log_every=50, clip_norm=5.0)


# --- the model ------------------------------------------------------------------------------
class Captioner:
    """Parameters ``enc.l0[_reverse].*`` (the encoder reading a tile's rows) and ``dec.*`` (a
    Seq2Seq with feature_size = 2 dirs H). Inputs (tiles (N, 2, 28, 28) in [0, 1], present
    (N, 2) bool, tgt_in (N, T) ids); only present tiles are encoded.

    A tile's feature is the encoder's final state itself, not a Dense on it: bounded in
    [-1, 1], it cannot grow into the large constant that saturates the bridge's tanh (with a
    Dense head the encoder collapsed to one output for every image while the decoder learnt
    the letters' marginal, and dL/df vanished)."""

    def __init__(self, *, vocab_size: int = BOS + 2, cell: str = "gru", hidden_size: int = 128,
                 bidirectional: bool = False, embed_dim: int = 16, dec_hidden_size: int = 128,
                 dtype: str = "float32", seed: int | np.random.Generator | None = None):
        if cell not in CELLS:
            fail("cell", f"one of {tuple(CELLS)}", repr(cell))
        self.config = {"vocab_size": vocab_size, "cell": cell, "hidden_size": hidden_size,
                       "bidirectional": bidirectional, "embed_dim": embed_dim,
                       "dec_hidden_size": dec_hidden_size, "dtype": np.dtype(dtype).name}
        rng = as_rng(seed)
        self.dtype = np.dtype(dtype)
        self.encoder = CELLS[cell](28, hidden_size, 1, bidirectional=bidirectional,
                                   dtype=dtype, seed=rng)
        self.F = self.encoder.dirs * hidden_size
        self.decoder = Seq2Seq(tgt_vocab=vocab_size, feature_size=MAX_TILES * self.F,
                               embed_dim=embed_dim, hidden_size=dec_hidden_size, cell=cell,
                               dtype=dtype, seed=rng)
        parts = {"enc": self.encoder, "dec": self.decoder}
        self.params = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.grads.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def features(self, tiles, present, *, training=False, rng=None, grad=True):
        """-> f (N, 2F): each present tile's encoding in its slot, zeros elsewhere; cache."""
        present = np.asarray(present, bool)
        rows = np.asarray(tiles, self.dtype)[present]                      # (M, 28, 28)
        _, state, cache = self.encoder.forward(rows, None, None, training=training, rng=rng,
                                               grad=grad)
        h_n = state[0] if isinstance(state, tuple) else state              # (dirs, M, H)
        fk = np.concatenate(list(h_n), axis=1)                             # (M, dirs*H)
        f = np.zeros(present.shape + (self.F,), self.dtype)               # (N, 2, F)
        f[present] = fk
        return f.reshape(len(f), -1), (present, cache)

    def features_backward(self, df: np.ndarray, cache) -> None:
        present, enc_cache = cache
        dfk = df.reshape(present.shape + (self.F,))[present]               # (M, dirs*H)
        H = self.encoder.hidden_size
        dh_n = np.ascontiguousarray(dfk.reshape(len(dfk), -1, H).transpose(1, 0, 2))
        dstate = (dh_n, np.zeros_like(dh_n)) if self.encoder.has_cell_state else dh_n
        self.encoder.backward(None, dstate, enc_cache)

    def forward(self, inputs, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None, grad: bool = True):
        """(tiles, present, tgt_in), lengths (N,) of the target -> logits (N, T, V)."""
        tiles, present, tgt_in = inputs
        f, fcache = self.features(tiles, present, training=training, rng=rng, grad=grad)
        logits, state, dcache = self.decoder.forward((f, tgt_in), None, (None, lengths),
                                                     training=training, rng=rng, grad=grad)
        return logits, state, (None if not grad else (fcache, dcache))

    def backward(self, dlogits: np.ndarray, cache) -> None:
        fcache, dcache = cache
        self.features_backward(self.decoder.backward(dlogits, dcache), fcache)

    def caption(self, tiles, present, beam: int = 0, alpha: float = 0.0,
                chunk: int = 1000) -> list[str]:
        """Greedy (beam 0) or beam-search captions, `chunk` images at a time."""
        out = []
        for s in range(0, len(present), chunk):
            f, _ = self.features(tiles[s:s + chunk], present[s:s + chunk], grad=False)
            kw = dict(bos=BOS, eos=EOS, max_len=MAX_LEN)
            d = (beam_search(self.decoder, f, beam=beam, alpha=alpha, **kw) if beam
                 else greedy(self.decoder, f, **kw))
            out += [VOCAB.decode([t for t in toks if t < BOS]) for toks in d.tokens]
        return out


# --- training -------------------------------------------------------------------------------
def exact_match(model, data: CaptionData) -> tuple[float, float]:
    """(teacher-forced loss per character, greedy exact-match rate) over a data source."""
    loss, count, right = 0.0, 0, 0
    for batch in data.batches(0):
        logits, _, _ = model.forward(batch.inputs, None, batch.lengths, grad=False)
        n = int(batch.lengths.sum())
        loss += softmax_cross_entropy(logits, batch.targets, batch.lengths)[0] * n
        count += n
    said = model.caption(*tiles_of(data.images, data.ex))
    right = sum(a == b for a, b in zip(said, data.texts))
    return loss / max(count, 1), right / max(len(data), 1)


def _build(cfg: CaptionConfig, tcfg: TrainConfig, run_dir: Path, log):
    common.check_choices(cfg)
    parts = split_images(cfg)
    pairs = load_pairs(run_dir / "pairs.safetensors",
                        {name: len(parts[name][0]) for name in ("train", "val")})
    train = CaptionData(*parts["train"], examples(len(parts["train"][0]), pairs["train"],
                                                 cfg.pairs), cfg.batch_size, seed=tcfg.seed,
                        shift=cfg.shift)
    val = CaptionData(*parts["val"], examples(len(parts["val"][0]), pairs["val"], cfg.pairs),
                      500, shuffle=False)
    model = _model(cfg, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = common.ScoredTrainer(model, softmax_cross_entropy, optimizer, train, val,
                                   config=tcfg, run_dir=run_dir, log=log, score_fn=exact_match,
                                   score_name="exact")
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def _model(cfg: CaptionConfig, seed=None) -> Captioner:
    return Captioner(cell=cfg.cell, hidden_size=cfg.hidden_size, bidirectional=cfg.bidirectional,
                     embed_dim=cfg.embed_dim, dec_hidden_size=cfg.dec_hidden_size, seed=seed)


class _EncoderView:
    """The encoder as a model (forward, backward, zero_grad) for common.warm_up."""

    def __init__(self, model: Captioner):
        self.model = model

    def forward(self, x, state, lengths, **kw):
        return self.model.encoder.forward(x, state, lengths, **kw)

    def backward(self, dout, cache):
        return self.model.encoder.backward(dout, None, cache)

    def zero_grad(self):
        self.model.zero_grad()


def _finish(trainer, log) -> dict:
    # the kernels compile on the encoder's first tiles (the decoder uses the same ones)
    first = next(iter(trainer.train_data.batches(0)))
    tiles, present, _ = first.inputs
    common.warm_up(_EncoderView(trainer.model), Batch(tiles[present][:2], None), log)
    summary = trainer.fit()
    log(f"best validation exact match {-trainer.best_val:.4f} (weights in best.safetensors); "
        f"`rnnkit caption evaluate {trainer.run_dir}` captions the test images")
    return dict(summary, best_val_exact=-trainer.best_val)


def train(cfg: CaptionConfig, tcfg: TrainConfig, run_dir, log=print) -> dict:
    common.check_choices(cfg)
    parts = split_images(cfg)                   # a bad file is reported before the folder is made
    pairs = draw_pairs(cfg, parts)
    run_dir = common.new_run(run_dir)
    common.save_run_config(run_dir, cfg, tcfg, kind="caption")
    save_arrays(run_dir / "pairs.safetensors", pairs)
    trainer = _build(cfg, tcfg, run_dir, log)
    log(f"caption ({cfg.pairs}): {len(trainer.train_data)} training / "
        f"{len(trainer.val_data)} validation captions; run folder {run_dir}")
    return _finish(trainer, log)


def resume(run_dir, log=print, **train_overrides) -> dict:
    trainer = common.restore_run(run_dir, CaptionConfig, "caption", train_overrides,
                                 lambda cfg, tcfg, run: _build(cfg, tcfg, run, log), log)
    return _finish(trainer, log)


# --- using a run ----------------------------------------------------------------------------
def _load(run_dir, best: bool = True):
    run_dir, cfg, _, _ = common.load_run_config(run_dir, CaptionConfig, "caption")
    model = _model(cfg)
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, model


def _scores(said: list, truth: list) -> dict:
    """Exact-match rate and character error rate (edit distance / reference characters)."""
    from nltk import edit_distance
    edits = sum(edit_distance(a, b) for a, b in zip(said, truth))
    return {"exact": sum(a == b for a, b in zip(said, truth)) / len(truth),
            "cer": edits / sum(len(t) for t in truth)}


def evaluate(run_dir, log=print, split: str = "test", beam: int = 5,
             alpha: float = 0.0) -> dict:
    if not isinstance(beam, int) or beam < 1:
        fail("beam", "an integer >= 1", repr(beam))
    run_dir, cfg, model = _load(run_dir)
    images, labels = split_images(cfg)[split]
    pairs = load_pairs(run_dir / "pairs.safetensors", {split: len(images)})[split]
    result = {"app": "caption", "split": split, "beam": beam, "alpha": alpha}
    for kind in ("single", "pair"):
        ex = examples(len(images), pairs, kind)
        truth = targets_of(labels, ex)[3]
        tiles, present = tiles_of(images, ex)
        result[kind] = {"captions": len(ex),
                        "greedy": _scores(model.caption(tiles, present), truth),
                        "beam": _scores(model.caption(tiles, present, beam, alpha), truth)}
        log(f"{kind}: greedy exact {result[kind]['greedy']['exact']:.4f}, beam {beam} exact "
            f"{result[kind]['beam']['exact']:.4f}")
    return common.write_eval(run_dir, result)


def _read_tiles(part: str, test_images: np.ndarray) -> list:
    """One piece of an input: a test-set index or an .npy image (28 x 28 or 28 x 56)."""
    if part.strip().lstrip("-").isdigit():
        i = int(part)
        if not 0 <= i < len(test_images):
            fail("input", f"a test image index in [0, {len(test_images) - 1}]", repr(part))
        return [test_images[i]]
    path = Path(part)
    if path.suffix.lower() != ".npy" or not path.is_file():
        fail("input", "a test image index, an .npy image file, or two of them joined by ','",
             f"{part!r}" + ("" if path.is_file() else " (no such file)"))
    try:
        img = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise RnnkitError(f"input: expected an .npy image, got {part!r} ({e})") from None
    if img.ndim != 2 or img.shape[0] != 28 or img.shape[1] not in (28, 56) \
            or img.dtype.kind not in "uif" or not np.isfinite(img).all():
        fail("input", "an image of 28 x 28 or 28 x 56 finite pixels",
             f"{part!r} of shape {img.shape}, dtype {img.dtype}")
    img = img.astype(np.float64)
    if img.max() <= 1.0:                  # [0, 1] pixels as well as [0, 255]
        img = img * 255
    img = np.clip(img, 0, 255).astype(np.uint8)
    return [img[:, k:k + 28] for k in range(0, img.shape[1], 28)]


def predict(run_dir, inputs: list, *, beam: int = 0, best: bool = True) -> list:
    if not isinstance(beam, int) or beam < 0:
        fail("beam", "an integer >= 0 (0 = greedy)", repr(beam))
    _, cfg, model = _load(run_dir, best)
    test_images = load_images(cfg.data)["x_test"]
    images, ex = [], []
    for item in inputs:
        tiles = [t for part in item.split(",") for t in _read_tiles(part, test_images)]
        if len(tiles) > MAX_TILES:
            fail("input", f"at most {MAX_TILES} images side by side", f"{item!r}, {len(tiles)}")
        ex.append([len(images) + k if k < len(tiles) else -1 for k in range(MAX_TILES)])
        images += tiles
    said = model.caption(*tiles_of(np.stack(images), np.array(ex)), beam=beam)
    return [{"input": item, "caption": c, "text": f"{c}\t{item}"}
            for item, c in zip(inputs, said)]
