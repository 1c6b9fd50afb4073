#!/usr/bin/env python3
"""Writes io/src/test/resources/tokenizers/variants/: tokenizer.json variants of the two fixture tokenizers that
exercise what the fixtures do not (the split patterns of Qwen2, DeepSeek-V3 and gpt-oss, NFC/NFKC, Lowercase,
Strip, Replace, Digits, Punctuation, Whitespace, Metaspace with prepend_scheme "first", added tokens with
lstrip/rstrip/single_word/normalized), and cases.json: for each variant and each text, what the Hugging Face
`tokenizers` library returns (ids with and without special tokens, token strings, decoded text).

Needs the `tokenizers` package (the device machine has it). From the repository root:
  python3 scripts/make_tokenizer_fixtures.py
"""
import copy
import json
import os
import random

import tokenizers

SRC = "io/src/test/resources/tokenizers"
OUT = os.path.join(SRC, "variants")

QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
O200K = (r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
         r"""|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
         r"""|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
DEEPSEEK_V3 = [r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
               "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
               "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"]


def split(regex, behavior="Isolated", invert=False):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": behavior, "invert": invert}


def byte_level(use_regex=False, add_prefix_space=False):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": False, "use_regex": use_regex}


def added(id_, content, special=False, **flags):
    entry = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": not special, "special": special}
    entry.update(flags)
    return entry


def variants(bl, ms):
    v = {}
    t = copy.deepcopy(bl)
    t["normalizer"] = {"type": "NFC"}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level()]}
    v["qwen2_style"] = t

    t = copy.deepcopy(bl)
    t["normalizer"] = {"type": "Sequence", "normalizers": []}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split(r) for r in DEEPSEEK_V3] + [byte_level()]}
    v["deepseek_v3_style"] = t

    t = copy.deepcopy(bl)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split(O200K), byte_level()]}
    v["o200k_style"] = t

    t = copy.deepcopy(bl)  # GPT-2 with a leading space, as RoBERTa-like files do
    t["pre_tokenizer"] = byte_level(use_regex=True, add_prefix_space=True)
    v["bytelevel_prefix_space"] = t

    t = copy.deepcopy(bl)
    t["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
        {"type": "Replace", "pattern": {"String": "``"}, "content": "\""}]}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "WhitespaceSplit"}, byte_level()]}
    t["added_tokens"] = t["added_tokens"] + [
        added(512, "<mask>", single_word=True, lstrip=True, rstrip=True),
        added(513, "hello world"),
        added(514, "[SPECIAL]", special=True, rstrip=True),
        added(515, "and"),
    ]
    v["normalizers_and_added"] = t

    t = copy.deepcopy(bl)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Whitespace"}, split(r"[aeiou]", "MergedWithPrevious"), split("-", "MergedWithNext"),
        split(r"\d+", "Contiguous"), split(r"x", "Removed", invert=True), byte_level()]}
    v["split_behaviours"] = t

    t = copy.deepcopy(ms)  # Llama-3-era metaspace: pre-tokenizer instead of normalizer, prepend only at the start
    t["normalizer"] = None
    t["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    t["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    v["metaspace_first"] = t

    t = copy.deepcopy(ms)
    t["normalizer"] = None
    t["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
    t["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
    t["model"]["byte_fallback"] = False  # unknown characters become <unk>, fused
    t["post_processor"]["single"] = t["post_processor"]["single"] + [{"SpecialToken": {"id": "</s>", "type_id": 0}}]
    t["post_processor"]["special_tokens"]["</s>"] = {"id": "</s>", "ids": [2], "tokens": ["</s>"]}
    v["metaspace_unk_bos_eos"] = t
    return v


FIXED = [
    "Hello world", "  leading and trailing  ", "DON'T shout, It'S fine; we'LL see.", "naïve café — ÀÉÎ ß ﬁ ①②",
    "混合专家模型（MoE）是一种稀疏模型。ひらがな カタカナ", "emoji 🤖🚀👩‍👩‍👧 🇫🇷", "tabs\tand\nnew\r\nlines\n\n\n",
    "x = a_b + 12345 * 0.5; // code", "<mask> hello world <mask>and [SPECIAL]  end", "A<mask>B hello worldly",
    "``quoted'' text", "well-known e-mail x-ray mixed-up", "<s> literal </s> and <unk>", "", " ", "\u00a0\u3000 odd spaces",
]


def random_texts(seed, count):
    pools = [(0x61, 0x7A), (0x41, 0x5A), (0x30, 0x39), (0x21, 0x2F), (0x4E00, 0x9FFF), (0x300, 0x36F),
             (0x1F300, 0x1F6FF), (0x1D400, 0x1D4FF), (0x400, 0x4FF), (0x600, 0x6FF), (0x3040, 0x30FF), (0xC0, 0xFF)]
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "    "]
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        s = []
        for _ in range(rnd.randrange(30)):
            if rnd.randrange(5) == 0:
                s.append(rnd.choice(spaces))
            else:
                lo, hi = rnd.choice(pools)
                s.append(chr(rnd.randint(lo, hi)))
        out.append("".join(s))
    return out


def main():
    bl = json.load(open(os.path.join(SRC, "bytelevel/tokenizer.json"), encoding="utf-8"))
    ms = json.load(open(os.path.join(SRC, "metaspace/tokenizer.json"), encoding="utf-8"))
    os.makedirs(OUT, exist_ok=True)
    texts = FIXED + random_texts(7, 40)
    result = {"tool": "tokenizers " + tokenizers.__version__, "variants": {}}
    sources = {"bytelevel": bl, "metaspace": ms}
    sources.update(variants(bl, ms))
    for name, spec in sources.items():
        if name not in ("bytelevel", "metaspace"):
            with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
                json.dump(spec, f, ensure_ascii=False, indent=1)
        tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
        cases = []
        for text in texts:
            e = tok.encode(text, add_special_tokens=True)
            n = tok.encode(text, add_special_tokens=False)
            cases.append({"text": text, "ids": e.ids, "tokens": e.tokens, "ids_no_special": n.ids,
                          "decoded": tok.decode(e.ids, skip_special_tokens=True),
                          "decoded_with_special": tok.decode(e.ids, skip_special_tokens=False)})
        result["variants"][name] = cases
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
