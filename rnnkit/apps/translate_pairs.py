"""The translate app's pairs: which lines of a parallel file are kept, the one seeded cut
into test, validation and training pairs, and the run folder's record of it (test.tsv,
val.tsv, split.json with each part's line numbers and the held-out files' SHA-256), so that
evaluation reads the same pairs whatever happens to the data file."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from rnnkit import schema
from rnnkit.data.fetch import resolve
from rnnkit.data.parallel import read_pairs
from rnnkit.errors import fail
from rnnkit.serialize import load_json

DATA_SET = "en_fr_bible"    # read from the cache when --data is '' (rnnkit data get)


def select_pairs(cfg) -> tuple[list, list, list, list]:
    """(sources, targets, line numbers, positions of the pairs within max_words) of the
    file's pairs short enough to train on: the held-out pairs are drawn from the latter."""
    src, tgt, lines = read_pairs(str(resolve(cfg.data, DATA_SET)), cfg.source, cfg.target)
    if not isinstance(cfg.max_words, int) or cfg.max_words < 1:
        fail("max_words", "an integer >= 1", repr(cfg.max_words))
    if not isinstance(cfg.train_max_words, int) or cfg.train_max_words < 0:
        fail("train_max_words", "an integer >= 0", repr(cfg.train_max_words))
    keep = [k for k in range(len(src))
            if _fits(src[k], tgt[k], max(cfg.max_words, cfg.train_max_words))]
    short = [i for i, k in enumerate(keep) if _fits(src[k], tgt[k], cfg.max_words)]
    return [src[k] for k in keep], [tgt[k] for k in keep], [lines[k] for k in keep], short


def _fits(source: str, target: str, words: int) -> bool:
    return len(source.split()) <= words and len(target.split()) <= words * 3 // 2


def split_pairs(n: int, test: int, val: int, seed: int) -> dict:
    """Positions of the test, validation and training pairs: one seeded permutation, cut."""
    for name, size in (("test_size", test), ("val_size", val)):
        if not isinstance(size, int) or size < 1:
            fail(name, "an integer >= 1", repr(size))
    if test + val >= n:
        fail("test_size + val_size", f"fewer than the {n} pairs kept", f"{test + val}")
    order = np.random.default_rng(seed).permutation(n)
    return {"test": sorted(order[:test].tolist()), "val": sorted(order[test:test + val].tolist()),
            "train": sorted(order[test + val:].tolist())}


def write_tsv(path: Path, header: tuple, rows) -> None:
    """Lines of tab-separated columns, as read_pairs reads them (no quoting: the sentences
    came from such a file, so none holds a tab or a line break)."""
    path.write_text("".join("\t".join(r) + "\n" for r in [header, *rows]), encoding="utf-8")


def run_file(run_dir: Path, name: str) -> Path:
    path = run_dir / name
    if not path.is_file():
        fail("RUN", f"a run folder with {name} (written by `rnnkit translate train`)",
             f"{str(run_dir)!r} without it")
    return path


def held_out(run_dir: Path, split: str) -> tuple[list, list]:
    path = run_file(run_dir, f"{split}.tsv")
    digest = load_split(run_dir).get("sha256", {}).get(split)
    # a changed byte in held-out text is other valid text: the digest tells (runs made
    # before it was stored have none)
    if digest is not None and digest != sha256(path):
        fail(str(path), f"the {split} pairs written at training (sha256 in split.json)",
             "a changed file")
    src, tgt, _ = read_pairs(str(path), "source", "target")
    return src, tgt


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# split.json: the data file's line numbers (from 2, after the header) of each part
SPLIT = {"pairs": schema.Int(10), "seed": schema.Int(0), "max_source_tokens": schema.Int(1),
         **{part: schema.ListOf(schema.Int(2)) for part in ("train", "val", "test")},
         "sha256": schema.Optional({"test": str, "val": str})}


def load_split(run_dir: Path) -> dict:
    path = run_file(run_dir, "split.json")
    split = schema.check(load_json(path), SPLIT, str(path))
    lines = split["train"] + split["val"] + split["test"]
    if len(set(lines)) != len(lines) or not split["train"]:
        fail(str(path), "distinct line numbers, some of them training pairs",
             f"{len(lines) - len(set(lines))} repeated, {len(split['train'])} training")
    return split


def training_pairs(cfg, run_dir: Path) -> tuple[list, list]:
    src, tgt, lines, short = select_pairs(cfg)
    split = load_split(run_dir)
    at = {line: k for k, line in enumerate(lines)}
    missing = [line for line in split["train"] if line not in at]
    if missing or split["pairs"] != len(short):
        fail(cfg.data, f"the {split['pairs']} pairs the run was split from (as "
             f"{run_dir / 'split.json'} lists them)", f"{len(short)} pairs" +
             (f", no pair on line(s) {missing[:3]}" if missing else "") +
             " (the file changed since training, or split.json did)")
    return [src[at[line]] for line in split["train"]], [tgt[at[line]] for line in split["train"]]
