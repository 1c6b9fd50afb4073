// moe4j's device kernels for the MoE layer's hot paths and for bulk data: conversions and random fills, the gather
// of tokens into expert order, SwiGLU over fused gate/up rows (forward and backward, 16-byte vectors), and a few
// routed rows through the experts in one pass (decoding). Matrix products go through cuBLAS; backend.cu has the rest.
// Token-choice routing itself runs here too for decoding steps (route_top_k), so that their expert choices never
// visit the host. BF16 activations, FP32 arithmetic. Built to PTX by scripts/cuda/build-kernels.sh; the driver compiles the PTX
// for the GPU it finds when the module is loaded.
#include "common.cuh"

extern "C" {

// ---- conversions ----

__global__ void convert_f32_to_bf16(const float* __restrict__ in, bf16* __restrict__ out, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = __float2bfloat16_rn(in[i]);
    }
}

__global__ void convert_bf16_to_f32(const bf16* __restrict__ in, float* __restrict__ out, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = __bfloat162float(in[i]);
    }
}

// Normal values of standard deviation std (bf16), from a counter-based hash of (seed, index): the same seed gives
// the same tensor on any launch shape, and large weights never cross the PCIe bus.
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__global__ void fill_normal_bf16(bf16* __restrict__ out, long long n, unsigned long long seed, float std) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        unsigned long long h = mix64(seed * 0x9e3779b97f4a7c15ULL + (unsigned long long) i);
        float u1 = ((h >> 40) + 1) * (1.f / 16777217.f), u2 = ((h >> 16) & 0xffffff) * (1.f / 16777216.f);
        out[i] = __float2bfloat16_rn(std * sqrtf(-2.f * logf(u1)) * cospif(2.f * u2));
    }
}

// ---- permutation into expert order ----

// out[r] = x[tokenOf[r]] for rows r of width H (bf16). Grid: one block per row.
__global__ void gather_rows(const bf16* __restrict__ x, const int* __restrict__ tokenOf, int rows, int H,
                            bf16* __restrict__ out) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    const bf16* src = x + (long long) tokenOf[r] * H;
    bf16* dst = out + (long long) r * H;
    if ((H & 7) == 0 && aligned16(src) && aligned16(dst)) {
        const uint4* s = reinterpret_cast<const uint4*>(src);
        uint4* d = reinterpret_cast<uint4*>(dst);
        for (int i = threadIdx.x; i < H / 8; i += blockDim.x) {
            d[i] = s[i];
        }
    } else {
        for (int i = threadIdx.x; i < H; i += blockDim.x) {
            dst[i] = src[i];
        }
    }
}

// ---- SwiGLU over [gate | up] rows ----

// a [rows, I] = silu(gate) · up, gate and up the two halves of gu [rows, 2I].
__global__ void swiglu_forward(const bf16* __restrict__ gu, int rows, int I, bf16* __restrict__ a) {
    long long stride = (long long) gridDim.x * blockDim.x;
    if ((I & 7) == 0 && aligned16(gu) && aligned16(a)) {
        long long per = I / 8, n = (long long) rows * per;
        for (long long v = blockIdx.x * (long long) blockDim.x + threadIdx.x; v < n; v += stride) {
            long long r = v / per, c = v % per;
            const Bf16x8* row = reinterpret_cast<const Bf16x8*>(gu + r * 2 * I);
            float g[8], u[8], o[8];
            unpack8(row[c], g);
            unpack8(row[per + c], u);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                o[i] = siluf(g[i]) * u[i];
            }
            reinterpret_cast<Bf16x8*>(a + r * I)[c] = pack8(o);
        }
    } else {
        long long n = (long long) rows * I;
        for (long long v = blockIdx.x * (long long) blockDim.x + threadIdx.x; v < n; v += stride) {
            long long r = v / I, i = v % I;
            float g = __bfloat162float(gu[r * 2 * I + i]), u = __bfloat162float(gu[r * 2 * I + I + i]);
            a[v] = __float2bfloat16_rn(siluf(g) * u);
        }
    }
}

