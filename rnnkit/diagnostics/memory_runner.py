"""Training one cell on one long-memory task (rnnkit.diagnostics.memory_tasks) with the
library's own parts: SequenceModel, Trainer, an optimiser from rnnkit.optim, rnnkit.losses.

Data: training batches are drawn fresh from the task (a seeded stream, so every cell sees the
same batches); a validation set and a separate test set are drawn once from other seeds. The
weights kept are those with the lowest validation loss (checked every ``val_every`` batches);
the test set is scored once, with them.

Cells are given by name: any registered cell (rnnkit.cells.CELLS: "rnn" is the tanh RNN,
"lstm", "gru", and whatever registers later) or "irnn", the identity-initialised ReLU RNN
of Le, Jaitly & Hinton (2015).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rnnkit import cells
from rnnkit.data import ArrayDataset, Batch
from rnnkit.diagnostics import memory_tasks as tasks
from rnnkit.errors import check_int, fail
from rnnkit.losses import mean_squared_error, softmax_cross_entropy
from rnnkit.models import SequenceModel
from rnnkit.optim import make_optimizer, make_schedule
from rnnkit.train import Callback, Trainer, TrainConfig
from rnnkit.train.checkpoint import load_params
from rnnkit.train.safety import TrainingDiverged

SCHEDULES = ("constant", "cosine")
# names that are not a registered cell's: name -> (cell, its options and init scheme)
ALIASES = {"irnn": ("rnn", {"nonlinearity": "relu", "init": "irnn"})}
EVAL_BATCH = 500
CURVE_POINTS = 200          # the training curve kept: means over this many windows of steps


def cell_names() -> tuple:
    return tuple(cells.CELLS) + tuple(ALIASES)


def parse_cells(text: str) -> list[str]:
    """"rnn,lstm,gru,irnn" -> the names, each checked against ``cell_names()``."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    known = cell_names()
    bad = [n for n in names if n not in known]
    if not names or bad or len(set(names)) != len(names):
        fail("cells", f"distinct comma-separated names from {known}", repr(text))
    return names


def cell_setup(name: str) -> tuple[str, dict]:
    """-> (registered cell, keyword options for SequenceModel) for a name of ``cell_names()``."""
    if name in ALIASES:
        return ALIASES[name][0], dict(ALIASES[name][1])
    parse_cells(name)
    return name, {}


# --- the tasks as the trainer sees them ----------------------------------------------------
@dataclass
class Task:
    """A task's data, model shape, loss and scores. ``make(n, rng)`` -> (inputs, targets,
    extra), extra being what ``scores(outputs, targets, extra)`` needs beside them;
    ``make_test`` the same for the test set where it differs (recall: rows at fixed gaps).
    ``null_outputs(inputs)``: the outputs of the best model without memory, scored on the
    test set like the cells (``baseline`` is its expected score)."""
    name: str
    make: object
    make_test: object
    scores: object
    loss_fn: object
    null_outputs: object
    model: dict                 # SequenceModel's settings for this task
    baseline: dict              # what a model without memory scores, in expectation
    loss_name: str = "loss"
    settings: dict = field(default_factory=dict)


def _mse(pred, y, lengths=None):
    return mean_squared_error(pred, y)


def _cross_entropy(logits, y, lengths=None):
    return softmax_cross_entropy(logits, y)


def adding_task(T: int, tolerance: float = tasks.TOLERANCE) -> Task:
    check_int("T", T, 2)
    base = tasks.adding_baseline(tolerance)

    def make(n, rng):
        x, y, _ = tasks.adding_problem(n, T, rng)
        return x, y, None

    def null_outputs(x):                    # predict the mean, 0
        return np.zeros((len(x), 1), x.dtype)
    return Task("adding", make=make, make_test=make,
                scores=lambda out, y, _: tasks.adding_scores(out, y, tolerance),
                loss_fn=_mse, null_outputs=null_outputs,
                model={"input_size": 2, "readout": "last", "output_size": 1},
                baseline={"mse": base["mse"], "solved": base["solved"]}, loss_name="mse",
                settings={"T": T, "tolerance": tolerance})


