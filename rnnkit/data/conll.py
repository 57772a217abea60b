"""CoNLL-2003 named-entity data: the file format, vocabularies from the training split, tags.

The format, one token a line, columns separated by whitespace:

    EU NNP B-NP B-ORG          word POS chunk NER (only the first and the last are read)
    rejects VBZ B-VP O
                               a blank line ends a sentence
    -DOCSTART- -X- -X- O       a document break: not a sentence

NER tags are IOB2 (``O``, ``B-TYPE``, ``I-TYPE``). Vocabularies (words, characters, tags) are
built from the training split only, so that validation and test words the model never saw
stay unknown, as they are at prediction time. Word ids for unknown words are ``<unk>``; the
character-level part of the tagger still reads their spelling.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from rnnkit.data.batch import Batch
from rnnkit.data.batching import bucket_batches, check_start, epoch_rng, pad_sequences
from rnnkit.data.vocab import CharVocab, WordVocab
from rnnkit.errors import RnnkitError, fail

FORMAT_HELP = ("CoNLL-2003 format: one token a line, whitespace-separated columns "
               "`word POS chunk NER` (word first, IOB2 tag last), a blank line between "
               "sentences, `-DOCSTART-` lines between documents")
DOCSTART = "-DOCSTART-"
TAG_PATTERN = re.compile(r"^(O|[BI]-\S+)$")
UNK_CHAR = "\ufffd"                  # unknown characters at prediction time
_DIGIT = re.compile(r"\d")

# Casing classes of a word (Collobert et al. 2011; Reimers & Gurevych 2017): a feature the
# lower-cased word embedding loses and the character model has to relearn otherwise.
CASINGS = ("pad", "numeric", "mostly_numeric", "all_lower", "all_upper", "initial_upper",
           "contains_digit", "other")


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]


def read_conll(path: str | Path) -> list[Sentence]:
    """Sentences of a CoNLL file; RnnkitError naming the file (and line) if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"data: expected a file in {FORMAT_HELP}, got {str(path)!r} "
                          "(no such file)")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as e:
        raise RnnkitError(f"{path}: expected UTF-8 text in {FORMAT_HELP}, got undecodable "
                          f"bytes ({e.reason} at byte {e.start})") from None
    sentences, words, tags = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if words:
                sentences.append(Sentence(words, tags))
                words, tags = [], []
            continue
        if len(fields) < 2:
            raise RnnkitError(f"{path}, line {number}: expected a token line `word ... TAG` "
                              f"with at least 2 columns ({FORMAT_HELP}), got {line!r}")
        if not TAG_PATTERN.match(fields[-1]):
            raise RnnkitError(f"{path}, line {number}: expected an IOB2 tag (O, B-TYPE or "
                              f"I-TYPE) in the last column, got {fields[-1]!r}")
        words.append(fields[0])
        tags.append(fields[-1])
    if words:
        sentences.append(Sentence(words, tags))
    if not sentences:
        raise RnnkitError(f"{path}: expected at least one sentence in {FORMAT_HELP}, got none")
    return sentences


def normalise_word(word: str, lower_digits: bool = True) -> str:
    """The word embedding's key: lower-cased with every digit 0 (1996-08-22 -> 0000-00-00)."""
    return _DIGIT.sub("0", word.lower()) if lower_digits else word


def casing(word: str) -> int:
    """Index into CASINGS of a word's casing class (never 0, which pads)."""
    digits = sum(c.isdigit() for c in word)
    if word.isdigit():
        kind = "numeric"
    elif digits / max(len(word), 1) > 0.5:
        kind = "mostly_numeric"
    elif word.islower():
        kind = "all_lower"
    elif word.isupper():
        kind = "all_upper"
    elif word[:1].isupper():
        kind = "initial_upper"
    elif digits:
        kind = "contains_digit"
    else:
        kind = "other"
    return CASINGS.index(kind)


def build_word_vocab(sentences: Iterable[Sentence], min_freq: int = 1,
                     lower_digits: bool = True) -> tuple[WordVocab, np.ndarray]:
    """Words of the training sentences seen >= min_freq times (after normalisation), most
    frequent first, with ``<pad>`` = 0 and ``<unk>`` = 1; and the (V,) count of each id."""
    if not isinstance(min_freq, int) or min_freq < 1:
        fail("min_freq", "an integer >= 1", repr(min_freq))
    counts = Counter(normalise_word(w, lower_digits) for s in sentences for w in s.words)
    kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    vocab = WordVocab(kept, unk=True, lower=False)
    freq = np.array([0, 0] + [counts[w] for w in kept], np.int64)
    return vocab, freq


def build_char_vocab(sentences: Iterable[Sentence]) -> CharVocab:
    """The characters of the training words, with an unknown character for the rest."""
    return CharVocab({c for s in sentences for w in s.words for c in w}, unk=UNK_CHAR)


class TagSet:
    """IOB2 tags <-> ids, in sorted order (``O`` included)."""

    def __init__(self, tags: Sequence[str]):
        bad = [t for t in tags if not TAG_PATTERN.match(t)]
        if bad:
            fail("tags", "IOB2 tags (O, B-TYPE, I-TYPE)", f"{bad[:5]}")
        self.tags = sorted(set(tags) | {"O"})
        self.index = {t: i for i, t in enumerate(self.tags)}

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sentence]) -> TagSet:
        return cls([t for s in sentences for t in s.tags])

    def __len__(self) -> int:
        return len(self.tags)

    def encode(self, tags: Sequence[str]) -> np.ndarray:
        unknown = [t for t in tags if t not in self.index]
        if unknown:
            fail("tags", f"tags seen in training {self.tags}", f"unknown {unknown[0]!r}")
        return np.array([self.index[t] for t in tags], np.int64)

    def decode(self, ids) -> list[str]:
        return [self.tags[int(i)] for i in ids]


