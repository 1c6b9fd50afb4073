"""PyTorch baselines for `moe4j bench moe --device cuda`, on the same GPU in the same run.

Times the MoE layer at a Mixtral-8x7B layer shape (16384 tokens, H 4096, I 14336, E 8, top-2, bf16), forward
alone and forward + backward, for
  (a) transformers' MixtralSparseMoeBlock (its experts implementation named in the output), and
  (b) a grouped-GEMM layer written here on torch._grouped_mm (router -> softmax -> top-2 renormalised -> stable
      sort by expert -> gather -> grouped gate/up -> SwiGLU -> grouped down -> weighted index_add),
and one decode step (1 token) of a Qwen3-30B-A3B MoE layer (H 2048, I 768, E 128, top-8) with (b).
FLOPs are counted as moe4j counts them: 6*T*k*H*I + 2*T*H*E forward, three times that for forward + backward.
The bf16 matmul rate (8192^3, random data) and the device-copy bandwidth are measured first.

Usage: python3 moe_baselines.py [--quick]   (prints one JSON object per line, then a table)
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

QUICK = "--quick" in sys.argv
DEV = "cuda"
DT = torch.bfloat16


def median_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    n = len(times)
    return times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2


def flops(t, h, i, e, k):
    return 6.0 * t * k * h * i + 2.0 * t * h * e


def emit(record):
    print(json.dumps(record), flush=True)
    return record


def limits():
    n = 1024 if QUICK else 8192
    a, b = torch.randn(n, n, device=DEV, dtype=DT), torch.randn(n, n, device=DEV, dtype=DT)
    ms = median_ms(lambda: a @ b, 5, 20)
    nbytes = (64 << 20) if QUICK else (2 << 30)
    src = torch.empty(nbytes, dtype=torch.uint8, device=DEV).random_()
    dst = torch.empty_like(src)
    cms = median_ms(lambda: dst.copy_(src), 2, 20)
    return emit({"what": "limits", "matmul_size": n, "matmul_tflops": 2.0 * n ** 3 / ms / 1e9,
                 "copy_gbs": 2.0 * nbytes / cms / 1e6})


class GroupedMoe(torch.nn.Module):
    """Dropless top-k MoE on torch._grouped_mm, weights stacked as moe4j stores them ([E, 2I, H], [E, H, I])."""

    def __init__(self, h, i, e, k):
        super().__init__()
        self.e, self.k, self.i = e, k, i
        self.router = torch.nn.Parameter(torch.randn(e, h, device=DEV, dtype=DT) / math.sqrt(h))
        self.gate_up = torch.nn.Parameter(torch.randn(e, 2 * i, h, device=DEV, dtype=DT) / math.sqrt(h))
        self.down = torch.nn.Parameter(torch.randn(e, h, i, device=DEV, dtype=DT) / math.sqrt(i))

    def forward(self, x):
        logits = (x @ self.router.t()).float()
        probs = torch.softmax(logits, dim=-1)
        w, idx = torch.topk(probs, self.k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        token = order // self.k
        offs = torch.cumsum(torch.bincount(flat, minlength=self.e), 0).to(torch.int32)
        xp = x[token]
        gu = torch._grouped_mm(xp, self.gate_up.transpose(-2, -1), offs=offs)
        g, u = gu.split(self.i, dim=-1)
        y = torch._grouped_mm(F.silu(g) * u, self.down.transpose(-2, -1), offs=offs)
        y = y * w.reshape(-1)[order].unsqueeze(-1).to(y.dtype)
        return torch.zeros_like(x).index_add_(0, token, y)


def time_layer(name, module, t, h, i, e, k, training=True, reps=10, batched=False):
    x = torch.randn(t, h, device=DEV, dtype=DT)
    d_out = torch.randn(t, h, device=DEV, dtype=DT) * 1e-3

    def call(inp):
        # transformers' blocks take [batch, sequence, hidden] and may return (hidden, router logits)
        out = module(inp.view(1, t, h)) if batched else module(inp)
        out = out[0] if isinstance(out, tuple) else out
        return out.view(t, h)

    with torch.no_grad():
        fwd = median_ms(lambda: call(x), 3, reps)
    record = {"what": name, "tokens": t, "forward_ms": fwd, "forward_tflops": flops(t, h, i, e, k) / fwd / 1e9}
    if training:
        xg = x.clone().requires_grad_(True)

        def step():
            call(xg).backward(d_out)

        both = median_ms(step, 3, reps)
        record.update({"training_ms": both, "training_tflops": 3 * flops(t, h, i, e, k) / both / 1e9})
    return emit(record)


def hf_block(h, i, e, k, implementation):
    from transformers import MixtralConfig
    from transformers.models.mixtral import modeling_mixtral
    config = MixtralConfig(hidden_size=h, intermediate_size=i, num_local_experts=e, num_experts_per_tok=k)
    if implementation is not None:
        config._experts_implementation = implementation
    block = modeling_mixtral.MixtralSparseMoeBlock(config).to(DEV, DT)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=1 / math.sqrt(h))
    return block, getattr(config, "_experts_implementation", None)


def attention(rows):
    """PyTorch's scaled_dot_product_attention (flash attention on the tensor cores) at moe4j's benchmark shapes."""
    for t2, nh, nkv, hd in ((4096, 32, 8, 128), (4096, 16, 4, 64)):
        try:
            q = torch.randn(1, nh, t2, hd, device=DEV, dtype=DT, requires_grad=True)
            k = torch.randn(1, nkv, t2, hd, device=DEV, dtype=DT, requires_grad=True)
            v = torch.randn(1, nkv, t2, hd, device=DEV, dtype=DT, requires_grad=True)
            g = torch.randn(1, nh, t2, hd, device=DEV, dtype=DT)
            sdpa = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            af = 4.0 * t2 * t2 / 2 * hd * nh
            with torch.no_grad():
                fwd = median_ms(sdpa, 3, 20)
            both = median_ms(lambda: sdpa().backward(g), 2, 10)
            r = {"what": f"torch sdpa attention {t2} tokens, {nh}/{nkv} heads, d {hd}, causal", "forward_ms": fwd,
                 "forward_tflops": af / fwd / 1e9, "training_ms": both, "training_tflops": 3.5 * af / both / 1e9}
            emit(r)
            rows.append(r)
        except Exception as ex:
            emit({"what": "torch sdpa attention", "error": repr(ex)[:300]})


def main():
    if "--attention-only" in sys.argv:
        rows = []
        attention(rows)
        for r in rows:
            print(f"{r['what']:<62} {r['forward_ms']:9.3f} {r['forward_tflops']:8.1f} "
                  f"{r['training_ms']:11.3f} {r['training_tflops']:8.1f}")
        return
    import transformers
    emit({"what": "versions", "torch": torch.__version__, "transformers": transformers.__version__,
          "gpu": torch.cuda.get_device_name(0)})
    lim = limits()
    t, h, i, e, k = (1024, 512, 1024, 8, 2) if QUICK else (16384, 4096, 14336, 8, 2)
    rows = []
    for impl in ("eager", None):
        try:
            block, used = hf_block(h, i, e, k, impl)
            label = "transformers MixtralSparseMoeBlock (" + ("default: " if impl is None else "") + str(used) + ")"
            rows.append(time_layer(label, block, t, h, i, e, k, batched=True))
            del block
        except Exception as ex:  # report and go on: one baseline failing must not hide the others
            emit({"what": "transformers MixtralSparseMoeBlock " + str(impl), "error": repr(ex)[:300]})
        torch.cuda.empty_cache()
    try:
        rows.append(time_layer("torch._grouped_mm layer", GroupedMoe(h, i, e, k), t, h, i, e, k))
    except Exception as ex:
        emit({"what": "torch._grouped_mm layer", "error": repr(ex)[:300]})
    torch.cuda.empty_cache()
    try:
        dh, di, de, dk = 2048, 768, 128, 8
        r = time_layer("torch._grouped_mm decode (Qwen3-30B-A3B layer, 1 token)", GroupedMoe(dh, di, de, dk),
                       1, dh, di, de, dk, training=False, reps=50)
        r["gbs"] = 2.0 * (dk * 3 * dh * di + de * dh + 2 * dh) / r["forward_ms"] / 1e6
        emit(r)
        rows.append(r)
    except Exception as ex:
        emit({"what": "torch._grouped_mm decode", "error": repr(ex)[:300]})
    attention(rows)
    print(f"\nPyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}: bf16 matmul "
          f"{lim['matmul_tflops']:.1f} TFLOP/s, copy {lim['copy_gbs']:.0f} GB/s")
    print(f"{'baseline':<62} {'fwd ms':>9} {'TFLOP/s':>8} {'fwd+bwd ms':>11} {'TFLOP/s':>8}")
    for r in rows:
        print(f"{r['what']:<62} {r['forward_ms']:9.3f} {r['forward_tflops']:8.1f} "
              f"{r.get('training_ms', float('nan')):11.3f} {r.get('training_tflops', float('nan')):8.1f}")


if __name__ == "__main__":
    main()
