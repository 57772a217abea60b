"""The figures of docs/diagnostics.md: the gradient-flow plot (RNN vs LSTM vs GRU at T = 100)
and what the trainer's gradient watch costs against a training step.

    nice -n 5 python benchmarks/diagnostics.py [--repeats 5]

writes benchmarks/results/diagnostics/gradient_flow.{png,json} (by `rnnkit trace --flow`,
the command docs/diagnostics.md shows) and watch_cost.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
from _common import ROOT, commit, machine  # noqa: E402

from rnnkit.cli import main as rnnkit_main  # noqa: E402
from rnnkit.data import Batch  # noqa: E402
from rnnkit.losses import softmax_cross_entropy  # noqa: E402
from rnnkit.models import LanguageModel, SequenceModel  # noqa: E402
from rnnkit.optim import clip_grad_norm, make_optimizer  # noqa: E402
from rnnkit.serialize import save_json  # noqa: E402
from rnnkit.train.watch import ROWS, GradientWatch, hidden_gradients  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "diagnostics"
FLOW = ["trace", "--flow", "--length", "100", "--hidden-size", "32", "--batch", "16",
        "--cells", "rnn", "lstm", "gru", "lstm+fb", "--forget-bias", "3", "--seed", "0"]


def median_time(fn, repeats: int) -> float:
    fn()                                        # compile / warm the caches once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cost(name: str, model, loss_fn, batch: Batch, repeats: int) -> dict:
    """A training step (fast engine: forward, backward, clip, Adam) against the watch's
    measurement at a validation (reference engine, ROWS rows) and its check per step."""
    opt = make_optimizer("adam", model.params, lr=1e-3)

    def train_step():
        model.zero_grad()
        out, _, cache = model.forward(batch.inputs, None, batch.lengths, training=True,
                                      rng=np.random.default_rng(0))
        _, dout = loss_fn(out, batch.targets, batch.lengths)
        model.backward(dout, cache)
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)

    rows = (batch.inputs[:ROWS], batch.targets[:ROWS], None)
    watch = GradientWatch(10.0, 1e-6, log=lambda *a: None)
    watch.recent.extend(np.linspace(1, 2, 50))

    class Stub:
        step = 0
    step_s = median_time(train_step, repeats)
    measure_s = median_time(lambda: hidden_gradients(model, loss_fn, *rows), repeats)
    check_s = median_time(lambda: watch.on_step_end(Stub, {"grad_norm": 1.5}), 1000)
    return {"model": name, "batch": list(np.shape(batch.inputs)), "rows_measured": ROWS,
            "train_step_s": step_s, "measurement_s": measure_s,
            "measurement_over_step": measure_s / step_s, "explode_check_s": check_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rnnkit_main(FLOW + ["--png", str(OUT / "gradient_flow.png"),
                        "--json", str(OUT / "gradient_flow.json")])
    flow_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 65, (32, 65))
    text = cost("text app default: LanguageModel(65, 64, 256, lstm), batch 32 x 64",
                LanguageModel(65, 64, 256, cell="lstm", seed=0), softmax_cross_entropy,
                Batch(ids[:, :-1], ids[:, 1:]), args.repeats)
    x = rng.standard_normal((64, 28, 28)).astype(np.float32)
    mnist = cost("many-to-one: SequenceModel(28 -> lstm 128 -> 10, last), batch 64 x 28",
                 SequenceModel(input_size=28, hidden_size=128, cell="lstm", output_size=10,
                               readout="last", seed=0), softmax_cross_entropy,
                 Batch(x, rng.integers(0, 10, 64)), args.repeats)
    result = {"gradient_flow_command": "rnnkit " + " ".join(FLOW) + " --png "
              "benchmarks/results/diagnostics/gradient_flow.png --json "
              "benchmarks/results/diagnostics/gradient_flow.json",
              "gradient_flow_wall_s": flow_s, "watch_cost": [text, mnist],
              "machine": machine(), "load_average_1_5_15": list(os.getloadavg()),
              "commit": commit(),
              "command": "python benchmarks/diagnostics.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save_json(OUT / "watch_cost.json", result)
    for r in (text, mnist):
        print(f"{r['model']}: training step {r['train_step_s'] * 1e3:.1f} ms, measurement "
              f"{r['measurement_s'] * 1e3:.1f} ms ({r['measurement_over_step']:.2f} steps), "
              f"explosion check {r['explode_check_s'] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
