"""The second half of the fuzz cases (tests/fuzz/api_cases.py, which imports this module
last so that these cases register too): losses, optimisers and schedules, save/load,
interop and the data helpers; and ``warm_up``."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

import bad_values as bad
import rnnkit
from api_cases import (CASES, GOOD, Case, D, H, N, T, V, _layer, _lm, _x, case,  # noqa: F401
                       cases_for)


# --- losses ---------------------------------------------------------------------------------
def _loss(fn: str, first: str, shape, targets_of, x=GOOD, targets=GOOD, lengths=None,
          reduction="mean"):
    from rnnkit import losses
    x = _x(shape).clip(-0.9, 0.9) ** 2 if x is GOOD else x       # in [0, 1): a probability
    return getattr(losses, fn)(x, targets_of() if targets is GOOD else targets, lengths,
                               reduction=reduction)


for _fn, _first, _shape, _targets in (
        ("softmax_cross_entropy", "logits", (N, T, V), lambda: np.zeros((N, T), np.int64)),
        ("mean_squared_error", "pred", (N, T), lambda: np.zeros((N, T))),
        ("binary_cross_entropy", "probs", (N, T), lambda: np.zeros((N, T))),
        ("sigmoid_binary_cross_entropy", "logits", (N, T), lambda: np.zeros((N, T)))):
    _run = (lambda _fn=_fn, _first=_first, _shape=_shape, _targets=_targets, **kw:
            _loss(_fn, _first, _shape, _targets, **kw))
    CASES.append(Case(_fn, _first, lambda v, _run=_run: _run(x=v),
                      bad.arrays(_shape, np.float32, fixed=tuple(range(1, len(_shape))),
                                 any_float=True).filter(
                          lambda a, n=len(_shape): not (isinstance(a, np.ndarray) and a.ndim == n
                                                        and a.shape[:2] == (N, T) and a.size
                                                        and a.dtype.kind == "f"
                                                        and np.isfinite(a).all()))))
    CASES.append(Case(_fn, "targets", lambda v, _run=_run: _run(targets=v),
                      bad.id_arrays((N, T), V) if _first == "logits" and len(_shape) == 3
                      else bad.arrays((N, T), np.float64, fixed=(0, 1), list_ok=True)
                      .filter(lambda a, _fn=_fn: not (isinstance(a, np.ndarray)
                                                      and a.dtype.kind in "fiub"
                                             and a.shape == (N, T) and np.isfinite(a).all()
                                             and (_fn == "mean_squared_error" or a.dtype == bool
                                                  or ((a >= 0) & (a <= 1)).all())))))
    CASES.append(Case(_fn, "lengths", lambda v, _run=_run: _run(lengths=v), bad.lengths(N, T)))
    CASES.append(Case(_fn, "reduction", lambda v, _run=_run: _run(reduction=v),
                      bad.choices(("mean", "sum"))))


# --- optimisers, schedules, clipping --------------------------------------------------------
def _params():
    return {"W": np.ones((2, 3)), "b": np.ones(3)}


def _optimizer(name="adam", params=GOOD, **hyper):
    from rnnkit.optim import make_optimizer
    return make_optimizer(name, _params() if params is GOOD else params,
                          **{"lr": 0.1, **hyper})


# make_optimizer(name, ...) and make_schedule(name, ...) call their name "optimizer" and
# "schedule" in messages, as the CLI's --optimizer and --schedule do
case("make_optimizer", "optimizer", bad.choices(("sgd", "adagrad", "rmsprop", "adam", "adamw")))(
    lambda v: _optimizer(v))
cases_for("make_optimizer", _optimizer,
          {
           "lr": bad.positive_numbers().filter(lambda v: v != 0 and v != 0.0),
           "weight_decay": bad.nonnegative_numbers(),
           "params": bad.dicts_of_arrays(("W",), (2, 3), exact=False)})
case("make_optimizer", "momentum", bad.nonnegative_numbers())(
    lambda v: _optimizer("sgd", momentum=v))
case("make_optimizer", "betas", st.sampled_from(
    [(0.9,), (1.5, 0.9), (0.9, -0.1), (np.nan, 0.9), "0.9", None, 0.9, (0.9, 0.99, 0.1)]))(
    lambda v: _optimizer("adam", betas=v))
case("make_optimizer", "eps", bad.nonnegative_numbers())(lambda v: _optimizer("adam", eps=v))


@case("Optimizer.step", "grads", bad.dicts_of_arrays(("W", "b"), (2, 3)))
def _step(v):
    opt = _optimizer("sgd", params={"W": np.ones((2, 3)), "b": np.ones((2, 3))})
    return opt.step(v)


def _clip(fn, grads=GOOD, **kw):
    from rnnkit import optim
    return getattr(optim, fn)({"W": np.ones((2, 3))} if grads is GOOD else grads, **kw)


case("clip_grad_norm", "max_norm", bad.positive_numbers())(
    lambda v: _clip("clip_grad_norm", max_norm=v))
case("clip_grad_value", "clip_value", bad.positive_numbers())(
    lambda v: _clip("clip_grad_value", clip_value=v))
case("clip_grad_norm", "grads", bad.dicts_of_arrays(("W",), (2, 3), exact=False))(
    lambda v: _clip("clip_grad_norm", grads=v, max_norm=1.0))


def _schedule(name="cosine", base_lr=0.1, **kw):
    from rnnkit.optim import make_schedule
    kw = {"total_steps": 10, **kw} if name == "cosine" else kw
    return make_schedule(name, base_lr, **kw)


case("make_schedule", "schedule", bad.choices(("constant", "step", "cosine")))(
    lambda v: _schedule(v))
cases_for("make_schedule", _schedule,
          {
           "base_lr": bad.positive_numbers().filter(lambda v: v != 0 and v != 0.0),
           "warmup_steps": bad.sizes(lo=0, huge=False), "total_steps": bad.sizes(huge=False)})
case("Schedule.lr", "step", bad.sizes(lo=0, huge=False))(lambda v: _schedule().lr(v))


# --- save / load ----------------------------------------------------------------------------
case("save", "model", st.sampled_from([None, "model", {"params": {}}, np.zeros(3), 3]))(
    lambda v: rnnkit.save(v, Path(tempfile.mkdtemp()) / "m"))
case("save", "path", st.sampled_from([None, 3, 1.5, b"\0", ["m"], object(), ""]))(
    lambda v: rnnkit.save(_layer("RNN"), v))
case("load", "path", st.sampled_from([None, 3, 1.5, ["m"], object(), "", np.zeros(2)]))(
    lambda v: rnnkit.load(v))


# --- interop --------------------------------------------------------------------------------
def _from_torch_sd(v):
    from rnnkit.interop.torch_weights import from_torch_state_dict
    return from_torch_state_dict(_layer("GRU"), v)


case("from_torch_state_dict", "state_dict", bad.dicts_of_arrays(
    ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), (15, 4)))(_from_torch_sd)


def _torch(fn, v):
    from rnnkit.interop import torch_models
    return getattr(torch_models, fn)(v)


case("to_torch", "obj", st.sampled_from([None, "lstm", 3, np.zeros(3), {"rnn": 1}]))(
    lambda v: _torch("to_torch", v))
case("from_torch", "modules", st.sampled_from([None, "lstm", 3, np.zeros(3), [], [None]]))(
    lambda v: _torch("from_torch", v))


def _onnx_export(model=GOOD, opset=17, lengths=False, state=False):
    import rnnkit.onnx
    return rnnkit.onnx.export(_lm() if model is GOOD else model, opset=opset, lengths=lengths,
                              state=state)


cases_for("onnx.export", _onnx_export,
          {"opset": bad.sizes(lo=14), "lengths": bad.flags(), "state": bad.flags()})
case("onnx.export", "model", st.sampled_from([None, "lstm", 3, np.zeros(3), {"rnn": 1}]))(
    lambda v: _onnx_export(model=v))

_GRAPH: list = []


def _onnx_run(**feeds):
    import rnnkit.onnx
    if not _GRAPH:
        _GRAPH.append(rnnkit.onnx.export(_layer("LSTM"), lengths=True, state=True))
    good = {"input": _x(), "lengths": np.full(N, T, np.int32),
            "h0": np.zeros((1, N, H), np.float32), "c0": np.zeros((1, N, H), np.float32)}
    return rnnkit.onnx.run(_GRAPH[0], {**good, **feeds})


cases_for("onnx.run", _onnx_run,
          {"input": bad.arrays((N, T, D), fixed=(2,)),
           "lengths": bad.lengths(N, T).map(
               lambda v: v.astype(np.int32) if isinstance(v, np.ndarray) and v.dtype.kind
               in "iu" and v.size and np.abs(v).max() < 2 ** 31 else v),
           "h0": bad.arrays((1, N, H), fixed=(0, 2)), "c0": bad.arrays((1, N, H), fixed=(0, 2))})
case("onnx.run", "feeds", st.sampled_from([None, [], "input", {"input": _x(), "x": 1}, {}]))(
    lambda v: rnnkit.onnx.run(_GRAPH[0] if _GRAPH else _onnx_run() and _GRAPH[0], v))


# --- data helpers ---------------------------------------------------------------------------
def _data(name):
    import rnnkit.data
    return getattr(rnnkit.data, name)


cases_for("TextStream",
          lambda ids=GOOD, batch_size=2, seq_len=3, seed=0: _data("TextStream")(
              np.arange(40) % V if ids is GOOD else ids, batch_size, seq_len, seed=seed),
          {"ids": bad.id_arrays((40,), V).filter(lambda v: not (
              isinstance(v, np.ndarray) and v.dtype.kind in "iu" and v.ndim == 1
              and v.size >= 7 and v.min() >= 0)),
           "batch_size": bad.sizes(huge=False), "seq_len": bad.sizes(huge=False),
           "seed": bad.seeds()})
cases_for("ArrayDataset",
          lambda X=GOOD, y=GOOD, batch_size=2, seed=0, shuffle=True: _data("ArrayDataset")(
              _x() if X is GOOD else X, np.zeros(N) if y is GOOD else y, batch_size,
              seed=seed, shuffle=shuffle),
          {"X": st.sampled_from([None, 3, "X", np.float64(1.0), object()]),
           "y": st.sampled_from([np.zeros(N + 1), np.zeros(0), 3, "yy", object()]),
           "batch_size": bad.sizes(huge=False), "seed": bad.seeds(), "shuffle": bad.flags()})
cases_for("WindowDataset",
          lambda X=GOOD, y=GOOD, batch_size=2: _data("WindowDataset")(
              _x() if X is GOOD else X, np.zeros((N, 1)) if y is GOOD else y, batch_size),
          {"X": bad.arrays((N, T, D), fixed=(), list_ok=True).filter(
              lambda a: not (isinstance(a, (np.ndarray, list)) and np.ndim(a) == 3
                             and len(a) == N and np.asarray(a).dtype.kind in "fiu"
                             and np.isfinite(np.asarray(a)).all()
                             and np.shape(a)[1] > 0 and np.shape(a)[2] > 0)),
           "y": bad.arrays((N, 1), fixed=(0,), list_ok=True).filter(
              lambda a: not (isinstance(a, np.ndarray) and a.shape[:1] == (N,)
                             and a.dtype.kind in "fiu" and np.isfinite(a).all()
                             and a.ndim in (1, 2, 3) and a.size > 0)),
           "batch_size": bad.sizes(huge=False)})
case("make_windows", "lookback", bad.sizes())(
    lambda v: _data("make_windows")(np.arange(20.0), v))
case("make_windows", "horizon", bad.sizes())(
    lambda v: _data("make_windows")(np.arange(20.0), 3, v))
case("make_windows", "series", bad.arrays((20,), np.float64, fixed=(), list_ok=True).filter(
    lambda a: not (isinstance(a, (np.ndarray, list)) and np.asarray(a).dtype.kind in "fiu"
                   and np.ndim(a) in (1, 2) and np.size(a) > 0
                   and np.isfinite(np.asarray(a)).all() and len(a) >= 4)))(
    lambda v: _data("make_windows")(v, 3))
case("CharVocab", "chars", st.sampled_from([None, 3, [1, 2], ["ab", "c"], [None], b"abc"]))(
    lambda v: _data("CharVocab")(v))
case("CharVocab", "unk", st.sampled_from([3, "ab", ["?"], b"?"]))(
    lambda v: _data("CharVocab")("abc", unk=v))
case("CharVocab.encode", "text", st.sampled_from([None, 3, b"abc", ["a", "b"], "abz"]))(
    lambda v: _data("CharVocab")("abc").encode(v))
case("CharVocab.decode", "ids", bad.id_arrays((4,), 3))(
    lambda v: _data("CharVocab")("abc").decode(v))
case("WordVocab", "words", st.sampled_from([None, 3, "abc", [1, 2], ["a", "a"], ["<pad>"],
                                            [None], [["a"]]]))(
    lambda v: _data("WordVocab")(v))
cases_for("WordVocab.build",
          lambda texts=("a b", "b c"), min_freq=1, max_size=None: _data("WordVocab").build(
              texts, min_freq=min_freq, max_size=max_size),
          {"texts": st.sampled_from([None, 3, "a b", [3, 4], [None], [b"a b"]]),
           "min_freq": bad.sizes(huge=False),
           "max_size": bad.sizes(huge=False).filter(lambda v: v is not None)})
case("WordVocab.encode", "text", st.sampled_from([None, 3, b"a b", [1, 2], [None]]))(
    lambda v: _data("WordVocab")(["a", "b"]).encode(v))
case("WordVocab.decode", "ids", bad.id_arrays((4,), 4))(
    lambda v: _data("WordVocab")(["a", "b"]).decode(v))
case("pad_sequences", "seqs", st.sampled_from(
    [None, 3, "abc", [], [[1, 2], [3, "a"]], [np.zeros(0)], [np.zeros((2, 2)), np.zeros(2)],
     [np.array(["a", "b"])], [np.array([1.0, np.nan])], [np.zeros((2, 2, 2))],
     [object()]]))(lambda v: _data("pad_sequences")(v))
case("pad_sequences", "pad_value", st.sampled_from([None, "x", [0], object(), np.nan]))(
    lambda v: _data("pad_sequences")([np.arange(2), np.arange(3)], pad_value=v))
case("pad_sequences", "dtype", st.sampled_from(["foo", "", object, str, 3, [np.float32],
                                               np.dtype("U3"), "datetime64"]))(
    lambda v: _data("pad_sequences")([np.arange(2), np.arange(3)], dtype=v))
cases_for("bucket_batches",
          lambda lengths=(3, 1, 2), batch_size=2, rng=None: _data("bucket_batches")(
              np.asarray(lengths) if isinstance(lengths, tuple) else lengths, batch_size, rng),
          {"lengths": st.sampled_from([None, 3, "abc", [[1, 2], [3]], [1.5, 2.0], [-1, 2],
                                       [0, 2], np.zeros((2, 2), np.int64), [True, False],
                                       np.array([np.nan, 1.0]), []]),
           "batch_size": bad.sizes(huge=False), "rng": bad.rngs()})


def warm_up() -> None:
    """Good calls of each layer and model once, so that compiling the fast kernels (numba,
    ~1 min in a fresh checkout) is not counted as a bad value's call still running."""
    for cls_name in ("RNN", "LSTM", "GRU", "IndRNN"):
        for dtype in (np.float32, np.float64):
            layer = _layer(cls_name, num_layers=2, dtype=dtype)
            x = _x(dtype=dtype)
            out, _, cache = layer.forward(x, None, np.array([T, 1]))
            layer.backward(np.ones_like(out), None, cache)
            layer.forward(x, grad=False)
            layer.stepper(batch=N)(x[:, 0])
    _lm().generate([1, 2], 3, rng=np.random.default_rng(0))
    _onnx_run()
