"""Units a translation model reads and writes: words, or subword pieces.

`Words` are rnnkit.data.parallel's tokens (lower-cased words and punctuation marks, elisions
split). `Subwords` cut those tokens further into byte-pair-encoding pieces (Sennrich, Haddow
& Birch 2016) learnt by SentencePiece from one language's training sentences: a rare word
or a name is spelt from pieces instead of being read or written as <unk>, and a small piece
vocabulary keeps the output softmax small. Pieces are made from the word tokens, so joined
back they give the same tokens, and the same detokenised text, as a word model.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from rnnkit.data.parallel import detokenize, tokens
from rnnkit.errors import RnnkitError, fail
from rnnkit.serialize import atomic_write_bytes

UNITS = ("words", "bpe")


class Words:
    """Word tokens as they are."""

    def split(self, text: str) -> list[str]:
        return tokens(text)

    def join(self, units: list[str]) -> str:
        return detokenize(list(units))


class Subwords:
    """A SentencePiece BPE model over word tokens: `split` text into pieces, `join` pieces
    back into text."""

    def __init__(self, model: bytes, origin: str = "the subword model"):
        import sentencepiece
        self.model = bytes(model)
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.model)
        except (RuntimeError, OSError, TypeError) as e:
            raise RnnkitError(f"{origin}: expected a SentencePiece model written by rnnkit, "
                              f"got bytes it cannot read ({e})") from None

    @classmethod
    def train(cls, sentences: list, vocab_size: int) -> Subwords:
        """BPE pieces of tokenised sentences (lists of word tokens), at most `vocab_size` of
        them (fewer when the sentences have fewer distinct merges)."""
        import sentencepiece
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 8:
            fail("subword_vocab", "an integer >= 8", repr(vocab_size))
        lines = [" ".join(s) for s in sentences if s]
        if not lines:
            fail("sentences", "at least one non-empty sentence to learn pieces from", "none")
        out = io.BytesIO()
        # identity normalisation: the tokens are already lower-cased, and NFKC would change
        # characters, so that pieces would no longer join back into the same tokens. One
        # thread: the same sentences give the same model
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=out, model_type="bpe",
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
            normalization_rule_name="identity", bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0,
            num_threads=1, minloglevel=2, max_sentence_length=1 << 16)
        return cls(out.getvalue())

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def split(self, text: str) -> list[str]:
        return self._sp.encode(" ".join(tokens(text)), out_type=str)

    def join(self, units: list[str]) -> str:
        return detokenize(self._sp.decode_pieces(list(units)).split())

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_bytes(path, self.model)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Subwords:
        path = Path(path)
        if not path.is_file():
            fail("subword model", "a SentencePiece model file", f"{str(path)!r} (no such file)")
        return cls(path.read_bytes(), origin=str(path))
