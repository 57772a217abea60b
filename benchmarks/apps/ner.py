"""Named-entity recognition on CoNLL-2003 English: train on train, choose the epoch on valid
(entity F1), report test entity F1 once (seqeval, as conlleval), with wall times.

    nice -n 5 python benchmarks/apps/ner.py [--data ../shared/data/ner/conll2003]
        [--epochs 30] [--budget-min 35] [--set hidden_size=200 --set lr=1e-3 ...]
        [--no-test] [--run-dir runs/ner-bench] [--out benchmarks/results/apps/ner.json]

``--set key=value`` overrides a field of rnnkit.apps.ner.NERConfig; ``--budget-min`` stops
training after that many minutes (the weights with the best validation F1 so far are the
ones evaluated). ``--no-test`` is for choosing settings: it reports validation F1 only, and
writes a results file only if --out is given. (The two 8-epoch selection runs' printouts are
kept as results/apps/ner_select_*.log.) The run uses one thread (NUMBA/OpenMP/BLAS) unless --threads says
otherwise: on the project's 2 shared cores, with other processes running, the compiled
loops' two-thread products spun waiting for a busy core and a training step took ~10x the
time of one thread (measured 1.4-2.5k against 19.5k tokens/s at the default model).
"""
from __future__ import annotations

import argparse
import os
import sys


def _threads(argv) -> None:
    """Thread counts must be set before NumPy / numba load."""
    n = "1"
    if "--threads" in argv:
        n = argv[argv.index("--threads") + 1]
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS"):
        os.environ[var] = n


_threads(sys.argv)

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rnnkit.apps import ner  # noqa: E402
from rnnkit.train import Callback, TrainConfig  # noqa: E402
from rnnkit.train.callbacks import read_metrics  # noqa: E402

PUBLISHED = {"Lample et al. 2016 BiLSTM-CRF, random embeddings": 83.63,
             "Ma & Hovy 2016 BiLSTM-CNN-CRF, random embeddings": 80.76,
             "Huang et al. 2015 BiLSTM-CRF, random embeddings": 84.0,
             "Lample et al. 2016 BiLSTM-CRF, pretrained embeddings": 90.94}


class TimeBudget(Callback):
    """Stops training once `seconds` have passed (the trainer then validates the last weights)."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.fired = seconds, time.perf_counter(), False

    def on_step_end(self, trainer, logs):
        self.batches_per_epoch = trainer.train_data.num_batches(0)
        if time.perf_counter() - self.start > self.seconds:
            trainer.should_stop = self.fired = True


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ner" / "conll2003"))
    p.add_argument("--epochs", type=float, default=30)
    p.add_argument("--budget-min", type=float, default=35.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-test", action="store_true")
    p.add_argument("--threads", default="1")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "ner-bench"))
    p.add_argument("--out", default=None,
                   help="results JSON (default benchmarks/results/apps/ner.json; none with "
                        "--no-test)")
    args = p.parse_args(argv)

    cfg = ner.NERConfig(data=args.data)
    types = {f.name: f.type for f in dataclasses.fields(cfg)}
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in types:
            p.error(f"--set {key}: not a field of NERConfig ({sorted(types)})")
        old = getattr(cfg, key)
        setattr(cfg, key, (value.lower() in ("1", "true", "yes")) if isinstance(old, bool)
                else type(old)(value))
    tcfg = TrainConfig(epochs=args.epochs, val_every=0, log_every=50, clip_norm=5.0,
                       seed=args.seed, progress=False, checkpoint_every=0)
    run_dir = Path(args.run_dir)
    if (run_dir / "metrics.jsonl").exists():
        (run_dir / "metrics.jsonl").unlink()        # a fresh run's rows only

    budget = TimeBudget(60 * args.budget_min)
    start = time.perf_counter()
    summary = ner.train(cfg, tcfg, run_dir, log=lambda *m: print(*m, flush=True),
                        callbacks=[budget])
    train_s = time.perf_counter() - start
    rows = read_metrics(run_dir / "metrics.jsonl")
    curve = [{"epoch": r["epoch"], "step": r["step"], "valid_f1": 1 - r["val_loss"]}
             for r in rows if r["kind"] == "validation"]
    rates = [r["items_per_s"] for r in rows if r["kind"] == "train"]
    result = {
        "task": "CoNLL-2003 English NER, entity-level F1 (seqeval default = conlleval)",
        "command": "nice -n 5 python benchmarks/apps/ner.py " + " ".join(argv or sys.argv[1:]),
        "app_config": dataclasses.asdict(cfg), "train_config": dataclasses.asdict(tcfg),
        "budget_min": args.budget_min, "stopped_by_budget": budget.fired,
        "steps": summary["step"],
        "epochs_done": round(summary["step"] / budget.batches_per_epoch, 2),
        "train_wall_s": round(train_s, 1),
        "tokens_per_s_median": sorted(rates)[len(rates) // 2] if rates else None,
        "valid_curve": curve, "best_valid_f1": summary["best_val_f1"],
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "threads": args.threads,
                    "note": "2 cores shared with other engineers' processes"},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"best validation F1 {100 * summary['best_val_f1']:.2f} after {train_s:.0f} s "
          f"({summary['step']} steps)", flush=True)
    if not args.no_test:
        start = time.perf_counter()
        test = ner.evaluate(run_dir, "test", log=lambda *m: print(*m, flush=True))
        result["test"] = test
        result["test_f1"] = test["f1"]
        result["eval_wall_s"] = round(time.perf_counter() - start, 1)
        result["published_test_f1"] = PUBLISHED
        sentence = ner.predict(run_dir, [ner.EXAMPLE], log=lambda *m: print(*m, flush=True))
        result["example"] = sentence[0]
    out = args.out or (None if args.no_test else ROOT / "benchmarks" / "results" / "apps" /
                       "ner.json")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
