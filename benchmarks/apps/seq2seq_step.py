"""A translation-shaped Seq2Seq training step, rnnkit against the same model in PyTorch; and
rnnkit's greedy against beam-5 decoding, in sentences per second.

With ``--run RUN`` (a run folder of ``rnnkit translate train``) the model has that run's
exact shape instead (its two vocabularies, embedding, encoder and decoder sizes, batch size,
learning rate), and random pairs of 11-30 steps (the mean length of the app's pairs).

The model: vocabularies of 8000 words on both sides, embeddings 256, a bidirectional LSTM
encoder (256 a direction), a bridge (tanh Dense) from its final states to an LSTM decoder of
512 units, Luong "general" attention, h~ = tanh(W_c [c; s]), a Dense head to 8000 words.
A step: forward, softmax cross-entropy masked by the target lengths, backward, clipping at
norm 5, Adam. Batches of 64 random sentence pairs, source and target of 25 steps with
lengths drawn from 10-25 (the same ids and lengths on both sides). PyTorch packs the
encoder's input (for the final states at each row's own length) and runs the decoder over
the padded target, as its tutorials do; both apply the head to the valid target steps only
(rnnkit's Seq2Seq does so itself; the PyTorch model indexes them before its Linear).

Each framework runs in its own process with 2 threads (peers.worker_env), taking turns
round by round; a process times ``--steps`` steps after ``--warmup``. Peak resident memory
is the process's ru_maxrss (imports included) and its growth over the steps.

    PYTHONPATH=$PWD nice -n 5 python benchmarks/apps/seq2seq_step.py [--rounds 2] [--steps 8]

Writes benchmarks/results/apps/seq2seq_step.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
S = {"src_vocab": 8000, "tgt_vocab": 8000, "embed": 256, "enc_hidden": 256, "dec_hidden": 512,
     "batch": 64, "steps": 25, "min_len": 10, "lr": 1e-3, "clip": 5.0, "attention": "general",
     "beam": 5, "alpha": 0.6, "decode_batch": 64, "max_len": 30}
FRAMEWORKS = ("rnnkit", "torch")


def data():
    import numpy as np
    rng = np.random.default_rng(0)
    B, T = S["batch"], S["steps"]
    src = rng.integers(3, S["src_vocab"], (B, T))
    tgt = rng.integers(3, S["tgt_vocab"], (B, T + 1))
    src_len = rng.integers(S["min_len"], T + 1, B)
    tgt_len = rng.integers(S["min_len"], T + 1, B)
    src_len[0] = tgt_len[0] = T
    return src, src_len, tgt[:, :-1], tgt[:, 1:], tgt_len


def rnnkit_model():
    from rnnkit.models import Seq2Seq
    return Seq2Seq(src_vocab=S["src_vocab"], tgt_vocab=S["tgt_vocab"], embed_dim=S["embed"],
                   hidden_size=S["enc_hidden"], bidirectional=True,
                   dec_hidden_size=S["dec_hidden"], cell="lstm", attention=S["attention"],
                   seed=0)


def rnnkit_step():
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.optim import clip_grad_norm, make_optimizer
    model = rnnkit_model()
    opt = make_optimizer("adam", model.params, lr=S["lr"])
    src, src_len, tin, tout, tgt_len = data()

    def step():
        model.zero_grad()
        logits, _, cache = model.forward((src, tin), None, (src_len, tgt_len), training=True)
        loss, dlogits = softmax_cross_entropy(logits, tout, tgt_len)
        model.backward(dlogits, cache)
        clip_grad_norm(model.grads, S["clip"])
        opt.step(model.grads)
        return loss
    return step


def torch_step():
    import torch
    from torch import nn
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    Vs, Vt, E, He, Hd = S["src_vocab"], S["tgt_vocab"], S["embed"], S["enc_hidden"], \
        S["dec_hidden"]

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed, self.tgt_embed = nn.Embedding(Vs, E), nn.Embedding(Vt, E)
            self.enc = nn.LSTM(E, He, bidirectional=True, batch_first=True)
            self.bridge_h, self.bridge_c = nn.Linear(2 * He, Hd), nn.Linear(2 * He, Hd)
            self.dec = nn.LSTM(E, Hd, batch_first=True)
            self.W_a = nn.Linear(2 * He, Hd, bias=False)          # score = q^T W_a k
            self.combine = nn.Linear(2 * He + Hd, Hd)
            self.head = nn.Linear(Hd, Vt)

        def forward(self, src, src_len, tin, valid):
            packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), src_len,
                                                       batch_first=True, enforce_sorted=False)
            out, (h, c) = self.enc(packed)
            keys, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                       total_length=src.shape[1])
            h0 = torch.tanh(self.bridge_h(torch.cat([h[-2], h[-1]], 1)))[None]
            c0 = torch.tanh(self.bridge_c(torch.cat([c[-2], c[-1]], 1)))[None]
            s, _ = self.dec(self.tgt_embed(tin), (h0, c0))
            mask = torch.arange(src.shape[1])[None, :] < src_len[:, None]
            scores = s @ self.W_a(keys).transpose(1, 2)
            a = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=2)
            ht = torch.tanh(self.combine(torch.cat([a @ keys, s], 2)))
            return self.head(ht[valid])             # the valid target steps only, as rnnkit

    model = Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=S["lr"])
    src, src_len, tin, tout, tgt_len = (torch.from_numpy(a) for a in data())
    valid = torch.arange(tin.shape[1])[None, :] < tgt_len[:, None]

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(src, src_len, tin, valid)
        loss = nn.functional.cross_entropy(logits, tout[valid])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), S["clip"])
        opt.step()
        return loss.item()
    return step


def decode_rates(reps: int) -> dict:
    """rnnkit greedy and beam-5 decoding of a batch of source sentences: sentences / s."""
    import numpy as np
    from rnnkit.models.decoding import beam_search, greedy
    model = rnnkit_model()
    src, src_len, *_ = data()
    n = S["decode_batch"]
    src, src_len = src[:n], src_len[:n]
    runs = {"greedy": lambda: greedy(model, src, src_len, bos=0, eos=1, max_len=S["max_len"]),
            "beam5": lambda: beam_search(model, src, src_len, bos=0, eos=1,
                                         max_len=S["max_len"], beam=S["beam"],
                                         alpha=S["alpha"])}
    out = {}
    for name, fn in runs.items():
        fn()
        times, lengths = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            d = fn()
            times.append(time.perf_counter() - t0)
            lengths.append(float(np.mean([len(t) for t in d.tokens])))
        out[name] = {"sentences_per_s": n / float(np.median(times)),
                     "median_s": float(np.median(times)), "mean_tokens": lengths[-1]}
    return out


def worker(framework: str, steps: int, warmup: int, decode: int) -> dict:
    import numpy as np
    step = rnnkit_step() if framework == "rnnkit" else torch_step()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    losses = [step() for _ in range(warmup)]
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"framework": framework, "median_ms": float(np.median(times)) * 1e3,
           "min_ms": min(times) * 1e3, "peak_rss_mb": rss, "rss_growth_mb": rss - rss0,
           "first_loss": losses[0], "last_loss": losses[-1]}
    if decode and framework == "rnnkit":
        out["decode"] = decode_rates(decode)
    return out


def run_process(framework: str, args, decode: int) -> dict:
    from peers import worker_env
    env = worker_env(args.threads, memory=False)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env["PYTHONPATH"]])
    cmd = [sys.executable, os.path.abspath(__file__), "--settings", json.dumps(S),
           "--worker", framework, "--steps",
           str(args.steps), "--warmup", str(args.warmup), "--decode", str(decode)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"framework": framework, "error": f"exit {proc.returncode}: {tail}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]),
                wall_s=time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode", type=int, default=3, help="timed decoding calls (round 0)")
    parser.add_argument("--run", help="a run folder of `rnnkit translate train`: time its "
                        "model's exact shape (vocabularies, sizes, batch) instead")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="default benchmarks/results/apps/seq2seq_step.json "
                        "(with --run: seq2seq_step_translate.json)")
    args = parser.parse_args()
    if args.settings:
        S.update(json.loads(args.settings))
    if args.run:
        S.update(app_shape(args.run))
    args.out = args.out or os.path.join(BENCH, "results", "apps", "seq2seq_step" + (
        "_translate" if args.run else "") + ".json")
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.decode)))
        return
    import numpy as np
    from peer_report import rnnkit_source, version
    start, runs = time.perf_counter(), []
    for r in range(args.rounds):
        order = FRAMEWORKS if r % 2 == 0 else FRAMEWORKS[::-1]
        runs += [dict(run_process(fw, args, args.decode if r == 0 else 0), round=r)
                 for fw in order]
    med = {}
    for fw in FRAMEWORKS:
        ok = [x for x in runs if x["framework"] == fw and "error" not in x]
        med[fw] = {k: float(np.median([x[k] for x in ok])) if ok else float("nan")
                   for k in ("median_ms", "peak_rss_mb", "rss_growth_mb")}
    ratio = med["rnnkit"]["median_ms"] / med["torch"]["median_ms"]
    best = {fw: min((x["min_ms"] for x in runs if x["framework"] == fw and "error" not in x),
                    default=float("nan")) for fw in FRAMEWORKS}
    print(f"training step: rnnkit {med['rnnkit']['median_ms']:.1f} ms, torch "
          f"{med['torch']['median_ms']:.1f} ms, ratio {ratio:.2f} (best steps {best['rnnkit']:.1f} "
          f"and {best['torch']:.1f} ms, {best['rnnkit'] / best['torch']:.2f}); peak RSS rnnkit "
          f"{med['rnnkit']['peak_rss_mb']:.0f} MB, torch {med['torch']['peak_rss_mb']:.0f} MB")
    decode = next((x["decode"] for x in runs if "decode" in x), None)
    if decode:
        print("rnnkit decoding, sentences/s: " + ", ".join(
            f"{k} {v['sentences_per_s']:.1f}" for k, v in decode.items()))
    for x in runs:
        if "error" in x:
            print(f"error: {x['framework']}: {x['error']}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rnnkit": rnnkit_source(), "torch": version("torch"),
                   "date": datetime.date.today().isoformat(),
                   "machine": {"processor": _cpu(), "python": platform.python_version(),
                               "load_average_at_end": os.getloadavg()},
                   "command": "python benchmarks/apps/seq2seq_step.py " + " ".join(sys.argv[1:]),
                   "settings": S, "threads": args.threads, "rounds": args.rounds,
                   "steps": args.steps, "median": med, "ratio_rnnkit_over_torch": ratio,
                   "best_step_ms": best, "best_ratio": best["rnnkit"] / best["torch"],
                   "decode": decode, "wall_s": time.perf_counter() - start, "runs": runs},
                  f, indent=1)
    print(f"wrote {args.out}")


def app_shape(run: str) -> dict:
    """The settings of a translate run's model: its vocabularies, sizes and batch."""
    with open(os.path.join(run, "config.json")) as f:
        app = json.load(f)["app"]
    sizes = {}
    for side in ("source", "target"):
        with open(os.path.join(run, f"vocab_{side}.json")) as f:
            sizes[side] = len(json.load(f)["tokens"])
    if (app["cell"], app["attention"], app["bidirectional"], app["num_layers"],
            app["input_feeding"]) != ("lstm", "general", True, 1, False):
        sys.exit(f"{run}: the PyTorch model here is a one-layer BiLSTM encoder with Luong "
                 "general attention and no input feeding; this run is another model")
    return {"src_vocab": sizes["source"], "tgt_vocab": sizes["target"],
            "embed": app["embed_dim"], "enc_hidden": app["hidden_size"],
            "dec_hidden": app["dec_hidden_size"], "batch": app["batch_size"],
            "lr": app["lr"], "run": run,
            # the app's pairs have 20.5 / 21.3 tokens on average (source / target): lengths
            # uniform in 11-30 have that mean
            "steps": 30, "min_len": 11}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