// dgu [rows, 2I] from da [rows, I] and the forward's gu: d gate = da·up·silu'(gate), d up = da·silu(gate).
__global__ void swiglu_backward(const bf16* __restrict__ gu, const bf16* __restrict__ da, int rows, int I,
                                bf16* __restrict__ dgu) {
    long long stride = (long long) gridDim.x * blockDim.x;
    if ((I & 7) == 0 && aligned16(gu) && aligned16(da) && aligned16(dgu)) {
        long long per = I / 8, n = (long long) rows * per;
        for (long long v = blockIdx.x * (long long) blockDim.x + threadIdx.x; v < n; v += stride) {
            long long r = v / per, c = v % per;
            const Bf16x8* row = reinterpret_cast<const Bf16x8*>(gu + r * 2 * I);
            float g[8], u[8], d[8], dg[8], du[8];
            unpack8(row[c], g);
            unpack8(row[per + c], u);
            unpack8(reinterpret_cast<const Bf16x8*>(da + r * I)[c], d);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float sg = sigmoidf(g[i]);
                dg[i] = d[i] * u[i] * sg * (1.f + g[i] * (1.f - sg));
                du[i] = d[i] * g[i] * sg;
            }
            Bf16x8* out = reinterpret_cast<Bf16x8*>(dgu + r * 2 * I);
            out[c] = pack8(dg);
            out[per + c] = pack8(du);
        }
    } else {
        long long n = (long long) rows * I;
        for (long long v = blockIdx.x * (long long) blockDim.x + threadIdx.x; v < n; v += stride) {
            long long r = v / I, i = v % I;
            float g = __bfloat162float(gu[r * 2 * I + i]), u = __bfloat162float(gu[r * 2 * I + I + i]);
            float d = __bfloat162float(da[v]), sg = sigmoidf(g);
            dgu[r * 2 * I + i] = __float2bfloat16_rn(d * u * sg * (1.f + g * (1.f - sg)));
            dgu[r * 2 * I + I + i] = __float2bfloat16_rn(d * g * sg);
        }
    }
}

// ---- a few routed rows through SwiGLU experts, each chosen expert's weights read once, no permutation ----

}  // extern "C"

namespace {

// silu(x·gate) · (x·up) for one intermediate unit, summed over the warp: gate and up are one row each of an
// expert's [2I, H] (gate rows, then up rows); 16-byte loads where H and the rows allow.
__device__ __forceinline__ float gateUpUnit(const bf16* __restrict__ xr, const bf16* __restrict__ gr,
                                           const bf16* __restrict__ ur, int H, int lane) {
    float g = 0.f, u = 0.f;
    if ((H & 7) == 0 && aligned16(xr) && aligned16(gr) && aligned16(ur)) {
        const Bf16x8* xv = reinterpret_cast<const Bf16x8*>(xr);
        const Bf16x8* gv = reinterpret_cast<const Bf16x8*>(gr);
        const Bf16x8* uv = reinterpret_cast<const Bf16x8*>(ur);
        for (int c = lane; c < H / 8; c += 32) {
            float xf[8], gf[8], uf[8];
            unpack8(xv[c], xf);
            unpack8(gv[c], gf);
            unpack8(uv[c], uf);
#pragma unroll
            for (int q = 0; q < 8; q++) {
                g += xf[q] * gf[q];
                u += xf[q] * uf[q];
            }
        }
    } else {
        for (int c = lane; c < H; c += 32) {
            float xf = __bfloat162float(xr[c]);
            g += xf * __bfloat162float(gr[c]);
            u += xf * __bfloat162float(ur[c]);
        }
    }
    g = warpSum(g);
    u = warpSum(u);
    return siluf(g) * u;
}

// The lane's part of act · down row (F32 activations [I], one BF16 row of an expert's [H, I]).
__device__ __forceinline__ float downPart(const float* __restrict__ ar, const bf16* __restrict__ dr, int I, int lane) {
    float part = 0.f;
    if ((I & 7) == 0 && aligned16(dr) && aligned16(ar)) {
        for (int v = lane; v < I / 8; v += 32) {
            float wf[8];
            unpack8(reinterpret_cast<const Bf16x8*>(dr)[v], wf);
            const float4* av = reinterpret_cast<const float4*>(ar);
            float4 lo = av[2 * v], hi = av[2 * v + 1];
            part += lo.x * wf[0] + lo.y * wf[1] + lo.z * wf[2] + lo.w * wf[3]
                  + hi.x * wf[4] + hi.y * wf[5] + hi.z * wf[6] + hi.w * wf[7];
        }
    } else {
        for (int i = lane; i < I; i += 32) {
            part += ar[i] * __bfloat162float(dr[i]);
        }
    }
    return part;
}

}  // namespace

