"""Corrupted files for every loader, and the outcome of loading each (tests/files and
benchmarks/fuzz_files.py).

A case is (loader name, description, a function that writes the corrupted file(s) into a
copy of a good folder). ``outcome`` loads it and classifies the result:

    clear        one RnnkitError
    raw          another exception type (a defect)
    changed      loaded, but the model computes something else (a defect, unless the bytes
                 changed were inside weight data, which no format can check: "weights")
    same         loaded and computes the same (the change did not matter)
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError

# values put in place of a JSON field: wrong types, absurd sizes, signs, empties
REPLACEMENTS = [None, "x", [], {}, True, -1, 0, 10 ** 7, 10 ** 12, 2.5, float("nan")]


def json_paths(obj, prefix=()):
    """Every key path of a JSON value (dict keys and list indices up to 3 per list)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield prefix + (i,)
            yield from json_paths(v, prefix + (i,))


def _get_parent(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    return obj


def json_mutations(obj, rng: random.Random, limit: int):
    """(description, mutated copy) for deletions, replacements and unknown keys."""
    out = []
    for path in json_paths(obj):
        for repl in REPLACEMENTS:
            out.append((f"{'/'.join(map(str, path))} = {repl!r}", path, "set", repl))
        out.append((f"{'/'.join(map(str, path))} deleted", path, "del", None))
    for path in [()] + [p for p in json_paths(obj)]:
        out.append((f"unknown key under {'/'.join(map(str, path)) or 'top'}", path, "add", None))
    rng.shuffle(out)
    for desc, path, op, value in out[:limit]:
        copy = json.loads(json.dumps(obj))
        try:
            if op == "add":
                target = copy
                for k in path:
                    target = target[k]
                if not isinstance(target, dict):
                    continue
                target["not_a_field"] = 1
            else:
                parent = _get_parent(copy, path)
                if op == "del":
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
        yield desc, copy


def byte_mutations(data: bytes, rng: random.Random, flips: int, cuts: int):
    """(description, bytes): truncations and single bit flips at random places."""
    for _ in range(cuts):
        at = rng.randrange(len(data))
        yield f"truncated at {at}/{len(data)}", data[:at]
    for _ in range(flips):
        at, bit = rng.randrange(len(data)), rng.randrange(8)
        b = bytearray(data)
        b[at] ^= 1 << bit
        yield f"bit {bit} of byte {at}/{len(data)} flipped", bytes(b)


class Unnamed(Exception):
    """A loader's RnnkitError that names neither the corrupted file nor RUN / --data."""


def classify(load, compute, reference) -> str:
    """load() -> object; compute(object) -> arrays compared with ``reference``."""
    try:
        obj = load()
    except RnnkitError:
        return "clear"
    except Unnamed:
        return "unnamed"
    except Exception as e:          # noqa: BLE001 (this is what the harness measures)
        return f"raw:{type(e).__name__}"
    try:
        got = compute(obj)
    except RnnkitError:
        return "clear"                  # refused at first use, still one clear error
    except Exception as e:          # noqa: BLE001
        return f"raw-at-use:{type(e).__name__}"
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, reference)) and \
        len(got) == len(reference)
    return "same" if same else "changed"


def fresh_copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


# --- the loaders and their good files ----------------------------------------------------------
X = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
IDS = np.array([[1, 2, 3, 4], [4, 3, 2, 1]])


def make_models(folder: Path) -> dict:
    """name -> (folder of a saved model, its reference outputs, compute)."""
    import rnnkit
    from rnnkit.models import LanguageModel, SequenceModel
    made = {}
    for name, model, inputs in (
            ("sequence_model", SequenceModel(input_size=3, hidden_size=4, num_layers=2,
                                             cell="gru", output_size=2, seed=0), X),
            ("language_model", LanguageModel(6, 3, 4, cell="lstm", seed=0), IDS),
            ("lstm_layer", rnnkit.LSTM(3, 4, bidirectional=True, clip=0.5, seed=0), X)):
        rnnkit.save(model, folder / name)
        compute = (lambda m, inputs=inputs: [m.forward(inputs, grad=False)[0]])
        made[name] = (folder / name, compute(model), compute)
    return made


