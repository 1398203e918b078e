// Few-query attention in double over float32 rows (CKernels.h, LOOKM_CKERNELS_FIDELITY), for
// report's and sweep's fidelity. A GEMM library would pack the whole key block for 8 queries,
// which costs more than the arithmetic: here a block of 8 queries sits in the 8 lanes of one
// vector of doubles, each key or value row is read once and widened in registers, and the scores,
// the softmax and the weighted sum are one pass per block with the scores kept in L2.
//
// Every number is a fixed sequence of IEEE operations, the same on every path (AVX-512, AVX2+FMA,
// scalar `fma`), so any CPU gives the same bits:
// - score(i, t) = scale * chain, chain = fma(q[i][d], k[t][d], chain) over d ascending from +0;
//   the products of float32 values are exact in double, so this is also what separate multiplies
//   and adds give;
// - softmax with the maximum over the rows query i sees, `exp_nonpositive` below, the total added in row
//   order, each weight divided by it;
// - out[i][d] = fma(w[i][t], v[t][d], out) over t ascending from +0 (the weights are not float32
//   values, so this differs from a multiply then an add in the last bit: documented in
//   docs/report.md, and the metrics stay within 1e-9 relative of a float64 NumPy computation).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"

#pragma clang fp contract(off)

enum { LANES = LOOKM_ATTENTION_LANES };

static double bits_double(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}
static uint64_t double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

// e^x for x <= 0 within about 1 ulp, branch-free so that it vectorises, and written with `fma`
// so that every path rounds alike (glibc's exp is not one fixed sequence across its CPU variants).
// x = n ln2 + r with |r| <= ln2/2 (n by the round-to-nearest of adding 1.5 * 2^52, r by two
// fused steps with ln2 split in a high and a low part), e^r by its Taylor polynomial to degree 13
// (the first term left out is r^14/14! < 5e-18 relative), and 2^n applied as two normal powers
// of two 2^a 2^b, a = floor(n/2), so results down in the subnormals round once, at the end.
// Below -746 the result is 0 (e^-746 is under half the smallest subnormal).
static inline double exp_nonpositive(double x) {
    const double shifter = 0x1.8p52;
    x = x < -746.0 ? -746.0 : x;
    double t = fma(x, 0x1.71547652b82fep0, shifter);
    double n = t - shifter;
    int64_t ni = (int64_t)(double_bits(t) - double_bits(shifter));
    double r = fma(-n, 0x1.62e42fefa39efp-1, x);
    r = fma(-n, 0x1.abc9e3b39803fp-56, r);
    double p = 0x1.6124613a86d09p-33;        // 1/13!
    p = fma(p, r, 0x1.1eed8eff8d898p-29);    // 1/12!
    p = fma(p, r, 0x1.ae64567f544e4p-26);    // 1/11!
    p = fma(p, r, 0x1.27e4fb7789f5cp-22);    // 1/10!
    p = fma(p, r, 0x1.71de3a556c734p-19);    // 1/9!
    p = fma(p, r, 0x1.a01a01a01a01ap-16);    // 1/8!
    p = fma(p, r, 0x1.a01a01a01a01ap-13);    // 1/7!
    p = fma(p, r, 0x1.6c16c16c16c17p-10);    // 1/6!
    p = fma(p, r, 0x1.1111111111111p-7);     // 1/5!
    p = fma(p, r, 0x1.5555555555555p-5);     // 1/4!
    p = fma(p, r, 0x1.5555555555555p-3);     // 1/3!
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    int64_t a = ni >> 1;  // floor(n/2) for n <= 0 (arithmetic shift); n >= -1077, so both halves
    int64_t b = ni - a;   // are at least -539: normal powers of two
    return p * bits_double((uint64_t)(a + 1023) << 52) * bits_double((uint64_t)(b + 1023) << 52);
}

double lookm_exp_nonpositive(double x) { return exp_nonpositive(x); }

