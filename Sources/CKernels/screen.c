// Pivots below the GEMM bound (docs/method.md section 4): a pivot needs only the argmax, so the
// cosines are first estimated with bfloat16 dot products (AVX512_BF16: two channels per lane and
// instruction, twice the multiply-adds of float32 FMA), and only the kept slots whose estimate
// lies within twice an error bound of the row's best estimate are recomputed with the exact chain
// of similarity.c. The result is bit-identical to the exact path: the argmax is always among the
// recomputed candidates (the bound below), and they are compared exactly as the exact path does.
//
// The bound, for a normalised evicted row a and kept rows b_j, â and b̂ their bfloat16 roundings,
// c_j the exact path's float32 chain and v_j the bfloat16 estimate (u = 2^-24, g = D u / (1 - D u)):
//   |c_j - a.b_j|   <= g |a| |b_j|                  (D rounded fused multiply-adds)
//   |a.b_j - â.b̂_j| <= |a - â| |b_j| + |â| |b_j - b̂_j|     (Cauchy-Schwarz, twice)
//   |â.b̂_j - v_j|   <= g |â| |b̂_j| + 4 D 2^-126     (products of bfloat16 pairs are exact in
//                                                    float32; D rounded adds; denormals flushed)
// Taking per head the largest |b_j|, |b̂_j| and |b_j - b̂_j| gives one B per row with
// |c_j - v_j| <= B for every j. If j* has the largest estimate, c_j* >= v_j* - B; a slot with
// v_j < v_j* - 2B has c_j < v_j* - B <= c_j*, so it can be neither the maximum nor tied with it.
// The norms are summed in float32 over 16 lanes (relative error below g), so B is enlarged by
// 1 % + 4g, which covers that rounding and the bound's own arithmetic in double.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"

#pragma clang fp contract(off)

enum { NR = LOOKM_PIVOT_PANEL_WIDTH };

static size_t pairs_of(size_t d) { return (d + 1) / 2; }

size_t lookm_screen_panel_words(size_t kept, size_t d) { return (kept + NR - 1) / NR * NR * pairs_of(d); }

size_t lookm_screen_scratch_floats(size_t kept, size_t d) {
    // per block of 12 rows: estimates, bfloat16 pairs, and the candidates' rows, columns and values
    size_t width = (kept + NR - 1) / NR * NR;
    return 12 * width + 12 * pairs_of(d) + 3 * 12 * width;
}

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

// The kept keys' bfloat16 pairs, 32 columns at a time: channels 2p and 2p + 1 of a panel block are
// two rows of 32 floats, rounded (RNE) and interleaved into one word per column. Norms per column
// are summed in float32 (see the bound's margin) and their largest over the head kept in bounds.
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl"))) static void pack_avx512(
    const float *panel, size_t kept, size_t d, uint32_t *words, double bounds[3]) {
    size_t P = pairs_of(d);
    float best[3] = {0, 0, 0};
    for (size_t j0 = 0; j0 < kept; j0 += NR) {
        const float *block = panel + j0 * d;
        uint32_t *out = words + j0 * P;
        for (int h = 0; h < 2; h++) {
            __m512 n = _mm512_setzero_ps(), nr = n, e = n;
            for (size_t p = 0; p < P; p++) {
                __m512 x0 = _mm512_loadu_ps(block + 2 * p * NR + 16 * h);
                __m512 x1 = 2 * p + 1 < d ? _mm512_loadu_ps(block + (2 * p + 1) * NR + 16 * h) : _mm512_setzero_ps();
                __m512i b0 = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x0));
                __m512i b1 = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x1));
                _mm512_storeu_si512(out + p * NR + 16 * h, _mm512_or_si512(b0, _mm512_slli_epi32(b1, 16)));
                __m512 r0 = _mm512_castsi512_ps(_mm512_slli_epi32(b0, 16));
                __m512 r1 = _mm512_castsi512_ps(_mm512_slli_epi32(b1, 16));
                __m512 e0 = _mm512_sub_ps(x0, r0), e1 = _mm512_sub_ps(x1, r1);
                n = _mm512_add_ps(n, _mm512_add_ps(_mm512_mul_ps(x0, x0), _mm512_mul_ps(x1, x1)));
                nr = _mm512_add_ps(nr, _mm512_add_ps(_mm512_mul_ps(r0, r0), _mm512_mul_ps(r1, r1)));
                e = _mm512_add_ps(e, _mm512_add_ps(_mm512_mul_ps(e0, e0), _mm512_mul_ps(e1, e1)));
            }
            // padding columns are zero: they do not raise a maximum of norms
            float m[3] = {_mm512_reduce_max_ps(n), _mm512_reduce_max_ps(nr), _mm512_reduce_max_ps(e)};
            for (int i = 0; i < 3; i++) best[i] = m[i] > best[i] ? m[i] : best[i];
        }
    }
    for (int i = 0; i < 3; i++) bounds[i] = sqrt((double)best[i]);
}

