"""Sentence pairs for translation: reading a TSV, word tokens and back, and batches for Seq2Seq.

A parallel file is UTF-8 TSV with a header naming its languages (``en<TAB>fr``) and one
sentence pair a line. Tokens are words and punctuation marks, lower-cased, with an elided
word kept apart from the next one and its apostrophe ("l'abîme" -> "l'" "abîme", "God's" ->
"god'" "s"), so that French articles do not multiply the vocabulary by the words they
precede. `detokenize` joins tokens back into text a person reads (and sacrebleu scores).

`ParallelDataset` is the data source a Trainer consumes for Seq2Seq: batches of
``inputs = (src, tgt_in)``, ``targets = tgt_out``, ``lengths = (src_len, tgt_len)`` with
``tgt_in = <bos> y_1 .. y_n`` and ``tgt_out = y_1 .. y_n <eos>``; pairs of similar target
length share a batch, in an order fixed by (seed, epoch) so that a resumed run sees the same
batches.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

from rnnkit.data.batch import Batch
from rnnkit.data.batching import bucket_batches, check_start, epoch_rng, pad_sequences
from rnnkit.data.vocab import WordVocab
from rnnkit.errors import RnnkitError, fail

FORMAT = "a UTF-8 TSV file with a header row naming two languages (e.g. en<TAB>fr) and one " \
         "sentence pair a line"
# an elided word with its apostrophe, a word, or any other non-space character alone
TOKEN = re.compile(r"\w+['\u2019](?=\w)|\w+|[^\w\s]")
ATTACH_LEFT = set(".,;:!?)]}%»\"")       # no space before these
ATTACH_RIGHT = set("([{«¿¡")             # no space after these


def tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation marks, elisions split after the apostrophe."""
    return TOKEN.findall(text.lower().replace("\u2019", "'"))


def detokenize(words: list[str]) -> str:
    """Tokens back into text: punctuation against its word, elisions against the next word,
    hyphenated words (au-dessus) joined."""
    out = ""
    glue = True                            # no space before the next token
    for w in words:
        if out and not glue and w not in ATTACH_LEFT and w != "-":
            out += " "
        out += w
        glue = w in ATTACH_RIGHT or w == "-" or w.endswith("'")
    return out


def read_pairs(path: str, source: str, target: str = "") -> tuple[list, list, list]:
    """(source sentences, target sentences, the file's line numbers) of a parallel TSV; the
    columns named `source` and `target` ('' = the other of two). One clear line for a
    missing or malformed file or an empty sentence."""
    p = Path(path) if path else None
    if p is None or not p.is_file():
        fail("--data", FORMAT, f"{path!r} (no such file)" if path else "no path (pass --data)")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (UnicodeDecodeError, csv.Error) as e:
        raise RnnkitError(f"{p}: expected {FORMAT}, got {e}") from None
    header = rows[0] if rows else []
    if len(header) < 2:
        fail(str(p), FORMAT, f"a header {header} (fewer than two columns)")
    if source not in header:
        fail("source", f"a column of {p.name}: one of {header}", repr(source))
    if not target:
        others = [h for h in header if h != source]
        if len(others) != 1:
            fail("target", f"one of {others} (the file has more than two columns)", "''")
        target = others[0]
    if target not in header or target == source:
        fail("target", f"a column of {p.name} other than {source!r}: one of {header}",
             repr(target))
    i, j = header.index(source), header.index(target)
    src, tgt, lines = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            fail(f"{p}:{line}", f"{len(header)} tab-separated columns", f"{len(row)}")
        for col, text in ((source, row[i]), (target, row[j])):
            if not tokens(text):
                fail(f"{p}:{line}", f"a non-empty {col} sentence", repr(text))
        src.append(row[i])
        tgt.append(row[j])
        lines.append(line)
    if len(src) < 10:
        fail(str(p), f"{FORMAT} with at least 10 pairs", f"{len(src)} pairs")
    return src, tgt, lines


def build_vocab(sentences: list, min_freq: int, max_size: int, target: bool) -> WordVocab:
    """A word vocabulary of tokenised sentences: words seen >= min_freq times, most frequent
    first; <pad>, <unk> and, for a target, <bos> and <eos>."""
    if not isinstance(min_freq, int) or min_freq < 1:
        fail("min_freq", "an integer >= 1", repr(min_freq))
    specials = 2 + 2 * target
    if not isinstance(max_size, int) or max_size <= specials:
        fail("max_vocab", f"an integer > {specials}", repr(max_size))
    counts = Counter(w for s in sentences for w in s)
    kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    if not kept:            # a vocabulary of only <unk>: every sentence would read the same
        fail("min_freq", "a count that keeps at least one word (the most frequent is seen "
             f"{max(counts.values(), default=0)} times)", repr(min_freq))
    return WordVocab(kept[:max_size - specials], unk=True, bos=target, eos=target)


def encode(vocab: WordVocab, words: list) -> np.ndarray:
    """Ids (T,) of tokens, unknown ones as <unk>, without <bos>/<eos>."""
    return vocab.encode(list(words), add_specials=False)


class ParallelDataset:
    """Source and target id sequences (without <bos>/<eos>) as Seq2Seq training batches."""

    stateful = False

    def __init__(self, src: list, tgt: list, batch_size: int, *, bos: int, eos: int,
                 seed: int = 0, shuffle: bool = True):
        if len(src) != len(tgt) or not src:
            fail("tgt", f"{len(src)} target sequences (one per source, at least one)",
                 f"{len(tgt)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            fail("batch_size", "an integer >= 1", repr(batch_size))
        for name, seqs in (("src", src), ("tgt", tgt)):
            empty = next((i for i, s in enumerate(seqs) if len(s) == 0), None)
            if empty is not None:
                fail(f"{name}[{empty}]", "at least one token", "none")
        self.src = [np.asarray(s, np.int64) for s in src]
        self.tgt = [np.concatenate([[bos], t, [eos]]).astype(np.int64) for t in tgt]
        self.lengths = np.array([len(t) - 1 for t in self.tgt], np.int64)
        self.batch_size, self.seed, self.shuffle = batch_size, int(seed), shuffle
        epoch_rng(self.seed, 0)

    def __len__(self) -> int:
        return len(self.src)

    def num_batches(self, epoch: int = 0) -> int:
        return -(-len(self.src) // self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        rng = epoch_rng(self.seed, epoch) if self.shuffle else None
        plan = bucket_batches(self.lengths, self.batch_size, rng)
        return self._padded(plan[check_start(start, len(plan)):])

    def _padded(self, plan) -> Iterator[Batch]:
        for idx in plan:
            src, src_len = pad_sequences([self.src[i] for i in idx])
            tgt, tgt_len = pad_sequences([self.tgt[i] for i in idx])
            yield Batch(inputs=(src, tgt[:, :-1]), targets=tgt[:, 1:],
                        lengths=(src_len, tgt_len - 1))
