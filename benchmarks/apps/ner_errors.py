"""Where the NER tagger's test errors come from: the share of entities made only of words
never seen in training (valid and test), and the test confusions between entity types.

    python benchmarks/apps/ner_errors.py RUN_DIR [--data ../shared/data/ner/conll2003]

Reads a run folder of benchmarks/apps/ner.py (the best weights), writes
benchmarks/results/apps/ner_errors.json. It tags the test split again (no choice is made
from it: the reported test F1 is ner.py's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rnnkit.apps import ner  # noqa: E402
from rnnkit.data.conll import normalise_word, read_conll  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ner" / "conll2003"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "apps" /
                                        "ner_errors.json"))
    args = p.parse_args()
    from seqeval.metrics.sequence_labeling import get_entities
    data = Path(args.data)
    seen = {normalise_word(w) for s in read_conll(data / "train.txt") for w in s.words}
    result = {"run_dir": args.run_dir, "unseen_entity_share": {}}
    for split in ("valid", "test"):
        sentences = read_conll(data / f"{split}.txt")
        spans = [(s, a, b) for s in sentences for _, a, b in get_entities(s.tags)]
        unseen = sum(all(normalise_word(w) not in seen for w in s.words[a:b + 1])
                     for s, a, b in spans)
        result["unseen_entity_share"][split] = round(unseen / len(spans), 4)
    model, encoder, tagset, _ = ner.load_model(args.run_dir)
    predicted = ner.tag(model, encoder, tagset, [s.words for s in sentences])
    confusion = Counter()
    for s, tags in zip(sentences, predicted):
        found = {(a, b): kind for kind, a, b in get_entities(tags)}
        for kind, a, b in get_entities(s.tags):
            confusion[f"{kind} -> {found.get((a, b), 'no entity of this span')}"] += 1
    result["test_gold_to_predicted"] = dict(confusion.most_common())
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
