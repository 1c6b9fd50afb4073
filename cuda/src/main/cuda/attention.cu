// Causal attention with grouped key/value heads, a sliding window, sinks and a query offset (decoding against a
// cache), forward and backward, for any head dimension up to 256: tiles of 32 queries and 32 keys in shared memory
// and F32 arithmetic on the CUDA cores. flash.cu holds the tensor-core forward for head dimensions 64 and 128 in BF16;
// this file serves the other shapes, the backward pass and F32 precision. q, k, v and out are BF16 (the entry points
// without a suffix) or F32 (those ending in _f32), one body templated on the element type; dOut and the gradients F32
// (added into when `accumulate`); log-sum-exps F32. Every reduction has a fixed order.
#include "common.cuh"

namespace {

__device__ __forceinline__ void stf(float* p, long long i, float v, int accumulate) {
    p[i] = accumulate ? p[i] + v : v;
}

// Sum over the 8 lanes of an aligned group of a warp (the threads that share one attention row).
__device__ __forceinline__ float groupSum8(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    return v;
}

__device__ __forceinline__ float groupMax8(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
    return v;
}

// Attention tiles: 32 query rows (or keys) per block of 256 threads; thread i owns row i / 8 and, of a 32-wide
// tile, columns (i % 8) + 8·c for c < 4, and of a head, features (i % 8) + 8·j.
constexpr int TILE = 32;
constexpr int THREADS = 256;
constexpr int MAX_FEATURES_PER_THREAD = 32;  // head dimensions up to 256

// ---- attention: causal, grouped key/value heads, sliding window, sinks ----

// Rows of `sequences` sequences laid end to end: query row t of sequence b is row b·T + t at position
// queryStart + t; its keys are rows b·S + s for s ≤ position (and s > position − window when window > 0).
// q [·, heads·d], k [·, kvHeads·d], v [·, kvHeads·dv], out [·, heads·dv], lse [rows·heads] (may be null).
// sinks [heads] (may be null) join every softmax with no value. Grid (ceil(T / 32), heads, sequences), 256
// threads, dynamic shared memory of attentionSharedBytes(d, dv). Online softmax over key tiles (flash
// attention's algorithm), in F32 on the CUDA cores.
template <typename E>
__device__ __forceinline__ void attentionForward(const E* __restrict__ q, const E* __restrict__ k,
                                                 const E* __restrict__ v, int T, int S, int heads, int kvHeads, int d,
                                                 int dv, float scale, int queryStart, int window,
                                                 const float* __restrict__ sinks, E* __restrict__ out,
                                                 float* __restrict__ lse) {
    extern __shared__ float smem[];
    int ds = d + 1, dvs = dv + 1;  // padded rows: no bank conflicts between the rows a warp reads
    float* Qs = smem;                // [TILE][ds]
    float* Ks = Qs + TILE * ds;      // [TILE][ds]
    float* Vs = Ks + TILE * ds;      // [TILE][dvs]
    float* Ps = Vs + TILE * dvs;     // [TILE][TILE + 1]
    int h = blockIdx.y, g = h / (heads / kvHeads), b = blockIdx.z;
    int t0 = blockIdx.x * TILE, tid = threadIdx.x, row = tid >> 3, lane8 = tid & 7;
    long long qRow0 = (long long) b * T, kRow0 = (long long) b * S;
    for (int i = tid; i < TILE * d; i += THREADS) {
        int r = i / d, c = i % d;
        Qs[r * ds + c] = t0 + r < T ? load(q, (qRow0 + t0 + r) * heads * d + (long long) h * d + c) : 0.f;
    }
    float o[MAX_FEATURES_PER_THREAD];
#pragma unroll
    for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
        o[j] = 0.f;
    }
    float m = sinks ? sinks[h] : -INFINITY, l = sinks ? 1.f : 0.f;
    int tLast = min(T - 1, t0 + TILE - 1);
    int firstKey = window > 0 ? max(0, queryStart + t0 - window + 1) : 0;
    int lastKey = min(S - 1, queryStart + tLast);
    int position = queryStart + t0 + row;
    int lo = window > 0 ? max(0, position - window + 1) : 0;
    for (int s0 = firstKey - firstKey % TILE; s0 <= lastKey; s0 += TILE) {
        __syncthreads();  // the previous tile is no longer read
        for (int i = tid; i < TILE * d; i += THREADS) {
            int r = i / d, c = i % d;
            Ks[r * ds + c] = s0 + r < S ? load(k, (kRow0 + s0 + r) * kvHeads * d + (long long) g * d + c) : 0.f;
        }
        for (int i = tid; i < TILE * dv; i += THREADS) {
            int r = i / dv, c = i % dv;
            Vs[r * dvs + c] = s0 + r < S ? load(v, (kRow0 + s0 + r) * kvHeads * dv + (long long) g * dv + c) : 0.f;
        }
        __syncthreads();
        float sc[4], tileMax = -INFINITY;
#pragma unroll
        for (int c4 = 0; c4 < 4; c4++) {
            int col = lane8 + 8 * c4, s = s0 + col;
            float acc = 0.f;
            for (int f = 0; f < d; f++) {
                acc += Qs[row * ds + f] * Ks[col * ds + f];
            }
            bool visible = t0 + row < T && s < S && s <= position && s >= lo;
            sc[c4] = visible ? acc * scale : -INFINITY;
            tileMax = fmaxf(tileMax, sc[c4]);
        }
        tileMax = groupMax8(tileMax);
        float mNew = fmaxf(m, tileMax);
        float alpha = mNew == -INFINITY ? 1.f : expf(m - mNew);
        float sum = 0.f;
#pragma unroll
        for (int c4 = 0; c4 < 4; c4++) {
            float p = sc[c4] == -INFINITY ? 0.f : expf(sc[c4] - mNew);
            Ps[row * (TILE + 1) + lane8 + 8 * c4] = p;
            sum += p;
        }
        l = l * alpha + groupSum8(sum);
        m = mNew;
        __syncwarp();
#pragma unroll
        for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
            int f = lane8 + 8 * j;
            if (f < dv) {
                float acc = o[j] * alpha;
                #pragma unroll 8
                for (int c = 0; c < TILE; c++) {
                    acc += Ps[row * (TILE + 1) + c] * Vs[c * dvs + f];
                }
                o[j] = acc;
            }
        }
    }
    if (t0 + row >= T) {
        return;
    }
    float inv = l > 0.f ? 1.f / l : 0.f;
    long long outRow = (qRow0 + t0 + row) * heads + h;
