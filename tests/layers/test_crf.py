"""The linear-chain CRF: log Z and Viterbi against brute force over every tag path, every
gradient against finite differences (float64, variable lengths), padding changes nothing."""
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # tests/: gradcheck
from gradcheck import numeric_grad  # noqa: E402

from rnnkit.errors import RnnkitError  # noqa: E402
from rnnkit.layers.crf import crf_backward, crf_forward, crf_viterbi  # noqa: E402


def _problem(N=3, T=4, K=3, seed=0, lengths=(4, 2, 1)):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((N, T, K))
    params = {"A": rng.standard_normal((K, K)), "a_start": rng.standard_normal(K),
              "a_end": rng.standard_normal(K)}
    tags = rng.integers(0, K, (N, T))
    return E, tags, np.array(lengths), params


def _path_score(e, path, p):
    s = p["a_start"][path[0]] + p["a_end"][path[-1]] + sum(e[t, k] for t, k in enumerate(path))
    return s + sum(p["A"][i, j] for i, j in zip(path[:-1], path[1:]))


def _brute_force(e, p):
    """All K^L paths of one row e (L, K): (log Z, best path)."""
    L, K = e.shape
    paths = list(itertools.product(range(K), repeat=L))
    scores = np.array([_path_score(e, path, p) for path in paths])
    return np.log(np.exp(scores - scores.max()).sum()) + scores.max(), paths[scores.argmax()]


def test_crf_nll_equals_brute_force_enumeration_of_all_paths():
    E, tags, lengths, params = _problem()
    nll, _ = crf_forward(E, tags, lengths, params)
    for n, L in enumerate(lengths):
        log_z, _ = _brute_force(E[n, :L], params)
        assert nll[n] == pytest.approx(log_z - _path_score(E[n, :L], tags[n, :L], params),
                                       rel=1e-12, abs=1e-12)
    # and p(gold) summed over all paths is one: exp(-nll) over every tagging of row 0
    total = sum(np.exp(-crf_forward(E[:1], np.array([path]), lengths[:1], params)[0][0])
                for path in itertools.product(range(3), repeat=4))
    assert total == pytest.approx(1.0, rel=1e-12)


def test_crf_viterbi_equals_brute_force_argmax():
    for seed in range(5):
        E, _, lengths, params = _problem(N=4, T=5, K=3, seed=seed, lengths=(5, 3, 1, 4))
        path = crf_viterbi(E, lengths, params)
        for n, L in enumerate(lengths):
            assert tuple(path[n, :L]) == _brute_force(E[n, :L], params)[1]
            assert (path[n, L:] == 0).all()


@pytest.mark.parametrize("name", ["emissions", "A", "a_start", "a_end"])
def test_crf_gradients_match_finite_differences(name):
    E, tags, lengths, params = _problem(N=3, T=5, K=4, lengths=(5, 3, 1))
    w = np.array([0.7, -1.3, 2.0])            # dL/dnll: a weighted sum of the rows' losses

    def loss():
        return float(w @ crf_forward(E, tags, lengths, params)[0])
    dE, grads = crf_backward(w, crf_forward(E, tags, lengths, params)[1])
    analytic = dE if name == "emissions" else grads[name]
    numeric = numeric_grad(loss, E if name == "emissions" else params[name])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    if name == "emissions":                   # nothing flows to padded steps
        assert (dE[1, 3:] == 0).all() and (dE[2, 1:] == 0).all()


def test_crf_padding_changes_nothing():
    E, tags, lengths, params = _problem(N=3, T=4, K=3)
    nll, cache = crf_forward(E, tags, lengths, params)
    dE, grads = crf_backward(np.ones(3), cache)
    path = crf_viterbi(E, lengths, params)
    # longer padding filled with garbage scores and tags
    rng = np.random.default_rng(9)
    E2 = np.concatenate([E, 50 * rng.standard_normal((3, 3, 3))], axis=1)
    E2[1, 2:4] = -40.0
    E2[2, 1:4] = 30.0
    tags2 = np.concatenate([tags, rng.integers(0, 3, (3, 3))], axis=1)
    tags2[1, 2:4], tags2[2, 1:4] = 2, 1
    nll2, cache2 = crf_forward(E2, tags2, lengths, params)
    dE2, grads2 = crf_backward(np.ones(3), cache2)
    np.testing.assert_allclose(nll2, nll, rtol=1e-13)
    np.testing.assert_allclose(dE2[:, :4] * (np.arange(4) < lengths[:, None])[..., None],
                               dE * (np.arange(4) < lengths[:, None])[..., None], rtol=1e-12)
    assert (dE2[:, 4:] == 0).all()
    for k in grads:
        np.testing.assert_allclose(grads2[k], grads[k], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(crf_viterbi(E2, lengths, params)[:, :4], path)
    # each row alone, unpadded, gives the same loss
    for n, L in enumerate(lengths):
        alone, _ = crf_forward(E[n:n + 1, :L], tags[n:n + 1, :L], None, params)
        assert alone[0] == pytest.approx(nll[n], rel=1e-13)


def test_crf_is_stable_with_large_scores():
    E, tags, lengths, params = _problem()
    nll, cache = crf_forward(1e4 * E, tags, lengths, params)
    dE, grads = crf_backward(np.ones(3), cache)
    assert np.isfinite(nll).all() and (nll >= -1e-9).all()
    assert np.isfinite(dE).all() and all(np.isfinite(g).all() for g in grads.values())


def test_crf_rejects_bad_inputs():
    E, tags, lengths, params = _problem()
    with pytest.raises(RnnkitError, match="tags: expected tag ids in"):
        crf_forward(E, np.full_like(tags, 3), lengths, params)
    with pytest.raises(RnnkitError, match="A: expected shape"):
        crf_forward(E, tags, lengths, dict(params, A=np.zeros((2, 2))))
    with pytest.raises(RnnkitError, match="lengths"):
        crf_viterbi(E, np.array([5, 1, 1]), params)
