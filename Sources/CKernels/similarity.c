// Pivots of evicted keys (docs/method.md section 4 and rule 9): for each normalised evicted row, the
// first kept slot of highest cosine. A GEMM would write the evicted x kept block to memory and a
// second pass would scan it for the argmax; here the kept keys are packed once per head and every
// block of cosines goes straight from the accumulators into a running maximum.
//
// Summation order (this defines the output, docs/method.md section 4): each cosine is one chain of
// fused multiply-adds over the channels in ascending order, starting from +0:
//     c = fmaf(a[0], b[0], 0); c = fmaf(a[1], b[1], c); ...
// then c + 0.0f. It is what OpenBLAS's Cooperlake/SkylakeX sgemm kernels compute (one FMA
// accumulator per output, C = 0 + alpha * acc), so caches are byte-identical to the GEMM version
// on those CPUs, and now also on CPUs where OpenBLAS picks a kernel that sums in another order.
// Every path below (AVX-512, AVX2+FMA, scalar fmaf) computes exactly this chain per lane.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"

// Never contract or reorder anything beyond the explicit fmaf/intrinsics.
#pragma clang fp contract(off)

enum { NR = LOOKM_PIVOT_PANEL_WIDTH };

size_t lookm_pivot_panel_floats(size_t kept, size_t d) { return (kept + NR - 1) / NR * NR * d; }

// x_r / |x_r| into y_r[0], y_r[stride], ... for `count` <= 8 rows: Float32, each row's sum of
// squares in order (8 rows side by side, so that 8 chains of adds are in flight instead of one),
// then true divisions (not a multiply by 1/|x|), which the wider targets below take 16 at a time.
// A zero row stays zero, so its cosine with anything is 0, never NaN.
#define NORMALISE_BODY                                                                              \
    float s[8] = {0};                                                                               \
    if (count == 8) { /* the common case, with the 8 sums in registers */                           \
        for (size_t j = 0; j < d; j++)                                                              \
            for (size_t r = 0; r < 8; r++) s[r] += x[r][j] * x[r][j];                               \
    } else {                                                                                        \
        for (size_t j = 0; j < d; j++)                                                              \
            for (size_t r = 0; r < count; r++) s[r] += x[r][j] * x[r][j];                          \
    }                                                                                               \
    for (size_t r = 0; r < count; r++) {                                                            \
        float norm = sqrtf(s[r]);                                                                   \
        if (norm > 0.0f) {                                                                          \
            for (size_t j = 0; j < d; j++) y[r][j * stride] = x[r][j] / norm;                      \
        } else {                                                                                    \
            for (size_t j = 0; j < d; j++) y[r][j * stride] = 0.0f;                                \
        }                                                                                           \
    }

static void normalise_base(const float *const *x, size_t count, size_t d, float *const *y, size_t stride) {
    NORMALISE_BODY
}

#if defined(__x86_64__) && defined(__clang__)
__attribute__((target("avx512f"))) static void normalise_avx512(const float *const *x, size_t count, size_t d,
                                                                 float *const *y, size_t stride) {
    NORMALISE_BODY
}
#endif

static void normalise(const float *const *x, size_t count, size_t d, float *const *y, size_t stride) {
#if defined(__x86_64__) && defined(__clang__)
    if (lookm_pivot_kernel_level() >= 2) {  // LOOKM_KERNEL=avx2|scalar tests the baseline loop
        normalise_avx512(x, count, d, y, stride);
        return;
    }
#endif
    normalise_base(x, count, d, y, stride);
}

void lookm_normalise_rows(const float *src, const int64_t *rows, size_t n, size_t d, float *dst) {
    for (size_t r0 = 0; r0 < n; r0 += 8) {
        const float *x[8];
        float *y[8];
        size_t count = n - r0 < 8 ? n - r0 : 8;
        for (size_t r = 0; r < count; r++) {
            x[r] = src + (size_t)rows[r0 + r] * d;
            y[r] = dst + (r0 + r) * d;
        }
        normalise(x, count, d, y, 1);
    }
}

