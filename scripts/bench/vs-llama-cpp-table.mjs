#!/usr/bin/env node
// Prints the table of scripts/bench/vs-llama-cpp.sh from its runs (one JSON object a line, each tagged with
// engine, dtype and round), followed by the lines given after the file (machine, load, model).
//
//   node vs-llama-cpp-table.mjs RUNS.jsonl [LINE...]

import {readFileSync} from "node:fs";

const [file, ...notes] = process.argv.slice(2);
if (!file) {
    process.stderr.write("usage: node vs-llama-cpp-table.mjs RUNS.jsonl [LINE...]\n");
    process.exit(2);
}
const runs = readFileSync(file, "utf8").split("\n").filter(l => l.trim()).map(l => JSON.parse(l));

const median = xs => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stats = xs => ({median: median(xs), min: Math.min(...xs), max: Math.max(...xs)});
const fmt = (x, digits = 1) => x.toFixed(digits);
const spread = s => `${fmt(s.median)} (${fmt(s.min)}-${fmt(s.max)})`;
const pad = (s, n) => String(s).padEnd(n);

const keys = [...new Set(runs.map(r => `${r.dtype} ${r.threads}`))];
const llama = runs.find(r => r.engine === "llama.cpp");
console.log(`moe4j against llama.cpp ${llama ? `${llama.llama_cpp_release} (${llama.build} CPU build, node-llama-cpp;`
    + ` flash attention ${llama.flash_attention}, KV cache ${llama.kv_cache_type})` : ""}`);
for (const n of notes) {
    console.log(n);
}
console.log("");
const header = [pad("type", 5), pad("thr", 4), pad("engine", 10), pad("prefill tok/s median (min-max)", 32),
    pad("decode tok/s median (min-max)", 31), pad("MB/token", 9), pad("GB/s moved", 11), "decode % of bandwidth"];
console.log(header.join(" "));

const checks = [];
for (const key of keys) {
    const [dtype, threads] = key.split(" ");
    const mine = runs.filter(r => r.engine === "moe4j" && r.dtype === dtype && String(r.threads) === threads);
    const theirs = runs.filter(r => r.engine === "llama.cpp" && r.dtype === dtype && String(r.threads) === threads);
    if (mine.length === 0) {
        continue;
    }
    // Both engines read the same weights; moe4j counts the bytes and measures the bandwidth in the same run.
    const bytes = mine[0].active_bytes_per_token;
    const bandwidth = stats(mine.map(r => r.bandwidth_gbs));
    const disturbed = mine.filter(r => r.disturbed).length;
    const rows = {};
    for (const [engine, rs] of [["moe4j", mine], ["llama.cpp", theirs]]) {
        if (rs.length === 0) {
            continue;
        }
        const prefill = stats(rs.map(r => r.prefill_tokens_per_s));
        const decode = stats(rs.map(r => r.decode_tokens_per_s));
        rows[engine] = {prefill, decode};
        const moved = decode.median * bytes / 1e9;
        console.log([pad(dtype, 5), pad(threads, 4), pad(engine, 10), pad(spread(prefill), 32), pad(spread(decode), 31),
            pad(fmt(bytes / 1e6), 9), pad(fmt(moved, 2), 11), fmt(100 * moved / bandwidth.median) + " %"].join(" "));
    }
    if (rows.moe4j && rows["llama.cpp"]) {
        console.log([pad("", 5), pad("", 4), pad("ratio", 10),
            pad(`moe4j/llama.cpp ${fmt(rows.moe4j.prefill.median / rows["llama.cpp"].prefill.median, 2)}x`, 32),
            pad(`moe4j/llama.cpp ${fmt(rows.moe4j.decode.median / rows["llama.cpp"].decode.median, 2)}x`, 31),
            `bandwidth (moe4j, ${threads} thr): ${spread(bandwidth)} GB/s` + (disturbed ? `, ${disturbed} run(s) disturbed` : "")
        ].join(" "));
    }
    // The same round's runs had the same prompt; their greedy tokens are compared position by position.
    for (const m of mine) {
        const l = theirs.find(r => r.round === m.round);
        if (!l || !m.output_ids) {
            continue;
        }
        const n = Math.min(m.output_ids.length, l.output_ids.length);
        let same = 0;
        while (same < n && m.output_ids[same] === l.output_ids[same]) {
            same++;
        }
        checks.push({dtype, threads, round: m.round, same, n});
    }
}

console.log("");
for (const dtype of [...new Set(checks.map(c => c.dtype))]) {
    const cs = checks.filter(c => c.dtype === dtype);
    const equal = cs.filter(c => c.same === c.n).length;
    const firstDiffs = cs.filter(c => c.same < c.n).map(c => `${c.threads} thr round ${c.round}: first difference at token ${c.same}`);
    console.log(`greedy tokens, ${dtype}: identical in ${equal} of ${cs.length} run pairs` +
        (firstDiffs.length ? ` (${firstDiffs.join("; ")})` : "") +
        (dtype === "f32" ? "" : " (reduced precision: the engines round differently, so differences can be expected)"));
}
console.log("MB/token: weights read per decoded token (all but the input embedding and the unrouted experts), as moe4j" +
    " counts them; GB/s moved = decode tok/s x MB/token; bandwidth: what moe4j measured before and after its run.");