// The softmax of one block from its scores in w (R x LANES, lanes side by side), in place:
// lane l sees row t when pos[t] <= limit[l]; rows it does not see get weight 0.
#define SOFTMAX_BODY                                                                                 \
    double mx[LANES], total[LANES];                                                                  \
    for (int l = 0; l < LANES; l++) {                                                                \
        mx[l] = -INFINITY;                                                                           \
        total[l] = 0;                                                                                \
    }                                                                                                \
    for (size_t t = 0; t < R; t++)                                                                   \
        for (int l = 0; l < LANES; l++) {                                                            \
            double s = w[t * LANES + l];                                                             \
            mx[l] = pos[t] <= limit[l] && s > mx[l] ? s : mx[l];                                     \
        }                                                                                            \
    for (size_t t = 0; t < R; t++)                                                                   \
        for (int l = 0; l < LANES; l++) {                                                            \
            double e = exp_nonpositive(w[t * LANES + l] - mx[l]);                                    \
            e = pos[t] <= limit[l] ? e : 0.0;                                                        \
            w[t * LANES + l] = e;                                                                    \
            total[l] = total[l] + e;                                                                 \
        }                                                                                            \
    for (int l = 0; l < LANES; l++) total[l] = total[l] > 0 ? total[l] : 1.0; /* nothing seen: 0s */ \
    for (size_t t = 0; t < R; t++)                                                                   \
        for (int l = 0; l < LANES; l++) w[t * LANES + l] = w[t * LANES + l] / total[l];

// Rows are taken ROWS at a time, converted to float32 when stored in 16 bits (exact), so that
// a block of them stays in L1 while it is used.
enum { ROWS = 16 };

// Scores of R rows k (float32): w[t*LANES + l] = scale * chain over d (qt is D x LANES, the block's
// queries transposed, unused lanes 0).
#define SCORES_BODY                                                                                  \
    for (size_t t = 0; t < R; t++) {                                                                 \
        double acc[LANES] = {0};                                                                     \
        const float *row = k + t * D;                                                                \
        for (size_t d = 0; d < D; d++) {                                                             \
            double kd = (double)row[d];                                                              \
            for (int l = 0; l < LANES; l++) acc[l] = fma(qt[d * LANES + l], kd, acc[l]);             \
        }                                                                                            \
        for (int l = 0; l < LANES; l++) w[t * LANES + l] = scale * acc[l];                           \
    }

// out (LANES x D) += the weights (R x LANES) times R rows v (float32), each element one fma chain
// continued over t.
#define SUM_BODY                                                                                     \
    for (size_t t = 0; t < R; t++)                                                                   \
        for (int l = 0; l < LANES; l++) {                                                            \
            double x = w[t * LANES + l];                                                             \
            double *o = out + l * D;                                                                 \
            for (size_t d = 0; d < D; d++) o[d] = fma(x, (double)v[t * D + d], o[d]);                \
        }

static void scores_scalar(const double *qt, const float *k, size_t R, size_t D, double scale, double *w,
                          double *kd) {
    (void)kd;
    SCORES_BODY
}
static void sum_scalar(const double *w, const float *v, size_t R, size_t D, double *out) { SUM_BODY }
static void softmax_scalar(size_t R, const int64_t *pos, const int64_t *limit, double *w) { SOFTMAX_BODY }

typedef struct {
    void (*scores)(const double *qt, const float *k, size_t R, size_t D, double scale, double *w, double *kd);
    void (*softmax)(size_t R, const int64_t *pos, const int64_t *limit, double *w);
    void (*sum)(const double *w, const float *v, size_t R, size_t D, double *out);
} path;

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static void scores_avx2(const double *qt, const float *k, size_t R, size_t D,
                                                            double scale, double *w, double *kd) {
    (void)kd;
    SCORES_BODY
}
__attribute__((target("avx2,fma"))) static void sum_avx2(const double *w, const float *v, size_t R, size_t D,
                                                         double *out) {
    SUM_BODY
}
__attribute__((target("avx2,fma"))) static void softmax_avx2(size_t R, const int64_t *pos, const int64_t *limit,
                                                             double *w) {
    SOFTMAX_BODY
}

