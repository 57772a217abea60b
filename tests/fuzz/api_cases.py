"""The public Python API as fuzz cases: one call with one argument replaced by a bad value.

A ``Case`` is (call, argument, run, bad): ``run(value)`` makes the call with every other
argument good and ``value`` in place of ``argument``; ``bad`` is the strategy of values it
must refuse. ``outcome`` sorts what happened into the four counts of docs/reliability.md:
"clear" (an RnnkitError naming the argument), "wrong name" (an RnnkitError naming
something else), "other <Type>" (any other exception) and "accepted" (no error at all).
Shared by tests/fuzz/test_api_fuzz.py and benchmarks/fuzz_report.py.
"""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import bad_values as bad
import rnnkit
from rnnkit.errors import RnnkitError

N, T, D, H, V = 2, 3, 4, 5, 7           # the good calls' sizes


@dataclass(frozen=True)
class Case:
    call: str                           # what is called, e.g. "LSTM.forward"
    arg: str                            # the argument as the user wrote it
    run: Callable[[object], object]
    bad: st.SearchStrategy

    @property
    def id(self) -> str:
        return f"{self.call}:{self.arg}"


def names(message: str, arg: str) -> bool:
    """The message names ``arg`` as a word of its own (``lengths``, not ``sequence_lens``)."""
    return re.search(rf"(?<![\w.]){re.escape(arg)}(?![\w])", message) is not None


class StillRunning(Exception):
    """A call still running after SECONDS: it took the bad value (e.g. generate(length=2**40))."""


SECONDS = 20


def _alarm(signum, frame):
    raise StillRunning(f"still running after {SECONDS} s")


