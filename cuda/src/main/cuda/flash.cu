// Causal attention forward on the tensor cores, flash attention's way: a block of 4 warps takes 64 query rows of one
// head, each warp 16; key and value tiles of 64 rows stream through shared memory in two stages (cp.async, the next
// tile loading while this one is used); S = Q·Kᵀ and O += P·V are bf16 mma.sync.m16n8k16 products with F32
// accumulators, and the softmax is online (running row maximum and sum in registers, exp2 with the scale folded
// in). P never leaves the registers: the accumulator layout of S is the A-operand layout of P·V.
//
// Same arguments and semantics as attention_forward (attention.cu): grouped key/value heads, causal with a query
// offset (decoding against a cache), a sliding window, sinks that join every softmax with no value, log-sum-exps
// for the backward pass. Head dimension D = dv ∈ {64, 128}.
//
// The backward pass, flash attention 2's way, follows the forward below it.
#include "common.cuh"

namespace {

constexpr int BM = 64;   // query rows per block (16 per warp)
constexpr int BN = 64;   // keys per tile
constexpr int PAD = 8;   // bf16 elements of padding per shared row: conflict-free 32-bit and ldmatrix reads
constexpr int WARPS = 4;
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

__device__ __forceinline__ unsigned smemAddress(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared without passing through registers; zeros when !valid (nothing is read then).
__device__ __forceinline__ void copy16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddress(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}

// 4 bytes global → shared (a row statistic), zero when !valid.
__device__ __forceinline__ void copy4(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smemAddress(dst)), "l"(src),
                 "r"(valid ? 4 : 0));
}

__device__ __forceinline__ void commitCopies() {
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N>
__device__ __forceinline__ void waitCopies() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// c (16×8, F32) += a (16×16, bf16, row-major fragment) · b (16×8, bf16, column-major fragment).
__device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8×8 bf16 matrices from shared memory, transposed: lane l gives the row address of matrix l / 8.
__device__ __forceinline__ void loadTransposed(unsigned address, unsigned& r0, unsigned& r1, unsigned& r2,
                                               unsigned& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(address));
}

__device__ __forceinline__ unsigned pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

__device__ __forceinline__ unsigned load32(const bf16* p) {
    return *reinterpret_cast<const unsigned*>(p);
}

template <int D>
__device__ void flashForward(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, int T,
                             int S, int heads, int kvHeads, float scale, int queryStart, int window,
                             const float* __restrict__ sinks, bf16* __restrict__ out, float* __restrict__ lse) {
    constexpr int LD = D + PAD;
    constexpr int KC = D / 16;   // k-chunks of the score product
    constexpr int NT = BN / 8;   // 8-key column tiles of S
    constexpr int DT = D / 8;    // 8-feature column tiles of O
    extern __shared__ __align__(16) unsigned char smemBytes[];
    bf16* smem = reinterpret_cast<bf16*>(smemBytes);  // [stage][K | V][BN][LD]

    const int h = blockIdx.y, kvh = h / (heads / kvHeads), b = blockIdx.z;
    const int t0 = blockIdx.x * BM;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const long long qStride = (long long) heads * D, kvStride = (long long) kvHeads * D;
    const bf16* qBase = q + (long long) b * T * qStride + (long long) h * D;
    const bf16* kBase = k + (long long) b * S * kvStride + (long long) kvh * D;
    const bf16* vBase = v + (long long) b * S * kvStride + (long long) kvh * D;

    // This thread's two query rows: g and g + 8 of the warp's 16.
    const int row0 = t0 + warp * 16 + g, row1 = row0 + 8;
    const int pos0 = queryStart + row0, pos1 = queryStart + row1;

    unsigned qa[KC][4];
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
        int col = kc * 16 + 2 * tg;
        qa[kc][0] = row0 < T ? load32(qBase + row0 * qStride + col) : 0u;
        qa[kc][1] = row1 < T ? load32(qBase + row1 * qStride + col) : 0u;
        qa[kc][2] = row0 < T ? load32(qBase + row0 * qStride + col + 8) : 0u;
        qa[kc][3] = row1 < T ? load32(qBase + row1 * qStride + col + 8) : 0u;
    }

    float o[DT][4];