void lookm_pack_pivot_panel(const float *keys, const int64_t *rows, size_t kept, size_t d, float *panel) {
    memset(panel, 0, lookm_pivot_panel_floats(kept, d) * sizeof(float));
    for (size_t j0 = 0; j0 < kept; j0 += 8) {
        const float *x[8];
        float *y[8];
        size_t count = kept - j0 < 8 ? kept - j0 : 8;
        for (size_t r = 0; r < count; r++) {
            size_t j = j0 + r;
            x[r] = keys + (size_t)rows[j] * d;
            y[r] = panel + (j / NR) * NR * d + j % NR;
        }
        normalise(x, count, d, y, NR);
    }
}

// The best (value, first index) of one row over its candidates so far.
typedef struct {
    float value;
    int32_t index;
} best_t;

static void pivots_scalar(const float *panel, size_t kept, size_t d, const float *a, size_t n, int32_t *index,
                          float *value) {
    for (size_t r = 0; r < n; r++) {
        const float *x = a + r * d;
        best_t best = {-INFINITY, 0};
        for (size_t j = 0; j < kept; j++) {
            const float *b = panel + (j / NR) * NR * d + j % NR;
            float c = 0.0f;
            for (size_t k = 0; k < d; k++) c = fmaf(x[k], b[k * NR], c);
            if (c > best.value) best = (best_t){c, (int32_t)j};
        }
        index[r] = best.index;
        value[r] = best.value + 0.0f;
    }
}

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

// MR rows against one panel block of NR = 32 columns (two zmm), the whole channel loop in
// registers; then each row's 32 cosines update 32 per-lane running maxima with a strict `>`,
// so each lane keeps the first column reaching its maximum. Columns past `kept` are -inf.
#define AVX512_ROWS(MR)                                                                                  \
    __attribute__((target("avx512f"))) static void rows_avx512_##MR(const float *panel, size_t kept,    \
                                                                      size_t d, const float *a,         \
                                                                      int32_t *index, float *value) {   \
        __m512 bv[MR][2];                                                                                \
        __m512i bj[MR][2];                                                                               \
        for (int r = 0; r < MR; r++)                                                                     \
            for (int h = 0; h < 2; h++) {                                                                \
                bv[r][h] = _mm512_set1_ps(-INFINITY);                                                    \
                bj[r][h] = _mm512_setzero_si512();                                                       \
            }                                                                                            \
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);    \
        for (size_t j0 = 0; j0 < kept; j0 += NR) {                                                       \
            const float *b = panel + j0 * d;                                                             \
            __m512 acc[MR][2];                                                                           \
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();                    \
            for (size_t k = 0; k < d; k++) {                                                             \
                __m512 b0 = _mm512_loadu_ps(b + k * NR), b1 = _mm512_loadu_ps(b + k * NR + 16);          \
                for (int r = 0; r < MR; r++) {                                                           \
                    __m512 x = _mm512_set1_ps(a[r * d + k]);                                             \
                    acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);                                       \
                    acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);                                       \
                }                                                                                        \
            }                                                                                            \
            __m512i j[2] = {_mm512_add_epi32(lane, _mm512_set1_epi32((int)j0)),                          \
                            _mm512_add_epi32(lane, _mm512_set1_epi32((int)j0 + 16))};                    \
            __mmask16 valid[2] = {_mm512_cmplt_epi32_mask(j[0], _mm512_set1_epi32((int)kept)),            \
                                  _mm512_cmplt_epi32_mask(j[1], _mm512_set1_epi32((int)kept))};           \
            for (int r = 0; r < MR; r++)                                                                 \
                for (int h = 0; h < 2; h++) {                                                            \
                    __mmask16 up = _mm512_mask_cmp_ps_mask(valid[h], acc[r][h], bv[r][h], _CMP_GT_OQ);   \
                    bv[r][h] = _mm512_mask_mov_ps(bv[r][h], up, acc[r][h]);                              \
                    bj[r][h] = _mm512_mask_mov_epi32(bj[r][h], up, j[h]);                                \
                }                                                                                        \
        }                                                                                                \
        for (int r = 0; r < MR; r++) {                                                                   \
            float top = _mm512_reduce_max_ps(_mm512_max_ps(bv[r][0], bv[r][1]));                         \
            __m512 t = _mm512_set1_ps(top);                                                              \
            __m512i big = _mm512_set1_epi32(INT32_MAX);                                                  \
            __m512i i0 = _mm512_mask_mov_epi32(big, _mm512_cmp_ps_mask(bv[r][0], t, _CMP_EQ_OQ), bj[r][0]); \
            __m512i i1 = _mm512_mask_mov_epi32(big, _mm512_cmp_ps_mask(bv[r][1], t, _CMP_EQ_OQ), bj[r][1]); \
            index[r] = _mm512_reduce_min_epi32(_mm512_min_epi32(i0, i1));                                \
            value[r] = top + 0.0f;                                                                       \
        }                                                                                                \
    }
