"""Checks that transformers loads checkpoints trained and saved by `moe4j train` and computes the logits moe4j
computes for them.

Each folder given holds what `moe4j train` saved (config.json, model.safetensors, tokenizer.json) plus
moe4j_logits.safetensors written by scripts/TrainedLogits.java: input_ids [2, T] and moe4j's float32 logits
[2, T, vocab]. For each folder this loads the model with AutoModelForCausalLM (float32, CPU and, when there is one,
GPU), runs the same input_ids and prints max|diff| / max|ref| of the logits (must be <= 1e-4), whether the greedy
next tokens agree everywhere, and whether the tokenizer.json gives the same ids through `tokenizers`.

Usage: python3 scripts/check_trained_checkpoints.py DIR [DIR ...]
"""
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM

TOLERANCE = 1e-4
failures = 0
for folder in sys.argv[1:]:
    ref = load_file(f"{folder}/moe4j_logits.safetensors")
    ids, expected = ref["input_ids"], ref["logits"]
    config = AutoConfig.from_pretrained(folder)
    tokenizer = Tokenizer.from_file(f"{folder}/tokenizer.json")
    text = tokenizer.decode(ids[0].tolist())
    same_ids = tokenizer.encode(text).ids[: ids.shape[1]] == ids[0].tolist()
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        with torch.no_grad():
            logits = model(ids.to(device)).logits.float().cpu()
        error = ((logits - expected).abs().max() / expected.abs().max()).item()
        greedy = bool((logits.argmax(-1) == expected.argmax(-1)).all())
        ok = error <= TOLERANCE and greedy
        failures += 0 if ok else 1
        print(f"{folder}: {config.model_type} ({type(model).__name__}) on {device}: logits {tuple(logits.shape)}, "
              f"max|diff|/max|ref| = {error:.2e}, greedy tokens equal: {greedy}, tokenizer round trip: {same_ids} "
              f"-> {'OK' if ok else 'MISMATCH'}")
sys.exit(1 if failures else 0)