#pragma unroll
    for (int n = 0; n < DT; n++) {
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    }
    // Running maximum (log2 units) and this thread's part of the running sum; a sink starts every row at its value.
    float m0 = sinks ? sinks[h] * LOG2E : -INFINITY, m1 = m0;
    float l0 = sinks && tg == 0 ? 1.f : 0.f, l1 = l0;
    const float scaleLog2 = scale * LOG2E;

    const int tLast = min(T - 1, t0 + BM - 1);
    const int firstKey = window > 0 ? max(0, queryStart + t0 - window + 1) : 0;
    const int lastKey = min(S - 1, queryStart + tLast);
    const int sStart = firstKey - firstKey % BN;
    const int tiles = lastKey >= sStart ? (lastKey - sStart) / BN + 1 : 0;

    auto loadTile = [&](int stage, int s0) {
        bf16* ks = smem + stage * 2 * BN * LD;
        bf16* vs = ks + BN * LD;
        for (int c = threadIdx.x; c < BN * (D / 8); c += WARPS * 32) {
            int r = c / (D / 8), col = (c % (D / 8)) * 8, s = s0 + r;
            bool valid = s < S;
            long long at = (long long) (valid ? s : 0) * kvStride + col;
            copy16(ks + r * LD + col, kBase + at, valid);
            copy16(vs + r * LD + col, vBase + at, valid);
        }
        commitCopies();
    };

    // The warp's rows: which tiles need no mask at all (every key visible to every row of the warp).
    const int warpFirst = t0 + warp * 16, warpLast = warpFirst + 15;
    if (tiles > 0) {
        loadTile(0, sStart);
    }
    for (int it = 0; it < tiles; it++) {
        const int s0 = sStart + it * BN;
        if (it + 1 < tiles) {
            loadTile((it + 1) & 1, s0 + BN);
            waitCopies<1>();
        } else {
            waitCopies<0>();
        }
        __syncthreads();
        const bf16* ks = smem + (it & 1) * 2 * BN * LD;
        const bf16* vs = ks + BN * LD;

        float s[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
        }
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const bf16* kr = ks + (j * 8 + g) * LD + kc * 16 + 2 * tg;
                mma(s[j], qa[kc], load32(kr), load32(kr + 8));
            }
        }

        const bool full = warpLast < T && s0 + BN - 1 <= queryStart + warpFirst && s0 + BN <= S
                && (window <= 0 || s0 > queryStart + warpLast - window);
        float tileMax0 = -INFINITY, tileMax1 = -INFINITY;
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[j][e] * scaleLog2;
                if (!full) {
                    int key = s0 + j * 8 + 2 * tg + (e & 1), row = e < 2 ? row0 : row1, pos = e < 2 ? pos0 : pos1;
                    bool visible = row < T && key < S && key <= pos && (window <= 0 || key > pos - window);
                    x = visible ? x : -INFINITY;
                }
                s[j][e] = x;
            }
            tileMax0 = fmaxf(tileMax0, fmaxf(s[j][0], s[j][1]));
            tileMax1 = fmaxf(tileMax1, fmaxf(s[j][2], s[j][3]));
        }
        // The four threads of a quad share rows g and g + 8.
        tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 1));
        tileMax0 = fmaxf(tileMax0, __shfl_xor_sync(0xffffffffu, tileMax0, 2));
        tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 1));
        tileMax1 = fmaxf(tileMax1, __shfl_xor_sync(0xffffffffu, tileMax1, 2));
        const float new0 = fmaxf(m0, tileMax0), new1 = fmaxf(m1, tileMax1);
        // A row that has seen nothing yet keeps 0 as its reference, so exp2 never meets −∞ − (−∞).
        const float ref0 = new0 == -INFINITY ? 0.f : new0, ref1 = new1 == -INFINITY ? 0.f : new1;
        const float alpha0 = exp2f(m0 - ref0), alpha1 = exp2f(m1 - ref1);
        m0 = new0;
        m1 = new1;
        float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            s[j][0] = exp2f(s[j][0] - ref0);
            s[j][1] = exp2f(s[j][1] - ref0);
            s[j][2] = exp2f(s[j][2] - ref1);
            s[j][3] = exp2f(s[j][3] - ref1);
            sum0 += s[j][0] + s[j][1];
            sum1 += s[j][2] + s[j][3];
        }
        l0 = l0 * alpha0 + sum0;
        l1 = l1 * alpha1 + sum1;
