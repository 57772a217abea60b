"""The layer-normalised cells from the applications' --cell flag (rnnkit.apps.common
CELL_CHOICES): a forecast trained on one and reloaded, and the classifier and encoder-decoder
models the other applications build on them."""
import json

import numpy as np
import pytest
from test_app_forecast import args, write_series

from rnnkit.apps.classifier import SequenceClassifier
from rnnkit.cli import main
from rnnkit.models import Seq2Seq
from rnnkit.train import read_metrics


def test_forecast_trains_and_evaluates_on_lnlstm(tmp_path, capsys):
    data, _ = write_series(tmp_path / "s.csv")
    run = tmp_path / "run"
    assert main(args(data, run, "--cell", "lnlstm", "--epochs", "20")) == 0
    assert json.loads((run / "config.json").read_text())["app"]["cell"] == "lnlstm"
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert min(r["val_loss"] for r in rows) < 0.9 * rows[0]["val_loss"]        # it learnt
    capsys.readouterr()
    assert main(["forecast", "evaluate", str(run)]) == 0        # rebuilt from its files
    assert json.loads((run / "eval.json").read_text())["one_step"]["points"] == 24


def test_an_unknown_cell_is_refused_with_the_choices(tmp_path, capsys):
    data, _ = write_series(tmp_path / "s.csv")
    with pytest.raises(SystemExit):
        main(args(data, tmp_path / "run", "--cell", "lnrnn"))
    assert "lngru" in capsys.readouterr().err


@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_classifier_and_encoder_decoder_run_on_them(cell):
    rng = np.random.default_rng(0)
    clf = SequenceClassifier(vocab_size=11, embed_dim=6, hidden_size=5, cell=cell,
                             pooling="meanmax", seed=0)
    assert any("gamma_hh" in name for name in clf.params)
    ids = rng.integers(0, 11, (3, 4))
    logits, _, cache = clf.forward(ids, lengths=np.array([4, 2, 3]))
    clf.backward(np.ones_like(logits), cache)
    assert logits.shape == (3, 2) and all(np.isfinite(g).all() for g in clf.grads.values())
    model = Seq2Seq(tgt_vocab=7, src_vocab=9, hidden_size=5, cell=cell, bidirectional=True,
                    attention="additive", seed=0)
    assert ("bridge.c.W_hy" in model.params) == (cell == "lnlstm")
    out, _, cache = model.forward((rng.integers(0, 9, (2, 3)), rng.integers(0, 7, (2, 4))))
    assert out.shape == (2, 4, 7) and np.isfinite(out).all()