def model_cases(folder: Path, rng: random.Random, limit: int):
    """(loader, description, write(dst), load(dst), compute, reference) for model files."""
    import rnnkit
    for name, (good, reference, compute) in make_models(folder / "good").items():
        meta = json.loads((good / "model.json").read_text())
        for desc, mutated in json_mutations(meta, rng, limit):
            yield ("rnnkit.load (model.json)", f"{name}: {desc}",
                   lambda d, m=mutated: (d / "model.json").write_text(json.dumps(m)),
                   good, lambda d: rnnkit.load(d), compute, reference, "json")
        for file in ("model.json", "model.safetensors"):
            data = (good / file).read_bytes()
            for desc, mutated in byte_mutations(data, rng, flips=limit // 4, cuts=limit // 8):
                kind = "weights-bytes" if file.endswith("safetensors") else "json-bytes"
                yield (f"rnnkit.load ({file})", f"{name}: {desc}",
                       lambda d, m=mutated, f=file: (d / f).write_bytes(m),
                       good, lambda d: rnnkit.load(d), compute, reference, kind)


def vocab_cases(folder: Path, rng: random.Random, limit: int):
    from rnnkit.data.vocab import CharVocab, WordVocab, load_vocab
    folder.mkdir(parents=True, exist_ok=True)
    for name, vocab, text in (("char", CharVocab("hello world"), "hello"),
                              ("word", WordVocab.build(["the cat sat", "the mat"], bos=True),
                               "the cat")):
        good = folder / f"{name}_vocab"
        good.mkdir(exist_ok=True)
        vocab.save(good / "vocab.json")
        compute = (lambda v, text=text: [np.asarray(v.encode(text))])
        reference = compute(vocab)
        meta = json.loads((good / "vocab.json").read_text())
        load = (lambda d: load_vocab(d / "vocab.json"))
        for desc, mutated in json_mutations(meta, rng, limit):
            yield ("load_vocab", f"{name}: {desc}",
                   lambda d, m=mutated: (d / "vocab.json").write_text(json.dumps(m)),
                   good, load, compute, reference, "json")
        data = (good / "vocab.json").read_bytes()
        for desc, mutated in byte_mutations(data, rng, flips=limit // 4, cuts=limit // 8):
            yield ("load_vocab", f"{name}: {desc}",
                   lambda d, m=mutated: (d / "vocab.json").write_bytes(m),
                   good, load, compute, reference, "json-bytes")


def checkpoint_cases(folder: Path, rng: random.Random, limit: int):
    from trainers import make_trainer
    from rnnkit.train.checkpoint import latest_checkpoint
    good = folder / "run"
    if not good.exists():
        make_trainer(good, max_steps=2).fit()
    ck = latest_checkpoint(good / "checkpoints")

    def load(d):
        trainer = make_trainer(d, max_steps=2)
        trainer.restore()
        return trainer

    def compute(trainer):
        return [trainer.model.params[k] for k in sorted(trainer.model.params)] + \
            [np.asarray(trainer.step), np.asarray(trainer.optimizer.step_count)]
    reference = compute(load(good))
    for file, kind in ((ck.name, "json"), ("latest.json", "json")):
        meta = json.loads((good / "checkpoints" / file).read_text())
        for desc, mutated in json_mutations(meta, rng, limit):
            yield ("Trainer.restore", f"{file}: {desc}",
                   lambda d, m=mutated, f=file: (d / "checkpoints" / f).write_text(json.dumps(m)),
                   good, load, compute, reference, kind)
    for file in (ck.name, ck.with_suffix(".safetensors").name):
        data = (good / "checkpoints" / file).read_bytes()
        kind = "weights-bytes" if file.endswith("safetensors") else "json-bytes"
        for desc, mutated in byte_mutations(data, rng, flips=limit // 4, cuts=limit // 8):
            yield ("Trainer.restore", f"{file}: {desc}",
                   lambda d, m=mutated, f=file: (d / "checkpoints" / f).write_bytes(m),
                   good, load, compute, reference, kind)


def text_run_cases(folder: Path, rng: random.Random, limit: int):
    """A `rnnkit text` run folder: config.json, vocab.json, best.safetensors."""
    from dataclasses import replace
    from rnnkit.apps import char_lm
    from rnnkit.train import TrainConfig
    from trainers import TEXT
    good = folder / "run"
    if not good.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "text.txt").write_text(TEXT, "utf-8")
        cfg = char_lm.CharLMConfig(text=str(folder / "text.txt"), hidden_size=8, embed_dim=4,
                                   batch_size=4, seq_len=16, sample_length=2)
        char_lm.train(cfg, replace(TrainConfig(), max_steps=2, progress=False), good,
                      log=lambda *a: None)

    def load(d):
        return char_lm._load(d, True)[4]

    def compute(model):
        return [model.forward(IDS % 5, grad=False)[0]]
    reference = compute(load(good))
    for file in ("config.json", "vocab.json"):
        meta = json.loads((good / file).read_text())
        for desc, mutated in json_mutations(meta, rng, limit):
            yield ("rnnkit text (run folder)", f"{file}: {desc}",
                   lambda d, m=mutated, f=file: (d / f).write_text(json.dumps(m)),
                   good, load, compute, reference, "json")
    for file in ("config.json", "best.safetensors"):
        data = (good / file).read_bytes()
        kind = "weights-bytes" if file.endswith("safetensors") else "json-bytes"
        for desc, mutated in byte_mutations(data, rng, flips=limit // 4, cuts=limit // 8):
            yield ("rnnkit text (run folder)", f"{file}: {desc}",
                   lambda d, m=mutated, f=file: (d / f).write_bytes(m),
                   good, load, compute, reference, kind)


def _app_names() -> tuple:
    from rnnkit.apps import APPS
    return tuple(APPS)


# every application's run folder ("run:APP", tests/corrupt_apps.py), the data files and the
# ONNX importer (tests/corrupt_data.py) besides the library's own files
KINDS = ("model", "vocab", "checkpoint", "text_run") + \
    tuple(f"run:{app}" for app in _app_names()) + ("data", "onnx")


def run_cases(folder: Path, kind: str, rng: random.Random, limit: int):
    """(case) tuples of one kind (KINDS)."""
    if kind.startswith("run:"):
        from corrupt_apps import app_run_cases
        yield from app_run_cases(folder / kind.replace(":", "-"), kind[4:], rng, limit)
        return
    from corrupt_data import data_cases, onnx_cases
    make = {"model": model_cases, "vocab": vocab_cases, "checkpoint": checkpoint_cases,
            "text_run": text_run_cases, "data": data_cases, "onnx": onnx_cases}[kind]
    yield from make(folder / kind, rng, limit)


def outcome(case, work: Path) -> str:
    loader, desc, write, good, load, compute, reference, kind = case
    if kind.startswith(("data-", "onnx-")) or loader == "rnnkit.onnx":
        from corrupt_data import data_outcome, onnx_outcome
        return (onnx_outcome if loader == "rnnkit.onnx" else data_outcome)(case, work)
    target = fresh_copy(good, work)
    write(target)
    return classify(lambda: load(target), compute, reference)