#pragma unroll
        for (int n = 0; n < DT; n++) {
            o[n][0] *= alpha0;
            o[n][1] *= alpha0;
            o[n][2] *= alpha1;
            o[n][3] *= alpha1;
        }

        // O += P · V, 16 keys at a time: S tiles 2c and 2c + 1 are the A fragment of keys [16c, 16c + 16).
#pragma unroll
        for (int c = 0; c < BN / 16; c++) {
            unsigned pa[4] = {pack(s[2 * c][0], s[2 * c][1]), pack(s[2 * c][2], s[2 * c][3]),
                              pack(s[2 * c + 1][0], s[2 * c + 1][1]), pack(s[2 * c + 1][2], s[2 * c + 1][3])};
            const int key = c * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
#pragma unroll
            for (int n = 0; n < DT; n += 2) {
                unsigned b0, b1, b2, b3;
                loadTransposed(smemAddress(vs + key * LD + (n + (lane >> 4)) * 8), b0, b1, b2, b3);
                mma(o[n], pa, b0, b1);
                mma(o[n + 1], pa, b2, b3);
            }
        }
        __syncthreads();  // every warp is done with this stage before the next load overwrites it
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    const long long outStride = (long long) heads * D;
    bf16* outBase = out + (long long) b * T * outStride + (long long) h * D;
#pragma unroll
    for (int n = 0; n < DT; n++) {
        int col = n * 8 + 2 * tg;
        if (row0 < T) {
            *reinterpret_cast<unsigned*>(outBase + row0 * outStride + col) = pack(o[n][0] * inv0, o[n][1] * inv0);
        }
        if (row1 < T) {
            *reinterpret_cast<unsigned*>(outBase + row1 * outStride + col) = pack(o[n][2] * inv1, o[n][3] * inv1);
        }
    }
    if (lse && tg == 0) {
        long long rows0 = (long long) b * T;
        if (row0 < T) {
            lse[(rows0 + row0) * heads + h] = (m0 + log2f(l0)) * LN2;
        }
        if (row1 < T) {
            lse[(rows0 + row1) * heads + h] = (m1 + log2f(l1)) * LN2;
        }
    }
}

// ---- backward ----
//
// A block of 4 warps owns 64 keys (each warp 16) for one query head and keeps their dK and dV in registers while
// every query tile of that head that can see them streams through shared memory (Q and dO in two cp.async stages).
// One query head per block rather than the key/value head's whole group: under the causal mask early keys see far
// more queries than late ones, and a block per group made the first tiles' blocks the critical path (4096 tokens,
// 16/4 heads, d 64: 1.22 ms, against 0.79 ms with a block per head); the group's blocks add their dK and dV with
// atomics (plain adds when the group is one head). Per query tile of 64 rows, all in the transposed orientation so
// that the warp's keys are the rows of every product it accumulates:
//   Sᵀ = K·Qᵀ, Pᵀ = exp(Sᵀ·scale − lse), dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ ⊙ (dPᵀ − D), dK += dSᵀ·Q,
// where the accumulator layout of Pᵀ and dSᵀ is the A-operand layout of the next product (as P in the forward). dQ
// needs dS with queries as rows: dSᵀ goes to shared memory, each warp then takes 16 query rows of dS·K (ldmatrix
// .trans reads dSᵀ as dS's A fragments) and adds them to the F32 dq with atomics. D = rowsum(dO ⊙ O) comes from
// attention_backward_prepare; the scale is applied once, to dK and dQ.
constexpr int BKV = 64;  // keys per block (16 per warp)
constexpr int BQ = 64;   // query rows per step (16 per warp in dS·K)
constexpr int DQ_CHUNK = 64;  // features of dQ accumulated at a time: 32 registers, where all of d 128 would take 64

