"""`rnnkit memory adding|copy|recall` end to end on tiny sizes, and its one-line errors."""
import json

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.apps import memory
from rnnkit.diagnostics import memory_runner as runner
from rnnkit.errors import RnnkitError

TINY = ["--steps", "4", "--val-every", "2", "--val-size", "16", "--test-size", "24",
        "--batch-size", "8", "--hidden-size", "6"]


def png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_adding_end_to_end_writes_table_json_and_curve(tmp_path, capsys):
    out = tmp_path / "adding"
    assert main(["memory", "adding", "--T", "6", "--cells", "rnn,lstm,irnn", *TINY,
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text[text.index("cell "):].splitlines()
    assert lines[0].split()[:5] == ["cell", "mse", "solved", "solved_hs97", "task_solved"]
    assert [line.split()[0] for line in lines[2:6]] == ["no", "rnn", "lstm", "irnn"]
    r = json.loads((out / "results.json").read_text())
    assert sorted(r["cells"]) == ["irnn", "lstm", "rnn"]          # (JSON sorts keys)
    for cell in r["cells"].values():
        assert len(cell["train_loss"]) == 4 and [s for s, _ in cell["val_loss"]] == [2, 4]
        assert cell["best_step"] in (2, 4) and 0 <= cell["test"]["solved"] <= 1
    assert r["baseline"]["mse"] == pytest.approx(2 / 3)
    assert r["settings"]["T"] == 6 and r["settings"]["seed"] == 0
    assert png(out / "loss_curve.png")


def test_the_kept_weights_are_those_of_the_best_validation(tmp_path):
    cfg = memory.AddingSettings(T=5, cells="gru", steps=6, val_every=2, val_size=16,
                                test_size=16, batch_size=8, hidden_size=5, lr=0.05,
                                out=str(tmp_path))
    r = memory.benchmark("adding", cfg, log=lambda *a: None)["cells"]["gru"]
    best = min(r["val_loss"], key=lambda sv: sv[1])
    assert r["best_step"] == best[0]
    # scoring the test set again with the best validation's step retrained gives its scores
    again = memory.benchmark("adding", memory.AddingSettings(**{**vars(cfg),
                                                                "steps": best[0]}),
                             log=lambda *a: None)["cells"]["gru"]
    assert again["test"]["mse"] == pytest.approx(r["test"]["mse"], rel=1e-6)


def test_copy_end_to_end_scores_against_the_memoryless_baseline(tmp_path, capsys):
    out = tmp_path / "copy"
    assert main(["memory", "copy", "--T", "5", "--length", "3", "--symbols", "4",
                 "--cells", "gru", *TINY, "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    base = 3 * np.log(4) / (5 + 6)
    assert r["baseline"]["cross_entropy"] == pytest.approx(base)
    assert r["baseline_test"]["cross_entropy"] == pytest.approx(base, rel=1e-6)
    assert r["cells"]["gru"]["test"]["cross_entropy"] > 0
    assert "symbol_accuracy" in capsys.readouterr().out
    assert png(out / "loss_curve.png")


def test_recall_end_to_end_scores_every_gap_and_plots_accuracy(tmp_path, capsys):
    out = tmp_path / "recall"
    assert main(["memory", "recall", "--max-gap", "6", "--gaps", "0,3,6", "--keys", "3",
                 "--distractors", "4", "--cells", "rnn,gru", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "G=0" in text and "G=6" in text
    r = json.loads((out / "results.json").read_text())
    assert set(r["cells"]["rnn"]["test"]["by_gap"]) == {"0", "3", "6"}
    assert r["baseline"]["accuracy"] == pytest.approx(1 / 3)
    assert png(out / "loss_curve.png") and png(out / "accuracy_vs_gap.png")


@pytest.mark.parametrize("flags, message", [
    (["adding", "--cells", "lstm,elman"], "cells: expected distinct comma-separated names"),
    (["adding", "--T", "1"], "T: expected a number in [2, inf]"),
    (["adding", "--steps", "0"], "steps: expected a number in [1, inf]"),
    (["copy", "--lr", "0"], "lr: expected a number in (0, inf]"),
    (["recall", "--max-gap", "5", "--gaps", "0,9"], "gaps: expected comma-separated integers"),
    (["recall", "--gaps", "a,b"], "gaps: expected comma-separated integers"),
])
def test_bad_settings_give_one_line(tmp_path, capsys, flags, message):
    assert main(["memory", *flags, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit memory: ") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()                    # refused before any work


def test_the_table_reads_results_from_json():
    results = {"task": "recall", "task_settings": {"test_gaps": [0, 5]},
               "baseline_test": {"cross_entropy": 2.0, "accuracy": 0.1, "by_gap": {0: 0.1}},
               "cells": {"lstm": {"test": {"cross_entropy": 0.5, "accuracy": 0.75,
                                           "by_gap": {"0": 1.0, "5": 0.5}},
                                  "best_step": 300, "seconds": 12.4, "diverged": None},
                         "irnn": {"test": None, "best_step": 0, "seconds": 1.0,
                                  "diverged": "training diverged"}}}
    rows = memory.table(results).splitlines()
    assert rows[0].split() == ["cell", "cross_entropy", "accuracy", "G=0", "G=5", "best",
                               "step", "steps", "seconds"]
    assert rows[3].split() == ["lstm", "0.5000", "0.7500", "1.0000", "0.5000", "300", "-",
                               "12"]
    assert rows[4].split()[:3] == ["irnn", "(diverged)", "-"]


def test_cell_names_reach_the_model():
    from rnnkit.models import SequenceModel
    cell, options = runner.cell_setup("irnn")
    model = SequenceModel(input_size=2, hidden_size=4, cell=cell, seed=0, **options)
    assert np.array_equal(model.params["rnn.l0.W_hh"], np.eye(4, dtype=np.float32))
    assert model.rnn.options["nonlinearity"] == "relu"
    with pytest.raises(RnnkitError, match="^cells: expected"):
        runner.cell_setup("elman")


def test_a_time_limit_stops_each_cell_and_says_where(tmp_path):
    cfg = memory.AddingSettings(T=5, cells="lstm", steps=50, val_every=10, val_size=8,
                                test_size=8, batch_size=4, hidden_size=4, max_minutes=1e-9,
                                out=str(tmp_path))
    r = memory.benchmark("adding", cfg, log=lambda *a: None)["cells"]["lstm"]
    assert r["timed_out"] and r["steps_done"] == 1 and r["best_step"] == 1
    assert r["val_loss"][-1][0] == 1 and r["test"] is not None     # validated where it stopped
