"""Learning-rate schedules: lr as a pure function of the number of optimiser steps already taken.

A schedule holds no state, so resuming from a checkpoint needs nothing but the optimiser's
step_count. Use it before each step::

    opt.lr = schedule.lr(opt.step_count)
    opt.step(grads)

`step` counts from 0, so ``lr(0)`` is the rate of the first update; this is the rate torch's
scheduler gives after ``step`` calls of ``scheduler.step()``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Protocol

from rnnkit.errors import fail
from rnnkit.optim.base import check_number


class Schedule(Protocol):
    def lr(self, step: int) -> float: ...


MAX_STEPS = 1 << 62         # (a step count beyond int64 is a mistake, not a plan)


def _check_count(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            not lo <= value <= MAX_STEPS:
        fail(name, f"an integer in [{lo}, 2**62]", repr(value))
    return int(value)


@dataclass(frozen=True)
class ConstantLR:
    """lr = base_lr at every step. (Not torch's ConstantLR, which scales by a factor for a
    number of steps; this is what torch gives with no scheduler.)"""
    base_lr: float

    def __post_init__(self):
        check_number("base_lr", self.base_lr, 0)

    def lr(self, step: int) -> float:
        _check_count("step", step, 0)
        return float(self.base_lr)


@dataclass(frozen=True)
class StepLR:
    """lr = base_lr gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR."""
    base_lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        check_number("base_lr", self.base_lr, 0)
        _check_count("step_size", self.step_size, 1)
        check_number("gamma", self.gamma, 0)

    def lr(self, step: int) -> float:
        return float(self.base_lr * self.gamma ** (_check_count("step", step, 0) // self.step_size))


@dataclass(frozen=True)
class CosineLR:
    """lr = min_lr + (base_lr - min_lr) (1 + cos(pi step / total_steps)) / 2, then min_lr.

    As torch CosineAnnealingLR(T_max=total_steps, eta_min=min_lr) for step <= total_steps;
    past the end it stays at min_lr, where torch's cosine would climb back up.
    """
    base_lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self):
        check_number("base_lr", self.base_lr, 0)
        _check_count("total_steps", self.total_steps, 1)
        check_number("min_lr", self.min_lr, 0, self.base_lr)

    def lr(self, step: int) -> float:
        t = min(_check_count("step", step, 0), self.total_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * (
            1 + math.cos(math.pi * t / self.total_steps)) / 2


@dataclass(frozen=True)
class LinearWarmup:
    """A linear ramp over `warmup_steps` steps, then the schedule `after`, restarted at 0.

    With base = after.lr(0):
        lr(step) = base (start_factor + (1 - start_factor) step / warmup_steps)   step < warmup
        lr(step) = after.lr(step - warmup_steps)                                  otherwise
    which is torch's SequentialLR([LinearLR(start_factor, 1.0, warmup_steps), after],
    milestones=[warmup_steps]); start_factor defaults to LinearLR's 1/3. start_factor = 0
    (which torch refuses) ramps from 0, spending the first step at lr 0.
    """
    warmup_steps: int
    after: Schedule
    start_factor: float = 1 / 3

    def __post_init__(self):
        _check_count("warmup_steps", self.warmup_steps, 1)
        if not callable(getattr(self.after, "lr", None)):
            fail("after", "a schedule with an .lr(step) method", type(self.after).__name__)
        check_number("start_factor", self.start_factor, 0, 1)

    def lr(self, step: int) -> float:
        step = _check_count("step", step, 0)
        if step >= self.warmup_steps:
            return self.after.lr(step - self.warmup_steps)
        f = self.start_factor
        return self.after.lr(0) * (f + (1 - f) * step / self.warmup_steps)


SCHEDULES = {"constant": ConstantLR, "step": StepLR, "cosine": CosineLR}


def make_schedule(name: str, base_lr: float, *, warmup_steps: int = 0,
                  warmup_start_factor: float = 1 / 3, **kw) -> Schedule:
    """SCHEDULES[name](base_lr, **kw), wrapped in LinearWarmup when warmup_steps > 0.

    e.g. make_schedule("cosine", 3e-3, total_steps=900, warmup_steps=100): 100 warmup steps,
    then 900 cosine steps (total_steps counts the steps after the warmup).
    """
    if not isinstance(name, str) or name not in SCHEDULES:
        fail("schedule", f"one of {sorted(SCHEDULES)}", repr(name))
    cls = SCHEDULES[name]
    allowed = [f.name for f in fields(cls) if f.name != "base_lr"]
    for key in kw:
        if key not in allowed:
            fail(f"{name} schedule option", f"one of {allowed + ['warmup_steps', 'warmup_start_factor']}",
                 repr(key))
    try:
        schedule = cls(base_lr, **kw)
    except TypeError as e:                                # a required option left out
        fail(f"{name} schedule options", f"values for {allowed}", f"{sorted(kw)} ({e})")
    if _check_count("warmup_steps", warmup_steps, 0) == 0:
        return schedule
    return LinearWarmup(warmup_steps, schedule, warmup_start_factor)
