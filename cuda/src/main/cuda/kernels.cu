// moe4j's device kernels for the MoE layer's hot paths and for bulk data: conversions and random fills, the gather
// of tokens into expert order, SwiGLU over fused gate/up rows (forward and backward, 16-byte vectors), and a few
// routed rows through the experts in one pass (decoding). Matrix products go through cuBLAS; backend.cu has the rest.
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
    const bf16* xr = x + (long long) token[r] * H;
    const bf16* gr = reinterpret_cast<const bf16*>(gateUp[expert[r]]) + (long long) i * H;
    const bf16* ur = gr + (long long) I * H;
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
    if (lane == 0) {
        act[(long long) r * I + i] = siluf(g) * u;
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
        const float* ar = act + (long long) r * I;
        float w = weight[r], part = 0.f;
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
        total += w * part;
    }
    total = warpSum(total);
    if (lane == 0) {
        out[(long long) t * H + h] = __float2bfloat16_rn(total);
    }
}

}  // extern "C"
