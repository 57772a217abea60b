"""Next-word prediction on Shakespeare (word level): the `rnnkit words` model against an
interpolated Kneser-Ney n-gram model on the same split, vocabulary, <unk> and tokens.

    PYTHONPATH=$PWD nice -n 5 python benchmarks/apps/words.py [--epochs 3] [--run-dir DIR]

Data: ../shared/data/text/shakespeare.txt (5.06 M characters), tokenized by the app
(lower-cased words and punctuation marks), cut in time order: the last 5 % of the tokens
test, the 5 % before them validation, the rest training; the vocabulary is the training
tokens seen >= min_freq times, every other token <unk> (a word like any other for both
models). Perplexity counts the same test positions for both (rnnkit.apps.words.
counted_positions: the split as batch_size rows; the LSTM reads each row from a zero state,
the n-gram model sees up to order - 1 tokens before every position, also at a row's start).

The Kneser-Ney model is benchmarks/apps/kneser_ney.py (nltk's KneserNeyInterpolated
arithmetic, counted once; nltk's own takes hours to score the split), checked against nltk on
the first 3,000 training tokens before anything else runs. Its order and discount are chosen
on validation; the LSTM's weights are the best validation checkpoint of one run; each is
scored on test once. Writes benchmarks/results/apps/words.json.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import _common
from kneser_ney import KneserNey, verify_against_nltk
from rnnkit.apps import words
from rnnkit.serialize import load_json, save_json
from rnnkit.train import read_metrics

SETTINGS = dict(min_freq=3, cell="lstm", embed_dim=256, hidden_size=256, tie_weights=True,
                batch_size=32, seq_len=35, optimizer="adam", lr=3e-3, schedule="cosine")
KN_ORDERS, KN_DISCOUNTS = (2, 3, 4, 5), (0.5, 0.75, 0.9, 1.0)
PRIMES = ("The cat sat on the", "To be or not to", "My lord , the king is", "I pray you ,")


def kneser_ney(ids: dict, rows: int) -> dict:
    """Order and discount chosen on validation; that model's test perplexity."""
    train = ids["train"].tolist()
    pos = {k: words.counted_positions(len(ids[k]), rows) for k in ("validation", "test")}
    val, models = {}, {}
    for order in KN_ORDERS:
        for d in KN_DISCOUNTS:
            models[order, d] = KneserNey(train, order, d)
            nll, n = models[order, d].nll(ids["validation"].tolist(), pos["validation"])
            val[f"order {order}, discount {d}"] = math.exp(nll / n)
        models = {k: v for k, v in models.items() if k[0] == order}     # (memory)
        print(f"Kneser-Ney order {order}: validation perplexity "
              + ", ".join(f"{v:.2f}" for k, v in val.items() if k.startswith(f"order {order}")),
              flush=True)
    best = min(val, key=val.get)
    order, d = int(best.split()[1].rstrip(",")), float(best.split()[-1])
    nll, n = KneserNey(train, order, d).nll(ids["test"].tolist(), pos["test"])
    return {"validation_perplexity": val, "chosen": {"order": order, "discount": d},
            "validation": val[best], "test_perplexity": math.exp(nll / n), "test_tokens": n}


def train_or_resume(cfg, tcfg, run: Path, epochs: float) -> dict:
    """Train into `run`, or continue it to `epochs` from its latest checkpoint (a run that
    was stopped, or one to extend); the wall time of each part is kept in
    run/train_wall.json. -> {"parts": [...], "total": seconds}."""
    wall = run / "train_wall.json"
    parts = load_json(wall)["parts"] if wall.is_file() else []
    if not parts or parts[-1].get("to_epochs") != epochs or not parts[-1].get("finished"):
        start = time.perf_counter()
        if not (run / "config.json").is_file():
            words.train(cfg, tcfg, run)
        else:
            words.resume(run, epochs=epochs)
        parts.append({"to_epochs": epochs, "seconds": time.perf_counter() - start,
                      "finished": True, "commit": _common.commit()})
        save_json(wall, {"parts": parts})
    return {"parts": parts, "total": sum(p["seconds"] for p in parts)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--run-dir", default=str(_common.ROOT / "runs" / "words-bench"),
                    help="train here (a folder that already holds a finished run is "
                    "evaluated as it is)")
    args = ap.parse_args()
    cfg = words.WordsConfig(data=str(_common.DATA / "text" / "shakespeare.txt"), **SETTINGS)
    tcfg = replace(words.default_train_config(), epochs=args.epochs, val_every=300,
                   log_every=50, checkpoint_every=300, progress=False)
    vocab, ids = words.encoded_splits(cfg)
    checked = verify_against_nltk(vocab.to_tokens(ids["train"][:3000]))
    print(f"Kneser-Ney agrees with nltk.lm.KneserNeyInterpolated at {checked} probes", flush=True)
    result = {"data": "shakespeare.txt, tokens in time order: train / validation / test = "
              + " / ".join(str(len(ids[k])) for k in ("train", "validation", "test")),
              "vocabulary": len(vocab), "settings": asdict(cfg),
              "kn_checked_against_nltk_probes": checked}
    run = Path(args.run_dir)
    result["train_seconds"] = train_or_resume(cfg, tcfg, run, args.epochs)
    start = time.perf_counter()
    result["kneser_ney"] = kneser_ney(ids, cfg.batch_size)
    result["kneser_ney"]["seconds"] = time.perf_counter() - start
    print(result["kneser_ney"], flush=True)
    rows = read_metrics(run / "metrics.jsonl")
    result["validation_curve"] = [(r["step"], math.exp(r["val_loss"])) for r in rows
                                  if r["kind"] == "validation"]
    result["train"] = load_json(run / "config.json")["train"]
    result["lstm"] = words.evaluate(run)
    result["examples"] = [r["text"] for r in words.predict(run, list(PRIMES), top_k=5)]
    result["goal_met"] = result["lstm"]["test"]["perplexity"] < \
        result["kneser_ney"]["test_perplexity"]
    print(f"test perplexity: LSTM {result['lstm']['test']['perplexity']:.2f}, Kneser-Ney "
          f"{result['kneser_ney']['test_perplexity']:.2f}", flush=True)
    _common.write("words", result)


if __name__ == "__main__":
    main()
