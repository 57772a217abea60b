"""Captioning MNIST digits (one image: "seven"; two side by side: "three five") with the app's
defaults: exact-match captions and character error rate, greedy and beam search, of the
weights with the best validation exact match, on the 10,000 test images and 10,000 seeded
test pairs (the last 5,000 training images and 5,000 pairs of them validate).

    nice -n 5 python benchmarks/apps/caption.py [--epochs 5] [--cell gru] [--val-only]

--val-only trains and reports the validation figures only (for choosing settings), into
caption_val_<cell><hidden>[_bi]_<epochs>ep.json; otherwise the test split is scored once,
into benchmarks/results/apps/caption.json.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import _common
from rnnkit.apps import caption
from rnnkit.train import read_metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=5.0)
    ap.add_argument("--cell", default="gru", choices=("rnn", "lstm", "gru"))
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--val-only", action="store_true", help="do not score the test split")
    args = ap.parse_args()
    cfg = caption.CaptionConfig(data=str(_common.DATA / "digits" / "mnist.npz"), cell=args.cell,
                                hidden_size=args.hidden_size, bidirectional=args.bidirectional,
                                lr=args.lr)
    tcfg = replace(caption.default_train_config(), epochs=args.epochs, progress=False)
    work = Path(tempfile.mkdtemp(prefix="caption-bench-"))
    start = time.perf_counter()
    out = caption.train(cfg, tcfg, work / "run", log=print)
    train_seconds = time.perf_counter() - start
    rows = [r for r in read_metrics(work / "run" / "metrics.jsonl") if r["kind"] == "validation"]
    result = {"split": "train: first 55000 training images as singles + 27500 seeded pairs of "
              "them; val: last 5000 training images + 5000 pairs of them; test: the 10000 test "
              "images + 10000 seeded pairs of them", "settings": asdict(cfg),
              "train": asdict(tcfg), "best_val_exact": out["best_val_exact"],
              "val_exact_by_epoch": [r["val_exact"] for r in rows],
              "steps": out["step"], "train_seconds": train_seconds}
    name = (f"caption_val_{args.cell}{args.hidden_size}{'_bi' if args.bidirectional else ''}"
            f"_{args.epochs:g}ep")
    if not args.val_only:
        start = time.perf_counter()
        result["test"] = caption.evaluate(work / "run", log=print, beam=args.beam)
        result["evaluate_seconds"] = time.perf_counter() - start
        name = "caption"
    result["wall_seconds"] = train_seconds + result.get("evaluate_seconds", 0.0)
    print({k: v for k, v in result.items() if k not in ("settings", "train")})
    _common.write(name, result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
