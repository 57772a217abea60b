"""MNIST read row by row (28 steps of 28 pixels) with the app's defaults: test accuracy of the
weights with the best validation accuracy (the last 5000 training images held out).

    nice -n 5 python benchmarks/apps/mnist.py [--epochs 8] [--order permuted --max-steps N]

Writes benchmarks/results/apps/mnist[_permuted].json.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import _common
from rnnkit.apps import mnist
from rnnkit.train import read_metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=8.0)
    ap.add_argument("--max-steps", type=int, default=0, help="> 0: stop after this many batches")
    ap.add_argument("--order", default="rows", choices=("rows", "permuted"))
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--cell", default="lstm", choices=("rnn", "lstm", "gru"))
    args = ap.parse_args()
    cfg = mnist.MnistConfig(data=str(_common.DATA / "digits" / "mnist.npz"), order=args.order,
                            hidden_size=args.hidden_size, cell=args.cell)
    tcfg = replace(mnist.default_train_config(), epochs=args.epochs, max_steps=args.max_steps,
                   progress=False)
    work = Path(tempfile.mkdtemp(prefix="mnist-bench-"))
    start = time.perf_counter()
    out = mnist.train(cfg, tcfg, work / "run", log=print)
    seconds = time.perf_counter() - start
    test = mnist.evaluate(work / "run", log=print)
    vals = [r["val_accuracy"] for r in read_metrics(work / "run" / "metrics.jsonl")
            if r["kind"] == "validation"]
    result = {"split": "train: first 55000 training images; val: last 5000; test: the 10000 "
              "test images", "settings": asdict(cfg), "train": asdict(tcfg),
              "best_val_accuracy": out["best_val_accuracy"], "val_accuracy_by_epoch": vals,
              "test_accuracy": test["accuracy"], "test_loss": test["loss"],
              "steps": out["step"], "train_seconds": seconds}
    print({k: v for k, v in result.items() if k not in ("settings", "train")})
    _common.write("mnist" + ("" if args.order == "rows" else "_permuted"), result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
