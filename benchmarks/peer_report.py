"""Definitions and report of ``benchmarks/peers.py``: configurations, FLOP counts, rows,
the Markdown table and document, and the machine's description.
"""
from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import subprocess

CONFIGS = {"small": (32, 50, 32, 64), "medium": (64, 100, 128, 256),
           "large": (128, 200, 512, 512), "stream": (1, 1000, 16, 128)}   # (N, T, D, H)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
FRAMEWORKS = ("rnnkit", "torch", "jax")
MODES = ("train", "infer")
CHECK_RTOL = 1e-3


def gemm_flops(cell: str, N: int, T: int, D: int, H: int, mode: str) -> int:
    """Matrix-product FLOPs of one forward (infer) or training step (train); see peers.py."""
    forward = 2 * N * T * GATES[cell] * H * (D + H)
    return forward if mode == "infer" else 3 * forward


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def rnnkit_source() -> dict:
    """The git commit of the rnnkit being measured, and whether rnnkit/ differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*cmd):
        try:
            return subprocess.run(["git", "-C", root, *cmd], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    status = git("status", "--porcelain", "--", "rnnkit")
    return {"commit": git("rev-parse", "HEAD") or None,
            "rnnkit_dir_modified": None if status is None else bool(status)}


def describe_machine(gemm: dict) -> dict:
    """CPU, memory, versions, and the BLAS builds reported by the GEMM workers."""
    cpu = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("model name", "cpu family", "model", "cpu MHz", "cache size") and \
                        key not in cpu:
                    cpu[key] = value
                if key == "flags" and "flags" not in cpu:
                    simd = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                            "amx_tile")
                    cpu["simd"] = [s for s in simd if s in value.split()]
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            mem_gb = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        pass
    numpy_cfg = (gemm.get("rnnkit", {}).get("info") or {}).get("numpy_config") or {}
    return {"cpu_model": cpu.get("model name", platform.processor()), "cpu": cpu,
            "logical_cpus": os.cpu_count(), "cpus_allowed": len(os.sched_getaffinity(0)),
            "memory_gb": mem_gb, "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": {d: version(d) for d in ("rnnkit", "numpy", "numba", "mkl", "torch",
                                                 "jax", "jaxlib")},
            "numpy_blas": numpy_cfg.get("Build Dependencies", {}).get("blas"),
            "torch_parallel_info": (gemm.get("torch", {}).get("info") or {})
            .get("torch_parallel_info"),
            "torch_config": (gemm.get("torch", {}).get("info") or {}).get("torch_config")}


def agree(a: dict, b: dict) -> bool:
    """Two frameworks' checksums (loss, sum|dx|, sum|dW_hh|) equal to float32 accuracy."""
    return all(abs(a[k] - b[k]) <= CHECK_RTOL * max(abs(a[k]), abs(b[k])) + 1e-3 for k in a)


def build_rows(results: dict, peak: float | None, own_best: dict | None = None) -> list[dict]:
    """results[(config, cell)][framework] -> {"time": ..., "memory": ...}; one row per mode.

    own_best: framework -> its best GEMM rate before and after the run (the peak's
    measurement). A row's ``fraction_of_peak_then`` is its rate over the peak scaled by how
    fast the framework's own GEMM ran around its timings against that best
    (``gemm_gflops_around``): the peak at the time it was timed. That can be above the
    peak (a timing process's GEMM beat the before/after best), and then % then < % peak."""
    own_best = own_best or {}
    rows = []
    for (config, cell), per_fw in results.items():
        N, T, D, H = CONFIGS[config]
        checks = {fw: r["time"]["check"] for fw, r in per_fw.items()
                  if isinstance(r, dict) and "check" in r.get("time", {})}
        ref = next(iter(checks.values()), None)
        check = {"agree": all(agree(ref, c) for c in checks.values()) if ref else None,
                 "values": checks}
        for mode in MODES:
            flop = gemm_flops(cell, N, T, D, H, mode)
            row = {"config": config, "cell": cell, "mode": mode,
                   "shape": {"N": N, "T": T, "D": D, "H": H}, "gflop": flop / 1e9,
                   "frameworks": {}, "check": check}
            for fw, r in per_fw.items():
                if r == "absent":
                    row["frameworks"][fw] = {"status": "absent"}
                    continue
                t = r["time"]
                if "error" in t:
                    row["frameworks"][fw] = {"status": "error", "error": t["error"]}
                    continue
                entry = dict(t[mode], status="ok", attempts=t.get("attempts"))
                entry["gflops"] = flop / (entry["median_ms"] / 1e3) / 1e9
                entry["fraction_of_peak"] = entry["gflops"] / peak if peak else None
                then = max(entry.get("gemm_gflops_around") or [0])
                entry["fraction_of_peak_then"] = (
                    entry["gflops"] / (peak * then / own_best[fw])
                    if peak and then and own_best.get(fw) else None)
                if mode == "train":
                    entry["memory"] = r["memory"]
                row["frameworks"][fw] = entry
            ok = {fw: e["median_ms"] for fw, e in row["frameworks"].items()
                  if e["status"] == "ok"}
            peers = {fw: ms for fw, ms in ok.items() if fw != "rnnkit"}
            row["best_peer"] = min(peers, key=peers.get) if peers else None
            row["ratio_rnnkit_over_best_peer"] = (
                ok["rnnkit"] / peers[row["best_peer"]] if peers and "rnnkit" in ok else None)
            rows.append(row)
    return rows