extern "C" {

// act [rows, I] (F32) = silu(x[token[r]]·gate_e[i]) · (x[token[r]]·up_e[i]) for routed row r with e = expert[r];
// gateUp[e] points at expert e's [2I, H] rows (gate rows, then up rows). Grid (ceil(I / warps), rows); each warp
// computes one i with 16-byte loads and a warp-wide reduction.
__global__ void moe_rows_gate_up(const bf16* __restrict__ x, const int* __restrict__ token,
                                 const int* __restrict__ expert, const long long* __restrict__ gateUp, int H, int I,
                                 float* __restrict__ act) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * warps + (threadIdx.x >> 5);
    int r = blockIdx.y;
    if (i >= I) {
        return;
    }
    const bf16* gr = reinterpret_cast<const bf16*>(gateUp[expert[r]]) + (long long) i * H;
    float a = gateUpUnit(x + (long long) token[r] * H, gr, gr + (long long) I * H, H, lane);
    if (lane == 0) {
        act[(long long) r * I + i] = a;
    }
}

// out[t, h] = Σ over the routed rows r of token t (rows in order) of weight[r] · (act[r] · down_e[h]), e = expert[r];
// down[e] points at expert e's [H, I]. Grid (ceil(H / warps), tokens); each warp computes one h of one token.
__global__ void moe_rows_down(const float* __restrict__ act, const int* __restrict__ token,
                              const int* __restrict__ expert, const float* __restrict__ weight,
                              const long long* __restrict__ down, int rows, int H, int I, bf16* __restrict__ out) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int h = blockIdx.x * warps + (threadIdx.x >> 5);
    int t = blockIdx.y;
    if (h >= H) {
        return;
    }
    float total = 0.f;
    for (int r = 0; r < rows; r++) {
        if (token[r] != t) {
            continue;
        }
        const bf16* dr = reinterpret_cast<const bf16*>(down[expert[r]]) + (long long) h * I;
        total += weight[r] * downPart(act + (long long) r * I, dr, I, lane);
    }
    total = warpSum(total);
    if (lane == 0) {
        out[(long long) t * H + h] = __float2bfloat16_rn(total);
    }
}

// moe_rows_gate_up for rows as route_top_k leaves them: row r is choice r % k of token r / k, of expert expert[r]
// (−1: none, whose activations are zero). Grid (ceil(I / warps), tokens · k).
__global__ void moe_routed_gate_up(const bf16* __restrict__ x, const int* __restrict__ expert, int k,
                                   const long long* __restrict__ gateUp, int H, int I, float* __restrict__ act) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * warps + (threadIdx.x >> 5);
    int r = blockIdx.y, e = expert[r];
    if (i >= I) {
        return;
    }
    float a = 0.f;
    if (e >= 0) {
        const bf16* gr = reinterpret_cast<const bf16*>(gateUp[e]) + (long long) i * H;
        a = gateUpUnit(x + (long long) (r / k) * H, gr, gr + (long long) I * H, H, lane);
    }
    if (lane == 0) {
        act[(long long) r * I + i] = a;
    }
}

