"""Time a training step (forward + backward) of the layer-normalised cells against the plain
ones on this engine's fast path: lstm vs lnlstm, gru vs lngru, float32, one layer.

    nice -n 5 python benchmarks/ln_cells.py [--repeats 15] [--out benchmarks/results/ln_cells.json]

Each shape's two layers are timed taking turns call by call in one process (the machine
may be shared: only ratios measured side by side count). The ratio is of the fastest of each
layer's calls: other jobs only ever add time, and on a loaded machine a median can catch a
thread of a split loop waiting for a core (it did, 4.2 s against 0.28); the ratio of the
medians is recorded beside it, and the ratio of the least CPU time a call took (the
process's, all its threads': on one thread, where other jobs cannot add to it, the steadiest
measure of the arithmetic on a loaded machine).
Every shape runs on all threads (the loops split the batch over them, as the plain cells'
do) and again, in a process of its own, on one (NUMBA_NUM_THREADS, MKL_NUM_THREADS,
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS = 1): on a machine shared with other jobs, thread
wake-ups then weigh less against the arithmetic being compared. (numba.set_num_threads(1)
alone is not that: the plain LSTM then takes its per-step loop, whose products still run on
MKL's threads.)
The issue's goal: each LN cell within 1.3x of its plain cell's time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rnnkit.fast import blas, kernels  # noqa: E402
from rnnkit.layers import BY_CELL  # noqa: E402

SHAPES = [(32, 50, 128), (64, 50, 128), (32, 100, 256), (64, 100, 256)]      # (N, T, H)
PAIRS = [("lstm", "lnlstm"), ("gru", "lngru")]


def step(layer, x, dout):
    out, _, cache = layer.forward(x)
    layer.backward(dout, None, cache)


def time_pair(plain: str, ln: str, N: int, T: int, H: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    D = H
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    dout = rng.standard_normal((N, T, H)).astype(np.float32)
    layers = {name: BY_CELL[name](D, H, seed=0) for name in (plain, ln)}
    for layer in layers.values():          # compile, fill the buffer pool
        step(layer, x, dout)
        step(layer, x, dout)
    times = {name: [] for name in layers}
    cpu = {name: [] for name in layers}
    for _ in range(repeats):
        for name, layer in layers.items():
            c0, t0 = time.process_time(), time.perf_counter()
            step(layer, x, dout)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {name: float(np.median(t)) for name, t in times.items()}
    low = {name: float(np.min(t)) for name, t in times.items()}
    low_cpu = {name: float(np.min(t)) for name, t in cpu.items()}
    return {"N": N, "T": T, "D": D, "H": H, "plain": plain, "ln": ln,
            "plain_ms": 1e3 * low[plain], "ln_ms": 1e3 * low[ln],
            "ratio": low[ln] / low[plain],
            "plain_median_ms": 1e3 * med[plain], "ln_median_ms": 1e3 * med[ln],
            "ratio_of_medians": med[ln] / med[plain],
            "plain_cpu_ms": 1e3 * low_cpu[plain], "ln_cpu_ms": 1e3 * low_cpu[ln],
            "ratio_cpu": low_cpu[ln] / low_cpu[plain]}


ONE_THREAD = {name: "1" for name in ("NUMBA_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def worker(repeats: int) -> None:
    """Time every shape in this process; one JSON row a line on stdout."""
    import numba
    for N, T, H in SHAPES:
        for plain, ln in PAIRS:
            row = {"threads": numba.get_num_threads(),
                   **time_pair(plain, ln, N, T, H, repeats)}
            print(json.dumps(row), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default="benchmarks/results/ln_cells.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.repeats)
        return 0
    start = time.time()
    rows = []
    for env in ({}, ONE_THREAD):
        proc = subprocess.Popen([sys.executable, __file__, "--worker", "--repeats",
                                 str(args.repeats)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, **env})
        for line in proc.stdout:
            row = json.loads(line)
            rows.append(row)
            print(f"threads {row['threads']}  N={row['N']:3d} T={row['T']:3d} "
                  f"H={row['H']:3d}  {row['plain']:5s} {row['plain_ms']:8.2f} ms   "
                  f"{row['ln']:6s} {row['ln_ms']:8.2f} ms   ratio {row['ratio']:.2f} "
                  f"(of medians {row['ratio_of_medians']:.2f}, of CPU times "
                  f"{row['ratio_cpu']:.2f})", flush=True)
        if proc.wait():
            return proc.returncode
    result = {"command": "nice -n 5 python benchmarks/ln_cells.py " +
                         " ".join(argv if argv is not None else sys.argv[1:]),
              "what": "fastest of `repeats` training steps (forward + backward) of one "
                      "float32 layer, D = H, the two cells taking turns call by call",
              "goal": "ln_ms / plain_ms <= 1.3",
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                         f"cores, BLAS {blas.backend()}, loops split "
                         f"{kernels.shared_openmp()}",
              "load_average_at_end": os.getloadavg(),
              "repeats": args.repeats, "wall_s": round(time.time() - start, 1),
              "rows": rows,
              "max_ratio": max(r["ratio"] for r in rows),
              "max_ratio_cpu_one_thread": max(r["ratio_cpu"] for r in rows
                                              if r["threads"] == 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"max ratio {result['max_ratio']:.2f}; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
