"""The NumPy memory one training step allocates at its peak, counted exactly (tracemalloc),
for comparing two trees where the resident-set figures of benchmarks/peers.py move by a few
pages from one process to the next:

    python benchmarks/step_allocations.py TREE [--configs stream,small]

TREE: a checkout of rnnkit (its benchmarks/peer_workers.py builds the step). Prints JSON.
"""
import argparse
import gc
import json
import sys
import tracemalloc

SIZES = {"small": (16, 50, 32, 64), "stream": (1, 1000, 16, 128)}     # (N, T, D, H)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tree")
    ap.add_argument("--configs", default="stream,small")
    args = ap.parse_args()
    sys.path[:0] = [args.tree, args.tree + "/benchmarks"]
    from peer_workers import build_rnnkit, make_problem
    import rnnkit
    rows = []
    for config in args.configs.split(","):
        for cell in ("rnn", "lstm", "gru"):
            x, R, sd = make_problem(cell, *SIZES[config])
            train, _, _ = build_rnnkit(cell, x, R, sd, 1)
            train()
            train()                                 # warm: kernels compiled, weights laid out
            rnnkit.workspace.clear()                # the measured step allocates its buffers
            gc.collect()
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            train()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append({"config": config, "cell": cell, "peak_kb": round((peak - base) / 1024, 1)})
    print(json.dumps({"tree": args.tree, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
