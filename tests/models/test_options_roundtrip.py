"""Every option of every layer survives save/load, and the API has one shape at every level."""
import numpy as np
import pytest

import rnnkit
from rnnkit import cells
from rnnkit.models import SequenceModel

# a non-default value for each option of each cell
NON_DEFAULT = {"nonlinearity": {"rnn": "relu", "indrnn": "tanh"}, "clip": 0.5,
               "peepholes": True, "reset_after": False, "per_gate": True}


def _options(spec):
    out = {}
    for name in spec.options:
        value = NON_DEFAULT[name]
        out[name] = value[spec.name] if isinstance(value, dict) else value
    return out


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_every_option_round_trips_through_save_and_load(name, tmp_path):
    spec = cells.get(name)
    options = _options(spec)
    layer = rnnkit.Recurrent(name, 3, 4, num_layers=2, bidirectional=True, dropout=0.25,
                             dtype=np.float64, seed=0, **options)
    rnnkit.save(layer, tmp_path / "m")
    back = rnnkit.load(tmp_path / "m")
    assert back.spec is spec and back.options == layer.options == spec.resolve(options)
    assert (back.num_layers, back.bidirectional, back.dropout, back.dtype) == (2, True, 0.25,
                                                                             np.float64)
    x = np.random.default_rng(0).uniform(-3, 3, (2, 5, 3))
    np.testing.assert_array_equal(back.forward(x, grad=False)[0], layer.forward(x, grad=False)[0])


def test_clip_survives_save_and_load(tmp_path):
    """rnnkit.save(LSTM(3, 4, clip=0.5)) then load used to give clip=None."""
    layer = rnnkit.LSTM(3, 4, clip=0.5, seed=0)
    rnnkit.save(layer, tmp_path / "lstm")
    assert rnnkit.load(tmp_path / "lstm").options["clip"] == 0.5


def test_sequence_model_takes_the_cells_options_as_keywords(tmp_path):
    model = SequenceModel(input_size=2, hidden_size=3, cell="rnn", nonlinearity="relu", seed=0)
    old = SequenceModel(input_size=2, hidden_size=3, cell="rnn",
                        cell_options={"nonlinearity": "relu"}, seed=0)
    assert model.rnn.options["nonlinearity"] == old.rnn.options["nonlinearity"] == "relu"
    rnnkit.save(model, tmp_path / "seq")
    assert rnnkit.load(tmp_path / "seq").rnn.options["nonlinearity"] == "relu"
    with pytest.raises(rnnkit.RnnkitError, match="rnn option: expected one of"):
        SequenceModel(input_size=2, hidden_size=3, cell="rnn", peepholes=True)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_backward_has_the_layers_shape_and_returns_the_state_gradient(cell):
    """backward(doutputs, dstate, cache) -> (dx, d(initial state)), as a layer's; the old
    backward(doutputs, cache) still returns dx alone."""
    model = SequenceModel(input_size=2, hidden_size=3, cell=cell, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 2))
    h0 = rng.standard_normal((1, 2, 3))
    state = (h0, rng.standard_normal((1, 2, 3))) if cell == "lstm" else h0
    R = rng.standard_normal((2, 4, 1))
    y, _, cache = model.forward(x, state)
    model.zero_grad()
    dx, dstate0 = model.backward(R, None, cache)
    grads = {k: g.copy() for k, g in model.grads.items()}
    eps = 1e-6
    d_h0 = (dstate0[0] if cell == "lstm" else dstate0)[0, 1, 2]
    h0[0, 1, 2] += eps
    up = float(np.sum(model.forward(x, state, grad=False)[0] * R))
    h0[0, 1, 2] -= 2 * eps
    down = float(np.sum(model.forward(x, state, grad=False)[0] * R))
    h0[0, 1, 2] += eps
    assert d_h0 == pytest.approx((up - down) / (2 * eps), rel=1e-6)
    _, _, cache = model.forward(x, state)
    model.zero_grad()
    dx_old = model.backward(R, cache)
    np.testing.assert_allclose(dx_old, dx, rtol=1e-12, atol=1e-15)
    for k in grads:
        np.testing.assert_allclose(model.grads[k], grads[k], rtol=1e-12, atol=1e-15)


def test_stepper_reads_the_batch_from_its_state():
    model = SequenceModel(input_size=2, hidden_size=3, cell="gru", seed=0)
    state = np.zeros((1, 5, 3), np.float32)
    step = model.stepper(state)
    assert step(np.ones((5, 2), np.float32)).shape == (5, 1)
    layer = rnnkit.GRU(2, 3, seed=0)
    assert layer.stepper(state)(np.ones((5, 2), np.float32)).shape == (5, 3)
    with pytest.raises(rnnkit.RnnkitError, match="batch: expected 5, the batch of the state"):
        layer.stepper(state, batch=2)
