#!/usr/bin/env node
// Runs one GGUF model in llama.cpp (the prebuilt CPU build of the npm package @node-llama-cpp/linux-x64, driven by
// node-llama-cpp) the way `moe4j bench generate` runs a model: the prompt's token ids in one batch (prefill), then
// greedy decoding one token at a time against the KV cache, after untimed warm-up runs at the same sizes (one unless
// --warm-ups says otherwise).
// Prints one JSON object. Used by scripts/bench/vs-llama-cpp.sh; run by hand, never in CI.
//
//   node llama-cpp-generate.mjs --modules DIR --model FILE.gguf --prompt-ids 1,2,3 --decode-tokens 64 --threads 1
//       [--kv-cache-type f32|f16] [--flash-attention off|on|auto]   (defaults: f32 and off, see below) [--warm-ups N]
//
// --modules is the folder whose node_modules holds node-llama-cpp (the benchmark installs it into an ignored folder).
// Decode tokens/s counts the one-token forward passes: decode-tokens - 1 of them, as moe4j counts.

import {fail as failAs, loadLlama, options} from "./llama-cpp-common.mjs";

const NAME = "llama-cpp-generate";
const fail = message => failAs(NAME, message);
const args = options(NAME, process.argv.slice(2), ["modules", "model", "prompt-ids", "decode-tokens", "threads"]);
const prompt = args["prompt-ids"].split(",").map(Number);
const decodeTokens = Number(args["decode-tokens"]);
const threads = Number(args.threads);
const warmUps = Number(args["warm-ups"] ?? 1);
if (prompt.some(id => !Number.isInteger(id) || id < 0) || !(decodeTokens >= 2) || !(threads >= 1)
        || !Number.isInteger(warmUps) || warmUps < 0) {
    fail("--prompt-ids must be token ids, --decode-tokens at least 2, --threads at least 1 and --warm-ups 0 or more");
}

// By default llama.cpp computes what moe4j computes (an F32 KV cache, no flash attention: see llama-cpp-common.mjs).
const {llama, model, kvCacheType, contextSettings, loadStart} = await loadLlama(NAME, args);
const context = await model.createContext({contextSize: prompt.length + decodeTokens + 8,
    batchSize: prompt.length, threads, sequences: 1, ...contextSettings});
const loadSeconds = (performance.now() - loadStart) / 1000;
const sequence = context.getSequence();

async function generate() {
    await sequence.clearHistory();
    const start = performance.now();
    // temperature 0 is greedy; yieldEogToken keeps decoding through an end-of-sequence id, as moe4j's benchmark does.
    const tokens = sequence.evaluate(prompt, {temperature: 0, yieldEogToken: true});
    const first = await tokens.next();
    const firstTokenAt = performance.now();
    const output = [first.value];
    while (output.length < decodeTokens) {
        const next = await tokens.next();
        if (next.done) {
            break;
        }
        output.push(next.value);
    }
    const end = performance.now();
    await tokens.return();
    return {output, prefillSeconds: (firstTokenAt - start) / 1000, decodeSeconds: (end - firstTokenAt) / 1000};
}

for (let w = 0; w < warmUps; w++) {
    await generate(); // warm-up at the measured sizes
}
const run = await generate();
const decodeSteps = run.output.length - 1;
const result = {
    engine: "llama.cpp",
    llama_cpp_release: llama.llamaCppRelease.release,
    build: llama.buildType,
    gpu: llama.gpu,
    threads: context.currentThreads,
    flash_attention: context.flashAttention,
    kv_cache_type: kvCacheType,
    model: args.model,
    load_seconds: loadSeconds,
    prompt_tokens: prompt.length,
    decode_tokens: run.output.length,
    prefill_tokens_per_s: prompt.length / run.prefillSeconds,
    decode_tokens_per_s: decodeSteps / run.decodeSeconds,
    first_token_seconds: run.prefillSeconds,
    output_ids: run.output,
};
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(result) + "\n");
