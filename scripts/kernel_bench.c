// The pivot kernels of Sources/CKernels (similarity.c, screen.c) against OpenBLAS's sgemm at the same
// shape, one thread each, on one head's keys from a dump (scripts/bench.py passes them as raw float32).
//     kernel_bench KEYS L D KEPT  ->  one JSON line
// Kept slots are the first and last KEPT/2 positions, the rest evicted, as compress's pivots see them.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "CKernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    size_t L = strtoul(argv[2], 0, 10), D = strtoul(argv[3], 0, 10), K = strtoul(argv[4], 0, 10), E = L - K;
    float *keys = malloc(L * D * 4);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(keys, 4, L * D, f) != L * D) return 3;
    int64_t *kept = malloc(K * 8), *evicted = malloc(E * 8);
    for (size_t j = 0; j < K; j++) kept[j] = j < K / 2 ? (int64_t)j : (int64_t)(L - K + j);
    for (size_t e = 0; e < E; e++) evicted[e] = (int64_t)(K / 2 + e);
    float *panel = malloc(lookm_pivot_panel_floats(K, D) * 4), *rows = malloc(E * D * 4), *value = malloc(E * 4);
    float *keptRows = malloc(K * D * 4), *sims = malloc(E * K * 4), *scratch = malloc(lookm_screen_scratch_floats(K, D) * 4);
    uint32_t *words = malloc(lookm_screen_panel_words(K, D) * 4);
    int32_t *index = malloc(E * 4);
    double bounds[3], flops = 2.0 * E * K * D, rate[3] = {0, 0, 0};
    lookm_pack_pivot_panel(keys, kept, K, D, panel);
    lookm_normalise_rows(keys, evicted, E, D, rows);
    lookm_normalise_rows(keys, kept, K, D, keptRows);
    openblas_set_num_threads(1);
    for (int which = 0; which < 3; which++) {
        int runs = 0;
        unsigned long long before = lookm_screen_rechecked();
        double start = now();
        while (now() - start < 1.0) {
            if (which == 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)E, (int)K, (int)D, 1, rows, (int)D,
                                        keptRows, (int)D, 0, sims, (int)K);
            if (which == 1) lookm_pivots_at(2, panel, K, D, rows, E, index, value);
            if (which == 2) {
                lookm_pack_screen_panel(panel, K, D, words, bounds);
                if (!lookm_pivots_screened(panel, words, bounds, K, D, rows, E, index, value, scratch)) break;
            }
            runs++;
        }
        rate[which] = runs ? flops * runs / (now() - start) / 1e9 : 0;
        if (which == 2 && runs)
            printf("{\"openblas_sgemm_gflops\": %.1f, \"fused_gflops\": %.1f, \"screened_gflops\": %.1f, "
                   "\"rechecked_per_row\": %.3f}\n",
                   rate[0], rate[1], rate[2], (double)(lookm_screen_rechecked() - before) / runs / E);
    }
    if (rate[2] == 0) printf("{\"openblas_sgemm_gflops\": %.1f, \"fused_gflops\": %.1f, \"screened_gflops\": null, "
                             "\"rechecked_per_row\": null}\n", rate[0], rate[1]);
    return 0;
}
