#include "CKernels.h"

/* HDF5's shuffle filter: byte j of every element, then byte j + 1, ... (n elements of size
   elem). The 2- and 4-byte cases are plain loops the compiler vectorises. */
void lookm_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem) {
    if (elem == 2) {
        const uint8_t *s0 = src, *s1 = src + n;
        for (size_t i = 0; i < n; i++) { dst[2 * i] = s0[i]; dst[2 * i + 1] = s1[i]; }
        return;
    }
    if (elem == 4) {
        const uint8_t *s0 = src, *s1 = src + n, *s2 = src + 2 * n, *s3 = src + 3 * n;
        for (size_t i = 0; i < n; i++) {
            dst[4 * i] = s0[i]; dst[4 * i + 1] = s1[i]; dst[4 * i + 2] = s2[i]; dst[4 * i + 3] = s3[i];
        }
        return;
    }
    for (size_t j = 0; j < elem; j++)
        for (size_t i = 0; i < n; i++) dst[i * elem + j] = src[j * n + i];
}

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
