"""The word language model's training step, rnnkit against the same model in PyTorch.

The model: embeddings of 20,000 words x 256, an LSTM of 256 units, a Dense head to 20,000
logits, untied or tied (the head's weight is the embedding matrix, Press & Wolf 2017).
A step: forward over a 32 x 35 batch from the previous batch's carried state (detached),
softmax cross-entropy over all 1,120 steps, backward, clipping at global norm 5, Adam 1e-3.
The head is one (1120 x 256) x (256 x 20000) product in both frameworks.

Each framework runs in its own process with 2 threads (peers.worker_env), taking turns
round by round; a process times ``--steps`` steps after ``--warmup`` and reports its median.
Memory: in another fresh process per framework and variant, the peak resident memory one
step adds over the resident set before it (peer_workers.step_memory: glibc's mmap threshold
fixed so freed buffers go back to the OS, the kernel's high-water mark reset before the step).
rnnkit's process also times the step's parts (forward, loss, backward, clipping, Adam).

    PYTHONPATH=$PWD nice -n 5 python benchmarks/apps/words_step.py [--rounds 3] [--steps 10]

Writes benchmarks/results/apps/words_step.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
S = {"vocab": 20000, "embed": 256, "hidden": 256, "batch": 32, "steps": 35, "lr": 1e-3,
     "clip": 5.0}
FRAMEWORKS = ("rnnkit", "torch")
VARIANTS = ("untied", "tied")


def data():
    import numpy as np
    rng = np.random.default_rng(0)
    ids = rng.integers(1, S["vocab"], (S["batch"], S["steps"] + 1))
    return ids[:, :-1].copy(), ids[:, 1:].copy()


def rnnkit_step(tied: bool, parts: dict | None = None):
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.models import LanguageModel
    from rnnkit.optim import clip_grad_norm, make_optimizer
    model = LanguageModel(S["vocab"], S["embed"], S["hidden"], tie_weights=tied, seed=0)
    opt = make_optimizer("adam", model.params, lr=S["lr"])
    x, y = data()
    carry = [None]

    def step():
        t = [time.perf_counter()]
        model.zero_grad()
        logits, carry[0], cache = model.forward(x, carry[0], training=True)
        t.append(time.perf_counter())
        loss, dlogits = softmax_cross_entropy(logits, y)
        t.append(time.perf_counter())
        model.backward(dlogits, cache)
        t.append(time.perf_counter())
        clip_grad_norm(model.grads, S["clip"])
        t.append(time.perf_counter())
        opt.step(model.grads)
        t.append(time.perf_counter())
        if parts is not None:
            for name, a, b in zip(("forward", "loss", "backward", "clip", "adam"), t, t[1:]):
                parts.setdefault(name, []).append(1e3 * (b - a))
        return loss
    return step


def torch_step(tied: bool):
    import torch
    from torch import nn
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    emb = nn.Embedding(S["vocab"], S["embed"])
    lstm = nn.LSTM(S["embed"], S["hidden"], batch_first=True)
    head = nn.Linear(S["hidden"], S["vocab"])
    if tied:
        head.weight = emb.weight
    params = list({id(p): p for m in (emb, lstm, head) for p in m.parameters()}.values())
    opt = torch.optim.Adam(params, lr=S["lr"])
    x, y = (torch.from_numpy(a) for a in data())
    carry = [None]

    def step():
        opt.zero_grad(set_to_none=True)
        out, state = lstm(emb(x), carry[0])
        carry[0] = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(head(out).reshape(-1, S["vocab"]), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(params, S["clip"])
        opt.step()
        return loss.item()
    return step


def worker(framework: str, variant: str, task: str, steps: int, warmup: int) -> dict:
    import numpy as np
    tied = variant == "tied"
    if task == "memory":
        from peer_workers import step_memory
        step = rnnkit_step(tied) if framework == "rnnkit" else torch_step(tied)
        for _ in range(warmup):
            step()
        return step_memory(step)
    parts = {} if framework == "rnnkit" else None
    step = rnnkit_step(tied, parts) if framework == "rnnkit" else torch_step(tied)
    losses = [step() for _ in range(warmup)]
    if parts is not None:
        parts.clear()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(1e3 * (time.perf_counter() - t0))
    out = {"median_ms": float(np.median(times)), "min_ms": min(times),
           "first_loss": float(losses[0]), "last_loss": float(losses[-1])}
    if parts:
        out["parts_median_ms"] = {k: float(np.median(v)) for k, v in parts.items()}
    return out


def run_process(framework: str, variant: str, task: str, args) -> dict:
    from peers import worker_env
    env = worker_env(args.threads, memory=task == "memory")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env["PYTHONPATH"]])
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, variant, task,
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"{framework} {variant} {task}: exit {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(BENCH, "results", "apps",
                                                      "words_step.json"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.warmup)))
        return
    import _common
    start = time.perf_counter()
    results = {"settings": S, "threads": args.threads, "rounds": args.rounds,
               "steps_per_process": args.steps}
    for variant in args.variants.split(","):
        rounds = {fw: [] for fw in FRAMEWORKS}
        for _ in range(args.rounds):
            for fw in FRAMEWORKS:
                rounds[fw].append(run_process(fw, variant, "time", args))
        memory = {fw: run_process(fw, variant, "memory", args) for fw in FRAMEWORKS}
        med = {fw: statistics.median(r["median_ms"] for r in rs) for fw, rs in rounds.items()}
        parts = {k: statistics.median(r["parts_median_ms"][k] for r in rounds["rnnkit"])
                 for k in rounds["rnnkit"][0]["parts_median_ms"]}
        results[variant] = {
            "median_ms": med, "time_ratio_rnnkit_over_torch": med["rnnkit"] / med["torch"],
            "step_memory_mb": {fw: m["peak_mb"] for fw, m in memory.items()},
            "memory_ratio_rnnkit_over_torch": memory["rnnkit"]["peak_mb"]
            / memory["torch"]["peak_mb"],
            "rnnkit_parts_median_ms": parts, "rounds": rounds, "memory": memory}
        print(f"{variant}: rnnkit {med['rnnkit']:.1f} ms, PyTorch {med['torch']:.1f} ms "
              f"(ratio {med['rnnkit'] / med['torch']:.2f}); step memory rnnkit "
              f"{memory['rnnkit']['peak_mb']:.0f} MB, PyTorch {memory['torch']['peak_mb']:.0f} MB;"
              f" rnnkit parts " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()), flush=True)
    results["wall_s"] = time.perf_counter() - start
    results["machine"] = dict(_common.machine(), load_average=os.getloadavg())
    results["commit"] = _common.commit()
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
