"""References for checkpoints that Hugging Face ships already quantised, made by transformers on the device machine.

Three tiny cases, written in the layout of the real checkpoints, each with transformers' float32 outputs in the layout
of the other fixtures (model/src/test/resources/fixtures/*: reference.safetensors with input_ids, logits,
hidden_states.i, router_logits.i, aux_loss, loss; reference.json with the greedy continuation):

- gpt-oss-mxfp4: a GptOssForCausalLM (the gpt-oss fixture's geometry, experts 64 wide so that every expert matrix's
  rows are whole 32-element blocks) whose experts are stored as gpt-oss-20b stores them: `*_blocks` (uint8, two e2m1
  values a byte, low nibble first) and `*_scales` (uint8, e8m0 exponents biased by 127), config
  `quantization_config.quant_method = mxfp4`. The reference is transformers loading that folder with
  `Mxfp4Config(dequantize=True)`: transformers' own unpacking, then a float32 forward.
- deepseek-v3-fp8 and qwen3-moe-fp8: the deepseek-v3 and qwen3-moe fixtures with every linear layer but the routers
  and the LM head stored as DeepSeek-V3 and Qwen3-FP8 store them: F8_E4M3 weights and a `weight_scale_inv` per
  block of `weight_block_size` (32x32, real checkpoints use 128x128; scales in F32 for the first, BF16 for the
  second; both leave partial blocks at the edges, and matrices 48 wide that moe4j cannot hold in 32-element blocks). The reference is transformers' float32 model with each weight set to fp8 x scale_inv (torch's own e4m3
  decoding), since transformers' FP8 kernels also round the activations.

Usage (on the device machine, from the checkout's root): python3 scripts/device/make_quantised_fixtures.py OUT_DIR
"""
import json
import pathlib
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
FIXTURES = pathlib.Path("model/src/test/resources/fixtures")
E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def mxfp4_quantise(weight):
    """[rows, cols] float -> (blocks [rows, cols/32, 16] uint8, scales [rows, cols/32] uint8), OCP MX rounding to nearest."""
    rows, cols = weight.shape
    groups = weight.float().reshape(rows, cols // 32, 32)
    amax = groups.abs().amax(dim=-1)
    # The shared exponent puts the group's largest magnitude at or under e2m1's largest value, 6 = 1.5 * 2^2.
    exponent = torch.where(amax > 0, torch.ceil(torch.log2(amax / 6.0)), torch.full_like(amax, -127.0)).clamp(-127, 127)
    scaled = groups / torch.pow(2.0, exponent).unsqueeze(-1)
    codes = (scaled.unsqueeze(-1) - E2M1).abs().argmin(dim=-1).to(torch.uint8)
    codes = codes.reshape(rows, cols // 32, 16, 2)
    blocks = codes[..., 0] | (codes[..., 1] << 4)
    return blocks.contiguous(), (exponent + 127).to(torch.uint8).contiguous()


def fp8_quantise(weight, block, scale_dtype):
    """[rows, cols] -> (F8_E4M3 weight, scale_inv [ceil(rows/b), ceil(cols/b)]) with w ~ fp8 * scale_inv per block."""
    rows, cols = weight.shape
    br, bc = -(-rows // block), -(-cols // block)
    padded = torch.zeros(br * block, bc * block)
    padded[:rows, :cols] = weight.float()
    tiles = padded.reshape(br, block, bc, block)
    amax = tiles.abs().amax(dim=(1, 3)).clamp(min=1e-12)
    scale = (amax / 448.0).to(scale_dtype).float()
    quantised = (tiles / scale[:, None, :, None]).clamp(-448, 448).to(torch.float8_e4m3fn)
    quantised = quantised.reshape(br * block, bc * block)[:rows, :cols].contiguous()
    return quantised, scale.to(scale_dtype)


def fp8_dequantise(quantised, scale_inv, block):
    rows, cols = quantised.shape
    expanded = scale_inv.float().repeat_interleave(block, 0).repeat_interleave(block, 1)[:rows, :cols]
    return quantised.float() * expanded


def references(model, case, out_dir, input_ids):
    model = model.cuda().eval()
    ids = input_ids.cuda()
    tensors = {"input_ids": input_ids}
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_router_logits=True)
        tensors["logits"] = out.logits.float().cpu()
        for i, h in enumerate(out.hidden_states):
            tensors[f"hidden_states.{i}"] = h.float().cpu().contiguous()
        router = getattr(out, "router_logits", None)
        if router is not None:
            for i, r in enumerate(router):
                tensors[f"router_logits.{i}"] = r.float().reshape(-1, r.shape[-1]).cpu().contiguous()
        if getattr(out, "aux_loss", None) is not None:
            tensors["aux_loss"] = out.aux_loss.float().reshape(1).cpu()
        tensors["loss"] = model(ids, labels=ids, output_router_logits=True).loss.float().reshape(1).cpu()
        prompt = ids[:1, :5]
        gen = model.generate(prompt, max_new_tokens=12, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=0)
        gaps = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in gen.scores]
    save_file(tensors, str(out_dir / "reference.safetensors"))
    meta = {
        "case": case,
        "architecture": model.config.architectures[0],
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "inputs": "input_ids [2,11]",
        "logits": "float32 [2,11,vocab] from a float32 forward on the dequantised weights",
        "hidden_states.i": "output of embedding (0) and of each decoder layer; last one is after the final norm",
        "router_logits.i": "per MoE layer, [tokens, experts], tokens flattened batch-major",
        "loss": "model(input_ids, labels=input_ids, output_router_logits=True).loss",
        "greedy": {"prompt": prompt[0].tolist(), "output": gen.sequences[0].tolist(), "min_top2_logit_gap": min(gaps)},
    }
    (out_dir / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(case, "logits max", float(tensors["logits"].abs().max()), "greedy", gen.sequences[0].tolist(),
          "min gap", min(gaps), "keys", sorted(k for k in tensors if not k.startswith("hidden")))


def gpt_oss_mxfp4(root, input_ids):
    out_dir = root / "gpt-oss-mxfp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((FIXTURES / "gpt-oss" / "config.json").read_text())
    config["intermediate_size"] = 64
    torch.manual_seed(14)
    state = {}
    for name, tensor in load_file(str(FIXTURES / "gpt-oss" / "model.safetensors")).items():
        if "experts.gate_up_proj" in name and not name.endswith("bias"):
            tensor = torch.randn(8, 64, 128) * 0.08
        elif "experts.down_proj" in name and not name.endswith("bias"):
            tensor = torch.randn(8, 64, 64) * 0.08
        elif "experts.gate_up_proj_bias" in name:
            tensor = torch.randn(8, 128) * 0.08
        state[name] = tensor
    stored = {}
    for name, tensor in state.items():
        if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
            # transformers holds [E, in, out]; the checkpoint stores [E, out, in/32, 16] blocks, as gpt-oss-20b does.
            blocks, scales = zip(*(mxfp4_quantise(e.t()) for e in tensor))
            stored[name + "_blocks"] = torch.stack(blocks)
            stored[name + "_scales"] = torch.stack(scales)
        else:
            stored[name] = tensor.contiguous()
    config["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(stored, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    from transformers import Mxfp4Config
    model = AutoModelForCausalLM.from_pretrained(out_dir, quantization_config=Mxfp4Config(dequantize=True),
                                                 dtype=torch.float32)
    model = model.float()
    # The unpacked experts must be exactly the e2m1 grid times powers of two that the blocks hold.
    unpacked = dict(model.named_parameters())
    name = "model.layers.0.mlp.experts.gate_up_proj"
    blocks, scales = stored[name + "_blocks"][0], stored[name + "_scales"][0]
    codes = torch.stack([blocks & 15, blocks >> 4], dim=-1).reshape(blocks.shape[0], -1).long()
    mine = E2M1[codes] * torch.pow(2.0, scales.float() - 127).repeat_interleave(32, dim=1)
    print("gpt-oss-mxfp4: transformers' unpacking vs the e2m1 grid, max |d| =",
          float((unpacked[name][0].detach().float().cpu().t() - mine).abs().max()),
          "param dtype", unpacked[name].dtype, "shape", tuple(unpacked[name].shape))
    config.pop("quantization_config")
    references(model, "gpt-oss-mxfp4", out_dir, input_ids)


def fine_grained_fp8(root, source, case, block, scale_dtype, input_ids):
    out_dir = root / case
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((FIXTURES / source / "config.json").read_text())
    state = load_file(str(FIXTURES / source / "model.safetensors"))
    stored, dequantised = {}, {}
    for name, tensor in state.items():
        keep = (tensor.dim() != 2 or "embed_tokens" in name or name.startswith("lm_head")
                or name.endswith("mlp.gate.weight") or "layernorm" in name)
        if keep:
            stored[name] = tensor
            dequantised[name] = tensor
            continue
        quantised, scale_inv = fp8_quantise(tensor, block, scale_dtype)
        stored[name] = quantised
        stored[name[:-len("weight")] + "weight_scale_inv"] = scale_inv
        dequantised[name] = fp8_dequantise(quantised, scale_inv, block)
    config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [block, block]}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(stored, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    # transformers' own loading of the dequantised weights, in the checkpoint's layout (it fuses the experts itself)
    plain = dict(config)
    plain.pop("quantization_config")
    plain_dir = root / (case + "-dequantised")
    plain_dir.mkdir(parents=True, exist_ok=True)
    (plain_dir / "config.json").write_text(json.dumps(plain, indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in dequantised.items()}, str(plain_dir / "model.safetensors"),
              metadata={"format": "pt"})
    model = AutoModelForCausalLM.from_pretrained(plain_dir, dtype=torch.float32)
    shutil.rmtree(plain_dir)
    references(model, case, out_dir, input_ids)
    try:
        from transformers import FineGrainedFP8Config
        loaded = AutoModelForCausalLM.from_pretrained(out_dir, quantization_config=FineGrainedFP8Config(dequantize=True),
                                                      dtype=torch.float32).cuda().eval()
        with torch.no_grad():
            logits = loaded(input_ids.cuda()).logits.float().cpu()
        ref = load_file(str(out_dir / "reference.safetensors"))["logits"]
        print(case, "transformers' own FP8 loading (dequantize=True) vs the reference: relative",
              float((logits - ref).abs().max() / ref.abs().max()))
    except Exception as e:  # informative only: the reference above does not depend on it
        print(case, "transformers' own FP8 loading could not run:", type(e).__name__, str(e)[:300])


def main():
    root = pathlib.Path(sys.argv[1])
    torch.manual_seed(7)
    input_ids = torch.randint(0, 512, (2, 11))
    fine_grained_fp8(root, "deepseek-v3", "deepseek-v3-fp8", 32, torch.float32, input_ids)
    fine_grained_fp8(root, "qwen3-moe", "qwen3-moe-fp8", 32, torch.bfloat16, input_ids)
    gpt_oss_mxfp4(root, input_ids)


if __name__ == "__main__":
    main()
