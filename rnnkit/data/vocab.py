"""Vocabularies: tokens to ids and back, saved as JSON that says which kind it is.

`CharVocab` is the sorted set of characters of a text (the char-level language model's).
`WordVocab` is built from texts with a regex word/punctuation tokenizer, keeps the words
seen at least `min_freq` times (most frequent first, at most `max_size` ids in all) and
reserves the first ids for special tokens: ``<pad>`` = 0, then ``<unk>``, ``<bos>``,
``<eos>`` when enabled.

Both save to one JSON format, ``{"format": "rnnkit.vocab", "version": 1, "type": "char" |
"word", ...}``, written atomically through `rnnkit.serialize`; `load_vocab` reads either and a
foreign or corrupt file raises RnnkitError naming the file.
"""
from __future__ import annotations

import json

import os
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from rnnkit.errors import RnnkitError, as_array, check_int, fail
from rnnkit.serialize import load_json, save_json

FORMAT, VERSION = "rnnkit.vocab", 1
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"

# A word is a run of letters/digits/underscores, apostrophes inside it kept ("it's", "don't");
# every other non-space character is a token of its own.
TOKEN_PATTERN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


def tokenize(text: str, lower: bool = True) -> list[str]:
    """Split `text` into words and punctuation marks, lower-cased if `lower`."""
    if not isinstance(text, str):
        fail("text", "a string", type(text).__name__)
    return TOKEN_PATTERN.findall(text.lower() if lower else text)


def _check_ids(ids, size: int) -> np.ndarray:
    arr = as_array("ids", ids)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        fail("ids", "a 1-d sequence of integer ids", f"shape {arr.shape}, dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        fail("ids", f"ids in [0, {size - 1}] (the vocabulary size is {size})",
             f"min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64)


class CharVocab:
    """The sorted set of characters of a text; unknown characters map to ``unk`` if given."""

    kind = "char"

    def __init__(self, chars: Iterable[str], unk: str | None = None):
        if isinstance(chars, str):
            chars = list(chars)
        if not isinstance(chars, Iterable) or isinstance(chars, (bytes, dict)) or not all(
                isinstance(c, str) and len(c) == 1 for c in chars):
            fail("chars", "a string or an iterable of single characters", repr(chars)[:80])
        if unk is not None and not (isinstance(unk, str) and len(unk) == 1):
            fail("unk", "None or a single character", repr(unk))
        self.chars = sorted(set(chars) | ({unk} if unk else set()))
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.unk = unk

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            fail("text", "a string", type(text).__name__)
        if self.unk is None:
            missing = sorted(set(text) - self.index.keys())
            if missing:
                fail("text", "only characters in the vocabulary", f"unknown {missing[:10]}")
            return np.fromiter((self.index[c] for c in text), np.int64, len(text))
        u = self.index[self.unk]
        return np.fromiter((self.index.get(c, u) for c in text), np.int64, len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in _check_ids(ids, len(self)))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "type": self.kind,
                "tokens": list(self.chars), "unk": self.unk, "size": len(self.chars),
                "checksum": tokens_digest(self.chars)}

    @classmethod
    def _from_fields(cls, d: dict) -> CharVocab:
        vocab = cls(d["tokens"], unk=d["unk"])
        if vocab.chars != d["tokens"] or any(len(c) != 1 for c in vocab.chars):
            raise ValueError("tokens are not a sorted list of distinct characters")
        return vocab

    def save(self, path: str | os.PathLike) -> None:
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocab:
        return _load_as(cls, path)


