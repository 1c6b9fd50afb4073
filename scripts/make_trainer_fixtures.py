#!/usr/bin/env python3
"""Writes io/src/test/resources/tokenizers/trainer/: a small corpus (corpus.txt, made here from a fixed seed) and
what the Hugging Face `tokenizers` BpeTrainer learns from it for GPT-2-style byte-level BPE (hf_tokenizer.json:
vocabulary 600, min_frequency 2, two special tokens, the 256 byte characters as initial alphabet). moe4j's
BpeTrainer must learn the same merges in the same order.

With --check FILE it instead loads FILE (a tokenizer.json written by moe4j) with the library and prints whether
it encodes and decodes the corpus like hf_tokenizer.json. Needs the `tokenizers` package. From the repo root:
  python3 scripts/make_trainer_fixtures.py [--make-corpus]
"""
import json
import os
import random
import sys

DIR = "io/src/test/resources/tokenizers/trainer"
SPECIALS = ["<|endoftext|>", "<|pad|>"]
VOCAB = 600


def make_corpus():
    rnd = random.Random(11)
    syllables = ["ex", "per", "t", "rou", "ter", "to", "ken", "mix", "ture", "spar", "se", "lay", "er", "ga", "te",
                 "lo", "ad", "ba", "lan", "ce", "ca", "pa", "ci", "ty", "模", "型", "专", "家", "ï", "42", "é", "🤖"]
    lexicon = ["".join(rnd.choice(syllables) for _ in range(rnd.randint(1, 4))) for _ in range(3000)]
    lines = []
    for _ in range(1500):
        words = [lexicon[int((rnd.random() ** 3) * len(lexicon))] for _ in range(rnd.randint(3, 14))]
        line = ""
        for i, w in enumerate(words):
            if i:
                line += ", " if rnd.randrange(10) == 0 else ("  " if rnd.randrange(30) == 0 else " ")
            line += w
        if rnd.randrange(50) == 0:
            line += " <|endoftext|>"
        lines.append(line + ".\n")
    with open(os.path.join(DIR, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("".join(lines))


def train():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([os.path.join(DIR, "corpus.txt")], trainer)
    tok.save(os.path.join(DIR, "hf_tokenizer.json"))


def check(path):
    from tokenizers import Tokenizer
    ours = Tokenizer.from_file(path)
    ref = Tokenizer.from_file(os.path.join(DIR, "hf_tokenizer.json"))
    lines = open(os.path.join(DIR, "corpus.txt"), encoding="utf-8").read().splitlines(keepends=True)
    same = sum(ours.encode(l).ids == ref.encode(l).ids and ours.decode(ours.encode(l).ids) == l for l in lines)
    print(f"{path}: loads in tokenizers; {same}/{len(lines)} corpus lines encode like the reference and round-trip")
    return same == len(lines)


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if check(sys.argv[sys.argv.index("--check") + 1]) else 1)
    if "--make-corpus" in sys.argv:
        make_corpus()
    train()
