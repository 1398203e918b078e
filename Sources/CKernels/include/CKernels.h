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
#endif

#ifndef LOOKM_CKERNELS_SOFTMAX
#define LOOKM_CKERNELS_SOFTMAX
/// One row of causal attention: `probs[t] = softmax(logits[0..<n])[t]` in Float32 (max-subtracted),
/// and `colsum[t] += probs[t]` in Double. `probs` must hold n floats.
void lookm_softmax_row_accumulate(const float *logits, size_t n, double *colsum, float *probs);
#endif

#ifndef LOOKM_CKERNELS_MEMORY
#define LOOKM_CKERNELS_MEMORY
/// glibc: serve allocations of `bytes` or more by mmap, fixed (no dynamic raising). 1 on success.
int lookm_fix_mmap_threshold(size_t bytes);
#endif

#ifndef LOOKM_CKERNELS_ROWS
#define LOOKM_CKERNELS_ROWS
/// dst[r] = src[rows[r]] / |src[rows[r]]| for n rows of d floats (Float32, sequential sum of
/// squares); a zero row stays zero, so its cosine with anything is 0, never NaN.
void lookm_normalise_rows(const float *src, const int64_t *rows, size_t n, size_t d, float *dst);
/// For each of `rows` rows of `cols` floats: the first index of the maximum, and the maximum.
void lookm_argmax_rows(const float *m, size_t rows, size_t cols, int32_t *index, float *value);

/* HDF5's shuffle filter on n elements of elem bytes (src and dst do not overlap). */
void lookm_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);
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
