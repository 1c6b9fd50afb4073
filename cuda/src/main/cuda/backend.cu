// The GPU backend's kernels besides matrix products (cuBLAS), attention (attention.cu, flash.cu) and the MoE
// layer's expert paths (kernels.cu): elementwise operations, norms, gated units, rotary embeddings, cross-entropy,
// row gathers and scatters, each with its backward.
//
// Operands are F32 or BF16, said at run time by a type flag beside each pointer (0: F32, 1: BF16): the backend keeps
// activations in BF16 and gradients in F32, and these kernels are memory-bound, so a uniform branch per element
// costs nothing measurable. Arithmetic is F32. Kernels that add into a gradient take `accumulate`. Every reduction
// has a fixed order: results do not depend on scheduling.
#include "common.cuh"

namespace {

__device__ __forceinline__ float ldv(const void* p, int bf, long long i) {
    return bf ? __bfloat162float(static_cast<const bf16*>(p)[i]) : static_cast<const float*>(p)[i];
}

__device__ __forceinline__ void stv(void* p, int bf, long long i, float v) {
    if (bf) {
        static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v);
    } else {
        static_cast<float*>(p)[i] = v;
    }
}

__device__ __forceinline__ void accv(void* p, int bf, long long i, float v, int accumulate) {
    stv(p, bf, i, accumulate ? ldv(p, bf, i) + v : v);
}

constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float GELU_CUBIC = 0.044715f;
constexpr float INV_SQRT_2 = 0.7071067811865476f;
constexpr float INV_SQRT_2PI = 0.3989422804014327f;

// Activation kinds in the order of moe4j's Activation enum: SILU, GELU_TANH, GELU, RELU.
__device__ __forceinline__ float activate(int kind, float x) {
    switch (kind) {
        case 0: return x / (1.f + expf(-x));
        case 1: return 0.5f * x * (1.f + tanhf(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)));
        case 2: return 0.5f * x * (1.f + erff(x * INV_SQRT_2));
        default: return fmaxf(x, 0.f);
    }
}

__device__ __forceinline__ float activateDerivative(int kind, float x) {
    switch (kind) {
        case 0: {
            float s = 1.f / (1.f + expf(-x));
            return s * (1.f + x * (1.f - s));
        }
        case 1: {
            float t = tanhf(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
            return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * SQRT_2_OVER_PI * (1.f + 3.f * GELU_CUBIC * x * x);
        }
        case 2: return 0.5f * (1.f + erff(x * INV_SQRT_2)) + x * expf(-0.5f * x * x) * INV_SQRT_2PI;
        default: return x > 0.f ? 1.f : 0.f;
    }
}

// gpt-oss's clamped unit: (clamp(up, ±limit) + 1) · g·σ(alpha·g) with g = min(gate, limit).
__device__ __forceinline__ float clampedGlu(float gate, float up, float alpha, float limit) {
    float g = fminf(gate, limit), u = fmaxf(-limit, fminf(up, limit));
    return (u + 1.f) * g / (1.f + expf(-alpha * g));
}

}  // namespace

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < (n); i += (long long) gridDim.x * blockDim.x)

