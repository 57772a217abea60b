"""Layer normalisation (Ba, Kiros & Hinton 2016) over blocks of features, forward and back.

    LN(a; gamma, beta) = gamma * (a - mu) / sqrt(sigma^2 + eps) + beta

with mu and sigma^2 the mean and (biased) variance of each row's features, taken over the
whole row (``groups=1``) or over each of ``groups`` equal blocks of it separately (one per
gate). eps = 1e-5, as haste's and torch.nn.LayerNorm's. Not a cell: the layer-normalised
cells (rnnkit.cells.lnlstm, lngru) share it.
"""
import numpy as np

EPS = 1e-5


def layer_norm(a, gamma, beta, groups=1):
    """a (N, F) -> (gamma * a_hat + beta, cache); beta None: no bias."""
    N, F = a.shape
    v = a.reshape(N, groups, F // groups)
    mu = v.mean(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(v.var(axis=2, keepdims=True) + EPS)         # (N, groups, 1)
    a_hat = ((v - mu) * rstd).reshape(N, F)
    y = a_hat * gamma if beta is None else a_hat * gamma + beta
    return y, (a_hat, rstd)


def layer_norm_back(dy, gamma, cache, groups=1):
    """dL/dy (N, F) -> (dL/da, dL/dgamma, dL/dbeta)."""
    a_hat, rstd = cache
    N, F = dy.shape
    d_hat = (dy * gamma).reshape(N, groups, F // groups)
    v_hat = a_hat.reshape(N, groups, F // groups)
    da = rstd * (d_hat - d_hat.mean(axis=2, keepdims=True)
                 - v_hat * (d_hat * v_hat).mean(axis=2, keepdims=True))
    return da.reshape(N, F), (dy * a_hat).sum(axis=0), dy.sum(axis=0)