template <int D>
__device__ void flashBackward(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                              const bf16* __restrict__ dOut, const float* __restrict__ lse,
                              const float* __restrict__ rowD, int T, int S, int heads, int kvHeads, float scale,
                              int queryStart, int window, float* __restrict__ dq, float* __restrict__ dk,
                              float* __restrict__ dv) {
    constexpr int LD = D + PAD;
    constexpr int LDS = BQ + PAD;
    constexpr int KC = D / 16;
    constexpr int NT = BQ / 8;   // 8-query column tiles of Sᵀ
    constexpr int DT = D / 8;    // 8-feature column tiles of dK and dV
    static_assert(BQ == 16 * WARPS && BKV == 16 * WARPS, "one 16-row slice per warp");
    extern __shared__ __align__(16) unsigned char smemBytes[];
    bf16* ks = reinterpret_cast<bf16*>(smemBytes);  // [BKV][LD]
    bf16* vs = ks + BKV * LD;                       // [BKV][LD]
    bf16* dss = vs + BKV * LD;                      // dSᵀ [BKV][LDS]
    bf16* stages = dss + BKV * LDS;                 // [stage][Q | dO][BQ][LD]
    float* stats = reinterpret_cast<float*>(stages + 2 * 2 * BQ * LD);  // [stage][lse | D][BQ]

    const int h = blockIdx.x, s0 = blockIdx.y * BKV, b = blockIdx.z, group = heads / kvHeads, kvh = h / group;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const long long qStride = (long long) heads * D, kvStride = (long long) kvHeads * D;

    // Query rows that can see a key of this block: positions from s0 on and, with a window, before s0 + BKV − 1 + window.
    const int tFrom = max(0, s0 - queryStart);
    const int tTo = window > 0 ? min(T, s0 + BKV - 1 + window - queryStart) : T;
    const int qFirst = tFrom - tFrom % BQ;
    const int qTiles = tTo > tFrom ? (tTo - qFirst + BQ - 1) / BQ : 0;
    const int steps = qTiles;
    if (steps == 0) {
        return;
    }

    for (int c = threadIdx.x; c < BKV * (D / 8); c += WARPS * 32) {
        int r = c / (D / 8), col = (c % (D / 8)) * 8, s = s0 + r;
        bool valid = s < S;
        long long at = ((long long) b * S + (valid ? s : 0)) * kvStride + (long long) kvh * D + col;
        copy16(ks + r * LD + col, k + at, valid);
        copy16(vs + r * LD + col, v + at, valid);
    }
    auto loadStep = [&](int stage, int step) {
        const int t0 = qFirst + step * BQ;
        bf16* qs = stages + stage * 2 * BQ * LD;
        bf16* os = qs + BQ * LD;
        for (int c = threadIdx.x; c < BQ * (D / 8); c += WARPS * 32) {
            int r = c / (D / 8), col = (c % (D / 8)) * 8, t = t0 + r;
            bool valid = t < T;
            long long at = ((long long) b * T + (valid ? t : 0)) * qStride + (long long) h * D + col;
            copy16(qs + r * LD + col, q + at, valid);
            copy16(os + r * LD + col, dOut + at, valid);
        }
        if (threadIdx.x < BQ) {
            int t = t0 + threadIdx.x;
            bool valid = t < T;
            long long pair = ((long long) b * T + (valid ? t : 0)) * heads + h;
            float* st = stats + stage * 2 * BQ;
            copy4(st + threadIdx.x, lse + pair, valid);
            copy4(st + BQ + threadIdx.x, rowD + pair, valid);
        }
        commitCopies();
    };

    float gk[DT][4], gv[DT][4];
#pragma unroll
    for (int n = 0; n < DT; n++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            gk[n][e] = 0.f;
            gv[n][e] = 0.f;
        }
    }
    const int warpKey = s0 + warp * 16, key0 = warpKey + g, key1 = key0 + 8;
    const bf16* kw = ks + warp * 16 * LD;
    const bf16* vw = vs + warp * 16 * LD;
    const float scaleLog2 = scale * LOG2E;

    loadStep(0, 0);  // the first group carries K and V too
    for (int it = 0; it < steps; it++) {
        if (it + 1 < steps) {
            loadStep((it + 1) & 1, it + 1);
            waitCopies<1>();
        } else {
            waitCopies<0>();
        }
        __syncthreads();
        const int t0 = qFirst + it * BQ;
        const bf16* qs = stages + (it & 1) * 2 * BQ * LD;
        const bf16* os = qs + BQ * LD;
        const float* lseS = stats + (it & 1) * 2 * BQ;
        const float* dS = lseS + BQ;

        // Sᵀ = K·Qᵀ for the warp's 16 keys and the tile's 64 queries.
        float p[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++) {
            p[j][0] = p[j][1] = p[j][2] = p[j][3] = 0.f;
        }
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
            const bf16* kr = kw + g * LD + kc * 16 + 2 * tg;
            unsigned a[4] = {load32(kr), load32(kr + 8 * LD), load32(kr + 8), load32(kr + 8 * LD + 8)};
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const bf16* qr = qs + (j * 8 + g) * LD + kc * 16 + 2 * tg;
                mma(p[j], a, load32(qr), load32(qr + 8));
            }
        }
        // Every (key, query) of the warp's slice visible: no mask needed.
        const bool full = t0 + BQ <= T && warpKey + 15 < S && warpKey + 15 <= queryStart + t0
                && (window <= 0 || warpKey > queryStart + t0 + BQ - 1 - window);
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = j * 8 + 2 * tg + (e & 1);
                float x = p[j][e] * scaleLog2 - lseS[col] * LOG2E;
                if (!full) {
                    int t = t0 + col, key = e < 2 ? key0 : key1, pos = queryStart + t;
                    bool visible = t < T && key < S && key <= pos && (window <= 0 || key > pos - window);
                    x = visible ? x : -INFINITY;
                }
                p[j][e] = exp2f(x);
            }
        }

        // dV += Pᵀ·dO, 16 queries at a time: Sᵀ tiles 2c and 2c + 1 are the A fragment of queries [16c, 16c + 16).