extern "C" {

// ---- elementwise ----

__global__ void ew_fill(void* y, int yt, long long n, float value) {
    GRID_STRIDE(i, n) { stv(y, yt, i, value); }
}

__global__ void ew_convert(const void* x, int xt, void* y, int yt, long long n) {
    GRID_STRIDE(i, n) { stv(y, yt, i, ldv(x, xt, i)); }
}

// y = a + b (y may be a or b).
__global__ void ew_add(const void* a, int at, const void* b, int bt, void* y, int yt, long long n) {
    GRID_STRIDE(i, n) { stv(y, yt, i, ldv(a, at, i) + ldv(b, bt, i)); }
}

// y += alpha · x.
__global__ void ew_axpy(float alpha, const void* x, int xt, void* y, int yt, long long n) {
    GRID_STRIDE(i, n) { stv(y, yt, i, ldv(y, yt, i) + alpha * ldv(x, xt, i)); }
}

// y = a ⊙ b.
__global__ void ew_mul(const void* a, int at, const void* b, int bt, void* y, int yt, long long n) {
    GRID_STRIDE(i, n) { stv(y, yt, i, ldv(a, at, i) * ldv(b, bt, i)); }
}

// x *= s.
__global__ void ew_scale(void* x, int xt, long long n, float s) {
    GRID_STRIDE(i, n) { stv(x, xt, i, ldv(x, xt, i) * s); }
}

__global__ void ew_sigmoid(const void* x, int xt, void* y, int yt, long long n) {
    GRID_STRIDE(i, n) { stv(y, yt, i, 1.f / (1.f + expf(-ldv(x, xt, i)))); }
}

// dx += dy · y(1 − y).
__global__ void ew_sigmoid_backward(void* dx, int dxt, const void* dy, int dyt, const void* y, int yt, long long n) {
    GRID_STRIDE(i, n) {
        float s = ldv(y, yt, i);
        stv(dx, dxt, i, ldv(dx, dxt, i) + ldv(dy, dyt, i) * s * (1.f - s));
    }
}

__global__ void ew_clamp(const void* x, int xt, void* y, int yt, long long n, float limit) {
    GRID_STRIDE(i, n) { stv(y, yt, i, fmaxf(-limit, fminf(limit, ldv(x, xt, i)))); }
}

// dx += dy where −limit ≤ x ≤ limit.
__global__ void ew_clamp_backward(void* dx, int dxt, const void* dy, int dyt, const void* x, int xt, long long n,
                                  float limit) {
    GRID_STRIDE(i, n) {
        float v = ldv(x, xt, i);
        if (v >= -limit && v <= limit) {
            stv(dx, dxt, i, ldv(dx, dxt, i) + ldv(dy, dyt, i));
        }
    }
}

__global__ void ew_activation(int kind, const void* x, int xt, void* y, int yt, long long n) {
    GRID_STRIDE(i, n) { stv(y, yt, i, activate(kind, ldv(x, xt, i))); }
}

// dx (+)= dy · act'(x).
__global__ void ew_activation_backward(int kind, void* dx, int dxt, const void* dy, int dyt, const void* x, int xt,
                                       long long n, int accumulate) {
    GRID_STRIDE(i, n) { accv(dx, dxt, i, ldv(dy, dyt, i) * activateDerivative(kind, ldv(x, xt, i)), accumulate); }
}

// ---- rows and columns ----

// Every row of x [rows, cols] += v [cols].
__global__ void add_row_vector(void* x, int xt, const void* v, int vt, int rows, int cols) {
    GRID_STRIDE(i, (long long) rows * cols) { stv(x, xt, i, ldv(x, xt, i) + ldv(v, vt, i % cols)); }
}

// partial [chunks, cols] = Σ over each chunk of rowsPerChunk rows of x: column sums in fixed-order pieces.
// Grid (ceil(cols / blockDim), chunks).
__global__ void column_partial_sums(const void* x, int xt, int rows, int cols, int rowsPerChunk,
                                    float* __restrict__ partial) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    int from = blockIdx.y * rowsPerChunk, to = min(rows, from + rowsPerChunk);
    float acc = 0.f;
    for (int r = from; r < to; r++) {
        acc += ldv(x, xt, (long long) r * cols + c);
    }
    partial[(long long) blockIdx.y * cols + c] = acc;
}

// out [cols] += Σ_r partial [r, cols], rows in order.
__global__ void column_sums_add(const float* __restrict__ partial, int rows, int cols, float* __restrict__ out) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    float acc = 0.f;
    for (int r = 0; r < rows; r++) {
        acc += partial[(long long) r * cols + c];
    }
    out[c] += acc;
}

// y [rows, cols] = x with row r times g[r].
__global__ void scale_rows(const void* x, int xt, const void* g, int gt, int rows, int cols, void* y, int yt) {
    GRID_STRIDE(i, (long long) rows * cols) { stv(y, yt, i, ldv(x, xt, i) * ldv(g, gt, i / cols)); }
}

// dx [rows, cols] += g[r]·dy[r] (dx may be null) and dg[r] += ⟨dy[r], x[r]⟩ (dg may be null). One block per row.
__global__ void scale_rows_backward(const void* dy, int dyt, const void* x, int xt, const void* g, int gt, int rows,
                                    int cols, float* __restrict__ dx, float* __restrict__ dg) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long base = (long long) r * cols;
    float gr = ldv(g, gt, r), dot = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = ldv(dy, dyt, base + c);
        if (dx) {
            dx[base + c] += gr * d;
        }
        dot += d * ldv(x, xt, base + c);
    }
    dot = blockSum(dot, scratch);
    if (dg && threadIdx.x == 0) {
        dg[r] += dot;
    }
}

