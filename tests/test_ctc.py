"""CTC: values and gradients against torch.nn.functional.ctc_loss, finite differences, the
impossible rows, and the decoders on posteriors made by hand."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradcheck import numeric_grad
from rnnkit.ctc import ctc_loss, ctc_trainer_loss, greedy_decode, log_softmax, \
    prefix_beam_search
from rnnkit.errors import RnnkitError


def _torch(z, targets, in_lens, tgt_lens, reduction, zero_infinity=False, blank=0):
    zt = torch.tensor(z, requires_grad=True)
    lt = F.ctc_loss(F.log_softmax(zt, 2).transpose(0, 1), torch.tensor(targets),
                    torch.tensor(in_lens), torch.tensor(tgt_lens), blank=blank,
                    reduction=reduction, zero_infinity=zero_infinity)
    lt.sum().backward()
    return lt.detach().numpy(), zt.grad.numpy()


def _case(seed, N=5, T=15, C=6, S=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, T, C)) * 2
    targets = rng.integers(1, C, size=(N, S))
    targets[0, :3] = [3, 3, 2]                          # repeated labels need blanks between
    in_lens = rng.integers(2 * S + 1, T + 1, size=N)
    in_lens[1] = T
    tgt_lens = rng.integers(0, S + 1, size=N)
    tgt_lens[0], tgt_lens[2] = S, 0
    return z, targets, in_lens, tgt_lens


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_torch(reduction, seed):
    z, targets, in_lens, tgt_lens = _case(seed)
    loss, grad = ctc_loss(z, targets, in_lens, tgt_lens, reduction=reduction)
    ref_loss, ref_grad = _torch(z, targets, in_lens, tgt_lens, reduction)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-12)
    assert (grad[np.arange(z.shape[1])[None, :] >= in_lens[:, None]] == 0).all()


def test_matches_torch_other_blank_and_long_input():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(2, 300, 4)) * 3                # long: plain products would underflow
    targets = np.array([[0, 1, 1, 2, 0], [2, 2, 2, 2, 2]])
    loss, grad = ctc_loss(z, targets, [300, 211], [5, 5], blank=3)
    ref_loss, ref_grad = _torch(z, targets, [300, 211], [5, 5], "mean", blank=3)
    assert math.isfinite(loss)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-12)


def test_gradient_by_finite_differences():
    z, targets, in_lens, tgt_lens = _case(3, N=3, T=8, C=4, S=3)
    z = np.ascontiguousarray(z)
    _, grad = ctc_loss(z, targets, in_lens, tgt_lens, reduction="sum")
    numeric = numeric_grad(lambda: ctc_loss(z, targets, in_lens, tgt_lens,
                                            reduction="sum")[0], z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_probability_is_the_sum_over_paths():
    """Two frames, target "1": the paths 1-1, b-1, 1-b; brute force over class pairs."""
    z = np.random.default_rng(4).normal(size=(1, 2, 3))
    p = np.exp(log_softmax(z))[0]
    expected = p[0, 1] * p[1, 1] + p[0, 0] * p[1, 1] + p[0, 1] * p[1, 0]
    loss, _ = ctc_loss(z, [[1]], [2], [1], reduction="sum")
    assert loss == pytest.approx(-math.log(expected), rel=1e-12)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_impossible_alignment_like_torch(zero_infinity):
    z, targets, in_lens, tgt_lens = _case(5)
    targets[1, :4], tgt_lens[1], in_lens[1] = [2, 2, 2, 2], 4, 6     # needs 7 frames, has 6
    loss, grad = ctc_loss(z, targets, in_lens, tgt_lens, reduction="none",
                          zero_infinity=zero_infinity)
    ref_loss, ref_grad = _torch(z, targets, in_lens, tgt_lens, "none", zero_infinity)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-12)   # NaN where torch's
    assert np.isinf(loss[1]) != zero_infinity


def test_float32_logits_give_float32_gradients():
    z, targets, in_lens, tgt_lens = _case(6)
    loss, grad = ctc_loss(z.astype(np.float32), targets, in_lens, tgt_lens)
    ref, _ = ctc_loss(z.astype(np.float32).astype(np.float64), targets, in_lens, tgt_lens)
    assert grad.dtype == np.float32 and loss == pytest.approx(ref, rel=1e-12)


def test_trainer_loss_reads_padded_targets():
    z, targets, in_lens, tgt_lens = _case(8)
    padded = np.where(np.arange(targets.shape[1])[None, :] < tgt_lens[:, None], targets, -1)
    loss, grad = ctc_trainer_loss()(z, padded, in_lens)
    ref_loss, ref_grad = ctc_loss(z, targets, in_lens, tgt_lens, zero_infinity=True)
    assert loss == ref_loss and np.array_equal(grad, ref_grad)


@pytest.mark.parametrize("bad, match", [
    (dict(targets=np.array([[0, 1]] * 2)), "targets"),                 # the blank as a label
    (dict(targets=np.array([[1, 9]] * 2)), "targets"),
    (dict(input_lengths=[0, 3]), "input_lengths"),
    (dict(input_lengths=[4, 9]), "input_lengths"),
    (dict(target_lengths=[3, 1]), "target_lengths"),
    (dict(reduction="avg"), "reduction"),
    (dict(blank=4), "blank"),
])
def test_errors_name_the_argument(bad, match):
    args = {**dict(logits=np.zeros((2, 4, 4)), targets=np.array([[1, 2]] * 2),
                   input_lengths=[4, 3], target_lengths=[2, 1]), **bad}
    extra = {k: args.pop(k) for k in ("reduction", "blank") if k in args}
    with pytest.raises(RnnkitError, match=match):
        ctc_loss(**args, **extra)


def _posteriors(rows, C=4):
    """Hand-made frames: each row a dict {class: probability}, the rest spread evenly."""
    out = np.zeros((len(rows), C))
    for t, row in enumerate(rows):
        rest = (1 - sum(row.values())) / max(C - len(row), 1)
        out[t] = [row.get(k, rest) for k in range(C)]
    return np.log(out)


def test_greedy_merges_repeats_and_drops_blanks():
    lp = _posteriors([{1: .9}, {1: .9}, {0: .9}, {1: .9}, {2: .9}, {2: .9}, {0: .9}, {3: .9}])
    assert greedy_decode(lp[None]) == [[1, 1, 2, 3]]
    assert greedy_decode(np.stack([lp, lp]), lengths=[8, 3]) == [[1, 1, 2, 3], [1]]


def test_beam_search_sums_paths_where_greedy_does_not():
    """The best path is blank-blank ("", p = 0.16), but "1" has p = 0.3*0.3 + 0.4*0.3 +
    0.3*0.4 = 0.33 summed over its three paths (and "2" the same): beam search finds it."""
    lp = _posteriors([{0: .4, 1: .3, 2: .3}, {0: .4, 1: .3, 2: .3}], C=3)
    assert greedy_decode(lp[None]) == [[]]
    labels, logp = prefix_beam_search(lp, beam=4)
    assert labels in ([1], [2])
    assert logp == pytest.approx(math.log(.3 * .3 + .4 * .3 + .3 * .4), rel=1e-9)
    loss, _ = ctc_loss(lp[None], [labels], [2], [1], reduction="sum")
    assert logp == pytest.approx(-loss, rel=1e-9)          # the same p(l|x) as the loss


def test_beam_search_keeps_repeats_apart():
    lp = _posteriors([{1: .9}, {0: .9}, {1: .9}, {1: .9}])
    assert prefix_beam_search(lp, beam=3)[0] == [1, 1]
    assert prefix_beam_search(lp, beam=1)[0] == greedy_decode(lp[None])[0]
