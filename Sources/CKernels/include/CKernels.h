// Tight loops that Swift's default x86-64 target cannot compile well: 16-bit float conversion
// (Swift's Float16 becomes a library call per element without F16C) and finiteness scans.
#ifndef LOOKM_CKERNELS_H
#define LOOKM_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// IEEE binary16 bits to float32 (exact). Uses F16C when the CPU has it.
void lookm_f16_to_f32(const uint16_t *src, float *dst, size_t n);
/// float32 to IEEE binary16 bits, round to nearest even (overflow to infinity, NaN stays NaN).
void lookm_f32_to_f16(const float *src, uint16_t *dst, size_t n);
/// bfloat16 bits to float32 (exact: a shift).
void lookm_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/// float32 to bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
void lookm_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/// float64 to float32 with C's conversion (round to nearest even).
void lookm_f64_to_f32(const double *src, float *dst, size_t n);

/// Portable scalar versions, always available; the tests check the fast paths against them.
void lookm_f16_to_f32_scalar(const uint16_t *src, float *dst, size_t n);
void lookm_f32_to_f16_scalar(const float *src, uint16_t *dst, size_t n);

/// Index of the first element that is NaN or infinite, or n when all are finite.
size_t lookm_first_nonfinite_f32(const float *src, size_t n);

/// 1 when the F16C path is in use (for diagnostics and benchmarks).
int lookm_has_f16c(void);

/// Rows of a tensor as stored: float32, or the 16-bit bits of float16 or bfloat16.
enum { LOOKM_ROWS_F32 = 0, LOOKM_ROWS_F16 = 1, LOOKM_ROWS_BF16 = 2 };
typedef struct {
    const void *data;
    int32_t type;
} lookm_rows;

/// Index of the first NaN or infinite element of x's first n elements, or n.
size_t lookm_first_nonfinite_rows(lookm_rows x, size_t n);
/// Elements [first, first + n) of x as float32 (exact).
void lookm_rows_to_f32(lookm_rows x, size_t first, size_t n, float *dst);
#endif

#ifndef LOOKM_CKERNELS_SOFTMAX
#define LOOKM_CKERNELS_SOFTMAX
/// One row of causal attention: `probs[t] = softmax(logits[0..<n])[t]` in Float32 (max-subtracted),
/// and `colsum[t] += probs[t]` in Double. `probs` must hold n floats.
void lookm_softmax_row_accumulate(const float *logits, size_t n, double *colsum, float *probs);
#endif

#ifndef LOOKM_CKERNELS_MEMORY
#define LOOKM_CKERNELS_MEMORY
/// glibc: serve allocations of `mmap_bytes` or more by mmap, and keep up to `trim_bytes` free at the
/// top of the heap, both fixed (no dynamic raising). 1 on success.
int lookm_fix_malloc_thresholds(size_t mmap_bytes, size_t trim_bytes);
#endif

#ifndef LOOKM_CKERNELS_SHUFFLE
#define LOOKM_CKERNELS_SHUFFLE
/* HDF5's shuffle filter on n elements of elem bytes (src and dst do not overlap). */
void lookm_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);
/* Its inverse: n elements of elem bytes gathered back from their byte planes. */
void lookm_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);
#endif

#ifndef LOOKM_CKERNELS_SIMILARITY
#define LOOKM_CKERNELS_SIMILARITY
// Pivots of evicted keys (docs/method.md section 4): similarity.c says the summation order.
#define LOOKM_PIVOT_PANEL_WIDTH 32
/// dst[r] = src[rows[r]] / |src[rows[r]]| for n rows of d floats (Float32, sequential sum of
/// squares); a zero row stays zero, so its cosine with anything is 0, never NaN.
void lookm_normalise_rows(const float *src, const int64_t *rows, size_t n, size_t d, float *dst);
/// Floats of the packed panel of `kept` normalised rows of d floats.
size_t lookm_pivot_panel_floats(size_t kept, size_t d);
/// Normalises src[rows[j]] (j < kept) into the panel: blocks of 32 rows, channel-major inside a block.
void lookm_pack_pivot_panel(const float *src, const int64_t *rows, size_t kept, size_t d, float *panel);
/// For each of n normalised rows (n x d): the first panel row of highest cosine and that cosine.
void lookm_pivots(const float *panel, size_t kept, size_t d, const float *rows, size_t n, int32_t *index,
                  float *value);