#pragma unroll
        for (int c = 0; c < BQ / 16; c++) {
            unsigned pa[4] = {pack(p[2 * c][0], p[2 * c][1]), pack(p[2 * c][2], p[2 * c][3]),
                              pack(p[2 * c + 1][0], p[2 * c + 1][1]), pack(p[2 * c + 1][2], p[2 * c + 1][3])};
            const int row = c * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
#pragma unroll
            for (int n = 0; n < DT; n += 2) {
                unsigned b0, b1, b2, b3;
                loadTransposed(smemAddress(os + row * LD + (n + (lane >> 4)) * 8), b0, b1, b2, b3);
                mma(gv[n], pa, b0, b1);
                mma(gv[n + 1], pa, b2, b3);
            }
        }

        // dPᵀ = V·dOᵀ, then dSᵀ = Pᵀ ⊙ (dPᵀ − D) in its place.
        float ds[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++) {
            ds[j][0] = ds[j][1] = ds[j][2] = ds[j][3] = 0.f;
        }
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
            const bf16* vr = vw + g * LD + kc * 16 + 2 * tg;
            unsigned a[4] = {load32(vr), load32(vr + 8 * LD), load32(vr + 8), load32(vr + 8 * LD + 8)};
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const bf16* orow = os + (j * 8 + g) * LD + kc * 16 + 2 * tg;
                mma(ds[j], a, load32(orow), load32(orow + 8));
            }
        }
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                ds[j][e] = p[j][e] * (ds[j][e] - dS[j * 8 + 2 * tg + (e & 1)]);
            }
        }

        // dK += dSᵀ·Q; the same A fragments go to shared memory as dSᵀ for dQ.
        bf16* dsw = dss + (warp * 16 + g) * LDS + 2 * tg;
