"""One training step of `rnnkit speech`'s acoustic model, rnnkit against the same model in
PyTorch with torch.nn.functional.ctc_loss.

    nice -n 5 python benchmarks/apps/speech_step.py [--corpus /tmp/rnnkit-speech/val]
        [--rounds 3] [--steps 8] [--threads 1]

The batch is real: the benchmark corpus's utterances (benchmarks/apps/speech.py corpus) as
the app batches them (40 log-mels, 3 frames a step, 32 utterances of similar lengths), the
one of median length among the first 320 utterances' batches. The model is the app's
default: a 2-layer bidirectional LSTM 128 (dropout 0.1 between layers; PyTorch:
pack_padded_sequence), a 29-way softmax (blank + 28 characters), CTC averaged as torch's
"mean", clipping at norm 5, Adam 2e-3. Each framework runs in its own process with
--threads threads (BLAS, OpenMP, numba and torch), taking turns round by round; the median of
each process's median step.
Writes benchmarks/results/apps/speech_step.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
H, LAYERS, C = 128, 2, 29


def make_batch(corpus: str, path: str) -> dict:
    from rnnkit.apps import speech
    from rnnkit.apps.speech_corpus import read_manifest
    from rnnkit.audio import log_mel, normalise, read_wav
    rows = read_manifest(corpus)[:320]
    feats = [normalise(log_mel(read_wav(w), 40)) for w, _, _ in rows]
    data = speech.SpeechDataset(feats, [t for _, t, _ in rows], 32, 3, seed=0)
    batches = sorted(data.batches(0), key=lambda b: int(b.lengths.max()))
    b = batches[len(batches) // 2]
    order = np.argsort(-b.lengths, kind="stable")          # longest first, as packing wants
    np.savez(path, x=b.inputs[order], lengths=b.lengths[order], targets=b.targets[order])
    return {"N": int(b.inputs.shape[0]), "T": int(b.inputs.shape[1]),
            "D": int(b.inputs.shape[2]), "mean_steps": float(b.lengths.mean()),
            "mean_chars": float((b.targets >= 0).sum(1).mean())}


def run_rnnkit(d, steps):
    from rnnkit.apps import speech
    from rnnkit.ctc import ctc_trainer_loss
    from rnnkit.optim import clip_grad_norm, make_optimizer
    model = speech._model(speech.SpeechConfig(), speech.Chars(), seed=0)
    opt = make_optimizer("adam", model.params, lr=2e-3)
    loss_fn, rng, times = ctc_trainer_loss(), np.random.default_rng(0), []
    for _ in range(steps + 2):
        start = time.perf_counter()
        model.zero_grad()
        out, _, cache = model.forward(d["x"], None, d["lengths"], training=True, rng=rng)
        loss, dout = loss_fn(out, d["targets"], d["lengths"])
        model.backward(dout, cache)
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)
        times.append(time.perf_counter() - start)
    return times[2:]


def run_torch(d, steps):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(d["x"].shape[2], H, LAYERS, batch_first=True, bidirectional=True,
                        dropout=0.1)
    head = torch.nn.Linear(2 * H, C)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    x, lengths = torch.tensor(d["x"]), torch.tensor(d["lengths"])
    t = d["targets"]
    tgt_lens = torch.tensor((t >= 0).sum(1))
    targets = torch.tensor(np.where(t >= 0, t, 0))
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        opt.zero_grad()
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
        h, _ = rnn(packed)
        h, _ = torch.nn.utils.rnn.pad_packed_sequence(h, batch_first=True)
        lp = F.log_softmax(head(h), dim=2).transpose(0, 1)         # (T, N, C)
        loss = F.ctc_loss(lp, targets, lengths, tgt_lens, zero_infinity=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        times.append(time.perf_counter() - start)
    return times[2:]


def worker(kind: str, path: str, steps: int, threads: int) -> None:
    if kind == "torch":
        import torch
        torch.set_num_threads(threads)
    d = dict(np.load(path))
    times = (run_torch if kind == "torch" else run_rnnkit)(d, steps)
    print(json.dumps({"median_s": statistics.median(times)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/tmp/rnnkit-speech/val")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.steps, args.threads)
    sys.path.insert(0, ROOT)
    import _common
    path = os.path.join(tempfile.mkdtemp(), "batch.npz")
    shape = make_batch(args.corpus, path)
    n = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n,
               NUMBA_NUM_THREADS=n,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    medians = {"rnnkit": [], "torch": []}
    for _ in range(args.rounds):
        for kind in medians:
            out = subprocess.run([sys.executable, __file__, "--worker", kind, path,
                                  "--steps", str(args.steps), "--threads", n],
                                 capture_output=True, text=True, env=env, check=True).stdout
            medians[kind].append(json.loads(out.strip().splitlines()[-1])["median_s"])
    result = {k: statistics.median(v) for k, v in medians.items()}
    _common.write("speech_step", {
        "batch": shape, "model": f"BiLSTM {LAYERS} x {H}, {C} classes, CTC mean, Adam, clip 5",
        "threads": args.threads, "rounds": args.rounds, "steps_per_round": args.steps,
        "median_step_s": result, "per_round_s": medians,
        "rnnkit_over_torch": result["rnnkit"] / result["torch"]})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