// dst[r, dstFrom + c] (+)= src[r, srcFrom + c] for c < width.
__global__ void copy_columns(void* dst, int dt, int dstCols, int dstFrom, const void* src, int st, int srcCols,
                             int srcFrom, int rows, int width, int accumulate) {
    GRID_STRIDE(i, (long long) rows * width) {
        long long r = i / width, c = i % width;
        accv(dst, dt, r * dstCols + dstFrom + c, ldv(src, st, r * srcCols + srcFrom + c), accumulate);
    }
}

// out row r = src row index[r] (dtypes may differ). One block per row.
__global__ void gather_rows_any(const void* src, int st, const int* __restrict__ index, int rows, int cols, void* out,
                                int ot) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long from = (long long) index[r] * cols, to = (long long) r * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        stv(out, ot, to + c, ldv(src, st, from + c));
    }
}

// dst row target[s] += Σ_{i = starts[s]}^{starts[s+1]−1} w[order[i]] · src row order[i] (w null: 1), the sources
// of a row added in increasing order by one block: a deterministic scatter-add (the host groups the sources by
// destination). Grid: one block per segment.
__global__ void segment_rows_add(const void* src, int st, const int* __restrict__ order, const int* __restrict__ starts,
                                 const int* __restrict__ target, const float* __restrict__ weight, int segments,
                                 int cols, void* dst, int dt) {
    int s = blockIdx.x;
    if (s >= segments) {
        return;
    }
    long long out = (long long) target[s] * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float acc = ldv(dst, dt, out + c);
        for (int i = starts[s]; i < starts[s + 1]; i++) {
            int from = order[i];
            acc += (weight ? weight[from] : 1.f) * ldv(src, st, (long long) from * cols + c);
        }
        stv(dst, dt, out + c, acc);
    }
}

// dst row t += scale[t] · src row t.
__global__ void add_scaled_rows(void* dst, int dt, const void* src, int st, const float* __restrict__ scale, int rows,
                                int cols) {
    GRID_STRIDE(i, (long long) rows * cols) { stv(dst, dt, i, ldv(dst, dt, i) + scale[i / cols] * ldv(src, st, i)); }
}

// dst row t += σ(z[t]) · src row t: a shared expert's sigmoid gate from its logits where they are. σ in double,
// rounded once, as the host computes the gate (RouterMath.sigmoid), so both give the same numbers.
__global__ void add_sigmoid_gated_rows(void* dst, int dt, const void* src, int st, const float* __restrict__ z,
                                       int rows, int cols) {
    GRID_STRIDE(i, (long long) rows * cols) {
        float g = (float) (1.0 / (1.0 + exp(-(double) z[i / cols])));
        stv(dst, dt, i, ldv(dst, dt, i) + g * ldv(src, st, i));
    }
}

// Row t of x *= scale[t].
__global__ void scale_rows_by(void* x, int xt, const float* __restrict__ scale, int rows, int cols) {
    GRID_STRIDE(i, (long long) rows * cols) { stv(x, xt, i, ldv(x, xt, i) * scale[i / cols]); }
}

// out[r] = ⟨a row r, b row r⟩. One block per row.
__global__ void row_dots(const void* a, int at, const void* b, int bt, int rows, int cols, float* __restrict__ out) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long base = (long long) r * cols;
    float acc = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        acc += ldv(a, at, base + c) * ldv(b, bt, base + c);
    }
    acc = blockSum(acc, scratch);
    if (threadIdx.x == 0) {
        out[r] = acc;
    }
}

// The MoE combine's backward per routed row r: dy row r = weight[r] · dOut row token[r], dots[r] = ⟨dOut row
// token[r], y row r⟩. One block per row.
__global__ void combine_rows_backward(const void* dOut, int dot, const void* y, int yt, const int* __restrict__ token,
                                      const float* __restrict__ weight, int rows, int cols, void* dy, int dyt,
                                      float* __restrict__ dots) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long from = (long long) token[r] * cols, base = (long long) r * cols;
    float w = weight[r], acc = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = ldv(dOut, dot, from + c);
        acc += d * ldv(y, yt, base + c);
        stv(dy, dyt, base + c, w * d);
    }
    acc = blockSum(acc, scratch);
    if (threadIdx.x == 0) {
        dots[r] = acc;
    }
}

