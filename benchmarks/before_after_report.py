"""The table of benchmarks/before_after.sh: each cell's median time and training-step memory
over the rounds, before and after, and their ratio.

    python benchmarks/before_after_report.py OUT_DIR
"""
import glob
import json
import statistics as st
import sys


def load(folder: str, side: str) -> dict:
    cells = {}
    for path in sorted(glob.glob(f"{folder}/{side}_*.json")):
        for row in json.load(open(path))["rows"]:
            r = row["frameworks"].get("rnnkit", {})
            cell = cells.setdefault((row["config"], row["cell"], row["mode"]),
                                    {"ms": [], "mb": []})
            if "median_ms" in r:
                cell["ms"].append(r["median_ms"])
            if r.get("memory", {}).get("peak_mb") is not None:
                cell["mb"].append(r["memory"]["peak_mb"])
    return cells


def main(folder: str) -> None:
    before, after = load(folder, "before"), load(folder, "after")
    print("| config | cell | mode | before ms | after ms | after/before | rounds | "
          "before MB | after MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for key, b in before.items():
        a = after.get(key)
        if not a or not a["ms"] or not b["ms"]:
            continue
        ratio = st.median(a["ms"]) / st.median(b["ms"])
        ratios.append(ratio)
        mem = f"{st.median(b['mb']):.2f} | {st.median(a['mb']):.2f}" if a["mb"] and b["mb"] \
            else " | "
        print(f"| {' | '.join(key)} | {st.median(b['ms']):.2f} | {st.median(a['ms']):.2f} | "
              f"{ratio:.3f} | {len(b['ms'])}/{len(a['ms'])} | {mem} |")
    if ratios:
        print(f"\ngeometric mean after/before {st.geometric_mean(ratios):.3f}, "
              f"range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
