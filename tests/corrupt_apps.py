"""Corrupted run folders of every application (tests/corrupt.py's outcomes): each file that
`predict`, `evaluate` or `resume` reads (config.json, vocabularies, tags, labels, splits,
scalers, held-out data, metrics.jsonl, checkpoints, weights) is mutated in a copy of a tiny
trained run (tests/tiny_runs.py), and the three verbs run on it. The reference is what they
give on the good copy: predictions, evaluation metrics, and the resumed trainer's step and
weights.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from unittest import mock

import numpy as np

from corrupt import Unnamed, byte_mutations, json_mutations
from rnnkit.errors import RnnkitError
from tiny_runs import INPUT, make_data, make_runs

QUIET = {"log": lambda *a, **k: None}
# evaluation options that skip what is slow and reads nothing (plots, wide beams)
FAST_EVALUATE = {"forecast": {"plot": False}, "caption": {"beam": 1}, "translate": {"beam": 1}}
# fields that only label the output for a person (a class's name): another string there is a
# different valid file, which nothing can tell from the intended one
DISPLAY = {("labels.json", "names")}



class _Resumed(BaseException):
    """Trainer.fit was reached by resume: the restored trainer is the result."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer


def _stop(trainer, *a, **k):
    raise _Resumed(trainer)


def run_verbs(app_module, app: str, run: Path) -> dict:
    """What predict, evaluate and resume make of a run folder (paths written as RUN)."""
    inputs = INPUT[app].split("\n")
    predicted = app_module.predict(run, inputs)
    evaluated = app_module.evaluate(run, **QUIET, **FAST_EVALUATE.get(app, {}))
    try:
        with mock.patch("rnnkit.train.Trainer.fit", _stop):
            app_module.resume(run, **QUIET)
        trainer = None
    except _Resumed as r:
        trainer = r.trainer
    resumed = {"step": trainer.step, "params": {k: v.tolist() for k, v in
                                                 trainer.model.params.items()}} if trainer else {}
    text = json.dumps(_untimed([predicted, evaluated, resumed]), sort_keys=True, default=str)
    return {"text": text.replace(str(run), "RUN")}


def _untimed(value):
    """Results without their timings (translate's evaluate reports seconds)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


TIMINGS = {"seconds", "sentences_per_s", "real_time_factor"}
# files the verbs write and never read
OUTPUTS = {"eval.json", "translations_test.tsv", "translations_val.tsv"}


def _files(run: Path) -> list:
    """(relative path, kind) of every file the verbs read."""
    out = []
    for p in sorted(run.rglob("*")):
        if not p.is_file() or p.name in OUTPUTS or p.suffix == ".png":
            continue
        rel = p.relative_to(run)
        if p.suffix == ".json":
            out.append((rel, "json"))
        elif p.suffix == ".safetensors":
            out.append((rel, "weights-bytes"))
        else:                               # metrics.jsonl, held-out TSV files
            out.append((rel, "text-bytes"))
    return out


def _only_display_changed(rel: Path, raw: bytes, mutated: bytes) -> bool:
    """Does a flipped byte leave valid JSON that differs only in a display field?"""
    display = {field for name, field in DISPLAY if name == rel.name}
    if not display:
        return False
    try:
        a, b = json.loads(raw), json.loads(mutated)
    except ValueError:
        return False
    return isinstance(b, dict) and a.keys() == b.keys() and \
        all(a[k] == b[k] for k in a if k not in display)


def app_run_cases(folder: Path, app: str, rng, limit: int):
    """(loader, description, write(dst), good, load, compute, reference, kind) for one app."""
    import importlib
    from rnnkit.apps import APPS
    module = importlib.import_module(APPS[app])
    folder.mkdir(parents=True, exist_ok=True)
    data = make_data(folder.parent / "data")
    good = make_runs(folder.parent, data, [app])[app]
    loader = f"{app} run: predict, evaluate, resume"

    def load(d, rel=None):
        try:
            return run_verbs(module, app, d)
        except RnnkitError as e:            # one clear error: does it name the file?
            # the data file a run names in config.json is named as --data, with its path
            named = (rel.name, rel.with_suffix(".json").name, "RUN", "--data") if rel else ()
            if rel is not None and rel.name == "config.json":    # or the setting, by name
                named += tuple(f"{f.name}:" for f in dataclasses.fields(module.Config))
            if rel is not None and not any(w in str(e) for w in named):
                raise Unnamed(str(e)) from None
            raise

    def compute(result):
        return [np.frombuffer(result["text"].encode(), np.uint8)]
    # the reference at the path the cases run at, since outputs name their folder as RUN
    reference = compute(load(good))
    files = _files(good)
    per_file = max(2, limit // len(files))
    for rel, kind in files:
        if kind == "json":
            meta = json.loads((good / rel).read_text())
            for desc, mutated in json_mutations(meta, rng, per_file):
                yield (loader, f"{rel}: {desc}",
                       lambda d, m=mutated, r=rel: (d / r).write_text(json.dumps(m)),
                       good, lambda d, r=rel: load(d, r), compute, reference,
                       "json-display" if (rel.name, desc.split("/")[0]) in DISPLAY else "json")
            kind = "json-bytes"
        raw = (good / rel).read_bytes()
        for desc, mutated in byte_mutations(raw, rng, flips=max(1, per_file // 2),
                                            cuts=max(1, per_file // 4)):
            yield (loader, f"{rel}: {desc}", lambda d, m=mutated, r=rel: (d / r).write_bytes(m),
                   good, lambda d, r=rel: load(d, r), compute, reference,
                   "json-display" if _only_display_changed(rel, raw, mutated) else kind)
        yield (loader, f"{rel}: deleted", lambda d, r=rel: (d / r).unlink(), good,
               lambda d, r=rel: load(d, r), compute, reference, "deleted")
