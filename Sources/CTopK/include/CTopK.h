// PyTorch's CPU top-k, as libstdc++ runs it (docs/method.md section 6, rule 7). Which of several tied
// values lands in the top k depends on std::partial_sort / std::nth_element themselves, so this
// calls them rather than rewriting them.
#ifndef LOOKM_CTOPK_H
#define LOOKM_CTOPK_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/// Indices of the k largest of `values[0..<n]` in the order torch.topk(largest=True, sorted=True)
/// returns them on CPU for float32 input: pairs (double(value), index) in index order; if
/// k * 64 <= n, std::partial_sort of the first k, else std::nth_element at k - 1 then std::sort of
/// the first k - 1, both with `a.value > b.value` (NaN counts as largest). Requires 1 <= k <= n.
void lookm_torch_topk(const float *values, int64_t n, int64_t k, int64_t *indices_out);

/// Indices of the k largest of `values[0..<n]`, ties broken by the lower index (a total order, so
/// the result does not depend on the algorithm), in that rank order. Partial sort: O(n log k).
/// Requires 0 <= k <= n.
void lookm_topk_stable(const double *values, int64_t n, int64_t k, int64_t *indices_out);

#ifdef __cplusplus
}
#endif
#endif