// AVX-512: the block's 8 lanes are one zmm. Scores take up to 16 rows at a time (16 independent
// chains cover the FMA latency; each row's chain is the same sequence as above), widened to double
// once into `kd` so that each FMA reads its key element as an embedded broadcast. The weighted sum
// holds 8 lanes x 16 channels in 16 zmm accumulators while it runs over a block's rows.
__attribute__((target("avx512f"))) static void scores_avx512(const double *qt, const float *k, size_t R, size_t D,
                                                             double scale, double *w, double *kd) {
    const __m512d s = _mm512_set1_pd(scale);
    size_t t = 0;
    for (; t + ROWS <= R; t += ROWS) {
        const float *rows = k + t * D;
        for (size_t i = 0; i < ROWS * D; i++) kd[i] = (double)rows[i];
        __m512d a[ROWS];
        for (int r = 0; r < ROWS; r++) a[r] = _mm512_setzero_pd();
        for (size_t d = 0; d < D; d++) {
            const __m512d q = _mm512_loadu_pd(qt + d * 8);
            for (int r = 0; r < ROWS; r++) a[r] = _mm512_fmadd_pd(q, _mm512_set1_pd(kd[r * D + d]), a[r]);
        }
        for (int r = 0; r < ROWS; r++) _mm512_storeu_pd(w + (t + r) * 8, _mm512_mul_pd(s, a[r]));
    }
    for (; t < R; t++) {
        const float *row = k + t * D;
        __m512d a = _mm512_setzero_pd();
        for (size_t d = 0; d < D; d++)
            a = _mm512_fmadd_pd(_mm512_loadu_pd(qt + d * 8), _mm512_set1_pd((double)row[d]), a);
        _mm512_storeu_pd(w + t * 8, _mm512_mul_pd(s, a));
    }
}

__attribute__((target("avx512f"))) static void sum_avx512(const double *w, const float *v, size_t R, size_t D,
                                                          double *out) {
    size_t d0 = 0;
    for (; d0 + 16 <= D; d0 += 16) {
        __m512d lo[8], hi[8];
        for (int l = 0; l < 8; l++) {
            lo[l] = _mm512_loadu_pd(out + l * D + d0);
            hi[l] = _mm512_loadu_pd(out + l * D + d0 + 8);
        }
        for (size_t t = 0; t < R; t++) {
            const __m512d vl = _mm512_cvtps_pd(_mm256_loadu_ps(v + t * D + d0));
            const __m512d vh = _mm512_cvtps_pd(_mm256_loadu_ps(v + t * D + d0 + 8));
            const double *wt = w + t * 8;
            for (int l = 0; l < 8; l++) {
                const __m512d x = _mm512_set1_pd(wt[l]);
                lo[l] = _mm512_fmadd_pd(x, vl, lo[l]);
                hi[l] = _mm512_fmadd_pd(x, vh, hi[l]);
            }
        }
        for (int l = 0; l < 8; l++) {
            _mm512_storeu_pd(out + l * D + d0, lo[l]);
            _mm512_storeu_pd(out + l * D + d0 + 8, hi[l]);
        }
    }
    for (; d0 < D; d0++) {
        double lanes[8];
        for (int l = 0; l < 8; l++) lanes[l] = out[l * D + d0];
        __m512d a = _mm512_loadu_pd(lanes);
        for (size_t t = 0; t < R; t++)
            a = _mm512_fmadd_pd(_mm512_loadu_pd(w + t * 8), _mm512_set1_pd((double)v[t * D + d0]), a);
        _mm512_storeu_pd(lanes, a);
        for (int l = 0; l < 8; l++) out[l * D + d0] = lanes[l];
    }
}

__attribute__((target("avx512f"))) static void softmax_avx512(size_t R, const int64_t *pos, const int64_t *limit,
                                                              double *w) {
    SOFTMAX_BODY
}
#endif

