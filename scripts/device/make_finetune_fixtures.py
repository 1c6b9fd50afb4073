"""References for fine-tuning on example data, made by PyTorch and transformers on the device machine.

Two one-step fine-tunes of the qwen2-moe fixture (model/src/test/resources/fixtures/qwen2-moe: qkv biases, a shared
expert behind its gate, a dense layer), each on a batch of two examples of unequal length, right-padded with an
attention mask, labels -100 where nothing is learned, loss = transformers' causal-LM loss (mean over the labelled
tokens) + router_aux_loss_coef x its load-balancing loss under the attention mask (output_router_logits=True), one
torch.optim.AdamW step on the CPU in float32, lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1.0 (large, so that
decaying a norm or not moves it by 1e-3 of its value: ten times the tests' tolerance, so they tell the rules apart):

- full_step: two {"input_ids", "labels"} examples (full_step.jsonl), random ids, -100 on some positions. The weight
  decay is Hugging Face Trainer's rule (Trainer.get_decay_parameter_names: biases and norms spared), moe4j's default.
  full_step.safetensors holds every parameter after the step.
- sft_step: two conversations (chat.jsonl: {"messages": [...]}, one with a system turn, one of two exchanges)
  rendered with a ChatML template that marks the assistant's text with {% generation %} blocks
  (tokenizer_config.json) and tokenised by transformers' apply_chat_template(return_assistant_tokens_mask=True), the
  mask TRL's assistant_only_loss uses: labels = input_ids on the assistant's tokens, -100 elsewhere. The script also
  finds the assistant's text by prefix renders of the same template without its blocks (Qwen2's own template, which
  moe4j does for a template without blocks) and checks that both give the same labels. Weight decay on every
  parameter, as torch.optim.AdamW(model.parameters()) does (moe4j's --decay-all). sft_step.safetensors holds the
  embedding, the LM head, the final norm and every parameter of layer 0 after the step (enough to follow the
  gradient through the whole model while keeping the fixtures small).

reference.json states all this and holds the chat batch's input_ids and labels, both steps' losses, every parameter's
gradient norm before the step (Adam's first step moves a weight by about lr * sign(g), so the weights after it say
little about the gradients' sizes: the norms do) and the names the full step decayed.
Parameters are stored under transformers' in-memory names (fused experts: mlp.experts.gate_up_proj [E, 2I, H]).

Usage, from the checkout's root:
  python3 scripts/device/make_finetune_fixtures.py --out OUT_DIR             # needs torch and transformers 5.17
  python3 scripts/device/make_finetune_fixtures.py --out OUT_DIR --no-torch  # the data files only (no torch)
Then copy OUT_DIR's files to train/src/test/resources/finetune/.
"""
import argparse
import json
import pathlib
import random

FIXTURE = pathlib.Path("model/src/test/resources/fixtures/qwen2-moe")
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 1.0
PAD_ID = 0

# Qwen2's chat template (io/src/test/resources/chat/qwen2.jinja), and the same with the assistant's text and what
# ends its turn ('<|im_end|>\n') marked as transformers' return_assistant_tokens_mask needs: what the prefix renders
# of the plain template find too.
PLAIN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
MARKED_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>\\n' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

CONVERSATIONS = [
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "What does a router do?"},
     {"role": "assistant", "content": "It sends each token to a few experts."}],
    [{"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another?"},
     {"role": "assistant", "content": "Green, like grass."}],
]


def full_step_examples():
    """Two id sequences of 11 and 17 tokens (the first padded by 6), labels -100 on a prefix of one and inside the other."""
    rnd = random.Random(16)
    first = [rnd.randrange(3, 512) for _ in range(11)]
    second = [rnd.randrange(3, 512) for _ in range(17)]
    first_labels = [-100] * 4 + first[4:]
    second_labels = second[:5] + [-100] * 5 + second[10:]
    return [{"input_ids": first, "labels": first_labels}, {"input_ids": second, "labels": second_labels}]


def tokenizer():
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_file=str(FIXTURE / "tokenizer.json"), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")


def assistant_mask_labels(tok, conversation):
    """transformers' own mask of the generation blocks, as TRL's assistant_only_loss takes it."""
    enc = tok.apply_chat_template(conversation, chat_template=MARKED_TEMPLATE, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
    return ids, [i if m else -100 for i, m in zip(ids, mask)]


def prefix_render_labels(tok, conversation):
    """The assistant's text found by rendering the conversation up to and through each of its messages with the
    plain template; a token is labelled when it holds a character of that text (by the tokenizer's offsets)."""
    def render(messages, generation_prompt):
        return tok.apply_chat_template(messages, chat_template=PLAIN_TEMPLATE, tokenize=False,
                                       add_generation_prompt=generation_prompt)
    whole = render(conversation, False)
    spans = []
    for i, m in enumerate(conversation):
        if m["role"] != "assistant":
            continue
        before, through = render(conversation[:i], True), render(conversation[:i + 1], False)
        assert whole.startswith(before) and whole.startswith(through), "prefix renders must be prefixes"
        spans.append((len(before), len(through)))
    enc = tok(whole, add_special_tokens=False, return_offsets_mapping=True)
    labels = [tid if any(a < e and b > s for s, e in spans) else -100
              for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])]
    return list(enc["input_ids"]), labels, whole


