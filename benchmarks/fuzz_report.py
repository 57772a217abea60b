"""Outcome counts of the Python API fuzz cases (tests/fuzz/api_cases.py) with a larger budget.

    PYTHONPATH=$PWD python benchmarks/fuzz_report.py --label after [--examples 40]

For each case, up to --examples bad values are generated (derandomized: the same values at
every run) and each call's outcome counted: clear (an RnnkitError naming the argument), wrong
name (an RnnkitError naming something else), other <Type> (any other exception), accepted
(no error). Writes benchmarks/results/fuzz.json (one entry per --label, so the run before the
fixes and the run after sit side by side) and the table in docs/reliability.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
from api_cases import CASES, outcome, warm_up  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fuzz.json"
DOC = ROOT / "docs" / "reliability.md"
KINDS = ("clear", "wrong name", "accepted")


def _columns(counts: dict) -> list:
    other = sum(n for k, n in counts.items() if k.startswith("other"))
    return [counts.get(k, 0) for k in KINDS[:2]] + [other, counts.get("accepted", 0)]


def write_doc(results: dict) -> None:
    """docs/reliability.md: the totals of every label, then each call's counts per label."""
    labels = [k for k in ("before", "after") if k in results] + \
        [k for k in results if k not in ("before", "after")]
    head = "| | clear RnnkitError | wrong argument named | other exception | accepted |"
    lines = ["# Reliability of the Python API: fuzzing every public call (issue 29)", "",
             "Every public call of the Python API, one argument at a time replaced by bad values",
             "that hypothesis generates (tests/fuzz/bad_values.py: wrong types, NaN and infinity,",
             "negative, zero and huge sizes, wrong shapes, ranks and dtypes, ragged lists, empty",
             "batches, NumPy scalars, None), each outcome counted (tests/fuzz/api_cases.py).",
             "A call still running after 20 s counts as accepted (e.g. `generate(length=2**40)`).",
             "Huge values are tried only for sizes that allocate memory (not for step counts or",
             "batch sizes, where a huge value is merely large).", "",
             "The suite (`PYTHONPATH=$PWD python -m pytest tests/fuzz`) runs 6 values a case and",
             "asserts each is a clear RnnkitError naming the argument; this table comes from",
             "`benchmarks/fuzz_report.py` (results in benchmarks/results/fuzz.json).", "",
             head, "|---|---|---|---|---|"]
    for label in labels:
        r = results[label]
        lines.append(f"| {label} (tried {r['tried']}, {r['examples_per_case']} a case) | " +
                     " | ".join(map(str, _columns(r["totals"]))) + " |")
    lines += ["", "Other exception types: " + "; ".join(
        f"{label}: " + (", ".join(f"{k[6:]} {n}" for k, n in results[label]["totals"].items()
                                  if k.startswith("other")) or "none") for label in labels),
        "", "## By call (" + " / ".join(labels) + "; columns as above)", "",
        "| call | " + " | ".join(["clear", "wrong name", "other", "accepted"]) + " |",
        "|---|---|---|---|---|"]
    calls = list(dict.fromkeys(c for label in labels for c in results[label]["by_call"]))
    for call in calls:
        cols = [_columns(results[label]["by_call"].get(call, {}).get("counts", {}))
                for label in labels]
        lines.append(f"| {call} | " + " | ".join(" / ".join(str(c[i]) for c in cols)
                                               for i in range(4)) + " |")
    DOC.write_text("\n".join(lines) + "\n")


def run_case(case, examples: int) -> tuple[Counter, list]:
    counts, samples = Counter(), []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def probe(data):
        value = data.draw(case.bad)
        kind, detail = outcome(case, value)
        counts[kind] += 1
        if kind != "clear" and len(samples) < 3:
            samples.append({"value": repr(value)[:80], "outcome": kind, "detail": detail})
    probe()
    return counts, samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="e.g. before / after")
    ap.add_argument("--examples", type=int, default=40, help="bad values per case (at most)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    # a bad size may make main allocate for real: past 8 GiB that is a MemoryError, counted
    resource.setrlimit(resource.RLIMIT_DATA, (8 << 30, 8 << 30))
    warm_up()
    start = time.time()
    by_call, total = {}, Counter()
    for case in CASES:
        counts, samples = run_case(case, args.examples)
        total.update(counts)
        entry = by_call.setdefault(case.call, {"counts": Counter(), "failures": []})
        entry["counts"].update(counts)
        entry["failures"] += [{"arg": case.arg, **s} for s in samples]
    result = {"label": args.label, "cases": len(CASES), "examples_per_case": args.examples,
              "tried": sum(total.values()), "totals": dict(total.most_common()),
              "by_call": {k: {"counts": dict(v["counts"]), "failures": v["failures"]}
                          for k, v in by_call.items()},
              "command": f"PYTHONPATH=$PWD python benchmarks/fuzz_report.py --label "
                         f"{args.label} --examples {args.examples}",
              "wall_s": round(time.time() - start, 1), "machine": platform.platform(),
              "python": platform.python_version()}
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old[args.label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(old, indent=1) + "\n")
    write_doc(old)
    print(json.dumps({k: result[k] for k in ("label", "tried", "totals", "wall_s")}))
    for call, v in by_call.items():
        bad = {k: n for k, n in v["counts"].items() if k != "clear"}
        if bad:
            print(f"  {call}: {bad}")


if __name__ == "__main__":
    main()
