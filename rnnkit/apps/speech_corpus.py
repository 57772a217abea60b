"""Spoken digit strings: the corpus format and a synthesiser of corpora (``rnnkit speech synth``).

A corpus is a folder with ``manifest.tsv``: one utterance a line,

    PATH<TAB>TRANSCRIPT[<TAB>VOICE]

PATH a 16-bit PCM WAV file relative to the manifest's folder (or absolute), TRANSCRIPT
its words in lower case, VOICE who spoke it (optional; lets a benchmark hold voices out).
Lines starting with '#' are comments. Any recordings with such a manifest can be trained on.

The synthesiser speaks random strings of 1 to ``max_words`` digit words ("zero" and "oh"
both stand for 0) with whichever of espeak-ng, flite and festival are installed, choosing
an engine first (each equally often: a model trained on one engine's voices transfers
badly to real speech) and then a voice, speed, pitch and word gaps; each recording is then
resampled to 16 kHz, sped up or slowed down by up to 10 %, given random silence at both
ends and a random level, sometimes band-limited to telephone quality (8 kHz), and mixed
with white or brown noise at 5 to 40 dB signal-to-noise ratio.
"""
from __future__ import annotations

import fnmatch
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rnnkit.audio import RATE, read_wav, write_wav
from rnnkit.errors import RnnkitError, fail

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MANIFEST = "manifest.tsv"
ENGINES = ("espeak-ng", "flite", "festival")
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = {"kal_diphone": "english/kal_diphone", "ked_diphone": "english/ked_diphone",
                   "cmu_us_slt_arctic_hts": "us/cmu_us_slt_arctic_hts"}
FESTIVAL_DIR = Path("/usr/share/festival/voices")


