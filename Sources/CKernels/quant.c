// Quantised storage's loops (docs/method.md section 12), written so the compiler vectorises them:
// the rounding helpers in CKernels.h have no branches, and the element type is fixed per loop.
#include "CKernels.h"

static inline __attribute__((always_inline)) uint8_t int_code(float x, float zero, float scale, float max_code,
                                                               int kind) {
    float q = lookm_round_to(lookm_round_to(x - zero, kind) / scale, kind);
    // 0/0 (a constant group) is NaN: code 0. x/0 > 0 (an underflowed scale) clamps to max_code.
    q = q != q ? 0.0f : q;
    q = q < 0.0f ? 0.0f : (q > max_code ? max_code : q);
    // Round half to even: for 0 <= q < 2^23, adding and subtracting 2^23 rounds to an integer.
    return (uint8_t)(int)((q + 0x1p23f) - 0x1p23f);
}

// One loop per element type (the kind a constant inside it), so each vectorises.
#define INT_CODES_LOOPS                                                                             \
    switch (kind) {                                                                                 \
    case 1: for (size_t i = 0; i < n; i++) codes[i] = int_code(x[i], zero, scale, max_code, 1); break; \
    case 2: for (size_t i = 0; i < n; i++) codes[i] = int_code(x[i], zero, scale, max_code, 2); break; \
    default: for (size_t i = 0; i < n; i++) codes[i] = int_code(x[i], zero, scale, max_code, 0); break; \
    }

static void int_codes_base(const float *x, size_t n, float zero, float scale, float max_code, int kind,
                           uint8_t *codes) {
    INT_CODES_LOOPS
}

// The same loops for AVX2 (8 lanes instead of 4), chosen once at run time: the same IEEE
// operations in every lane (no FMA: nothing here multiplies and adds), so the same codes.
#if defined(__x86_64__) && defined(__clang__)
__attribute__((target("avx2"))) static void int_codes_avx2(const float *x, size_t n, float zero, float scale,
                                                           float max_code, int kind, uint8_t *codes) {
    INT_CODES_LOOPS
}
#endif

void lookm_int_codes(const float *x, size_t n, float zero, float scale, float max_code, int kind, uint8_t *codes) {
#if defined(__x86_64__) && defined(__clang__)
    static int avx2 = -1;
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    if (avx2 && n >= 8) {
        int_codes_avx2(x, n, zero, scale, max_code, kind, codes);
        return;
    }
#endif
    int_codes_base(x, n, zero, scale, max_code, kind, codes);
}

void lookm_int_group(const float *x, size_t n, float max_code, int kind, uint8_t *codes, float *scale, float *zero) {
    float mn = x[0], mx = x[0];
    for (size_t i = 1; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    *zero = mn;
    *scale = lookm_round_to(lookm_round_to(mx - mn, kind) / max_code, kind);
    lookm_int_codes(x, n, mn, *scale, max_code, kind, codes);
}

void lookm_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *out) {
    memset(out, 0, (n * (size_t)bits + 7) / 8);
    switch (bits) {
    case 8: memcpy(out, codes, n); break;
    case 4: for (size_t i = 0; i < n; i++) out[i >> 1] |= (uint8_t)(codes[i] << ((i & 1) * 4)); break;
    case 2: for (size_t i = 0; i < n; i++) out[i >> 2] |= (uint8_t)(codes[i] << ((i & 3) * 2)); break;
    default: break;
    }
}
