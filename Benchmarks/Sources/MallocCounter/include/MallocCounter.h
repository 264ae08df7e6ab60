#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign since the
/// process started (relaxed atomic counter; exact once the caller is single-threaded).
uint64_t malloc_counter_allocations(void);

/// Calls to free with a non-null pointer since the process started.
uint64_t malloc_counter_frees(void);

#ifdef __cplusplus
}
#endif

#endif
