"""Captioning MNIST digits (one image: "seven"; two side by side: "three five") with the app's
defaults: exact-match captions and character error rate, greedy and beam search, of the
weights with the best validation exact match, on the 10,000 test images and 10,000 seeded
test pairs (the last 5,000 training images and 5,000 pairs of them validate).

    nice -n 5 python benchmarks/apps/caption.py [--epochs 5] [--cell gru] [--shift 2] [--val-only]
    nice -n 5 python benchmarks/apps/caption.py --test-run RUN

--val-only trains and reports the validation figures only (for choosing settings: exact
match of singles and pairs together by epoch, then singles and pairs apart, greedy and beam),
into caption_val_<cell><hidden>[_bi][_shiftS][_lrLR][_seedN]_<epochs>ep.json; otherwise the
test split is scored once, into benchmarks/results/apps/caption.json. --run-dir keeps the
run folder (else a temporary one is removed); --test-run scores the test split of a run kept
so, once, with the training record its --val-only run left in it (benchmark.json).
"""
from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--shift", type=int, default=0, help="training tiles' random shift, pixels")
    ap.add_argument("--seed", type=int, default=0, help="the trainer's seed (weights, order)")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--val-only", action="store_true", help="do not score the test split")
    ap.add_argument("--run-dir", default="", help="keep the run in this (new) folder")
    ap.add_argument("--test-run", default="", help="score the test split of a kept run")
    args = ap.parse_args()
    if args.test_run:
        return score_kept_run(Path(args.test_run), args.beam)
    cfg = caption.CaptionConfig(data=str(_common.DATA / "digits" / "mnist.npz"), cell=args.cell,
                                hidden_size=args.hidden_size, bidirectional=args.bidirectional,
                                lr=args.lr, shift=args.shift)
    tcfg = replace(caption.default_train_config(), epochs=args.epochs, progress=False,
                   seed=args.seed)
    work = Path(tempfile.mkdtemp(prefix="caption-bench-"))
    run = Path(args.run_dir) if args.run_dir else work / "run"
    start = time.perf_counter()
    out = caption.train(cfg, tcfg, run, log=print)
    train_seconds = time.perf_counter() - start
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    result = {"split": "train: first 55000 training images as singles + 27500 seeded pairs of "
              "them; val: last 5000 training images + 5000 pairs of them; test: the 10000 test "
              "images + 10000 seeded pairs of them", "settings": asdict(cfg),
              "train": asdict(tcfg), "best_val_exact": out["best_val_exact"],
              "val_exact_by_epoch": [r["val_exact"] for r in rows],
              "steps": out["step"], "train_seconds": train_seconds}
    name = (f"caption_val_{args.cell}{args.hidden_size}{'_bi' if args.bidirectional else ''}"
            f"{f'_shift{args.shift}' if args.shift else ''}"
            f"{f'_lr{args.lr:g}' if args.lr != 2e-3 else ''}"
            f"{f'_seed{args.seed}' if args.seed else ''}_{args.epochs:g}ep")
    if args.val_only:
        # singles and pairs apart: pairs are the goal's hard half
        result["val"] = caption.evaluate(run, log=print, split="val", beam=args.beam)
        (run / "benchmark.json").write_text(json.dumps(dict(result, name=name), indent=1))
    else:
        start = time.perf_counter()
        result["test"] = caption.evaluate(run, log=print, beam=args.beam)
        result["evaluate_seconds"] = time.perf_counter() - start
        name = "caption"
    result["wall_seconds"] = train_seconds + result.get("evaluate_seconds", 0.0)
    print({k: v for k, v in result.items() if k not in ("settings", "train")})
    _common.write(name, result)
    shutil.rmtree(work, ignore_errors=True)


def score_kept_run(run: Path, beam: int) -> None:
    """The test split of a run trained by `--val-only --run-dir RUN`, scored once."""
    result = json.loads((run / "benchmark.json").read_text())
    if "test" in result:
        raise SystemExit(f"{run}: its test split was scored already")
    start = time.perf_counter()
    result["test"] = caption.evaluate(run, log=print, beam=beam)
    result["evaluate_seconds"] = time.perf_counter() - start
    result["wall_seconds"] = result["train_seconds"] + result["evaluate_seconds"]
    result["trained_by"] = result.pop("name") + ".json"
    (run / "benchmark.json").write_text(json.dumps(result, indent=1))
    print({k: v for k, v in result.items() if k not in ("settings", "train")})
    _common.write("caption", result)


if __name__ == "__main__":
    main()