// Estimates of MR rows against every panel block, written to est (MR rows of `width` floats;
// columns past `kept` are -inf), and each row's largest estimate to top. The rows' pairs come
// interleaved, a[p * MR + r], so that the broadcasts of one step are consecutive words.
#define SCREEN_ROWS(MR)                                                                                  \
    __attribute__((target("avx512f,avx512bf16"))) static void screen_rows_##MR(                          \
        const uint32_t *words, size_t kept, size_t P, const uint32_t *a, float *est, size_t width,       \
        float *top) {                                                                                    \
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);    \
        __m512 rm[MR];                                                                                   \
        for (int r = 0; r < MR; r++) rm[r] = _mm512_set1_ps(-INFINITY);                                  \
        for (size_t j0 = 0; j0 < kept; j0 += NR) {                                                       \
            const uint32_t *b = words + j0 * P;                                                          \
            __m512 acc[MR][2];                                                                           \
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();                    \
            for (size_t p = 0; p < P; p++) {                                                             \
                __m512i b0 = _mm512_loadu_si512(b + p * NR), b1 = _mm512_loadu_si512(b + p * NR + 16);   \
                for (int r = 0; r < MR; r++) {                                                           \
                    __m512i x = _mm512_set1_epi32((int)a[p * MR + r]);                                   \
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], (__m512bh)x, (__m512bh)b0);                  \
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], (__m512bh)x, (__m512bh)b1);                  \
                }                                                                                        \
            }                                                                                            \
            for (int h = 0; h < 2; h++) {                                                                \
                __m512i j = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(j0 + 16 * h)));               \
                __mmask16 valid = _mm512_cmplt_epi32_mask(j, _mm512_set1_epi32((int)kept));              \
                for (int r = 0; r < MR; r++) {                                                           \
                    __m512 v = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid, acc[r][h]);          \
                    _mm512_storeu_ps(est + r * width + j0 + 16 * h, v);                                  \
                    rm[r] = _mm512_max_ps(rm[r], v);                                                     \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
        for (int r = 0; r < MR; r++) top[r] = _mm512_reduce_max_ps(rm[r]);                               \
    }
SCREEN_ROWS(12)
SCREEN_ROWS(1)

// The candidates of one row: columns below `kept` whose estimate is at least `floor`, ascending.
__attribute__((target("avx512f"))) static size_t candidates(const float *est, size_t width, size_t kept,
                                                             float floor, int32_t *out) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 f = _mm512_set1_ps(floor);
    size_t n = 0;
    for (size_t j = 0; j < width; j += 16) {
        __m512i column = _mm512_add_epi32(lane, _mm512_set1_epi32((int)j));
        __mmask16 valid = _mm512_cmplt_epi32_mask(column, _mm512_set1_epi32((int)kept));
        __mmask16 m = _mm512_mask_cmp_ps_mask(valid, _mm512_loadu_ps(est + j), f, _CMP_GE_OQ);
        if (m) {
            _mm512_mask_compressstoreu_epi32(out + n, m, column);
            n += (size_t)__builtin_popcount(m);
        }
    }
    return n;
}

// One evicted row's bfloat16 pairs (a bfloat16 row in channel order, read as 32-bit words, is the
// pairs) and its three norms. Sums here are float32 over 16 lanes: relative error below D 2^-24,
// covered by the 1 % + 4g by which the bound is enlarged.
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl"))) static void row_pairs(
    const float *x, size_t d, uint32_t *out, size_t stride, double stats[3]) {
    uint16_t h[32];
    __m512 n = _mm512_setzero_ps(), nr = n, e = n;
    for (size_t k = 0; k < d; k += 16) {
        __mmask16 m = d - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - k)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + k);
        __m256bh b = _mm512_cvtneps_pbh(v);  // masked-off lanes are +0
        _mm256_storeu_si256((__m256i *)h, (__m256i)b);
        for (size_t q = 0; q < 8 && k + 2 * q < d; q++) out[(k / 2 + q) * stride] = (uint32_t)h[2 * q] | ((uint32_t)h[2 * q + 1] << 16);
        __m512 r = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)b), 16));
        __m512 diff = _mm512_sub_ps(v, r);
        n = _mm512_add_ps(n, _mm512_mul_ps(v, v));
        nr = _mm512_add_ps(nr, _mm512_mul_ps(r, r));
        e = _mm512_add_ps(e, _mm512_mul_ps(diff, diff));
    }
    stats[0] = sqrt((double)_mm512_reduce_add_ps(n));
    stats[1] = sqrt((double)_mm512_reduce_add_ps(nr));
    stats[2] = sqrt((double)_mm512_reduce_add_ps(e));
}