// moe_rows_down for rows as route_top_k leaves them: token t sums its k choices in their order, weight[t·k + j] ·
// (act[t·k + j] · down_e[h]). Grid (ceil(H / warps), tokens).
__global__ void moe_routed_down(const float* __restrict__ act, const int* __restrict__ expert,
                                const float* __restrict__ weight, int k, const long long* __restrict__ down, int H,
                                int I, bf16* __restrict__ out) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int h = blockIdx.x * warps + (threadIdx.x >> 5);
    int t = blockIdx.y;
    if (h >= H) {
        return;
    }
    float total = 0.f;
    for (int j = 0; j < k; j++) {
        int r = t * k + j, e = expert[r];
        if (e < 0) {
            continue;
        }
        const bf16* dr = reinterpret_cast<const bf16*>(down[e]) + (long long) h * I;
        total += weight[r] * downPart(act + (long long) r * I, dr, I, lane);
    }
    total = warpSum(total);
    if (lane == 0) {
        out[(long long) t * H + h] = __float2bfloat16_rn(total);
    }
}

// ---- token-choice routing on the device (decoding): the host's TopKRouter, choice for choice ----

}  // extern "C"

namespace {

// Limits of route_top_k, which the backend checks before launching it.
constexpr int MAX_ROUTING_GROUPS = 64;
constexpr int MAX_SCORED_PER_GROUP = 8;

// Whether (va, ia) ranks before (vb, ib): larger first, ties to the lower index, NaN before any number. This is
// core's TopK.before, so that the device breaks ties as the host's router does.
__device__ __forceinline__ bool ranksBefore(float va, int ia, float vb, int ib) {
    if (va > vb) {
        return true;
    }
    if (va == vb) {
        return ia < ib;
    }
    if (va < vb) {
        return false;
    }
    bool aNaN = isnan(va), bNaN = isnan(vb);
    return aNaN && (!bNaN || ia < ib);
}

// The host router's sigmoid (RouterMath.sigmoid): in double, rounded to float once, so the scores are the host's.
__device__ __forceinline__ float routerSigmoid(float x) {
    return (float) (1.0 / (1.0 + exp(-(double) x)));
}

// The index of the best entry of key[0, n) not yet taken, the same on every lane of the warp (−1 if all are taken).
__device__ int warpBest(const float* key, const unsigned char* taken, int n, int lane) {
    float bv = 0.f;
    int bi = -1;
    for (int i = lane; i < n; i += 32) {
        if (!taken[i] && (bi < 0 || ranksBefore(key[i], i, bv, bi))) {
            bv = key[i];
            bi = i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ranksBefore(ov, oi, bv, bi))) {
            bv = ov;
            bi = oi;
        }
    }
    return bi;
}

// The best m (at most M, and at most n) of values[from, from + n) into top, relative to from, best first, as core's
// TopK.row orders them.
template <int M>
__device__ void insertTopK(const float* values, int from, int n, int m, int* top) {
    float best[M];
    int size = 0;
    for (int j = 0; j < n; j++) {
        float v = values[from + j];
        if (size == m && !ranksBefore(v, j, best[m - 1], top[m - 1])) {
            continue;
        }
        int pos = size < m ? size : m - 1;
        while (pos > 0 && ranksBefore(v, j, best[pos - 1], top[pos - 1])) {
            best[pos] = best[pos - 1];
            top[pos] = top[pos - 1];
            pos--;
        }
        best[pos] = v;
        top[pos] = j;
        size = size < m ? size + 1 : m;
    }
}

}  // namespace

