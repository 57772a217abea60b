"""Data-parallel speed on this machine: 2 ranks against 1, and the all-reduce's share.

    PYTHONPATH=$PWD nice -n 5 python benchmarks/distributed.py [--steps 20] [--hidden 512]

trains the same character LSTM (bundled Shakespeare, batch 32 x 64 steps, SGD) for
``--steps`` timed batches (after 3 untimed ones) on 1 rank (all cores' threads) and on
2 ranks (threads pinned to cores / 2 each) with torch.distributed (gloo, a file store) and,
where mpirun and mpi4py exist, MPI; then times one all-reduce of a 5.1 M float32 buffer
(the size the issue measured). The machine's load (os.getloadavg) is recorded before and
after: on a shared machine other processes take cores from the ranks, and the speed-up
says as much about them as about the ranks. Writes benchmarks/results/distributed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "apps"))
from _common import commit, machine  # noqa: E402

WARMUP = 3
BIG = 5_100_000         # floats in the all-reduce measurement


class Timed:
    """A communicator that times its all-reduces of more than 1000 values (the gradients)."""

    def __init__(self, comm):
        self.comm, self.seconds = comm, []
        for name in ("backend", "rank", "world_size", "local_rank", "local_world_size",
                     "broadcast", "barrier"):
            setattr(self, name, getattr(comm, name))

    def all_reduce(self, buffer):
        start = time.perf_counter()
        self.comm.all_reduce(buffer)
        if buffer.size > 1000:
            self.seconds.append(time.perf_counter() - start)


def worker(args) -> None:
    from rnnkit.data import CharVocab, TextStream, bundled_text
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.models import LanguageModel
    from rnnkit.optim import make_optimizer
    from rnnkit.train import Callback, Trainer, TrainConfig, distributed
    if args.backend == "torch":
        comm = distributed.TorchCommunicator(args.init, args.rank, args.world_size)
    else:
        comm = distributed.connect(args.backend)
    distributed.use(comm)           # threads pinned: cores / ranks on this machine
    timed = Timed(comm)
    text = bundled_text()
    vocab = CharVocab(text)
    data = TextStream(vocab.encode(text), 32, 64)
    model = LanguageModel(len(vocab), 64, args.hidden, cell="lstm", seed=0)
    opt = make_optimizer("sgd", model.params, lr=0.5)
    stamps = []

    class Clock(Callback):
        def on_step_end(self, trainer, logs):
            stamps.append(time.perf_counter())
            if trainer.step == WARMUP:
                timed.seconds.clear()

    trainer = Trainer(model, softmax_cross_entropy, opt, data, comm=timed, callbacks=[Clock()],
                      config=TrainConfig(max_steps=WARMUP + args.steps, progress=False,
                                         checkpoint_minutes=0),
                      log=lambda *a: None)
    trainer.fit()
    step = (stamps[-1] - stamps[WARMUP - 1]) / args.steps
    buffer = np.ones(BIG, np.float32)
    comm.all_reduce(buffer)                     # (the first call sets up the connections)
    big = []
    for _ in range(5):
        start = time.perf_counter()
        comm.all_reduce(buffer)
        big.append(time.perf_counter() - start)
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps({
            "ranks": comm.world_size, "backend": comm.backend,
            "threads_per_rank": int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())),
            "gradient_floats": int(sum(g.size for g in model.grads.values())),
            "seconds_per_step": step, "tokens_per_second": 32 * 64 / step,
            "all_reduce_ms_per_step": 1e3 * float(np.median(timed.seconds)) if timed.seconds
            else 0.0,
            "all_reduce_5M_float32_ms": 1e3 * float(np.median(big)) if comm.world_size > 1
            else 0.0,
            "gradients_in_place": bool(trainer.parallel.grads and
                                       trainer.parallel.grads.shared)}))
    if hasattr(comm, "close"):
        comm.close()


def launch(args, backend: str, ranks: int, tmp: Path) -> dict:
    out = tmp / f"{backend}-{ranks}.json"
    me = [sys.executable, __file__, "--worker", "--steps", str(args.steps),
          "--hidden", str(args.hidden), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // ranks)))
    if backend == "mpi":
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        procs = [subprocess.Popen(["mpirun", "-n", str(ranks), "--oversubscribe", "-x",
                                   "OMP_NUM_THREADS", "-x", "PYTHONPATH", *me, "--backend",
                                   "mpi"], env=env)]
    elif ranks == 1:
        procs = [subprocess.Popen([*me, "--backend", "local"], env=env)]
    else:
        procs = [subprocess.Popen([*me, "--backend", "torch", "--init",
                                   f"file://{tmp / f'store-{ranks}'}", "--rank", str(r),
                                   "--world-size", str(ranks)], env=env)
                 for r in range(ranks)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{backend} x{ranks} failed ({p.returncode})")
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="local")
    p.add_argument("--init")
    p.add_argument("--rank", type=int, default=-1)
    p.add_argument("--world-size", type=int, default=-1)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    load_before, start = os.getloadavg(), time.time()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(launch(args, "local", 1, Path(tmp)))
        runs.append(launch(args, "torch", 2, Path(tmp)))
        try:
            import mpi4py  # noqa: F401
            mpi = shutil.which("mpirun") is not None
        except ImportError:
            mpi = False
        if mpi:
            runs.append(launch(args, "mpi", 2, Path(tmp)))
    one = runs[0]["seconds_per_step"]
    for r in runs:
        r["speedup_over_1_rank"] = one / r["seconds_per_step"]
        print(f"{r['backend']:>5} x{r['ranks']}: {1e3 * r['seconds_per_step']:.0f} ms/step, "
              f"{r['tokens_per_second']:.0f} tokens/s, speed-up {r['speedup_over_1_rank']:.2f}, "
              f"gradient all-reduce {r['all_reduce_ms_per_step']:.1f} ms/step "
              f"({r['gradient_floats']} floats), 5.1 M floats: "
              f"{r['all_reduce_5M_float32_ms']:.1f} ms")
    result = {"runs": runs, "steps": args.steps, "warmup_steps": WARMUP,
              "model": f"char LSTM 64-{args.hidden}, batch 32 x 64, SGD",
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "wall_seconds": time.time() - start, "machine": machine(), "commit": commit(),
              "command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = ROOT / "benchmarks" / "results" / "distributed.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average before {load_before}, after {result['load_average_after']}; "
          f"wrote {path}")


if __name__ == "__main__":
    main()
