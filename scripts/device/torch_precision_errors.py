"""How far transformers' own BF16 runs land from its float32 fixtures, on the GPU: the yardstick for moe4j's BF16 path.

For every fixture model (model/src/test/resources/fixtures/*) it runs transformers on the GPU three ways: the float32
model (TF32 off), the model cast to bfloat16 (`model.to(torch.bfloat16)`, the way a BF16 checkpoint is served), and the
float32 model under `torch.autocast(dtype=torch.bfloat16)` (mixed-precision training), and measures the logits'
relative error (max|d| / max|ref|, moe4j's measure) from the fixture's float32 logits. For the train-step fixtures
(model/src/test/resources/fixtures/{mixtral,qwen2-moe}) it also back-propagates the fixture's loss (cross-entropy plus
router_aux_loss_coef x the balance loss) and measures every parameter's gradient from the fixture's `grad.*`.

Usage (on the device machine, from the checkout's root):
    python3 scripts/device/torch_precision_errors.py OUT.json
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def relative_error(reference, value):
    reference = reference.double().cpu()
    value = value.double().cpu()
    return float((value - reference).abs().max() / reference.abs().max())


def load(folder, dtype):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).cuda()
    return model


def logits_errors(folder):
    ref = load_file(str(folder / "reference.safetensors"))
    ids = ref["input_ids"].cuda()
    out = {}
    with torch.no_grad():
        model = load(folder, torch.float32).eval()
        out["f32"] = relative_error(ref["logits"], model(ids).logits.float())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out["autocast_bf16"] = relative_error(ref["logits"], model(ids).logits.float())
        model = model.to(torch.bfloat16)
        out["bf16"] = relative_error(ref["logits"], model(ids).logits.float())
    return out


def gradient_errors(folder):
    ref = load_file(str(folder / "reference.safetensors"))
    ids = ref["input_ids"].cuda()
    result = {}
    for mode in ("f32", "autocast_bf16", "bf16"):
        model = load(folder, torch.float32)
        if mode == "bf16":
            model = model.to(torch.bfloat16)
        model.train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast_bf16"):
            loss = model(ids, labels=ids, output_router_logits=True).loss
        loss.backward()
        errors = {}
        for name, p in model.named_parameters():
            key = "grad." + name
            if key in ref and p.grad is not None:
                errors[name] = relative_error(ref[key], p.grad.float())
        missing = [k[5:] for k in ref if k.startswith("grad.") and k[5:] not in errors]
        result[mode] = {
            "loss": float(loss), "reference_loss": float(ref["loss"].reshape(-1)[0]),
            "worst": max(errors.values()), "over_1e-2": sorted(n for n, e in errors.items() if e > 1e-2),
            "gradients": errors, "missing": missing,
        }
    return result


def main():
    out_path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "torch-precision-errors.json")
    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "logits": {}, "train_step": {}}
    import transformers
    report["transformers"] = transformers.__version__
    for folder in sorted(pathlib.Path("model/src/test/resources/fixtures").iterdir()):
        if (folder / "reference.safetensors").exists():
            report["logits"][folder.name] = logits_errors(folder)
            print("logits", folder.name, report["logits"][folder.name], flush=True)
    for name in ("mixtral", "qwen2-moe"):
        folder = pathlib.Path("model/src/test/resources/fixtures") / name
        report["train_step"][name] = gradient_errors(folder)
        for mode, r in report["train_step"][name].items():
            print("train step", name, mode, "loss", r["loss"], "ref", r["reference_loss"], "worst gradient",
                  r["worst"], "over 1e-2:", len(r["over_1e-2"]), "of", len(r["gradients"]), "missing", r["missing"],
                  flush=True)
    out_path.write_text(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
