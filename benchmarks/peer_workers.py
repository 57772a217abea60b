"""One framework in one process: the worker side of ``benchmarks/peers.py``.

    python benchmarks/peer_workers.py FRAMEWORK TASK [--cell C --shape N,T,D,H --reps R ...]

FRAMEWORK is rnnkit, torch or jax; TASK is
  time    warm-ups, then >= --reps timed training steps and inference forwards (more for
          fast ones, to fill --min-time seconds), with the CPU share other processes took,
          plus a checksum of one step (loss, sum|dx|, sum|dW_hh|) to cross-check frameworks,
          and the framework's own GEMM rate just before and just after them (best of 20
          2048^3 products each: how fast the machine ran meanwhile, ``adjacent_gemm``);
  memory  one warm-up step, then the resident-set high-water mark of one more step over the
          resident set before it (see ``step_memory``);
  gemm    the best of max(--reps, 10) float32 (n, n) @ (n, n) products (rnnkit: NumPy's
          and rnnkit.fast.blas's).
Prints one JSON line. The parent sets the thread environment; this process also restricts
itself to --threads CPUs (``sched_setaffinity``) before importing anything numeric, which is
what caps XLA's CPU thread pool in current jax (it sizes the pool from the CPUs it may run on).

Every framework gets the same problem (``make_problem``): PyTorch-layout weights drawn
U(-1/sqrt(H), 1/sqrt(H)), x and R standard normal, float32, NumPy seed 0.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import threading
import time

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def make_problem(cell: str, N: int, T: int, D: int, H: int):
    """-> (x (N, T, D), R (N, T, H), PyTorch state dict of NumPy float32 arrays)."""
    import numpy as np
    rng = np.random.default_rng(0)
    G, k = GATES[cell], 1.0 / np.sqrt(H)
    shapes = {"weight_ih_l0": (G * H, D), "weight_hh_l0": (G * H, H),
              "bias_ih_l0": (G * H,), "bias_hh_l0": (G * H,)}
    sd = {name: rng.uniform(-k, k, shape).astype(np.float32) for name, shape in shapes.items()}
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    R = rng.standard_normal((N, T, H)).astype(np.float32)
    return x, R, sd


# Each builder returns (train, infer, check): train() runs one training step (forward,
# loss sum(out * R), BPTT to every weight and x) and returns its results so that nothing is
# freed before the step is over; infer() runs one forward; check() -> checksums of one step.

def build_rnnkit(cell, x, R, sd, threads):
    import numpy as np
    import rnnkit
    from rnnkit.interop.torch_weights import from_torch_state_dict, grads_to_torch_layout
    layer = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[cell](
        x.shape[2], R.shape[2], seed=0)
    from_torch_state_dict(layer, sd)

    def train():
        layer.zero_grad()
        out, _, cache = layer.forward(x)
        loss = float(np.einsum("ntd,ntd->", out, R))    # sum(out * R), no temporary
        dx, _ = layer.backward(R, None, cache)          # dL/dout = R
        return loss, dx

    def infer():
        return layer.forward(x, grad=False)     # inference: no BPTT cache is kept

    def check():
        loss, dx = train()
        dW_hh = grads_to_torch_layout(layer)["weight_hh_l0"]
        return loss, float(np.abs(dx).sum()), float(np.abs(dW_hh).sum())

    return train, infer, check


def build_torch(cell, x, R, sd, threads):
    import torch
    torch.set_num_threads(threads)
    layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        x.shape[2], R.shape[2], batch_first=True)
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    xt = torch.from_numpy(x).requires_grad_(True)
    Rt = torch.from_numpy(R)

    def train():
        layer.zero_grad(set_to_none=True)
        xt.grad = None
        out, _ = layer(xt)
        loss = torch.vdot(out.reshape(-1), Rt.reshape(-1))  # sum(out * R), no temporary
        loss.backward()
        return loss

    def infer():
        with torch.no_grad():
            return layer(xt)

    def check():
        loss = train()
        return (loss.item(), float(xt.grad.abs().sum()),
                float(layer.weight_hh_l0.grad.abs().sum()))

    return train, infer, check


def build_jax(cell, x, R, sd, threads):
    import jax
    import jax.numpy as jnp
    from jax_cells import make_steps
    p = {k: jnp.asarray(v) for k, v in sd.items()}
    xj, Rj = jnp.asarray(x), jnp.asarray(R)
    jit_infer, jit_train = make_steps(cell)

    def train():
        return jax.block_until_ready(jit_train(p, xj, Rj))

    def infer():
        return jax.block_until_ready(jit_infer(p, xj))

    def check():
        loss, (dp, dx) = train()
        return (float(loss), float(jnp.abs(dx).sum()),
                float(jnp.abs(dp["weight_hh_l0"]).sum()))

    return train, infer, check


BUILDERS = {"rnnkit": build_rnnkit, "torch": build_torch, "jax": build_jax}


def _cpu_snapshot():
    """-> (wall s, this process's CPU s, machine busy s incl. steal, over all CPUs)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)         # idle + iowait
    busy = sum(ticks[:8]) - idle                                    # user..steal
    return time.perf_counter(), time.process_time(), busy / os.sysconf("SC_CLK_TCK")


def timed(fn, reps: int, warmup: int, min_time: float) -> dict:
    """Warm-ups (the first includes any compilation), then at least ``reps`` timed calls and
    at least ``min_time`` seconds of them (at most 200 calls); the median is the result.

    ``background`` is the share of the machine's CPU time that other processes (and the
    hypervisor, as steal) took while the timed calls ran: 0 on a quiet machine, 0.5 when
    another job keeps one of two cores busy. Resolution: one clock tick (10 ms).
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    estimate = first
    for _ in range(warmup - 1):
        start = time.perf_counter()
        fn()
        estimate = time.perf_counter() - start
    n = max(reps, min(200, math.ceil(min_time / max(estimate, 1e-6))))
    times = []
    wall0, own0, busy0 = _cpu_snapshot()
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    wall1, own1, busy1 = _cpu_snapshot()
    others = max(0.0, (busy1 - busy0) - (own1 - own0))
    return {"median_ms": 1e3 * sorted(times)[len(times) // 2], "min_ms": 1e3 * min(times),
            "reps": n, "times_ms": [1e3 * t for t in times], "first_call_ms": 1e3 * first,
            "background": min(1.0, others / ((wall1 - wall0) * (os.cpu_count() or 1)))}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def step_memory(train) -> dict:
    """Peak resident memory one training step adds over the process's resident set before it.

    One warm-up step first (jax compiles, torch sets up its kernels); the parent runs this
    process with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_), so every large buffer
    is returned to the OS when freed and the warm-up leaves nothing cached for the measured
    step to reuse (rnnkit's workspace pool is emptied for the same reason). Then the
    kernel's high-water mark is reset (``/proc/self/clear_refs`` = 5) and read back after
    the step (VmHWM): exact, no sampling. Where that reset is not permitted, a thread samples
    VmRSS every 0.2 ms instead.
    """
    train()
    if "rnnkit" in sys.modules:         # its workspace pool keeps the warm-up's buffers:
        sys.modules["rnnkit"].workspace.clear()     # the measured step must allocate them
    gc.collect()
    base_kb = _status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM after clear_refs=5"
    except OSError:
        method = "VmRSS sampled every 0.2 ms"
    if method.startswith("VmHWM"):
        result = train()
        peak_kb = _status_kb("VmHWM")
    else:
        peak, done = [base_kb], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], _status_kb("VmRSS"))
                time.sleep(2e-4)
        sampler = threading.Thread(target=sample)
        sampler.start()
        result = train()
        done.set()
        sampler.join()
        peak_kb = peak[0]
    del result
    return {"peak_mb": (peak_kb - base_kb) / 1024, "rss_before_mb": base_kb / 1024,
            "rss_peak_mb": peak_kb / 1024, "method": method}


def _gemm_call(framework: str, a, b, threads: int):
    """-> a no-argument call computing a @ b with the framework's own product (rnnkit's:
    rnnkit.fast.blas, MKL when installed), blocking until the result is there."""
    if framework == "rnnkit":
        import numpy as np
        from rnnkit.fast import blas, kernels
        kernels.shared_openmp()         # (which routes the products where rnnkit's loops run)
        out = np.empty_like(a)
        return lambda: blas.matmul(a, b, out)
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(at, bt)
    import jax
    import jax.numpy as jnp
    mm = jax.jit(jnp.matmul)
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    return lambda: mm(aj, bj).block_until_ready()


def _square_pair(n: int):
    import numpy as np
    return (np.random.default_rng(0).standard_normal((n, n)).astype(np.float32),
            np.random.default_rng(1).standard_normal((n, n)).astype(np.float32))


def _best_rate(fn, n: int, reps: int) -> float:
    """GFLOP/s of the fastest of ``reps`` calls of an (n, n) @ (n, n) product, after one."""
    fn()
    return 2 * n ** 3 / min(_wall(fn) for _ in range(reps)) / 1e9


def gemm_peak(framework: str, n: int, reps: int, threads: int) -> dict:
    """Best-of-``max(reps, 10)`` float32 GEMM rate in GFLOP/s, and the library's build info."""
    import numpy as np
    a, b = _square_pair(n)
    reps = max(reps, 10)
    info = {}
    if framework == "rnnkit":           # NumPy's own BLAS and rnnkit.fast.blas (MKL if installed)
        from rnnkit.fast import blas, kernels
        kernels.shared_openmp()         # (where rnnkit.fast.blas sends its products, as in use)
        out = np.empty_like(a)
        info["numpy_gflops"] = _best_rate(lambda: np.matmul(a, b, out=out), n, reps)
        info["rnnkit_blas"] = blas.large_products()
        try:
            info["numpy_config"] = np.show_config(mode="dicts")
        except TypeError:                                               # NumPy < 1.25
            pass
    elif framework == "torch":
        import torch
        torch.set_num_threads(threads)          # (before parallel_info, which reports it)
        info["torch_parallel_info"] = torch.__config__.parallel_info()
        info["torch_config"] = torch.__config__.show()
    gflops = _best_rate(_gemm_call(framework, a, b, threads), n, reps)
    return {"n": n, "best_s": 2 * n ** 3 / gflops / 1e9, "gflops": gflops, "info": info}


