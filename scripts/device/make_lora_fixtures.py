#!/usr/bin/env python3
"""LoRA parity fixtures for moe4j, made with transformers 5.17 and PEFT (0.17+, target_parameters) on the GPU machine.

For each case (a tiny fixture model of model/src/test/resources/fixtures and the LoRA targets its adapters cover)
this writes OUT/<case>/:
  peft/                  an adapter made by PEFT (save_pretrained): r, lora_alpha = 2r, every lora_A and lora_B
                         filled with N(0, 0.1^2) from a seeded generator (PEFT's own init leaves lora_B zero, which
                         would test nothing)
  reference.safetensors  input_ids [2, 6] (the fixed ids below, the same in moe4j's tests), and
                           logits                float32 [2, 6, vocab]: base + PEFT's adapter, float32 on the CPU
                           moe4j_adapter.logits  the same model with the adapter moe4j wrote
                                                 (fixtures/lora/<case>/moe4j), loaded by PeftModel.from_pretrained
                         and for the training case (qwen3-moe) one LoRA step from PEFT's adapter:
                           train.loss, train.aux_loss   model(input_ids, labels=input_ids, output_router_logits=True)
                           grad.<key>, after_step.<key> every adapter matrix's gradient and its value after one
                                                 torch.optim.AdamW step (hyper-parameters in reference.json), under
                                                 the adapter file's key names
  reference.json         versions, settings, the PEFT key names and shapes, checks made here (PEFT's delta of each
                         fused expert parameter against the layout moe4j reads; the key sets of the adapters against
                         what PEFT expects; the smallest gap between a token's k-th and (k+1)-th router logit, so a
                         near tie that rounding could flip is seen)

Run from the repository root:  python3 scripts/device/make_lora_fixtures.py OUT
"""
import json
import math
import os
import sys
import traceback
import warnings

import torch
from safetensors.torch import load_file, save_file

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

FIXTURES = "model/src/test/resources/fixtures"
INPUT_IDS = [[17, 301, 45, 488, 2, 250], [99, 7, 412, 63, 330, 128]]
# One LoRA step (qwen3-moe): HF Trainer's AdamW defaults, lr 1e-3.
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 0.01
STD = 0.1

# case -> (rank, target_modules, target_parameters): what moe4j's --lora-targets give for that family.
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
EXPERTS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
CASES = {
    "qwen3-moe": (4, ATTENTION, EXPERTS + ["mlp.gate.weight"]),
    "mixtral": (2, ATTENTION, EXPERTS + ["mlp.gate.weight"]),
    "qwen2-moe": (2, ["q_proj", "v_proj", "mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj",
                      "mlp.shared_expert.down_proj"], EXPERTS + ["mlp.gate.weight"]),
    "olmoe": (2, ["o_proj"], EXPERTS),
    "deepseek-v3": (2, ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj",
                        "mlp.shared_experts.gate_proj", "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"],
                    EXPERTS + ["mlp.gate.weight"]),
    "gpt-oss": (2, ATTENTION, EXPERTS + ["mlp.router.weight"]),
}
TRAINING_CASE = "qwen3-moe"


def base_model(case):
    model = AutoModelForCausalLM.from_pretrained(f"{FIXTURES}/{case}", dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


def key(name):
    """A parameter's name in the model as the adapter file names it (without the adapter name)."""
    return name.replace(".default", "")


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float().contiguous()


def router_gap(model, ids, k):
    """The smallest gap between a token's k-th and (k+1)-th router logit over the MoE layers (None without them)."""
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_router_logits=True)
        layers = [r for r in (getattr(out, "router_logits", None) or ()) if r is not None]
        if not layers:
            return None
        gaps = []
        for r in layers:
            top = r.float().reshape(-1, r.shape[-1]).topk(k + 1, dim=-1).values
            gaps.append((top[:, k - 1] - top[:, k]).min().item())
        return min(gaps)
    except Exception as e:  # a family without router logits in its output
        return f"unavailable: {type(e).__name__}: {e}"


def layout_check(model):
    """Max |PEFT's delta - moe4j's| over the fused expert parameters (ParamWrapper, 3-D), moe4j reading lora_A as the
    input side (PEFT 0.19.1 and later): expert e's [out, in] update is B[:, e::E] @ A[e*r:(e+1)*r], which the
    parameter holds as is ([E, out, in]) or transposed (is_transposed, gpt-oss's [E, in, out])."""
    worst, count, transposed = 0.0, 0, []
    for name, m in model.named_modules():
        if type(m).__name__ != "ParamWrapper" or getattr(m, "num_experts", 1) == 1:
            continue
        a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
        e = m.num_experts
        r = a.shape[0] // e
        flipped = bool(getattr(m.get_base_layer(), "is_transposed", False))
        with torch.no_grad():
            theirs = m.get_delta_weight("default").float()
            ours = torch.stack([b[:, i::e] @ a[i * r:(i + 1) * r] for i in range(e)]) * m.scaling["default"]
            if flipped:
                ours = ours.transpose(1, 2)
        if theirs.shape != ours.shape:
            return {"fused_parameters_checked": count, "mismatch": f"{name}: PEFT {list(theirs.shape)}, moe4j's "
                                                                   f"reading {list(ours.shape)}"}
        worst = max(worst, (theirs - ours).abs().max().item())
        count += 1
        transposed.append(flipped)
    return {"fused_parameters_checked": count, "max_abs_difference": worst, "is_transposed": sorted(set(transposed))}


def peft_keys(model):
    return sorted(key(n) for n, _ in model.named_parameters() if "lora_" in n)


