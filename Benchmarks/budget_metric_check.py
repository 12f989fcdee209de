"""How well does the budget's second-order score predict the loss a quantized linear adds?

For linears of SmolLM2 (float), quantized one at a time by round-to-nearest (asymmetric, groups
of 64, min-max), compare on the same windows:
  true      L(model with that one linear quantized) - L(float), summed next-token loss
  first     <G, dW>, G = sum_t g_t x_t^T  (first-order term; its expectation is ~0)
  fisher    1/2 sum_j F_j (dW H dW^T)_jj, F from the data's labels (qdist's `metric: fisher`)
  kl        the same with F from labels sampled from the model (qdist's `metric: kl`)
  output    1/2 tr(dW H dW^T)                 (qdist's `metric: output_error`, unweighted)
The allocation only needs the scores to rank (linear, candidate) pairs like `true` does, so the
summary prints the Spearman correlation of each score with `true` and the ratio true/score by
linear kind (a kind the score under-predicts gets too few bits).

Reference script, outside CI:  python Benchmarks/budget_metric_check.py MODEL_DIR VALID_TXT
(needs torch + transformers; ~5 min on 2 cores).
"""
import json, math, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.manual_seed(0)
model_dir, valid = sys.argv[1], sys.argv[2]
windows, seq = int(sys.argv[3]) if len(sys.argv) > 3 else 4, 512
layers = [0, 4, 9, 14, 19, 24, 29]
bits_list = [2, 3]

tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
ids = tok(open(valid).read(), return_tensors="pt").input_ids[0]
batch = torch.stack([ids[i * seq:(i + 1) * seq] for i in range(windows)])

def loss_sum(labels=None):
    out = model(batch).logits[:, :-1].float()
    target = batch[:, 1:] if labels is None else labels
    return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1), reduction="sum")

kinds = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
names = [f"model.layers.{l}.{k}" for l in layers for k in kinds]
mods = {n: model.get_submodule(n) for n in names}
H, Fe, Fk, G = {}, {}, {}, {}
inputs, outputs = {}, {}

def hooks():
    hs = []
    for n, m in mods.items():
        def fwd(mod, inp, out, n=n):
            if out.requires_grad:
                inputs[n] = inp[0].detach()
                out.retain_grad(); outputs[n] = out
        hs.append(m.register_forward_hook(fwd))
    return hs

hs = hooks()
with torch.enable_grad():
    model.zero_grad()
    L = loss_sum(); L.backward()
    for n in names:
        x = inputs[n].reshape(-1, inputs[n].shape[-1]).double()
        g = outputs[n].grad.reshape(-1, outputs[n].shape[-1]).double()
        H[n] = x.T @ x; Fe[n] = (g * g).sum(0); G[n] = g.T @ x
    # labels sampled from the model's own distribution: the true Fisher
    with torch.no_grad():
        probs = torch.softmax(model(batch).logits[:, :-1].float(), -1)
        sampled = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:2])
    model.zero_grad()
    Ls = loss_sum(sampled); Ls.backward()
    for n in names:
        g = outputs[n].grad.reshape(-1, outputs[n].shape[-1]).double()
        Fk[n] = (g * g).sum(0)
for h in hs: h.remove()
with torch.no_grad():
    L0 = loss_sum().item()

def rtn(w, bits, group=64):
    o, i = w.shape
    g = w.reshape(o, i // group, group)
    lo = g.amin(-1, keepdim=True).clamp(max=0); hi = g.amax(-1, keepdim=True).clamp(min=0)
    q = 2 ** bits - 1
    s = ((hi - lo) / q).clamp(min=1e-12); z = torch.round(-lo / s)
    return ((torch.clamp(torch.round(g / s) + z, 0, q) - z) * s).reshape(o, i)

rows = []
with torch.no_grad():
    for n in names:
        w = mods[n].weight.data.clone()
        for bits in bits_list:
            wq = rtn(w, bits); d = (wq - w).double()
            mods[n].weight.data.copy_(wq)
            true = loss_sum().item() - L0
            mods[n].weight.data.copy_(w)
            quad = ((d @ H[n]) * d).sum(1)
            rows.append(dict(name=n, kind=n.split(".")[-1], bits=bits, true=true, first=(G[n] * d).sum().item(),
                             fisher=0.5 * (Fe[n] * quad).sum().item(), kl=0.5 * (Fk[n] * quad).sum().item(), output=0.5 * quad.sum().item()))
            print(json.dumps(rows[-1]), flush=True)

def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0] * len(v)
    for k, i in enumerate(order): r[i] = k
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b); n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
true = [r["true"] for r in rows]
T = windows * (seq - 1)
print(f"\nL0 = {L0:.2f} over {windows}x{seq} tokens")
for key in ["fisher", "kl", "output"]:
    print(f"spearman(true, {key}) = {spearman(true, [r[key] for r in rows]):.3f}")
# K-FAC with summed H and F over T tokens estimates T times the summed loss change: divide by T.
# `true - first` is the second-order part the scores model (the first-order term is noise
# around 0 on other windows); a kind whose ratio is below the others' is over-predicted.
print("\nmedians by kind: true, true - first, score / T, (true - first) / (score / T)")
print("kind      bits    true  true-first  fisher/T    kl/T  ratio(fisher)  ratio(kl)")
med = lambda v: sorted(v)[len(v) // 2]
for k in [k.split('.')[-1] for k in kinds]:
    for bits in bits_list:
        sel = [r for r in rows if r["kind"] == k and r["bits"] == bits]
        second = [r["true"] - r["first"] for r in sel]
        print(f"{k:9s} {bits:4d} {med([r['true'] for r in sel]):7.2f} {med(second):10.2f} {med([r['fisher'] / T for r in sel]):9.2f}"
              f" {med([r['kl'] / T for r in sel]):7.2f} {med([d / (r['fisher'] / T) for d, r in zip(second, sel)]):13.2f}"
              f" {med([d / (r['kl'] / T) for d, r in zip(second, sel)]):10.2f}")
