"""`rnnkit memory adding|copy|recall`: which cells remember over long gaps (note 004).

A tool, not an application (no train/evaluate/predict; rnnkit.cli.TOOLS): the tasks and the
training live in rnnkit.diagnostics.memory_tasks and memory_runner; this module is the
command's flags, its table and its figures.

Trains each cell named in ``--cells`` on the task (rnnkit.diagnostics.memory_runner), prints
a table of test scores beside what a model without memory scores on the same test set, and
writes into ``--out``: results.json, loss_curve.png (training loss against step, one line a
cell, the memoryless baseline dashed) and, for recall, accuracy_vs_gap.png.
"""
from __future__ import annotations

import argparse
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from rnnkit.apps import common
from rnnkit.apps.common import setting
from rnnkit.diagnostics import memory_runner as runner
from rnnkit.diagnostics import memory_tasks as tasks
from rnnkit.errors import fail
from rnnkit.optim import OPTIMIZERS
from rnnkit.serialize import atomic_write_bytes, save_json

SUMMARY = "long-memory benchmarks: the adding problem, copy memory and key recall per cell"


@dataclass
class Settings:
    """What every task shares (defaults from the literature: Adam 1e-3, hidden 128, clipping)."""
    cells: str = setting("rnn,lstm,gru,irnn", "comma-separated cells to train: any of "
                         f"{', '.join(runner.cell_names())} (irnn: identity-initialised ReLU RNN)")
    steps: int = setting(2000, "training batches per cell", lo=1)
    batch_size: int = setting(64, "sequences per batch", lo=1)
    hidden_size: int = setting(128, "units of the recurrent layer", lo=1)
    optimizer: str = setting("adam", "optimiser", tuple(OPTIMIZERS))
    lr: float = setting(1e-3, "learning rate", lo=0, lo_open=True)
    schedule: str = setting("constant", "learning-rate schedule over the steps",
                            runner.SCHEDULES)
    clip_norm: float = setting(1.0, "clip gradients to this global norm; 0 = off", lo=0)
    val_every: int = setting(100, "batches between validations (the weights kept are those "
                             "with the lowest validation loss)", lo=1)
    val_size: int = setting(1000, "validation sequences", lo=1)
    test_size: int = setting(2000, "test sequences", lo=1)
    seed: int = setting(0, "seed of the weights and of the training, validation and test data",
                        lo=0)
    max_minutes: float = setting(0.0, "stop each cell's training after this many minutes "
                                 "(0 = no limit); the table says how many steps it reached",
                                 lo=0)
    out: str = setting("runs/memory", "folder for results.json and the PNGs")


@dataclass
class AddingSettings(Settings):
    T: int = setting(100, "sequence length", lo=2)
    tolerance: float = setting(tasks.TOLERANCE, "a sequence is solved when |error| is below "
                               "this", lo=0, lo_open=True)


@dataclass
class CopySettings(Settings):
    T: int = setting(100, "blank steps between the symbols and the delimiter + 1 (sequences "
                     "have T + 2 length steps)", lo=1)
    symbols: int = setting(8, "alphabet of the symbols to copy", lo=2)
    length: int = setting(10, "symbols to copy", lo=1)
    embed_dim: int = setting(32, "size of the token embedding", lo=1)


@dataclass
class RecallSettings(Settings):
    max_gap: int = setting(100, "training gaps are uniform in [0, max_gap] distractors", lo=0)
    gaps: str = setting("0,5,10,20,50,100", "comma-separated gaps to score the test set at")
    keys: int = setting(8, "key tokens (classes to recall)", lo=2)
    distractors: int = setting(16, "distractor tokens", lo=1)
    embed_dim: int = setting(32, "size of the token embedding", lo=1)


