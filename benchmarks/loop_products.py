"""The small products inside rnnkit's compiled time loops, and the bias-gradient sums.

    python benchmarks/loop_products.py [--calls 500] [--rounds 7]
        [--out benchmarks/results/loop_products.json]

Loop products: one thread's per-step product ``acc = h @ W`` (rows = one thread's span of
the batch), called the way the whole loops call it (``rnnkit.fast.kernels.fastmath.matmul_rows``
inside a compiled loop, MKL on this thread only), with each of the ways
``rnnkit.fast.blas.loop_product`` can hand it over:
- sgemm:     MKL's cblas_sgemm, which checks its arguments and picks its blocking per call;
- generated: the sgemm MKL generates for exactly this shape (mkl_cblas_jit_create_sgemm),
             rnnkit's choice below LOOP_PACK_MACS multiply-adds;
- packed:    cblas_sgemm_compute on W packed once, rnnkit's choice from LOOP_PACK_MACS up;
- openblas:  the sgemm of NumPy's OpenBLAS, which runs products up to SINGLE_THREAD_MACS on
             the calling thread: rnnkit's choice for those where MKL is not tuned for the
             processor (rnnkit.fast.blas.mkl_tuned, e.g. AMD's);
- own:       the loop's own product (batch 1-2 use it; shown for the small shapes only).
Column sums: the bias gradients, dL/da summed over steps and rows, as NumPy's
``a.sum(axis=0)`` and as ``rnnkit.fast.blas.column_sums`` (a row of ones times a, on BLAS).

Each variant is timed over --calls calls, the variants taking turns for --rounds rounds; the
table gives the best round per call, and each variant's time over the plain sgemm's (or
NumPy's sum's) of the same run. Needs numba and the mkl package (``pip install -e .[fast]``).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from rnnkit.fast import blas  # noqa: E402
from rnnkit.fast.kernels import fastmath  # noqa: E402

# (rows, K, N): a thread's span x hidden @ hidden x gates*hidden, as the benchmark sizes
# make them (peers.py: batch split over 2 threads)
LOOP_SHAPES = {"small RNN": (16, 64, 64), "small GRU": (16, 64, 192),
               "small LSTM": (16, 64, 256), "small LSTM backward": (16, 256, 64),
               "batch 8 LSTM, H = 128": (4, 128, 512), "medium LSTM": (32, 256, 1024),
               "large LSTM": (64, 512, 2048)}
SUM_SHAPES = {"small LSTM": (1600, 256), "medium LSTM": (6400, 1024),
              "large LSTM": (25600, 2048), "stream LSTM": (1000, 512)}


def _calls(gemm, acc, h, W, calls):
    before = fastmath.local_threads(gemm, 1)
    for _ in range(calls):
        fastmath.matmul_rows(gemm, acc, h, W, h.shape[0], False)
    fastmath.local_threads(gemm, before)


def loop_products(calls: int, rounds: int) -> list[dict]:
    run = fastmath.njit(**fastmath.OPTS)(_calls)
    rng = np.random.default_rng(0)
    address = blas.gemm_address()
    # MKL_Set_Num_Threads_Local, which the loops call to keep MKL on their own thread
    threads = blas.loop_product(np.ones((1, 1), np.float32), 1, address)[0][2]
    openblas = blas.numpy_openblas()
    rows_out = []
    for name, (m, k, n) in LOOP_SHAPES.items():
        h = rng.standard_normal((m, k)).astype(np.float32)
        W = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        acc = np.empty((m, n), np.float32)
        packed = blas.Packed(W, m, always=True)
        compute = ctypes.cast(packed.compute, ctypes.c_void_p).value
        variants = {"sgemm": (address, 0, threads, 0, 0, 0, 0, 0),
                    "generated": (address, 0, threads, *blas.jit_kernel(m, n, k, False), m, 0,
                                  0),
                    "packed": (compute, packed.buf.ctypes.data, threads, 0, 0, 0, 0, 0)}
        if m * k * n <= blas.SINGLE_THREAD_MACS:
            variants["own"] = blas.NO_PRODUCT
            if openblas:                # NumPy's, which runs these on the calling thread
                variants["openblas"] = (openblas.sgemm, 0, threads, 0, 0, 0, 0,
                                          int(openblas.ilp64))
        expected = h.astype(np.float64) @ W
        for label, gemm in variants.items():       # each computes the product (and compiles)
            acc.fill(np.nan)
            run(gemm, acc, h, W, 1)
            np.testing.assert_allclose(acc, expected, rtol=1e-4, atol=1e-4, err_msg=label)
        best = {label: np.inf for label in variants}
        for _ in range(rounds):
            for label, gemm in variants.items():
                t0 = time.perf_counter()
                run(gemm, acc, h, W, calls)
                best[label] = min(best[label], (time.perf_counter() - t0) / calls * 1e6)
        rows_out.append({"product": name, "rows": m, "K": k, "N": n, "macs": m * k * n,
                         "us_per_call": {v: round(t, 2) for v, t in best.items()},
                         "over_sgemm": {v: round(t / best["sgemm"], 2)
                                        for v, t in best.items()}})
    return rows_out


def column_sums(calls: int, rounds: int) -> list[dict]:
    rng = np.random.default_rng(1)
    blas.choose(0, compiled_loop=True)          # as a scan whose loop is compiled whole
    rows_out = []
    for name, shape in SUM_SHAPES.items():
        a = rng.standard_normal(shape).astype(np.float32)
        exact = a.astype(np.float64).sum(axis=0)
        variants = {"numpy sum": lambda: a.sum(axis=0), "ones @ a": lambda: blas.column_sums(a)}
        error = {v: float(np.abs(f() - exact).max() / np.abs(exact).max())
                 for v, f in variants.items()}
        reps = max(1, calls * 1600 // shape[0] // 10)
        best = {v: np.inf for v in variants}
        for _ in range(rounds):
            for v, f in variants.items():
                t0 = time.perf_counter()
                for _ in range(reps):
                    f()
                best[v] = min(best[v], (time.perf_counter() - t0) / reps * 1e6)
        rows_out.append({"array": name, "shape": list(shape),
                         "us_per_call": {v: round(t, 1) for v, t in best.items()},
                         "over_numpy": round(best["ones @ a"] / best["numpy sum"], 2),
                         "max_rel_error_vs_float64": {v: float(f"{e:.2g}")
                                                      for v, e in error.items()}})
    return rows_out


def table(products: list[dict], sums: list[dict]) -> str:
    kinds = ["sgemm", "generated", "packed", "openblas", "own"]
    over = ["generated", "packed", "openblas"]
    lines = ["| loop product | rows x K @ K x N | " + " | ".join(f"{k} us" for k in kinds) +
             " | " + " | ".join(f"{k} / sgemm" for k in over) + " |",
             "|---|---|" + "---:|" * (len(kinds) + len(over))]
    for r in products:
        us, ratio = r["us_per_call"], r["over_sgemm"]
        lines.append(f"| {r['product']} | {r['rows']} x {r['K']} @ {r['K']} x {r['N']} | " +
                     " | ".join(f"{us[k]:.2f}" if k in us else "-" for k in kinds) + " | " +
                     " | ".join(f"{ratio[k]:.2f}" if k in ratio else "-" for k in over) + " |")
    lines += ["", "| bias-gradient sum | shape | numpy sum us | ones @ a us | ratio | "
              "rel. error numpy / ones @ a |", "|---|---|---:|---:|---:|---|"]
    for r in sums:
        us, err = r["us_per_call"], r["max_rel_error_vs_float64"]
        lines.append(f"| {r['array']} | {r['shape'][0]} x {r['shape'][1]} | "
                     f"{us['numpy sum']:.1f} | {us['ones @ a']:.1f} | {r['over_numpy']:.2f} | "
                     f"{err['numpy sum']:.1e} / {err['ones @ a']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/loop_products.json")
    args = parser.parse_args()
    if not fastmath.AVAILABLE or not blas.gemm_address():
        sys.exit("loop_products.py needs numba and the mkl package: pip install -e '.[fast]'")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    products = loop_products(args.calls, args.rounds)
    sums = column_sums(args.calls, args.rounds)
    text = table(products, sums)
    print(text)
    from peer_report import describe_machine, rnnkit_source
    result = {"command": " ".join(sys.argv), "started": started, "calls": args.calls,
              "rounds": args.rounds, "machine": describe_machine({}), "rnnkit_blas":
              blas.backend(), "rnnkit_source": rnnkit_source(), "loop_products": products,
              "column_sums": sums}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    header = (f"# Loop products and bias-gradient sums\n\nGenerated by `python "
              f"benchmarks/loop_products.py` ({started}); method in its docstring. Machine: "
              f"{result['machine']['cpu_model']}, {result['machine']['logical_cpus']} logical "
              f"CPUs; {blas.backend()}; best of {args.rounds} rounds of {args.calls} calls.\n\n")
    out.with_suffix(".md").write_text(header + text + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
