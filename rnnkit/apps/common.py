"""What every application shares: settings as flags, run folders, validation by a score,
kernel warm-up, and reading prediction inputs. The CLI and the apps call these; nothing here
knows about a particular application.

A run folder (one per training run):

    config.json          {"app": <app settings>, "train": <TrainConfig>, ...}, resolved
    checkpoints/         resumable bit-identically (rnnkit.train.checkpoint)
    metrics.jsonl        training and validation rows; loss_curve.png at the end
    best.safetensors     the weights with the best validation score
    eval.json            written by `evaluate`
    <app files>          vocabulary, split, scaler, plots (PNG)
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import math
import shutil
import sys
import threading
import time
from dataclasses import asdict, field
from pathlib import Path

import numpy as np

from rnnkit import schema
from rnnkit.data.fetch import resolve
from rnnkit.errors import RnnkitError, fail
from rnnkit.layers import BY_CELL
from rnnkit.optim import make_schedule
from rnnkit.serialize import load_json, save_json
from rnnkit.train import Trainer, TrainConfig, distributed

SCHEDULE_CHOICES = ("constant", "cosine", "step")
# the recurrent cells every application's --cell offers (rnnkit.layers.BY_CELL)
CELL_CHOICES = tuple(BY_CELL)

# TrainConfig's fields, described for the command line (its dataclass keeps its comments)
TRAIN_HELP = {
    "epochs": "passes over the training data (fractions allowed)",
    "max_steps": "batches to train on in all; > 0 overrides --epochs",
    "bptt": "> 0: cut each batch into chunks of this many steps (truncated BPTT)",
    "clip_norm": "clip gradients to this global L2 norm; 0 = off",
    "clip_value": "clip each gradient entry to [-v, v]; 0 = off",
    "val_every": "batches between validations; 0 = at the end of each epoch",
    "patience": "stop after this many validations without improvement; 0 = never",
    "log_every": "batches between rows of metrics.jsonl",
    "checkpoint_every": "batches between checkpoints; 0 = at the end only",
    "keep_checkpoints": "how many of the newest checkpoints to keep; 0 = all",
    "seed": "seed of the weights, dropout masks and data order",
    "progress": "show a progress bar on stderr",
    "checkpoint_minutes": "also save a checkpoint after this many minutes of training; 0 = off",
    "max_bad_steps": "skipped steps (non-finite loss or gradients, each halving the learning "
                     "rate) in a row before training stops",
    "explode_factor": "warn once when the gradient norm before clipping jumps above this many "
                      "times its running median (exploding gradients); 0 = off",
    "vanish_ratio": "warn once when, at a validation, dL/dh at the first step of the first "
                    "layer is below this fraction of the last step's (vanishing gradients; "
                    "costs one reference forward/backward of 8 rows); 0 = off",
    "tensorboard": "write TensorBoard event files to this folder (scalars, learning rate, "
                   "gradient norm, histograms, gradient flow; needs tensorboardX); '' = off",
}


def setting(default, help: str, choices: tuple | None = None, aliases: tuple = (),
            lo=None, hi=None, lo_open: bool = False):
    """A dataclass field that describes itself: its flag's help, its choices where the set
    is fixed, other flag names it answers to, and the range of a number ([lo, hi]; (lo, hi]
    with ``lo_open``), checked before any work starts (``check_choices``)."""
    return field(default=default, metadata={"help": help, "choices": choices,
                                            "aliases": tuple(aliases), "lo": lo, "hi": hi,
                                            "lo_open": lo_open})


# --- settings <-> flags --------------------------------------------------------------------
def add_flags(parser: argparse.ArgumentParser, instance, help_map: dict | None = None) -> list:
    """One --flag per dataclass field, default from `instance`; returns the field names."""
    names = []
    for f in dataclasses.fields(instance):
        default = getattr(instance, f.name)
        flags = ["--" + f.name.replace("_", "-"), *f.metadata.get("aliases", ())]
        text = f.metadata.get("help") or (help_map or {}).get(f.name, "")
        choices = f.metadata.get("choices")
        if isinstance(default, bool):
            parser.add_argument(*flags, dest=f.name, default=default, help=text,
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(*flags, dest=f.name, type=type(default), default=default,
                                choices=choices, metavar=None if choices else f.name.upper(),
                                help=f"{text} (default: {default!r})" if text else
                                f"(default: {default!r})")
        names.append(f.name)
    return names


def from_flags(cls, args: argparse.Namespace, names: list):
    return check_choices(cls(**{k: getattr(args, k) for k in names}))


# the range of a numeric setting that declares none, by its name (the apps share names)
AT_LEAST_ONE = {"embed_dim", "num_layers", "batch_size", "seq_len", "lookback", "horizon",
                "word_dim", "char_dim", "char_hidden", "dec_layers", "max_words",
                "eval_batch_size"}
MAX_WIDTH = 1_000_000       # units, dimensions, rows of a batch: more fits in no memory
MAX_LAYERS = 1000
MAX_BEAM = 1000
MAX_PAIRS = 10_000_000      # captioning pairs drawn (each an index pair held in memory)


def _range_by_name(name: str):
    """-> (lo, hi, lo_open) of a setting by its name, or (None, None, False)."""
    if name in ("num_layers", "dec_layers"):
        return 1, MAX_LAYERS, False
    if name.endswith("hidden_size") or name in AT_LEAST_ONE:
        return 1, MAX_WIDTH, False
    if name.endswith("dropout") or name == "unk_replace":
        return 0, 0.99, False
    if name == "interval":
        return 0, 0.99, True
    if name in ("lr", "temperature"):
        return 0, None, True
    if name.endswith("_fraction"):
        return 0, 0.9, False
    if name == "beam":
        return 0, MAX_BEAM, False
    if name == "alpha":             # length normalisation: ((5 + L) / 6) ** alpha
        return 0, 10, False
    if name.endswith("_pairs"):
        return 0, MAX_PAIRS, False
    if name.endswith("_dim"):
        return 0, MAX_WIDTH, False
    if name.endswith(("_seed", "_size", "_limit")) or \
            name in ("seed", "min_freq", "max_vocab", "weight_decay", "season"):
        return 0, None, False
    return None, None, False


def check_choices(cfg):
    """Refuse a field value outside its declared choices (the Python API's check; argparse
    makes the same one on the command line)."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            fail(f.name, f"one of {list(choices)}", repr(value))
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        lo_open = f.metadata.get("lo_open")
        if lo is None and hi is None:
            lo, hi, lo_open = _range_by_name(f.name)
            if lo is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or (lo is not None and (value <= lo if lo_open
                                                                 else value < lo)) or \
                (hi is not None and value > hi):
            where = ("(" if lo_open else "[") + f"{'-inf' if lo is None else lo}, " + \
                f"{'inf' if hi is None else hi}]"
            fail(f.name, f"a number in {where}", repr(value))
    return cfg