#pragma unroll
        for (int c = 0; c < BQ / 16; c++) {
            unsigned da[4] = {pack(ds[2 * c][0], ds[2 * c][1]), pack(ds[2 * c][2], ds[2 * c][3]),
                              pack(ds[2 * c + 1][0], ds[2 * c + 1][1]), pack(ds[2 * c + 1][2], ds[2 * c + 1][3])};
            *reinterpret_cast<unsigned*>(dsw + c * 16) = da[0];
            *reinterpret_cast<unsigned*>(dsw + 8 * LDS + c * 16) = da[1];
            *reinterpret_cast<unsigned*>(dsw + c * 16 + 8) = da[2];
            *reinterpret_cast<unsigned*>(dsw + 8 * LDS + c * 16 + 8) = da[3];
            const int row = c * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
#pragma unroll
            for (int n = 0; n < DT; n += 2) {
                unsigned b0, b1, b2, b3;
                loadTransposed(smemAddress(qs + row * LD + (n + (lane >> 4)) * 8), b0, b1, b2, b3);
                mma(gk[n], da, b0, b1);
                mma(gk[n + 1], da, b2, b3);
            }
        }
        __syncthreads();  // all of dSᵀ is written

        // dQ += dS·K for the warp's 16 query rows. ldmatrix.trans of dSᵀ [key][query] gives dS's A fragment: its
        // matrices are keys 0–7 / 8–15 (lane / 16) by queries 0–7 / 8–15 ((lane / 8) % 2) of the 16 × 16 slice.
        const int quadrant = lane >> 3;
        const int qRow0 = t0 + warp * 16 + g, qRow1 = qRow0 + 8;
        float* dqBase = dq + (long long) b * T * qStride + (long long) h * D;
#pragma unroll
        for (int f0 = 0; f0 < D; f0 += DQ_CHUNK) {
            float acc[DQ_CHUNK / 8][4];
#pragma unroll
            for (int n = 0; n < DQ_CHUNK / 8; n++) {
                acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
            }
#pragma unroll
            for (int c = 0; c < BKV / 16; c++) {
                unsigned a[4];
                loadTransposed(smemAddress(dss + (c * 16 + (quadrant >> 1) * 8 + (lane & 7)) * LDS + warp * 16
                                           + (quadrant & 1) * 8),
                               a[0], a[1], a[2], a[3]);
                const int row = c * 16 + (quadrant & 1) * 8 + (lane & 7);
#pragma unroll
                for (int n = 0; n < DQ_CHUNK / 8; n += 2) {
                    unsigned b0, b1, b2, b3;
                    loadTransposed(smemAddress(ks + row * LD + f0 + (n + (lane >> 4)) * 8), b0, b1, b2, b3);
                    mma(acc[n], a, b0, b1);
                    mma(acc[n + 1], a, b2, b3);
                }
            }
#pragma unroll
            for (int n = 0; n < DQ_CHUNK / 8; n++) {
                const int col = f0 + n * 8 + 2 * tg;
                if (qRow0 < T) {
                    atomicAdd(dqBase + qRow0 * qStride + col, acc[n][0] * scale);
                    atomicAdd(dqBase + qRow0 * qStride + col + 1, acc[n][1] * scale);
                }
                if (qRow1 < T) {
                    atomicAdd(dqBase + qRow1 * qStride + col, acc[n][2] * scale);
                    atomicAdd(dqBase + qRow1 * qStride + col + 1, acc[n][3] * scale);
                }
            }
        }
        __syncthreads();  // every warp is done with this stage and with dSᵀ before they are overwritten
    }

    const long long kvRow0 = (long long) b * S;
    auto add2 = [&](float* p, float x, float y) {
        if (group == 1) {  // this block is the only writer
            float2 old = *reinterpret_cast<float2*>(p);
            *reinterpret_cast<float2*>(p) = make_float2(old.x + x, old.y + y);
        } else {
            atomicAdd(p, x);
            atomicAdd(p + 1, y);
        }
    };