/// lookm_pivots on the path `level` (lowered to what the CPU has): every path gives the same bits.
void lookm_pivots_at(int level, const float *panel, size_t kept, size_t d, const float *rows, size_t n,
                     int32_t *index, float *value);
/// The path pivots take: 3 AVX-512 with bfloat16 screening (lookm_pivots_screened), 2 AVX-512,
/// 1 AVX2+FMA, 0 scalar (LOOKM_KERNEL=avx512|avx2|scalar lowers it).
int lookm_pivot_kernel_level(void);
/// The best path this CPU has.
int lookm_pivot_kernel_level_available(void);

/// Screening (screen.c): 32-bit words of the bfloat16 panel, and floats of scratch per call.
size_t lookm_screen_panel_words(size_t kept, size_t d);
size_t lookm_screen_scratch_floats(size_t kept, size_t d);
/// The bfloat16 pairs of a packed panel, and bounds[0..2] = the largest |b|, |b rounded|, |b - b rounded|.
void lookm_pack_screen_panel(const float *panel, size_t kept, size_t d, uint32_t *words, double bounds[3]);
/// lookm_pivots' exact result by screening; 0 (nothing written) when the CPU lacks AVX512_BF16.
int lookm_pivots_screened(const float *panel, const uint32_t *words, const double bounds[3], size_t kept, size_t d,
                          const float *rows, size_t n, int32_t *index, float *value, float *scratch);
/// Candidates recomputed exactly by screening so far, over all threads (for benchmarks).
unsigned long long lookm_screen_rechecked(void);
#endif

#ifndef LOOKM_CKERNELS_CLEANUP
#define LOOKM_CKERNELS_CLEANUP
/// Remembers a temporary file to unlink if SIGINT, SIGTERM or SIGHUP arrives; returns its slot
/// (or -1 when the table is full or the path too long).
int lookm_cleanup_register(const char *path);
void lookm_cleanup_unregister(int slot);
/// Installs the handlers (exit status 128 + signal after removing the files), ignores SIGPIPE, and
/// turns a memory fault while an input file is being read into exit 3 naming that file.
void lookm_install_signal_handlers(void);
/// Names the input file being read, for the fault handler's message.
void lookm_set_input(const char *name);
#endif

#ifndef LOOKM_CKERNELS_CHUNK_LIMIT
#define LOOKM_CKERNELS_CHUNK_LIMIT
/// Per-thread uncompressed size of the chunks the current HDF5 read expects (0: unknown). HDF5 runs
/// filters on the thread that reads, so a thread-local value is exact even when several threads read.
void lookm_set_chunk_limit(size_t bytes);
size_t lookm_chunk_limit(void);
#endif

#ifndef LOOKM_CKERNELS_QUANT
#define LOOKM_CKERNELS_QUANT
#include <string.h>
// Quantised storage (docs/method.md section 12): every operation's result is rounded to the
// element type. `kind`: 0 float32 (nothing to round), 1 float16, 2 bfloat16.

/// `x` rounded to float16 precision (nearest, ties to even), kept in float32: what converting to
/// float16 and back gives, including subnormals, overflow to infinity, infinities and NaN. No
/// branches, so loops over it vectorise.
static inline float lookm_round_f16(float x) {
    uint32_t b, mag, sb, r;
    float a, s, out;
    memcpy(&b, &x, 4);
    uint32_t sign = b & 0x80000000u;
    mag = b & 0x7FFFFFFFu;
    memcpy(&a, &mag, 4);
    uint32_t normal = (b + 0xFFFu + ((b >> 13) & 1u)) & ~0x1FFFu;
    // Subnormal float16s are multiples of 2^-24, the spacing of float32 in [0.5, 1): adding 0.5
    // rounds to that grid (ties to even), subtracting it is exact.
    s = (a + 0.5f) - 0.5f;
    memcpy(&sb, &s, 4);
    sb |= sign;
    r = a < 0x1p-14f ? sb : normal;
    r = a >= 65520.0f ? (sign | 0x7F800000u) : r;  // half a step beyond 65504 or more: infinity
    r = mag >= 0x7F800000u ? b : r;                 // infinity and NaN stay
    memcpy(&out, &r, 4);
    return out;
}

