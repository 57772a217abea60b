"""One training step of the applications' models, rnnkit against the same model in PyTorch.

    python benchmarks/apps/app_steps.py [--apps mnist,sentiment,forecast,ner] [--rounds 3]
        [--steps 20]

- mnist: the `rnnkit mnist` default, LSTM 128 over 28 rows of 28 pixels, the final state
  into a 10-way softmax, batch 128, cross-entropy, clipping at norm 5, Adam 2e-3.
- sentiment: the `rnnkit sentiment` default on a real batch of its training split
  (``sentiment_data``: 32 reviews of similar lengths, as the app's bucketing makes them),
  64-d embeddings of its words with dropout 0.5, a bidirectional GRU 64 with lengths
  (PyTorch: pack_padded_sequence), mean and max pooling over the valid steps, dropout 0.5, a 2-way
  softmax, batch 32, clipping at norm 5, AdamW 2e-3 with weight decay 0.05.
- forecast: the `rnnkit forecast` default, LSTM 32 over 12 points of one series, the final
  state into one value, batch 16, mean squared error, clipping at norm 5, Adam 3e-3.
- ner: the `rnnkit ner` default (Lample et al. 2016) on a real batch of CoNLL-2003's training
  split (``ner_data``; read from ../shared/data, never copied): 32 sentences of similar
  lengths, 100-d embeddings of its words, 8-d casing embeddings, a character BiLSTM 25
  (25-d character embeddings) over the batch's distinct words, dropout 0.5, a BiLSTM 100, a
  linear-chain CRF's negative log-likelihood over its 9 tags (PyTorch: the forward algorithm
  written with logsumexp, autograd's backward; pack_padded_sequence for both BiLSTMs),
  clipping at norm 5, Adam 2e-3.
- sentiment_padded (not run by default): the sentiment model on one batch of random lengths
  5-50 and 10,007 words, the padding that bucketing avoids.
The other apps: random data of those shapes; each framework in its own process with 2 threads, taking turns
round by round; the median of each process's median step, and the ratio rnnkit / PyTorch.
Then (unless --no-memory) each step's peak memory, as benchmarks/peers.py measures it: the
resident memory one step adds, in --rounds fresh processes each, the median.
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
          "sentiment": dict(N=32, E=64, H=64, C=2),              # and sentiment_data's
          # the same model on random lengths 5-50 in one batch: the padding bucketing avoids
          "sentiment_padded": dict(N=32, T=50, V=10007, E=64, H=64, C=2),
          "forecast": dict(N=16, T=12, D=1, H=32, C=1),
          "ner": dict(N=32, E=100, CASE=8, CE=25, CH=25, H=100)}     # and ner_data's


CONLL = os.path.join(ROOT, "..", "shared", "data", "ner", "conll2003", "train.txt")
REVIEWS = os.path.join(ROOT, "..", "shared", "data", "sentiment", "rotten_tomatoes.csv")


def sentiment_data():
    """-> (ids, lengths, labels) of one real batch, as `rnnkit sentiment` trains on it: its
    default split and vocabulary of Rotten Tomatoes and its first epoch's batches of similar
    lengths (SequenceDataset buckets them), the one of median length."""
    from rnnkit.apps import sentiment
    from rnnkit.data.batching import SequenceDataset
    from rnnkit.data.vocab import WordVocab
    cfg, s = sentiment.SentimentConfig(), SHAPES["sentiment"]
    texts, labels = sentiment.read_rows(REVIEWS, cfg.text_column, cfg.label_column)
    split = sentiment.stratified_split(labels, cfg.val_fraction, cfg.test_fraction,
                                       cfg.split_seed)
    train, classes = split["train"], sorted(set(labels), key=int)
    targets = np.array([classes.index(v) for v in labels], np.int64)
    vocab = WordVocab.build([texts[i] for i in train], min_freq=cfg.min_freq,
                            max_size=cfg.max_vocab)
    data = SequenceDataset(sentiment._encode(vocab, [texts[i] for i in train]),
                           targets[train], s["N"], seed=0)
    batches = sorted(data.batches(0), key=lambda b: int(b.lengths.max()))
    batch = batches[len(batches) // 2]
    s.update(V=len(vocab), T=int(batch.lengths.max()))
    order = np.argsort(-batch.lengths, kind="stable")   # longest first, as the scans want
    return batch.inputs[order], batch.lengths[order], np.asarray(batch.targets)[order]


def ner_data():
    """-> (words, cases, chars, char_lengths, char_index, lengths, tags) of one real batch, as
    `rnnkit ner` trains on it: the CoNLL-2003 training split's vocabularies and its first
    epoch's batches of similar lengths (rnnkit.data.conll.TaggingDataset), the one of median
    length (after setting SHAPES["ner"]'s V, CHARS and K from the data)."""
    from rnnkit.data.conll import (Encoder, TagSet, TaggingDataset, build_char_vocab,
                                   build_word_vocab, read_conll)
    s = SHAPES["ner"]
    sentences = read_conll(CONLL)
    words, _ = build_word_vocab(sentences)
    chars, tags = build_char_vocab(sentences), TagSet.from_sentences(sentences)
    s.update(V=len(words), CHARS=len(chars), K=len(tags))
    data = TaggingDataset(sentences, Encoder(words, chars), tags, s["N"], seed=0)
    batches = sorted(data.batches(0), key=lambda b: int(b.lengths.max()))
    batch = batches[len(batches) // 2]
    x = batch.inputs
    s.update(T=int(batch.lengths.max()), U=len(x.chars), L=x.chars.shape[1])
    return (x.words, x.cases, x.chars, x.char_lengths, x.char_index, batch.lengths,
            batch.targets)


def data(app: str):
    s, rng = SHAPES[app], np.random.default_rng(0)
    if app == "forecast":
        return rng.standard_normal((s["N"], s["T"], 1)).astype(np.float32), None, \
            rng.standard_normal((s["N"], 1)).astype(np.float32)
    if app == "mnist":
        return rng.random((s["N"], s["T"], s["D"]), np.float32), None, \
            rng.integers(0, s["C"], s["N"])
    if app == "sentiment":
        return sentiment_data()
    lengths = np.sort(rng.integers(5, s["T"] + 1, s["N"]))[::-1].copy()
    ids = rng.integers(1, s["V"], (s["N"], s["T"]))
    ids[np.arange(s["T"])[None, :] >= lengths[:, None]] = 0
    return ids, lengths, rng.integers(0, s["C"], s["N"])


def rnnkit_ner_step():
    from rnnkit.data.conll import TaggerInputs
    from rnnkit.models.tagger import Tagger
    from rnnkit.optim import clip_grad_norm, make_optimizer
    s = SHAPES["ner"]
    words, cases, chars, char_lengths, char_index, lengths, tags = ner_data()
    inputs = TaggerInputs(words, cases, chars, char_lengths, char_index)
    model = Tagger(num_words=s["V"], num_chars=s["CHARS"], num_tags=s["K"], word_dim=s["E"],
                   char_dim=s["CE"], char_hidden=s["CH"], case_dim=s["CASE"],
                   hidden_size=s["H"], dropout=0.5, output="crf", seed=0)
    opt = make_optimizer("adam", model.params, lr=2e-3)
    rng = np.random.default_rng(1)

    def step():
        model.zero_grad()
        emissions, _, cache = model.forward(inputs, None, lengths, training=True, rng=rng)
        loss, demissions = model.loss(emissions, tags, lengths)
        model.backward(demissions, cache)
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)
        return loss
    return step


def rnnkit_step(app: str):
    if app == "ner":
        return rnnkit_ner_step()
    from rnnkit.apps.classifier import SequenceClassifier
    from rnnkit.losses import softmax_cross_entropy
    from rnnkit.optim import clip_grad_norm, make_optimizer
    s, (x, lengths, y) = SHAPES[app], data(app)
    if app == "forecast":
        from rnnkit.apps.gaussian import mse_loss
        from rnnkit.models import SequenceModel
        model = SequenceModel(input_size=1, hidden_size=s["H"], cell="lstm", output_size=1,
                              readout="last", seed=0)
        opt = make_optimizer("adam", model.params, lr=3e-3)

        def step():
            model.zero_grad()
            out, _, cache = model.forward(x, None, None, training=True)
            loss, dout = mse_loss(out, y)
            model.backward(dout, cache)
            clip_grad_norm(model.grads, 5.0)
            opt.step(model.grads)
            return loss
        return step
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


def torch_crf_nll(E, tags, lens, A, a_start, a_end):
    """Sum over the batch of a linear-chain CRF's negative log-likelihood (forward algorithm),
    rows past their length carried unchanged, as rnnkit.layers.crf."""
    import torch
    N, T, K = E.shape
    valid = torch.arange(T)[None, :] < lens[:, None]
    alpha = a_start + E[:, 0]
    for t in range(1, T):
        step = torch.logsumexp(alpha[:, :, None] + A, dim=1) + E[:, t]
        alpha = torch.where(valid[:, t, None], step, alpha)
    log_z = torch.logsumexp(alpha + a_end, dim=1)
    rows = torch.arange(N)
    gold = a_start[tags[:, 0]] + a_end[tags[rows, lens - 1]]
    gold = gold + torch.where(valid, E.gather(2, tags[:, :, None])[:, :, 0], 0).sum(1)
    gold = gold + torch.where(valid[:, 1:], A[tags[:, :-1], tags[:, 1:]], 0).sum(1)
    return (log_z - gold).sum()


def torch_ner_step():
    import torch
    nn, F = torch.nn, torch.nn.functional
    s = SHAPES["ner"]
    words, cases, chars, char_lengths, char_index, lengths, tags = (
        torch.from_numpy(a) for a in ner_data())
    word_embed = nn.Embedding(s["V"], s["E"])
    case_embed = nn.Embedding(8, s["CASE"])              # rnnkit.data.conll.CASINGS
    char_embed = nn.Embedding(s["CHARS"], s["CE"])
    char_rnn = nn.LSTM(s["CE"], s["CH"], batch_first=True, bidirectional=True)
    rnn = nn.LSTM(s["E"] + 2 * s["CH"] + s["CASE"], s["H"], batch_first=True,
                  bidirectional=True)
    head = nn.Linear(2 * s["H"], s["K"])
    K = s["K"]
    crf = [nn.Parameter(torch.zeros(K, K)), nn.Parameter(torch.zeros(K)),
           nn.Parameter(torch.zeros(K))]
    params = [*word_embed.parameters(), *case_embed.parameters(), *char_embed.parameters(),
              *char_rnn.parameters(), *rnn.parameters(), *head.parameters(), *crf]
    opt = torch.optim.Adam(params, lr=2e-3)
    total = int(lengths.sum())

    def loss():
        packed = nn.utils.rnn.pack_padded_sequence(char_embed(chars), char_lengths,
                                                   batch_first=True, enforce_sorted=False)
        h_n = char_rnn(packed)[1][0]                                    # (2, U, CH)
        spelled = torch.cat([h_n[0], h_n[1]], 1)[char_index]            # (N, T, 2 CH)
        x = F.dropout(torch.cat([word_embed(words), spelled, case_embed(cases)], 2), 0.5)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        h = nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], batch_first=True,
                                             total_length=s["T"])[0]
        E = head(F.dropout(h, 0.5))
        return torch_crf_nll(E, tags, lengths, *crf) / total

    def step():
        opt.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        return value.item()
    return step