# --- run folders ---------------------------------------------------------------------------
def check_run_dir(run_dir: str | Path, name: str = "run_dir") -> Path:
    """A run folder's path: a name (Path("") would be the current folder) of a folder or of
    nothing yet, not of a file. `name`: the setting it came from, for the error."""
    if not str(run_dir).strip():
        fail(name, "a folder name", repr(str(run_dir)))
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        fail(name, "a folder", f"{str(run_dir)!r}, which is a file")
    return run_dir


def new_run(run_dir: str | Path) -> Path:
    """A folder for a new run; refuse one that already holds a run (resume continues it).
    Data-parallel ranks all look before any of them writes, so that they agree; an elastic
    restart (torchrun) before the first checkpoint takes its own attempt's folder again."""
    run_dir = check_run_dir(run_dir)
    saved = (run_dir / "checkpoints" / "latest.json").exists()
    held = saved or (run_dir / "config.json").exists()
    distributed.world().barrier()
    if saved or (held and not distributed.restart_count()):
        fail("run_dir", "a new or empty folder (`resume` continues an existing run)",
             f"{str(run_dir)!r}, which already holds a run")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


@contextlib.contextmanager
def undone_on_error(run_dir: str | Path):
    """A training command that fails with a user error before its first checkpoint leaves
    its run folder as it found it (absent or empty): else the corrected command would be
    refused, the folder holding a run."""
    path = Path(run_dir) if str(run_dir).strip() else None
    existed = path is not None and path.is_dir()
    fresh = path is not None and (not path.exists() or existed and not any(path.iterdir()))
    try:
        yield
    except RnnkitError:
        if fresh and path.is_dir() and not (path / "checkpoints" / "latest.json").exists():
            shutil.rmtree(path)
            if existed:
                path.mkdir()
        raise


def save_run_config(run_dir: Path, cfg, tcfg: TrainConfig, **extra) -> None:
    save_json(run_dir / "config.json", {"app": asdict(cfg), "train": asdict(tcfg), **extra})


