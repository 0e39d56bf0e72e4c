/* Gaussian basis kernels of pair arguments, fused for CPUs.
 *
 * psi[p, k] = exp(log_norm[k] - z^2 / 2), z = (x[p] - mean[k]) * inv_std[k], set to 0 where
 * the log density is at or below log(FLT_MIN) (no subnormal kernels), in one pass per pair
 * row instead of one pass per elementwise operator, with the weighted sums over each atom's
 * partners taken in the same pass; and the backward of psi and of the sums with respect to
 * x, mean and inv_std, recomputing z and psi. build.py compiles this file on first use;
 * gaussian_kernels.py calls it through ctypes.
 *
 * Rows are the atoms of a block (row r holds its n partners' x and weights); threads split
 * rows. Built by GCC for x86-64, each row's work is cloned for AVX-512, AVX2 and plain
 * x86-64 and picked at load time, so that one build runs on every x86 CPU of a cluster.
 * The exp's rounding step needs IEEE arithmetic: the build passes -fno-fast-math.
 */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define LOG_FLT_MIN (-87.33654475f) /* log(1.17549435e-38) */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONED __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define CLONED
#endif

/* exp(v) for v in (LOG_FLT_MIN, 88), where the result is a normal float: Cody-Waite
 * reduction by ln 2 and the Cephes polynomial for expf (within 2 ulp); loops of it vectorize. */
