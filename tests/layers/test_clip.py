"""ONNX-style `clip` in the cells: gradients by finite differences, effect, and refusals."""
import numpy as np
import pytest
from gradcheck import check_sampled_params

import rnnkit
from rnnkit import RnnkitError
from rnnkit.interop.torch_weights import to_torch_state_dict

LAYERS = {"rnn_tanh": lambda **k: rnnkit.RNN(3, 4, 2, **k),
          "rnn_relu": lambda **k: rnnkit.RNN(3, 4, 2, nonlinearity="relu", **k),
          "lstm": lambda **k: rnnkit.LSTM(3, 4, 2, **k),
          "lstm_peep": lambda **k: rnnkit.LSTM(3, 4, 2, peepholes=True, **k),
          "gru_after": lambda **k: rnnkit.GRU(3, 4, 2, **k),
          "gru_before": lambda **k: rnnkit.GRU(3, 4, 2, reset_after=False, **k)}


def make(kind, clip, seed=0):
    layer = LAYERS[kind](clip=clip, bidirectional=True, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in layer.params.items():
        p[...] = rng.uniform(-1.5, 1.5, p.shape)           # large weights: clipping binds
    return layer


@pytest.mark.parametrize("kind", list(LAYERS))
def test_clipped_gradients_match_finite_differences(kind):
    layer = make(kind, 0.8)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 3))
    lengths = np.array([5, 2, 4])
    R = rng.standard_normal((3, 5, 8))

    def loss():
        return float((layer.forward(x, None, lengths)[0] * R).sum())

    layer.zero_grad()
    _, _, cache = layer.forward(x, None, lengths)
    masks = [a for step in cache["layers"][0][1][0]["steps"] for a in step
             if isinstance(a, np.ndarray) and a.dtype == bool]   # the reference's clip masks
    share = sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)
    assert 0.1 < share < 0.9                               # the bound really binds, often
    dx, _ = layer.backward(R, None, cache)
    check_sampled_params(layer, loss, rng, samples=6, eps=1e-7, abs=1e-7)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_clip_changes_outputs_only_when_it_binds(kind):
    x = np.random.default_rng(2).standard_normal((2, 6, 3))
    free, loose, tight = make(kind, None), make(kind, 1e6), make(kind, 0.5)
    out_free = free.forward(x)[0]
    np.testing.assert_array_equal(loose.forward(x)[0], out_free)
    assert not np.allclose(tight.forward(x)[0], out_free)


def test_clip_is_validated_and_refused_by_torch_conversion():
    with pytest.raises(RnnkitError, match="clip: expected None or a positive threshold"):
        rnnkit.LSTM(3, 4, clip=-1.0)
    with pytest.raises(RnnkitError, match=r"clip=None \(torch's recurrent layers do not clip\)"):
        to_torch_state_dict(rnnkit.GRU(3, 4, clip=3.0))
