/*
 * typed_threads.c: several threads share one pool, one arena and one static heap through
 * the C handles of oxalloc_typed.h, which lock per handle.
 *
 * Each thread keeps a window of live blocks, each filled with a pattern seeded by the
 * thread and slot; every allocation checks that no other live block overlaps it (its
 * pattern must still be intact when freed) and every free checks the pattern. Without
 * the locks two threads get the same block or corrupt the free lists: patterns break,
 * counts drift, or the program crashes. At the end every block is back: the pool counts
 * 0 in use and the static heap 0 used blocks.
 */
#include "common.h"
#include "oxalloc_typed.h"

#include <pthread.h>

enum { THREADS = 4, WINDOW = 64, ROUNDS = 40000, POOL_BLOCK = 48 };

static OxPool *pool;
static OxArena *arena;
static OxStaticHeap *heap;
static _Alignas(16) unsigned char heap_buf[1 << 20];

struct slot {
    void *p;
    size_t n;
    uint32_t seed;
};

struct result {
    unsigned long broken, null_pool, arena_overlap;
};

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    struct result *r = calloc(1, sizeof *r);
    struct slot pools[WINDOW] = {{0}}, heaps[WINDOW] = {{0}};
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (id + 1);
    for (uint32_t i = 0; i < ROUNDS; i++) {
        unsigned k = (unsigned)(rng_next(&rng) % WINDOW);
        uint32_t seed = (uint32_t)(id << 24 | i);
        /* pool: replace one block */
        if (pools[k].p) {
            if (verify(pools[k].p, POOL_BLOCK, pools[k].seed) != SIZE_MAX)
                r->broken++;
            ox_pool_free(pool, pools[k].p);
        }
        pools[k].p = ox_pool_alloc(pool);
        if (!pools[k].p) {
            r->null_pool++;
        } else {
            pools[k].seed = seed;
            fill(pools[k].p, POOL_BLOCK, seed);
        }
        /* static heap: replace one block of 16..1040 bytes */
        if (heaps[k].p) {
            if (verify(heaps[k].p, heaps[k].n, heaps[k].seed) != SIZE_MAX)
                r->broken++;
            if (ox_static_heap_free(heap, heaps[k].p) != 0)
                r->broken++;
        }
        heaps[k].n = 16 + (size_t)(rng_next(&rng) % 1025);
        heaps[k].p = ox_static_heap_alloc(heap, heaps[k].n, 16);
        if (heaps[k].p) {
            heaps[k].seed = seed;
            fill(heaps[k].p, heaps[k].n, seed);
        }
        /* arena: a small block that must not overlap the last one this thread got */
        if (i % 16 == 0) {
            unsigned char *a = ox_arena_alloc(arena, 24, 8);
            if (a) {
                fill(a, 24, seed);
                /* another thread handed the same bytes would overwrite them */
                for (int spin = 0; spin < 50; spin++)
                    __asm__ volatile("" ::: "memory");
                if (verify(a, 24, seed) != SIZE_MAX)
                    r->arena_overlap++;
            }
        }
    }
    for (unsigned k = 0; k < WINDOW; k++) {
        if (pools[k].p) {
            if (verify(pools[k].p, POOL_BLOCK, pools[k].seed) != SIZE_MAX)
                r->broken++;
            ox_pool_free(pool, pools[k].p);
        }
        if (heaps[k].p) {
            if (verify(heaps[k].p, heaps[k].n, heaps[k].seed) != SIZE_MAX)
                r->broken++;
            if (ox_static_heap_free(heap, heaps[k].p) != 0)
                r->broken++;
        }
    }
    return r;
}

int main(void)
{
    pool = ox_pool_create(POOL_BLOCK, 16);
    arena = ox_arena_create(0);
    heap = ox_static_heap_init(heap_buf, sizeof heap_buf);
    CHECK(pool && arena && heap, "handles created");
    if (!pool || !arena || !heap)
        return finish("typed_threads");
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "thread %lu", (unsigned long)i);
    for (int i = 0; i < THREADS; i++) {
        struct result *r;
        pthread_join(t[i], (void **)&r);
        CHECK(r->broken == 0, "thread %d: %lu blocks found overwritten or refused on free", i, r->broken);
        CHECK(r->null_pool == 0, "thread %d: the pool returned NULL %lu times", i, r->null_pool);
        CHECK(r->arena_overlap == 0, "thread %d: %lu arena blocks shared with another thread", i, r->arena_overlap);
        free(r);
    }
    CHECK(ox_pool_in_use(pool) == 0, "pool in use at the end: %zu", ox_pool_in_use(pool));
    ox_heap_stats s;
    CHECK(ox_static_heap_stats(heap, &s) == 0 && s.used_blocks == 0,
          "static heap used blocks at the end: %zu", s.used_blocks);
    CHECK(ox_arena_allocated_bytes(arena) >= (size_t)THREADS * (ROUNDS / 16) * 24,
          "arena holds %zu bytes", ox_arena_allocated_bytes(arena));
    ox_pool_destroy(pool);
    ox_arena_destroy(arena);
    return finish("typed_threads");
}