@dataclass
class TaggerInputs:
    """One batch of sentences as the tagger reads them (N sentences, T words, U distinct words
    of at most L characters): each distinct word's characters are read once per batch."""
    words: np.ndarray          # (N, T) word ids (0 = padding)
    cases: np.ndarray          # (N, T) casing ids (0 = padding)
    chars: np.ndarray          # (U, L) character ids of the batch's distinct words
    char_lengths: np.ndarray   # (U,) characters in each distinct word
    char_index: np.ndarray     # (N, T) row of `chars` for each word (0 at padding)


class Encoder:
    """Words -> TaggerInputs with the training split's word and character vocabularies."""

    def __init__(self, words: WordVocab, chars: CharVocab, lower_digits: bool = True):
        self.words, self.chars, self.lower_digits = words, chars, lower_digits

    def word_ids(self, words: Sequence[str]) -> np.ndarray:
        unk = self.words.unk_id
        return np.array([self.words.index.get(normalise_word(w, self.lower_digits), unk)
                         for w in words], np.int64)

    def batch(self, sentences: Sequence[Sequence[str]], word_ids: Sequence[np.ndarray] | None
              = None) -> tuple[TaggerInputs, np.ndarray]:
        """Pad a batch of tokenised sentences -> (inputs, lengths (N,)); `word_ids` overrides
        the looked-up ids (training replaces some rare words by <unk>)."""
        N = len(sentences)
        lengths = np.array([len(s) for s in sentences], np.int64)
        if N == 0 or lengths.min() < 1:
            fail("sentences", "at least one sentence, each of at least one word",
                 f"{N} sentences, lengths {lengths.tolist()[:10]}")
        T = int(lengths.max())
        words = np.zeros((N, T), np.int64)
        cases = np.zeros((N, T), np.int64)
        char_index = np.zeros((N, T), np.int64)
        distinct: dict[str, int] = {}
        for n, sentence in enumerate(sentences):
            words[n, :len(sentence)] = self.word_ids(sentence) if word_ids is None else word_ids[n]
            cases[n, :len(sentence)] = [casing(w) for w in sentence]
            char_index[n, :len(sentence)] = [distinct.setdefault(w, len(distinct))
                                             for w in sentence]
        char_lengths = np.array([len(w) for w in distinct], np.int64)
        chars = np.zeros((len(distinct), int(char_lengths.max())), np.int64)
        for u, w in enumerate(distinct):
            chars[u, :len(w)] = self.chars.encode(w)
        return TaggerInputs(words, cases, chars, char_lengths, char_index), lengths


class TaggingDataset:
    """Sentences with a tag per word as a trainer's data source (rnnkit.data.batch): batches of
    similar lengths, inputs `TaggerInputs`, targets (N, T) tag ids, in an order fixed by
    (seed, epoch). With ``unk_replace`` p > 0, each word seen once in training is read as
    ``<unk>`` with probability p (drawn from the same (seed, epoch)), so that the <unk>
    embedding is trained on the kind of rare words it meets at test time (Lample et al. 2016)."""

    stateful = False

    def __init__(self, sentences: Sequence[Sentence], encoder: Encoder, tagset: TagSet,
                 batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 unk_replace: float = 0.0, word_freq: np.ndarray | None = None):
        if not sentences:
            fail("sentences", "at least one sentence", "none")
        if not 0.0 <= unk_replace < 1.0:
            fail("unk_replace", "a probability in [0, 1)", repr(unk_replace))
        if unk_replace and word_freq is None:
            fail("word_freq", "the training counts of each word id (with unk_replace > 0)", None)
        self.sentences, self.encoder, self.tagset = list(sentences), encoder, tagset
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.unk_replace = unk_replace
        self.singleton = None if word_freq is None else (word_freq == 1)
        self.word_ids = [encoder.word_ids(s.words) for s in self.sentences]
        self.tag_ids = [tagset.encode(s.tags) for s in self.sentences]
        self.lengths = np.array([len(s.words) for s in self.sentences], np.int64)

    def __len__(self) -> int:
        return len(self.sentences)

    def num_batches(self, epoch: int = 0) -> int:
        return -(-len(self.sentences) // self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        rng = epoch_rng(self.seed, epoch) if self.shuffle else None
        plan = bucket_batches(self.lengths, self.batch_size, rng)
        start = check_start(start, len(plan))
        # the <unk> draws of the whole epoch come first, so a resumed epoch sees the same ones
        ids = self.word_ids
        if self.unk_replace and rng is not None:
            ids = [np.where(self.singleton[w] & (rng.random(len(w)) < self.unk_replace),
                            self.encoder.words.unk_id, w) for w in ids]
        return self._batches(plan[start:], ids)

    def _batches(self, plan, ids) -> Iterator[Batch]:
        for idx in plan:
            inputs, lengths = self.encoder.batch([self.sentences[i].words for i in idx],
                                                 [ids[i] for i in idx])
            tags, _ = pad_sequences([self.tag_ids[i] for i in idx])
            yield Batch(inputs=inputs, targets=tags, lengths=lengths)
