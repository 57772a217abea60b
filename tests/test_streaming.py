"""Streaming inference: SequenceModel.step equals the full-sequence forward, and the example
program examples/stream_forecast.py prints those same numbers for values read from stdin."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.models import SequenceModel
from rnnkit.serialize import load_json

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "stream_forecast.py"
CSV = "shared/data/timeseries/airline_passengers.csv"
DATA = next((p / CSV for p in (ROOT, ROOT.parent) if (p / CSV).is_file()), ROOT.parent / CSV)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_equals_full_sequence_for_ids_and_every_prefix_of_last(cell):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 9, (3, 8))
    for readout in ("steps", "last"):
        model = SequenceModel(vocab_size=9, embed_dim=4, hidden_size=6, num_layers=2,
                              cell=cell, output_size=2, readout=readout, dtype="float64",
                              seed=1)
        state, outs = None, []
        for t in range(ids.shape[1]):
            y, state = model.step(ids[:, t], state)
            outs.append(y)
            if readout == "last":              # the prediction after reading ids[:, :t+1]
                np.testing.assert_allclose(y, model.forward(ids[:, :t + 1])[0],
                                           rtol=1e-12, atol=1e-13)
        full, final, _ = model.forward(ids)
        if readout == "steps":
            np.testing.assert_allclose(np.stack(outs, axis=1), full, rtol=1e-12, atol=1e-13)
        for a, b in zip(state if cell == "lstm" else (state,),
                        final if cell == "lstm" else (final,)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_step_refuses_bidirectional_models_and_wrong_shapes():
    model = SequenceModel(input_size=2, hidden_size=3, bidirectional=True, seed=0)
    with pytest.raises(RnnkitError, match=r"^model: expected bidirectional=False for step"):
        model.step(np.zeros((1, 2), np.float32))
    model = SequenceModel(input_size=2, hidden_size=3, seed=0)
    with pytest.raises(RnnkitError, match=r"^x_t: expected a 2-d array \(N, D\)"):
        model.step(np.zeros(2, np.float32))


def _run_example(model_dir, lines):
    return subprocess.run([sys.executable, str(EXAMPLE), "--model", str(model_dir)],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=120, check=True)


def test_stream_forecast_example(tmp_path):
    values = np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=1)
    first = _run_example(tmp_path / "model", [f"{v:g}" for v in values[:30]])
    assert "training a GRU" in first.stderr                  # trained and cached once
    assert (tmp_path / "model" / "model.safetensors").is_file()
    # The second run loads the cache; bad lines are reported and skipped.
    lines = [f"{v:g}" for v in values] + ["", "abc", "-5"]
    second = _run_example(tmp_path / "model", lines)
    assert "training" not in second.stderr
    assert "line 146: expected a positive number, got 'abc'" in second.stderr
    assert "line 147: expected a positive number, got '-5'" in second.stderr
    printed = np.array([float(s) for s in second.stdout.split()])
    assert len(printed) == len(values)
    # The running predictions are the full-sequence forward of the saved model ...
    model = rnnkit.load(tmp_path / "model")
    meta = load_json(tmp_path / "model" / "scaler.json")
    mean, std = meta["scaler"]["mean"], meta["scaler"]["std"]
    z = ((np.log(values) - mean) / std).astype(np.float32)[None, :, None]
    full = np.exp(model.forward(z)[0][0, :, 0].astype(np.float64) * std + mean)
    np.testing.assert_allclose(printed, full, rtol=2e-5)
    np.testing.assert_allclose(printed[:30], [float(s) for s in first.stdout.split()])
    # ... and a real forecast: better than "same as last month" on the months it never saw.
    err = np.abs(printed[:-1] - values[1:])[120:]
    naive = np.abs(values[:-1] - values[1:])[120:]
    assert err.mean() < naive.mean()