#pragma unroll
    for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
        int f = lane8 + 8 * j;
        if (f < dv) {
            store(out, outRow * dv + f, o[j] * inv);
        }
    }
    if (lse && lane8 == 0) {
        lse[outRow] = m + logf(l);
    }
}

// D [rows·heads] = dOut · out per (row, head): the softmax backward's row term; sinkTerm (may be null) gets
// −exp(sink − lse)·D, whose sum over rows is the sink's gradient. One warp per (row, head).
template <typename E>
__device__ __forceinline__ void attentionBackwardPrepare(const float* __restrict__ dOut, const E* __restrict__ out,
                                                         const float* __restrict__ lse, const float* __restrict__ sinks,
                                                         int rows, int heads, int dv, float* __restrict__ D,
                                                         float* __restrict__ sinkTerm) {
    long long pair = (blockIdx.x * (long long) blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (pair >= (long long) rows * heads) {
        return;
    }
    float acc = 0.f;
    for (int f = lane; f < dv; f += 32) {
        acc += dOut[pair * dv + f] * load(out, pair * dv + f);
    }
    acc = warpSum(acc);
    if (lane == 0) {
        D[pair] = acc;
        if (sinkTerm) {
            sinkTerm[pair] = -expf(sinks[pair % heads] - lse[pair]) * acc;
        }
    }
}

// dq (+)= Σ_s ds_ts · k_s with ds = p·(dOut·v_s − D)·scale and p recomputed from lse. Same grid and tiles as the
// forward; shared memory of attentionSharedBytes(d, dv) + TILE·(dv + 1) floats for the dOut tile.
// One query row against one key, from their rows in shared memory (q and k of d features, the row's output
// gradient and v of dv): the probability p = exp(q·k·scale − lse) and the score gradient p (dOut·v − D) scale.
__device__ __forceinline__ float2 probabilityAndScoreGradient(const float* qRow, const float* dOutRow,
                                                              const float* kRow, const float* vRow, int d, int dv,
                                                              float scale, float lse, float D) {
    float qk = 0.f, dp = 0.f;
    for (int f = 0; f < d; f++) {
        qk += qRow[f] * kRow[f];
    }
    for (int f = 0; f < dv; f++) {
        dp += dOutRow[f] * vRow[f];
    }
    float p = expf(qk * scale - lse);
    return make_float2(p, p * (dp - D) * scale);
}

template <typename E>
__device__ __forceinline__ void attentionBackwardDq(const E* __restrict__ q, const E* __restrict__ k,
                                                    const E* __restrict__ v, const float* __restrict__ dOut,
                                                    const float* __restrict__ lse, const float* __restrict__ D, int T,
                                                    int S, int heads, int kvHeads, int d, int dv, float scale,
                                                    int queryStart, int window, float* __restrict__ dq,
                                                    int accumulate) {
    extern __shared__ float smem[];
    int ds = d + 1, dvs = dv + 1;
    float* Qs = smem;
    float* Ks = Qs + TILE * ds;
    float* Vs = Ks + TILE * ds;
    float* Ps = Vs + TILE * dvs;       // holds ds
    float* Os = Ps + TILE * (TILE + 1);  // dOut tile [TILE][dvs]
    int h = blockIdx.y, g = h / (heads / kvHeads), b = blockIdx.z;
    int t0 = blockIdx.x * TILE, tid = threadIdx.x, row = tid >> 3, lane8 = tid & 7;
    long long qRow0 = (long long) b * T, kRow0 = (long long) b * S;
    for (int i = tid; i < TILE * d; i += THREADS) {
        int r = i / d, c = i % d;
        Qs[r * ds + c] = t0 + r < T ? load(q, (qRow0 + t0 + r) * heads * d + (long long) h * d + c) : 0.f;
    }
    for (int i = tid; i < TILE * dv; i += THREADS) {
        int r = i / dv, c = i % dv;
        Os[r * dvs + c] = t0 + r < T ? dOut[(qRow0 + t0 + r) * heads * dv + (long long) h * dv + c] : 0.f;
    }
    float acc[MAX_FEATURES_PER_THREAD];
#pragma unroll
    for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
        acc[j] = 0.f;
    }
    bool live = t0 + row < T;
    long long pair = (qRow0 + t0 + row) * heads + h;
    float rowLse = live ? lse[pair] : 0.f, rowD = live ? D[pair] : 0.f;
    int tLast = min(T - 1, t0 + TILE - 1);
    int firstKey = window > 0 ? max(0, queryStart + t0 - window + 1) : 0;
    int lastKey = min(S - 1, queryStart + tLast);
    int position = queryStart + t0 + row;
    int lo = window > 0 ? max(0, position - window + 1) : 0;
    for (int s0 = firstKey - firstKey % TILE; s0 <= lastKey; s0 += TILE) {
        __syncthreads();
        for (int i = tid; i < TILE * d; i += THREADS) {
            int r = i / d, c = i % d;
            Ks[r * ds + c] = s0 + r < S ? load(k, (kRow0 + s0 + r) * kvHeads * d + (long long) g * d + c) : 0.f;
        }
        for (int i = tid; i < TILE * dv; i += THREADS) {
            int r = i / dv, c = i % dv;
            Vs[r * dvs + c] = s0 + r < S ? load(v, (kRow0 + s0 + r) * kvHeads * dv + (long long) g * dv + c) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int c4 = 0; c4 < 4; c4++) {
            int col = lane8 + 8 * c4, s = s0 + col;
            float dsv = 0.f;
            if (live && s < S && s <= position && s >= lo) {
                dsv = probabilityAndScoreGradient(Qs + row * ds, Os + row * dvs, Ks + col * ds, Vs + col * dvs, d, dv,
                                                  scale, rowLse, rowD).y;
            }
            Ps[row * (TILE + 1) + col] = dsv;
        }
        __syncwarp();
#pragma unroll
        for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
            int f = lane8 + 8 * j;
            if (f < d) {
                float a = acc[j];
                #pragma unroll 8
                for (int c = 0; c < TILE; c++) {
                    a += Ps[row * (TILE + 1) + c] * Ks[c * ds + f];
                }
                acc[j] = a;
            }
        }
    }
    if (!live) {
        return;
    }
