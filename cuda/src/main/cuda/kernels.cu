// moe4j's device kernels: conversions and random fills, and the MoE layer's routing (scores, top-k, gate weights),
// permutation of tokens into expert order, SwiGLU, combine, and the backward of each. Matrix products go through
// cuBLAS; these kernels do the rest.
// BF16 activations, FP32 arithmetic. Built to PTX by scripts/cuda/build-kernels.sh; the driver compiles the PTX
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

// ---- routing ----

// One warp per token (E ≤ 1024, k ≤ 32). scores [T, E] = softmax(logits) or sigmoid(logits); the k experts of
// largest score (+ selectionBias, which only ranks) go to choice [T, k] in descending order, the lower index first
// on a tie; weight [T, k] = scale · s / (Σ of the chosen s when normalize, else 1). Lane j keeps the j-th choice.
__global__ void route_top_k(const float* __restrict__ logits, const float* __restrict__ selectionBias, int T,
                            int E, int k, int sigmoidScoring, int normalize, float scale, float* __restrict__ scores,
                            int* __restrict__ choice, float* __restrict__ weight) {
    int t = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (t >= T) {
        return;  // the whole warp
    }
    const float* l = logits + (long long) t * E;
    float* s = scores + (long long) t * E;
    if (sigmoidScoring) {
        for (int e = lane; e < E; e += 32) {
            s[e] = sigmoidf(l[e]);
        }
    } else {
        float m = -INFINITY;
        for (int e = lane; e < E; e += 32) {
            m = fmaxf(m, l[e]);
        }
        m = warpMax(m);
        float z = 0.f;
        for (int e = lane; e < E; e += 32) {
            z += expf(l[e] - m);
        }
        float inv = 1.f / warpSum(z);
        for (int e = lane; e < E; e += 32) {
            s[e] = expf(l[e] - m) * inv;
        }
    }
    unsigned taken = 0;  // bit q: expert lane + 32·q is chosen (each lane reads back only what it wrote)
    int mine = -1;
    float mineScore = 0.f;
    for (int j = 0; j < k; j++) {
        float bestKey = -INFINITY, bestScore = 0.f;
        int best = 0x7fffffff;
        for (int q = 0, e = lane; e < E; q++, e += 32) {
            float key = s[e] + (selectionBias ? selectionBias[e] : 0.f);
            if (!(taken >> q & 1u) && (best == 0x7fffffff || key > bestKey)) {
                bestKey = key;
                bestScore = s[e];
                best = e;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float otherKey = __shfl_xor_sync(0xffffffffu, bestKey, o);
            float otherScore = __shfl_xor_sync(0xffffffffu, bestScore, o);
            int other = __shfl_xor_sync(0xffffffffu, best, o);
            if (other != 0x7fffffff && (best == 0x7fffffff || otherKey > bestKey || (otherKey == bestKey && other < best))) {
                bestKey = otherKey;
                bestScore = otherScore;
                best = other;
            }
        }
        if ((best & 31) == lane) {
            taken |= 1u << (best >> 5);
        }
        if (lane == j) {
            mine = best;
            mineScore = bestScore;
        }
    }
    float sum = warpSum(lane < k ? mineScore : 0.f);
    if (lane < k) {
        choice[(long long) t * k + lane] = mine;
        weight[(long long) t * k + lane] = scale * mineScore * (normalize ? 1.f / sum : 1.f);
    }
}

// Backward of route_top_k for the gate weights' gradient dWeight [T, k]: dLogits [T, E] (F32 and a BF16 copy for
// the router's matrix products). Normalised: w_j = c·s_j/Z, so ds_j = c·(dw_j/Z − Σ_i dw_i s_i / Z²).
__global__ void route_top_k_backward(const float* __restrict__ scores, const int* __restrict__ choice,
                                     const float* __restrict__ dWeight, int T, int E, int k, int sigmoidScoring,
                                     int normalize, float scale, float* __restrict__ dLogits,
                                     bf16* __restrict__ dLogitsBf16) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) {
        return;
    }
    const float* s = scores + (long long) t * E;
    const int* c = choice + (long long) t * k;
    const float* dw = dWeight + (long long) t * k;
    float* dl = dLogits + (long long) t * E;
    bf16* dlb = dLogitsBf16 + (long long) t * E;
    float z = 0.f, acc = 0.f;
    for (int j = 0; j < k; j++) {
        z += s[c[j]];
        acc += dw[j] * s[c[j]];
    }
    // <ds, s> over the chosen experts: the only non-zero ds.
    float dot = 0.f;
    for (int j = 0; j < k; j++) {
        float ds = normalize ? scale * (dw[j] / z - acc / (z * z)) : scale * dw[j];
        dot += ds * s[c[j]];
    }
    for (int e = 0; e < E; e++) {
        float ds = 0.f;
        for (int j = 0; j < k; j++) {
            if (c[j] == e) {
                ds = normalize ? scale * (dw[j] / z - acc / (z * z)) : scale * dw[j];
            }
        }
        float g = sigmoidScoring ? ds * s[e] * (1.f - s[e]) : s[e] * (ds - dot);
        dl[e] = g;
        dlb[e] = __float2bfloat16_rn(g);
    }
}