ADJACENT_REPS = 20


def adjacent_gemm(framework: str, n: int, threads: int) -> float:
    """The framework's own GEMM rate now, best of ADJACENT_REPS: timed in the timing process
    just before and just after its timings, it says how fast the machine ran meanwhile (this
    VM's speed moves 1.3-1.5x over minutes; a fraction of peak needs both sides measured in
    the same phase). Best of 20: single products of one process, seconds apart, took 179-251
    GFLOP/s; its best of 5 went from 171 to 251 between processes, of 20 from 218 to 249."""
    return _best_rate(_gemm_call(framework, *_square_pair(n), threads), n, ADJACENT_REPS)


def _wall(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("framework", choices=sorted(BUILDERS))
    parser.add_argument("task", choices=("time", "memory", "gemm"))
    parser.add_argument("--cell", choices=sorted(GATES))
    parser.add_argument("--shape", help="N,T,D,H")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gemm-n", type=int, default=2048)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))[:args.threads]
    os.sched_setaffinity(0, cpus)
    result = {"framework": args.framework, "task": args.task, "cpus": cpus}
    if args.task == "gemm":
        result.update(gemm_peak(args.framework, args.gemm_n, args.reps, args.threads))
    else:
        N, T, D, H = (int(v) for v in args.shape.split(","))
        x, R, sd = make_problem(args.cell, N, T, D, H)
        train, infer, check = BUILDERS[args.framework](args.cell, x, R, sd, args.threads)
        if args.task == "memory":
            result.update(step_memory(train))
        else:
            before = adjacent_gemm(args.framework, args.gemm_n, args.threads)
            result["train"] = timed(train, args.reps, args.warmup, args.min_time)
            result["infer"] = timed(infer, args.reps, args.warmup, args.min_time)
            around = [before, adjacent_gemm(args.framework, args.gemm_n, args.threads)]
            for mode in ("train", "infer"):             # (kept with the round each mode takes)
                result[mode]["gemm_gflops_around"] = around
            result["check"] = dict(zip(("loss", "sum_abs_dx", "sum_abs_dW_hh"), check()))
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
