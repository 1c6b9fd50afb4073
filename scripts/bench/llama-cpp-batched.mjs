#!/usr/bin/env node
// llama.cpp decoding several sequences at once (the prebuilt CPU build of the npm package @node-llama-cpp/linux-x64,
// driven by node-llama-cpp): one context with --sequences sequences, each given its own random prompt and decoded
// greedily at the same time, which node-llama-cpp batches into one llama_decode per step, as llama-server's
// continuous batching does. The counterpart of `moe4j bench generate --sequences N`. Prints one JSON object.
// Used by scripts/bench/vs-llama-cpp-batched.sh; run by hand, never in CI.
//
//   node llama-cpp-batched.mjs --modules DIR --model FILE.gguf --sequences 16 --prompt-tokens 64 --decode-tokens 32
//       --threads 2 --vocab 32000 [--kv-cache-type f32|f16] [--flash-attention off|on|auto]
//
// Aggregate decode tokens/s counts every sequence's one-token steps after its first token (decode-tokens - 1 each),
// over the time from the last sequence's first token to the last token, as moe4j counts its batched decoding.

import {fail as failAs, loadLlama, options} from "./llama-cpp-common.mjs";

const NAME = "llama-cpp-batched";
const fail = message => failAs(NAME, message);
const args = options(NAME, process.argv.slice(2),
    ["modules", "model", "sequences", "prompt-tokens", "decode-tokens", "threads", "vocab"]);
const sequences = Number(args.sequences), promptTokens = Number(args["prompt-tokens"]);
const decodeTokens = Number(args["decode-tokens"]), threads = Number(args.threads), vocab = Number(args.vocab);
if (![sequences, promptTokens, threads, vocab].every(v => Number.isInteger(v) && v >= 1) || !(decodeTokens >= 2)) {
    fail("--sequences, --prompt-tokens, --threads and --vocab must be positive integers, --decode-tokens at least 2");
}

// As llama-cpp-generate.mjs: an F32 KV cache and no flash attention by default, what moe4j computes.
const {llama, model, kvCacheType, contextSettings} = await loadLlama(NAME, args);
const perSequence = promptTokens + decodeTokens + 8;
const context = await model.createContext({contextSize: sequences * perSequence,
    batchSize: Math.max(promptTokens * sequences, 512), threads, sequences, ...contextSettings});
const handles = Array.from({length: sequences}, () => context.getSequence());

// a small deterministic generator: the same prompts on every run of the script
let state = 7;
function randomId() {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % vocab;
}

async function decodeAll() {
    const firsts = [], ends = [];
    await Promise.all(handles.map(async sequence => {
        await sequence.clearHistory();
        const prompt = Array.from({length: promptTokens}, randomId);
        const tokens = sequence.evaluate(prompt, {temperature: 0, yieldEogToken: true});
        let produced = 0;
        for (;;) {
            const next = await tokens.next();
            if (next.done) {
                break;
            }
            if (produced++ === 0) {
                firsts.push(performance.now());
            }
            if (produced >= decodeTokens) {
                break;
            }
        }
        ends.push(performance.now());
        await tokens.return();
    }));
    const from = Math.max(...firsts), to = Math.max(...ends);
    return sequences * (decodeTokens - 1) / ((to - from) / 1000);
}

await decodeAll(); // warm-up at the measured sizes
const rate = await decodeAll();
process.stdout.write(JSON.stringify({
    engine: "llama.cpp",
    llama_cpp_release: llama.llamaCppRelease.release,
    threads: context.currentThreads,
    sequences,
    prompt_tokens: promptTokens,
    decode_tokens: decodeTokens,
    kv_cache_type: kvCacheType,
    flash_attention: context.flashAttention,
    decode_tokens_per_s: rate,
}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
