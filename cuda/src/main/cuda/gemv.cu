// Products of a few rows (decoding: one row per sequence) against a weight matrix, without cuBLAS: y [rows, out] =
// x [rows, in] · w [out, in]ᵀ for rows ≤ 8. Such a product reads w once and does almost no arithmetic, so it is bound
// by memory, and what cublasGemmEx adds on the host per call (about as long as the product takes on the device for a
// decoding step's matrices) is what it costs. One warp per output reads w's row once in 16-byte loads for every row of
// x, F32 accumulation; w and x are BF16 or F32 (a router's F32 weights against BF16 activations widened exactly), y
// BF16 or F32 (a type flag: 0 F32, 1 BF16). Built to PTX by scripts/cuda/build-kernels.sh.
#include "common.cuh"

namespace {

constexpr int MAX_ROWS = 8;

// n consecutive values (n = 4 or 8, at an address aligned to their size) as floats.
template <int N>
__device__ __forceinline__ void loadChunk(const bf16* p, float* f) {
    if constexpr (N == 8) {
        unpack8(*reinterpret_cast<const Bf16x8*>(p), f);
    } else {
        uint2 v = *reinterpret_cast<const uint2*>(p);
        float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v.x));
        float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v.y));
        f[0] = a.x;
        f[1] = a.y;
        f[2] = b.x;
        f[3] = b.y;
    }
}

template <int N>
__device__ __forceinline__ void loadChunk(const float* p, float* f) {
#pragma unroll
    for (int h = 0; h < N / 4; h++) {
        float4 v = reinterpret_cast<const float4*>(p)[h];
        f[4 * h] = v.x;
        f[4 * h + 1] = v.y;
        f[4 * h + 2] = v.z;
        f[4 * h + 3] = v.w;
    }
}

template <typename W, typename X>
__device__ __forceinline__ void gemv(const X* __restrict__ x, const W* __restrict__ w, int rows, int in, int out,
                                     void* __restrict__ y, int yBf16) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    int o = blockIdx.x * warps + (threadIdx.x >> 5);
    if (o >= out) {
        return;
    }
    const W* wr = w + (long long) o * in;
    float acc[MAX_ROWS];
#pragma unroll
    for (int r = 0; r < MAX_ROWS; r++) {
        acc[r] = 0.f;
    }
    constexpr int C = 16 / sizeof(W);  // w's values per 16-byte load
    if ((in & 7) == 0 && aligned16(wr) && aligned16(x)) {
        for (int c = lane * C; c < in; c += 32 * C) {
            float wf[C];
            loadChunk<C>(wr + c, wf);
#pragma unroll
            for (int r = 0; r < MAX_ROWS; r++) {
                if (r < rows) {
                    float xf[C];
                    loadChunk<C>(x + (long long) r * in + c, xf);
#pragma unroll
                    for (int q = 0; q < C; q++) {
                        acc[r] += xf[q] * wf[q];
                    }
                }
            }
        }
    } else {
        for (int c = lane; c < in; c += 32) {
            float wv = load(wr, c);
#pragma unroll
            for (int r = 0; r < MAX_ROWS; r++) {
                if (r < rows) {
                    acc[r] += load(x, (long long) r * in + c) * wv;
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < MAX_ROWS; r++) {
        if (r < rows) {
            float v = warpSum(acc[r]);
            if (lane == 0) {
                if (yBf16) {
                    store(static_cast<bf16*>(y), (long long) r * out + o, v);
                } else {
                    store(static_cast<float*>(y), (long long) r * out + o, v);
                }
            }
        }
    }
}

}  // namespace

extern "C" {

// Grid: ceil(out / warps per block) blocks; rows ≤ 8.
__global__ void gemv_w16_x16(const bf16* x, const bf16* w, int rows, int in, int out, void* y, int yBf16) {
    gemv(x, w, rows, in, out, y, yBf16);
}

__global__ void gemv_w16_x32(const float* x, const bf16* w, int rows, int in, int out, void* y, int yBf16) {
    gemv(x, w, rows, in, out, y, yBf16);
}

__global__ void gemv_w32_x16(const bf16* x, const float* w, int rows, int in, int out, void* y, int yBf16) {
    gemv(x, w, rows, in, out, y, yBf16);
}

__global__ void gemv_w32_x32(const float* x, const float* w, int rows, int in, int out, void* y, int yBf16) {
    gemv(x, w, rows, in, out, y, yBf16);
}

}  // extern "C"