AVX512_ROWS(12)
AVX512_ROWS(4)
AVX512_ROWS(1)

__attribute__((target("avx512f"))) static void pivots_avx512(const float *panel, size_t kept, size_t d,
                                                              const float *a, size_t n, int32_t *index,
                                                              float *value) {
    size_t r = 0;
    for (; r + 12 <= n; r += 12) rows_avx512_12(panel, kept, d, a + r * d, index + r, value + r);
    for (; r + 4 <= n; r += 4) rows_avx512_4(panel, kept, d, a + r * d, index + r, value + r);
    for (; r < n; r++) rows_avx512_1(panel, kept, d, a + r * d, index + r, value + r);
}

// The same with ymm registers: 16 of them hold MR = 6 rows x 16 columns of accumulators, so each
// panel block of 32 is taken in two halves. The running maxima (4 vectors of 8 lanes per row, one
// per quarter of a block) stay in memory: they are touched once per channel loop.
#define AVX2_ROWS(MR)                                                                                    \
    __attribute__((target("avx2,fma"))) static void rows_avx2_##MR(const float *panel, size_t kept,     \
                                                                     size_t d, const float *a,          \
                                                                     int32_t *index, float *value) {    \
        __m256 bv[MR][4];                                                                                \
        __m256i bj[MR][4];                                                                               \
        for (int r = 0; r < MR; r++)                                                                     \
            for (int l = 0; l < 4; l++) {                                                                \
                bv[r][l] = _mm256_set1_ps(-INFINITY);                                                    \
                bj[r][l] = _mm256_setzero_si256();                                                       \
            }                                                                                            \
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                  \
        for (size_t j0 = 0; j0 < kept; j0 += NR)                                                         \
            for (int half = 0; half < 2; half++) {                                                       \
                const float *b = panel + j0 * d + half * 16;                                             \
                __m256 acc[MR][2];                                                                       \
                for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();                \
                for (size_t k = 0; k < d; k++) {                                                         \
                    __m256 b0 = _mm256_loadu_ps(b + k * NR), b1 = _mm256_loadu_ps(b + k * NR + 8);       \
                    for (int r = 0; r < MR; r++) {                                                       \
                        __m256 x = _mm256_broadcast_ss(a + r * d + k);                                   \
                        acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);                                   \
                        acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);                                   \
                    }                                                                                    \
                }                                                                                        \
                for (int h = 0; h < 2; h++) {                                                            \
                    int q = half * 2 + h;                                                                \
                    __m256i j = _mm256_add_epi32(lane, _mm256_set1_epi32((int)j0 + q * 8));              \
                    /* lanes with j < kept: all ones */                                                  \
                    __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)kept), j)); \
                    for (int r = 0; r < MR; r++) {                                                       \
                        __m256 up = _mm256_and_ps(valid, _mm256_cmp_ps(acc[r][h], bv[r][q], _CMP_GT_OQ)); \
                        bv[r][q] = _mm256_blendv_ps(bv[r][q], acc[r][h], up);                            \
                        bj[r][q] = _mm256_castps_si256(                                                  \
                            _mm256_blendv_ps(_mm256_castsi256_ps(bj[r][q]), _mm256_castsi256_ps(j), up)); \
                    }                                                                                    \
                }                                                                                        \
            }                                                                                            \
        for (int r = 0; r < MR; r++) {                                                                   \
            float v[32];                                                                                 \
            int32_t ix[32];                                                                              \
            for (int q = 0; q < 4; q++) {                                                                \
                _mm256_storeu_ps(v + 8 * q, bv[r][q]);                                                   \
                _mm256_storeu_si256((__m256i *)(ix + 8 * q), bj[r][q]);                                  \
            }                                                                                            \
            best_t best = {-INFINITY, INT32_MAX};                                                        \
            for (int l = 0; l < 32; l++)                                                                 \
                if (v[l] > best.value || (v[l] == best.value && ix[l] < best.index))                     \
                    best = (best_t){v[l], ix[l]};                                                        \
            index[r] = best.index;                                                                       \
            value[r] = best.value + 0.0f;                                                                \
        }                                                                                                \
    }