# config.json: the app's and the trainer's settings (checked field by field against their
# dataclasses), the app's name, and what an app keeps beside them (ner: its model's
# settings; words: the tokens in each split)
RUN_CONFIG = {"app": dict, "train": dict, "kind": schema.Optional(str),
              "model": schema.Optional(dict),
              "tokens": schema.Optional({"train": schema.Int(0), "validation": schema.Int(0),
                                         "test": schema.Int(0)})}


def load_run_config(run_dir: str | Path, cls, app: str):
    """(run folder, app settings, TrainConfig, the whole JSON) of a run of `app`."""
    if not str(run_dir).strip():        # Path("") would be the current folder
        fail("RUN", f"a run folder of `rnnkit {app} train`", repr(str(run_dir)))
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        fail("RUN", f"a run folder of `rnnkit {app} train` (with config.json)",
             f"{str(run_dir)!r}" + ("" if run_dir.is_dir() else " (no such folder)"))
    source = str(run_dir / "config.json")
    saved = schema.check(load_json(run_dir / "config.json"), RUN_CONFIG, source)
    if saved.get("kind", app) != app:
        fail("RUN", f"a run of `rnnkit {app}`", f"a run of `rnnkit {saved.get('kind')}`")
    cfg = schema.check_dataclass(cls, saved["app"], source, "app")
    tcfg = schema.check_dataclass(TrainConfig, saved["train"], source, "train")
    for part, check in (("app", lambda: check_choices(cfg)), ("train", tcfg.check)):
        try:
            check()
        except RnnkitError as e:
            raise RnnkitError(f"{source}: {part}.{e}") from None
    return run_dir, cfg, tcfg, saved


def resume_config(tcfg: TrainConfig, overrides: dict) -> TrainConfig:
    """The saved training settings with `resume`'s overrides (max_steps, epochs), checked
    before the run folder is touched."""
    unknown = sorted(set(overrides) - {"max_steps", "epochs"})
    if unknown:
        fail("overrides", "max_steps or epochs", repr(unknown))
    return TrainConfig(**dict(asdict(tcfg), **overrides)).check()


def restore_run(run_dir, cls, app: str, overrides: dict, build, log):
    """`resume`'s trainer: the run's saved settings with the overrides (max_steps, epochs)
    written back, build(cfg, tcfg, run_dir) -> trainer, restored from its latest checkpoint."""
    run_dir, cfg, tcfg, _ = load_run_config(run_dir, cls, app)
    tcfg = resume_config(tcfg, overrides)
    save_run_config(run_dir, cfg, tcfg, kind=app)
    trainer = build(cfg, tcfg, run_dir)
    trainer.restore()
    log(f"resumed {run_dir} at batch {trainer.step}, training to {trainer.total_steps}")
    return trainer


def load_weights(model, run_dir: Path, best: bool = True) -> None:
    """The run's weights into ``model``: best.safetensors (the best validation score) when
    ``best`` and it exists, else the latest checkpoint's."""
    from rnnkit.serialize import load_arrays
    from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint, load_params
    path = run_dir / "best.safetensors"
    if best and path.is_file():
        arrays, source = load_arrays(path), str(path)
    else:
        ck = load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))
        arrays, source = ck["model_params"], str(ck["path"])
    try:
        load_params(model, arrays, source)
    except RnnkitError as e:        # the weights may be right and the settings wrong
        raise RnnkitError(f"{e} (for the model that {run_dir / 'config.json'} describes)") \
            from None


def write_eval(run_dir: Path, results: dict) -> dict:
    save_json(run_dir / "eval.json", results)
    return results