def copy_task(T: int, symbols: int = 8, length: int = 10, embed_dim: int = 32) -> Task:
    baseline = tasks.copy_baseline(T, symbols, length)

    def make(n, rng):
        x, y = tasks.copy_memory(n, T, rng, symbols, length)
        return x, y, None

    def null_outputs(x):                    # blank for sure, then a uniform guess
        logits = np.full(x.shape + (symbols + 1,), -1e9, np.float32)
        logits[:, :T + length, 0] = 0
        logits[:, T + length:, 1:] = 0
        return logits
    return Task("copy", make=make, make_test=make,
                scores=lambda out, y, _: tasks.copy_scores(out, y, length),
                loss_fn=_cross_entropy, null_outputs=null_outputs,
                model={"vocab_size": tasks.copy_vocab(symbols), "embed_dim": embed_dim,
                       "readout": "steps", "output_size": symbols + 1},
                baseline={"cross_entropy": baseline, "symbol_accuracy": 1.0 / symbols},
                loss_name="cross_entropy",
                settings={"T": T, "symbols": symbols, "length": length})


def recall_task(max_gap: int, test_gaps: list[int], keys: int = 8, distractors: int = 16,
                embed_dim: int = 32) -> Task:
    """Training and validation rows have gaps uniform in [0, max_gap]; the test set has the
    same number of rows at each of ``test_gaps``."""
    check_int("max_gap", max_gap, 0)
    steps = max_gap + 2
    gaps = sorted(set(test_gaps))
    if not gaps or gaps[0] < 0 or gaps[-1] > max_gap:
        fail("gaps", f"gaps in [0, {max_gap}] (max_gap)", repr(test_gaps))

    def make(n, rng):
        return tasks.key_recall(n, steps, rng.integers(0, max_gap + 1, n), rng, keys,
                                distractors)

    def make_test(n, rng):
        return tasks.key_recall(n, steps, np.repeat(gaps, -(-n // len(gaps)))[:n], rng, keys,
                                distractors)

    def null_outputs(x):                    # the same guess whatever the key
        return np.zeros((len(x), keys), np.float32)
    return Task("recall", make=make, make_test=make_test, scores=tasks.recall_scores,
                loss_fn=_cross_entropy, null_outputs=null_outputs,
                model={"vocab_size": tasks.recall_vocab(keys, distractors),
                       "embed_dim": embed_dim, "readout": "last", "output_size": keys},
                baseline={"accuracy": 1.0 / keys}, loss_name="cross_entropy",
                settings={"max_gap": max_gap, "test_gaps": gaps, "keys": keys,
                          "distractors": distractors})


class TaskStream:
    """Fresh batches of a task, batch i of epoch e from the seed (seed, e, i): a data source
    that resumes exactly, as the trainer expects (rnnkit.data.batch.DataSource)."""
    stateful = False

    def __init__(self, task: Task, batch_size: int, batches: int, seed: int):
        self.task, self.batch_size, self.count, self.seed = task, batch_size, batches, seed

    def num_batches(self, epoch: int = 0) -> int:
        return self.count

    def batches(self, epoch: int, start: int = 0):
        for i in range(start, self.count):
            rng = np.random.default_rng([self.seed, 0, epoch, i])
            inputs, targets, _ = self.task.make(self.batch_size, rng)
            yield Batch(inputs=inputs, targets=targets)


# --- training one cell ---------------------------------------------------------------------
@dataclass
class RunSettings:
    steps: int = 2000
    batch_size: int = 64
    hidden_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    clip_norm: float = 1.0
    val_every: int = 100
    val_size: int = 1000
    test_size: int = 2000
    seed: int = 0
    max_minutes: float = 0.0    # > 0: each cell stops training after this long (shared machines)


class Curve(Callback):
    """Training loss per step, validation loss per check, and the best weights so far;
    stops training once ``max_seconds`` (> 0) have passed."""

    def __init__(self, model, log, label: str, max_seconds: float = 0.0):
        self.model, self.log, self.label = model, log, label
        self.train, self.val, self.best, self.best_step = [], [], None, 0
        self.start, self.max_seconds, self.timed_out = time.perf_counter(), max_seconds, False

    def on_step_end(self, trainer, logs):
        self.train.append(logs["loss"])
        if self.max_seconds and time.perf_counter() - self.start > self.max_seconds:
            self.timed_out = trainer.should_stop = True     # (the trainer validates, then ends)

    def on_validation_end(self, trainer, logs):
        self.val.append((logs["step"], logs["val_loss"]))
        if logs["improved"]:
            self.best = {k: v.copy() for k, v in self.model.params.items()}
            self.best_step = logs["step"]
        recent = self.train[-50:]
        self.log(f"{self.label} step {logs['step']}: training loss "
                 f"{np.nanmean(recent) if recent else float('nan'):.4f}, validation loss "
                 f"{logs['val_loss']:.4f}{' *' if logs['improved'] else ''}")


def windows(losses: list, points: int) -> list:
    """[[last step, mean loss]] over consecutive windows of steps, at most ``points`` of them
    (steps skipped for a non-finite loss left out of the means)."""
    v = np.asarray(losses, np.float64)
    size = max(1, -(-len(v) // points))
    rows = []
    for start in range(0, len(v), size):
        w = v[start:start + size]
        if np.isfinite(w).any():
            rows.append([start + len(w), round(float(np.nanmean(w)), 6)])
    return rows


def outputs(model, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([model.forward(inputs[s:s + EVAL_BATCH], grad=False)[0]
                           for s in range(0, len(inputs), EVAL_BATCH)])


def data_sets(task: Task, s: RunSettings) -> tuple:
    """(validation set, test set), each (inputs, targets, extra), from seeds of their own."""
    val = task.make(s.val_size, np.random.default_rng([s.seed, 1]))
    return val, task.make_test(s.test_size, np.random.default_rng([s.seed, 2]))


def score(task: Task, out: np.ndarray, test: tuple) -> dict:
    """The test loss and the task's scores of outputs ``out`` for the test set ``test``."""
    return {task.loss_name: task.loss_fn(out, test[1])[0], **task.scores(out, test[1], test[2])}


def null_scores(task: Task, test: tuple) -> dict:
    """What the model without memory scores on the same test set."""
    return score(task, task.null_outputs(test[0]), test)


def schedule(name: str, lr: float, steps: int):
    """A constant learning rate, or a cosine decay from lr to 0 over the steps."""
    if name not in SCHEDULES:
        fail("schedule", f"one of {SCHEDULES}", repr(name))
    return make_schedule(name, lr, **({"total_steps": steps} if name == "cosine" else {}))


def train_cell(task: Task, name: str, s: RunSettings, sets=None, log=print) -> dict:
    """Train cell ``name`` on ``task``; -> its curves, best step, test scores and seconds."""
    start = time.perf_counter()
    cell, options = cell_setup(name)
    val, test = sets or data_sets(task, s)
    model = SequenceModel(hidden_size=s.hidden_size, cell=cell, seed=s.seed, **task.model,
                          **options)
    val_data = ArrayDataset(val[0], val[1], EVAL_BATCH, shuffle=False)
    config = TrainConfig(max_steps=s.steps, val_every=s.val_every, clip_norm=s.clip_norm,
                         seed=s.seed, progress=False, checkpoint_minutes=0, log_every=s.steps)
    curve = Curve(model, log, name, 60 * s.max_minutes)
    trainer = Trainer(model, task.loss_fn, make_optimizer(s.optimizer, model.params, lr=s.lr),
                      TaskStream(task, s.batch_size, s.steps, s.seed), val_data, config=config,
                      schedule=schedule(s.schedule, s.lr, s.steps), callbacks=[curve],
                      log=log)
    diverged = None
    try:
        trainer.fit()
    except TrainingDiverged as e:           # a result too: the row says so
        diverged = str(e)
        log(f"{name}: {diverged}")
    scores = None
    if curve.best is not None:              # (none: diverged before the first validation)
        load_params(model, curve.best, f"{name}'s best weights")
        scores = score(task, outputs(model, test[0]), test)
    return {"cell": name, "test": scores, "best_step": curve.best_step,
            "train_loss": windows(curve.train, CURVE_POINTS), "val_loss": curve.val,
            "diverged": diverged, "steps_done": trainer.step, "timed_out": curve.timed_out,
            "seconds": time.perf_counter() - start}