static path path_for_cpu(void) {
#if defined(__x86_64__) && defined(__clang__)
    switch (lookm_pivot_kernel_level()) {
    case 3:
    case 2: return (path){scores_avx512, softmax_avx512, sum_avx512};
    case 1: return (path){scores_avx2, softmax_avx2, sum_avx2};
    default: break;
    }
#endif
    return (path){scores_scalar, softmax_scalar, sum_scalar};
}

// Rows [t, t + count) of x as float32: in place, or converted into `scratch`.
static const float *rows_f32(lookm_rows x, size_t t, size_t count, size_t D, float *scratch) {
    if (x.type == LOOKM_ROWS_F32) return (const float *)x.data + t * D;
    lookm_rows_to_f32(x, t * D, count * D, scratch);
    return scratch;
}

void lookm_attention_f64(const double *q, size_t n, lookm_rows k, lookm_rows v, size_t R, size_t D, double scale,
                         const int64_t *pos, const int64_t *limit, double *w, double *out) {
    if (n == 0) return;
    path p = path_for_cpu();
    // The block's queries transposed (D x LANES), its outputs (LANES x D), ROWS rows in double
    // and in float32.
    double *qt = malloc((2 * D * LANES + ROWS * D) * sizeof(double) + ROWS * D * sizeof(float));
    if (qt == NULL) abort();
    double *lanes = qt + D * LANES, *kd = lanes + D * LANES;
    float *rows = (float *)(kd + ROWS * D);
    for (size_t b = 0; b * LANES < n; b++) {
        size_t m = n - b * LANES < LANES ? n - b * LANES : LANES;
        int64_t lim[LANES];
        for (size_t l = 0; l < LANES; l++) {
            lim[l] = l < m ? limit[b * LANES + l] : INT64_MIN;  // an unused lane sees nothing
            for (size_t d = 0; d < D; d++) qt[d * LANES + l] = l < m ? q[(b * LANES + l) * D + d] : 0.0;
        }
        double *wb = w + b * R * LANES;
        for (size_t t = 0; t < R; t += ROWS) {
            size_t c = R - t < ROWS ? R - t : ROWS;
            p.scores(qt, rows_f32(k, t, c, D, rows), c, D, scale, wb + t * LANES, kd);
        }
        if (R > 0) p.softmax(R, pos, lim, wb);
        memset(lanes, 0, LANES * D * sizeof(double));
        for (size_t t = 0; t < R; t += ROWS) {
            size_t c = R - t < ROWS ? R - t : ROWS;
            p.sum(wb + t * LANES, rows_f32(v, t, c, D, rows), c, D, lanes);
        }
        memcpy(out + b * LANES * D, lanes, m * D * sizeof(double));
    }
    free(qt);
}

// Each sum adds its class's rows in row order. With AVX-512, the block's 8 lanes are one zmm and
// each sum a masked add (rows outside the class leave it as it is, so the same bits).
// takes[c][j]: whether a row of class value c (LOOKM_ROW_* combined, below 16) goes into sum j.
static void recall_takes(int takes[16][LOOKM_RECALL_SUMS]) {
    for (int c = 0; c < 16; c++) {
        int recalled = (c & (LOOKM_ROW_KEPT | LOOKM_ROW_MERGED)) != 0;
        int in[LOOKM_RECALL_SUMS] = {c & LOOKM_ROW_KEPT, c & LOOKM_ROW_MERGED, c & LOOKM_ROW_TEXT,
                                     (c & LOOKM_ROW_TEXT) && recalled, c & LOOKM_ROW_IMAGE,
                                     (c & LOOKM_ROW_IMAGE) && recalled};
        for (int j = 0; j < LOOKM_RECALL_SUMS; j++) takes[c][j] = in[j] != 0;
    }
}

