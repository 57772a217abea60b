"""Optimisers over a flat dict of named parameters (updated in place), learning-rate schedules
and gradient clipping. Each optimiser follows torch.optim's update rule exactly; see base.py
for the state_dict format."""
from __future__ import annotations

import inspect

import numpy as np

from rnnkit.errors import fail
from rnnkit.optim.adaptive import (Adagrad, Adam, AdamW, RMSprop, adagrad_update, adam_update,
                                   rmsprop_update)
from rnnkit.optim.base import Optimizer
from rnnkit.optim.clip import clip_grad_norm, clip_grad_value, global_norm
from rnnkit.optim.schedules import (SCHEDULES, ConstantLR, CosineLR, LinearWarmup, Schedule,
                                    StepLR, make_schedule)
from rnnkit.optim.sgd import SGD, sgd_update

OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, params: dict[str, np.ndarray], **hyper) -> Optimizer:
    """OPTIMIZERS[name](params, **hyper), refusing unknown names and hyperparameters."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        fail("optimizer", f"one of {sorted(OPTIMIZERS)}", repr(name))
    cls = OPTIMIZERS[name]
    accepted = [k for k in inspect.signature(cls).parameters if k != "params"]
    for key in hyper:
        if key not in accepted:
            fail(f"{name} hyperparameter", f"one of {accepted}", repr(key))
    required = [k for k, p in inspect.signature(cls).parameters.items()
                if k != "params" and p.default is inspect.Parameter.empty and k not in hyper]
    if required:
        fail(f"{name} hyperparameters", f"a value for {required}", "none")
    return cls(params, **hyper)


__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "OPTIMIZERS",
           "make_optimizer", "sgd_update", "adagrad_update", "rmsprop_update", "adam_update",
           "Schedule", "ConstantLR", "StepLR", "CosineLR", "LinearWarmup", "SCHEDULES",
           "make_schedule", "global_norm", "clip_grad_norm", "clip_grad_value"]
