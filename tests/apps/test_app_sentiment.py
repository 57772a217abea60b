"""The sentiment application on a tiny synthetic CSV: learning, outputs, resume, bad input."""
import csv
import json

import numpy as np
import pytest

from app_helpers import assert_resume_is_bit_identical
from rnnkit.apps import sentiment
from rnnkit.cli import main
from rnnkit.train import read_metrics

GOOD = ["good", "great", "witty", "gorgeous", "fun", "moving"]
BAD = ["bad", "dull", "boring", "awful", "plodding", "mess"]
FILLER = ["the", "film", "is", "a", "and", "very", "story", "plot"]


def write_csv(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = int(i % 3 != 0)                  # unbalanced, as the real data
            words = list(rng.choice(FILLER, rng.integers(2, 8)))
            words.insert(int(rng.integers(0, len(words))), rng.choice(GOOD if label else BAD))
            w.writerow([" ".join(words) + ".", label])
    return path


def train_args(data, run, *extra):
    return ["sentiment", "train", "--data", str(data), "--run-dir", str(run), "--hidden-size",
            "16", "--embed-dim", "16", "--batch-size", "8", "--lr", "0.02", "--no-progress",
            "--embed-dropout", "0", "--dropout", "0", *extra]


def test_split_is_stratified_seeded_and_disjoint():
    labels = ["1"] * 70 + ["0"] * 30
    a = sentiment.stratified_split(labels, 0.1, 0.1, seed=3)
    assert a == sentiment.stratified_split(labels, 0.1, 0.1, seed=3)
    assert a != sentiment.stratified_split(labels, 0.1, 0.1, seed=4)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(100))
    for part, n in (("val", 10), ("test", 10), ("train", 80)):
        assert len(a[part]) == n
        assert sum(labels[i] == "1" for i in a[part]) == int(n * 0.7)   # the classes' shares


def test_train_learns_predicts_and_evaluates(tmp_path, capsys):
    data, run = write_csv(tmp_path / "reviews.csv"), tmp_path / "run"
    assert main(train_args(data, run, "--epochs", "12", "--pooling", "meanmax")) == 0
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 0.1
    assert max(r["val_accuracy"] for r in rows) >= 0.9
    for name in ("config.json", "vocab.json", "split.json", "labels.json", "best.safetensors",
                 "loss_curve.png"):
        assert (run / name).is_file(), name
    vocab = json.loads((run / "vocab.json").read_text())["tokens"]
    split = json.loads((run / "split.json").read_text())
    assert split["rows"] == 120 and len(split["test"]) == 12
    capsys.readouterr()

    assert main(["sentiment", "predict", str(run), "a gorgeous witty film", "dull mess"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["positive", "negative"]
    assert all(0.5 < float(line.split("\t")[1]) <= 1 for line in lines)

    (tmp_path / "in.txt").write_text("great fun\nawful plot\n")
    assert main(["sentiment", "predict", str(run), "--file", str(tmp_path / "in.txt"),
                 "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["label"] for o in out] == ["positive", "negative"]
    assert sum(out[0]["probabilities"].values()) == pytest.approx(1.0)
    assert "gorgeous" in vocab

    assert main(["sentiment", "evaluate", str(run)]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["rows"] == 12 and ev["accuracy"] >= 0.75 and ev["split"] == "test"


def test_resume_continues_bit_identically(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", n=60)
    assert_resume_is_bit_identical(
        "sentiment", lambda run: train_args(data, run, "--cell", "lstm", "--schedule", "cosine",
                                            "--embed-dropout", "0.2", "--dropout", "0.3"),
        tmp_path, 4, 12)


@pytest.mark.parametrize("content, message", [
    (None, "--data: expected a CSV file"),
    ("words,label\nfine,1\n", "a column named 'text'"),
    ("text,label\n" + "ok film,1\n" * 9 + "good,yes\n", "an integer label"),
])
def test_bad_training_data_is_one_line(tmp_path, capsys, content, message):
    data = tmp_path / "d.csv"
    if content is not None:
        data.write_text(content)
    assert main(train_args(data, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_prediction_inputs_are_one_line(tmp_path, capsys):
    data, run = write_csv(tmp_path / "reviews.csv", n=40), tmp_path / "run"
    assert main(train_args(data, run, "--max-steps", "2")) == 0
    capsys.readouterr()
    for args, message in ((["zzz qqq"], "at least one word seen in training"),
                          (["good film", "  "], "input line 2: expected a non-empty line"),
                          ([], "expected at least one input")):
        assert main(["sentiment", "predict", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["sentiment", "predict", str(tmp_path / "nowhere"), "good"]) == 2
    assert "a run folder of `rnnkit sentiment train`" in capsys.readouterr().err
    assert main(train_args(data, run)) == 2                   # a run is there already
    assert "already holds a run" in capsys.readouterr().err
