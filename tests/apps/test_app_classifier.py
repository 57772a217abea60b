"""The apps' many-to-one classifier: gradients by finite differences, no padding leak."""
import numpy as np
import pytest

from gradcheck import check_sampled_params
from rnnkit.apps.classifier import SequenceClassifier, pool_backward, pool_forward
from rnnkit.losses import softmax_cross_entropy


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "meanmax"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_match_finite_differences(pooling, cell):
    model = SequenceClassifier(vocab_size=11, embed_dim=5, hidden_size=4, cell=cell,
                               pooling=pooling, embed_dropout=0.2, dropout=0.3, num_classes=3,
                               dtype="float64", seed=1)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 11, (4, 6))
    lengths = np.array([6, 2, 4, 1])
    y = np.array([0, 2, 1, 2])

    def loss():     # the same dropout masks at every call
        logits, _, _ = model.forward(ids, None, lengths, training=True,
                                     rng=np.random.default_rng(7), grad=False)
        return softmax_cross_entropy(logits, y)[0]

    model.zero_grad()
    logits, _, cache = model.forward(ids, None, lengths, training=True,
                                     rng=np.random.default_rng(7))
    model.backward(softmax_cross_entropy(logits, y)[1], cache)
    check_sampled_params(model, loss, rng, samples=6)


def test_pools_read_only_valid_steps_and_route_gradients_there():
    rng = np.random.default_rng(0)
    out = rng.standard_normal((2, 5, 3))
    lengths = np.array([5, 2])
    out[1, 2:] = 9.0                    # padding with large values must not win the max
    mean, c_mean = pool_forward(out, lengths, "mean")
    mx, c_max = pool_forward(out, lengths, "max")
    np.testing.assert_allclose(mean[1], out[1, :2].mean(axis=0))
    np.testing.assert_allclose(mx[1], out[1, :2].max(axis=0))
    d = pool_backward(np.ones((2, 3)), c_mean)
    assert np.all(d[1, 2:] == 0) and np.allclose(d[1, :2], 0.5)
    d = pool_backward(np.ones((2, 3)), c_max)
    assert np.all(d[1, 2:] == 0) and d[1].sum() == 3


@pytest.mark.parametrize("pooling", ["last", "meanmax"])
def test_padding_changes_nothing(pooling):
    model = SequenceClassifier(vocab_size=9, embed_dim=4, hidden_size=5, pooling=pooling, seed=0)
    short = np.array([[3, 4, 5]])
    padded = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    alone, _, _ = model.forward(short, grad=False)
    batch, _, _ = model.forward(padded, None, np.array([3, 6]), grad=False)
    np.testing.assert_allclose(batch[0], alone[0], rtol=1e-5, atol=1e-6)
