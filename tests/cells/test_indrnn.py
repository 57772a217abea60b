"""IndRNN (rnnkit/cells/indrnn.py): a cell added as one file and one registration line."""
import numpy as np
import pytest

import rnnkit
from gradcheck import check_sampled_params, numeric_grad
from rnnkit.models import SequenceModel


def layer(**kw):
    return rnnkit.Recurrent("indrnn", 3, 4, dtype=np.float64, seed=0, **kw)


def test_layer_gradients_match_finite_differences_with_lengths_both_ways():
    net = layer(num_layers=2, bidirectional=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 3))
    lengths = np.array([5, 2, 4])
    R = rng.standard_normal((3, 5, 8))

    def loss():
        out, _, _ = net.forward(x, lengths=lengths, grad=False)
        return float(np.sum(out * R))

    out, _, cache = net.forward(x, lengths=lengths)
    net.zero_grad()
    dx, _ = net.backward(R, None, cache)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    check_sampled_params(net, loss, rng, samples=6)
    assert sorted(net.params) == sorted(f"l{k}{d}.{n}" for k in (0, 1)
                                        for d in ("", "_reverse") for n in ("W_xh", "u", "b"))


def test_recurrent_weight_is_a_vector_and_each_unit_reads_only_itself():
    net = layer()
    assert net.params["l0.u"].shape == (4,)
    net.params["l0.W_xh"][...] = 0
    net.params["l0.b"][...] = 0
    net.params["l0.u"][...] = [1.0, 0.5, 0.0, 2.0]
    h0 = np.array([[[1.0, 1.0, 1.0, 1.0]]])
    out, h_n, _ = net.forward(np.zeros((1, 2, 3)), h0, grad=False)
    np.testing.assert_allclose(h_n[0, 0], [1.0, 0.25, 0.0, 4.0])


def test_stepping_equals_the_whole_sequence():
    net = layer(num_layers=2)
    x = np.random.default_rng(1).standard_normal((2, 4, 3))
    out, _, _ = net.forward(x, grad=False)
    step = net.stepper(batch=2)
    np.testing.assert_allclose(np.stack([step(x[:, t]) for t in range(4)], axis=1), out)


def test_save_and_load_keep_the_cell_and_its_options(tmp_path):
    net = layer(nonlinearity="tanh", num_layers=2)
    rnnkit.save(net, tmp_path / "ind")
    back = rnnkit.load(tmp_path / "ind")
    assert back.spec.name == "indrnn" and back.options == {"nonlinearity": "tanh"}
    x = np.random.default_rng(2).standard_normal((2, 3, 3))
    np.testing.assert_array_equal(back.forward(x, grad=False)[0], net.forward(x, grad=False)[0])


def test_converters_refuse_it_by_name(tmp_path):
    from rnnkit.interop.onnx_weights import to_onnx_weights
    from rnnkit.interop.torch_weights import to_torch_state_dict
    with pytest.raises(rnnkit.RnnkitError, match="IndRNN layer"):
        to_onnx_weights(layer())
    with pytest.raises(rnnkit.RnnkitError, match="IndRNN layer"):
        to_torch_state_dict(layer())


def test_a_sequence_model_on_it_learns():
    """Many-to-one: the sum of a sequence's 12 inputs (units that keep u near 1 add them
    up); the loss falls 10x."""
    from rnnkit.losses import mean_squared_error
    from rnnkit.optim import make_optimizer
    rng = np.random.default_rng(3)
    model = SequenceModel(input_size=1, hidden_size=16, cell="indrnn", readout="last",
                          dtype="float64", seed=0)
    opt = make_optimizer("adam", model.params, lr=1e-2)
    losses = []
    for _ in range(300):
        x = rng.uniform(-1, 1, (16, 12, 1))
        y = x.sum(axis=1)
        out, _, cache = model.forward(x)
        loss, dout = mean_squared_error(out, y)
        model.zero_grad()
        model.backward(dout, None, cache)
        opt.step(model.grads)
        losses.append(loss)
    assert np.mean(losses[-20:]) < 0.1 * np.mean(losses[:20])