def make_lr_schedule(name: str, lr: float, total_steps: int):
    shapes = {"constant": {}, "cosine": {"total_steps": total_steps},
              "step": {"step_size": max(1, total_steps // 3)}}
    if name not in shapes:
        fail("schedule", f"one of {list(shapes)}", repr(name))
    return make_schedule(name, lr, **shapes[name])


def require_packages(*names: str) -> None:
    """ModuleNotFoundError for the first of these packages that is not installed (the CLI
    turns it into one line naming the extra to install), without importing them."""
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def require_file(path: str, what: str, data_set: str = "") -> Path:
    """The path of an existing data file; else one line saying what format was expected.
    `path` may name a data set of the cache, and '' means `data_set` (the app's default):
    one line naming `rnnkit data get NAME` where it is not downloaded (rnnkit.data.fetch)."""
    p = resolve(path, data_set)
    if p is None or not p.is_file():
        fail("--data", what, f"{path!r} (no such file)" if path else "no path (pass --data)")
    return p


# --- training with selection by a validation score ------------------------------------------
class ScoredTrainer(Trainer):
    """A Trainer that keeps the weights (best.safetensors) and stops early by a validation
    score where higher is better, e.g. accuracy. ``score_fn(model, data) -> (loss, score)``.
    The trainer's ``best_val`` holds -score, so checkpoints and resume are unchanged."""

    def __init__(self, *args, score_fn, score_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.score_fn, self.score_name = score_fn, score_name

    def validation(self) -> tuple[float, dict]:
        loss, score = self.score_fn(self.model, self.val_data)
        return -score, {"val_loss": loss, f"val_{self.score_name}": score}

    def best_logs(self) -> dict:
        return {f"best_val_{self.score_name}": -self.best_val}


# --- honest progress -----------------------------------------------------------------------
def warm_up(model, batch, log=print, delay: float = 3.0) -> float:
    """Run one small forward/backward (and an inference forward) so that the compiled kernels
    are built before the progress bar starts; if that takes longer than `delay` seconds (a
    first run on this machine), say so. The weights, the gradients (zeroed) and every random
    generator of the run are untouched. Returns the seconds it took."""
    note = threading.Timer(delay, lambda: log("compiling kernels (first run on this machine, "
                                              "~40 s)..."))
    note.daemon = True
    start = time.perf_counter()
    note.start()
    try:
        rows = slice(0, min(2, len(batch.lengths) if batch.lengths is not None
                            else np.asarray(batch.inputs).shape[0]))
        lengths = None if batch.lengths is None else batch.lengths[rows]
        x = np.asarray(batch.inputs)[rows]
        if lengths is not None:
            x = x[:, :int(lengths.max())]
        out, _, cache = model.forward(x, None, lengths, training=True,
                                      rng=np.random.default_rng(0))
        model.backward(np.zeros_like(out), cache)
        model.forward(x, None, lengths, grad=False)
        model.zero_grad()
    finally:
        note.cancel()
    return time.perf_counter() - start


def fit(trainer: Trainer, log=print) -> dict:
    """trainer.fit(), the kernels compiled first (with a word if that takes a while)."""
    first = next(iter(trainer.train_data.batches(0)), None)
    if first is not None:
        warm_up(trainer.model, first, log)
    return trainer.fit()


# --- prediction inputs and outputs ---------------------------------------------------------
def read_inputs(items: list, file: str | None = None, stdin=None, name: str = "") -> list:
    """Prediction inputs, one a line: the arguments, else the lines of `file` ('-' = standard
    input), else standard input when it is not a terminal. An empty line, or bytes that are
    not UTF-8, are errors naming where the line came from (`name` for the arguments)."""
    lines = [(name or f"input line {i}", line) for i, line in enumerate(items or [], 1)]
    if file:
        if file == "-":
            read = _read_stream(stdin or sys.stdin, "--file -")
        else:
            path = Path(file)
            if not path.is_file():
                fail("--file", "a text file with one input a line", f"{file!r} " +
                     ("(a folder)" if path.is_dir() else "(no such file)"))
            try:
                read = path.read_text("utf-8").splitlines()
            except UnicodeDecodeError as e:
                fail("--file", "a UTF-8 text file with one input a line", f"{file!r} ({e})")
            if not read:
                fail("--file", "a text file with one input a line", f"{file!r} (empty)")
        lines += [(f"--file {file} line {i}", line) for i, line in enumerate(read, 1)]
    elif not lines:
        stream = stdin or sys.stdin
        try:
            if stream is not None and not stream.isatty():
                lines = [(f"input line {i}", line) for i, line in
                         enumerate(_read_stream(stream, "standard input"), 1)]
        except (OSError, AttributeError):     # no readable standard input
            lines = []
    for where, line in lines:
        if any(0xDC80 <= ord(c) <= 0xDCFF for c in line):     # os.fsdecode's escapes
            fail(where, "UTF-8 text", f"{line!r} (bytes that are not UTF-8)")
        if not line.strip():
            fail(where, "a non-empty line", "an empty line")
    return [line for _, line in lines]


def _read_stream(stream, name: str) -> list:
    try:
        return stream.read().splitlines()
    except UnicodeDecodeError as e:
        fail(name, "UTF-8 text with one input a line", f"bytes that are not UTF-8 ({e})")
    except ValueError:                  # a closed stream: nothing to read
        return []