/// `x` rounded to bfloat16 precision, as lookm_f32_to_bf16 rounds finite values; infinities and
/// NaN stay.
static inline float lookm_round_bf16(float x) {
    uint32_t b, r;
    float out;
    memcpy(&b, &x, 4);
    r = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
    r = (b & 0x7FFFFFFFu) >= 0x7F800000u ? b : r;
    memcpy(&out, &r, 4);
    return out;
}

static inline float lookm_round_to(float x, int kind) {
    return kind == 1 ? lookm_round_f16(x) : kind == 2 ? lookm_round_bf16(x) : x;
}

/// KIVI's codes of `n` values of one group: q = round(round(x - zero) / scale), NaN -> 0, clamped
/// to [0, max_code], rounded half to even.
void lookm_int_codes(const float *x, size_t n, float zero, float scale, float max_code, int kind, uint8_t *codes);

/// Packs `n` codes of `bits` bits (2, 4 or 8) into (n * bits + 7) / 8 bytes, the first code in the
/// lowest bits of byte 0.
void lookm_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *out);

/// One whole group (n >= 1, finite values): zero = its minimum, scale = round(round(max - min) /
/// max_code), and the codes as lookm_int_codes.
void lookm_int_group(const float *x, size_t n, float max_code, int kind, uint8_t *codes, float *scale, float *zero);
#endif

#ifndef LOOKM_CKERNELS_FIDELITY
#define LOOKM_CKERNELS_FIDELITY
// Attention of a few queries (report's and sweep's fidelity, Fidelity.swift) over float32 rows, in
// double, as one fixed sequence of IEEE operations on every CPU and code path (fidelity.c says
// which): any CPU gives the same bits, and a cache that keeps everything measures exactly 0.

/// Queries are processed in blocks of this many, side by side; weights are stored so.
#define LOOKM_ATTENTION_LANES 8

/// softmax(q K^T * scale) V for n queries (q: n x D, float32 values widened to double) over R rows
/// (k, v: R x D, as stored: widened as they are read). Query i sees row t when pos[t] <= limit[i]; rows it does not see weigh 0.
/// w (ceil(n / LANES) * R * LANES doubles) receives the weights, query i's on row t at
/// w[((i / LANES) * R + t) * LANES + i % LANES]; out (n x D) the outputs.
void lookm_attention_f64(const double *q, size_t n, lookm_rows k, lookm_rows v, size_t R, size_t D, double scale,
                         const int64_t *pos, const int64_t *limit, double *w, double *out);

/// e^x for x <= 0, as the attention above computes it (fidelity.c): for tests.
double lookm_exp_nonpositive(double x);

/// What happened to a prompt row in a compressed head (`lookm_recall_sums`' classes, combined).
enum {
    LOOKM_ROW_KEPT = 1,    // in its own slot
    LOOKM_ROW_MERGED = 2,  // merged into another position's slot
    LOOKM_ROW_TEXT = 4,    // a text position
    LOOKM_ROW_IMAGE = 8,   // a non-text position
};
#define LOOKM_RECALL_SUMS 6

/// Per query i < n, sums (in row order) of its weights w (laid out as lookm_attention_f64 writes
/// them, over R rows) on the first `covered` rows of each class (cls): sums[i * 6 + j] for j =
/// kept, merged, text, text kept or merged, image, image kept or merged.
void lookm_recall_sums(const double *w, size_t n, size_t R, size_t covered, const uint8_t *cls, double *sums);

/// out[c] = |y_c - x_c| / |x_c| (|y_c - x_c| where x_c is 0) in double, for the rows y_c = y[ys[c]*D ..]
/// and x_c = x[xs[c]*D ..] (as stored), c < count; each sum over d in order (report's key and value
/// shifts).
void lookm_relative_shifts(const float *y, const int64_t *ys, lookm_rows x, const int64_t *xs, size_t count,
                           size_t D, double *out);
#endif
