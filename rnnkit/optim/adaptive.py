"""Optimisers with per-element step sizes: Adagrad, RMSprop, Adam, AdamW (as torch.optim).

The update rules are stateless functions on arrays, written as torch's documentation states
them (eps is added to the square root, outside it, in all four); the classes hold the
hyperparameters and the slots. Weight decay is L2 (added to the gradient) except in AdamW,
where it is decoupled (p <- p (1 - lr weight_decay) before the Adam step).
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail
from rnnkit.fast import adam_update    # Adam's rule, written once (rnnkit.fast.kernels.updates)
from rnnkit.optim.base import Optimizer, check_flag, check_number


def adagrad_update(p, g, state_sum, *, lr, eps, weight_decay) -> None:
    """g <- g + wd p;  state_sum += g^2;  p <- p - lr g / (sqrt(state_sum) + eps)."""
    if weight_decay:
        g = g + weight_decay * p
    state_sum += g * g
    p -= lr * (g / (np.sqrt(state_sum) + eps))


def rmsprop_update(p, g, v, g_ave, b, *, lr, alpha, eps, momentum, weight_decay) -> None:
    """One RMSprop step; g_ave only when centered, b only with momentum (else None).

        g     <- g + wd p
        v      = alpha v + (1 - alpha) g^2
        g_ave  = alpha g_ave + (1 - alpha) g                   (centered)
        d      = sqrt(v - g_ave^2) + eps  (centered)   or   sqrt(v) + eps
        b      = momentum b + g / d;   p <- p - lr b            (momentum > 0)
        p     <- p - lr g / d                                   (otherwise)
    """
    if weight_decay:
        g = g + weight_decay * p
    v *= alpha
    v += (1 - alpha) * (g * g)
    if g_ave is not None:
        g_ave += (1 - alpha) * (g - g_ave)
        d = np.sqrt(v - g_ave * g_ave)
    else:
        d = np.sqrt(v)
    d += eps
    if b is not None:
        b *= momentum
        b += g / d
        p -= lr * b
    else:
        p -= lr * (g / d)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011) as torch.optim.Adagrad without lr_decay. Slot: state_sum
    (torch's "sum"), starting at initial_accumulator_value."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-2, eps: float = 1e-10,
                 initial_accumulator_value: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, eps=eps,
                         initial_accumulator_value=initial_accumulator_value,
                         weight_decay=weight_decay)

    @staticmethod
    def check_hyper(lr, eps, initial_accumulator_value, weight_decay) -> dict:
        return {"lr": check_number("lr", lr, 0), "eps": check_number("eps", eps, 0),
                "initial_accumulator_value": check_number(
                    "initial_accumulator_value", initial_accumulator_value, 0),
                "weight_decay": check_number("weight_decay", weight_decay, 0)}

    @staticmethod
    def slot_names(hyper):
        return ("state_sum",)

    def init_slot(self, slot, p):
        return np.full_like(p, self.initial_accumulator_value)

    def update(self, p, g, slots, t):
        adagrad_update(p, g, slots["state_sum"], lr=self.lr, eps=self.eps,
                       weight_decay=self.weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton) as torch.optim.RMSprop. Slots: v (torch's "square_avg"); g_ave
    ("grad_avg") when centered; b ("momentum_buffer") when momentum > 0."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                         centered=centered, weight_decay=weight_decay)

    @staticmethod
    def check_hyper(lr, alpha, eps, momentum, centered, weight_decay) -> dict:
        return {"lr": check_number("lr", lr, 0), "alpha": check_number("alpha", alpha, 0, 1),
                "eps": check_number("eps", eps, 0),
                "momentum": check_number("momentum", momentum, 0),
                "centered": check_flag("centered", centered),
                "weight_decay": check_number("weight_decay", weight_decay, 0)}

    @staticmethod
    def slot_names(hyper):
        return ("v",) + (("g_ave",) if hyper["centered"] else ()) + \
            (("b",) if hyper["momentum"] > 0 else ())

    def update(self, p, g, slots, t):
        rmsprop_update(p, g, slots["v"], slots.get("g_ave"), slots.get("b"), lr=self.lr,
                       alpha=self.alpha, eps=self.eps, momentum=self.momentum,
                       weight_decay=self.weight_decay)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction and L2 weight decay, as torch.optim.Adam.
    Slots: m, v (torch's "exp_avg", "exp_avg_sq")."""
    decoupled = False

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @staticmethod
    def check_hyper(lr, betas, eps, weight_decay) -> dict:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            fail("betas", "a pair (beta1, beta2)", repr(betas))
        return {"lr": check_number("lr", lr, 0),
                "betas": (check_number("betas[0]", betas[0], 0, 1, hi_open=True),
                          check_number("betas[1]", betas[1], 0, 1, hi_open=True)),
                "eps": check_number("eps", eps, 0),
                "weight_decay": check_number("weight_decay", weight_decay, 0)}

    @staticmethod
    def slot_names(hyper):
        return ("m", "v")

    def update(self, p, g, slots, t):
        adam_update(p, g, slots["m"], slots["v"], t, lr=self.lr, beta1=self.betas[0],
                    beta2=self.betas[1], eps=self.eps, weight_decay=self.weight_decay,
                    decoupled=self.decoupled)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, as torch.optim.AdamW."""
    decoupled = True

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
