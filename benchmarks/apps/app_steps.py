"""One training step of two applications' models, rnnkit against the same model in PyTorch.

    python benchmarks/apps/app_steps.py [--apps mnist,sentiment] [--rounds 3] [--steps 20]

- mnist: the `rnnkit mnist` default, LSTM 128 over 28 rows of 28 pixels, the final state
  into a 10-way softmax, batch 128, cross-entropy, clipping at norm 5, Adam 2e-3.
- sentiment: the `rnnkit sentiment` default, 64-d embeddings of 10,007 words with dropout
  0.5, a bidirectional GRU 64 over right-padded texts with lengths 5-50 (PyTorch:
  pack_padded_sequence), mean and max pooling over the valid steps, dropout 0.5, a 2-way
  softmax, batch 32, clipping at norm 5, AdamW 2e-3 with weight decay 0.05.
Random data of those shapes; each framework in its own process with 2 threads, taking turns
round by round; the median of each process's median step, and the ratio rnnkit / PyTorch.
Writes benchmarks/results/apps/app_steps.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHAPES = {"mnist": dict(N=128, T=28, D=28, H=128, C=10),
          "sentiment": dict(N=32, T=50, V=10007, E=64, H=64, C=2)}


def data(app: str):
    s, rng = SHAPES[app], np.random.default_rng(0)
    if app == "mnist":
        return rng.random((s["N"], s["T"], s["D"]), np.float32), None, \
            rng.integers(0, s["C"], s["N"])
    lengths = np.sort(rng.integers(5, s["T"] + 1, s["N"]))[::-1].copy()
    ids = rng.integers(1, s["V"], (s["N"], s["T"]))
    ids[np.arange(s["T"])[None, :] >= lengths[:, None]] = 0
    return ids, lengths, rng.integers(0, s["C"], s["N"])


def rnnkit_step(app: str):
    from rnnkit.apps.classifier import SequenceClassifier
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.optim import clip_grad_norm, make_optimizer
    s, (x, lengths, y) = SHAPES[app], data(app)
    if app == "mnist":
        model = SequenceClassifier(input_size=s["D"], hidden_size=s["H"], cell="lstm",
                                   bidirectional=False, pooling="last", num_classes=s["C"],
                                   seed=0)
        opt = make_optimizer("adam", model.params, lr=2e-3)
    else:
        model = SequenceClassifier(vocab_size=s["V"], embed_dim=s["E"], hidden_size=s["H"],
                                   cell="gru", bidirectional=True, pooling="meanmax",
                                   embed_dropout=0.5, dropout=0.5, num_classes=s["C"], seed=0)
        opt = make_optimizer("adamw", model.params, lr=2e-3, weight_decay=0.05)
    rng = np.random.default_rng(1)

    def step():
        model.zero_grad()
        logits, _, cache = model.forward(x, None, lengths, training=True, rng=rng)
        loss, dlogits = softmax_cross_entropy(logits, y)
        model.backward(dlogits, cache)
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)
        return loss
    return step


def torch_step(app: str):
    import torch
    torch.set_num_threads(2)
    s, (x, lengths, y) = SHAPES[app], data(app)
    nn, F = torch.nn, torch.nn.functional
    target = torch.from_numpy(y)
    if app == "mnist":
        rnn, head = nn.LSTM(s["D"], s["H"], batch_first=True), nn.Linear(s["H"], s["C"])
        params = [*rnn.parameters(), *head.parameters()]
        opt, inputs = torch.optim.Adam(params, lr=2e-3), torch.from_numpy(x)

        def logits():
            return head(rnn(inputs)[1][0][-1])
    else:
        emb, rnn = nn.Embedding(s["V"], s["E"]), nn.GRU(s["E"], s["H"], batch_first=True,
                                                        bidirectional=True)
        head = nn.Linear(4 * s["H"], s["C"])
        params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.05)
        ids, lens = torch.from_numpy(x), torch.from_numpy(lengths)
        valid = (torch.arange(s["T"])[None, :] < lens[:, None])[:, :, None]

        def logits():
            e = F.dropout(emb(ids), 0.5, training=True)
            packed = nn.utils.rnn.pack_padded_sequence(e, lens, batch_first=True)
            out = nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], batch_first=True,
                                                   total_length=s["T"])[0]
            mean = out.sum(1) / lens[:, None]
            top = out.masked_fill(~valid, float("-inf")).amax(1)
            return head(F.dropout(torch.cat([mean, top], 1), 0.5, training=True))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits(), target)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        return loss.item()
    return step


def worker(framework: str, app: str, steps: int) -> None:
    step = (rnnkit_step if framework == "rnnkit" else torch_step)(app)
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - t0))
    print(json.dumps({"median_ms": statistics.median(times), "min_ms": min(times)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", default="mnist,sentiment")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker, args.steps)
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               NUMBA_NUM_THREADS="2", PYTHONPATH=ROOT)
    results = {}
    for app in args.apps.split(","):
        rounds = {"rnnkit": [], "torch": []}
        for _ in range(args.rounds):
            for fw in rounds:
                out = subprocess.run([sys.executable, __file__, "--worker", fw, app, "--steps",
                                      str(args.steps)], env=env, capture_output=True,
                                     text=True, check=True).stdout
                rounds[fw].append(json.loads(out.strip().splitlines()[-1]))
        med = {fw: statistics.median(r["median_ms"] for r in rs) for fw, rs in rounds.items()}
        results[app] = {"shape": SHAPES[app], "rounds": rounds, "median_ms": med,
                        "ratio_rnnkit_over_torch": med["rnnkit"] / med["torch"]}
        print(f"{app}: rnnkit {med['rnnkit']:.2f} ms, PyTorch {med['torch']:.2f} ms, "
              f"ratio {results[app]['ratio_rnnkit_over_torch']:.2f}", flush=True)
    import platform
    results["machine"] = {"processor": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    with open(os.path.join(ROOT, "benchmarks", "results", "apps", "app_steps.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
