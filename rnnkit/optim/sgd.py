"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (torch.optim.SGD)."""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail
from rnnkit.optim.base import Optimizer, check_flag, check_number


def sgd_update(p: np.ndarray, g: np.ndarray, b: np.ndarray | None, t: int, *, lr: float,
               momentum: float, dampening: float, nesterov: bool, weight_decay: float) -> None:
    """One SGD step on p in place; b is the momentum buffer (None without momentum).

        g   <- g + weight_decay p
        b_t  = g                                      (t = 1)
        b_t  = momentum b_{t-1} + (1 - dampening) g   (t > 1)
        g   <- g + momentum b_t   (nesterov)   or   b_t
        p   <- p - lr g
    """
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        if t == 1:
            b[...] = g
        else:
            b *= momentum
            b += (1 - dampening) * g
        g = g + momentum * b if nesterov else b
    p -= lr * g


class SGD(Optimizer):
    """SGD as torch.optim.SGD. Slot: b (momentum buffer; torch's "momentum_buffer"), only with
    momentum > 0. nesterov needs momentum > 0 and dampening = 0, as in torch."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, dampening: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, dampening=dampening)

    @staticmethod
    def check_hyper(lr, momentum, nesterov, weight_decay, dampening) -> dict:
        h = {"lr": check_number("lr", lr, 0),
             "momentum": check_number("momentum", momentum, 0),
             "nesterov": check_flag("nesterov", nesterov),
             "weight_decay": check_number("weight_decay", weight_decay, 0),
             "dampening": check_number("dampening", dampening, 0, 1)}
        if h["nesterov"] and (h["momentum"] == 0 or h["dampening"] != 0):
            fail("nesterov", "False unless momentum > 0 and dampening = 0",
                 f"True with momentum={h['momentum']}, dampening={h['dampening']}")
        return h

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        return ("b",) if hyper["momentum"] else ()

    def update(self, p, g, slots, t):
        sgd_update(p, g, slots.get("b"), t, lr=self.lr, momentum=self.momentum,
                   dampening=self.dampening, nesterov=self.nesterov,
                   weight_decay=self.weight_decay)