#pragma unroll
    for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
        int f = lane8 + 8 * j;
        if (f < d) {
            stf(dq, pair * d + f, acc[j], accumulate);
        }
    }
}

// dk (+)= Σ_t ds_ts · q_t and dv (+)= Σ_t p_ts · dOut_t over every query row t and every query head of the
// key/value head's group. Grid (ceil(S / 32), kvHeads, sequences): one block per tile of 32 keys, so each
// gradient element has one writer. Shared memory: attentionSharedBytes(d, dv) + TILE·(dv + 1) floats.
template <typename E>
__device__ __forceinline__ void attentionBackwardDkDv(const E* __restrict__ q, const E* __restrict__ k,
                                                      const E* __restrict__ v, const float* __restrict__ dOut,
                                                      const float* __restrict__ lse, const float* __restrict__ D, int T,
                                                      int S, int heads, int kvHeads, int d, int dv, float scale,
                                                      int queryStart, int window, float* __restrict__ dk,
                                                      float* __restrict__ dvOut, int accumulate) {
    extern __shared__ float smem[];
    int ds = d + 1, dvs = dv + 1;
    float* Ks = smem;                    // this block's keys [TILE][ds]
    float* Qs = Ks + TILE * ds;          // a query tile [TILE][ds]
    float* Vs = Qs + TILE * ds;          // this block's values [TILE][dvs]
    float* Ps = Vs + TILE * dvs;         // [key][query]: p, then ds
    float* Os = Ps + TILE * (TILE + 1);  // a dOut tile [TILE][dvs]
    __shared__ float rowLse[TILE], rowD[TILE];
    __shared__ float Ds[TILE * (TILE + 1)];
    int g = blockIdx.y, b = blockIdx.z, group = heads / kvHeads;
    int s0 = blockIdx.x * TILE, tid = threadIdx.x, key = tid >> 3, lane8 = tid & 7;
    long long qRow0 = (long long) b * T, kRow0 = (long long) b * S;
    for (int i = tid; i < TILE * d; i += THREADS) {
        int r = i / d, c = i % d;
        Ks[r * ds + c] = s0 + r < S ? load(k, (kRow0 + s0 + r) * kvHeads * d + (long long) g * d + c) : 0.f;
    }
    for (int i = tid; i < TILE * dv; i += THREADS) {
        int r = i / dv, c = i % dv;
        Vs[r * dvs + c] = s0 + r < S ? load(v, (kRow0 + s0 + r) * kvHeads * dv + (long long) g * dv + c) : 0.f;
    }
    float gk[MAX_FEATURES_PER_THREAD], gv[MAX_FEATURES_PER_THREAD];
#pragma unroll
    for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
        gk[j] = 0.f;
        gv[j] = 0.f;
    }
    int s = s0 + key;
    // Query rows that can see a key of this tile: positions from s0 on, and (with a window) before s0 + TILE − 1 + window.
    int tFrom = max(0, s0 - queryStart);
    int tTo = window > 0 ? min(T, s0 + TILE - 1 + window - queryStart) : T;
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int t0 = tFrom - tFrom % TILE; t0 < tTo; t0 += TILE) {
            __syncthreads();
            for (int i = tid; i < TILE * d; i += THREADS) {
                int r = i / d, c = i % d;
                Qs[r * ds + c] = t0 + r < T ? load(q, (qRow0 + t0 + r) * heads * d + (long long) h * d + c) : 0.f;
            }
            for (int i = tid; i < TILE * dv; i += THREADS) {
                int r = i / dv, c = i % dv;
                Os[r * dvs + c] = t0 + r < T ? dOut[(qRow0 + t0 + r) * heads * dv + (long long) h * dv + c] : 0.f;
            }
            if (tid < TILE) {
                long long pair = (qRow0 + t0 + tid) * heads + h;
                rowLse[tid] = t0 + tid < T ? lse[pair] : 0.f;
                rowD[tid] = t0 + tid < T ? D[pair] : 0.f;
            }
            __syncthreads();
#pragma unroll
            for (int c4 = 0; c4 < 4; c4++) {
                int col = lane8 + 8 * c4, t = t0 + col, position = queryStart + t;
                float p = 0.f, dsv = 0.f;
                bool visible = t < T && s < S && s <= position && (window <= 0 || s > position - window);
                if (visible) {
                    float2 pds = probabilityAndScoreGradient(Qs + col * ds, Os + col * dvs, Ks + key * ds,
                                                             Vs + key * dvs, d, dv, scale, rowLse[col], rowD[col]);
                    p = pds.x;
                    dsv = pds.y;
                }
                Ps[key * (TILE + 1) + col] = p;
                Ds[key * (TILE + 1) + col] = dsv;
            }
            __syncwarp();
#pragma unroll
            for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
                int f = lane8 + 8 * j;
                if (f < dv) {
                    float a = gv[j];
                    #pragma unroll 8
                    for (int c = 0; c < TILE; c++) {
                        a += Ps[key * (TILE + 1) + c] * Os[c * dvs + f];
                    }
                    gv[j] = a;
                }
                if (f < d) {
                    float a = gk[j];
                    #pragma unroll 8
                    for (int c = 0; c < TILE; c++) {
                        a += Ds[key * (TILE + 1) + c] * Qs[c * ds + f];
                    }
                    gk[j] = a;
                }
            }
        }
    }
    if (s >= S) {
        return;
    }
    long long kOut = (kRow0 + s) * kvHeads + g;
