"""The caption app's data: digit names as captions, the seeded pairs of images side by side,
tiles made per batch from the uint8 images (shifted at random for training when asked), and
the split of mnist.npz into training, validation and test images."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from rnnkit.apps.mnist import load_images
from rnnkit.data import CharVocab
from rnnkit.data.batch import Batch
from rnnkit.data.batching import check_start, epoch_rng
from rnnkit.errors import fail
from rnnkit.serialize import load_arrays

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCAB = CharVocab(string.ascii_lowercase + " ")
BOS, EOS = len(VOCAB), len(VOCAB) + 1          # after the 27 characters: 29 tokens
MAX_TILES = 2


def caption_of(digits) -> str:
    return " ".join(NAMES[d] for d in digits)


def make_pairs(m: int, n: int, seed: int, part: int) -> np.ndarray:
    """n pairs (n, 2) of image indices in [0, m), fixed by (seed, part)."""
    return np.random.default_rng([seed, part]).integers(0, m, (n, 2))


def examples(m: int, pairs: np.ndarray, mode: str) -> np.ndarray:
    """(K, 2) image indices per example, -1 where a single image has no second tile."""
    singles = np.stack([np.arange(m), np.full(m, -1)], axis=1)
    return {"single": singles, "pair": pairs, "mixed": np.concatenate([singles, pairs])}[mode]


def tiles_of(images: np.ndarray, ex: np.ndarray):
    """uint8 images (M, 28, 28), examples (K, 2) -> tiles (K, 2, 28, 28) float32, present."""
    present = ex >= 0
    tiles = images[np.where(present, ex, 0)].astype(np.float32) / np.float32(255)
    tiles[~present] = 0
    return tiles, present


def shifted(tiles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """tiles (K, 28, 28), offsets (K, 2) whole pixels (down, across) -> each tile moved by
    its offset, zeros where it moved away from: out[k, i, j] = tiles[k, i - dy, j - dx]."""
    s = int(np.abs(offsets).max(initial=0))
    padded = np.pad(tiles, ((0, 0), (s, s), (s, s)))
    rows = s - offsets[:, :1] + np.arange(28)                               # (K, 28)
    cols = s - offsets[:, 1:] + np.arange(28)
    return padded[np.arange(len(tiles))[:, None, None], rows[:, :, None], cols[:, None, :]]


def targets_of(labels: np.ndarray, ex: np.ndarray):
    """-> tgt_in (K, T) (<bos> + caption), tgt_out (K, T) (caption + <eos>), lengths (K,)."""
    texts = [caption_of(labels[e[e >= 0]]) for e in ex]
    lengths = np.array([len(t) + 1 for t in texts], np.int64)
    T = int(lengths.max())
    tgt_out = np.full((len(ex), T), EOS, np.int64)
    for i, t in enumerate(texts):
        tgt_out[i, :len(t)] = VOCAB.encode(t)
    tgt_in = np.concatenate([np.full((len(ex), 1), BOS), tgt_out[:, :-1]], axis=1)
    return tgt_in, tgt_out, lengths, texts


class CaptionData:
    """Examples (index pairs into `images`) in batches; the order and the tiles' random
    shifts (`shift` > 0: training data only) are functions of (seed, epoch), so that training
    resumes exactly. Tiles are made per batch from uint8 images."""

    stateful = False

    def __init__(self, images, labels, ex, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, shift: int = 0):
        self.images, self.ex, self.batch_size = images, ex, int(batch_size)
        self.seed, self.shuffle, self.shift = int(seed), shuffle, int(shift)
        self.tgt_in, self.tgt_out, self.lengths, self.texts = targets_of(labels, ex)

    def __len__(self) -> int:
        return len(self.ex)

    def num_batches(self, epoch: int = 0) -> int:
        return -(-len(self.ex) // self.batch_size)

    def batches(self, epoch: int, start: int = 0):
        order = (epoch_rng(self.seed, epoch).permutation(len(self)) if self.shuffle
                 else np.arange(len(self)))
        # every example's offsets for the epoch at once (a stream apart from the order's),
        # so that a resumed epoch draws the same ones
        offsets = np.random.default_rng([self.seed, epoch, 1]).integers(
            -self.shift, self.shift + 1, (len(self), MAX_TILES, 2)) if self.shift else None
        for s in range(check_start(start, self.num_batches(epoch)) * self.batch_size,
                       len(self), self.batch_size):
            rows = order[s:s + self.batch_size]
            L = self.lengths[rows]
            tiles, present = tiles_of(self.images, self.ex[rows])
            if self.shift:
                tiles = shifted(tiles.reshape(-1, 28, 28),
                                offsets[rows].reshape(-1, 2)).reshape(tiles.shape)
            yield Batch(inputs=(tiles, present, self.tgt_in[rows, :L.max()]),
                        targets=self.tgt_out[rows, :L.max()], lengths=L)


def split_images(cfg):
    """-> {part: (images, labels)} with train, val and test."""
    d = load_images(cfg.data)
    x, y = d["x_train"], d["y_train"].astype(np.int64)
    if not 0 < cfg.val_size < len(x):
        fail("val_size", f"an integer in (0, {len(x)})", cfg.val_size)
    n = len(x) - cfg.val_size
    if cfg.train_limit:
        n = min(n, cfg.train_limit)
    return {"train": (x[:n], y[:n]), "val": (x[-cfg.val_size:], y[-cfg.val_size:]),
            "test": (d["x_test"], d["y_test"].astype(np.int64))}


def draw_pairs(cfg, parts: dict) -> dict:
    counts = {"train": cfg.train_pairs, "val": cfg.val_size, "test": cfg.test_pairs}
    for name in ("train", "test"):
        if counts[name] < 1:
            fail(f"{name}_pairs", "an integer >= 1", counts[name])
    return {name: make_pairs(len(parts[name][0]), n, cfg.pair_seed, i)
            for i, (name, n) in enumerate(counts.items())}


def load_pairs(path: Path, images: dict) -> dict:
    """The run's image pairs: (n, 2) integer indices into each split's images."""
    pairs = load_arrays(path)
    for name, m in images.items():
        p = pairs.get(name)
        if p is None or p.ndim != 2 or p.shape[1] != 2 or p.dtype.kind not in "iu" or \
                (p.size and (p.min() < 0 or p.max() >= m)):
            fail(f"{path}: {name}", f"pairs (n, 2) of image indices in [0, {m})",
                 "none" if p is None else f"{p.dtype} {p.shape}" + (
                     f" in [{p.min()}, {p.max()}]" if p.size and p.dtype.kind in "iuf" else ""))
    return pairs