// ---- RMSNorm: y = x / sqrt(mean(x²) + eps) · w, normalised in F32, then times the weight ----

// 1 / sqrt(mean(x²) + eps) of the row [base, base + cols), reduced over the block; every thread gets it.
__device__ __forceinline__ float rowInvRms(const void* x, int xt, long long base, int cols, float eps,
                                           float* scratch) {
    float ss = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = ldv(x, xt, base + c);
        ss += v * v;
    }
    return 1.f / sqrtf(blockSum(ss, scratch) / cols + eps);
}

// One block per row; w [cols] F32 may be null.
__global__ void rms_norm(const void* x, int xt, const float* __restrict__ w, int rows, int cols, float eps, void* y,
                         int yt) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long base = (long long) r * cols;
    float inv = rowInvRms(x, xt, base, cols, eps, scratch);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = ldv(x, xt, base + c) * inv;
        stv(y, yt, base + c, w ? v * w[c] : v);
    }
}

// dx += inv · (g − x̂ · mean(g ⊙ x̂)) with g = dy ⊙ w and x̂ = x · inv (dx may be null); invRms [rows] gets 1/rms for
// the weight's gradient. One block per row.
__global__ void rms_norm_backward(const void* dy, int dyt, const void* x, int xt, const float* __restrict__ w, int rows,
                                  int cols, float eps, float* __restrict__ dx, float* __restrict__ invRms) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long base = (long long) r * cols;
    float inv = rowInvRms(x, xt, base, cols, eps, scratch);
    if (threadIdx.x == 0) {
        invRms[r] = inv;
    }
    if (!dx) {
        return;
    }
    float dot = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = ldv(dy, dyt, base + c) * (w ? w[c] : 1.f);
        dot += g * ldv(x, xt, base + c) * inv;
    }
    float mean = blockSum(dot, scratch) / cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = ldv(dy, dyt, base + c) * (w ? w[c] : 1.f);
        dx[base + c] += inv * (g - ldv(x, xt, base + c) * inv * mean);
    }
}

// partial [chunks, cols] = Σ over each chunk of rows of dy ⊙ x̂. Grid (ceil(cols / blockDim), chunks).
__global__ void rms_norm_weight_partial(const void* dy, int dyt, const void* x, int xt,
                                        const float* __restrict__ invRms, int rows, int cols, int rowsPerChunk,
                                        float* __restrict__ partial) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    int from = blockIdx.y * rowsPerChunk, to = min(rows, from + rowsPerChunk);
    float acc = 0.f;
    for (int r = from; r < to; r++) {
        long long i = (long long) r * cols + c;
        acc += ldv(dy, dyt, i) * ldv(x, xt, i) * invRms[r];
    }
    partial[(long long) blockIdx.y * cols + c] = acc;
}

// ---- gated linear units ----

// y [rows, I] = glu(gate, up), gate element (r, i) at gate[r·gRow + i·gCol] and up's at up[r·uRow + i·uCol] (two
// tensors, halves of one fused row, or interleaved columns). kind 0-3: act(gate)·up with moe4j's activations;
// kind 4: gpt-oss's clamped unit.
__global__ void glu_forward(const void* gate, int gt, long long gRow, int gCol, const void* up, int ut, long long uRow,
                            int uCol, int rows, int I, int kind, float alpha, float limit, void* y, int yt) {
    GRID_STRIDE(v, (long long) rows * I) {
        long long r = v / I, i = v % I;
        float g = ldv(gate, gt, r * gRow + i * gCol), u = ldv(up, ut, r * uRow + i * uCol);
        stv(y, yt, v, kind == 4 ? clampedGlu(g, u, alpha, limit) : activate(kind, g) * u);
    }
}

