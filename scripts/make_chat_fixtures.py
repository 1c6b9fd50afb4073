#!/usr/bin/env python3
"""Writes the expected renderings of real chat templates for moe4j's ChatTemplate tests.

Inputs: io/src/test/resources/chat/<model>.jinja, the chat_template of each model's tokenizer_config.json (or
chat_template.jinja). Outputs, next to them: <model>.tokenizer_config.json (the template plus the special tokens,
in the shapes real files use) and expected.json (the rendered prompt of a small conversation, with and without
the generation prompt).

Two ways to render, from the repository root:
  python3 scripts/make_chat_fixtures.py                  # jinja2 in the environment transformers builds
  python3 scripts/make_chat_fixtures.py --transformers   # transformers' own apply_chat_template; also checks
                                                         # that it agrees with the stored expected.json
The first mirrors transformers' _compile_jinja_template (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, its tojson, raise_exception, strftime_now); the second is the reference itself and
needs transformers and a tokenizer.json (the byte-level fixture serves; rendering does not depend on it).
strftime_now is pinned to DATE so the gpt-oss system prompt is reproducible.
"""
import datetime as _dt
import json
import os
import sys

DIR = "io/src/test/resources/chat"
DATE = _dt.datetime(2025, 8, 5, 12, 0, 0)

MODELS = {
    # name: (bos, eos, how the config spells them, template form)
    "mixtral": ("<s>", "</s>", "object", "string"),
    "qwen2": (None, "<|im_end|>", "string", "string"),
    "qwen3": (None, "<|im_end|>", "string", "string"),
    "olmoe": ("<|endoftext|>", "<|endoftext|>", "string", "string"),
    "deepseek": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "object", "string"),
    "gpt-oss": ("<|startoftext|>", "<|return|>", "string", "list"),
}

# tool use, for the templates that render tools: a schema in the prompt, a call, its result, then the next turn
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit", "default": "celsius"},
        "days": {"type": "integer", "description": "Days ahead"},
        "fields": {"type": "array", "items": {"type": "string"}, "description": "What to report"}}}}}]
TOOL_CHAT = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Weather in Zürich?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 1}}}]},
    {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
]
TOOL_MODELS = ["qwen3", "gpt-oss"]

CONVERSATIONS = {
    # system/user/assistant/user: the prompt a chat front end sends
    "chat": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is a mixture of experts?"},
        {"role": "assistant", "content": "A model that routes each token to a few expert networks."},
        {"role": "user", "content": "Why is that fast?"},
    ],
    # ends with an assistant turn that carries its reasoning, as training data does (Qwen3 and DeepSeek split it)
    "reasoning": [
        {"role": "user", "content": "Is 17 prime?"},
        {"role": "assistant", "content": "<think>\nCheck divisors up to 4.\n</think>\n\nYes, 17 is prime."},
    ],
}


def token_entry(content, shape):
    if content is None or shape == "string":
        return content
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


def write_configs():
    for name, (bos, eos, shape, form) in MODELS.items():
        template = open(os.path.join(DIR, name + ".jinja"), encoding="utf-8").read()
        chat_template = template if form == "string" else [{"name": "default", "template": template},
                                                             {"name": "tool_use", "template": template}]
        config = {"bos_token": token_entry(bos, shape), "eos_token": token_entry(eos, shape),
                  "chat_template": chat_template, "tokenizer_class": "PreTrainedTokenizerFast"}
        with open(os.path.join(DIR, name + ".tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)


def render_jinja2(name, messages, generation_prompt, tools=None):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: DATE.strftime(fmt)
    bos, eos, _, _ = MODELS[name]
    template = env.from_string(open(os.path.join(DIR, name + ".jinja"), encoding="utf-8").read())
    specials = {k: v for k, v in {"bos_token": bos, "eos_token": eos}.items() if v is not None}
    return template.render(messages=messages, tools=tools, documents=None,
                           add_generation_prompt=generation_prompt, **specials)


def render_transformers(name, messages, generation_prompt, tools=None):
    import transformers
    import transformers.utils.chat_template_utils as ctu

    class Pinned(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return DATE

    ctu.datetime = Pinned
    config = json.load(open(os.path.join(DIR, name + ".tokenizer_config.json"), encoding="utf-8"))
    template = config["chat_template"]
    if isinstance(template, list):
        template = {t["name"]: t["template"] for t in template}
    bos, eos, _, _ = MODELS[name]
    kwargs = {k: v for k, v in {"bos_token": bos, "eos_token": eos}.items() if v is not None}
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file="io/src/test/resources/tokenizers/bytelevel/tokenizer.json", chat_template=template, **kwargs)
    return tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt)


def main():
    use_transformers = "--transformers" in sys.argv
    if not use_transformers:
        write_configs()
    render = render_transformers if use_transformers else render_jinja2
    cases = []
    for name in MODELS:
        for conversation, messages in CONVERSATIONS.items():
            for generation_prompt in (True, False):
                cases.append({"model": name, "config": name + ".tokenizer_config.json", "conversation": conversation,
                              "add_generation_prompt": generation_prompt,
                              "expected": render(name, messages, generation_prompt)})
        if name in TOOL_MODELS:
            cases.append({"model": name, "config": name + ".tokenizer_config.json", "conversation": "tools",
                          "add_generation_prompt": True, "tools": TOOLS,
                          "expected": render(name, TOOL_CHAT, True, TOOLS)})
    path = os.path.join(DIR, "expected.json")
    if use_transformers:
        import transformers
        stored = json.load(open(path, encoding="utf-8"))
        bad = [(c["model"], c["conversation"], c["add_generation_prompt"]) for c, s in zip(cases, stored["cases"])
               if c["expected"] != s["expected"]]
        print(f"transformers {transformers.__version__}: {len(cases) - len(bad)}/{len(cases)} renderings agree"
              + (f"; differ: {bad}" if bad else ""))
        sys.exit(1 if bad else 0)
    import jinja2
    out = {"generator": f"jinja2 {jinja2.__version__} in transformers' chat-template environment "
                        f"(scripts/make_chat_fixtures.py)", "date": DATE.strftime("%Y-%m-%d"),
           "conversations": {**CONVERSATIONS, "tools": TOOL_CHAT}, "cases": cases}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