TASKS = {"adding": AddingSettings, "copy": CopySettings, "recall": RecallSettings}
WHAT = {"adding": "the adding problem (Hochreiter & Schmidhuber 1997): sum the two marked "
                  "values of T",
        "copy": "copy memory (Arjovsky et al. 2016): repeat 10 symbols after T blanks",
        "recall": "key recall: name a key token seen G distractors before the query"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, cls in TASKS.items():
        p = sub.add_parser(name, help=WHAT[name], description=WHAT[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(memory_fields=common.add_flags(p, cls()))


def parse_gaps(text: str, max_gap: int) -> list[int]:
    try:
        gaps = sorted({int(g) for g in str(text).split(",") if g.strip()})
    except ValueError:
        gaps = []
    if not gaps or gaps[0] < 0 or gaps[-1] > max_gap:
        fail("gaps", f"comma-separated integers in [0, {max_gap}] (max_gap)", repr(text))
    return gaps


def make_task(name: str, cfg) -> runner.Task:
    if name == "adding":
        return runner.adding_task(cfg.T, cfg.tolerance)
    if name == "copy":
        return runner.copy_task(cfg.T, cfg.symbols, cfg.length, cfg.embed_dim)
    return runner.recall_task(cfg.max_gap, parse_gaps(cfg.gaps, cfg.max_gap), cfg.keys,
                              cfg.distractors, cfg.embed_dim)


def run_settings(cfg) -> runner.RunSettings:
    return runner.RunSettings(**{f.name: getattr(cfg, f.name)
                                 for f in fields(runner.RunSettings)})


def benchmark(name: str, cfg, log=print, jobs: int = 1) -> dict:
    """Train every cell of ``cfg.cells`` on task ``name``; -> the results (as results.json).
    ``jobs`` > 1: that many cells train at once, each in a process of its own (the same
    data and results; the cells do not share anything)."""
    common.check_choices(cfg)
    cells = runner.parse_cells(cfg.cells)
    task = make_task(name, cfg)
    sets = runner.data_sets(task, run_settings(cfg))
    results = {"task": name, "loss_name": task.loss_name, "settings": asdict(cfg),
               "task_settings": task.settings,
               "baseline": task.baseline, "baseline_test": runner.null_scores(task, sets[1]),
               "cells": {}}
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        # spawned, not forked: a fork of a process whose BLAS threads are running can hang
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = {cell: pool.submit(train_one, name, cfg, cell) for cell in cells}
            results["cells"] = {cell: future.result() for cell, future in done.items()}
        return results
    for cell in cells:
        results["cells"][cell] = train_one(name, cfg, cell, log, task, sets)
    return results


def train_one(name: str, cfg, cell: str, log=print, task=None, sets=None) -> dict:
    task = task or make_task(name, cfg)
    settings = run_settings(cfg)
    log(f"training {cell} on {name} ({cfg.steps} batches of {cfg.batch_size})")
    return runner.train_cell(task, cell, settings, sets or runner.data_sets(task, settings),
                             lambda line: log(line, flush=True) if log is print else log(line))


def run(args, log=print) -> int:
    cls = TASKS[args.task]
    cfg = common.from_flags(cls, args, args.memory_fields)
    out = common.check_run_dir(cfg.out, "--out")       # before the training, not after it
    results = benchmark(args.task, cfg, log)
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "results.json", results)
    write_plots(results, out)
    log(table(results))
    log(f"wrote {out / 'results.json'} and the PNGs beside it")
    return 0


# --- the table -----------------------------------------------------------------------------
COLUMNS = {"adding": ("mse", "solved", "solved_hs97", "task_solved"),
           "copy": ("cross_entropy", "symbol_accuracy"),
           "recall": ("cross_entropy", "accuracy")}


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def table(results: dict) -> str:
    """One row per cell (test scores at the best validation step) and the baseline's row."""
    name = results["task"]
    cols = list(COLUMNS[name])
    gaps = []
    if name == "recall":
        gaps = results["task_settings"]["test_gaps"]
        cols += [f"G={g}" for g in gaps]

    def values(scores: dict | None) -> list[str]:
        if scores is None:
            return ["-"] * len(cols)
        row = [_cell(scores.get(c, "-")) for c in COLUMNS[name]]
        by_gap = {int(g): a for g, a in scores.get("by_gap", {}).items()}    # (JSON: str keys)
        return row + [_cell(by_gap.get(g, "-")) for g in gaps]
    header = ["cell", *cols, "best step", "steps", "seconds"]
    rows = [["no memory", *values(results["baseline_test"]), "-", "-", "-"]]
    for cell, r in results["cells"].items():
        rows.append([cell + (" (diverged)" if r["diverged"] else ""), *values(r["test"]),
                     str(r["best_step"]), str(r.get("steps_done", "-")),
                     f"{r['seconds']:.0f}"])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- the figures ---------------------------------------------------------------------------
def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_plots(results: dict, out: Path, prefix: str = "") -> list[Path]:
    """loss_curve.png and, for recall, accuracy_vs_gap.png in ``out`` (names after
    ``prefix``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    name, s = results["task"], results["task_settings"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for cell, r in results["cells"].items():
        if r["train_loss"]:
            ax.plot(*zip(*r["train_loss"]), label=cell)
    loss_name = results["loss_name"]
    base = results["baseline_test"][loss_name]
    ax.axhline(base, color="k", ls="--", lw=1, label="no memory")
    ax.set_yscale("log")
    ax.set_xlabel("step (batches)")
    ax.set_ylabel(f"training {loss_name.replace('_', ' ')}")
    size = {"adding": f"T = {s.get('T')}", "copy": f"T = {s.get('T')}",
            "recall": f"gaps 0..{s.get('max_gap')}"}[name]
    ax.set_title(f"{name}, {size}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    paths = [out / f"{prefix}loss_curve.png"]
    _save(fig, paths[0])
    if name == "recall":
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (cell, r) in enumerate(results["cells"].items()):
            if r["test"] is not None:           # markers differ: lines at 1.0 lie on each other
                by_gap = sorted((int(g), a) for g, a in r["test"]["by_gap"].items())
                ax.plot(*zip(*by_gap), "osD^v<>"[i % 7] + "-", label=cell,
                        markersize=8 - i, alpha=0.85)
        ax.axhline(1.0 / s["keys"], color="k", ls="--", lw=1, label="chance")
        ax.set_xlabel("gap G (distractor tokens between the key and the query)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(out / f"{prefix}accuracy_vs_gap.png")
        _save(fig, paths[1])
    return paths