def make_case(case, out):
    rank, modules, parameters = CASES[case]
    folder = f"{out}/{case}"
    os.makedirs(folder, exist_ok=True)
    ids = torch.tensor(INPUT_IDS)
    info = {"case": case, "transformers": transformers.__version__, "peft": peft.__version__,
            "torch": torch.__version__, "input_ids": INPUT_IDS, "r": rank, "lora_alpha": 2 * rank,
            "target_modules": modules, "target_parameters": parameters, "init": f"every lora matrix N(0, {STD}^2)"}
    tensors = {"input_ids": ids.clone()}

    model = base_model(case)
    k = model.config.num_experts_per_tok
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=modules, target_parameters=parameters,
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    lora = [(n, p) for n, p in sorted(model.named_parameters()) if "lora_" in n]
    # A seed whose adapter leaves no near tie in the routing (rounding must not be able to flip an expert).
    for seed in range(1000, 1020):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, p in lora:
                p.copy_(torch.randn(p.shape, generator=g) * STD)
        gap = router_gap(model, ids, k)
        if not isinstance(gap, float) or gap >= 2e-3:
            break
    info["seed"], info["router_gap"] = seed, gap
    info["layout"] = layout_check(model)
    tensors["logits"] = logits(model, ids)
    model.save_pretrained(f"{folder}/peft")
    saved = load_file(f"{folder}/peft/adapter_model.safetensors")
    info["keys"] = {n: list(t.shape) for n, t in sorted(saved.items())}
    info["saved_keys_equal_model_keys"] = sorted(saved) == peft_keys(model)
    print(f"{case}: peft {peft.__version__}, seed {seed}, router gap {gap}, layout {info['layout']}, "
          f"{len(saved)} tensors, keys match: {info['saved_keys_equal_model_keys']}", flush=True)
    for n, t in sorted(saved.items())[:12]:
        print(f"  {n} {list(t.shape)}", flush=True)

    # PEFT reading its own adapter back gives the same logits.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = PeftModel.from_pretrained(base_model(case), f"{folder}/peft").eval()
    info["peft_reload_rel_diff"] = rel(logits(again, ids), tensors["logits"])
    info["peft_reload_warnings"] = [str(w.message)[:300] for w in caught if "adapter" in str(w.message).lower()]

    # The adapter moe4j wrote, loaded by PEFT.
    ours = f"{FIXTURES}/lora/{case}/moe4j"
    if os.path.isdir(ours):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            theirs = PeftModel.from_pretrained(base_model(case), ours).eval()
        file_keys = sorted(load_file(f"{ours}/adapter_model.safetensors"))
        info["moe4j_adapter"] = {
            "keys_equal_what_peft_made": file_keys == peft_keys(theirs),
            "keys_peft_expects_but_file_lacks": sorted(set(peft_keys(theirs)) - set(file_keys))[:10],
            "keys_file_has_but_peft_lacks": sorted(set(file_keys) - set(peft_keys(theirs)))[:10],
            "warnings": [str(w.message)[:300] for w in caught if "adapter" in str(w.message).lower()
                         or "missing" in str(w.message).lower() or "unexpected" in str(w.message).lower()],
            "router_gap": router_gap(theirs, ids, k),
        }
        tensors["moe4j_adapter.logits"] = logits(theirs, ids)
        moe4j = load_file(f"{ours}/moe4j_logits.safetensors")
        same_ids = moe4j["input_ids"].tolist() == INPUT_IDS
        info["moe4j_adapter"]["rel_diff_to_moe4j_logits"] = rel(tensors["moe4j_adapter.logits"], moe4j["logits"])
        info["moe4j_adapter"]["same_input_ids"] = same_ids
        print(f"{case}: moe4j's adapter in PEFT: {info['moe4j_adapter']}", flush=True)
    else:
        print(f"{case}: no {ours}", flush=True)

    if case == TRAINING_CASE:
        train(case, folder, ids, tensors, info)
    save_file(tensors, f"{folder}/reference.safetensors")
    with open(f"{folder}/reference.json", "w") as f:
        json.dump(info, f, indent=1)


def train(case, folder, ids, tensors, info):
    model = PeftModel.from_pretrained(base_model(case), f"{folder}/peft", is_trainable=True)
    model.train()
    out = model(input_ids=ids, labels=ids, output_router_logits=True)
    out.loss.backward()
    trained = [(key(n), p) for n, p in model.named_parameters() if p.requires_grad]
    for n, p in trained:
        tensors["grad." + n] = p.grad.detach().float().clone().contiguous()
    opt = torch.optim.AdamW([p for _, p in trained], lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    opt.step()
    for n, p in trained:
        tensors["after_step." + n] = p.detach().float().clone().contiguous()
    tensors["train.loss"] = out.loss.detach().float().reshape(1)
    aux = getattr(out, "aux_loss", None)
    if aux is not None:
        tensors["train.aux_loss"] = aux.detach().float().reshape(1)
    info["train"] = {"loss": "model(input_ids, labels=input_ids, output_router_logits=True).loss (mean shifted CE + "
                             "router_aux_loss_coef * load-balancing loss)",
                     "optimizer": f"torch.optim.AdamW(lr={LR}, betas={BETAS}, eps={EPS}, weight_decay={WEIGHT_DECAY})"
                                  " over the adapter matrices only, one step",
                     "parameters": len(trained), "loss_value": out.loss.item(),
                     "aux_loss_value": None if aux is None else aux.item()}
    print(f"{case}: one LoRA step, loss {out.loss.item():.6f}, {len(trained)} adapter matrices", flush=True)


def rel(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


if __name__ == "__main__":
    out = sys.argv[1]
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    failed = []
    for case in CASES:
        try:
            make_case(case, out)
        except Exception:
            failed.append(case)
            print(f"{case}: FAILED", flush=True)
            traceback.print_exc()
    print("failed: " + (", ".join(failed) if failed else "none"), flush=True)
    sys.exit(1 if failed else 0)