// ---- permutation into expert order ----

// One block per expert e (blockDim.x a multiple of 32): offsets[e] = the assignments to experts before e; the
// assignments a = t·k + j to e get rows offsets[e], offsets[e] + 1, ... in the order of a (stable, so the
// permutation is deterministic): rowOf[a] = its row, tokenOf[row] = t. Block E − 1 also writes offsets[E].
__global__ void expert_rows(const int* __restrict__ choice, int n, int k, int E, int* __restrict__ offsets,
                            int* __restrict__ rowOf, int* __restrict__ tokenOf) {
    __shared__ int warpSums[32];
    int e = blockIdx.x;
    int before = 0, mine = 0;
    for (int base = 0; base < n; base += blockDim.x) {
        int a = base + threadIdx.x;
        int ex = a < n ? choice[a] : E;
        before += __syncthreads_count(ex < e);
        mine += __syncthreads_count(ex == e);
    }
    if (threadIdx.x == 0) {
        offsets[e] = before;
        if (e == E - 1) {
            offsets[E] = before + mine;
        }
    }
    int next = before;
    for (int base = 0; base < n; base += blockDim.x) {
        int a = base + threadIdx.x;
        int flag = a < n && choice[a] == e;
        int total;
        int rank = blockExclusiveScan(flag, warpSums, &total);
        if (flag) {
            int row = next + rank;
            rowOf[a] = row;
            tokenOf[row] = a / k;
        }
        next += total;
    }
}

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

// ---- combine: expert outputs back to their tokens ----

// out[t] = Σ_j weight[t, j] · y[rowOf[t·k + j]], summed in F32 in the order of j. Grid: one block per token.
__global__ void combine(const bf16* __restrict__ y, const int* __restrict__ rowOf, const float* __restrict__ weight,
                        int T, int k, int H, bf16* __restrict__ out) {
    int t = blockIdx.x;
    if (t >= T) {
        return;
    }
    bf16* o = out + (long long) t * H;
    if ((H & 7) == 0 && aligned16(y) && aligned16(out)) {
        for (int c = threadIdx.x; c < H / 8; c += blockDim.x) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, v[8];
            for (int j = 0; j < k; j++) {
                float w = weight[(long long) t * k + j];
                unpack8(reinterpret_cast<const Bf16x8*>(y + (long long) rowOf[(long long) t * k + j] * H)[c], v);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    acc[i] += w * v[i];
                }
            }
            reinterpret_cast<Bf16x8*>(o)[c] = pack8(acc);
        }
    } else {
        for (int i = threadIdx.x; i < H; i += blockDim.x) {
            float acc = 0.f;
            for (int j = 0; j < k; j++) {
                acc += weight[(long long) t * k + j] * __bfloat162float(y[(long long) rowOf[(long long) t * k + j] * H + i]);
            }
            o[i] = __float2bfloat16_rn(acc);
        }
    }
}

// Backward of combine: dy[rowOf[t·k + j]] = weight[t, j] · dOut[t] and dWeight[t, j] = <dOut[t], y[rowOf[t·k + j]]>.
// Grid: one block per token.
__global__ void combine_backward(const bf16* __restrict__ dOut, const bf16* __restrict__ y,
                                 const int* __restrict__ rowOf, const float* __restrict__ weight, int T, int k, int H,
                                 bf16* __restrict__ dy, float* __restrict__ dWeight) {
    __shared__ float scratch[32];
    int t = blockIdx.x;
    if (t >= T) {
        return;
    }
    const bf16* d = dOut + (long long) t * H;
    bool vec = (H & 7) == 0 && aligned16(dOut) && aligned16(y) && aligned16(dy);
    for (int j = 0; j < k; j++) {
        long long row = rowOf[(long long) t * k + j];
        float w = weight[(long long) t * k + j];
        const bf16* yr = y + row * H;
        bf16* dyr = dy + row * H;
        float partial = 0.f;
        if (vec) {
            for (int c = threadIdx.x; c < H / 8; c += blockDim.x) {
                float dv[8], yv[8], o[8];
                unpack8(reinterpret_cast<const Bf16x8*>(d)[c], dv);
                unpack8(reinterpret_cast<const Bf16x8*>(yr)[c], yv);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    partial += dv[i] * yv[i];
                    o[i] = w * dv[i];
                }
                reinterpret_cast<Bf16x8*>(dyr)[c] = pack8(o);
            }
        } else {
            for (int i = threadIdx.x; i < H; i += blockDim.x) {
                float dv = __bfloat162float(d[i]);
                partial += dv * __bfloat162float(yr[i]);
                dyr[i] = __float2bfloat16_rn(w * dv);
            }
        }
        float dot = blockSum(partial, scratch);
        if (threadIdx.x == 0) {
            dWeight[(long long) t * k + j] = dot;
        }
    }
}

