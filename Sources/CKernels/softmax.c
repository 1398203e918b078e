#include "CKernels.h"
#include <math.h>

void lookm_softmax_row_accumulate(const float *logits, size_t n, double *colsum, float *probs) {
    if (n == 0) return;
    /* Subtracting the row maximum keeps every exp in (0, 1]: no overflow, and the largest term is
       exactly 1, so the Float32 sum loses at most the tail's low bits. */
    float m = logits[0];
    for (size_t t = 1; t < n; t++) if (logits[t] > m) m = logits[t];
    float sum = 0.0f;
    for (size_t t = 0; t < n; t++) { float e = expf(logits[t] - m); probs[t] = e; sum += e; }
    float inv = 1.0f / sum;
    /* Column sums run over up to seq_len rows of values down to 1e-30: Double keeps them exact
       enough that the final rounding to Float32 is the only error. */
    for (size_t t = 0; t < n; t++) { float p = probs[t] * inv; probs[t] = p; colsum[t] += (double)p; }
}
