"""Spoken digit strings: a stacked BiLSTM + CTC trained on synthetic speech, scored on voices
it never heard and on real recordings.

    nice -n 5 python benchmarks/apps/speech.py corpus   # synthesise the corpora (once)
    nice -n 5 python benchmarks/apps/speech.py search --name words --set units=words
    nice -n 5 python benchmarks/apps/speech.py train    # train, choose on val, test once
    nice -n 5 python benchmarks/apps/speech.py rtf      # transcription speed, one thread
    nice -n 5 python benchmarks/apps/speech.py breakdown --name NAME   # errors by voice

Corpora (under --root, default /tmp/rnnkit-speech): train (5,000 utterances, seed 1) and
val (500, seed 2) from the installed voices minus HELD_OUT; unseen (500, seed 3) from
HELD_OUT only; real-asterisk: the asterisk recordings of zero..nine (one speaker, 8 kHz);
real-other: the real digit strings of pocketsphinx-testdata (TIDIGITS dhd.2934z "two nine
three four zero", cards 004 "five five"). The training keeps the epoch with the lowest
validation WER; unseen and real are scored once, greedy, with a beam of 8, and greedy with
each decoded word snapped to the closest digit word (--lexicon digits). train10k is train +
train2 (5,000 more, seed 4, the same voices). `search` trains one setting (--set KEY=VALUE of
SpeechConfig, --train CORPUS, --epochs) and scores it on val only, appending to
benchmarks/results/apps/speech_search.json; `train` writes benchmarks/results/apps/speech.json.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

import _common
from rnnkit.apps import speech, speech_corpus
from rnnkit.audio import RATE, write_wav

# voices no training utterance uses: one flite voice, one festival voice, and espeak-ng's
# variants whose names start with A..E plus klatt3, in every accent (the f4 and m4 of an
# earlier list name no installed variant: this espeak-ng calls them female4, male4)
HELD_OUT = "flite:rms,festival:ked_diphone,espeak-ng:*+[A-E]*,espeak-ng:*+klatt3"
ASTERISK = Path("/usr/share/asterisk/sounds/en/digits")
SPHINX = Path("/usr/share/pocketsphinx/test/data")
# voices for a second validation set: val holds the training voices, so it cannot tell
# whether a setting helps on new voices; searches train on a corpus minus these
# (CORPUS-minus-v) and score on val-voices as well. Disjoint from HELD_OUT.
VAL_VOICES = "flite:awb,espeak-ng:*+[F-H]*,espeak-ng:*+[f-h]*"
CORPORA = {"train": (5000, 1, "*", HELD_OUT), "val": (500, 2, "*", HELD_OUT),
           "unseen": (500, 3, HELD_OUT, ""), "train2": (5000, 4, "*", HELD_OUT),
           "val-voices": (500, 5, VAL_VOICES, HELD_OUT)}


def real_corpus(root: Path) -> list[Path]:
    """The real digit recordings found on this machine, with manifests: real-asterisk (the
    isolated words zero..nine) and real-other (pocketsphinx-testdata's digit strings)."""
    rows = [(str(ASTERISK / f"{d}.wav"), w, "asterisk")
            for d, w in enumerate(speech_corpus.DIGIT_WORDS) if (ASTERISK / f"{d}.wav").is_file()]
    (root / "real-asterisk").mkdir(parents=True, exist_ok=True)
    out = root / "real-other"
    out.mkdir(parents=True, exist_ok=True)
    other = []
    raw = SPHINX / "tidigits" / "dhd.2934z.raw"          # 16 kHz 16-bit little-endian PCM
    if raw.is_file():
        write_wav(out / "dhd.2934z.wav", np.fromfile(raw, "<i2") / 32768.0, RATE)
        other.append(("dhd.2934z.wav", "two nine three four zero", "tidigits"))
    if (SPHINX / "cards" / "004.wav").is_file():
        other.append((str(SPHINX / "cards" / "004.wav"), "five five", "pocketsphinx-cards"))
    return [speech_corpus.write_manifest(root / "real-asterisk", rows),
            speech_corpus.write_manifest(out, other)]


def train10k(root: Path) -> Path:
    """train + train2 as one manifest (absolute paths)."""
    rows = [(str(w), t, v) for part in ("train", "train2")
            for w, t, v in speech_corpus.read_manifest(root / part)]
    (root / "train10k").mkdir(exist_ok=True)
    return speech_corpus.write_manifest(root / "train10k", rows)


def minus_val_voices(root: Path, name: str) -> str:
    """NAME-minus-v: corpus NAME without the utterances of VAL_VOICES."""
    import fnmatch
    globs = VAL_VOICES.split(",")
    rows = [(str(w), t, v) for w, t, v in speech_corpus.read_manifest(root / name)
            if not any(fnmatch.fnmatchcase(v, g) for g in globs)]
    (root / f"{name}-minus-v").mkdir(exist_ok=True)
    speech_corpus.write_manifest(root / f"{name}-minus-v", rows)
    return f"{name}-minus-v"


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


def search(root: Path, epochs: float, name: str, settings: dict, corpus: str) -> None:
    """One candidate setting: trained on `corpus`, its best epoch chosen and scored on val
    (greedy, greedy + digit lexicon, beam 8), and on val-voices when `corpus` left those
    voices out; the test corpora are not touched."""
    import json
    cfg = speech.SpeechConfig(data=str(root / corpus), val_data=str(root / "val"),
                              val_fraction=0.0, test_fraction=0.0, **settings)
    tcfg = replace(speech.default_train_config(), epochs=epochs, patience=100,
                   checkpoint_minutes=5.0)
    run = root / f"search-{name}"
    start = time.perf_counter()
    summary = speech.train(cfg, tcfg, run)
    wall = time.perf_counter() - start
    val = {f"beam{b}{'_digits' if lex else ''}": speech.evaluate(run, data=str(root / "val"),
                                                                  beam=b, lexicon=lex)
           for b, lex in ((1, ""), (1, "digits"), (8, ""))}
    if corpus.endswith("-minus-v"):
        val.update({f"val_voices_beam{b}{'_digits' if lex else ''}": speech.evaluate(
            run, data=str(root / "val-voices"), beam=b, lexicon=lex)
            for b, lex in ((1, ""), (1, "digits"))})
    path = _common.RESULTS / "speech_search.json"
    done = json.loads(path.read_text())["candidates"] if path.is_file() else []
    done = [c for c in done if c["name"] != name] + [{
        "name": name, "train_corpus": corpus,
        "train_utterances": len(speech_corpus.read_manifest(root / corpus)),
        "settings": dict(settings, epochs=epochs), "train_wall_s": wall,
        "steps": summary.get("step"), "best_val_wer_during_training": summary["best_val_wer"],
        "val": {k: {m: v[m] for m in ("utterances", "words", "wer", "cer")}
                for k, v in val.items()}}]
    _common.write("speech_search", {
        "task": "settings search for the speech benchmark, scored on val (500 utterances "
                "of the training voices) and, for runs on a corpus minus VAL_VOICES, on "
                "val-voices (500 utterances of those voices); the test corpora untouched; "
                "one core, one thread, nice -n 5, another engineer's training on the other core",
        "val_voices": VAL_VOICES,
        "baseline": "the app's defaults (units chars, BiLSTM 2 x 128, SpecAugment on)",
        "candidates": done})


def train_and_test(root: Path, epochs: float, name: str, settings: dict,
                   train: bool = True, corpus: str = "train", patience: int = 3) -> None:
    """Train on `train` (choosing the epoch's weights on `val`), then score once on unseen
    voices and on the real recordings. ``train=False`` scores a run stopped early (its
    best.safetensors) as it is."""
    cfg = speech.SpeechConfig(data=str(root / corpus), val_data=str(root / "val"),
                              test_data=str(root / "unseen"), val_fraction=0.0,
                              test_fraction=0.0, **settings)
    tcfg = replace(speech.default_train_config(), epochs=epochs, patience=patience,
                   checkpoint_minutes=5.0)
    run = root / f"run-{name}"
    start = time.perf_counter()
    if not train:
        summary = dict(_progress(run), trained_by_an_earlier_call=True)
    elif (run / "config.json").is_file():
        summary = speech.resume(run)
    else:
        summary = speech.train(cfg, tcfg, run)
    train_s = time.perf_counter() - start
    scores = {}
    for part in ("unseen", "real-asterisk", "real-other"):
        for beam, lexicon in ((1, ""), (8, ""), (1, "digits")):
            scores[f"{part}_beam{beam}{'_digits' if lexicon else ''}"] = speech.evaluate(
                run, data=str(root / part), beam=beam, lexicon=lexicon)
    _common.write("speech", {
        "task": f"spoken digit strings (1-7 words) to text; CTC over {cfg.units}",
        "train": {"corpus": corpus,
                  "utterances": len(speech_corpus.read_manifest(root / corpus)),
                  "voices": f"installed voices minus {HELD_OUT}"},
        "validation_utterances": len(speech_corpus.read_manifest(root / "val")),
        "settings": dict(asdict(cfg), epochs=epochs), "train_wall_s": train_s if train else None,
        "summary": {k: v for k, v in summary.items() if isinstance(v, (int, float, str))},
        "scores": scores,
        "patience_epochs": patience,
        "note": "settings chosen by the search in speech_search.json (val, val-voices); "
                "the test corpora scored once, with the weights of the best validation "
                "epoch; WER with jiwer; one thread, nice -n 5, another engineer's training "
                "on the machine's other core"})


def breakdown(root: Path, name: str) -> None:
    """The final run's greedy errors on the test corpora split by engine (unseen) and by
    utterance (real): the same decoding as speech.json's, not a new score."""
    from rnnkit.audio import log_mel, normalise, read_wav, stack_frames
    from rnnkit.data.batching import pad_sequences
    run_dir, cfg, model, units = speech._load(root / f"run-{name}")
    out = {}
    for part in ("unseen", "real-asterisk", "real-other"):
        rows = speech_corpus.read_manifest(root / part)
        feats = [normalise(log_mel(read_wav(w), cfg.n_mels)) for w, _, _ in rows]
        hyps = []
        for i in range(0, len(rows), 64):
            x, lengths = pad_sequences([stack_frames(f, cfg.stack) for f in feats[i:i + 64]])
            hyps += speech.transcribe_batch(model, x.astype(np.float32), lengths, 1, (), units)
        groups = {}
        for (_, ref, voice), hyp in zip(rows, hyps):
            key = voice.split(":")[0] if part == "unseen" and voice.startswith("espeak") \
                else voice if part == "unseen" else ref
            groups.setdefault(key, ([], []))
            groups[key][0].append(ref)
            groups[key][1].append(hyp)
        out[part] = {k: dict(speech.error_rates(r, h), utterances=len(r),
                             words=sum(len(t.split()) for t in r),
                             wrong=[(a, b) for a, b in zip(r, h) if a != b][:10])
                     for k, (r, h) in sorted(groups.items())}
    _common.write("speech_breakdown", {"run": name, "decoding": "greedy", "by": out})


def real_time_factor(root: Path, name: str, count: int = 40) -> None:
    """`rnnkit speech transcribe` on the first `count` unseen utterances in a process with
    one thread: the seconds each file took (reading, features, network, greedy decoding)
    over its audio's seconds."""
    import json
    import os
    import subprocess
    import sys
    files = [str(w) for w, _, _ in speech_corpus.read_manifest(root / "unseen")[:count]]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "rnnkit", "speech", "transcribe",
                          str(root / f"run-{name}"), *files, "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    seconds = sum(r["seconds"] for r in rows)
    spent = sum(r["real_time_factor"] * r["seconds"] for r in rows)
    _common.write("speech_rtf", {
        "files": len(rows), "audio_s": seconds, "threads": 1,
        "real_time_factor": spent / seconds,
        "median_file_rtf": float(np.median([r["real_time_factor"] for r in rows])),
        "note": "first file includes the kernels' first call; shared, loaded 2-core machine"})


def _progress(run: Path) -> dict:
    """Where a run stopped: its steps, epochs and best validation WER (metrics.jsonl)."""
    import json
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r.get("kind") == "validation"]
    last = max((run / "checkpoints").iterdir(), key=lambda p: p.stat().st_mtime)
    return {"train_wall_s_config_to_last_checkpoint":
            last.stat().st_mtime - (run / "config.json").stat().st_mtime,
            "steps_done": max(r["step"] for r in rows),
            "epochs_done": max(r["epoch"] for r in rows),
            "best_val_wer": 1 - max(r["val_word_accuracy"] for r in val) if val else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["corpus", "search", "train", "rtf", "breakdown"])
    ap.add_argument("--root", default="/tmp/rnnkit-speech")
    ap.add_argument("--only", default="train,val,unseen")
    ap.add_argument("--epochs", type=float, default=10.0)
    ap.add_argument("--name", default="default")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a SpeechConfig setting (units, hidden_size, spec_augment, ...)")
    ap.add_argument("--train", default="train", help="training corpus: train or train10k")
    ap.add_argument("--patience", type=int, default=3, help="train: epochs without a better "
                    "validation WER before stopping")
    ap.add_argument("--no-train", action="store_true",
                    help="score an existing run as it is (trained earlier, or stopped for time)")
    args = ap.parse_args()
    root = Path(args.root)
    types = {f.name: f.type for f in fields(speech.SpeechConfig)}
    settings = {k: {"int": int, "float": float, "bool": lambda v: v == "true"}.get(
        types[k], str)(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    if args.train.startswith("train10k"):
        train10k(root)
    if args.train.endswith("-minus-v"):
        minus_val_voices(root, args.train[:-len("-minus-v")])
    if args.what == "corpus":
        corpus(root, args.only.split(","))
    elif args.what == "search":
        search(root, args.epochs, args.name, settings, args.train)
    elif args.what == "rtf":
        real_time_factor(root, args.name)
    elif args.what == "breakdown":
        breakdown(root, args.name)
    else:
        train_and_test(root, args.epochs, args.name, settings, train=not args.no_train,
                       corpus=args.train, patience=args.patience)


if __name__ == "__main__":
    main()
