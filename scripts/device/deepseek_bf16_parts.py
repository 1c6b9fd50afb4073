"""Which parts of DeepSeek-V3 need F32 for its BF16 logits to come within 1e-2 of float32 (issue 18's precision item).

On the device machine, from the checkout's root: runs transformers on the deepseek-v3 fixture
(model/src/test/resources/fixtures/deepseek-v3) in float32 (TF32 off) as the reference, then cast to bfloat16 with
chosen linear layers kept in float32 (their inputs widened, their outputs rounded back to bfloat16 unless they are the
LM head, whose logits stay float32, as moe4j's are), and prints the logits' relative error (max|d| / max|ref|) per
choice. Usage: python3 scripts/device/deepseek_bf16_parts.py

Measured on an H100, 2026-12-07 (transformers 5.17): every choice lands at 1.52e-2 to 1.56e-2, every linear layer
in F32 included (1.517e-2), against 1.558e-2 with none. The error comes from the activations rounded to BF16 between
operations (the residual stream, norms, attention), not from the weights of the LM head, the latent projections or
the router: keeping those in F32 cannot bring BF16 logits within 1e-2 on this fixture.
"""
import pathlib

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
folder = pathlib.Path("model/src/test/resources/fixtures/deepseek-v3")
ids = load_file(str(folder / "reference.safetensors"))["input_ids"].cuda()


def logits(model):
    with torch.no_grad():
        return model(ids).logits.double().cpu()


reference = logits(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).cuda())

PARTS = {
    "lm_head": lambda n: n == "lm_head",
    "mla_a": lambda n: n.endswith(("q_a_proj", "kv_a_proj_with_mqa")),
    "mla_b": lambda n: n.endswith(("q_b_proj", "kv_b_proj")),
    "o_proj": lambda n: n.endswith("o_proj"),
    "router": lambda n: n.endswith("mlp.gate"),
    "experts": lambda n: ".experts" in n or "shared_experts" in n,
    "dense_mlp": lambda n: ".mlp." in n and "experts" not in n and not n.endswith("mlp.gate"),
}


def run(keep):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).cuda()
    kept = []
    for name, module in model.named_modules():
        if any(PARTS[p](name) for p in keep) and isinstance(module, torch.nn.Linear):
            kept.append(name)
    model.to(torch.bfloat16)
    for name, module in model.named_modules():
        if name in kept:
            module.float()
            last = name == "lm_head"
            module.register_forward_pre_hook(lambda m, args: tuple(a.float() for a in args))
            if not last:
                module.register_forward_hook(lambda m, args, out: out.to(torch.bfloat16))
    value = logits(model)
    return float((value - reference).abs().max() / reference.abs().max()), len(kept)


for keep in [[], ["lm_head"], ["mla_a"], ["mla_b"], ["o_proj"], ["router"], ["experts"], ["dense_mlp"],
             ["lm_head", "mla_a"], ["lm_head", "mla_a", "mla_b"], ["lm_head", "mla_a", "mla_b", "router"],
             ["lm_head", "mla_a", "mla_b", "o_proj", "router"], list(PARTS)]:
    error, count = run(keep)
    print(f"{'+'.join(keep) or 'all bf16':45s} {count:3d} linears in f32: {error:.3e}")
