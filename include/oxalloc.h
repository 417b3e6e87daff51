/*
 * oxalloc.h: the C interface of liboxalloc (liboxalloc.so / liboxalloc.a).
 *
 * The library exports the whole malloc family under the standard names (so that
 * linking it, or loading it with LD_PRELOAD, replaces the C library's allocator)
 * and under the `ox_` names declared here, for programs that want to call oxalloc
 * explicitly, next to another malloc. On Windows, oxalloc.dll exports only the ox_
 * names: the CRT's malloc stays the CRT's (a DLL cannot replace it, and a second
 * malloc/free pair would split a program between two allocators). There ox_stats_json's
 * fd 1 and 2 are the standard output and error handles (other values are taken as a
 * HANDLE, not a CRT descriptor), and ox_malloc_info wants a FILE * of msvcrt.dll, the
 * CRT that MinGW programs and the DLL use.
 * Both names of a function behave the same:
 *
 *   - malloc(SIZE_MAX), calloc and reallocarray overflow: NULL with errno = ENOMEM;
 *   - aligned_alloc/memalign with an impossible alignment: NULL with errno = EINVAL;
 *     posix_memalign returns EINVAL unless the alignment is a power of two and a
 *     multiple of sizeof(void *), and leaves errno alone;
 *   - free(NULL) does nothing; realloc(NULL, n) is malloc(n);
 *     realloc(p, 0) frees p and returns NULL (as glibc does);
 *   - every block is at least 16-byte aligned.
 *
 * Link: cc prog.c -I include -L target/release -loxalloc -Wl,-rpath,<dir>
 *   or: cc prog.c -I include target/release/liboxalloc.a -lpthread -ldl -lm -lrt -lgcc_s
 *   or, installed (scripts/install.sh): cc prog.c $(pkg-config --cflags --libs oxalloc)
 *       (oxalloc-static for liboxalloc.a)
 */
#ifndef OXALLOC_H
#define OXALLOC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Statistics as glibc's `struct mallinfo2` reports them: the same ten size_t fields
 * in the same order, so the layout matches glibc's type. */
struct ox_mallinfo2 {
    size_t arena;    /* bytes mapped for the allocator's segments */
    size_t ordblks;  /* unused (0) */
    size_t smblks;   /* unused (0) */
    size_t hblks;    /* number of huge (directly mapped) blocks */
    size_t hblkhd;   /* bytes in huge blocks */
    size_t usmblks;  /* peak bytes in use */
    size_t fsmblks;  /* unused (0) */
    size_t uordblks; /* bytes in use */
    size_t fordblks; /* bytes mapped but not in use */
    size_t keepcost; /* free bytes cached, not yet given back to the OS */
};

void *ox_malloc(size_t size);
void ox_free(void *ptr);
void *ox_calloc(size_t nmemb, size_t size);
void *ox_realloc(void *ptr, size_t size);
void *ox_reallocarray(void *ptr, size_t nmemb, size_t size);
void *ox_aligned_alloc(size_t alignment, size_t size);
int ox_posix_memalign(void **memptr, size_t alignment, size_t size);
void *ox_memalign(size_t alignment, size_t size);
void *ox_valloc(size_t size);
void *ox_pvalloc(size_t size);
size_t ox_malloc_usable_size(void *ptr);
int ox_malloc_trim(size_t pad);
struct ox_mallinfo2 ox_mallinfo2(void);
/* glibc's extras. ox_mallinfo returns glibc's `struct mallinfo` (ten ints, each capped
 * at INT_MAX); ox_mallopt accepts glibc's parameters and ignores them (returns 1; 0 for an
 * unknown one): oxalloc is tuned by its OXALLOC_* variables; ox_malloc_stats prints the
 * statistics summary on stderr; ox_malloc_info writes glibc-style XML to a FILE *
 * (`options` must be 0). */
struct ox_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct ox_mallinfo ox_mallinfo(void);
int ox_mallopt(int param, int value);
void ox_malloc_stats(void);
int ox_malloc_info(int options, FILE *stream);
/* C23: `size` (and `alignment`) must be those the block was allocated with. */
void ox_free_sized(void *ptr, size_t size);
void ox_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Prints a statistics summary on stderr. */
void ox_stats_print(void);
/* Writes the statistics as one JSON object to the file descriptor `fd`. */
void ox_stats_json(int fd);

#ifdef __cplusplus
}
#endif

/* Typed pools, slabs and arenas (oxalloc-typed), when that header is installed. */
#if defined(__has_include)
#if __has_include("oxalloc_typed.h")
#include "oxalloc_typed.h"
#endif
#endif

#endif /* OXALLOC_H */