AVX2_ROWS(6)
AVX2_ROWS(1)

__attribute__((target("avx2,fma"))) static void pivots_avx2(const float *panel, size_t kept, size_t d,
                                                             const float *a, size_t n, int32_t *index,
                                                             float *value) {
    size_t r = 0;
    for (; r + 6 <= n; r += 6) rows_avx2_6(panel, kept, d, a + r * d, index + r, value + r);
    for (; r < n; r++) rows_avx2_1(panel, kept, d, a + r * d, index + r, value + r);
}
#endif

// 3 AVX-512 with bfloat16 screening (screen.c), 2 AVX-512, 1 AVX2+FMA, 0 scalar: the best the CPU
// has, lowered by LOOKM_KERNEL=avx512|avx2|scalar (for tests of every path on one machine; a level
// the CPU lacks is never chosen).
int lookm_pivot_kernel_level_available(void) {
    int have = 0;
#if defined(__x86_64__) && defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) have = 1;
    if (have && __builtin_cpu_supports("avx512f")) have = 2;
    if (have == 2 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        have = 3;
#endif
    return have;
}

int lookm_pivot_kernel_level(void) {
    static int cached = -1;  // every thread computes the same value
    int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level >= 0) return level;
    int have = lookm_pivot_kernel_level_available();
    const char *forced = getenv("LOOKM_KERNEL");
    int want = have;
    if (forced && strcmp(forced, "scalar") == 0) want = 0;
    if (forced && strcmp(forced, "avx2") == 0) want = 1;
    if (forced && strcmp(forced, "avx512") == 0) want = 2;
    level = want < have ? want : have;
    __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    return level;
}

void lookm_pivots(const float *panel, size_t kept, size_t d, const float *rows, size_t n, int32_t *index,
                  float *value) {
    lookm_pivots_at(lookm_pivot_kernel_level(), panel, kept, d, rows, n, index, value);
}

void lookm_pivots_at(int level, const float *panel, size_t kept, size_t d, const float *rows, size_t n,
                     int32_t *index, float *value) {
    if (kept == 0 || n == 0) return;
    int have = lookm_pivot_kernel_level_available();
    level = level < have ? level : have;
#if defined(__x86_64__) && defined(__clang__)
    switch (level) {
    case 3:
    case 2: pivots_avx512(panel, kept, d, rows, n, index, value); return;
    case 1: pivots_avx2(panel, kept, d, rows, n, index, value); return;
    default: break;
    }
#endif
    pivots_scalar(panel, kept, d, rows, n, index, value);
}