static void recall_block(const double *wb, size_t R, const uint8_t *cls, const int takes[16][LOOKM_RECALL_SUMS],
                         double s[LOOKM_RECALL_SUMS][LANES]) {
    for (size_t t = 0; t < R; t++) {
        const int *in = takes[cls[t] & 15];
        for (int j = 0; j < LOOKM_RECALL_SUMS; j++)
            if (in[j])
                for (int l = 0; l < LANES; l++) s[j][l] = s[j][l] + wb[t * LANES + l];
    }
}

#if defined(__x86_64__) && defined(__clang__)
__attribute__((target("avx512f"))) static void recall_block_avx512(const double *wb, size_t R, const uint8_t *cls,
                                                                   const int takes[16][LOOKM_RECALL_SUMS],
                                                                   double s[LOOKM_RECALL_SUMS][LANES]) {
    __mmask8 masks[16][LOOKM_RECALL_SUMS];
    for (int c = 0; c < 16; c++)
        for (int j = 0; j < LOOKM_RECALL_SUMS; j++) masks[c][j] = takes[c][j] ? 0xFF : 0;
    __m512d a[LOOKM_RECALL_SUMS];
    for (int j = 0; j < LOOKM_RECALL_SUMS; j++) a[j] = _mm512_setzero_pd();
    for (size_t t = 0; t < R; t++) {
        const __m512d x = _mm512_loadu_pd(wb + t * LANES);
        const __mmask8 *m = masks[cls[t] & 15];
        for (int j = 0; j < LOOKM_RECALL_SUMS; j++) a[j] = _mm512_mask_add_pd(a[j], m[j], a[j], x);
    }
    for (int j = 0; j < LOOKM_RECALL_SUMS; j++) _mm512_storeu_pd(s[j], a[j]);
}
#endif

void lookm_recall_sums(const double *w, size_t n, size_t R, size_t covered, const uint8_t *cls, double *sums) {
    int takes[16][LOOKM_RECALL_SUMS];
    recall_takes(takes);
    for (size_t b = 0; b * LANES < n; b++) {
        size_t m = n - b * LANES < LANES ? n - b * LANES : LANES;
        double s[LOOKM_RECALL_SUMS][LANES] = {{0}};
        const double *wb = w + b * R * LANES;
#if defined(__x86_64__) && defined(__clang__)
        if (lookm_pivot_kernel_level() >= 2)
            recall_block_avx512(wb, covered, cls, takes, s);
        else
#endif
            recall_block(wb, covered, cls, takes, s);
        for (size_t l = 0; l < m; l++)
            for (int j = 0; j < LOOKM_RECALL_SUMS; j++) sums[(b * LANES + l) * LOOKM_RECALL_SUMS + j] = s[j][l];
    }
}

// Shifts of 8 pairs at a time: each pair's two sums run over d in order (the same bits as one
// pair at a time), 16 independent chains instead of 2.
void lookm_relative_shifts(const float *y, const int64_t *ys, lookm_rows x, const int64_t *xs, size_t count,
                           size_t D, double *out) {
    float *rows = malloc(LANES * D * sizeof(float) + 1);
    if (rows == NULL) abort();
    for (size_t c = 0; c < count; c += LANES) {
        size_t m = count - c < LANES ? count - c : LANES;
        double diff[LANES] = {0}, norm[LANES] = {0};
        const float *yr[LANES], *xr[LANES];
        for (size_t l = 0; l < LANES; l++) {
            size_t i = c + (l < m ? l : 0);  // unused lanes repeat the first pair
            yr[l] = y + (size_t)ys[i] * D;
            xr[l] = rows + l * D;
            lookm_rows_to_f32(x, (size_t)xs[i] * D, D, rows + l * D);
        }
        for (size_t d = 0; d < D; d++)
            for (int l = 0; l < LANES; l++) {
                double a = (double)xr[l][d], b = (double)yr[l][d];
                diff[l] = diff[l] + (b - a) * (b - a);
                norm[l] = norm[l] + a * a;
            }
        for (size_t l = 0; l < m; l++) out[c + l] = norm[l] > 0 ? sqrt(diff[l] / norm[l]) : sqrt(diff[l]);
    }
    free(rows);
}
