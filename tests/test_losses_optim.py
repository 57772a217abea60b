"""Loss and optimiser against PyTorch on identical inputs (float64)."""
import numpy as np
import pytest
import torch

from rnnkit import RnnkitError
from rnnkit.losses import softmax_cross_entropy
from rnnkit.optim import Adam, clip_grad_norm


def test_cross_entropy_matches_torch_with_lengths():
    rng = np.random.default_rng(0)
    N, T, V = 4, 6, 7
    logits = rng.standard_normal((N, T, V)) * 3
    targets = rng.integers(0, V, (N, T))
    lengths = np.array([6, 2, 5, 1])
    loss, dlogits = softmax_cross_entropy(logits, targets, lengths)

    z = torch.tensor(logits, requires_grad=True)
    mask = torch.tensor(np.arange(T)[None, :] < lengths[:, None])
    per_step = torch.nn.functional.cross_entropy(
        z.reshape(-1, V), torch.tensor(targets).reshape(-1), reduction="none").reshape(N, T)
    ref = per_step[mask].mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, z.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert np.all(dlogits[1, 2:] == 0)                    # padded steps: no gradient


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


def test_adam_matches_torch_over_several_steps():
    rng = np.random.default_rng(1)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    tparams = [torch.tensor(params["W"].copy(), requires_grad=True),
               torch.tensor(params["b"].copy(), requires_grad=True)]
    opt = Adam(params, lr=0.01, weight_decay=0.1)
    topt = torch.optim.Adam(tparams, lr=0.01, weight_decay=0.1)
    for _ in range(5):
        grads = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
        opt.step(grads)
        for tp, g in zip(tparams, grads.values()):
            tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(params["W"], tparams[0].detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(params["b"], tparams[1].detach().numpy(), rtol=1e-12)


def test_clip_grad_norm_matches_torch_and_reports_norm_before():
    rng = np.random.default_rng(2)
    grads = {"a": rng.standard_normal((5, 5)) * 10, "b": rng.standard_normal(3)}
    tgrads = [torch.zeros(5, 5, dtype=torch.float64, requires_grad=True),
              torch.zeros(3, dtype=torch.float64, requires_grad=True)]
    for t, g in zip(tgrads, grads.values()):
        t.grad = torch.tensor(g.copy())
    ref_norm = torch.nn.utils.clip_grad_norm_(tgrads, 1.0)
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(ref_norm.item(), rel=1e-12)
    np.testing.assert_allclose(grads["a"], tgrads[0].grad.numpy(), rtol=1e-12)
    after = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
    assert after == pytest.approx(1.0, rel=1e-5)
