// Few-query attention in double over float32 rows (CKernels.h, LOOKM_CKERNELS_FIDELITY). A GEMM
// library packs the whole key block for 8 probe queries, which costs more than the arithmetic;
// here each key row is read once and widened in registers, and 8 queries accumulate side by side.
#include <stdlib.h>
#include "CKernels.h"

// Never fuse a multiply and an add (the same bits on every CPU and path).
#pragma clang fp contract(off)

enum { BLOCK = 8 };

// Scores of one block of BLOCK queries, transposed (qt[d*BLOCK + i]): BLOCK independent sums per key
// row, each over d in order. Four key rows at a time, so that four chains of adds are in flight
// (each row's sums are still the same sequence of operations).
#define SCORES_BODY                                                                                  \
    size_t t = 0;                                                                                    \
    for (; t + 4 <= R; t += 4) {                                                                     \
        double a0[BLOCK] = {0}, a1[BLOCK] = {0}, a2[BLOCK] = {0}, a3[BLOCK] = {0};                   \
        const float *r0 = k + t * D, *r1 = r0 + D, *r2 = r1 + D, *r3 = r2 + D;                       \
        for (size_t d = 0; d < D; d++) {                                                             \
            const double *c = qt + d * BLOCK;                                                        \
            double k0 = (double)r0[d], k1 = (double)r1[d], k2 = (double)r2[d], k3 = (double)r3[d];   \
            for (int i = 0; i < BLOCK; i++) {                                                        \
                a0[i] = MULADD(c[i], k0, a0[i]);                                                           \
                a1[i] = MULADD(c[i], k1, a1[i]);                                                           \
                a2[i] = MULADD(c[i], k2, a2[i]);                                                           \
                a3[i] = MULADD(c[i], k3, a3[i]);                                                           \
            }                                                                                        \
        }                                                                                            \
        for (size_t i = 0; i < m; i++) {                                                             \
            w[i * R + t] = scale * a0[i];                                                            \
            w[i * R + t + 1] = scale * a1[i];                                                        \
            w[i * R + t + 2] = scale * a2[i];                                                        \
            w[i * R + t + 3] = scale * a3[i];                                                        \
        }                                                                                            \
    }                                                                                                \
    for (; t < R; t++) {                                                                             \
        double acc[BLOCK] = {0};                                                                     \
        const float *row = k + t * D;                                                                \
        for (size_t d = 0; d < D; d++) {                                                             \
            double kd = (double)row[d];                                                              \
            for (int i = 0; i < BLOCK; i++) acc[i] = MULADD(qt[d * BLOCK + i], kd, acc[i]);                \
        }                                                                                            \
        for (size_t i = 0; i < m; i++) w[i * R + t] = scale * acc[i];                                \
    }

#define MULADD(a, b, c) ((c) + (a) * (b))
static void scores_block_base(const double *qt, size_t m, const float *k, size_t R, size_t D, double scale,
                              double *w) {
    SCORES_BODY
}
#undef MULADD

// Each row of v is widened once per query; out[i] accumulates over t in order.
#define SUM_BODY                                                                                     \
    for (size_t i = 0; i < n; i++) {                                                                 \
        double *o = out + i * D;                                                                     \
        for (size_t d = 0; d < D; d++) o[d] = 0;                                                     \
        for (size_t t = 0; t < R; t++) {                                                             \
            double wt = w[i * R + t];                                                                \
            const float *row = v + t * D;                                                            \
            for (size_t d = 0; d < D; d++) o[d] = o[d] + wt * (double)row[d];                        \
        }                                                                                            \
    }

static void sum_base(const double *w, size_t n, const float *v, size_t R, size_t D, double *out) { SUM_BODY }

#if defined(__x86_64__) && defined(__clang__)
// AVX2 with FMA. The queries and keys are float32 values widened to double, so each product is
// exact in double (24 + 24 significant bits <= 53, exponents far inside double's range): a fused
// multiply-add rounds exactly what the multiply then add rounds, and the scores keep the baseline's
// bits while taking one instruction instead of two.
#define MULADD(a, b, c) __builtin_fma((a), (b), (c))
__attribute__((target("avx2,fma"))) static void scores_block_avx2(const double *qt, size_t m, const float *k,
                                                                  size_t R, size_t D, double scale, double *w) {
    SCORES_BODY
}
#undef MULADD
// The weighted sum has no such property (the weights are not float32 values): no FMA there.
__attribute__((target("avx2"))) static void sum_avx2(const double *w, size_t n, const float *v, size_t R, size_t D,
                                                     double *out) {
    SUM_BODY
}
static int has_avx2_fma(void) {
    static int avx2 = -1;
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    return avx2;
}
#endif

void lookm_scores_f64(const double *q, size_t n, const float *k, size_t R, size_t D, double scale, double *w) {
    double *qt = malloc(D * BLOCK * sizeof(double));
    if (qt == NULL) abort();
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t m = n - b < BLOCK ? n - b : BLOCK;
        // The block's queries transposed, unused lanes zero.
        for (size_t d = 0; d < D; d++)
            for (size_t i = 0; i < BLOCK; i++) qt[d * BLOCK + i] = i < m ? q[(b + i) * D + d] : 0.0;
#if defined(__x86_64__) && defined(__clang__)
        if (has_avx2_fma()) {
            scores_block_avx2(qt, m, k, R, D, scale, w + b * R);
            continue;
        }
#endif
        scores_block_base(qt, m, k, R, D, scale, w + b * R);
    }
    free(qt);
}

void lookm_weighted_sum_f64(const double *w, size_t n, const float *v, size_t R, size_t D, double *out) {
#if defined(__x86_64__) && defined(__clang__)
    if (has_avx2_fma()) {
        sum_avx2(w, n, v, R, D, out);
        return;
    }
#endif
    sum_base(w, n, v, R, D, out);
}