def outcome(case: Case, value) -> tuple[str, str]:
    """-> (kind, detail): kind "clear", "wrong name", "other <Type>" or "accepted" (also a
    call still running after SECONDS, stopped then)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    # again every second after the first: an alarm landing in a garbage-collector callback
    # is swallowed there ("Exception ignored"), and the call would run on
    signal.setitimer(signal.ITIMER_REAL, SECONDS, 1.0)
    try:
        case.run(value)
    except StillRunning as e:
        return "accepted", str(e)
    except RnnkitError as e:
        return ("clear" if names(str(e), case.arg) else "wrong name"), str(e)[:200]
    except Exception as e:          # noqa: BLE001  (counting them is the point)
        return f"other {type(e).__name__}", str(e)[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "accepted", ""


CASES: list[Case] = []
GOOD = object()             # "the good value" as a default (None is a bad value to try)


def case(call: str, arg: str, bad_values: st.SearchStrategy):
    def register(run):
        CASES.append(Case(call, arg, run, bad_values))
        return run
    return register


def cases_for(call: str, run: Callable, args: dict) -> None:
    """One case per argument of ``run(**{arg: value})`` (its other arguments left default)."""
    for arg, values in args.items():
        CASES.append(Case(call, arg, lambda v, arg=arg: run(**{arg: v}), values))


def _x(shape=(N, T, D), dtype=np.float32):
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


# --- recurrent layers ---------------------------------------------------------------------
def _layer(cls_name: str, **kw):
    if cls_name == "IndRNN":
        return rnnkit.Recurrent("indrnn", kw.pop("input_size", D), kw.pop("hidden_size", H),
                                **{"seed": 0, **kw})
    cls = getattr(rnnkit, cls_name)
    return cls(kw.pop("input_size", D), kw.pop("hidden_size", H), **{"seed": 0, **kw})


def _state(cls_name: str, n=N):
    h = np.zeros((1, n, H), np.float32)
    return (h, h.copy()) if cls_name == "LSTM" else h


for _cls in ("RNN", "LSTM", "GRU", "IndRNN"):
    cases_for(_cls, lambda _cls=_cls, **kw: _layer(_cls, **kw),
              {"input_size": bad.sizes(), "hidden_size": bad.sizes(),
               "num_layers": bad.sizes(), "dropout": bad.probabilities(),
               "dtype": bad.dtypes(), "seed": bad.seeds(), "init": bad.choices(
                   ("pytorch", "glorot_orthogonal", "irnn")),
               "bidirectional": bad.flags(), "reverse": bad.flags()})

    def _forward(_cls=_cls, x=GOOD, state=None, lengths=None, rng=None, training=False):
        layer = _layer(_cls, num_layers=2, dropout=0.5)
        return layer.forward(_x() if x is GOOD else x, state, lengths, rng=rng,
                             training=training)

    cases_for(f"{_cls}.forward", lambda _cls=_cls, **kw: _forward(_cls, **kw),
              {"x": bad.arrays((N, T, D), fixed=(2,)),
               "lengths": bad.lengths(N, T),
               "rng": bad.rngs(), "training": bad.flags()})
    CASES.append(Case(f"{_cls}.forward", "state",
                      lambda v, _cls=_cls: _layer(_cls).forward(_x(), v),
                      bad.arrays((1, N, H), fixed=(0, 1, 2), none_ok=True)
                      if _cls != "LSTM" else st.one_of(
                          bad.arrays((1, N, H), fixed=(0, 1, 2), none_ok=True),
                          bad.arrays((1, N, H), fixed=(0, 1, 2)).map(
                              lambda a: (a, np.zeros((1, N, H), np.float32))))))

    def _backward(_cls=_cls, dout=None, dstate=None, cache=None, use_cache=True):
        layer = _layer(_cls)
        _, _, good = layer.forward(_x(), None)
        return layer.backward(dout, dstate, good if use_cache else cache)

    cases_for(f"{_cls}.backward", lambda _cls=_cls, **kw: _backward(_cls, **kw),
              {"dout": bad.arrays((N, T, H), fixed=(0, 1, 2), none_ok=True),
               "dstate": bad.arrays((1, N, H), fixed=(0, 1, 2), none_ok=True)})
    CASES.append(Case(f"{_cls}.backward", "cache",
                      lambda v, _cls=_cls: _backward(_cls, cache=v, use_cache=False),
                      st.sampled_from([None, {}, {"N": 2}, [], "cache", 3])))
    CASES.append(Case(f"{_cls}.stepper", "batch",
                      lambda v, _cls=_cls: _layer(_cls).stepper(None, v), bad.sizes()))
    CASES.append(Case(f"{_cls}.stepper", "state",
                      lambda v, _cls=_cls: _layer(_cls).stepper(v),
                      bad.arrays((1, N, H), fixed=(0, 2), none_ok=True)))
    CASES.append(Case(f"{_cls}.stepper step", "x_t",
                      lambda v, _cls=_cls: _layer(_cls).stepper(batch=N)(v),
                      bad.arrays((N, D), fixed=(0, 1))))

cases_for("RNN", lambda **kw: _layer("RNN", **kw),
          {"nonlinearity": bad.choices(("tanh", "relu")), "clip": bad.positive_numbers()
           .filter(lambda v: v is not None)})


# --- Dense, Embedding, Attention, CRF -------------------------------------------------------
cases_for("Dense", lambda **kw: rnnkit.Dense(**{"in_features": H, "out_features": V,
                                                "seed": 0, **kw}),
          {"in_features": bad.sizes(), "out_features": bad.sizes(), "seed": bad.seeds(),
           "dtype": bad.dtypes(), "activation": bad.choices(("identity", "softmax", "sigmoid"))})
case("Dense.forward", "h", bad.arrays((N, T, H), fixed=(2,)))(
    lambda v: rnnkit.Dense(H, V, seed=0).forward(v))


@case("Dense.backward", "dy", bad.arrays((N, T, V), fixed=(0, 1, 2)))
def _dense_backward(v):
    dense = rnnkit.Dense(H, V, seed=0)
    _, cache = dense.forward(_x((N, T, H)))
    return dense.backward(v, cache)


cases_for("Embedding", lambda **kw: rnnkit.Embedding(**{"num_embeddings": V,
                                                        "embedding_dim": D, "seed": 0, **kw}),
          {"num_embeddings": bad.sizes(), "embedding_dim": bad.sizes(), "seed": bad.seeds(),
           "dtype": bad.dtypes()})
case("Embedding.forward", "ids", bad.id_arrays((N, T), V))(
    lambda v: rnnkit.Embedding(V, D, seed=0).forward(v))


@case("Embedding.backward", "dout", bad.arrays((N, T, D), fixed=(0, 1, 2)))
def _embedding_backward(v):
    emb = rnnkit.Embedding(V, D, seed=0)
    _, cache = emb.forward(np.zeros((N, T), np.int64))
    return emb.backward(v, cache)


def _attention(**kw):
    from rnnkit.layers import Attention
    return Attention(**{"kind": "additive", "query_size": H, "key_size": D, "seed": 0, **kw})


cases_for("Attention", _attention,
          {"kind": bad.choices(("dot", "general", "additive")), "query_size": bad.sizes(),
           "key_size": bad.sizes(), "attn_size": bad.sizes().filter(lambda v: v is not None),
           "seed": bad.seeds(), "dtype": bad.dtypes()})
cases_for("Attention.forward",
          lambda q=GOOD, keys=GOOD, lengths=None: _attention().forward(
              _x((N, 2, H)) if q is GOOD else q, _x((N, T, D)) if keys is GOOD else keys,
              lengths),
          {"q": bad.arrays((N, 2, H), fixed=(0, 2)), "keys": bad.arrays((N, T, D), fixed=(2,)),
           "lengths": bad.lengths(N, T)})


def _crf(fn: str, emissions=GOOD, tags=GOOD, lengths=None):
    from rnnkit.layers import crf
    params = crf.init_crf_params(V)
    e = _x((N, T, V)) if emissions is GOOD else emissions
    if fn == "viterbi":
        return crf.crf_viterbi(e, lengths, params)
    return crf.crf_forward(e, np.zeros((N, T), np.int64) if tags is GOOD else tags,
                           lengths, params)


cases_for("crf_forward", lambda **kw: _crf("forward", **kw),
          {"emissions": bad.arrays((N, T, V), fixed=(2,)), "tags": bad.id_arrays((N, T), V),
           "lengths": bad.lengths(N, T)})
cases_for("crf_viterbi", lambda **kw: _crf("viterbi", **kw),
          {"emissions": bad.arrays((N, T, V), fixed=(2,)), "lengths": bad.lengths(N, T)})


# --- models ---------------------------------------------------------------------------------
def _sequence_model(**kw):
    from rnnkit.models import SequenceModel
    return SequenceModel(**{"input_size": D, "hidden_size": H, "output_size": 3, "seed": 0,
                            **kw})


cases_for("SequenceModel", _sequence_model,
          {"input_size": bad.sizes(), "hidden_size": bad.sizes(), "num_layers": bad.sizes(),
           "output_size": bad.sizes(), "embed_dim": bad.sizes(),
           "cell": bad.choices(("rnn", "lstm", "gru", "indrnn", "lnlstm", "lngru")),
           "dropout": bad.probabilities(), "readout": bad.choices(("steps", "last")),
           "output_activation": bad.choices(("identity", "softmax", "sigmoid")),
           "dtype": bad.dtypes(), "seed": bad.seeds(), "bidirectional": bad.flags()})
cases_for("SequenceModel.forward",
          lambda inputs=GOOD, lengths=None: _sequence_model().forward(
              _x() if inputs is GOOD else inputs, None, lengths),
          {"inputs": bad.arrays((N, T, D), fixed=(2,)), "lengths": bad.lengths(N, T)})
case("SequenceModel.step", "x_t", bad.arrays((N, D), fixed=(1,)))(
    lambda v: _sequence_model().step(v))


def _lm(**kw):
    from rnnkit.models import LanguageModel
    return LanguageModel(**{"vocab_size": V, "embed_dim": D, "hidden_size": H, "seed": 0, **kw})


cases_for("LanguageModel", _lm,
          {"vocab_size": bad.sizes(), "embed_dim": bad.sizes(), "hidden_size": bad.sizes(),
           "num_layers": bad.sizes(),
           "cell": bad.choices(("rnn", "lstm", "gru", "indrnn", "lnlstm", "lngru")),
           "dropout": bad.probabilities(), "seed": bad.seeds(), "dtype": bad.dtypes()})
case("LanguageModel.forward", "inputs", bad.id_arrays((N, T), V))(
    lambda v: _lm().forward(v))


@case("LanguageModel.backward", "doutputs", bad.arrays((N, T, V), fixed=(0, 1, 2)))
def _lm_backward(v):
    lm = _lm()
    _, _, cache = lm.forward(np.zeros((N, T), np.int64))
    return lm.backward(v, None, cache)


cases_for("LanguageModel.generate",
          lambda prime=(1, 2), length=3, temperature=1.0, rng=None: _lm().generate(
              list(prime) if isinstance(prime, tuple) else prime, length,
              temperature=temperature, rng=rng),
          {"prime": st.one_of(bad.id_arrays((3,), V), st.sampled_from(
              [[], [1, -1], [V], [1.5], ["a"], [[1, 2]], [True], "12", (1, 2.0), [None]])),
           "length": bad.sizes(lo=0), "temperature": bad.positive_numbers(),
           "rng": bad.rngs()})
case("LanguageModel.stepper", "batch", bad.sizes())(lambda v: _lm().stepper(batch=v))
case("LanguageModel.stepper step", "x_t", bad.id_arrays((N,), V))(
    lambda v: _lm().stepper(batch=N)(v))


def _tagger(**kw):
    from rnnkit.models.tagger import Tagger
    return Tagger(**{"num_words": 10, "num_chars": 8, "num_tags": 4, "word_dim": 3,
                     "char_dim": 2, "char_hidden": 2, "hidden_size": 3, "seed": 0, **kw})


cases_for("Tagger", _tagger,
          {"num_words": bad.sizes(), "num_tags": bad.sizes(), "hidden_size": bad.sizes(),
           "case_dim": bad.sizes(lo=0), "dropout": bad.probabilities(),
           "output": bad.choices(("softmax", "crf")), "seed": bad.seeds(),
           "dtype": bad.dtypes()})
case("Tagger.forward", "inputs", st.sampled_from(
    [None, _x(), np.zeros((N, T), np.int64), {"words": np.zeros((N, T))}, "text"]))(
    lambda v: _tagger().forward(v))


# the other half registers its cases on import; it reads the names above, so it comes last
from api_cases_training import warm_up  # noqa: E402,F401
