"""Spoken digit strings: a stacked BiLSTM + CTC trained on synthetic speech, scored on voices
it never heard and on real recordings.

    nice -n 5 python benchmarks/apps/speech.py corpus   # synthesise the corpora (once)
    nice -n 5 python benchmarks/apps/speech.py train    # train, choose on val, test once

Corpora (under --root, default /tmp/rnnkit-speech): train (5,000 utterances, seed 1) and
val (500, seed 2) from the installed voices minus HELD_OUT; unseen (500, seed 3) from
HELD_OUT only; real: the asterisk recordings of zero..nine (one speaker, 8 kHz) and the
real digit strings of pocketsphinx-testdata (TIDIGITS dhd.2934z, cards 004 "five five").
Writes benchmarks/results/apps/speech.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import _common
from rnnkit.apps import speech_corpus
from rnnkit.audio import RATE, write_wav

# voices no training utterance uses: one flite voice, one festival voice, and espeak-ng's
# variants whose names start with A..E plus f4, m4 and klatt3, in every accent
HELD_OUT = "flite:rms,festival:ked_diphone,espeak-ng:*+[A-E]*,espeak-ng:*+f4," \
           "espeak-ng:*+m4,espeak-ng:*+klatt3"
ASTERISK = Path("/usr/share/asterisk/sounds/en/digits")
SPHINX = Path("/usr/share/pocketsphinx/test/data")
CORPORA = {"train": (5000, 1, "*", HELD_OUT), "val": (500, 2, "*", HELD_OUT),
           "unseen": (500, 3, HELD_OUT, "")}


def real_corpus(root: Path) -> Path:
    """The real digit recordings found on this machine, with a manifest."""
    out = root / "real"
    out.mkdir(parents=True, exist_ok=True)
    rows = [(str(ASTERISK / f"{d}.wav"), w, "asterisk")
            for d, w in enumerate(speech_corpus.DIGIT_WORDS) if (ASTERISK / f"{d}.wav").is_file()]
    raw = SPHINX / "tidigits" / "dhd.2934z.raw"          # 16 kHz 16-bit little-endian PCM
    if raw.is_file():
        write_wav(out / "dhd.2934z.wav", np.fromfile(raw, "<i2") / 32768.0, RATE)
        rows.append(("dhd.2934z.wav", "two nine three four zero", "tidigits"))
    if (SPHINX / "cards" / "004.wav").is_file():
        rows.append((str(SPHINX / "cards" / "004.wav"), "five five", "pocketsphinx-cards"))
    return speech_corpus.write_manifest(out, rows)


def corpus(root: Path, names) -> None:
    for name in names:
        count, seed, voices, exclude = CORPORA[name]
        if (root / name / speech_corpus.MANIFEST).is_file():
            print(f"{root / name}: already there")
            continue
        start = time.perf_counter()
        speech_corpus.synthesise(root / name, count, seed=seed, voices=voices,
                                 exclude_voices=exclude)
        print(f"{name}: {time.perf_counter() - start:.0f} s")
    print(real_corpus(root))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["corpus", "train"])
    ap.add_argument("--root", default="/tmp/rnnkit-speech")
    ap.add_argument("--only", default="train,val,unseen")
    args = ap.parse_args()
    root = Path(args.root)
    if args.what == "corpus":
        corpus(root, args.only.split(","))


if __name__ == "__main__":
    main()
