"""Inference keeps each scan's prepared weights (and the loops' products on them) between
calls while the parameters hold the same bits, and makes them again when one changes."""
import numba  # noqa: F401  (the test extra installs it; these tests must run in CI)
import numpy as np
import pytest

from rnnkit.fast import blas, kernels
from rnnkit.fast.kernels import fastmath
from rnnkit.fast import scan
from layer_cases import CELLS, COMPILED
from test_kernels import LOOPS, assert_pinned, set_loop
from test_ln_kernels import assert_pinned as assert_pinned_ln


def counting(monkeypatch, module, name):
    """Count the calls of module.name (still calling it)."""
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)
    return calls


def reference(layer, x, state=None):
    with kernels.reference_only():
        return layer.forward(x, state, grad=True)[:2]     # grad=True: prepares afresh


def outputs(result):
    out, h_n = result[:2]
    return [out, *(h_n if isinstance(h_n, tuple) else [h_n])]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("cell", COMPILED)
def test_inference_prepares_once_and_again_after_a_change(cell, loop, monkeypatch):
    set_loop(monkeypatch, loop)
    # (the layer-normalised cells' loops are pinned within their own bound)
    pinned = assert_pinned_ln if cell.startswith("ln") else assert_pinned
    rng = np.random.default_rng(0)
    layer = CELLS[cell](5, 6, 2, bidirectional=True, seed=1)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    prepares = counting(monkeypatch, type(layer.cell), "prepare")
    made = counting(monkeypatch, blas, "loop_product")
    first = layer.forward(x, grad=False)
    assert len(prepares) == 4                           # 2 layers x 2 directions
    products = len(made)
    second = layer.forward(x, grad=False)
    assert len(prepares) == 4 and len(made) == products     # nothing made again
    for a, b in zip(outputs(first), outputs(second)):
        np.testing.assert_array_equal(a, b)
    pinned(outputs(second), outputs(reference(layer, x)))

    # changed in place, one element of one direction, with nothing between the calls: that
    # scan alone prepares again, and the next call keeps what it made
    layer.forward(x, grad=False)                # (the reference's training call let go)
    n = len(prepares)
    layer.params["l1_reverse.W_hh"][0, 0] += 0.5
    changed = layer.forward(x, grad=False)
    layer.forward(x, grad=False)
    assert len(prepares) == n + 1
    assert not np.allclose(changed[0], first[0])
    pinned(outputs(changed), outputs(reference(layer, x)))
    # a parameter replaced by a new array with other values
    layer.params["l0.b_xh"] = layer.params["l0.b_xh"] + 1
    pinned(outputs(layer.forward(x, grad=False)), outputs(reference(layer, x)))


def test_equal_values_with_other_bits_prepare_again(monkeypatch):
    """The weights are compared bit for bit: -0.0 is not 0.0 (its products' signs of zero
    may differ), NaN equals the same NaN."""
    layer = CELLS["gru_after"](3, 4, seed=0)
    x = np.ones((1, 2, 3), np.float32)
    prepares = counting(monkeypatch, type(layer.cell), "prepare")
    layer.params["l0.b_hh"][0] = 0.0
    layer.forward(x, grad=False)
    layer.params["l0.b_hh"][0] = -0.0
    layer.forward(x, grad=False)
    assert len(prepares) == 2
    layer.params["l0.b_hh"][0] = np.nan
    layer.forward(x, grad=False)
    layer.forward(x, grad=False)
    assert len(prepares) == 3


def test_training_lets_the_kept_weights_go():
    layer = CELLS["lstm"](3, 4, 2, seed=0)
    x = np.ones((2, 5, 3), np.float32)
    layer.forward(x, grad=False)
    assert len(layer._prepared) == 2
    layer.forward(x)
    assert layer._prepared == {}


def test_a_scan_prepared_for_inference_refuses_training():
    layer = CELLS["rnn_tanh"](3, 4, seed=0)
    x = np.ones((2, 1, 3), np.float32)
    h0 = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match="inference"):
        scan.scan_forward(layer.cell, layer._direction(0, 0), x, h0, None, np.array([1]),
                          False, grad=True, prepared=scan.Prepared())


def test_products_are_kept_per_batch_size_and_blas_setting(monkeypatch):
    """A product packed for MKL is not reused under blas.use("numpy"), and at most MAX_KEPT
    are kept on one scan's weights."""
    set_loop(monkeypatch, "per step")
    monkeypatch.setattr(blas, "MIN_MACS", 0)            # the scan's products all to MKL
    monkeypatch.setattr(blas, "SINGLE_THREAD_MACS", 0)
    layer = CELLS["lstm"](4, 8, seed=0)
    rng = np.random.default_rng(1)
    packs = counting(monkeypatch, blas, "Packed")
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    for _ in range(2):
        layer.forward(x, grad=False)
    assert len(packs) == 1
    k = layer._prepared[(0, 0)]._k
    mkl = [v for v in k["products"].values()]
    with blas.use("numpy"):
        for _ in range(2):
            out = layer.forward(x, grad=False)
    assert len(packs) == 2
    assert [v.buf is None for v in k["products"].values() if v not in mkl] == [True]
    assert [v.buf is not None for v in mkl] == [blas.gemm_address() != 0]
    assert_pinned(outputs(out), outputs(reference(layer, x)))
    layer.forward(x, grad=False)
    k = layer._prepared[(0, 0)]._k
    for N in range(1, 3 * fastmath.MAX_KEPT):
        layer.forward(rng.standard_normal((N, 2, 4)).astype(np.float32), grad=False)
        assert len(k["products"]) <= fastmath.MAX_KEPT
    assert layer._prepared[(0, 0)]._k is k              # the weights themselves stayed


def test_generation_steps_reuse_the_prepared_weights(monkeypatch):
    """A model fed one token at a time (step) prepares its weights once, and its outputs
    are those of the whole sequence."""
    from rnnkit.models.language_model import LanguageModel
    model = LanguageModel(vocab_size=11, embed_dim=4, hidden_size=8, num_layers=2,
                          cell="lstm", seed=0)
    tokens = np.array([[1, 5, 2, 7, 3]])
    whole, _, _ = model.forward(tokens, grad=False)
    prepares = counting(monkeypatch, type(model.rnn.cell), "prepare")
    state = None
    for t in range(tokens.shape[1]):
        z, state = model.step(tokens[:, t], state)
        assert_pinned([z], [whole[:, t]])
    assert prepares == []                                # kept from the whole forward


def test_a_frozen_layer_compares_its_weights_once_per_block(monkeypatch):
    """Within ``frozen()`` the first inference call compares the parameters (so a change made
    before the block is seen), later calls do not; after the block every call does again."""
    layer = CELLS["lstm"](3, 5, 2, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    compared = counting(monkeypatch, scan, "_same_bits")
    layer.forward(x, grad=False)
    layer.params["l0.W_hh"][1, 2] += 1.0                # changed before the block
    with layer.frozen():
        n = len(compared)
        inside = layer.forward(x, grad=False)
        assert len(compared) > n
        n = len(compared)
        for _ in range(3):
            again = layer.forward(x, grad=False)
        assert len(compared) == n
        np.testing.assert_array_equal(again[0], inside[0])
        with layer.frozen():                            # nested: compares once more
            layer.forward(x, grad=False)
            layer.forward(x, grad=False)
        assert len(compared) == n + 8                   # 2 scans x 4 parameters
    assert_pinned(outputs(inside), outputs(reference(layer, x)))
    layer.forward(x, grad=False)
    n = len(compared)
    layer.forward(x, grad=False)
    assert len(compared) == n + 8                       # 2 scans x 4 parameters, each call
