"""Images as sequences (many-to-one): MNIST digits read row by row, 28 steps of 28 pixels.

Data: an .npz with x_train (M, 28, 28) uint8, y_train (M,), x_test, y_test (as
digits/mnist.npz). The last `val_size` training images are held out for validation (model
selection and early stopping); the test images are scored only by `evaluate`. Pixels are
scaled to [0, 1]. With ``--order permuted`` each image is read pixel by pixel (784 steps of
one value) in a fixed random order (Le et al. 2015), the long-memory variant.

Prediction inputs are image files (.png, or .npy holding a 28 x 28 array; dark digit on a
light background is inverted automatically) or ``test:INDEX`` for an image of the test set.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.apps import common
from rnnkit.apps.classifier import (POOLINGS, SequenceClassifier, accuracy_trainer, finish,
                                    probabilities, score)
from rnnkit.apps.common import setting
from rnnkit.data import ArrayDataset
from rnnkit.errors import RnnkitError, fail
from rnnkit.optim import make_optimizer
from rnnkit.train import TrainConfig

SUMMARY = "image classification: MNIST digits read as sequences of pixel rows"
FORMAT = "an .npz file with x_train (M, 28, 28), y_train (M,), x_test, y_test (as mnist.npz)"
KEYS = ("x_train", "y_train", "x_test", "y_test")
DATA_SET = "mnist"          # read from the cache (`rnnkit data get mnist`) when --data is ''


@dataclass
class MnistConfig:
    data: str = setting("", f"the images: {FORMAT}; or a data set's name; empty = the "
                        f"cached {DATA_SET!r} (rnnkit data get {DATA_SET})")
    order: str = setting("rows", "how an image becomes a sequence: rows (28 steps of 28 "
                         "pixels) or permuted (784 single pixels in a fixed random order)",
                         ("rows", "permuted"))
    val_size: int = setting(5000, "the last this many training images are held out for "
                            "validation")
    train_limit: int = setting(0, "train on only the first this many images; 0 = all")
    cell: str = setting("lstm", "recurrent cell", common.CELL_CHOICES)
    hidden_size: int = setting(128, "units per recurrent layer")
    num_layers: int = setting(1, "stacked recurrent layers")
    bidirectional: bool = setting(False, "read each sequence both ways")
    pooling: str = setting("last", "how the states become one vector", POOLINGS)
    dropout: float = setting(0.0, "dropout before the output layer")
    batch_size: int = setting(128, "images per batch")
    optimizer: str = setting("adam", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(2e-3, "learning rate")
    schedule: str = setting("cosine", "learning-rate schedule", common.SCHEDULE_CHOICES)


Config = MnistConfig


@dataclass
class EvaluateOptions:
    split: str = setting("test", "which images to score", ("test", "val"))


@dataclass
class PredictOptions:
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=10.0, val_every=0, patience=0, log_every=50, clip_norm=5.0)


def load_images(path: str) -> dict:
    p = common.require_file(path, FORMAT, DATA_SET)
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                fail(str(p), f"{FORMAT} (arrays named {list(KEYS)})", f"arrays {f.files}")
            d = {k: f[k] for k in KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RnnkitError(f"{p}: expected {FORMAT}, got a file numpy cannot read "
                          f"({type(e).__name__}: {e})") from None
    for part in ("train", "test"):
        x, y = d[f"x_{part}"], d[f"y_{part}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
            fail(str(p), FORMAT, f"x_{part} {x.shape}, y_{part} {y.shape}")
    return d


def _sequences(x: np.ndarray, order: str) -> np.ndarray:
    """uint8 images (M, 28, 28) -> float32 sequences (M, 28, 28) or (M, 784, 1)."""
    x = x.astype(np.float32) / np.float32(255)
    if order == "rows":
        return x
    perm = np.random.default_rng(0).permutation(784)           # fixed: part of the task
    return x.reshape(len(x), 784)[:, perm, None]


def _parts(cfg: MnistConfig):
    d = load_images(cfg.data)
    x, y = d["x_train"], d["y_train"].astype(np.int64)
    if not 0 < cfg.val_size < len(x):
        fail("val_size", f"an integer in (0, {len(x)})", cfg.val_size)
    x_tr, y_tr = x[:-cfg.val_size], y[:-cfg.val_size]
    if cfg.train_limit:
        x_tr, y_tr = x_tr[:cfg.train_limit], y_tr[:cfg.train_limit]
    return {"train": (_sequences(x_tr, cfg.order), y_tr),
            "val": (_sequences(x[-cfg.val_size:], cfg.order), y[-cfg.val_size:]),
            "test": (_sequences(d["x_test"], cfg.order), d["y_test"].astype(np.int64))}


def _model(cfg: MnistConfig, seed=None) -> SequenceClassifier:
    return SequenceClassifier(input_size=28 if cfg.order == "rows" else 1,
                              hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                              cell=cfg.cell, bidirectional=cfg.bidirectional,
                              pooling=cfg.pooling, dropout=cfg.dropout, num_classes=10,
                              seed=seed)


def _build(cfg, tcfg, run_dir, log):
    common.check_choices(cfg)
    parts = _parts(cfg)
    train = ArrayDataset(*parts["train"], cfg.batch_size, seed=tcfg.seed)
    val = ArrayDataset(*parts["val"], 500, shuffle=False)
    model = _model(cfg, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    return accuracy_trainer(model, optimizer, train, val, cfg, tcfg, run_dir, log)


def _finish(trainer, log) -> dict:
    return finish(trainer, log, "mnist", "the test images")


def train(cfg: MnistConfig, tcfg: TrainConfig, run_dir, log=print) -> dict:
    load_images(cfg.data)                     # a bad file is reported before the folder is made
    run_dir = common.new_run(run_dir)
    common.save_run_config(run_dir, cfg, tcfg, kind="mnist")
    trainer = _build(cfg, tcfg, run_dir, log)
    log(f"mnist ({cfg.order}): {len(trainer.train_data)} training / {cfg.val_size} validation "
        f"images, {cfg.cell.upper()} {cfg.hidden_size}; run folder {run_dir}")
    return _finish(trainer, log)


def resume(run_dir, log=print, **train_overrides) -> dict:
    trainer = common.restore_run(run_dir, MnistConfig, "mnist", train_overrides,
                                 lambda cfg, tcfg, run: _build(cfg, tcfg, run, log), log)
    return _finish(trainer, log)


def _load(run_dir, best: bool = True):
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, MnistConfig, "mnist")
    model = _model(cfg)
    common.load_weights(model, run_dir, best)
    return run_dir, cfg, model


def evaluate(run_dir, log=print, split: str = "test") -> dict:
    run_dir, cfg, model = _load(run_dir)
    x, y = _parts(cfg)[split]
    loss, accuracy = score(model, ArrayDataset(x, y, 500, shuffle=False))
    return common.write_eval(run_dir, {"app": "mnist", "order": cfg.order, "split": split,
                                       "images": len(y), "accuracy": accuracy, "loss": loss})


def _read_image(item: str, cfg: MnistConfig) -> np.ndarray:
    """An input line -> a uint8 image (28, 28)."""
    if item.startswith("test:"):
        x = load_images(cfg.data)["x_test"]
        try:
            return x[int(item[5:])]
        except (ValueError, IndexError):
            fail("input", f"test:INDEX with INDEX in [0, {len(x) - 1}]", repr(item))
    path = Path(item)
    if not path.is_file():
        fail("input", "a .png or .npy image file of 28 x 28 pixels, or test:INDEX",
             f"{item!r} (no such file)")
    try:
        if path.suffix.lower() == ".npy":
            img = np.load(path, allow_pickle=False).astype(np.float64)
        else:
            import matplotlib.image
            img = matplotlib.image.imread(path).astype(np.float64)
    except (OSError, ValueError, SyntaxError) as e:
        raise RnnkitError(f"input: expected a .png or .npy image, got {item!r} ({e})") from None
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)                      # grey
    if img.shape != (28, 28):
        fail("input", "an image of 28 x 28 pixels", f"{item!r} of shape {img.shape}")
    if img.max() <= 1.0:
        img = img * 255
    if img.mean() > 127:                                     # dark digit on light paper
        img = 255 - img
    return np.clip(img, 0, 255).astype(np.uint8)


def predict(run_dir, inputs: list, *, best: bool = True) -> list:
    _, cfg, model = _load(run_dir, best)
    images = np.stack([_read_image(item, cfg) for item in inputs])
    p = probabilities(model.forward(_sequences(images, cfg.order), grad=False)[0])
    return [{"input": item, "digit": int(q.argmax()), "probability": float(q.max()),
             "text": f"{int(q.argmax())}\t{q.max():.3f}\t{item}"} for item, q in zip(inputs, p)]
