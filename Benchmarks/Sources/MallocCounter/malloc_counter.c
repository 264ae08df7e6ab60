// Counts heap allocations by interposing the C allocator.
//
// The executable defines malloc, calloc, realloc, free, posix_memalign, aligned_alloc and
// memalign itself. Because shared libraries in the link (libc, libswiftCore, ...) reference
// these symbols, the linker exports the executable's definitions in its dynamic symbol table,
// and the dynamic loader binds every caller in the process (the Swift runtime's swift_slowAlloc
// included) to them: the executable comes first in the global lookup scope. Each definition
// bumps a counter and forwards to glibc's real allocator through its internal entry points
// (__libc_malloc and friends), which avoids the dlsym(RTLD_NEXT) bootstrap problem (dlsym
// itself allocates).
//
// glibc only. <stdlib.h> is deliberately not included: its declarations carry attributes
// (__THROW, __wur, __attribute_malloc__) that we neither need nor want to repeat.

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "MallocCounter.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);

static uint64_t allocations;
static uint64_t frees;

static inline void count_allocation(void) { __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED); }

uint64_t malloc_counter_allocations(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }

uint64_t malloc_counter_frees(void) { return __atomic_load_n(&frees, __ATOMIC_RELAXED); }

void *malloc(size_t size) {
    count_allocation();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_allocation();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    count_allocation();
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer != NULL) __atomic_fetch_add(&frees, 1, __ATOMIC_RELAXED);
    __libc_free(pointer);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    // POSIX: the alignment must be a power of two multiple of sizeof(void *).
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0) return EINVAL;
    count_allocation();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *out = pointer;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}
