#include "CKernels.h"
#include <math.h>

void lookm_normalise_rows(const float *src, const int64_t *rows, size_t n, size_t d, float *dst) {
    for (size_t r = 0; r < n; r++) {
        const float *x = src + (size_t)rows[r] * d;
        float *y = dst + r * d;
        float s = 0.0f;
        for (size_t j = 0; j < d; j++) s += x[j] * x[j];
        float norm = sqrtf(s);
        if (norm > 0.0f) {
            for (size_t j = 0; j < d; j++) y[j] = x[j] / norm;
        } else {
            for (size_t j = 0; j < d; j++) y[j] = 0.0f;
        }
    }
}

static float row_max_scalar(const float *x, size_t cols) {
    float best = x[0];
    for (size_t j = 1; j < cols; j++) best = x[j] > best ? x[j] : best;
    return best;
}

#if defined(__x86_64__)
#include <immintrin.h>
/* Max is exact, so taking it 8 lanes at a time gives the same value as the scalar loop. */
__attribute__((target("avx")))
static float row_max_avx(const float *x, size_t cols) {
    if (cols < 16) return row_max_scalar(x, cols);
    __m256 m = _mm256_loadu_ps(x);
    size_t j = 8;
    for (; j + 8 <= cols; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, m);
    float best = lanes[0];
    for (int i = 1; i < 8; i++) best = lanes[i] > best ? lanes[i] : best;
    for (; j < cols; j++) best = x[j] > best ? x[j] : best;
    return best;
}
#endif

void lookm_argmax_rows(const float *m, size_t rows, size_t cols, int32_t *index, float *value) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    int avx = __builtin_cpu_supports("avx");
#else
    int avx = 0;
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *x = m + r * cols;
        /* The maximum first (vectorised where the CPU allows), then the first position holding it:
           ties go to the lowest slot, as the spec and torch's max(dim) on CPU do. Inputs are finite. */
#if defined(__x86_64__)
        float best = avx ? row_max_avx(x, cols) : row_max_scalar(x, cols);
#else
        float best = row_max_scalar(x, cols);
#endif
        size_t at = 0;
        while (at < cols && !(x[at] == best)) at++;
        index[r] = (int32_t)(at < cols ? at : 0);
        value[r] = best;
    }
}

/* HDF5's shuffle filter: byte j of every element, then byte j + 1, ... (n elements of size
   elem). The 2- and 4-byte cases are plain loops the compiler vectorises. */
void lookm_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem) {
    if (elem == 2) {
        uint8_t *d0 = dst, *d1 = dst + n;
        for (size_t i = 0; i < n; i++) { d0[i] = src[2 * i]; d1[i] = src[2 * i + 1]; }
        return;
    }
    if (elem == 4) {
        uint8_t *d0 = dst, *d1 = dst + n, *d2 = dst + 2 * n, *d3 = dst + 3 * n;
        for (size_t i = 0; i < n; i++) {
            d0[i] = src[4 * i]; d1[i] = src[4 * i + 1]; d2[i] = src[4 * i + 2]; d3[i] = src[4 * i + 3];
        }
        return;
    }
    for (size_t j = 0; j < elem; j++)
        for (size_t i = 0; i < n; i++) dst[j * n + i] = src[i * elem + j];
}