def markdown_table(rows: list[dict], frameworks: list[str]) -> str:
    head = (["config", "cell", "mode"] + [f"{fw} ms" for fw in frameworks]
            + ["rnnkit / best peer"] + [f"{fw} GFLOP/s (% peak; then)" for fw in frameworks]
            + [f"{fw} peak MB" for fw in frameworks] + ["others' CPU %", "same result"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 4)
             + "---|"]
    for row in rows:
        cells = [row["config"], row["cell"], row["mode"]]
        fws = [row["frameworks"].get(fw, {"status": "absent"}) for fw in frameworks]
        cells += [f"{e['median_ms']:.2f}" if e["status"] == "ok" else e["status"]
                  for e in fws]
        ratio = row["ratio_rnnkit_over_best_peer"]
        cells.append(f"{ratio:.2f} ({row['best_peer']})" if ratio else "-")
        for e in fws:
            frac, then = e.get("fraction_of_peak"), e.get("fraction_of_peak_then")
            cells.append(f"{e['gflops']:.1f} ({100 * frac:.0f}%"
                         + (f"; {100 * then:.0f}%)" if then is not None else ")")
                         if frac is not None
                         else f"{e['gflops']:.1f}" if "gflops" in e else "-")
        for e in fws:
            mem = e.get("memory") or {}
            cells.append(f"{mem['peak_mb']:.1f}" if "peak_mb" in mem
                         else "err" if "error" in mem else "-")
        cells.append("/".join(f"{100 * e['background']:.0f}" if "background" in e else "-"
                              for e in fws))
        agreed = row["check"]["agree"]
        cells.append("-" if agreed is None else "yes" if agreed else "NO")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def summarize(rows: list[dict]) -> dict:
    """Geometric mean of rnnkit / best peer per mode, and how many rows each peer won."""
    summary = {"geomean_ratio_rnnkit_over_best_peer": {}, "best_peer_counts": {}}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        summary["geomean_ratio_rnnkit_over_best_peer"][mode] = geomean(
            [r["ratio_rnnkit_over_best_peer"] for r in mine if r["ratio_rnnkit_over_best_peer"]])
        wins = summary["best_peer_counts"][mode] = {}
        for r in mine:
            if r["best_peer"]:
                wins[r["best_peer"]] = wins.get(r["best_peer"], 0) + 1
    return summary


def markdown_document(report: dict, frameworks: list[str], json_name: str) -> str:
    machine, s = report["machine"], report["settings"]
    g = report["gemm_peak"]
    rates = {"numpy": g["numpy_gflops"], f"rnnkit.fast.blas ({g.get('rnnkit_blas')})":
             g.get("rnnkit_blas_gflops"), "torch": g["torch_gflops"]}
    peak = report["gemm_peak"]["peak_gflops"]
    blas = machine["numpy_blas"] or {}
    load = report["load_average_before_after"]
    summary = report["summary"]
    return "\n".join([
        "# rnnkit vs PyTorch vs JAX, CPU, float32, one layer",
        "",
        f"Generated by `{report['command']}` ({report['started_utc']}); method in the "
        f"docstring of `benchmarks/peers.py`, all numbers in `{json_name}`.",
        "",
        f"Machine: {machine['cpu_model']}"
        + (f" (family {machine['cpu']['cpu family']}, model {machine['cpu']['model']})"
           if "cpu family" in machine["cpu"] else "") +
        f", {machine['logical_cpus']} logical CPUs, "
        f"{machine['memory_gb']} GB; {s['threads']} threads per framework; " + ", ".join(
            f"{k} {v}" for k, v in machine["versions"].items() if v) + ". "
        f"NumPy BLAS: {blas.get('name', '?')} {blas.get('version', '')}; rnnkit's large "
        f"products: {report['gemm_peak'].get('rnnkit_blas')}. "
        + "".join(f"{k}={v} in this machine's environment is left out of the frameworks' "
                  "processes (only OpenBLAS reads it; see `peers.py`). "
                  for k, v in s.get("dropped_env", {}).items()) +
        f"Load average before/after: {load[0][0]:.2f} / {load[1][0]:.2f}. rnnkit at commit "
        f"{str(report['rnnkit_source']['commit'])[:10]}"
        + (" with rnnkit/ modified" if report["rnnkit_source"]["rnnkit_dir_modified"] else "")
        + ".",
        "",
        "float32 GEMM peak (2048^3, best of 10 before and 10 after): "
        + ", ".join(f"{k} {v:.1f}" for k, v in rates.items() if v)
        + " GFLOP/s; peak = " + (f"{peak:.1f}." if peak else "n/a."),
        "",
        f"Median of >= {s['reps']} calls (>= {s['min_time_s']:g} s of calls) after "
        f"{s['warmup']} warm-ups, each framework in its own process"
        + (f"; the median of {s['rounds']} such rounds, the frameworks taking turns"
           if s.get("rounds", 1) > 1 else "") + ". train = forward + "
        "sum(out * R) + BPTT to all weights and x; infer = forward. GFLOP/s counts only the "
        "matrix products; % then = against the peak scaled by the framework's own 2048^3 "
        "GEMM timed in the same process just before and after its timings (best of 20 each) "
        "over its best before and after the run: the peak at the time (this machine's "
        "speed moves by a third over minutes). peak MB = resident memory one training step "
        "adds (the median of as many fresh processes as rounds). others' CPU % = share of the CPUs other processes took during the timing "
        f"({'/'.join(frameworks)}). `same result` = loss, sum|dx| and sum|dW_hh| agree across "
        f"frameworks to {CHECK_RTOL:g}.",
        "",
        markdown_table(report["rows"], frameworks),
        "",
        "Geometric mean of rnnkit / best peer: " + ", ".join(
            f"{m} {v:.2f}" for m, v in summary["geomean_ratio_rnnkit_over_best_peer"].items()
            if v) + ". Best peer (rows won): " + "; ".join(
            f"{m}: " + ", ".join(f"{fw} {n}" for fw, n in w.items())
            for m, w in summary["best_peer_counts"].items()) + ".",
        ""])