def chat_examples(tok):
    out = []
    for conversation in CONVERSATIONS:
        ids, labels = assistant_mask_labels(tok, conversation)
        plain_ids, plain_labels, text = prefix_render_labels(tok, conversation)
        assert tok.apply_chat_template(conversation, chat_template=MARKED_TEMPLATE, tokenize=False) == text, \
            "the generation blocks change the text"
        assert (ids, labels) == (plain_ids, plain_labels), "the two ways to find the assistant's tokens disagree"
        assert any(label != -100 for label in labels[1:])
        out.append({"input_ids": ids, "labels": labels, "text": text})
    return out


def padded(examples):
    import torch
    length = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), length), PAD_ID, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[b, :n] = torch.tensor(e["input_ids"])
        labels[b, :n] = torch.tensor(e["labels"])
        mask[b, :n] = 1
    return ids, labels, mask


def one_step(examples, decay_rule):
    """Loads the fixture, takes one AdamW step on the padded batch; returns (losses and each parameter's gradient
    norm, the parameters after the step, the names of those decayed)."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(FIXTURE), dtype=torch.float32, attn_implementation="eager")
    model.train()
    if decay_rule == "trainer":
        try:
            from transformers import Trainer
            # it reads nothing of the Trainer itself
            decayed = set(Trainer.get_decay_parameter_names(None, model))
        except ImportError:  # the Trainer needs accelerate; the rule is the same patterns
            from transformers.trainer_pt_utils import get_parameter_names
            decayed = set(get_parameter_names(model, [torch.nn.LayerNorm], [
                r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]))
    else:
        decayed = {n for n, _ in model.named_parameters()}
    groups = [{"params": [p for n, p in model.named_parameters() if n in decayed], "weight_decay": WEIGHT_DECAY},
              {"params": [p for n, p in model.named_parameters() if n not in decayed], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, foreach=False)
    ids, labels, mask = padded(examples)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, output_router_logits=True)
    cross_entropy = (out.loss - model.config.router_aux_loss_coef * out.aux_loss).item()
    out.loss.backward()
    grad_norms = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    optimizer.step()
    params = {n: p.detach().float().contiguous().clone() for n, p in model.named_parameters()}
    stats = {"loss": out.loss.item(), "cross_entropy": cross_entropy, "aux_loss": out.aux_loss.item(),
             "grad_norms": grad_norms}
    return stats, params, sorted(decayed)


def write_jsonl(path, lines):
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-torch", action="store_true", help="write the data files only")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    full = full_step_examples()
    write_jsonl(out / "full_step.jsonl", full)
    write_jsonl(out / "chat.jsonl", [{"messages": c} for c in CONVERSATIONS])
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "chat_template": MARKED_TEMPLATE}, indent=2) + "\n")
    chat = chat_examples(tokenizer())
    reference = {
        "model": str(FIXTURE),
        "optimizer": "torch.optim.AdamW(foreach=False), float32 on the CPU",
        "lr": LR, "betas": list(BETAS), "eps": EPS, "weight_decay": WEIGHT_DECAY,
        "padding": "right, pad id %d, attention_mask 1 on the examples' tokens" % PAD_ID,
        "loss": "model(input_ids, attention_mask, labels, output_router_logits=True).loss: mean cross-entropy over "
                "labels != -100 (shifted) + router_aux_loss_coef * load_balancing_loss_func(..., attention_mask)",
        "full_step": {"data": "full_step.jsonl", "decay": "Trainer.get_decay_parameter_names (biases and norms spared)"},
        "sft_step": {"data": "chat.jsonl", "template": "tokenizer_config.json (ChatML with {% generation %} blocks)",
                     "labels": "apply_chat_template(return_assistant_tokens_mask=True): input_ids where the mask "
                               "is 1, else -100; equal to the prefix renders of the template without blocks",
                     "decay": "every parameter (torch.optim.AdamW(model.parameters()))",
                     "examples": [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in chat]},
    }
    if not args.no_torch:
        import torch
        import transformers
        from safetensors.torch import save_file
        reference["torch"], reference["transformers"] = torch.__version__, transformers.__version__
        stats, params, decayed = one_step(full, "trainer")
        reference["full_step"].update(stats, decayed=decayed)
        save_file({"after_step." + n: t for n, t in params.items()}, str(out / "full_step.safetensors"))
        stats, params, decayed = one_step(chat, "all")
        reference["sft_step"].update(stats)
        kept = {n: t for n, t in params.items()
                if n in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight")
                or n.startswith("model.layers.0.")}
        save_file({"after_step." + n: t for n, t in kept.items()}, str(out / "sft_step.safetensors"))
    (out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    for e in chat:
        print(repr(e["text"]), sum(label != -100 for label in e["labels"]), "labelled of", len(e["labels"]))


if __name__ == "__main__":
    main()
