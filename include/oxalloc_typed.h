/* oxalloc_typed.h: C ABI of the oxalloc-typed crate (feature "capi").
 *
 * Pool (fixed-size blocks), arena (bump) and static heap (TLSF on a caller's buffer).
 * Allocating calls return NULL on failure, never abort. Threads may share a handle: each
 * has its own lock (a short spin, then the waiter yields). Only ox_*_destroy, and
 * ox_arena_reset (which frees what other threads may still use), must not overlap other
 * calls on the same handle. Pool and arena control blocks live in pages mapped from the
 * OS, not in malloc memory. Alignments are powers of two; 0 means 8.
 */
#ifndef OXALLOC_TYPED_H
#define OXALLOC_TYPED_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OxPool OxPool;             /* opaque */
typedef struct OxArena OxArena;           /* opaque */
typedef struct OxStaticHeap OxStaticHeap; /* opaque; lives at the start of its buffer */

typedef struct ox_heap_stats {
    size_t heap_bytes;   /* bytes managed */
    size_t free_bytes;   /* bytes in free blocks, headers included */
    size_t free_blocks;  /* number of free blocks */
    size_t used_blocks;  /* live allocations */
    size_t largest_free; /* largest request (alignment 8) that can succeed now */
} ox_heap_stats;

/* Pool: blocks of block_size bytes aligned to align; grows by chunks; O(1). */
OxPool *ox_pool_create(size_t block_size, size_t align);
void *ox_pool_alloc(OxPool *pool);
void ox_pool_free(OxPool *pool, void *ptr);        /* ptr NULL: no-op */
size_t ox_pool_in_use(const OxPool *pool);
void ox_pool_destroy(OxPool *pool);                /* frees every block */

/* Arena: bump allocation; reset frees all (keeps one chunk). first_chunk 0: 4 KiB. */
OxArena *ox_arena_create(size_t first_chunk);
void *ox_arena_alloc(OxArena *arena, size_t size, size_t align);
void ox_arena_reset(OxArena *arena);
size_t ox_arena_allocated_bytes(const OxArena *arena);
void ox_arena_destroy(OxArena *arena);

/* Static heap on [buf, buf+len): any size and alignment, free in any order, O(1).
 * NULL when buf is NULL or too small. No destroy: stop using it and reuse buf. */
OxStaticHeap *ox_static_heap_init(void *buf, size_t len);
void *ox_static_heap_alloc(OxStaticHeap *heap, size_t size, size_t align);
/* 0, or -1 when a double free or foreign pointer was caught (nothing changed). */
int ox_static_heap_free(OxStaticHeap *heap, void *ptr);
int ox_static_heap_stats(const OxStaticHeap *heap, ox_heap_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* OXALLOC_TYPED_H */
