"""Bad values for every flag, positional and input of every command (tests/fuzz/cli_cases.py),
run in-process: the outcome counts by command and the cases that are not one clear line.

    python benchmarks/fuzz_cli.py [--only sentiment]

Writes benchmarks/results/reliability/fuzz_cli.json and prints a Markdown table."""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "fuzz"), str(ROOT / "tests"), str(ROOT)]

import cli_cases  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="commands starting with this")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reliability" /
                                         "fuzz_cli.json"))
    args = ap.parse_args()
    start = time.perf_counter()
    fx = cli_cases.make_fixtures(Path(tempfile.mkdtemp(prefix="fuzz-cli-")))
    made = time.perf_counter() - start
    counts, by_command, defects = collections.Counter(), collections.defaultdict(
        collections.Counter), []
    for case in cli_cases.cases(fx):
        if not case.command.startswith(args.only):
            continue
        kind, detail = cli_cases.outcome(case)
        cli_cases.cleanup(case)
        counts[kind] += 1
        by_command[case.command][kind] += 1
        if kind != "clear":
            defects.append({"case": case.id, "outcome": kind, "detail": detail})
            print(f"{kind}: {case.id}: {detail}", file=sys.stderr)
    out = {"tried": sum(counts.values()), "counts": dict(counts),
           "by_command": {k: dict(v) for k, v in sorted(by_command.items())},
           "defects": defects, "fixture_seconds": made,
           "seconds": time.perf_counter() - start}
    if not args.only:
        Path(args.out).write_text(json.dumps(out, indent=1))
    kinds = ("clear", "wrong name", "unclear", "traceback", "accepted", "damaged")
    print("| command | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds))
    for command, c in sorted(by_command.items()):
        print(f"| {command} | " + " | ".join(str(c.get(k, 0)) for k in kinds) + " |")
    print(f"\n{out['tried']} cases: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in kinds) +
          f"; {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
