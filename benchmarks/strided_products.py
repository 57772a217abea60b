"""The input's products made where a batch-first input lies (rnnkit.fast.strided) against a
time-major copy and one product, per shape: where the limits of strided.project and
strided.weight_grad should be on this machine.

    python benchmarks/strided_products.py [--reps 9] [--out benchmarks/results/strided.json]

For each N x T x D, G: the projection x[t] @ W of every step into a time-major (T, N, G) array,
and the weight gradient dW += sum over t of dA[t]^T x[t], each timed both ways taking turns in
one process (MKL chosen as after a scan that chose it, the limits lifted), median of --reps.
Prints the ratio in place / copy (below 1: in place is faster) and whether the shape is inside
the limits rnnkit uses, and writes the table as JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rnnkit.fast import blas, strided
from rnnkit.fast.scan import projection_steps, time_major_rows

SHAPES = [(128, 200, 512, 512), (128, 200, 512, 1024), (128, 200, 512, 1536),
          (128, 200, 256, 512), (64, 100, 128, 256), (64, 100, 128, 512), (64, 100, 128, 1024),
          (64, 100, 256, 256), (64, 100, 256, 768), (64, 100, 512, 256), (32, 50, 32, 64),
          (32, 50, 32, 256)]


def call_ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def measure(N: int, T: int, D: int, G: int, reps: int, limits: dict) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D), np.float32).transpose(1, 0, 2)       # (T, N, D) view
    W = rng.standard_normal((G, D), np.float32).T                # a cell's Wx_T: transposed
    dA = rng.standard_normal((T, N, G), np.float32)
    gx, dW = np.empty((T, N, G), np.float32), np.zeros((G, D), np.float32)

    def project_copy():
        for t0, t1, rows in time_major_rows(x, projection_steps(x)):
            blas.matmul(rows, W, gx[t0:t1].reshape(-1, G))

    def grad_copy():
        for s0, s1, rows in time_major_rows(x, T):
            blas.matmul(dA[s0:s1].reshape(-1, G).T, rows, dW, accumulate=True)

    row = {"N": N, "T": T, "D": D, "G": G}
    for name, copy, in_place in (
            ("project", project_copy, lambda: strided.project(x, W, gx)),
            ("weight_grad", grad_copy, lambda: strided.weight_grad(dA, x, dW))):
        if not in_place():                  # (also its warm-up)
            row[name] = None                # not served here (no MKL, or not tuned for it)
            continue
        copy()
        a, b = [], []
        for _ in range(reps):               # taking turns, against the machine's drift
            a.append(call_ms(copy))
            b.append(call_ms(in_place))
        row[name] = {"copy_ms": float(np.median(a)), "in_place_ms": float(np.median(b)),
                     "ratio": float(np.median(b) / np.median(a))}
    row["project_limits"] = G <= limits["PROJECT_MAX_WIDTH"] * D and \
        D * G <= limits["PROJECT_MAX_WEIGHTS"] and T * N * D * G >= limits["PROJECT_MIN_MACS"]
    row["weight_grad_limits"] = D <= G <= limits["GRAD_MAX_WIDTH"] * D and \
        D * G <= limits["GRAD_MAX_WEIGHTS"] and N * D * G >= limits["GRAD_MIN_MACS"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "strided.json"))
    args = parser.parse_args()
    limits = {name: getattr(strided, name) for name in ("PROJECT_MAX_WIDTH",
              "PROJECT_MAX_WEIGHTS", "PROJECT_MIN_MACS", "GRAD_MAX_WIDTH", "GRAD_MAX_WEIGHTS",
              "GRAD_MIN_MACS")}
    strided.PROJECT_MAX_WIDTH = strided.GRAD_MAX_WIDTH = 1 << 30        # measure every shape
    strided.PROJECT_MAX_WEIGHTS = strided.GRAD_MAX_WEIGHTS = 1 << 62
    strided.PROJECT_MIN_MACS = strided.GRAD_MIN_MACS = 0
    blas.choose(1 << 30, compiled_loop=True)
    try:
        rows = [measure(*shape, reps=args.reps, limits=limits) for shape in SHAPES]
    finally:
        for name, value in limits.items():
            setattr(strided, name, value)
    print(f"{'N x T x D, G':>22}  project (in place / copy)  weight_grad (in place / copy)")
    for r in rows:
        cells = []
        for name in ("project", "weight_grad"):
            m = r[name]
            flag = "in limits" if r[f"{name}_limits"] else "outside"
            cells.append(f"{m['ratio']:.3f} ({flag})" if m else "not served")
        print(f"{r['N']:>5} x {r['T']:>3} x {r['D']:>4}, {r['G']:>4}  {cells[0]:>25}  "
              f"{cells[1]:>29}")
    Path(args.out).write_text(json.dumps({"limits": limits, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
