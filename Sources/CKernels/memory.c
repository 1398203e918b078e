#include "CKernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

int lookm_fix_malloc_thresholds(size_t mmap_bytes, size_t trim_bytes) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, (int)mmap_bytes) && mallopt(M_TRIM_THRESHOLD, (int)trim_bytes);
#else
    (void)mmap_bytes;
    (void)trim_bytes;
    return 0;
#endif
}