def torch_step(app: str):
    import torch
    torch.set_num_threads(2)
    if app == "ner":
        return torch_ner_step()
    s, (x, lengths, y) = SHAPES[app], data(app)
    nn, F = torch.nn, torch.nn.functional
    target = torch.from_numpy(y)
    if app == "forecast":
        rnn, head = nn.LSTM(1, s["H"], batch_first=True), nn.Linear(s["H"], 1)
        params = [*rnn.parameters(), *head.parameters()]
        opt, inputs = torch.optim.Adam(params, lr=3e-3), torch.from_numpy(x)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(head(rnn(inputs)[1][0][-1]), target)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            return loss.item()
        return step
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


def worker(framework: str, app: str, steps: int, memory: bool = False) -> None:
    step = (rnnkit_step if framework == "rnnkit" else torch_step)(app)
    if memory:
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        from peer_workers import step_memory
        print(json.dumps(step_memory(step)))
        return
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
    parser.add_argument("--apps", default="mnist,sentiment,forecast,ner")
    parser.add_argument("--no-memory", action="store_true", help="time only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker, args.steps, args.memory_worker)
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
        if not args.no_memory:
            memory = {}
            mem_env = dict(env, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
            for fw in rounds:
                runs = [json.loads(subprocess.run(
                    [sys.executable, __file__, "--worker", fw, app, "--memory-worker"],
                    env=mem_env, capture_output=True, text=True, check=True
                ).stdout.strip().splitlines()[-1]) for _ in range(args.rounds)]
                memory[fw] = {"median_peak_mb": statistics.median(r["peak_mb"] for r in runs),
                              "runs": runs}
            results[app]["memory"] = memory
            print(f"{app}: step memory rnnkit {memory['rnnkit']['median_peak_mb']:.2f} MB, "
                  f"PyTorch {memory['torch']['median_peak_mb']:.2f} MB", flush=True)
    import platform
    results["machine"] = {"processor": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    path = os.path.join(ROOT, "benchmarks", "results", "apps", "app_steps.json")
    kept = {}
    if os.path.exists(path):                    # the apps not run this time keep their rows
        with open(path) as f:
            kept = json.load(f)
    kept.pop("machine", None)
    kept.update(results)
    with open(path, "w") as f:
        json.dump(kept, f, indent=1)


if __name__ == "__main__":
    main()
