#!/usr/bin/env python3
"""Predicts `mpirun -n P qdist quantize` wall time and parallel efficiency from one measured
run, for machines with enough cores (this one has ~1.2 real cores, so wall-time scaling cannot
be measured here).

usage: quantize_scaling_model.py REPORT.json [--bandwidth-gbs 5] [--latency-us 5] [--ranks 1,2,4,8,64]
       [--sequential linear|block]
       [--measured P=REPORT.json ...]

REPORT.json is the quantization_report.json of a one-process run. The model, per DESIGN.md:
  forward(P)     = forward(1) / P                 calibration windows split by sequence
  solve(P)       = Σ_stages makespan of the stage's linears dealt by SolveAssignment's rule
                   (largest first to the least-loaded rank; rows split when P > linears),
                   from the measured per-linear seconds (split: the Cholesky share is paid per piece)
  collectives(P) = Σ_blocks [Reduce of the packed Float64 Hessians (n(n+1)/2 per group) to owners
                   + Allgatherv of codes (1 byte/weight) and scales] / bandwidth + latency·log2 P
  fixed          = calibration setup + block I/O + write (taken as not parallel: conservative)
With --measured, prints the measured per-rank seconds of multi-rank runs next to the model.
"""
import json
import math
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


STAGE = {"q_proj": 0, "k_proj": 0, "v_proj": 0, "o_proj": 1, "gate_proj": 2, "up_proj": 2, "down_proj": 3}


def groups_of(layers, sequential):
    """Linears solved together: per block (`sequential: block`), or per stage of a block —
    q/k/v, o, gate/up, down — for `sequential: linear`, where each stage's solves finish before
    the next stage's forward starts."""
    groups = {}
    for l in layers:
        parts = l["name"].split(".")
        key = (int(parts[2]), STAGE.get(parts[-1], 0) if sequential == "linear" else 0)
        groups.setdefault(key, []).append(l)
    return [groups[k] for k in sorted(groups)]


SHAPES = {  # SmolLM2-135M: (out, in)
    "q_proj": (576, 576), "k_proj": (192, 576), "v_proj": (192, 576), "o_proj": (576, 576),
    "gate_proj": (1536, 576), "up_proj": (1536, 576), "down_proj": (576, 1536),
}


def block_solve_makespan(linears, ranks):
    """SolveAssignment's rule on measured seconds; returns the busiest rank's seconds."""
    pieces = []
    for l in linears:
        kind = l["name"].split(".")[-1]
        rows, cols = SHAPES.get(kind, (1, 1))
        fixed_share = (cols ** 3 / 3) / (cols ** 3 / 3 + cols * cols * rows)
        pieces.append({"t": l["seconds"], "fixed": l["seconds"] * fixed_share, "rows": rows})
    while len(pieces) < ranks:
        splittable = [p for p in pieces if p["rows"] >= 32]
        if not splittable:
            break
        p = max(splittable, key=lambda x: x["t"])
        pieces.remove(p)
        per_row = (p["t"] - p["fixed"]) / p["rows"]
        half = p["rows"] // 2
        for r in (half, p["rows"] - half):
            pieces.append({"t": p["fixed"] + per_row * r, "fixed": p["fixed"], "rows": r})
    load = [0.0] * ranks
    for p in sorted(pieces, key=lambda x: -x["t"]):
        i = min(range(ranks), key=lambda k: load[k])
        load[i] += p["t"]
    return max(load)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    report = load(args[0])
    bandwidth = float(args[args.index("--bandwidth-gbs") + 1]) * 1e9 if "--bandwidth-gbs" in args else 5e9
    latency = float(args[args.index("--latency-us") + 1]) * 1e-6 if "--latency-us" in args else 5e-6
    ranks_list = [int(x) for x in args[args.index("--ranks") + 1].split(",")] if "--ranks" in args else [1, 2, 4, 8, 16, 64]
    measured = {}
    for i, a in enumerate(args):
        if a == "--measured":
            p, path = args[i + 1].split("=", 1)
            measured[int(p)] = load(path)

    s = report["seconds"]
    # Not divided by P (conservative): calibration setup, block loads and record writes, output.
    io = (report.get("seconds_per_rank") or [{}])[0].get("io", 0.0)
    forward, fixed = s.get("forward", 0.0), s.get("calibration_setup", 0.0) + s.get("write", 0.0) + io
    sequential = args[args.index("--sequential") + 1] if "--sequential" in args else "linear"
    blocks = groups_of(report["layers"], sequential)
    block_count = len({l["name"].split(".")[2] for l in report["layers"]})
    windows = report["calibration"]["windows"]
    # Bytes per block: packed Float64 Hessians (q/k/v, o, gate/up: 576; down: 1536) and codes + fp32 scales.
    hidden, inter = 576, 1536
    hessian_bytes = 8 * (3 * hidden * (hidden + 1) // 2 + inter * (inter + 1) // 2)
    params = sum(o * i for o, i in SHAPES.values())
    code_bytes = params + 4 * params // 64
    one = forward + sum(block_solve_makespan(b, 1) for b in blocks) + fixed
    print(f"one process (model): {one:.1f} s (forward {forward:.1f}, solve {sum(block_solve_makespan(b, 1) for b in blocks):.1f}, "
          f"fixed {fixed:.1f}); measured total {s.get('total', 0):.1f} s")
    print(f"per block: Hessians {hessian_bytes / 1e6:.1f} MB reduced to owners, codes+scales {code_bytes / 1e6:.1f} MB all-gathered; "
          f"bandwidth {bandwidth / 1e9:.1f} GB/s, latency {latency * 1e6:.0f} us")
    print(f"{'P':>4} {'forward':>9} {'solve':>8} {'comm':>7} {'fixed':>7} {'total':>8} {'speed-up':>9} {'efficiency':>10}")
    for p in ranks_list:
        if p > windows:
            print(f"{p:>4}  more ranks than calibration windows ({windows}): some ranks would idle in the forward")
        f = forward / p * math.ceil(windows / p) / (windows / p)  # whole windows per rank
        solve = sum(block_solve_makespan(b, p) for b in blocks)
        comm = 0.0 if p == 1 else block_count * ((hessian_bytes + code_bytes) / bandwidth + 8 * latency * math.log2(p))
        total = f + solve + comm + fixed
        print(f"{p:>4} {f:>9.1f} {solve:>8.1f} {comm:>7.2f} {fixed:>7.1f} {total:>8.1f} {one / total:>9.2f} {one / total / p:>10.0%}")
    for p, r in sorted(measured.items()):
        per = r.get("seconds_per_rank", [])
        rss = r.get("peak_anonymous_bytes_per_rank") or r.get("peak_rss_bytes_per_rank", [])
        print(f"measured P={p}: total {r['seconds'].get('total', 0):.1f} s; per rank " + "; ".join(
            f"r{k}: fwd {t.get('forward', 0):.1f} solve {t.get('solve', 0):.1f} coll {t.get('collectives', 0):.1f} io {t.get('io', 0):.1f}"
            + (f" rss {rss[k] / 1e9:.2f} GB" if k < len(rss) else "") for k, t in enumerate(per)))


if __name__ == "__main__":
    main()
