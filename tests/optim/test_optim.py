"""Optimisers, schedules and clipping against torch.optim / torch.nn.utils on identical float64
inputs; state_dict round trips that resume bit-identically; the errors a user can cause."""
import json
import warnings

import numpy as np
import pytest
import torch

from rnnkit import RnnkitError
from rnnkit.optim import (OPTIMIZERS, SGD, Adam, AdamW, ConstantLR, CosineLR, LinearWarmup,
                          StepLR, clip_grad_norm, clip_grad_value, global_norm, make_optimizer,
                          make_schedule)

SHAPES = {"W_xh": (3, 4), "b_h": (4,), "W_hh": (4, 4)}
TORCH = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
         "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05}),
    ("sgd", {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("adagrad", {"lr": 0.1}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1, "eps": 1e-3}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 0.01, "centered": True, "alpha": 0.9}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "eps": 1e-3}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.3}),
]
IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in h.items()) for n, h in CONFIGS]


def fresh_params(seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s) for n, s in SHAPES.items()}


def random_grads(rng):
    return {n: rng.standard_normal(s) for n, s in SHAPES.items()}


@pytest.mark.parametrize("name,hyper", CONFIGS, ids=IDS)
def test_optimizer_matches_torch_over_several_steps(name, hyper):
    params = fresh_params()
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params.values()]
    opt = make_optimizer(name, params, **hyper)
    topt = TORCH[name](tparams, **hyper)
    rng = np.random.default_rng(1)
    for k in range(8):
        lr = hyper["lr"] * (1 - 0.1 * k)                   # lr set between steps, as a schedule does
        opt.lr = lr
        topt.param_groups[0]["lr"] = lr
        grads = random_grads(rng)
        before = {n: g.copy() for n, g in grads.items()}
        opt.step(grads)
        for tp, g in zip(tparams, grads.values()):
            tp.grad = torch.tensor(g)
        topt.step()
        for n in grads:                                    # the caller's gradients are untouched
            np.testing.assert_array_equal(grads[n], before[n])
    assert opt.step_count == 8
    for p, tp in zip(params.values(), tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_adamw_default_decay_and_adam_import():
    assert AdamW(fresh_params()).weight_decay == 1e-2
    assert Adam(fresh_params()).weight_decay == 0.0
    assert OPTIMIZERS["adam"] is Adam


@pytest.mark.parametrize("name,hyper", CONFIGS, ids=IDS)
def test_state_dict_round_trip_resumes_bit_identically(name, hyper):
    k, m = 4, 3
    rng = np.random.default_rng(2)
    grads = [random_grads(rng) for _ in range(k + m)]

    straight = fresh_params()
    opt = make_optimizer(name, straight, **hyper)
    for g in grads:
        opt.step(g)

    first = fresh_params()
    opt1 = make_optimizer(name, first, **hyper)
    for g in grads[:k]:
        opt1.step(g)
    sd = opt1.state_dict()
    sd = {**json.loads(json.dumps({k_: v for k_, v in sd.items() if k_ != "slots"})),
          "slots": sd["slots"]}                            # the scalars survive JSON
    saved_params = {n: p.copy() for n, p in first.items()}
    opt1.step(grads[k])                                    # must not leak into the saved copy

    resumed = saved_params
    opt2 = make_optimizer(name, resumed, **{**hyper, "lr": 0.5})    # lr comes from the state
    opt2.load_state_dict(sd)
    assert opt2.step_count == k and opt2.lr == hyper["lr"]
    for g in grads[k:]:
        opt2.step(g)
    for n in straight:
        np.testing.assert_array_equal(resumed[n], straight[n])
    after = opt2.state_dict()
    final = opt.state_dict()
    assert after["hyper"] == final["hyper"] and after["step_count"] == final["step_count"]
    assert after["slots"].keys() == final["slots"].keys()
    for key in final["slots"]:
        np.testing.assert_array_equal(after["slots"][key], final["slots"][key])


def test_state_dict_layout():
    sd = Adam(fresh_params(), lr=0.01).state_dict()
    assert sd["type"] == "Adam" and sd["step_count"] == 0
    assert sd["hyper"] == {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    assert sorted(sd["slots"]) == sorted(f"{s}/{n}" for s in "mv" for n in SHAPES)
    assert sorted(SGD(fresh_params(), lr=0.1).state_dict()["slots"]) == []     # no momentum
    rms = make_optimizer("rmsprop", fresh_params(), centered=True, momentum=0.9)
    assert {k.split("/")[0] for k in rms.state_dict()["slots"]} == {"v", "g_ave", "b"}
    rms.lr = np.float32(0.25)                              # e.g. set from a NumPy schedule
    assert json.loads(json.dumps(rms.state_dict()["hyper"]))["lr"] == 0.25


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    params = fresh_params()
    opt = Adam(params, lr=0.01)
    opt.step(random_grads(np.random.default_rng(3)))
    good = opt.state_dict()
    snapshot = opt.state_dict()

    def broken(**change):
        sd = {**good, "slots": dict(good["slots"]), "hyper": dict(good["hyper"])}
        for key, value in change.items():
            sd[key] = value
        return sd

    def rejects(sd, pattern):
        with pytest.raises(RnnkitError, match=pattern):
            opt.load_state_dict(sd)

    rejects(broken(type="AdamW"), r"state_dict\['type'\]: expected 'Adam', got 'AdamW'")
    rejects({k: v for k, v in good.items() if k != "hyper"}, "state_dict: expected a dict with keys")
    rejects(broken(hyper={**good["hyper"], "momentum": 0.9}), r"state_dict\['hyper'\]: expected the keys")
    rejects(broken(hyper={**good["hyper"], "lr": -1.0}), "lr: expected a number in")
    rejects(broken(hyper={**good["hyper"], "betas": [0.9]}), "betas: expected a pair")
    rejects(broken(step_count=-1), r"state_dict\['step_count'\]: expected a non-negative integer")
    rejects(broken(step_count=1.5), r"state_dict\['step_count'\]")
    slots = dict(good["slots"])
    del slots["v/b_h"]
    rejects(broken(slots=slots), r"state_dict\['slots'\]\['v/b_h'\]: expected an array of shape \(4,\), got nothing")
    rejects(broken(slots={**good["slots"], "m/W_zz": np.zeros(3)}),
            r"state_dict\['slots'\]\['m/W_zz'\]: expected no such slot")
    rejects(broken(slots={**good["slots"], "m/W_hh": np.zeros((4, 3))}),
            r"state_dict\['slots'\]\['m/W_hh'\]: expected a float64 array of shape \(4, 4\), got a float64 array of shape \(4, 3\)")
    rejects(broken(slots={**good["slots"], "m/W_hh": np.zeros((4, 4), np.float32)}),
            r"'m/W_hh'\]: expected a float64 array of shape \(4, 4\), got a float32")
    rejects(broken(slots={**good["slots"], "m/W_hh": [[0.0] * 4] * 4}), "got list")
    other = {"W_xh": np.zeros((3, 4))}
    with pytest.raises(RnnkitError, match=r"state_dict\['slots'\]\['m/b_h'\]: expected no such slot"):
        Adam(other).load_state_dict(good)

    after = opt.state_dict()                               # nothing was half-loaded
    assert after["hyper"] == snapshot["hyper"] and after["step_count"] == snapshot["step_count"]
    for key in snapshot["slots"]:
        np.testing.assert_array_equal(after["slots"][key], snapshot["slots"][key])


def test_load_state_dict_copies_into_the_existing_arrays():
    opt = SGD(fresh_params(), lr=0.1, momentum=0.9)
    opt.step(random_grads(np.random.default_rng(4)))
    buffer = opt.slots["b"]["W_xh"]
    sd = opt.state_dict()
    sd["slots"]["b/W_xh"] += 1
    opt.load_state_dict(sd)
    assert opt.slots["b"]["W_xh"] is buffer
    np.testing.assert_array_equal(buffer, sd["slots"]["b/W_xh"])
    sd["slots"]["b/W_xh"] += 1                              # no aliasing with the loaded dict
    assert not np.array_equal(buffer, sd["slots"]["b/W_xh"])


def test_step_rejects_missing_unknown_and_misshapen_gradients():
    opt = Adam(fresh_params())
    grads = random_grads(np.random.default_rng(5))
    with pytest.raises(RnnkitError, match=r"grads: expected one gradient per parameter.*missing \['b_h'\], unknown \[\]"):
        opt.step({n: g for n, g in grads.items() if n != "b_h"})
    with pytest.raises(RnnkitError, match=r"missing \[\], unknown \['dW_xh'\]"):
        opt.step({**grads, "dW_xh": grads["W_xh"]})
    with pytest.raises(RnnkitError, match=r"grads\['W_hh'\]: expected an array of shape \(4, 4\)"):
        opt.step({**grads, "W_hh": np.zeros((4, 3))})
    opt.lr = -0.1
    with pytest.raises(RnnkitError, match="lr: expected a number in"):
        opt.step(grads)
    assert opt.step_count == 0


def test_constructors_and_make_optimizer_reject_bad_hyperparameters():
    p = fresh_params()
    with pytest.raises(RnnkitError, match=r"optimizer: expected one of \['adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'\], got 'adamax'"):
        make_optimizer("adamax", p)
    with pytest.raises(RnnkitError, match=r"adam hyperparameter: expected one of \['lr', 'betas', 'eps', 'weight_decay'\], got 'momentum'"):
        make_optimizer("adam", p, momentum=0.9)
    with pytest.raises(RnnkitError, match=r"sgd hyperparameters: expected a value for \['lr'\]"):
        make_optimizer("sgd", p)
    with pytest.raises(RnnkitError, match="nesterov: expected False unless momentum > 0"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(RnnkitError, match=r"betas\[1\]: expected a number in \[0, 1\)"):
        Adam(p, betas=(0.9, 1.0))
    with pytest.raises(RnnkitError, match="lr: expected a number in"):
        Adam(p, lr=float("nan"))
    with pytest.raises(RnnkitError, match="centered: expected True or False"):
        make_optimizer("rmsprop", p, centered="yes")
    with pytest.raises(RnnkitError, match="params: expected a non-empty dict"):
        Adam({})
    with pytest.raises(RnnkitError, match=r"params\['n'\]: expected a float NumPy array, got dtype int64"):
        Adam({"n": np.zeros(3, dtype=np.int64)})


def test_float32_parameters_stay_float32():
    params = {"W": np.ones((2, 3), np.float32)}
    for name in OPTIMIZERS:
        opt = make_optimizer(name, params, lr=0.1)
        opt.step({"W": np.full((2, 3), 0.5, np.float32)})
        assert params["W"].dtype == np.float32
        assert all(a.dtype == np.float32 for a in opt.state_dict()["slots"].values())


# --- schedules -------------------------------------------------------------------------------

def torch_lrs(make_scheduler, base_lr, steps=50):
    """The lr torch uses for each of `steps` optimiser steps under a scheduler."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # "step() before optimizer.step()"
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return lrs


S = torch.optim.lr_scheduler
SCHEDULE_CASES = [
    (ConstantLR(0.1), lambda o: S.ConstantLR(o, factor=1.0, total_iters=0)),
    (StepLR(0.1, step_size=7), lambda o: S.StepLR(o, step_size=7)),
    (StepLR(0.1, step_size=5, gamma=0.5), lambda o: S.StepLR(o, step_size=5, gamma=0.5)),
    (CosineLR(0.1, total_steps=50), lambda o: S.CosineAnnealingLR(o, T_max=50)),
    (CosineLR(0.1, total_steps=30, min_lr=1e-3),
     lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=1e-3)),
    (LinearWarmup(10, CosineLR(0.1, total_steps=40)),
     lambda o: S.SequentialLR(o, [S.LinearLR(o, total_iters=10), S.CosineAnnealingLR(o, T_max=40)],
                              milestones=[10])),
    (LinearWarmup(8, StepLR(0.1, step_size=10, gamma=0.5), start_factor=0.01),
     lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.01, total_iters=8),
                                  S.StepLR(o, step_size=10, gamma=0.5)], milestones=[8])),
]


@pytest.mark.parametrize("ours,theirs", SCHEDULE_CASES, ids=[repr(c[0]) for c in SCHEDULE_CASES])
def test_schedule_matches_torch_over_50_steps(ours, theirs):
    steps = 31 if isinstance(ours, CosineLR) and ours.total_steps == 30 else 50
    expected = torch_lrs(theirs, 0.1, steps)
    got = [ours.lr(s) for s in range(steps)]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)


def test_cosine_stays_at_min_lr_after_the_end_and_warmup_from_zero():
    cos = CosineLR(0.1, total_steps=30, min_lr=1e-3)
    assert [cos.lr(s) for s in (30, 31, 100)] == [1e-3] * 3
    warm = LinearWarmup(4, ConstantLR(0.2), start_factor=0.0)
    np.testing.assert_allclose([warm.lr(s) for s in range(6)], [0, 0.05, 0.1, 0.15, 0.2, 0.2])


def test_make_schedule_builds_and_wraps_in_warmup():
    assert make_schedule("step", 0.1, step_size=3, gamma=0.5) == StepLR(0.1, 3, 0.5)
    assert make_schedule("constant", 0.1) == ConstantLR(0.1)
    sched = make_schedule("cosine", 0.1, total_steps=40, warmup_steps=10, warmup_start_factor=0.5)
    assert sched == LinearWarmup(10, CosineLR(0.1, 40), 0.5)
    with pytest.raises(RnnkitError, match=r"schedule: expected one of \['constant', 'cosine', 'step'\], got 'exp'"):
        make_schedule("exp", 0.1)
    with pytest.raises(RnnkitError, match="cosine schedule option: expected one of .*got 'T_max'"):
        make_schedule("cosine", 0.1, T_max=10)
    with pytest.raises(RnnkitError, match="step schedule options: expected values for"):
        make_schedule("step", 0.1)
    with pytest.raises(RnnkitError, match=r"total_steps: expected an integer in \[1, 2\*\*62\], got 0"):
        CosineLR(0.1, total_steps=0)
    with pytest.raises(RnnkitError, match=r"min_lr: expected a number in \[0, 0.1\]"):
        CosineLR(0.1, total_steps=10, min_lr=0.2)
    with pytest.raises(RnnkitError, match=r"step: expected an integer in \[0, 2\*\*62\], got -1"):
        StepLR(0.1, 3).lr(-1)
    with pytest.raises(RnnkitError, match="after: expected a schedule"):
        LinearWarmup(3, 0.1)


# --- clipping --------------------------------------------------------------------------------

def grads_and_torch(seed, scale):
    rng = np.random.default_rng(seed)
    grads = {"a": rng.standard_normal((5, 5)) * scale, "b": rng.standard_normal(3) * scale}
    tgrads = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(tgrads, grads.values()):
        t.grad = torch.tensor(g.copy())
    return grads, tgrads


@pytest.mark.parametrize("scale", [10.0, 0.01], ids=["clipped", "untouched"])
def test_clip_grad_norm_matches_torch_and_reports_norm_before(scale):
    grads, tgrads = grads_and_torch(2, scale)
    before = {n: g.copy() for n, g in grads.items()}
    ref_norm = torch.nn.utils.clip_grad_norm_(tgrads, 1.0)
    assert global_norm(grads) == pytest.approx(ref_norm.item(), rel=1e-12)
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(ref_norm.item(), rel=1e-12)
    for g, t in zip(grads.values(), tgrads):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    if scale < 1:
        for n in grads:
            np.testing.assert_array_equal(grads[n], before[n])
    else:
        assert global_norm(grads) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_value_matches_torch_and_reports_norm_before():
    grads, tgrads = grads_and_torch(3, 2.0)
    norm_before = global_norm(grads)
    torch.nn.utils.clip_grad_value_(tgrads, 1.5)
    assert clip_grad_value(grads, 1.5) == norm_before
    for g, t in zip(grads.values(), tgrads):
        np.testing.assert_array_equal(g, t.grad.numpy())
    assert max(np.abs(g).max() for g in grads.values()) == 1.5


def test_clipping_rejects_bad_arguments():
    with pytest.raises(RnnkitError, match=r"max_norm: expected a number in \(0, inf\), got 0"):
        clip_grad_norm({"a": np.ones(2)}, 0)
    with pytest.raises(RnnkitError, match="clip_value: expected a number in"):
        clip_grad_value({"a": np.ones(2)}, -1.0)
    with pytest.raises(RnnkitError, match=r"grads\['a'\]: expected a NumPy array, got list"):
        global_norm({"a": [1.0]})


def test_nonfinite_norm_leaves_gradients_alone():
    grads = {"a": np.array([np.inf, 1.0]), "b": np.array([2.0])}
    assert clip_grad_norm(grads, 1.0) == np.inf
    np.testing.assert_array_equal(grads["a"], [np.inf, 1.0])
