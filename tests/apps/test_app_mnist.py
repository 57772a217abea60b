"""The MNIST-rows application on tiny synthetic digits: learning, outputs, resume, bad input."""
import json

import numpy as np

from app_helpers import assert_resume_is_bit_identical
from rnnkit.cli import main
from rnnkit.train import read_metrics


def fake_digits(n, rng):
    """Class k (0..3) is a bright bar on rows 4k..4k+3, plus noise."""
    y = rng.integers(0, 4, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 4 * k + 2:4 * k + 6, 6:22] = 230
    return x, y


def write_npz(path, n_train=240, n_test=40):
    rng = np.random.default_rng(0)
    x_train, y_train = fake_digits(n_train, rng)
    x_test, y_test = fake_digits(n_test, rng)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def args(data, run, *extra):
    return ["mnist", "train", "--data", str(data), "--run-dir", str(run), "--val-size", "40",
            "--hidden-size", "16", "--batch-size", "20", "--lr", "0.01", "--no-progress", *extra]


def test_train_learns_predicts_and_evaluates(tmp_path, capsys):
    data, run = write_npz(tmp_path / "d.npz"), tmp_path / "run"
    assert main(args(data, run, "--epochs", "16", "--cell", "gru", "--lr", "0.03",
                     "--schedule", "constant")) == 0
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] and rows[-1]["val_accuracy"] >= 0.8
    capsys.readouterr()
    img = np.load(data)["x_test"][3]
    np.save(tmp_path / "digit.npy", img)
    assert main(["mnist", "predict", str(run), "test:3", str(tmp_path / "digit.npy"),
                 "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[0]["digit"] == out[1]["digit"]             # the same image, read two ways
    assert 0.25 < out[0]["probability"] <= 1
    assert main(["mnist", "evaluate", str(run)]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["images"] == 40 and ev["accuracy"] >= 0.75


def test_resume_continues_bit_identically(tmp_path):
    data = write_npz(tmp_path / "d.npz", n_train=140)
    assert_resume_is_bit_identical("mnist", lambda run: args(data, run), tmp_path, 3, 8)


def test_bad_inputs_are_one_line(tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", images=np.zeros((3, 28, 28)))
    (tmp_path / "text.npz").write_text("not an archive")
    for data, message in ((tmp_path / "none.npz", "--data: expected an .npz file"),
                          (tmp_path / "wrong.npz", "arrays named"),
                          (tmp_path / "text.npz", "a file numpy cannot read")):
        assert main(args(data, tmp_path / "r")) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    data, run = write_npz(tmp_path / "d.npz", n_train=80), tmp_path / "run"
    assert main(args(data, run, "--max-steps", "1")) == 0
    np.save(tmp_path / "small.npy", np.zeros((10, 10)))
    capsys.readouterr()
    for item, message in (("test:99", "test:INDEX with INDEX in [0, 39]"),
                          (str(tmp_path / "small.npy"), "28 x 28 pixels"),
                          ("nothing.png", "no such file")):
        assert main(["mnist", "predict", str(run), item]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