class WordVocab:
    """Word-level vocabulary; ids are positions in ``tokens`` (specials first, ``<pad>`` = 0).

    Build one from texts with `WordVocab.build`. `encode` tokenizes a string (or takes a list
    of tokens as given), maps unknown tokens to ``<unk>`` (or raises RnnkitError naming the
    token when the vocabulary has none) and wraps the ids in ``<bos>``/``<eos>`` when the
    vocabulary has them.
    """

    kind = "word"

    def __init__(self, words: Sequence[str], *, unk: bool = True, bos: bool = False,
                 eos: bool = False, lower: bool = True):
        specials = [PAD] + [t for t, on in ((UNK, unk), (BOS, bos), (EOS, eos)) if on]
        if isinstance(words, (str, bytes, dict)) or not isinstance(words, Iterable):
            fail("words", "a list of tokens (strings)", type(words).__name__)
        words = list(words)
        if not all(isinstance(w, str) for w in words):
            fail("words", "tokens that are strings",
                 ", ".join(sorted({type(w).__name__ for w in words if not isinstance(w, str)})))
        clash = sorted(set(words) & set(specials)) or [w for w, c in Counter(words).items()
                                                       if c > 1]
        if clash:
            fail("words", "distinct tokens other than the special ones",
                 f"duplicates {clash[:10]}")
        self.tokens = specials + words
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.lower = lower
        self.num_specials = len(specials)
        self.pad_id = 0
        self.unk_id = self.index.get(UNK) if unk else None
        self.bos_id = self.index.get(BOS) if bos else None
        self.eos_id = self.index.get(EOS) if eos else None

    @classmethod
    def build(cls, texts: Iterable[str], *, min_freq: int = 1, max_size: int | None = None,
              lower: bool = True, unk: bool = True, bos: bool = False,
              eos: bool = False) -> WordVocab:
        """Count the tokens of `texts`; keep those seen >= `min_freq` times, most frequent first
        (ties alphabetical), so that ``len(vocab) <= max_size`` (special tokens included)."""
        if isinstance(texts, str):
            fail("texts", "an iterable of strings", "a single string")
        if isinstance(texts, (bytes, dict)) or not isinstance(texts, Iterable):
            fail("texts", "an iterable of strings", type(texts).__name__)
        check_int("min_freq", min_freq)
        specials = 1 + unk + bos + eos
        if max_size is not None:
            check_int("max_size", max_size, specials)
        counts = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                fail(f"texts[{i}]", "a string", type(text).__name__)
            counts.update(tokenize(text, lower))
        for t in (PAD, UNK, BOS, EOS):
            counts.pop(t, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size - specials]
        return cls(kept, unk=unk, bos=bos, eos=eos, lower=lower)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, text: str | Sequence[str], *, add_specials: bool = True) -> np.ndarray:
        """Ids (T,) of a string (tokenized) or of a list of tokens (looked up as given)."""
        if isinstance(text, str):
            tokens = tokenize(text, self.lower)
        elif isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            tokens = list(text)
        else:
            fail("text", "a string or a list of tokens (strings)", repr(text)[:80])
        if self.unk_id is None:
            missing = [t for t in tokens if t not in self.index]
            if missing:
                fail("text", "only tokens in the vocabulary (it has no <unk>)",
                     f"unknown token {missing[0]!r} ({len(missing)} unknown in all)")
            ids = [self.index[t] for t in tokens]
        else:
            ids = [self.index.get(t, self.unk_id) for t in tokens]
        if add_specials:
            ids = ([self.bos_id] if self.bos_id is not None else []) + ids + \
                  ([self.eos_id] if self.eos_id is not None else [])
        return np.array(ids, np.int64)

    def to_tokens(self, ids) -> list[str]:
        return [self.tokens[i] for i in _check_ids(ids, len(self))]

    def decode(self, ids, *, skip_specials: bool = True) -> str:
        """Tokens joined by spaces; ``<pad>``, ``<bos>``, ``<eos>`` dropped if `skip_specials`
        (``<unk>`` is kept: it stands for a real word)."""
        drop = {self.pad_id, self.bos_id, self.eos_id} if skip_specials else set()
        return " ".join(self.tokens[i] for i in _check_ids(ids, len(self)) if i not in drop)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "type": self.kind,
                "tokens": list(self.tokens), "size": len(self.tokens),
                "checksum": tokens_digest(self.tokens), "lower": self.lower,
                "unk": self.unk_id is not None, "bos": self.bos_id is not None,
                "eos": self.eos_id is not None}

    @classmethod
    def _from_fields(cls, d: dict) -> WordVocab:
        flags = {k: d[k] for k in ("unk", "bos", "eos", "lower")}
        if not all(isinstance(t, str) for t in d["tokens"]):
            raise ValueError("tokens are not all strings")
        if not all(isinstance(v, bool) for v in flags.values()):
            raise ValueError("flags unk/bos/eos/lower are not booleans")
        specials = 1 + flags["unk"] + flags["bos"] + flags["eos"]
        vocab = cls(d["tokens"][specials:], **flags)
        if vocab.tokens != d["tokens"]:
            raise ValueError("the special tokens do not match the flags")
        return vocab

    def save(self, path: str | os.PathLike) -> None:
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVocab:
        return _load_as(cls, path)


KINDS = {CharVocab.kind: CharVocab, WordVocab.kind: WordVocab}


def tokens_digest(tokens) -> str:
    """SHA-256 of the token list (as JSON): a changed or lost token in a saved vocabulary
    (older files have none) is refused rather than silently shifting every id after it."""
    import hashlib
    return hashlib.sha256(json.dumps(list(tokens)).encode("utf-8")).hexdigest()


def vocab_from_dict(d: object, source: str = "vocab") -> CharVocab | WordVocab:
    """Rebuild a vocabulary from `to_dict()` output (e.g. stored in a checkpoint)."""
    kinds = "/".join(KINDS)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        got = (f"format {d.get('format')!r}" if isinstance(d, dict)
               else f"a JSON {type(d).__name__}")
        raise RnnkitError(f"{source}: expected an rnnkit vocabulary (format {FORMAT!r}), got {got}")
    if d.get("version") != VERSION or not isinstance(d.get("type"), str) or \
            d.get("type") not in KINDS:
        raise RnnkitError(f"{source}: expected vocabulary version {VERSION} of type {kinds}, "
                          f"got version {d.get('version')!r}, type {d.get('type')!r}")
    from rnnkit import schema
    # "size" (written since tokens could be lost silently) is missing from older files
    common = {"format": str, "version": int, "type": str, "tokens": schema.ListOf(str),
              "size": schema.Optional(int), "checksum": schema.Optional(str)}
    fields = dict(common, unk=bool, lower=bool, bos=bool, eos=bool) if d["type"] == "word" \
        else dict(common, unk=schema.OneOf(str, type(None)))
    schema.check(d, fields, source)
    if d.get("checksum", tokens_digest(d["tokens"])) != tokens_digest(d["tokens"]):
        raise RnnkitError(f"{source}: expected the tokens it was saved with (its 'checksum'), "
                          "got changed tokens")
    if d.get("size", len(d["tokens"])) != len(d["tokens"]):
        raise RnnkitError(f"{source}: expected {d['size']} tokens (its 'size'), got "
                          f"{len(d['tokens'])}")
    try:
        return KINDS[d["type"]]._from_fields(d)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RnnkitError(f"{source}: expected a consistent {d['type']} vocabulary, got a "
                          f"corrupt one ({type(e).__name__}: {e})") from None


def load_vocab(path: str | os.PathLike) -> CharVocab | WordVocab:
    """Read a vocabulary of either kind saved by `save`."""
    return vocab_from_dict(load_json(path), source=str(path))


def _load_as(cls, path):
    vocab = load_vocab(path)
    if not isinstance(vocab, cls):
        raise RnnkitError(f"{path}: expected a {cls.kind} vocabulary, got a {vocab.kind} one")
    return vocab
