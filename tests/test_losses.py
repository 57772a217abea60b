"""Losses against PyTorch on identical float64 inputs: values and gradients, with and without
lengths, both reductions, and the final-step (many-to-one) composition."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit import RnnkitError
from rnnkit.losses import (binary_cross_entropy, final_step, mean_squared_error,
                           sigmoid_binary_cross_entropy, softmax_cross_entropy, valid_mask)

N, T, K, V = 4, 6, 3, 7
LENGTHS = np.array([6, 2, 5, 1])


def torch_reduced(per: torch.Tensor, lengths, reduction: str) -> torch.Tensor:
    """Sum or mean of a per-item torch loss (N, ...) over the valid (N, T) steps."""
    if lengths is not None:
        mask = torch.tensor(valid_mask(N, T, lengths))
        mask = mask.reshape(mask.shape + (1,) * (per.ndim - 2)).expand_as(per)
        per = per[mask]
    return per.mean() if reduction == "mean" else per.sum()


def assert_matches_torch(ours, x: np.ndarray, ref: torch.Tensor, xt: torch.Tensor):
    loss, dx = ours
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12, abs=1e-300)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


# --- softmax cross-entropy -------------------------------------------------------------------

@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_cross_entropy_matches_torch(lengths, reduction, smoothing):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((N, T, V)) * 3
    targets = rng.integers(0, V, (N, T))
    z = torch.tensor(logits, requires_grad=True)
    per = F.cross_entropy(z.reshape(-1, V), torch.tensor(targets).reshape(-1),
                          reduction="none", label_smoothing=smoothing).reshape(N, T)
    ref = torch_reduced(per, lengths, reduction)
    out = softmax_cross_entropy(logits, targets, lengths, reduction=reduction,
                                label_smoothing=smoothing)
    assert_matches_torch(out, logits, ref, z)
    if lengths is not None:
        assert np.all(out[1][1, 2:] == 0)                 # padded steps: no gradient


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_2d_matches_torch(reduction):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((N, V))
    targets = rng.integers(0, V, N)
    z = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(z, torch.tensor(targets), reduction=reduction)
    assert_matches_torch(softmax_cross_entropy(logits, targets, reduction=reduction),
                         logits, ref, z)


def test_label_smoothing_changes_the_loss_and_rejects_bad_values():
    rng = np.random.default_rng(2)
    logits, targets = rng.standard_normal((N, T, V)) * 3, rng.integers(0, V, (N, T))
    assert softmax_cross_entropy(logits, targets, label_smoothing=0.1)[0] != \
        pytest.approx(softmax_cross_entropy(logits, targets)[0])
    for bad in (-0.1, 1.0, "0.1", True):
        with pytest.raises(RnnkitError, match="label_smoothing: expected a number in"):
            softmax_cross_entropy(logits, targets, label_smoothing=bad)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0]])
    loss, d = softmax_cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(2000.0)
    np.testing.assert_allclose(d, [[1.0, -1.0, 0.0]], atol=1e-12)


def test_cross_entropy_rejects_bad_targets():
    with pytest.raises(RnnkitError, match=r"targets: expected class ids in \[0, 2\], got min 0, max 3"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(RnnkitError, match="targets: expected shape"):
        softmax_cross_entropy(np.zeros((2, 4, 3)), np.zeros((2, 3), dtype=int))
    with pytest.raises(RnnkitError, match="targets: expected integer class ids"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2))


# --- element-wise losses: sigmoid BCE, BCE on probabilities, MSE --------------------------------

# (shape, masked): lengths need a time axis, (N, T) or (N, T, K)
SHAPES = [((N,), False), ((N, K), False), ((N, T), False), ((N, T), True),
          ((N, T, K), False), ((N, T, K), True)]


def inputs(kind: str, shape, seed=0):
    """(input, targets) for a loss kind; probabilities include exact 0 and 1 (the clamp)."""
    rng = np.random.default_rng(seed)
    if kind == "logits":
        return rng.standard_normal(shape) * 4, rng.uniform(0, 1, shape)
    if kind == "probs":
        p = rng.uniform(0.01, 0.99, shape)
        p.reshape(-1)[:2] = [0.0, 1.0]
        y = rng.uniform(0, 1, shape)
        y.reshape(-1)[:2] = [0.0, 1.0]                    # finite loss where p saturates
        return p, y
    return rng.standard_normal(shape), rng.standard_normal(shape)


CASES = [(sigmoid_binary_cross_entropy, F.binary_cross_entropy_with_logits, "logits"),
         (binary_cross_entropy, F.binary_cross_entropy, "probs"),
         (mean_squared_error, F.mse_loss, "pred")]


@pytest.mark.parametrize("ours,theirs,kind", CASES, ids=["sigmoid_bce", "bce", "mse"])
@pytest.mark.parametrize("shape,masked", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_elementwise_loss_matches_torch(ours, theirs, kind, shape, masked, reduction):
    lengths = LENGTHS if masked else None
    x, y = inputs(kind, shape)
    xt = torch.tensor(x, requires_grad=True)
    per = theirs(xt, torch.tensor(y), reduction="none")
    ref = torch_reduced(per, lengths, reduction)
    out = ours(x, y, lengths, reduction=reduction)
    assert_matches_torch(out, x, ref, xt)
    if masked:
        assert np.all(out[1][3, 1:] == 0) and np.all(out[1][1, 2:] == 0)


def test_binary_cross_entropy_clamps_log_at_minus_100_like_torch():
    p, y = np.array([0.0, 1.0, 1e-50]), np.array([1.0, 0.0, 1.0])
    loss, dp = binary_cross_entropy(p, y, reduction="sum")
    pt = torch.tensor(p, requires_grad=True)
    ref = F.binary_cross_entropy(pt, torch.tensor(y), reduction="sum")
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12) and loss == pytest.approx(300.0)
    np.testing.assert_allclose(dp, pt.grad.numpy(), rtol=1e-12)


def test_sigmoid_bce_is_stable_for_huge_logits():
    x, y = np.array([1000.0, -1000.0, 1000.0, -1000.0]), np.array([1.0, 0.0, 0.0, 1.0])
    loss, dx = sigmoid_binary_cross_entropy(x, y, reduction="sum")
    assert loss == pytest.approx(2000.0)
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0, -1.0])


@pytest.mark.parametrize("fn", [sigmoid_binary_cross_entropy, binary_cross_entropy,
                                mean_squared_error, softmax_cross_entropy])
def test_float32_in_float32_gradient_out(fn):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 0.9, (N, T, V)).astype(np.float32)
    y = (rng.integers(0, V, (N, T)) if fn is softmax_cross_entropy
         else rng.uniform(0, 1, (N, T, V)))
    loss, dx = fn(x, y, LENGTHS)
    assert isinstance(loss, float) and dx.dtype == np.float32 and dx.shape == x.shape


def test_elementwise_losses_reject_bad_input():
    x = np.zeros((N, T))
    with pytest.raises(RnnkitError, match=r"targets: expected shape \(4, 6\)"):
        mean_squared_error(x, np.zeros((N, T, 1)))
    y = x.copy()
    y[0, 0] = 2.0
    with pytest.raises(RnnkitError, match=r"targets: expected values in \[0, 1\], got min 0.0, max 2.0"):
        sigmoid_binary_cross_entropy(x, y)
    with pytest.raises(RnnkitError, match=r"probs: expected probabilities in \[0, 1\]"):
        binary_cross_entropy(x - 0.5, x)
    with pytest.raises(RnnkitError, match="logits: expected a float array, got dtype int64"):
        sigmoid_binary_cross_entropy(np.zeros((N, T), dtype=np.int64), x)
    y[0, 0] = np.nan
    with pytest.raises(RnnkitError, match="pred: expected finite values, got 1 NaN"):
        mean_squared_error(y, x)
    with pytest.raises(RnnkitError, match="pred: expected a 1-, 2- or 3-d array"):
        mean_squared_error(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)))
    with pytest.raises(RnnkitError, match="lengths: expected None for an input without a time axis"):
        mean_squared_error(np.zeros(N), np.zeros(N), LENGTHS)
    with pytest.raises(RnnkitError, match=r"lengths: expected values in \[1, 6\]"):
        mean_squared_error(x, x, np.array([7, 1, 1, 1]))
    with pytest.raises(RnnkitError, match="reduction: expected 'mean' or 'sum', got 'none'"):
        mean_squared_error(x, x, reduction="none")
    with pytest.raises(RnnkitError, match="targets: expected numbers"):
        mean_squared_error(x, np.full((N, T), "a"))


# --- final step (many-to-one) ----------------------------------------------------------------

FINAL_CASES = [(fn, torch_fn, kind, features) for fn, torch_fn, kind in CASES
               for features in (None, K)] + \
              [(softmax_cross_entropy, F.cross_entropy, "classes", V)]


@pytest.mark.parametrize("ours,theirs,kind,features", FINAL_CASES,
                         ids=[f"{c[0].__name__}-{'(N,T)' if c[3] is None else '(N,T,F)'}"
                              for c in FINAL_CASES])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_final_step_matches_torch(ours, theirs, kind, features, lengths, reduction):
    rng = np.random.default_rng(4)
    if kind == "classes":
        outputs, targets = rng.standard_normal((N, T, V)), rng.integers(0, V, N)
    else:
        shape = (N, T) if features is None else (N, T, features)
        outputs, _ = inputs(kind, shape, seed=5)
        targets = inputs(kind, shape[:1] + shape[2:], seed=6)[1]
    loss, dout = final_step(ours)(outputs, targets, lengths, reduction=reduction)

    ot = torch.tensor(outputs, requires_grad=True)
    last = (np.full(N, T) if lengths is None else lengths) - 1
    ref = theirs(ot[torch.arange(N), torch.tensor(last)], torch.tensor(targets),
                 reduction=reduction)
    assert_matches_torch((loss, dout), outputs, ref, ot)
    rest = np.ones((N, T), bool)
    rest[np.arange(N), last] = False
    assert np.all(dout[rest] == 0)                        # gradient only at the final step


def test_final_step_names_itself_and_checks_outputs():
    fn = final_step(mean_squared_error)
    assert fn.__name__ == "final_step(mean_squared_error)"
    with pytest.raises(RnnkitError, match=r"outputs: expected a 2-d \(N, T\) or 3-d"):
        fn(np.zeros(N), np.zeros(N))
    with pytest.raises(RnnkitError, match=r"targets: expected shape \(4,\)"):
        fn(np.zeros((N, T)), np.zeros((N, T)))
    with pytest.raises(RnnkitError, match="lengths"):
        fn(np.zeros((N, T)), np.zeros(N), np.array([0, 1, 1, 1]))


def test_softmax_cross_entropy_reads_time_major_logits_in_place_and_answers_in_their_layout():
    """A recurrent model's logits (N, T, V) are a view of time-major (T, N, V) memory: the loss
    and its gradient equal the batch-first copy's, and the gradient has the same layout (the
    head's backward then reads it without a copy)."""
    rng = np.random.default_rng(0)
    memory = rng.standard_normal((5, 3, 7)).astype(np.float32)     # (T, N, V)
    logits = memory.transpose(1, 0, 2)
    targets, lengths = rng.integers(0, 7, (3, 5)), np.array([5, 2, 4])
    for lens, eps in ((None, 0.0), (lengths, 0.0), (lengths, 0.1)):
        loss, d = softmax_cross_entropy(logits, targets, lens, label_smoothing=eps)
        loss_c, d_c = softmax_cross_entropy(np.ascontiguousarray(logits), targets, lens,
                                            label_smoothing=eps)
        assert loss == pytest.approx(loss_c, rel=1e-6)
        np.testing.assert_array_equal(d, d_c)
        assert d.transpose(1, 0, 2).flags.c_contiguous