extern "C" {

// Routes token t = blockIdx.x (one warp per token) from its logits [E] as TopKRouter does at inference without a
// capacity limit: scores (sigmoid per expert, or softmax over the row) when scoreFirst; the key that ranks the experts
// (the scores, or with !scoreFirst the logits, plus the selection bias when given); group-limited selection when
// groups > 0 (a group scores the sum of its best scoredPerGroup keys; the topGroups best groups stay, ties to the
// lower group); the k best keys in order (masked −∞ ones as −1); and the gate weights, c·s / Σ s over the chosen
// (Σ only when normalize) or c·softmax over the chosen experts' logits, summed in choice order as the host does.
// Shared memory: 9·E bytes (+ the groups' scores).
__global__ void route_top_k(const float* __restrict__ logits, int E, int k, int scoreFirst, int sigmoid,
                            int normalize, float scaling, const float* __restrict__ bias, int groups, int topGroups,
                            int scoredPerGroup, int* __restrict__ experts, float* __restrict__ weights) {
    extern __shared__ float shared[];
    float* score = shared;
    float* key = shared + E;
    float* groupScore = key + E;
    unsigned char* taken = reinterpret_cast<unsigned char*>(groupScore + MAX_ROUTING_GROUPS);
    __shared__ int choice[64];
    int t = blockIdx.x, lane = threadIdx.x;
    const float* l = logits + (long long) t * E;
    if (scoreFirst && sigmoid) {
        for (int i = lane; i < E; i += 32) {
            score[i] = routerSigmoid(l[i]);
        }
    } else if (scoreFirst) {
        float m = -INFINITY;
        for (int i = lane; i < E; i += 32) {
            m = fmaxf(m, l[i]);
        }
        m = warpMax(m);
        float sum = 0.f;
        for (int i = lane; i < E; i += 32) {
            score[i] = (float) exp((double) (l[i] - m));
            sum += score[i];
        }
        sum = warpSum(sum);
        for (int i = lane; i < E; i += 32) {
            score[i] = score[i] / sum;
        }
    }
    for (int i = lane; i < E; i += 32) {
        float v = scoreFirst ? score[i] : l[i];
        key[i] = bias != nullptr ? v + bias[i] : v;
        taken[i] = 0;
    }
    __syncwarp();
    if (groups > 0) {
        int per = E / groups;
        for (int g = lane; g < groups; g += 32) {
            int top[MAX_SCORED_PER_GROUP];
            insertTopK<MAX_SCORED_PER_GROUP>(key, g * per, per, scoredPerGroup, top);
            // a masked expert (−∞) does not count; a group of masked experts only is never chosen
            float s = -INFINITY;
            for (int j = 0; j < scoredPerGroup && key[g * per + top[j]] != -INFINITY; j++) {
                s = j == 0 ? key[g * per + top[j]] : s + key[g * per + top[j]];
            }
            groupScore[g] = s;
        }
        __syncwarp();
        if (lane == 0) {
            int kept[MAX_ROUTING_GROUPS];
            insertTopK<MAX_ROUTING_GROUPS>(groupScore, 0, groups, topGroups, kept);
            for (int g = 0; g < groups; g++) {
                bool keep = false;
                for (int j = 0; j < topGroups && groupScore[kept[j]] != -INFINITY; j++) {
                    keep |= kept[j] == g;
                }
                taken[g] = keep;  // borrowed as the group's flag until the experts are masked below
            }
        }
        __syncwarp();
        for (int i = lane; i < E; i += 32) {
            if (!taken[i / per]) {
                key[i] = -INFINITY;
            }
        }
        __syncwarp();
        for (int g = lane; g < groups; g += 32) {
            taken[g] = 0;
        }
        __syncwarp();
    }
    for (int j = 0; j < k; j++) {
        int best = warpBest(key, taken, E, lane);
        if (lane == 0) {
            choice[j] = best >= 0 && key[best] != -INFINITY ? best : -1;
            if (best >= 0) {
                taken[best] = 1;
            }
        }
        __syncwarp();
    }
    if (lane != 0) {
        return;
    }
    int* out = experts + (long long) t * k;
    float* w = weights + (long long) t * k;
    if (scoreFirst) {
        float z = 0.f;
        for (int j = 0; j < k; j++) {
            if (choice[j] >= 0) {
                z += score[choice[j]];
            }
        }
        float d = normalize ? z : 1.f;
        for (int j = 0; j < k; j++) {
            out[j] = choice[j];
            w[j] = choice[j] >= 0 && d > 0.f ? scaling * score[choice[j]] / d : 0.f;
        }
    } else {
        float m = -INFINITY;
        for (int j = 0; j < k; j++) {
            if (choice[j] >= 0) {
                m = fmaxf(m, l[choice[j]]);
            }
        }
        float sum = 0.f;
        for (int j = 0; j < k; j++) {
            if (choice[j] >= 0) {
                score[choice[j]] = (float) exp((double) (l[choice[j]] - m));
                sum += score[choice[j]];
            }
        }
        for (int j = 0; j < k; j++) {
            out[j] = choice[j];
            w[j] = choice[j] >= 0 ? scaling * (score[choice[j]] / sum) / 1.f : 0.f;
        }
    }
}

}  // extern "C"