# --- manifests ------------------------------------------------------------------------------
def read_manifest(path: str | Path, name: str = "--data") -> list[tuple[Path, str, str]]:
    """(wav path, transcript, voice) per utterance of a manifest (or of the folder holding
    manifest.tsv); `name`: the flag it came from, for the error."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        fail(name, f"a corpus folder with {MANIFEST} (PATH<TAB>TRANSCRIPT[<TAB>VOICE] a "
             "line) or such a file", f"{str(path)!r} (no such file)")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{name} {path}", "UTF-8 text", f"undecodable bytes at {e.start}")
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].strip():
            fail(f"{path} line {i}", "PATH<TAB>TRANSCRIPT[<TAB>VOICE]", repr(line))
        wav = Path(parts[0]) if Path(parts[0]).is_absolute() else path.parent / parts[0]
        rows.append((wav, " ".join(parts[1].lower().split()),
                     parts[2] if len(parts) == 3 else ""))
    if not rows:
        fail(str(path), "at least one utterance", "none")
    return rows


def write_manifest(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = Path(folder) / MANIFEST
    lines = ["# path\ttranscript\tvoice"] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


# --- what is installed ----------------------------------------------------------------------
def _espeak_variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]
    return sorted({line.split()[3].split("/")[-1] for line in out if len(line.split()) > 3})


def available_voices(engines=ENGINES) -> list[str]:
    """Every installed voice as ENGINE:NAME (espeak-ng's are ACCENT+VARIANT)."""
    found = []
    if "espeak-ng" in engines and shutil.which("espeak-ng"):
        variants = [""] + ["+" + v for v in _espeak_variants()]
        found += [f"espeak-ng:{a}{v}" for a in ESPEAK_ACCENTS for v in variants]
    if "flite" in engines and shutil.which("flite"):
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        found += [f"flite:{v}" for v in FLITE_VOICES if v in listed]
    if "festival" in engines and shutil.which("festival"):
        found += [f"festival:{v}" for v, d in FESTIVAL_VOICES.items()
                  if (FESTIVAL_DIR / d).is_dir()]
    return found


def select_voices(patterns: str = "*", exclude: str = "") -> list[str]:
    """The installed voices matching any comma-separated glob in `patterns` and none in
    `exclude` (e.g. "flite:*,espeak-ng:en-us+*")."""
    keep = [p for p in patterns.split(",") if p]
    drop = [p for p in exclude.split(",") if p]
    installed = available_voices()
    for p in drop:          # a pattern that leaves nothing out is most likely mistyped
        if not any(fnmatch.fnmatchcase(v, p) for v in installed):
            fail("--exclude-voices", "globs each matching an installed voice "
                 "(`rnnkit speech synth --list-voices`)", repr(p))
    voices = [v for v in installed
              if any(fnmatch.fnmatchcase(v, p) for p in keep)
              and not any(fnmatch.fnmatchcase(v, p) for p in drop)]
    if not voices:
        fail("--voices", "patterns matching installed voices (espeak-ng, flite or festival: "
             "apt-get install espeak-ng flite festival)",
             f"{patterns!r} minus {exclude!r}: none of {len(available_voices())} installed")
    return voices


# --- speaking -------------------------------------------------------------------------------
def random_digits(rng: np.random.Generator, max_words: int = 7) -> str:
    words = [DIGIT_WORDS[d] for d in rng.integers(0, 10, int(rng.integers(1, max_words + 1)))]
    return " ".join("oh" if w == "zero" and rng.random() < 0.5 else w for w in words)


def _spoken(text: str, rng) -> str:
    """The text an engine reads: a comma after some words makes a longer pause."""
    words = text.split()
    return " ".join(w + ("," if i < len(words) - 1 and rng.random() < 0.2 else "")
                    for i, w in enumerate(words))


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RnnkitError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")


def _speak_one(voice: str, text: str, wav: Path, rng) -> None:
    engine, name = voice.split(":", 1)
    if engine == "espeak-ng":
        _run(["espeak-ng", "-v", name, "-s", str(int(rng.integers(110, 231))),
              "-p", str(int(rng.integers(15, 86))), "-g", str(int(rng.integers(0, 16))),
              "-w", str(wav), _spoken(text, rng)])
    else:
        _run(["flite", "-voice", name, "--setf",
              f"duration_stretch={rng.uniform(0.8, 1.35):.3f}", "--setf",
              f"int_f0_target_mean={rng.uniform(80, 190):.1f}", "-t", _spoken(text, rng),
              "-o", str(wav)])


def _speak_festival(jobs: list[tuple[str, str, Path]], rng) -> None:
    """Festival starts slowly: one batch script for all its utterances."""
    lines = []
    for voice, text, wav in jobs:
        spoken = _spoken(text, rng).replace('"', "")
        lines += [f"(voice_{voice.split(':', 1)[1]})",
                  f"(Parameter.set 'Duration_Stretch {rng.uniform(0.8, 1.35):.3f})",
                  f'(utt.save.wave (utt.synth (Utterance Text "{spoken}")) "{wav}" \'riff)']
    for s in range(0, len(lines), 600):
        with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as f:
            f.write("\n".join(lines[s:s + 600]) + "\n")
        try:
            _run(["festival", "-b", f.name])
        finally:
            Path(f.name).unlink()


def telephone(x: np.ndarray) -> np.ndarray:
    """Only what an 8 kHz line carries: the spectrum above 3.8 kHz removed."""
    spectrum = np.fft.rfft(x)
    spectrum[int(len(x) * 3800 / RATE):] = 0
    return np.fft.irfft(spectrum, len(x)).astype(np.float32)


def degrade(path: Path, rng: np.random.Generator) -> np.ndarray:
    """A synthesised recording as a microphone might have caught it, at 16 kHz (see the
    module's docstring). Reading it at a rate 10 % off changes its speed and pitch."""
    x = read_wav(path, 100 * int(round(RATE / 100 * rng.uniform(0.9, 1.1))))
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.9)
    speech_power = float(np.mean(x ** 2)) + 1e-12
    x = np.concatenate([np.zeros(int(RATE * rng.uniform(0.05, 0.4)), np.float32), x,
                        np.zeros(int(RATE * rng.uniform(0.05, 0.4)), np.float32)])
    if rng.random() < 0.3:
        x = telephone(x)
    noise = rng.normal(size=len(x))
    if rng.random() < 0.5:                                              # brown: low rumble
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(401) / 401, mode="same")
    noise *= np.sqrt(speech_power / 10 ** (rng.uniform(5, 40) / 10) / (np.mean(noise ** 2)
                                                                        + 1e-12))
    return np.clip(x + noise, -1, 1).astype(np.float32)