// The gradients of glu_forward for dy [rows, I]: dGate and dUp (each may be null) at their own strides, added into
// when accumulate.
__global__ void glu_backward(const void* gate, int gt, long long gRow, int gCol, const void* up, int ut, long long uRow,
                             int uCol, const void* dy, int dyt, int rows, int I, int kind, float alpha, float limit,
                             void* dGate, int dgt, long long dgRow, int dgCol, void* dUp, int dut, long long duRow,
                             int duCol, int accumulate) {
    GRID_STRIDE(v, (long long) rows * I) {
        long long r = v / I, i = v % I;
        float g = ldv(gate, gt, r * gRow + i * gCol), u = ldv(up, ut, r * uRow + i * uCol), d = ldv(dy, dyt, v);
        float dg, du;
        if (kind == 4) {
            float gc = fminf(g, limit), uc = fmaxf(-limit, fminf(u, limit));
            float s = 1.f / (1.f + expf(-alpha * gc));
            du = u >= -limit && u <= limit ? d * gc * s : 0.f;
            dg = g <= limit ? d * (uc + 1.f) * (s + alpha * gc * s * (1.f - s)) : 0.f;
        } else {
            dg = d * u * activateDerivative(kind, g);
            du = d * activate(kind, g);
        }
        if (dGate) {
            accv(dGate, dgt, r * dgRow + i * dgCol, dg, accumulate);
        }
        if (dUp) {
            accv(dUp, dut, r * duRow + i * duCol, du, accumulate);
        }
    }
}

// ---- rotary position embedding, in place ----

// x [tokens, heads·headDim] rotated by the angles of each token's position (sinSign −1: the transposed rotation, the
// gradient). Pairs (i, i + half) when !interleaved (rotate_half), (2i, 2i + 1) otherwise; features past rotaryDim
// stay. cosT/sinT [positions, rotaryDim / 2] F32.
__global__ void rope_in_place(void* x, int xt, const int* __restrict__ positions, const float* __restrict__ cosT,
                              const float* __restrict__ sinT, int tokens, int heads, int headDim, int rotaryDim,
                              int interleaved, float sinSign) {
    int half = rotaryDim / 2;
    GRID_STRIDE(v, (long long) tokens * heads * half) {
        long long th = v / half;
        int i = (int) (v % half), t = (int) (th / heads);
        long long base = th * headDim;
        long long table = (long long) positions[t] * half + i;
        float c = cosT[table], s = sinSign * sinT[table];
        long long ia = interleaved ? base + 2 * i : base + i, ib = interleaved ? ia + 1 : ia + half;
        float a = ldv(x, xt, ia), b = ldv(x, xt, ib);
        stv(x, xt, ia, a * c - b * s);
        stv(x, xt, ib, b * c + a * s);
    }
}

// ---- a decoding step's KV cache write ----

// k and v [rows, kWords] and [rows, vWords] (4-byte words) to rows position[0].. of kCache and vCache: the cache write
// of a captured decoding step, whose position lies in device memory and changes between replays.
__global__ void write_rows_at(const unsigned* __restrict__ k, const unsigned* __restrict__ v, int rows, int kWords,
                              int vWords, const int* __restrict__ position, unsigned* __restrict__ kCache,
                              unsigned* __restrict__ vCache) {
    long long at = *position, kn = (long long) rows * kWords;
    GRID_STRIDE(i, kn + (long long) rows * vWords) {
        if (i < kn) {
            kCache[at * kWords + i] = k[i];
        } else {
            vCache[at * vWords + i - kn] = v[i - kn];
        }
    }
}

// ---- cross-entropy ----

// lse[r] = log Σ exp(logits[r]); loss[r] = lse[r] − logits[r, target[r]] (0 where target is ignoreIndex). One
// block per row.
__global__ void cross_entropy(const void* logits, int lt, const int* __restrict__ targets, int rows, int vocab,
                              int ignoreIndex, float* __restrict__ lse, float* __restrict__ loss) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long base = (long long) r * vocab;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
        m = fmaxf(m, ldv(logits, lt, base + c));
    }
    m = blockMax(m, scratch);
    float sum = 0.f;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
        sum += expf(ldv(logits, lt, base + c) - m);
    }
    sum = blockSum(sum, scratch);
    if (threadIdx.x == 0) {
        float l = m + logf(sum);
        lse[r] = l;
        int t = targets[r];
        loss[r] = t == ignoreIndex ? 0.f : l - ldv(logits, lt, base + t);
    }
}

// dLogits [rows, vocab] F32 += g · (softmax(logits) − onehot(target)) on counted rows.
__global__ void cross_entropy_backward(const void* logits, int lt, const int* __restrict__ targets,
                                       const float* __restrict__ lse, int rows, int vocab, int ignoreIndex, float g,
                                       float* __restrict__ dLogits) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    int t = targets[r];
    if (t == ignoreIndex) {
        return;
    }
    long long base = (long long) r * vocab;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
        dLogits[base + c] += g * (expf(ldv(logits, lt, base + c) - lse[r]) - (c == t ? 1.f : 0.f));
    }
}

}  // extern "C"
