"""One training step of the demo's whole character model, rnnkit against PyTorch; or, with
``--generate``, one token of its text generation.

peers.py times a recurrent layer alone. A user trains a model: embedding -> RNN/LSTM/GRU ->
dense -> softmax cross-entropy -> gradient clipping -> Adam. This times that step at the
demo's settings (`rnnkit demo`: batches of 32 x 64 characters, 65 symbols, embedding 64, 256
units, clip at norm 5, Adam at 3e-3, the state carried between batches) on random ids, each
framework in its own process, the frameworks taking turns round by round.

    python benchmarks/model_step.py [--cells lstm,gru,rnn] [--rounds 3] [--steps 30]
    python benchmarks/model_step.py --generate [--layers 1]

Prints a table (per framework the median over rounds of each process's median step; the
ratio rnnkit / PyTorch) and writes benchmarks/results/model_step.json.

``--generate`` times ``LanguageModel.generate`` (what the demo prints after training: one
call of the model per token, batch 1, softmax sampling at temperature 1) against the same
loop in PyTorch under ``torch.no_grad()``, per token over ``--steps`` x 20 tokens after a
primer of 3, with ``--layers`` layers; it writes results/generation_l{layers}.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"batch": 32, "steps": 64, "vocab": 65, "embed": 64, "hidden": 256, "lr": 3e-3,
            "clip": 5.0}
FRAMEWORKS = ("rnnkit", "torch")


def rnnkit_step(cell: str, inputs, targets, s: dict):
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.models import LanguageModel
    from rnnkit.optim import clip_grad_norm, make_optimizer
    model = LanguageModel(s["vocab"], s["embed"], s["hidden"], 1, cell, 0.0, seed=0)
    opt = make_optimizer("adam", model.params, lr=s["lr"])
    carry = [None]

    def step():
        model.zero_grad()
        outputs, carry[0], cache = model.forward(inputs, carry[0], None, training=True)
        loss, doutputs = softmax_cross_entropy(outputs, targets, None)
        model.backward(doutputs, cache)
        clip_grad_norm(model.grads, s["clip"])
        opt.step(model.grads)
        return loss
    return step


def torch_step(cell: str, inputs, targets, s: dict):
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    emb, layer = torch.nn.Embedding(s["vocab"], s["embed"]), rnn(s["embed"], s["hidden"],
                                                                  batch_first=True)
    head = torch.nn.Linear(s["hidden"], s["vocab"])
    params = [*emb.parameters(), *layer.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=s["lr"])
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets).reshape(-1)
    carry = [None]

    def step():
        opt.zero_grad(set_to_none=True)
        out, state = layer(emb(x), carry[0])
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, s["vocab"]), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s["clip"])
        opt.step()
        carry[0] = tuple(t.detach() for t in state) if isinstance(state, tuple) \
            else state.detach()
        return loss.item()
    return step


GENERATED = 20          # tokens a timed generation call makes


def rnnkit_generation(cell: str, layers: int, s: dict):
    import numpy as np
    from rnnkit.models import LanguageModel
    model = LanguageModel(s["vocab"], s["embed"], s["hidden"], layers, cell, 0.0, seed=0)
    rng = np.random.default_rng(0)
    return lambda: model.generate([1, 2, 3], GENERATED, rng=rng)


def torch_generation(cell: str, layers: int, s: dict):
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    emb, layer = torch.nn.Embedding(s["vocab"], s["embed"]), rnn(s["embed"], s["hidden"],
                                                                  layers, batch_first=True)
    head = torch.nn.Linear(s["hidden"], s["vocab"])
    rng = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def generate():
        out, state = layer(emb(torch.tensor([[1, 2, 3]])))
        z, tokens = head(out[0, -1]), []
        for _ in range(GENERATED):
            p = torch.softmax(z.double(), 0)
            tokens.append(int(torch.multinomial(p, 1, generator=rng)))
            out, state = layer(emb(torch.tensor([tokens[-1:]])), state)
            z = head(out[0, -1])
        return tokens
    return generate


def worker(framework: str, cell: str, steps: int, warmup: int, layers: int = 0) -> dict:
    """``layers`` > 0: time text generation with that many layers (per token), else the
    training step."""
    import numpy as np
    s = SETTINGS
    if layers:
        step = (rnnkit_generation if framework == "rnnkit" else torch_generation)(
            cell, layers, s)
    else:
        ids = np.random.default_rng(0).integers(0, s["vocab"], (s["batch"], s["steps"] + 1))
        inputs, targets = ids[:, :-1], ids[:, 1:]
        step = (rnnkit_step if framework == "rnnkit" else torch_step)(cell, inputs, targets,
                                                                       s)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    per = GENERATED if layers else 1
    return {"framework": framework, "cell": cell,
            "median_ms": float(np.median(times)) * 1e3 / per, "min_ms": min(times) * 1e3 / per}


def run_process(framework: str, cell: str, args) -> dict:
    from peers import worker_env         # the thread settings peers.py gives its workers
    env = worker_env(args.threads, memory=False)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--cells", cell,
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--layers", str(args.layers if args.generate else 0)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"framework": framework, "cell": cell, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--generate", action="store_true",
                        help="time text generation, per token, instead of the training step")
    parser.add_argument("--layers", type=int, default=1,
                        help="with --generate (a worker's 0: the training step)")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.generate and args.layers < 1:
        parser.error(f"--layers: expected a number of layers >= 1, got {args.layers}")
    args.out = args.out or os.path.join(HERE, "results", f"generation_l{args.layers}.json"
                                        if args.generate else "model_step.json")
    cells = args.cells.split(",")
    unknown = sorted(set(cells) - {"lstm", "gru", "rnn"})
    if unknown:
        parser.error(f"--cells: expected names from lstm, gru, rnn, got {', '.join(unknown)}")
    if args.worker:
        print(json.dumps(worker(args.worker, cells[0], args.steps, args.warmup, args.layers)))
        return
    import numpy as np
    from peer_report import rnnkit_source, version
    runs = []
    for r in range(args.rounds):
        for cell in cells:
            order = FRAMEWORKS if r % 2 == 0 else FRAMEWORKS[::-1]
            runs += [dict(run_process(fw, cell, args), round=r) for fw in order]
    rows = []
    what = f"per token, {args.layers} layer(s)" if args.generate else "a training step"
    print(f"{'cell':6} {'rnnkit ms':>10} {'torch ms':>10} {'ratio':>6}   ({what}; median over "
          f"{args.rounds} rounds of each process's median of {args.steps} steps)")
    for cell in cells:
        med = {}
        for fw in FRAMEWORKS:
            ok = [x["median_ms"] for x in runs if x["cell"] == cell and x["framework"] == fw
                  and "error" not in x]
            med[fw] = float(np.median(ok)) if ok else float("nan")
        ratio = med["rnnkit"] / med["torch"]
        rows.append({"cell": cell, **{f"{fw}_ms": med[fw] for fw in FRAMEWORKS},
                     "ratio": ratio})
        print(f"{cell:6} {med['rnnkit']:10.2f} {med['torch']:10.2f} {ratio:6.2f}")
    for x in runs:
        if "error" in x:
            print(f"error: {x['framework']} {x['cell']}: {x['error']}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rnnkit": rnnkit_source(), "torch": version("torch"),
                   "date": datetime.date.today().isoformat(), "settings": SETTINGS,
                   "task": f"generate, {args.layers} layer(s), ms per token of "
                           f"{GENERATED}-token calls" if args.generate else "training step",
                   "threads": args.threads, "rounds": args.rounds, "steps": args.steps,
                   "rows": rows, "runs": runs}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
