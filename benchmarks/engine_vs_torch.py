"""rnnkit vs PyTorch (CPU, 2 threads) for one training step and one inference forward.

Training step = forward over the whole sequence + loss sum(out * R) + full BPTT to every
weight and the input. Each framework runs in its own process (thread pools of one slow the
other). Warm-up, then the median of --reps repetitions. Prints a table, writes JSON.

    python benchmarks/engine_vs_torch.py [--configs small,medium,large] [--cells lstm,gru,rnn]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CONFIGS = {"small": (32, 50, 32, 64), "medium": (64, 100, 128, 256),
           "large": (128, 200, 512, 512), "stream": (1, 1000, 16, 128)}


def median_time(fn, reps: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def worker_rnnkit(cell: str, N: int, T: int, D: int, H: int, reps: int) -> dict:
    import numpy as np
    import rnnkit
    layer = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[cell](D, H, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    R = rng.standard_normal((N, T, H)).astype(np.float32)

    def train():
        layer.zero_grad()
        out, _, cache = layer.forward(x)
        float((out * R).sum())
        layer.backward(R, None, cache)

    return {"train": median_time(train, reps), "infer": median_time(lambda: layer.forward(x), reps)}


def worker_torch(cell: str, N: int, T: int, D: int, H: int, reps: int) -> dict:
    import torch
    torch.set_num_threads(2)
    layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        D, H, batch_first=True)
    x = torch.randn(N, T, D, requires_grad=True)
    R = torch.randn(N, T, H)

    def train():
        layer.zero_grad()
        x.grad = None
        out, _ = layer(x)
        (out * R).sum().backward()

    def infer():
        with torch.no_grad():
            layer(x)

    return {"train": median_time(train, reps), "infer": median_time(infer, reps)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", default="small,medium,large")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "engine_vs_torch.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fn = worker_rnnkit if args.worker == "rnnkit" else worker_torch
        print(json.dumps(fn(args.cell, *CONFIGS[args.config], args.reps)))
        return
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    rows = []
    print(f"{'config':8} {'cell':5} {'mode':6} {'rnnkit ms':>10} {'torch ms':>10} {'ratio':>6}")
    for config in args.configs.split(","):
        for cell in args.cells.split(","):
            res = {}
            for fw in ("rnnkit", "torch"):
                cmd = [sys.executable, __file__, "--worker", fw, "--cell", cell,
                       "--config", config, "--reps", str(args.reps)]
                res[fw] = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                                    text=True).stdout.strip().splitlines()[-1])
            for mode in ("train", "infer"):
                ours, theirs = res["rnnkit"][mode], res["torch"][mode]
                rows.append({"config": config, "shape_NTDH": CONFIGS[config], "cell": cell,
                             "mode": mode, "rnnkit_s": ours, "torch_s": theirs,
                             "ratio": ours / theirs})
                print(f"{config:8} {cell:5} {mode:6} {ours * 1e3:10.2f} {theirs * 1e3:10.2f} "
                      f"{ours / theirs:6.2f}", flush=True)
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "cpus": os.cpu_count(), "python": platform.python_version()}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"machine": machine, "dtype": "float32", "reps": args.reps, "rows": rows}, f,
                  indent=1)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
