"""SequenceModel: every topology's gradients by finite differences, streaming equals full."""
import numpy as np
import pytest
from gradcheck import check_sampled_params

from rnnkit import RnnkitError
from rnnkit.losses import final_step, mean_squared_error, softmax_cross_entropy
from rnnkit.models import SequenceModel, build_model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_one_classifier_gradients(cell, bidirectional):
    rng = np.random.default_rng(0)
    model = SequenceModel(vocab_size=9, embed_dim=3, hidden_size=4, num_layers=2, cell=cell,
                          bidirectional=bidirectional, output_size=3, readout="last",
                          dtype="float64", seed=1)
    ids = rng.integers(0, 9, (4, 6))
    lengths = np.array([6, 2, 4, 5])
    labels = rng.integers(0, 3, 4)

    def loss():
        return softmax_cross_entropy(model.forward(ids, lengths=lengths)[0], labels)[0]

    model.zero_grad()
    logits, _, cache = model.forward(ids, lengths=lengths)
    assert logits.shape == (4, 3)
    model.backward(softmax_cross_entropy(logits, labels)[1], cache)
    check_sampled_params(model, loss, rng)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_many_to_many_regressor_on_features_gradients_and_input_gradient(cell):
    rng = np.random.default_rng(2)
    model = SequenceModel(input_size=2, hidden_size=5, cell=cell, output_size=1,
                          readout="steps", dtype="float64", seed=3)
    x = rng.standard_normal((3, 5, 2))
    y = rng.standard_normal((3, 5, 1))
    lengths = np.array([5, 3, 4])

    def loss(x=x):
        return mean_squared_error(model.forward(x, lengths=lengths)[0], y, lengths)[0]

    model.zero_grad()
    out, _, cache = model.forward(x, lengths=lengths)
    dx = model.backward(mean_squared_error(out, y, lengths)[1], cache)
    check_sampled_params(model, loss, rng)
    i = (1, 2, 0)
    bumped = x.copy()
    bumped[i] += 1e-6
    lowered = x.copy()
    lowered[i] -= 1e-6
    assert dx[i] == pytest.approx((loss(bumped) - loss(lowered)) / 2e-6, rel=1e-5)


def test_final_step_loss_on_a_steps_model_equals_the_last_readout_for_one_direction():
    rng = np.random.default_rng(4)
    kw = dict(input_size=2, hidden_size=4, cell="gru", output_size=1, dtype="float64", seed=5)
    steps, last = SequenceModel(readout="steps", **kw), SequenceModel(readout="last", **kw)
    x = rng.standard_normal((3, 6, 2))
    lengths = np.array([6, 1, 4])
    y_steps = final_step(mean_squared_error)(steps.forward(x, lengths=lengths)[0],
                                             np.ones((3, 1)), lengths)[0]
    y_last = mean_squared_error(last.forward(x, lengths=lengths)[0], np.ones((3, 1)))[0]
    assert y_steps == pytest.approx(y_last, rel=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_streaming_step_equals_the_full_sequence(cell):
    rng = np.random.default_rng(6)
    model = SequenceModel(input_size=3, hidden_size=8, num_layers=2, cell=cell, output_size=2,
                          seed=7)
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    full, _, _ = model.forward(x)
    state, outs = None, []
    for t in range(7):
        y, state = model.step(x[:, t], state)
        outs.append(y)
    np.testing.assert_allclose(np.stack(outs, axis=1), full, rtol=1e-6, atol=1e-7)


def test_build_model_from_config_round_trip_and_errors():
    model = SequenceModel(vocab_size=5, hidden_size=4, cell="gru", bidirectional=True,
                          output_size=2, readout="last", cell_options={"reset_after": False})
    again = build_model("SequenceModel", model.config)
    assert again.config == model.config and set(again.params) == set(model.params)
    assert again.rnn.cell.reset_after is False
    with pytest.raises(RnnkitError, match="exactly one of them"):
        SequenceModel(vocab_size=5, input_size=3)
    with pytest.raises(RnnkitError, match="readout"):
        SequenceModel(input_size=3, readout="middle")
    with pytest.raises(RnnkitError, match="model class"):
        build_model("Transformer", {})
