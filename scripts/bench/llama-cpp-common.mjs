// What the llama.cpp benchmark scripts share: their --name value options, a one-line error and exit status 2, and
// llama.cpp itself (the prebuilt CPU build of @node-llama-cpp/linux-x64 through node-llama-cpp, never a GPU, a build
// from source or a download) with a model loaded and the context settings that make it compute what moe4j computes.

import {createRequire} from "node:module";
import {join, resolve} from "node:path";
import {pathToFileURL} from "node:url";

/** Prints `name: error: message` and exits with status 2. */
export function fail(name, message) {
    process.stderr.write(`${name}: error: ${message}\n`);
    process.exit(2);
}

/** The --name value pairs of argv, every name of `required` present. */
export function options(name, argv, required) {
    const out = {};
    for (let i = 0; i < argv.length; i += 2) {
        if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
            fail(name, `expected --name value pairs, got '${argv[i]}'`);
        }
        out[argv[i].slice(2)] = argv[i + 1];
    }
    for (const option of required) {
        if (out[option] === undefined) {
            fail(name, `missing --${option}`);
        }
    }
    return out;
}

/**
 * llama.cpp with the model of args.model loaded (loadStart: performance.now() just before the model's loading) from node-llama-cpp under args.modules, and the context settings of
 * args: by default an F32 KV cache, as moe4j keeps it (llama.cpp's default is F16), and no flash attention
 * (node-llama-cpp's default "auto" turns it on for the CPU). With flash attention on, the greedy tokens of the F32
 * Mixtral-shaped benchmark model left moe4j's at token 44 of 64 (F16 or F32 cache alike), the log-probabilities there
 * 0.3 apart; without it all 64 were identical and the log-probabilities equal to 1e-5. Attention is a small part of a
 * decoded token's time at these lengths.
 */
export async function loadLlama(name, args) {
    let entry;
    try {
        entry = createRequire(join(resolve(args.modules), "package.json")).resolve("node-llama-cpp");
    } catch (e) {
        fail(name, `node-llama-cpp is not installed under ${args.modules}/node_modules (${e.code ?? e.message})`);
    }
    const kvCacheType = (args["kv-cache-type"] ?? "f32").toUpperCase();
    const flashAttention = {off: false, on: true, auto: "auto"}[args["flash-attention"] ?? "off"];
    if (!["F32", "F16"].includes(kvCacheType) || flashAttention === undefined) {
        fail(name, "--kv-cache-type is f32 or f16, --flash-attention off, on or auto");
    }
    const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);
    const llama = await getLlama({gpu: false, build: "never", skipDownload: true, maxThreads: 0,
        logLevel: LlamaLogLevel.error});
    const loadStart = performance.now();
    const model = await llama.loadModel({modelPath: resolve(args.model), gpuLayers: 0});
    const contextSettings = {flashAttention, experimentalKvCacheKeyType: kvCacheType,
        experimentalKvCacheValueType: kvCacheType};
    return {llama, model, kvCacheType, contextSettings, loadStart};
}