// The exact chain of similarity.c for (row, column) pairs, 8 chains side by side.
__attribute__((target("avx512f,fma"))) static void exact_pairs(const float *panel, size_t d, const float *rows,
                                                                const int32_t *row, const int32_t *col,
                                                                size_t n, float *out) {
    for (size_t g = 0; g < n; g += 8) {
        const float *a[8], *b[8];
        for (size_t q = 0; q < 8; q++) {
            size_t i = g + q < n ? g + q : g;  // a short group repeats its first pair
            a[q] = rows + (size_t)row[i] * d;
            b[q] = panel + ((size_t)col[i] / NR) * NR * d + (size_t)col[i] % NR;
        }
        float c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t k = 0; k < d; k++)
            for (size_t q = 0; q < 8; q++) c[q] = fmaf(a[q][k], b[q][k * NR], c[q]);
        for (size_t q = 0; q < 8 && g + q < n; q++) out[g + q] = c[q];
    }
}
#endif

static unsigned long long rechecked_total;

unsigned long long lookm_screen_rechecked(void) { return __atomic_load_n(&rechecked_total, __ATOMIC_RELAXED); }

int lookm_pivots_screened(const float *panel, const uint32_t *words, const double bounds[3], size_t kept, size_t d,
                          const float *rows, size_t n, int32_t *index, float *value, float *scratch) {
#if defined(__x86_64__) && defined(__clang__)
    // The bound below needs D 2^-24 well under 1; a head_dim of 2^20 or more (a hostile file) and
    // counts beyond int32 take the exact path.
    if (lookm_pivot_kernel_level_available() < 3 || kept == 0 || n == 0 || d >= ((size_t)1 << 20) ||
        kept >= (size_t)INT32_MAX - NR)
        return 0;
    size_t P = pairs_of(d), width = (kept + NR - 1) / NR * NR;
    float *est = scratch;
    uint32_t *a = (uint32_t *)(est + 12 * width);
    int32_t *pair_row = (int32_t *)(a + 12 * P), *pair_col = pair_row + 12 * width;
    float *pair_value = (float *)(pair_col + 12 * width);
    const double g = (double)d * 0x1p-24 / (1.0 - (double)d * 0x1p-24);
    const double flushed = 4.0 * (double)d * 0x1p-126;
    unsigned long long rechecked = 0;
    for (size_t r0 = 0; r0 < n; r0 += 12) {
        size_t m = n - r0 < 12 ? n - r0 : 12;
        double bound[12];
        float tops[12];
        for (size_t r = 0; r < m; r++) {
            double s[3];
            row_pairs(rows + (r0 + r) * d, d, m == 12 ? a + r : a + r * P, m == 12 ? 12 : 1, s);
            double B = g * s[0] * bounds[0] + s[2] * bounds[0] + s[1] * bounds[2] + g * s[1] * bounds[1] + flushed;
            bound[r] = B * (1.01 + 4.0 * g);
        }
        if (m == 12) {
            screen_rows_12(words, kept, P, a, est, width, tops);
        } else {
            for (size_t r = 0; r < m; r++)
                screen_rows_1(words, kept, P, a + r * P, est + r * width, width, tops + r);
        }
        // Every row's candidates, then all their exact chains together (8 in flight), then each
        // row's first maximum among its candidates, which come in ascending column order.
        size_t start[13], total = 0;
        for (size_t r = 0; r < m; r++) {
            const float *e = est + r * width;
            double top = tops[r];
            // In float, one step down, so that rounding the floor never drops a slot above it.
            float floor = nextafterf((float)(top - 2.0 * bound[r]), -INFINITY);
            start[r] = total;
            size_t c = candidates(e, width, kept, floor, pair_col + total);
            for (size_t i = 0; i < c; i++) pair_row[total + i] = (int32_t)(r0 + r);
            total += c;
        }
        start[m] = total;
        exact_pairs(panel, d, rows, pair_row, pair_col, total, pair_value);
        for (size_t r = 0; r < m; r++) {
            float best = -INFINITY;
            int32_t at = 0;
            for (size_t i = start[r]; i < start[r + 1]; i++)
                if (pair_value[i] > best) {
                    best = pair_value[i];
                    at = pair_col[i];
                }
            index[r0 + r] = at;
            value[r0 + r] = best + 0.0f;
        }
        rechecked += total;
    }
    __atomic_fetch_add(&rechecked_total, rechecked, __ATOMIC_RELAXED);
    return 1;
#else
    (void)panel; (void)words; (void)bounds; (void)kept; (void)d; (void)rows; (void)n; (void)index; (void)value;
    (void)scratch;
    return 0;
#endif
}

void lookm_pack_screen_panel(const float *panel, size_t kept, size_t d, uint32_t *words, double bounds[3]) {
    bounds[0] = bounds[1] = bounds[2] = 0;
#if defined(__x86_64__) && defined(__clang__)
    // Only the screening reads these, and it declines on CPUs without AVX512_BF16.
    if (lookm_pivot_kernel_level_available() == 3) pack_avx512(panel, kept, d, words, bounds);
#else
    (void)panel; (void)kept; (void)d; (void)words;
#endif
}
