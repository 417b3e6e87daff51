/* A preloaded wrapper library that depends on liboxalloc.so: it takes over the malloc
 * family and forwards to oxalloc's ox_ functions, counting calls (what a profiling or
 * accounting shim does). Loaded this way, liboxalloc.so comes after the program's libc
 * in the load order, so it must declare its own dependency on libc or glibc relocates it
 * first and refuses its IFUNC references (memset). */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

void *ox_malloc(size_t);
void ox_free(void *);
void *ox_calloc(size_t, size_t);
void *ox_realloc(void *, size_t);
int ox_posix_memalign(void **, size_t, size_t);
void *ox_aligned_alloc(size_t, size_t);
void *ox_memalign(size_t, size_t);
size_t ox_malloc_usable_size(void *);

static unsigned long calls;

void *malloc(size_t n) { calls++; return ox_malloc(n); }
void free(void *p) { ox_free(p); }
void *calloc(size_t n, size_t s) { calls++; return ox_calloc(n, s); }
void *realloc(void *p, size_t n) { calls++; return ox_realloc(p, n); }
int posix_memalign(void **out, size_t a, size_t n) { calls++; return ox_posix_memalign(out, a, n); }
void *aligned_alloc(size_t a, size_t n) { calls++; return ox_aligned_alloc(a, n); }
void *memalign(size_t a, size_t n) { calls++; return ox_memalign(a, n); }
size_t malloc_usable_size(void *p) { return ox_malloc_usable_size(p); }

__attribute__((destructor)) static void report(void) {
    char buf[64];
    int len = snprintf(buf, sizeof buf, "preload_wrapper: %lu allocations\n", calls);
    if (len > 0)
        (void)!write(2, buf, (size_t)len);
}