// dx[t] = base[t] (F32, may be null) + Σ_j dxp[rowOf[t·k + j]]: the input gradient gathered back from expert order.
// Grid: one block per token.
__global__ void scatter_back(const bf16* __restrict__ dxp, const int* __restrict__ rowOf,
                             const float* __restrict__ base, int T, int k, int H, bf16* __restrict__ dx) {
    int t = blockIdx.x;
    if (t >= T) {
        return;
    }
    bf16* o = dx + (long long) t * H;
    const float* b = base ? base + (long long) t * H : nullptr;
    if ((H & 7) == 0 && aligned16(dxp) && aligned16(dx) && (b == nullptr || aligned16(b))) {
        for (int c = threadIdx.x; c < H / 8; c += blockDim.x) {
            float acc[8], v[8];
            if (b) {
                float4 lo = reinterpret_cast<const float4*>(b)[2 * c], hi = reinterpret_cast<const float4*>(b)[2 * c + 1];
                acc[0] = lo.x; acc[1] = lo.y; acc[2] = lo.z; acc[3] = lo.w;
                acc[4] = hi.x; acc[5] = hi.y; acc[6] = hi.z; acc[7] = hi.w;
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    acc[i] = 0.f;
                }
            }
            for (int j = 0; j < k; j++) {
                unpack8(reinterpret_cast<const Bf16x8*>(dxp + (long long) rowOf[(long long) t * k + j] * H)[c], v);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    acc[i] += v[i];
                }
            }
            reinterpret_cast<Bf16x8*>(o)[c] = pack8(acc);
        }
    } else {
        for (int i = threadIdx.x; i < H; i += blockDim.x) {
            float acc = b ? b[i] : 0.f;
            for (int j = 0; j < k; j++) {
                acc += __bfloat162float(dxp[(long long) rowOf[(long long) t * k + j] * H + i]);
            }
            o[i] = __float2bfloat16_rn(acc);
        }
    }
}

// ---- decoding: a few tokens, each expert's weights read once per (token, choice), no permutation ----

// act [T·k, I] (F32) = silu(x[t]·gate_e[i]) · (x[t]·up_e[i]) for assignment a = t·k + j with e = choice[a].
// Grid (ceil(I / warps), T·k); each warp computes one i: both rows of 16-byte loads, a warp-wide reduction.
__global__ void moe_decode_gate_up(const bf16* __restrict__ x, const int* __restrict__ choice,
                                   const bf16* __restrict__ gateUp, int k, int H, int I, float* __restrict__ act) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * warps + (threadIdx.x >> 5);
    int a = blockIdx.y;
    if (i >= I) {
        return;
    }
    int e = choice[a];
    const bf16* xr = x + (long long) (a / k) * H;
    const bf16* gr = gateUp + ((long long) e * 2 * I + i) * H;
    const bf16* ur = gr + (long long) I * H;
    float g = 0.f, u = 0.f;
    if ((H & 7) == 0 && aligned16(x) && aligned16(gateUp)) {
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
    if (lane == 0) {
        act[(long long) a * I + i] = siluf(g) * u;
    }
}

// out[t, h] = Σ_j weight[t, j] · (act[t·k + j] · down_e[h]) with e = choice[t·k + j].
// Grid (ceil(H / warps), T); each warp computes one h of one token.
__global__ void moe_decode_down(const float* __restrict__ act, const int* __restrict__ choice,
                                const float* __restrict__ weight, const bf16* __restrict__ down, int k, int H, int I,
                                bf16* __restrict__ out) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int h = blockIdx.x * warps + (threadIdx.x >> 5);
    int t = blockIdx.y;
    if (h >= H) {
        return;
    }
    const int* c = choice + (long long) t * k;
    const float* w = weight + (long long) t * k;
    const float* ar = act + (long long) t * k * I;
    float total = 0.f;
    // Σ_j w_j (a_j · d_j) = Σ_c Σ_j w_j a_j[c] d_j[c]: one reduction at the end, and the k rows' loads independent.
    if ((I & 7) == 0 && aligned16(act) && aligned16(down)) {
        for (int v = lane; v < I / 8; v += 32) {
#pragma unroll 4
            for (int j = 0; j < k; j++) {
                float wf[8];
                unpack8(reinterpret_cast<const Bf16x8*>(down + ((long long) c[j] * H + h) * I)[v], wf);
                const float4* av = reinterpret_cast<const float4*>(ar + (long long) j * I);
                float4 lo = av[2 * v], hi = av[2 * v + 1];
                total += w[j] * (lo.x * wf[0] + lo.y * wf[1] + lo.z * wf[2] + lo.w * wf[3]
                               + hi.x * wf[4] + hi.y * wf[5] + hi.z * wf[6] + hi.w * wf[7]);
            }
        }
    } else {
        for (int i = lane; i < I; i += 32) {
            for (int j = 0; j < k; j++) {
                total += w[j] * ar[(long long) j * I + i] * __bfloat162float(down[((long long) c[j] * H + h) * I + i]);
            }
        }
    }
    total = warpSum(total);
    if (lane == 0) {
        out[(long long) t * H + h] = __float2bfloat16_rn(total);
    }
}

}  // extern "C"
