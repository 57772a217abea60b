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
    print(json.dumps({k: result[k] for k in ("label", "tried", "totals", "wall_s")}))
    for call, v in by_call.items():
        bad = {k: n for k, n in v["counts"].items() if k != "clear"}
        if bad:
            print(f"  {call}: {bad}")


if __name__ == "__main__":
    main()