static inline float exp_normal(float v) {
    /* the nearest integer to v / ln 2, by the float adder's rounding (|v| < 2^22) */
    float n = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = v - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float r2 = r * r;
    float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    y = y * r2 + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

/* round to nearest even, for finite values */
static inline uint16_t to_bf16(float v) {
    union { float f; uint32_t u; } bits = { v };
    return (uint16_t)((bits.u + 0x7FFFu + ((bits.u >> 16) & 1u)) >> 16);
}

static inline float from_bf16(uint16_t v) {
    union { uint32_t u; float f; } bits = { (uint32_t)v << 16 };
    return bits.f;
}

/* z and psi of one pair, [k] each */
static inline void pair_kernels(float x, const float *restrict mean, const float *restrict inv_std,
                                const float *restrict log_norm, int64_t k,
                                float *restrict z_out, float *restrict psi_out) {
    for (int64_t c = 0; c < k; ++c) {
        float z = (x - mean[c]) * inv_std[c];
        float log_density = log_norm[c] - 0.5f * z * z;
        int normal = log_density > LOG_FLT_MIN;
        float psi = exp_normal(normal ? (log_density < 88.0f ? log_density : 88.0f) : LOG_FLT_MIN);
        /* NaN (a NaN x) stays NaN, as in the PyTorch form, so that it reaches the loss */
        psi_out[c] = normal ? psi : (log_density <= LOG_FLT_MIN ? 0.0f : log_density);
        z_out[c] = z;
    }
}

CLONED static void forward_row(const float *restrict x, const float *restrict weight, int64_t n,
                               const float *restrict mean, const float *restrict inv_std,
                               const float *restrict log_norm, int64_t k, float *restrict psi32,
                               uint16_t *restrict psi16, float *restrict sums, float *restrict scratch) {
    float *restrict z = scratch, *restrict psi = scratch + k;
    if (sums) memset(sums, 0, (size_t)k * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
        pair_kernels(x[j], mean, inv_std, log_norm, k, z, psi);
        if (psi32) memcpy(psi32 + j * k, psi, (size_t)k * sizeof(float));
        if (psi16) {
            uint16_t *restrict out = psi16 + j * k;
            for (int64_t c = 0; c < k; ++c) out[c] = to_bf16(psi[c]);
        }
        if (sums) {
            float w = weight[j];
            for (int64_t c = 0; c < k; ++c) sums[c] += w * psi[c];
        }
    }
}

/* x, weight [rows, n]; mean, inv_std, log_norm [k]; psi [rows, n, k] in fp32 (psi32) or bf16
 * (psi16), either may be NULL; sums [rows, k] or NULL. */
void gaussian_kernels_forward(const float *x, const float *weight, int64_t rows, int64_t n,
                              const float *mean, const float *inv_std, const float *log_norm, int64_t k,
                              float *psi32, uint16_t *psi16, float *sums, int threads) {
    #pragma omp parallel num_threads(threads)
    {
        float scratch[2 * k];
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
            forward_row(x + r * n, weight + r * n, n, mean, inv_std, log_norm, k,
                        psi32 ? psi32 + r * n * k : NULL, psi16 ? psi16 + r * n * k : NULL,
                        sums ? sums + r * k : NULL, scratch);
    }
}

/* With T = (dL/dpsi + w dL/dsums) psi and U = T z: dL/dx = -sum_k U inv_std; the row's
 * sums over its pairs of T, U and U z are added to acc[0..k), acc[k..2k), acc[2k..3k)
 * in double (a thread's sums run over tens of thousands of pairs per step). */
CLONED static void backward_row(const float *restrict x, const float *restrict weight, int64_t n,
                                const float *restrict mean, const float *restrict inv_std,
                                const float *restrict log_norm, int64_t k, const float *restrict grad32,
                                const uint16_t *restrict grad16, const float *restrict grad_sums,
                                float *restrict grad_x, double *restrict acc, float *restrict scratch,
                                float *restrict row_sums) {
    float *restrict z = scratch, *restrict psi = scratch + k, *restrict g = scratch + 2 * k;
    float *restrict sum_t = row_sums, *restrict sum_u = row_sums + k, *restrict sum_uz = row_sums + 2 * k;
    memset(row_sums, 0, (size_t)3 * k * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
        pair_kernels(x[j], mean, inv_std, log_norm, k, z, psi);
        if (grad32) {
            memcpy(g, grad32 + j * k, (size_t)k * sizeof(float));
        } else {
            const uint16_t *restrict in = grad16 + j * k;
            for (int64_t c = 0; c < k; ++c) g[c] = from_bf16(in[c]);
        }
        if (grad_sums) {
            float w = weight[j];
            for (int64_t c = 0; c < k; ++c) g[c] += w * grad_sums[c];
        }
        float dx = 0.0f;
        for (int64_t c = 0; c < k; ++c) {
            float t = g[c] * psi[c];
            float u = t * z[c];
            dx -= u * inv_std[c];
            sum_t[c] += t;
            sum_u[c] += u;
            sum_uz[c] += u * z[c];
        }
        grad_x[j] = dx;
    }
    for (int64_t c = 0; c < 3 * k; ++c) acc[c] += (double)row_sums[c];
}

/* grad [rows, n, k] (fp32 grad32 or bf16 grad16), grad_sums [rows, k] or NULL; writes
 * grad_x [rows, n] and adds each thread's pair sums of T, U, U z into its own acc[thread]
 * [threads, 3, k] of doubles (summed by the caller in thread order: the same result on
 * every run with the same threads). */
void gaussian_kernels_backward(const float *x, const float *weight, int64_t rows, int64_t n,
                               const float *mean, const float *inv_std, const float *log_norm, int64_t k,
                               const float *grad32, const uint16_t *grad16, const float *grad_sums,
                               float *grad_x, double *acc, int threads) {
    #pragma omp parallel num_threads(threads)
    {
        float scratch[3 * k], row_sums[3 * k];
#ifdef _OPENMP
        double *local = acc + (int64_t)omp_get_thread_num() * 3 * k;
#else
        double *local = acc;
#endif
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
            backward_row(x + r * n, weight + r * n, n, mean, inv_std, log_norm, k,
                         grad32 ? grad32 + r * n * k : NULL, grad16 ? grad16 + r * n * k : NULL,
                         grad_sums ? grad_sums + r * k : NULL, grad_x + r * n, local, scratch, row_sums);
    }
}
