#include "CKernels.h"
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LOOKM_X86 1
#endif

/* ---- scalar reference conversions (bit manipulation, no _Float16 libcalls) ---- */

static inline float bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    /* infinity, or NaN made quiet as F16C does */
    if (exp == 0x1Fu) return bits_to_f32(sign | 0x7F800000u | (man ? 0x400000u : 0u) | (man << 13));
    if (exp != 0) return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return bits_to_f32(sign);
    /* subnormal half: value = man * 2^-24, exactly representable in float32 */
    float v = (float)man * 5.9604644775390625e-8f;
    return bits_to_f32(sign | f32_to_bits(v));
}

static inline uint16_t float_to_half(float f) {
    uint32_t x = f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u)                                  /* inf or NaN (NaN kept quiet) */
        return sign | 0x7C00u | (ax > 0x7F800000u ? (0x200u | ((ax >> 13) & 0x3FFu)) : 0);
    if (ax >= 0x477FF000u) return sign | 0x7C00u;           /* rounds past 65504: infinity */
    if (ax < 0x38800000u) {                                 /* below 2^-14: subnormal or zero */
        if (ax < 0x33000000u) return sign;                  /* below half of 2^-24: zero */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126u - e;                          /* 14..24 bits dropped */
        uint32_t keep = m >> shift;
        uint32_t rest = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rest > half || (rest == half && (keep & 1u))) keep++;
        return sign | (uint16_t)keep;
    }
    /* normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even */
    uint32_t r = ax - 0x38000000u;
    r += 0xFFFu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
}

void lookm_f16_to_f32_scalar(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}

void lookm_f32_to_f16_scalar(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half(src[i]);
}

/* ---- F16C paths, chosen once at run time ---- */

#ifdef LOOKM_X86
__attribute__((target("avx,f16c")))
static void f16_to_f32_f16c(const uint16_t *s, float *d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) d[i] = _cvtsh_ss(s[i]);
}

__attribute__((target("avx,f16c")))
static void f32_to_f16_f16c(const float *s, uint16_t *d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) d[i] = float_to_half(s[i]);
}

static int cpu_has_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}
#endif

int lookm_has_f16c(void) {
#ifdef LOOKM_X86
    return cpu_has_f16c();
#else
    return 0;
#endif
}

void lookm_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#ifdef LOOKM_X86
    if (cpu_has_f16c()) { f16_to_f32_f16c(src, dst, n); return; }
#endif
    lookm_f16_to_f32_scalar(src, dst, n);
}

void lookm_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#ifdef LOOKM_X86
    if (cpu_has_f16c()) { f32_to_f16_f16c(src, dst, n); return; }
#endif
    lookm_f32_to_f16_scalar(src, dst, n);
}

void lookm_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    uint32_t *d = (uint32_t *)(void *)dst;
    for (size_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

void lookm_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    const uint32_t *s = (const uint32_t *)(const void *)src;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = s[i];
        if ((b & 0x7FFFFFFFu) > 0x7F800000u) { dst[i] = (uint16_t)((b >> 16) | 0x40u); continue; }
        /* round to nearest even; carries into the exponent (and to infinity) are correct */
        dst[i] = (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
    }
}

void lookm_f64_to_f32(const double *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

/* The scans are plain loops the compiler vectorises; cloned for AVX2, where they run twice as
   wide as on the SSE2 baseline (the index found is the same on every clone). */
#if defined(LOOKM_X86) && defined(__clang__)
#define LOOKM_SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LOOKM_SCAN_CLONES
#endif

LOOKM_SCAN_CLONES
size_t lookm_first_nonfinite_f32(const float *src, size_t n) {
    const uint32_t *s = (const uint32_t *)(const void *)src;
    /* Branch-free scan in blocks so the common all-finite case vectorises. */
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (size_t j = 0; j < 64; j++) bad |= ((s[i + j] & 0x7F800000u) == 0x7F800000u);
        if (bad) break;
    }
    for (; i < n; i++) if ((s[i] & 0x7F800000u) == 0x7F800000u) return i;
    return n;
}

LOOKM_SCAN_CLONES
static size_t lookm_first_nonfinite_u16(const uint16_t *src, size_t n, uint16_t exponent) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (size_t j = 0; j < 64; j++) bad |= ((src[i + j] & exponent) == exponent);
        if (bad) break;
    }
    for (; i < n; i++) if ((src[i] & exponent) == exponent) return i;
    return n;
}

size_t lookm_first_nonfinite_rows(lookm_rows x, size_t n) {
    switch (x.type) {
    case LOOKM_ROWS_F16: return lookm_first_nonfinite_u16(x.data, n, 0x7C00u);
    case LOOKM_ROWS_BF16: return lookm_first_nonfinite_u16(x.data, n, 0x7F80u);
    default: return lookm_first_nonfinite_f32(x.data, n);
    }
}

void lookm_rows_to_f32(lookm_rows x, size_t first, size_t n, float *dst) {
    switch (x.type) {
    case LOOKM_ROWS_F16: lookm_f16_to_f32((const uint16_t *)x.data + first, dst, n); return;
    case LOOKM_ROWS_BF16: lookm_bf16_to_f32((const uint16_t *)x.data + first, dst, n); return;
    default: memcpy(dst, (const float *)x.data + first, n * sizeof(float)); return;
    }
}
