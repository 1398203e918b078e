#include "CTopK.h"
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

// Mirrors aten/src/ATen/native/cpu/SortingKernel.cpp (topk_impl_loop), largest = sorted = true,
// with accscalar_t = double for float input.
extern "C" void lookm_torch_topk(const float *values, int64_t n, int64_t k, int64_t *indices_out) {
    using elem_t = std::pair<double, int64_t>;
    std::vector<elem_t> queue;
    queue.reserve(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; j++) queue.emplace_back(static_cast<double>(values[j]), j);
    auto comparator = [](const elem_t &x, const elem_t &y) -> bool {
        return ((std::isnan(x.first) && !std::isnan(y.first)) || (x.first > y.first));
    };
    if (k * 64 <= n) {
        std::partial_sort(queue.begin(), queue.begin() + k, queue.end(), comparator);
    } else {
        std::nth_element(queue.begin(), queue.begin() + k - 1, queue.end(), comparator);
        std::sort(queue.begin(), queue.begin() + k - 1, comparator);
    }
    for (int64_t j = 0; j < k; j++) indices_out[j] = queue[static_cast<size_t>(j)].second;
}

extern "C" void lookm_topk_stable(const double *values, int64_t n, int64_t k, int64_t *indices_out) {
    if (k <= 0) return;
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; j++) order[static_cast<size_t>(j)] = j;
    auto before = [values](int64_t a, int64_t b) -> bool {
        return values[a] > values[b] || (values[a] == values[b] && a < b);
    };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
    for (int64_t j = 0; j < k; j++) indices_out[j] = order[static_cast<size_t>(j)];
}