def synthesise(out_dir: str | Path, count: int, *, seed: int = 0, voices: str = "*",
               exclude_voices: str = "", max_words: int = 7, log=print) -> Path:
    """`count` utterances into out_dir/wav/ and out_dir/manifest.tsv; returns the manifest."""
    if not isinstance(count, int) or count < 1:
        fail("--count", "an integer >= 1", repr(count))
    if not 1 <= max_words <= 20:
        fail("--max-words", "an integer in [1, 20]", repr(max_words))
    pool = select_voices(voices, exclude_voices)
    by_engine = {e: [v for v in pool if v.startswith(e + ":")] for e in ENGINES}
    by_engine = {e: vs for e, vs in by_engine.items() if vs}
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        fail("--out", "a new or empty folder", f"{str(out)!r}, which holds {MANIFEST}")
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(count):
        engine = list(by_engine)[int(rng.integers(len(by_engine)))]
        voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
        plan.append((voice, random_digits(rng, max_words), f"wav/{i:06d}.wav"))
    log(f"synthesising {count} utterances with {len(pool)} voices "
        f"({', '.join(f'{e}: {len(v)}' for e, v in by_engine.items())}) into {out}")
    with tempfile.TemporaryDirectory() as tmp:
        raw = [Path(tmp) / f"{i}.wav" for i in range(count)]
        festival = [(v, t, raw[i]) for i, (v, t, _) in enumerate(plan)
                    if v.startswith("festival:")]
        if festival:
            _speak_festival(festival, rng)
        for i, (voice, text, rel) in enumerate(plan):
            if not voice.startswith("festival:"):
                _speak_one(voice, text, raw[i], rng)
            write_wav(out / rel, degrade(raw[i], rng))
            if (i + 1) % 500 == 0:
                log(f"  {i + 1} / {count}")
    return write_manifest(out, [(rel, text, voice) for voice, text, rel in plan])


# --- `rnnkit speech synth` ------------------------------------------------------------------
SUMMARY = "synthesise a corpus of spoken digit strings (WAVs + manifest.tsv)"


def add_arguments(p) -> None:
    p.add_argument("--out", default="", help="folder for wav/ and manifest.tsv (a new one)")
    p.add_argument("--count", type=int, default=1000, help="utterances (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of texts, voices and noise")
    p.add_argument("--voices", default="*", help="comma-separated globs of ENGINE:VOICE to "
                   "use, e.g. 'flite:*,espeak-ng:en-us+*' (default: every installed voice)")
    p.add_argument("--exclude-voices", default="", help="globs of voices to leave out")
    p.add_argument("--max-words", type=int, default=7, help="digit words per string, at most")
    p.add_argument("--list-voices", action="store_true", help="print the installed voices")


def run(args, log=print) -> int:
    if args.list_voices:
        for v in available_voices():
            print(v)
        return 0
    if not args.out:
        fail("--out", "a folder for the corpus", "none (pass --out FOLDER)")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        fail("--out", "a folder for the corpus", f"{args.out!r}, which is a file")
    path = synthesise(args.out, args.count, seed=args.seed, voices=args.voices,
                      exclude_voices=args.exclude_voices, max_words=args.max_words, log=log)
    log(f"wrote {path}")
    return 0
