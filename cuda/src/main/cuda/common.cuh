// Device helpers shared by moe4j's kernel files: 16-byte BF16 vectors, loads and stores of either element type, warp
// and block reductions, a block scan.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

namespace {

// Eight bf16 values in one 16-byte access.
struct __align__(16) Bf16x8 {
    __nv_bfloat162 h[4];
};

__device__ __forceinline__ void unpack8(const Bf16x8& v, float* f) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 p = __bfloat1622float2(v.h[i]);
        f[2 * i] = p.x;
        f[2 * i + 1] = p.y;
    }
}

__device__ __forceinline__ Bf16x8 pack8(const float* f) {
    Bf16x8 v;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        v.h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    }
    return v;
}

// Element i of a BF16 or F32 array as F32, and an F32 value stored into one (BF16 rounded to nearest even): kernels
// templated on the element type serve both of the GPU's precisions through these.
__device__ __forceinline__ float load(const bf16* p, long long i) {
    return __bfloat162float(p[i]);
}

__device__ __forceinline__ float load(const float* p, long long i) {
    return p[i];
}

__device__ __forceinline__ void store(bf16* p, long long i, float v) {
    p[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ void store(float* p, long long i, float v) {
    p[i] = v;
}

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

__device__ __forceinline__ float sigmoidf(float x) {
    return 1.f / (1.f + expf(-x));
}

__device__ __forceinline__ float siluf(float g) {
    return g * sigmoidf(g);
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

// The maximum of v over the block; every thread gets it. scratch holds 32 floats.
__device__ float blockMax(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warpMax(v);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < warps; w++) {
        m = fmaxf(m, scratch[w]);
    }
    return m;
}

// The sum of v over the block; every thread gets it. scratch holds 32 floats.
__device__ float blockSum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warpSum(v);
    __syncthreads();  // scratch may still be read from a previous call
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < warps; w++) {
        total += scratch[w];
    }
    return total;
}

// Exclusive prefix sum of flag over the block (blockDim.x a multiple of 32, at most 1024); *total gets the sum.
__device__ int blockExclusiveScan(int flag, int* warpSums, int* total) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    int x = flag;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) {
            x += y;
        }
    }
    if (lane == 31) {
        warpSums[warp] = x;
    }
    __syncthreads();
    if (warp == 0) {
        int w = lane < warps ? warpSums[lane] : 0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            int y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) {
                w += y;
            }
        }
        if (lane < warps) {
            warpSums[lane] = w;
        }
    }
    __syncthreads();
    int before = warp > 0 ? warpSums[warp - 1] : 0;
    *total = warpSums[warps - 1];
    __syncthreads();
    return before + x - flag;
}

}  // namespace
