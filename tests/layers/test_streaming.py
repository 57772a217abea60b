"""Streaming inference: SequenceModel.step and Recurrent.stepper equal the full-sequence
forward, LanguageModel.generate samples what stepping the model does, and the example program
examples/stream_forecast.py prints those same numbers for values read from stdin."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.fast import blas, kernels
from rnnkit.errors import RnnkitError
from rnnkit.models import LanguageModel, SequenceModel
from rnnkit.serialize import load_json

from layer_cases import CELLS, arrays, make, random_state
from shared_data import shared_data

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "stream_forecast.py"


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


@pytest.mark.parametrize("readout", ["steps", "last"])
@pytest.mark.parametrize("tokens", [True, False])
def test_a_models_stepper_gives_what_step_does(readout, tokens):
    rng = np.random.default_rng(2)
    kw = {"vocab_size": 9} if tokens else {"input_size": 3}
    model = SequenceModel(**kw, hidden_size=5, num_layers=2, cell="lstm", output_size=4,
                          readout=readout, seed=3)
    xs = rng.integers(0, 9, (6, 2)) if tokens else \
        rng.standard_normal((6, 2, 3)).astype(np.float32)
    start = tuple(rng.uniform(-0.5, 0.5, (2, 2, 5)).astype(np.float32) for _ in range(2))
    step, state = model.stepper(start, batch=2), start
    for x_t in xs:
        y, state = model.step(x_t, state)
        np.testing.assert_allclose(step(x_t), y, rtol=1e-6, atol=1e-6)
    for a, b in zip(step.state(), state):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_step_refuses_bidirectional_models_and_wrong_shapes():
    model = SequenceModel(input_size=2, hidden_size=3, bidirectional=True, seed=0)
    with pytest.raises(RnnkitError, match=r"^model: expected bidirectional=False for step"):
        model.step(np.zeros((1, 2), np.float32))
    with pytest.raises(RnnkitError, match=r"^model: expected bidirectional=False for stepper"):
        model.stepper()
    model = SequenceModel(input_size=2, hidden_size=3, seed=0)
    with pytest.raises(RnnkitError, match=r"^x_t: expected a 2-d array \(N, D\)"):
        model.step(np.zeros(2, np.float32))
    with pytest.raises(RnnkitError, match=r"^x_t: expected a 2-d array \(N, D\)"):
        model.stepper()(np.zeros(2, np.float32))
    with pytest.raises(RnnkitError, match=r"^x_t: expected token ids in \[0, 8\]"):
        SequenceModel(vocab_size=9, hidden_size=3, seed=0).stepper()(np.array([9]))


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stepper_equals_forward_a_step_at_a_time_and_the_whole_sequence(cell, fast, dtype):
    """The compiled loops (float32, the cells they serve) and the reference: the step's
    output and the carried state are forward's, one step per call, and the whole sequence's,
    to rounding (the vector loops round a few elements by the buffers' alignment)."""
    rng = np.random.default_rng(4)
    N, T, D, H = 3, 6, 5, 7
    layer = make(cell, D, H, 2, dtype=dtype, seed=2)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    state = random_state(cell, (2, N, H), rng, dtype)
    with contextlib.nullcontext() if fast else kernels.reference_only(), layer.frozen():
        full, final, _ = layer.forward(x, state, grad=False)
        step, carried = layer.stepper(state, batch=N), state
        one_tol, tol = (1e-6, 1e-5) if dtype == np.float32 else (1e-13, 1e-12)
        for t in range(T):
            h = step(np.ascontiguousarray(x[:, t]))
            one, carried, _ = layer.forward(x[:, t:t + 1], carried, grad=False)
            np.testing.assert_allclose(h, one[:, 0], rtol=one_tol, atol=one_tol)
            np.testing.assert_allclose(h, full[:, t], rtol=tol, atol=tol)
        for a, b, c in zip(arrays(step.state()), arrays(carried), arrays(final)):
            np.testing.assert_allclose(a, b, rtol=one_tol, atol=one_tol)
            np.testing.assert_allclose(a, c, rtol=tol, atol=tol)


def test_stepper_refuses_reverse_layers_and_bad_steps():
    for kw in ({"bidirectional": True}, {"reverse": True}):
        with pytest.raises(RnnkitError, match=r"^layer: expected one forward direction"):
            rnnkit.GRU(2, 3, **kw, seed=0).stepper()
    layer = rnnkit.LSTM(2, 3, seed=0)
    with pytest.raises(RnnkitError, match=r"^batch: expected a positive integer"):
        layer.stepper(batch=0)
    with pytest.raises(RnnkitError, match=r"^state: expected a tuple \(h, c\)"):
        layer.stepper(np.zeros((1, 1, 3), np.float32))
    step = layer.stepper(batch=2)
    for bad, match in ((np.zeros((2, 3), np.float32), r"^x_t: expected shape \(2, 2\)"),
                       (np.zeros((2, 2)), r"^x_t: expected dtype float32"),
                       (np.full((2, 2), np.nan, np.float32), r"^x_t: expected finite")):
        with pytest.raises(RnnkitError, match=match):
            step(bad)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_generate_samples_what_stepping_the_model_gives(cell):
    """generate steps the layers with Recurrent.stepper; SequenceModel.step, one forward a
    token, with the same draws gives the same tokens."""
    model = LanguageModel(11, 6, 16, num_layers=2, cell=cell, seed=5)
    got = model.generate([3, 1, 4], 40, temperature=0.8, rng=np.random.default_rng(9))
    rng, tokens = np.random.default_rng(9), []
    logits, state, _ = model.forward(np.asarray([[3, 1, 4]]), grad=False)
    z = logits[0, -1]
    for _ in range(40):
        p = np.exp(z.astype(np.float64) / 0.8 - (z.astype(np.float64) / 0.8).max())
        tokens.append(int(rng.choice(p.size, p=p / p.sum())))
        y, state = model.step(np.asarray(tokens[-1:]), state)
        z = y[0]
    assert got == tokens


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_stepper_at_batch_1_gives_large_products_to_all_of_mkls_threads(cell):
    """Stepped one step a call, from STEP_SHARED_MACS the loop does not set MKL's count for
    itself (the tuple's thread setter is 0); a whole sequence at batch 1 still does, and so
    does a stepper below that size or at batch 2. Same numbers either way. (Where MKL is not
    tuned for the processor, batch-1 loops run their own product and nothing is shared.)"""
    H = {"rnn": 512, "lstm": 256, "gru": 256}[cell]              # n_gates * H * H >= 2^17
    layer = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[cell](8, H, seed=0)
    assert layer.cell.n_gates * H * H >= kernels.STEP_SHARED_MACS
    small = rnnkit.GRU(8, 128, seed=0)
    assert 3 * 128 * 128 < kernels.STEP_SHARED_MACS
    x = np.random.default_rng(1).standard_normal((1, 4, 8)).astype(np.float32)
    for model, N, shared in ((layer, 1, True), (small, 1, False), (layer, 2, False)):
        kernel = kernels.select(model.cell, np.float32, N, model.hidden_size, 8, train=False,
                                stepped=True)
        assert kernel.shared_threads == (shared and bool(blas._load()) and blas.mkl_tuned())
    assert not kernels.select(layer.cell, np.float32, 1, H, 8, train=False).shared_threads
    with layer.frozen():
        full, _, _ = layer.forward(x, grad=False)
        step = layer.stepper()
        stepped = np.stack([step(np.ascontiguousarray(x[:, t])) for t in range(4)], axis=1)
    np.testing.assert_allclose(stepped, full, rtol=1e-5, atol=1e-6)


def _run_example(model_dir, lines):
    return subprocess.run([sys.executable, str(EXAMPLE), "--model", str(model_dir)],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=120, check=True)


def test_stream_forecast_example(tmp_path):
    values = np.loadtxt(shared_data("timeseries/airline_passengers.csv"), delimiter=",",
                        skiprows=1, usecols=1)
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
