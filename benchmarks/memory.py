"""The long-memory benchmarks (issue 30, docs/memory.md): each cell on the adding problem,
copy memory and key recall, with the flags of `rnnkit memory TASK`.

    nice -n 5 python benchmarks/memory.py adding --T 100 --cells rnn,lstm,gru,irnn --steps 2000
    nice -n 5 python benchmarks/memory.py copy --T 50 --cells rnn,lstm,gru --steps 1500
    nice -n 5 python benchmarks/memory.py recall --max-gap 100 --cells rnn,lstm,gru --steps 1000

Writes benchmarks/results/memory/TASK.json (the tool's results.json, plus the command, the
wall time, the machine and the commit) and TASK_loss_curve.png (recall: also
TASK_accuracy_vs_gap.png). Splits: the cells train on fresh seeded batches, the weights kept
are the lowest validation loss's (a validation set of its own seed), and every reported
number is the test set's (another seed), scored once, beside the memoryless baseline scored
on the same test set. ``--tag NAME`` writes TASK_NAME.* instead (another configuration).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "apps"))

from _common import commit, machine                         # noqa: E402
from rnnkit.apps import common                              # noqa: E402
from rnnkit.apps import memory                       # noqa: E402
from rnnkit.serialize import save_json                      # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "memory"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument("--replot", action="store_true", help="no training: redraw the PNGs "
                        "and print the table of the results already in TASK[_TAG].json")
    parser.add_argument("--jobs", type=int, default=1, help="cells trained at once, each in "
                        "a process of its own")
    memory.add_arguments(parser)
    args = parser.parse_args(argv)
    name = args.task + (f"_{args.tag}" if args.tag else "")
    if args.replot:
        results = json.loads((RESULTS / f"{name}.json").read_text("utf-8"))
        memory.write_plots(results, RESULTS, prefix=f"{name}_")
        print(memory.table(results))
        return 0
    cfg = common.from_flags(memory.TASKS[args.task], args, args.memory_fields)
    cfg.out = str(RESULTS)
    start = time.perf_counter()
    results = memory.benchmark(args.task, cfg, log=print, jobs=args.jobs)
    results.update(command="python benchmarks/memory.py " + " ".join(sys.argv[1:]),
                   wall_seconds=round(time.perf_counter() - start, 1), machine=machine(),
                   commit=commit(), date=time.strftime("%Y-%m-%d %H:%M:%S"),
                   split="test (seed [seed, 2]); weights chosen on validation (seed [seed, 1])")
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS / f"{name}.json", results)
    memory.write_plots(results, RESULTS, prefix=f"{name}_")
    print(memory.table(results))
    print(f"wrote {RESULTS / name}.json and its PNGs ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
