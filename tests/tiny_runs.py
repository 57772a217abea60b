"""Tiny data files and trained run folders for every application, for the command-line fuzz
(tests/fuzz/cli_cases.py, tests/corrupt_apps.py): each app's `train` with tiny sizes and two steps, so that
`evaluate`, `predict` and `resume` have a real run to read. A few seconds in all once the
kernels are compiled."""
from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

import numpy as np

from rnnkit.cli import main
from rnnkit.data import bundled_text


def _digits(path: Path, bar_rows: bool) -> Path:
    """MNIST-format npz: class k is a bright bar (rows for mnist, columns for caption)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 80), ("test", 20)):
        y = rng.integers(0, 4, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            if bar_rows:
                x[i, 4 * k + 2:4 * k + 6, 6:22] = 230
            else:
                x[i, 4:24, 6 * k + 2:6 * k + 6] = 230
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    np.savez(path, **arrays)
    return path


def _sentiment(path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = {1: ["good", "great", "fun"], 0: ["bad", "dull", "awful"]}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(60):
            label = i % 2
            w.writerow([f"the film is {rng.choice(words[label])} and {rng.choice(['long', 'short'])}",
                        label])
    return path


def _series(path: Path) -> Path:
    t = np.arange(96)
    y = 100 * np.exp(0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12))
    path.write_text("month,value\n" + "".join(f"m{i},{v:.4f}\n" for i, v in enumerate(y)))
    return path


def _conll(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("valid", 4), ("test", 4)):
        lines = ["-DOCSTART- -X- -X- O", ""]
        for _ in range(n):
            lines += [f"{rng.choice(['Peter', 'Anna'])} NNP B-NP B-PER", "visited VBD B-VP O",
                      f"{rng.choice(['Paris', 'Berlin'])} NNP B-NP B-LOC", ". . O O", ""]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def _pairs(path: Path) -> Path:
    rng = np.random.default_rng(0)
    nouns = {"cat": "chat", "dog": "chien", "king": "roi"}
    lines = ["en\tfr"]
    for _ in range(60):
        a, b = rng.choice(list(nouns), 2)
        lines.append(f"The {a} sees the {b}.\tLe {nouns[a]} voit le {nouns[b]}.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# the flags that make each app's run tiny (a few ms a step)
SMALL = {
    "text": ["--hidden-size", "8", "--embed-dim", "4", "--batch-size", "4", "--seq-len", "8",
             "--sample-length", "5", "--prime", "th", "--val-every", "0"],
    "sentiment": ["--hidden-size", "4", "--embed-dim", "4", "--batch-size", "8", "--min-freq",
                  "1"],
    "mnist": ["--hidden-size", "4", "--batch-size", "16", "--val-size", "16"],
    "forecast": ["--hidden-size", "4", "--test-size", "24", "--val-size", "12"],
    "ner": ["--word-dim", "4", "--char-dim", "3", "--char-hidden", "3", "--case-dim", "2",
            "--hidden-size", "4", "--batch-size", "4"],
    "caption": ["--hidden-size", "4", "--dec-hidden-size", "6", "--embed-dim", "4",
                "--batch-size", "8", "--val-size", "16", "--train-pairs", "20", "--test-pairs",
                "10"],
    "translate": ["--embed-dim", "4", "--hidden-size", "4", "--dec-hidden-size", "6",
                  "--batch-size", "8", "--test-size", "10", "--val-size", "10", "--min-freq",
                  "1"],
    "words": ["--embed-dim", "4", "--hidden-size", "4", "--batch-size", "4", "--seq-len", "8",
              "--min-freq", "1"],
    "speech": ["--hidden-size", "4", "--num-layers", "1", "--val-fraction", "0.2",
               "--test-fraction", "0.2"],
}

# the committed speech recordings (six espeak-ng digit strings and their manifest)
SPEECH = Path(__file__).resolve().parent / "apps" / "speech_fixtures"

# one valid prediction input per app
INPUT = {"text": "th", "sentiment": "the film is good", "mnist": "test:0",
         "forecast": "\n".join(f"{100 + i}" for i in range(40)), "ner": "Anna visited Paris .",
         "caption": "0", "translate": "The cat sees the dog.", "words": "the king",
         "speech": str(SPEECH / "0.wav")}


def make_data(folder: Path) -> dict:
    """app -> its tiny data file (or folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "text.txt"
    text.write_text(bundled_text()[:6000], "utf-8")
    return {"text": text, "words": text, "sentiment": _sentiment(folder / "reviews.csv"),
            "mnist": _digits(folder / "mnist.npz", True),
            "caption": _digits(folder / "caption.npz", False),
            "forecast": _series(folder / "series.csv"), "ner": _conll(folder / "conll"),
            "translate": _pairs(folder / "pairs.tsv"),
            "speech": Path(shutil.copytree(SPEECH, folder / "speech", dirs_exist_ok=True))}


def train_argv(app: str, data: Path, run: Path, steps: int = 2) -> list:
    return [app, "train", "--data", str(data), "--run-dir", str(run), *SMALL[app],
            "--max-steps", str(steps), "--no-progress"]


def make_runs(folder: Path, data: dict, apps) -> dict:
    """app -> a run folder trained two steps (quietly)."""
    runs = {}
    for app in apps:
        run = folder / f"run-{app}"
        if not (run / "config.json").exists():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(train_argv(app, data[app], run))
            if code != 0:
                raise RuntimeError(f"the tiny {app} run failed: {err.getvalue()}")
        runs[app] = run
    return runs