#pragma unroll
    for (int n = 0; n < DT; n++) {
        const int col = kvh * D + n * 8 + 2 * tg;
        if (key0 < S) {
            add2(dk + (kvRow0 + key0) * kvStride + col, gk[n][0] * scale, gk[n][1] * scale);
            add2(dv + (kvRow0 + key0) * kvStride + col, gv[n][0], gv[n][1]);
        }
        if (key1 < S) {
            add2(dk + (kvRow0 + key1) * kvStride + col, gk[n][2] * scale, gk[n][3] * scale);
            add2(dv + (kvRow0 + key1) * kvStride + col, gv[n][2], gv[n][3]);
        }
    }
}

}  // namespace

extern "C" {

// Grid (ceil(T / 64), heads, sequences), 128 threads, dynamic shared memory 2 · 2 · 64 · (D + 8) · 2 bytes.
// d and dv are taken for the same argument list as attention_forward; they are 64 here. queryStartAt, when not null,
// replaces queryStart by the int it points to and S by queryStart + T: a captured decoding step reads its position
// from device memory, which changes between replays where a launch's arguments cannot.
__global__ void __launch_bounds__(128) flash_attention_d64(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                            const bf16* __restrict__ v, int T, int S, int heads,
                                                            int kvHeads, int d, int dv, float scale, int queryStart,
                                                            int window, const float* __restrict__ sinks,
                                                            bf16* __restrict__ out, float* __restrict__ lse,
                                                            const int* __restrict__ queryStartAt) {
    if (queryStartAt != nullptr) {
        queryStart = *queryStartAt;
        S = queryStart + T;
    }
    flashForward<64>(q, k, v, T, S, heads, kvHeads, scale, queryStart, window, sinks, out, lse);
}

// As flash_attention_d64 for heads of 128.
__global__ void __launch_bounds__(128) flash_attention_d128(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                             const bf16* __restrict__ v, int T, int S, int heads,
                                                             int kvHeads, int d, int dv, float scale, int queryStart,
                                                             int window, const float* __restrict__ sinks,
                                                             bf16* __restrict__ out, float* __restrict__ lse,
                                                             const int* __restrict__ queryStartAt) {
    if (queryStartAt != nullptr) {
        queryStart = *queryStartAt;
        S = queryStart + T;
    }
    flashForward<128>(q, k, v, T, S, heads, kvHeads, scale, queryStart, window, sinks, out, lse);
}

}  // extern "C"

extern "C" {

// The backward pass of flash_attention_d64: dq, dk and dv (F32, [rows, heads·64] and [rows, kvHeads·64]) are added
// into; dOut is BF16 (the F32 output gradient rounded), lse the forward's, D attention_backward_prepare's. Grid
// (heads, ceil(S / 64), sequences), key tiles in y so that the blocks of early keys, which see the most queries, are
// dispatched first; 128 threads; dynamic shared memory of 2·64·(D + 8)·2 (K, V) + 64·72·2 (dSᵀ) + 2·2·64·(D + 8)·2
// (Q, dO, two stages) + 2·2·64·4 (lse, D) bytes: 65,536 for d 64, 114,688 for d 128. d and dv are taken for the
// argument list of attention_backward_dkdv.
__global__ void __launch_bounds__(128) flash_attention_backward_d64(
        const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
        const bf16* __restrict__ dOut, const float* __restrict__ lse, const float* __restrict__ D, int T, int S,
        int heads, int kvHeads, int d, int dv, float scale, int queryStart, int window, float* __restrict__ dq,
        float* __restrict__ dk, float* __restrict__ dvOut) {
    flashBackward<64>(q, k, v, dOut, lse, D, T, S, heads, kvHeads, scale, queryStart, window, dq, dk, dvOut);
}

// As flash_attention_backward_d64 for heads of 128.
__global__ void __launch_bounds__(128) flash_attention_backward_d128(
        const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
        const bf16* __restrict__ dOut, const float* __restrict__ lse, const float* __restrict__ D, int T, int S,
        int heads, int kvHeads, int d, int dv, float scale, int queryStart, int window, float* __restrict__ dq,
        float* __restrict__ dk, float* __restrict__ dvOut) {
    flashBackward<128>(q, k, v, dOut, lse, D, T, S, heads, kvHeads, scale, queryStart, window, dq, dk, dvOut);
}

}  // extern "C"
