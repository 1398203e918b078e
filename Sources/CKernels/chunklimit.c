#include "CKernels.h"

static _Thread_local size_t chunk_limit;

void lookm_set_chunk_limit(size_t bytes) { chunk_limit = bytes; }
size_t lookm_chunk_limit(void) { return chunk_limit; }
