#include "CKernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

int lookm_fix_mmap_threshold(size_t bytes) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, (int)bytes);
#else
    (void)bytes;
    return 0;
#endif
}

int lookm_fix_trim_threshold(size_t bytes) {
#if defined(__GLIBC__)
    return mallopt(M_TRIM_THRESHOLD, (int)bytes);
#else
    (void)bytes;
    return 0;
#endif
}
