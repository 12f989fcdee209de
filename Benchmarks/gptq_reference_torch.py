#!/usr/bin/env python3
"""Times the reference GPTQ (`fasterquant`) in PyTorch on SmolLM2-sized layers, for comparison
with qdist's `GPTQBenchmark.run(rows:columns:groupSize:actOrder:)` (Sources/QDistQuant/GPTQ).

The algorithm below is copied from IST-DASLab/gptq (gptq.py `GPTQ.fasterquant` and quant.py
`quantize`/`Quantizer.find_params`, commit 2d65066, Apache-2.0, Frantar et al. 2022), reduced to
weights of an nn.Linear with per-channel groups (`perchannel=True`, minmax, no trits) and without
its prints, timers and DEBUG hooks. Only the grid is swapped for compressed-tensors' signed
int grid, which quantizes identically (scale = absmax/7.5 for int4 symmetric).

Problem (same recipe as GPTQBenchmark.syntheticLayer, different random numbers): W ~ N(0, 0.02²)
with 0.1 % of entries ×8; H = 2/N·XᵀX from N = 128 sequences × 512 tokens whose features are
AR(1)-correlated (ρ = 0.9) and scaled per feature by 10^U(−1, 1).

Run (the lead has torch in /tmp/torchvenv):
    /tmp/torchvenv/bin/python Benchmarks/gptq_reference_torch.py --threads 2
Prints one JSON object with the best-of-`--repeats` seconds per (rows, columns, actorder).
"""
import argparse
import json
import math
import time

import torch


def quantize(x, scale, zero, maxq):
    # quant.py `quantize` (unsigned grid 0..maxq, zero point `zero`).
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def find_params(x, bits, sym):
    # quant.py `Quantizer.find_params(x, weight=True)` with perchannel=True, mse=False.
    maxq = 2 ** bits - 1
    tmp = torch.zeros(x.shape[0], device=x.device)
    xmin = torch.minimum(x.min(1)[0], tmp)
    xmax = torch.maximum(x.max(1)[0], tmp)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        tmp = xmin < 0
        if torch.any(tmp):
            xmin[tmp] = -xmax[tmp]
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1), maxq


def fasterquant(W, H, bits=4, sym=True, blocksize=128, percdamp=.01, groupsize=-1, actorder=False):
    # gptq.py `GPTQ.fasterquant` (static_groups=False), returns (Q, loss).
    W = W.clone().float()
    H = H.clone()
    columns = W.shape[1]
    scale, zero, maxq = find_params(W, bits, sym)

    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = torch.argsort(perm)

    Losses = torch.zeros_like(W)
    Q = torch.zeros_like(W)

    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns, device=W.device)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H

    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1

        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]

        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]

            if groupsize != -1:
                if (i1 + i) % groupsize == 0:
                    scale, zero, maxq = find_params(W[:, (i1 + i):(i1 + i + groupsize)], bits, sym)

            q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2

            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1

        Q[:, i1:i2] = Q1
        Losses[:, i1:i2] = Losses1 / 2

        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

    if actorder:
        Q = Q[:, invperm]
    return Q, torch.sum(Losses).item()


def synthetic_layer(rows, columns, sequences=128, seqlen=512, seed=1):
    g = torch.Generator().manual_seed(seed)
    W = 0.02 * torch.randn(rows, columns, generator=g)
    W[torch.rand(rows, columns, generator=g) < 0.001] *= 8
    scales = 0.1 * 10 ** (2 * torch.rand(columns, generator=g))
    H = torch.zeros(columns, columns)
    nsamples = 0
    for _ in range(sequences):
        z = torch.randn(seqlen, columns, generator=g)
        x = torch.empty_like(z)
        prev = torch.zeros(seqlen)
        for c in range(columns):  # AR(1) along the feature axis
            prev = 0.9 * prev + math.sqrt(1 - 0.81) * z[:, c]
            x[:, c] = prev
        x *= scales
        # gptq.py `add_batch` with a batch of one sequence.
        H *= nsamples / (nsamples + 1)
        nsamples += 1
        inp = math.sqrt(2 / nsamples) * x.t()
        H += inp.matmul(inp.t())
    return W, H


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--sequences", type=int, default=128, help="calibration sequences of 512 tokens for H")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for rows, columns in [(576, 1536), (1536, 576)]:
        W, H = synthetic_layer(rows, columns, sequences=args.sequences)
        W, H = W.to(args.device), H.to(args.device)
        for actorder in (False, True):
            best = math.inf
            loss = None
            for _ in range(args.repeats + 1):  # first run is a warm-up
                if args.device != "cpu":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                _, loss = fasterquant(W, H, bits=4, sym=True, groupsize=args.group_size, actorder=actorder)
                if args.device != "cpu":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            results.append({"rows": rows, "columns": columns, "actorder": actorder,
                            "group_size": args.group_size, "seconds": best, "loss": loss})
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "device": args.device, "results": results}, indent=1))


if __name__ == "__main__":
    main()
