#!/usr/bin/env python3
"""Writes io/src/test/resources/tokenizers/regex_splits.json: how the pre-tokenizer split patterns of real
tokenizer.json files cut sample texts, computed with the `regex` module (the engine tiktoken uses; for these
patterns its semantics are Oniguruma's, which the Hugging Face tokenizers library runs them with).

The pieces are what a Split pre-tokenizer with behavior "Isolated" keeps: every match and every gap between
matches. Run from the repository root: python3 scripts/make_regex_fixtures.py
"""
import json
import regex

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Qwen2 / Qwen2-MoE / Qwen3 (Split, Isolated, then ByteLevel without regex)
QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# Llama 3
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# gpt-oss (o200k)
O200K = (r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
         r"""|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
         r"""|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
# DeepSeek-V3: three Splits in sequence; the third holds literal CR and LF characters, as its tokenizer.json does
DEEPSEEK_V3 = [r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
               "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
               "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"]
# a possessive quantifier and an atomic group, as some tokenizer.json files use
POSSESSIVE = r"""[^\r\n\p{L}\p{N}]?+\p{L}++|(?>\p{N}{1,3})| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++"""

TEXTS = [
    "Hello world, this is a test. It's what we'll use; they've said I'd go.",
    "DON'T SHOUT, It'S fine. We'LL see; you'Re right, I'M sure.",
    "The year 2024 had 365 days and 12345678 seconds-ish; π≈3.14159.",
    "naïve café — déjà vu, ÀÉÎÕÜ ß 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and e\u0301 (combining).",
    "混合专家模型（MoE）是一种稀疏模型。ひらがなとカタカナのテスト、한국어도 있어요.",
    "emoji 🤖🚀 and 👩‍👩‍👧 family, flags 🇫🇷 and keycap 1️⃣",
    "  leading spaces,\ttabs,\nnewlines\r\nand   runs   of   spaces  \n\n\n",
    "def main():\n    return {'key': [1, 2, 3]}  # code\n\n\nprint(main())\n",
    "URLs like https://example.com/path?q=1&r=2 and e-mail@example.org!!! ...",
    "Привет, мир! Ελληνικά κείμενα. עברית ועוד. العربية ١٢٣ and ०१२ digits",
    "camelCaseWords and HTTPServer and iPhone XML_http_request",
    "\u00a0no-break\u00a0spaces\u2003em\u3000ideographic space",
]


def isolated(pattern, text):
    pieces, last = [], 0
    for m in regex.finditer(pattern, text):
        if m.start() > last:
            pieces.append(text[last:m.start()])
        if m.end() > m.start():
            pieces.append(m.group())
        last = m.end()
    if last < len(text):
        pieces.append(text[last:])
    return pieces


def sequence(patterns, text):
    pieces = [text]
    for p in patterns:
        pieces = [q for piece in pieces for q in isolated(p, piece)]
    return pieces


def main():
    cases = {"gpt2": [GPT2], "qwen2": [QWEN2], "llama3": [LLAMA3], "o200k": [O200K], "deepseek_v3": DEEPSEEK_V3,
             "possessive": [POSSESSIVE]}
    out = {"tool": "python regex " + regex.__version__, "patterns": {}}
    for name, patterns in cases.items():
        out["patterns"][name] = {
            "regexes": patterns,
            "cases": [{"text": t, "pieces": sequence(patterns, t)} for t in TEXTS],
        }
    with open("io/src/test/resources/tokenizers/regex_splits.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