#pragma unroll
    for (int j = 0; j < MAX_FEATURES_PER_THREAD; j++) {
        int f = lane8 + 8 * j;
        if (f < d) {
            stf(dk, kOut * d + f, gk[j], accumulate);
        }
        if (f < dv) {
            stf(dvOut, kOut * dv + f, gv[j], accumulate);
        }
    }
}

}  // namespace

// The entry points: each body once for BF16 q, k, v and out, once (suffix _f32) for F32.
#define ATTENTION_ENTRY_POINTS(E, SUFFIX)                                                                             \
    __global__ void attention_forward##SUFFIX(const E* __restrict__ q, const E* __restrict__ k,                       \
                                              const E* __restrict__ v, int T, int S, int heads, int kvHeads, int d,   \
                                              int dv, float scale, int queryStart, int window,                        \
                                              const float* __restrict__ sinks, E* __restrict__ out,                   \
                                              float* __restrict__ lse,                                                \
                                              const int* __restrict__ queryStartAt) {                                 \
        if (queryStartAt != nullptr) { /* as flash_attention_d64's */                                                 \
            queryStart = *queryStartAt;                                                                               \
            S = queryStart + T;                                                                                       \
        }                                                                                                             \
        attentionForward(q, k, v, T, S, heads, kvHeads, d, dv, scale, queryStart, window, sinks, out, lse);           \
    }                                                                                                                 \
    __global__ void attention_backward_prepare##SUFFIX(const float* __restrict__ dOut, const E* __restrict__ out,     \
                                                       const float* __restrict__ lse, const float* __restrict__ sinks, \
                                                       int rows, int heads, int dv, float* __restrict__ D,            \
                                                       float* __restrict__ sinkTerm) {                                \
        attentionBackwardPrepare(dOut, out, lse, sinks, rows, heads, dv, D, sinkTerm);                                \
    }                                                                                                                 \
    __global__ void attention_backward_dq##SUFFIX(const E* __restrict__ q, const E* __restrict__ k,                   \
                                                  const E* __restrict__ v, const float* __restrict__ dOut,            \
                                                  const float* __restrict__ lse, const float* __restrict__ D, int T,  \
                                                  int S, int heads, int kvHeads, int d, int dv, float scale,          \
                                                  int queryStart, int window, float* __restrict__ dq,                 \
                                                  int accumulate) {                                                   \
        attentionBackwardDq(q, k, v, dOut, lse, D, T, S, heads, kvHeads, d, dv, scale, queryStart, window, dq,        \
                            accumulate);                                                                              \
    }                                                                                                                 \
    __global__ void attention_backward_dkdv##SUFFIX(const E* __restrict__ q, const E* __restrict__ k,                 \
                                                    const E* __restrict__ v, const float* __restrict__ dOut,          \
                                                    const float* __restrict__ lse, const float* __restrict__ D,       \
                                                    int T, int S, int heads, int kvHeads, int d, int dv, float scale, \
                                                    int queryStart, int window, float* __restrict__ dk,               \
                                                    float* __restrict__ dvOut, int accumulate) {                      \
        attentionBackwardDkDv(q, k, v, dOut, lse, D, T, S, heads, kvHeads, d, dv, scale, queryStart, window, dk,      \
                              dvOut, accumulate);                                                                     \
    }

extern "C" {
ATTENTION_ENTRY_POINTS(bf16, )
ATTENTION_ENTRY_POINTS(float, _f32)
}  // extern "C"
