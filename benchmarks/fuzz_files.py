"""Corrupted files through every loader (tests/corrupt.py), with a larger budget than the
suite's sample: the outcome counts by loader and kind of corruption.

    python benchmarks/fuzz_files.py [--per-kind 60] [--seed 0]

Outcomes: clear (one RnnkitError; for run folders and data files, naming the file), same
(loaded; computes exactly what the good file's model does), changed (computes something
else: a defect, except for bytes changed inside weight data, which no format can tell from
other weights, and a class's display name set to another string: counted apart), loaded (a
corrupted data file that still parses: other data), unnamed (an RnnkitError that names
neither the file nor --data: a defect), raw (another exception type: a defect).
Kinds: the library's files, every application's run folder (run:APP), the data files
(data) and the ONNX importer (onnx); see tests/corrupt*.py. Writes benchmarks/results/fuzz_files.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import corrupt  # noqa: E402


class Hang(BaseException):
    pass


def _hang(signum, frame):
    raise Hang()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-kind", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="", help="comma-separated kinds (default: all)")
    ap.add_argument("--seconds", type=float, default=60,
                    help="a load still running after this long counts as a hang (a defect)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reliability" /
                                         "fuzz_files.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fuzz-files-"))
    counts, defects, start = collections.Counter(), [], time.perf_counter()
    signal.signal(signal.SIGALRM, _hang)
    for kind in args.kinds.split(",") if args.kinds else corrupt.KINDS:
        for case in corrupt.run_cases(work, kind, random.Random(args.seed), args.per_kind):
            signal.setitimer(signal.ITIMER_REAL, args.seconds)
            try:
                result = corrupt.outcome(case, work / "work").split(":")[0]
            except Hang:
                result = "hang"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            corruption = case[7]
            if result == "changed" and corruption == "weights-bytes":
                result = "changed (weight data)"
            if result == "changed" and corruption == "json-display":
                result = "changed (display name)"
            counts[(case[0], corruption, result)] += 1
            if result in ("raw", "raw-at-use", "changed", "unnamed", "hang"):
                defects.append({"loader": case[0], "case": case[1], "outcome": result})
    rows = [{"loader": k[0], "corruption": k[1], "outcome": k[2], "count": v}
            for k, v in sorted(counts.items())]
    out = {"per_kind": args.per_kind, "seed": args.seed, "rows": rows, "defects": defects,
           "tried": sum(counts.values()), "seconds": time.perf_counter() - start}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| loader | corruption | outcome | count |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['loader']} | {r['corruption']} | {r['outcome']} | {r['count']} |")
    print(f"\n{out['tried']} files tried, {len(defects)} defects, {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
