"""rnnkit against its peers, PyTorch (CPU) and JAX (CPU), on RNN (tanh), LSTM and GRU layers.

    python benchmarks/peers.py [--configs small,medium,large,stream] [--cells rnn,lstm,gru]
        [--frameworks rnnkit,torch,jax] [--reps 5] [--rounds 1]
        [--out benchmarks/results/peers.json]

For every configuration and cell, one layer, float32, batch-first:
- train: one training step = forward over the whole sequence, loss sum(out * R) with a fixed
  random R, and full BPTT to every weight and to the input x. The loss is taken as a dot
  product (rnnkit ``np.einsum``, PyTorch ``torch.vdot``; XLA fuses JAX's): written as
  ``(out * R).sum()`` its (N, T, H) temporary took 27 ms of a 330 ms large RNN step in NumPy
  and, with its backward, 28 ms in PyTorch (einsum 7, vdot 15; at the other sizes both
  ways were as fast or faster too). rnnkit: ``forward`` then
  ``backward``; PyTorch 2.x: ``nn.RNN/LSTM/GRU(batch_first=True)`` and autograd; JAX: the
  cells written out in ``jax_cells.py`` (PyTorch's gate order, GRU reset after), ``lax.scan``
  over time, ``jit(value_and_grad)`` w.r.t. the weights and x.
- infer: one forward. rnnkit ``layer.forward(x, grad=False)`` (no backward cache is kept);
  PyTorch under ``torch.no_grad()``; JAX the jitted forward.
All three get the same weights and data (``peer_workers.make_problem``); each worker reports
the loss, sum|dx| and sum|dW_hh| of one step and the table's ``check`` column says whether
they agree (relative 1e-3), so every framework is known to compute the same thing.

Method. Each framework runs in its own fresh process per (configuration, cell): thread
pools left behind by one framework slow another in the same process by up to 5x. Every
process gets OMP/OPENBLAS/MKL_NUM_THREADS=2, torch.set_num_threads(2), and an affinity mask
of 2 CPUs, which is what caps XLA's CPU thread pool in current jax (the old XLA_FLAGS
``--xla_cpu_multi_thread_eigen=false`` is set too but no longer limits threads).
Timing: --warmup calls (the first includes jit compilation, reported as first_call_ms), then
the median of at least --reps calls, and of at least --min-time seconds of calls, wall clock.
The machine may be shared: each worker also measures the share of the CPUs that other
processes took during its timed calls (column "others' CPU %", per framework); above
--busy the timing is redone in a fresh process, at most --retries times, and the quietest
attempt kept (every attempt is in the JSON). This machine's speed also drifts by tens of
percent over minutes; --rounds R repeats the timings R times, the frameworks taking turns
(a fresh process each), and reports each framework's median over the rounds.
Memory: in --rounds other fresh processes (the median), one warm-up step, then the peak
resident memory that one training step adds over the resident set before it (kernel
high-water mark reset through /proc/self/clear_refs, glibc's mmap threshold fixed so freed
buffers go back to the OS; see ``peer_workers.step_memory``). It counts everything the
step allocates: activations kept for backward, temporaries, and gradients the framework
allocates fresh (PyTorch's .grad after zero_grad(set_to_none=True), JAX's returned tree;
rnnkit's gradient arrays live in the layer and are in the baseline, about the size of the
weights).

GFLOP/s. FLOPs are counted analytically as 2*M*N*K per matrix product, G = 1, 4, 3 gates:
    forward   input projection  (N*T, D) @ (D, G*H)      2*N*T*D*G*H
              recurrent product (N, H) @ (H, G*H), T x   2*N*T*H*G*H
    backward  dh    = dgates @ W_hh                      2*N*T*G*H*H
              dW_xh = dgates^T @ x                       2*N*T*G*H*D
              dW_hh = dgates^T @ h_prev                  2*N*T*G*H*H
              dx    = dgates @ W_xh                      2*N*T*G*H*D
so infer = 2*N*T*G*H*(D+H) and train = 3x that. Elementwise work (gates, activations, the
loss, bias sums) is not counted. Achieved GFLOP/s is that count over the median time, and is
given as a fraction of the machine's float32 GEMM peak: the best of 10 2048^3 products in
NumPy and in PyTorch (2 threads each), before and after the rest, the higher of the two
(JAX's is recorded too, for information). This VM's speed moves by a third over minutes
(the peak went 255 -> 182 GFLOP/s within one run), so each timing process also times its
framework's own 2048^3 product, best of 20, just before and just after its timings; the
higher of those over the framework's best before and after the run scales the peak to the one
at the time, and "% then" is the fraction of that (``peer_report.build_rows``).

Output: a Markdown table on stdout and in ``<out>.md``, everything in ``<out>`` (JSON), with
the machine described (CPU, cores, memory, library versions, BLAS builds).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys

from peer_report import (CONFIGS, FRAMEWORKS, GATES, MODES, build_rows, describe_machine,
                         markdown_document, rnnkit_source, summarize, version)

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "peer_workers.py")
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"


# Read by OpenBLAS alone, of the three frameworks' libraries: a machine that sets it (this
# one's environment holds OpenBLAS to its Haswell kernels, AVX2, on an AVX-512 processor)
# would hold rnnkit's products back where PyTorch's oneDNN and XLA pick their own.
DROPPED_ENV = ("OPENBLAS_CORETYPE",)


def worker_env(threads: int, memory: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), XLA_FLAGS=XLA_FLAGS,
               PYTHONPATH=os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])))
    if memory:      # fixed threshold: large blocks are mmapped and unmapped on free
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    return env


def run_worker(framework: str, task: str, args, cell: str | None = None,
               shape: tuple | None = None) -> dict:
    cmd = [sys.executable, WORKER, framework, task, "--reps", str(args.reps),
           "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--min-time", str(args.min_time)]
    if cell:
        cmd += ["--cell", cell, "--shape", ",".join(map(str, shape))]
    proc = subprocess.run(cmd, env=worker_env(args.threads, task == "memory"),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def busiest(timing: dict) -> float:
    """The larger share of CPU other processes took during the train and infer timings."""
    return max(timing[m]["background"] for m in MODES) if "error" not in timing else 0.0


def time_with_retries(framework: str, args, config: str, cell: str, log) -> dict:
    """Time in a fresh process; while other processes took more than --busy of the CPUs
    during it, try again (at most --retries times) and keep the quietest attempt."""
    attempts = []
    for attempt in range(1 + args.retries):
        log(f"{config} {cell} {framework}: time" + (f", retry {attempt}" if attempt else ""))
        attempts.append(run_worker(framework, "time", args, cell, CONFIGS[config]))
        if busiest(attempts[-1]) <= args.busy:
            break
    best = dict(min(attempts, key=busiest))
    best["attempts"] = [{"background": {m: a[m]["background"] for m in MODES},
                         "median_ms": {m: a[m]["median_ms"] for m in MODES}}
                        if "error" not in a else a for a in attempts]
    return best


def median_of_rounds(rounds: list) -> dict:
    """One timing from --rounds timings: per mode, the round with the median time (all kept)."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[0]
    timing = dict(ok[0])
    for mode in MODES:
        by_time = sorted((r[mode] for r in ok), key=lambda m: m["median_ms"])
        timing[mode] = dict(by_time[(len(by_time) - 1) // 2],
                            rounds_ms=[r[mode]["median_ms"] for r in ok])
    return timing


def median_memory(runs: list) -> dict:
    """One memory measurement from --rounds fresh processes: the one with the median peak (all
    kept). A small step's peak moves by a few pages from one process to the next, in every
    framework (small RNN: rnnkit 0.99 or 1.09 MB, PyTorch 0.93-1.16 in runs of one commit)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    by_peak = sorted(ok, key=lambda r: r["peak_mb"])
    return dict(by_peak[(len(by_peak) - 1) // 2], rounds_mb=[r["peak_mb"] for r in ok])


def measure_gemm(args, log, when: str) -> dict:
    """framework -> its best float32 2048^3 GEMM (rnnkit: NumPy), each in a fresh process."""
    gemm = {}
    for fw in FRAMEWORKS:
        if framework_present(fw):
            log(f"GEMM peak {when}: {fw}")
            gemm[fw] = run_worker(fw, "gemm", args)
    return gemm


def framework_present(framework: str) -> bool:
    return importlib.util.find_spec(framework) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--cells", default=",".join(GATES))
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="time fast calls for at least this many seconds (more reps)")
    parser.add_argument("--busy", type=float, default=0.2,
                        help="retry a timing if other processes took more of the CPUs")
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="time every framework this many times, taking turns; median")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "peers.json"))
    args = parser.parse_args()
    if os.path.isdir(args.out):
        parser.error(f"--out {args.out} is a folder; give the JSON file to write (its .md "
                     f"goes beside it), e.g. {os.path.join(args.out, 'peers.json')}")
    configs, cells = args.configs.split(","), args.cells.split(",")
    frameworks = args.frameworks.split(",")
    for name, given, known in (("configs", configs, CONFIGS), ("cells", cells, GATES),
                               ("frameworks", frameworks, FRAMEWORKS)):
        unknown = [v for v in given if v not in known]
        if unknown:
            parser.error(f"--{name}: unknown {unknown}, expected some of {list(known)}")
    if args.reps < 5:
        parser.error(f"--reps: expected at least 5, got {args.reps}")
    if args.rounds < 1:
        parser.error(f"--rounds: expected at least 1, got {args.rounds}")
    if args.warmup < 1:
        parser.error(f"--warmup: expected at least 1 (the first call compiles), got "
                     f"{args.warmup}")
    present = {fw: framework_present(fw) for fw in frameworks}
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    source = rnnkit_source()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    gemm = measure_gemm(args, log, "before")
    results = {}
    for config in configs:
        for cell in cells:
            per_fw = {}
            rounds = {fw: [] for fw in frameworks if present[fw]}
            for _ in range(args.rounds):          # the frameworks take turns, against drift
                for fw in rounds:
                    rounds[fw].append(time_with_retries(fw, args, config, cell, log))
            for fw in frameworks:
                if not present[fw]:
                    per_fw[fw] = "absent"
                    continue
                log(f"{config} {cell} {fw}: memory")
                memory = median_memory([run_worker(fw, "memory", args, cell, CONFIGS[config])
                                        for _ in range(args.rounds)])
                per_fw[fw] = {"time": median_of_rounds(rounds[fw]), "memory": memory}
            results[(config, cell)] = per_fw
    for fw, after in measure_gemm(args, log, "after").items():    # best of both
        before = gemm.setdefault(fw, after)
        before["gflops_before_after"] = [before.get("gflops"), after.get("gflops")]
        before["gflops"] = max(filter(None, before["gflops_before_after"]), default=None)
        if fw == "rnnkit":          # its worker also timed NumPy's own BLAS
            own = [(r.get("info") or {}).get("numpy_gflops") for r in (before, after)]
            before["numpy_gflops"] = max(filter(None, own), default=None)
            before["blas"] = (before.get("info") or {}).get("rnnkit_blas")
    rates = {"numpy": gemm.get("rnnkit", {}).get("numpy_gflops"),
             "rnnkit": gemm.get("rnnkit", {}).get("gflops"),
             "torch": gemm.get("torch", {}).get("gflops")}
    peak = max((v for v in rates.values() if v), default=None)
    rows = build_rows(results, peak, {fw: g.get("gflops") for fw, g in gemm.items()})
    machine = describe_machine(gemm)
    for result in gemm.values():
        result.pop("info", None)
    report = {
        "command": " ".join(["python benchmarks/peers.py"] + sys.argv[1:]),
        "started_utc": started,
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": machine,
        "rnnkit_source": source,
        "frameworks": {fw: (version(fw) if present[fw] else "absent") for fw in frameworks},
        "settings": {"dtype": "float32", "threads": args.threads, "reps": args.reps, "rounds": args.rounds,
                     "warmup": args.warmup, "min_time_s": args.min_time, "busy": args.busy,
                     "retries": args.retries, "xla_flags": XLA_FLAGS,
                     "thread_env": ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                    "MKL_NUM_THREADS"],
                     "dropped_env": {k: os.environ[k] for k in DROPPED_ENV if k in os.environ},
                     "affinity": f"each worker pins itself to {args.threads} CPUs"},
        "methods": {"train": "forward + loss sum(out * R) + BPTT to all weights and x",
                    "infer": "forward only (torch.no_grad, jitted jax forward, rnnkit forward)",
                    "time": "median of >= reps (and >= min_time s of) wall-clock calls after "
                            "warm-ups, one fresh process per framework, config and cell; "
                            "background = CPU share other processes took meanwhile, retried "
                            "in a new process above busy",
                    "memory": "peak RSS one training step adds over the RSS before it "
                              "(VmHWM reset by clear_refs=5), after one warm-up step, "
                              "fresh process, MALLOC_MMAP_THRESHOLD_=65536",
                    "flops": "analytic 2*M*N*K per GEMM: train 6*N*T*G*H*(D+H), infer "
                             "2*N*T*G*H*(D+H); elementwise work not counted",
                    "peak": "best of 10 2048^3 float32 GEMMs before and after the run, "
                            "NumPy, rnnkit.fast.blas (MKL when installed) and PyTorch, 2 threads; "
                            "the highest is the peak",
                    "peak_then": "peak * (the framework's own best-of-20 2048^3 GEMM just "
                                 "before or after its timings, in the same process) / (its "
                                 "best before and after the run); fraction_of_peak_then is "
                                 "against it"},
        "gemm_peak": {"numpy_gflops": rates["numpy"], "rnnkit_blas_gflops": rates["rnnkit"],
                      "rnnkit_blas": gemm.get("rnnkit", {}).get("blas"),
                      "torch_gflops": rates["torch"],
                      "jax_gflops": gemm.get("jax", {}).get("gflops"), "peak_gflops": peak,
                      "raw": gemm},
        "configs": {c: dict(zip("NTDH", CONFIGS[c])) for c in configs},
        "summary": summarize(rows),
        "rows": rows,
    }
    md = markdown_document(report, frameworks, os.path.basename(args.out))
    print(md)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    md_path = os.path.splitext(args.out)[0] + ".md"
    for path, text in ((args.out, json.dumps(report, indent=1)), (md_path, md)):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    log(f"wrote {args.out} and {md_path}")


if __name__ == "__main__":
    main()
