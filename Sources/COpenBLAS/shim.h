#include <cblas.h>
/* Declared by OpenBLAS's cblas.h; repeated here for the reader: LookM runs OpenBLAS single-threaded
   and parallelises over heads itself, so results never depend on the thread count. */
