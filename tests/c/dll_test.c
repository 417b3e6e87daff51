/*
 * dll_test.c: oxalloc.dll (Windows, MinGW) through its import library, run under wine
 * by crates/oxalloc-capi/tests/c_and_programs.rs (windows_dll_api_test).
 *
 * On Windows the library exports only the ox_ names (include/oxalloc.h): the CRT's
 * malloc stays the CRT's. Checks:
 *   - the program loaded oxalloc.dll, which exports ox_malloc and none of the standard
 *     names (malloc, free, ...), and the CRT's malloc/free/strdup still work next to it;
 *   - ox_malloc: sizes 0..4 MiB, 16-byte aligned, usable size >= n and writable;
 *   - overflows (malloc, calloc, reallocarray, realloc): NULL with the CRT's errno ==
 *     ENOMEM and the old block intact; bad alignments: EINVAL;
 *   - every power-of-two alignment 1 .. 2 MiB through ox_aligned_alloc,
 *     ox_posix_memalign and ox_memalign; ox_valloc/ox_pvalloc page aligned;
 *   - ox_calloc zeroed after dirty frees; ox_realloc up to 8 MiB and down keeps the
 *     contents; realloc(NULL, n) and realloc(p, 0);
 *   - ox_free_sized, ox_free_aligned_sized, ox_malloc_trim, ox_mallinfo2, ox_mallinfo,
 *     ox_mallopt, ox_malloc_info (XML on a CRT FILE *), ox_malloc_stats, ox_stats_print;
 *     ox_stats_json(1) writes one JSON object on stdout (the harness checks it);
 *   - the typed allocators: ox_pool_*, ox_arena_*, ox_static_heap_*;
 *   - threads (CreateThread): blocks made on one thread and freed on another, threads
 *     exiting with blocks in their heaps, in rounds;
 *   - content integrity: 100000 random malloc/calloc/realloc/free operations.
 * Prints "dll_test: N checks passed" and exits 0 only if every check passed.
 */
#define __USE_MINGW_ANSI_STDIO 1
#include <windows.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "oxalloc.h"
#include "oxalloc_typed.h"

#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)

static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_zero = 0;
static size_t page;

static void test_exports(void)
{
    HMODULE dll = GetModuleHandleA("oxalloc.dll");
    CHECK(dll != NULL, "oxalloc.dll is not loaded");
    if (!dll)
        return;
    CHECK(GetProcAddress(dll, "ox_malloc") != NULL, "oxalloc.dll does not export ox_malloc");
    /* The CRT's names are not exported: a program linking the import library before
     * the CRT would otherwise get oxalloc's malloc while the CRT (strdup, fopen, ...)
     * kept its own, and free one's blocks with the other. */
    const char *std_names[] = {"malloc", "free", "calloc", "realloc", "aligned_alloc",
                               "posix_memalign", "malloc_usable_size", "free_sized"};
    for (size_t i = 0; i < sizeof std_names / sizeof std_names[0]; i++)
        CHECK(GetProcAddress(dll, std_names[i]) == NULL, "oxalloc.dll exports %s", std_names[i]);
    /* The CRT's allocator still works, next to oxalloc. */
    char *s = _strdup("the CRT's strdup");
    CHECK(s && strcmp(s, "the CRT's strdup") == 0, "CRT strdup");
    void *o = ox_malloc(64);
    CHECK(o != NULL, "ox_malloc(64)");
    free(s);
    ox_free(o);
}

static void test_malloc(void)
{
    for (size_t n = 0; n <= ((size_t)4 << 20); n = n < 1024 ? n + 1 : n * 2 - 1) {
        void *p = ox_malloc(n);
        CHECK(p != NULL, "ox_malloc(%zu) returned NULL", n);
        if (!p)
            continue;
        CHECK(ALIGNED(p, 16), "ox_malloc(%zu) = %p is not 16-byte aligned", n, p);
        size_t u = ox_malloc_usable_size(p);
        CHECK(u >= n, "ox_malloc_usable_size(ox_malloc(%zu)) = %zu", n, u);
        fill(p, u, (uint32_t)n);
        CHECK(verify(p, u, (uint32_t)n) == SIZE_MAX, "ox_malloc(%zu): pattern lost", n);
        ox_free(p);
    }
    void *z1 = ox_malloc(v_zero), *z2 = ox_malloc(v_zero);
    CHECK(z1 && z2 && z1 != z2, "ox_malloc(0) twice: %p %p", z1, z2);
    ox_free(z1);
    ox_free(z2);
    CHECK(ox_malloc_usable_size(NULL) == 0, "ox_malloc_usable_size(NULL) != 0");
    ox_free(NULL);
}

static void test_bad_input(void)
{
    errno = 0;
    CHECK(ox_malloc(v_size_max) == NULL && errno == ENOMEM, "ox_malloc(SIZE_MAX): errno %d", errno);
    errno = 0;
    CHECK(ox_calloc(v_size_max / 2, 3) == NULL && errno == ENOMEM, "ox_calloc overflow: errno %d", errno);
    void *p = ox_malloc(100);
    CHECK(p != NULL, "ox_malloc(100)");
    fill(p, 100, 7);
    errno = 0;
    void *q = ox_reallocarray(p, v_size_max / 2, 3);
    CHECK(q == NULL && errno == ENOMEM, "ox_reallocarray overflow: %p errno %d", q, errno);
    CHECK(verify(p, 100, 7) == SIZE_MAX, "ox_reallocarray overflow changed the block");
    errno = 0;
    q = ox_realloc(p, v_size_max - 4096);
    CHECK(q == NULL && errno == ENOMEM, "ox_realloc(p, SIZE_MAX-4096): %p errno %d", q, errno);
    CHECK(verify(p, 100, 7) == SIZE_MAX, "failed ox_realloc changed the block");
    ox_free(p);
    errno = 0;
    CHECK(ox_aligned_alloc(3, 16) == NULL && errno == EINVAL, "ox_aligned_alloc(3, 16): errno %d", errno);
    size_t bad[] = {0, 3, 4, 24};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *out = (void *)0x1234;
        int rc = ox_posix_memalign(&out, bad[i], 64);
        CHECK(rc == EINVAL && out == (void *)0x1234, "ox_posix_memalign(align %zu) = %d", bad[i], rc);
    }
}

static void test_alignment(void)
{
    for (size_t align = 1; align <= ((size_t)2 << 20); align *= 2) {
        size_t sz[] = {1, align, 3 * align + 5};
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
            size_t size = sz[i];
            void *b[3] = {ox_aligned_alloc(align, size), ox_memalign(align, size), NULL};
            if (align >= sizeof(void *))
                CHECK(ox_posix_memalign(&b[2], align, size) == 0, "ox_posix_memalign(%zu, %zu)", align, size);
            for (int k = 0; k < 3; k++) {
                if (k == 2 && align < sizeof(void *))
                    continue;
                CHECK(b[k] != NULL && ALIGNED(b[k], align) && ALIGNED(b[k], 16),
                      "aligned #%d (align %zu, size %zu) = %p", k, align, size, b[k]);
                if (!b[k])
                    continue;
                CHECK(ox_malloc_usable_size(b[k]) >= size, "aligned #%d usable", k);
                fill(b[k], size, (uint32_t)(align + size));
                CHECK(verify(b[k], size, (uint32_t)(align + size)) == SIZE_MAX, "aligned #%d pattern", k);
            }
            ox_free_aligned_sized(b[0], align, size);
            ox_free(b[1]);
            ox_free(b[2]);
        }
    }
    size_t vs[] = {0, 1, 4095, 4096, 4097, 100000};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        void *p = ox_valloc(vs[i]);
        CHECK(p != NULL && ALIGNED(p, page), "ox_valloc(%zu) = %p", vs[i], p);
        ox_free(p);
        size_t rounded = vs[i] == 0 ? page : (vs[i] + page - 1) / page * page;
        p = ox_pvalloc(vs[i]);
        CHECK(p != NULL && ALIGNED(p, page) && ox_malloc_usable_size(p) >= rounded, "ox_pvalloc(%zu) = %p", vs[i], p);
        if (p)
            memset(p, 0x5A, rounded);
        ox_free(p);
    }
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_calloc_realloc(void)
{
    size_t cs[] = {1, 16, 100, 4096, 65537, (size_t)1 << 20, (size_t)3 << 20};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        unsigned char *d = ox_malloc(cs[i]);
        CHECK(d != NULL, "ox_malloc(%zu)", cs[i]);
        memset(d, 0xAB, ox_malloc_usable_size(d));
        ox_free(d);
        unsigned char *p = ox_calloc(cs[i], 1);
        CHECK(p != NULL && all_zero(p, cs[i]), "ox_calloc(%zu, 1) not zero", cs[i]);
        ox_free(p);
    }
    void *p = ox_realloc(NULL, 300);
    CHECK(p != NULL && ox_malloc_usable_size(p) >= 300, "ox_realloc(NULL, 300)");
    CHECK(ox_realloc(p, 0) == NULL, "ox_realloc(p, 0) did not return NULL");
    size_t n = 1;
    p = ox_malloc(n);
    fill(p, n, 99);
    for (size_t next = 2; next <= ((size_t)8 << 20); next = next * 3 / 2 + 1) {
        void *q = ox_realloc(p, next);
        CHECK(q != NULL && verify(q, n, 99) == SIZE_MAX, "ox_realloc(%zu -> %zu)", n, next);
        if (!q)
            return;
        fill(q, next, 99);
        p = q;
        n = next;
    }
    while (n > 1) {
        size_t next = n / 3 ? n / 3 : 1;
        void *q = ox_realloc(p, next);
        CHECK(q != NULL && verify(q, next, 99) == SIZE_MAX, "ox_realloc shrink %zu -> %zu", n, next);
        if (!q)
            return;
        p = q;
        n = next;
    }
    ox_free_sized(p, n);
}

static void test_info(void)
{
    void *live = ox_malloc(200000);
    memset(live, 1, 200000);
    int t = ox_malloc_trim(0);
    CHECK(t == 0 || t == 1, "ox_malloc_trim(0) = %d", t);
    struct ox_mallinfo2 m = ox_mallinfo2();
    CHECK(m.uordblks >= 200000 && m.arena >= m.uordblks && m.usmblks >= m.uordblks,
          "ox_mallinfo2: arena %zu uordblks %zu peak %zu", m.arena, m.uordblks, m.usmblks);
    struct ox_mallinfo mi = ox_mallinfo();
    CHECK(mi.uordblks > 0 && mi.arena >= mi.uordblks, "ox_mallinfo: arena %d uordblks %d", mi.arena, mi.uordblks);
    CHECK(ox_mallopt(1, 0) == 1 && ox_mallopt(-100, 1) == 0, "ox_mallopt");
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (f) {
        CHECK(ox_malloc_info(0, f) == 0, "ox_malloc_info failed");
        long len = ftell(f);
        char *xml = ox_calloc(1, len > 0 ? (size_t)len + 1 : 1);
        rewind(f);
        CHECK(len > 0 && fread(xml, 1, (size_t)len, f) == (size_t)len, "read back ox_malloc_info: %ld bytes", len);
        char *cur = strstr(xml, "<system type=\"current\" size=\"");
        CHECK(strncmp(xml, "<malloc version=\"1\">", 20) == 0 && strstr(xml, "</malloc>\n"), "ox_malloc_info: %.200s", xml);
        CHECK(cur && strtoull(cur + 29, NULL, 10) > 0, "ox_malloc_info: no current size > 0");
        ox_free(xml);
        errno = 0;
        CHECK(ox_malloc_info(1, f) == -1 && errno == EINVAL, "ox_malloc_info(1, f): not EINVAL");
        fclose(f);
    }
    ox_malloc_stats();
    ox_stats_print();
    ox_free(live);
}

static void test_typed(void)
{
    OxPool *pool = ox_pool_create(48, 16);
    CHECK(pool != NULL, "ox_pool_create");
    if (pool) {
        void *b[100];
        for (int i = 0; i < 100; i++) {
            b[i] = ox_pool_alloc(pool);
            CHECK(b[i] != NULL && ALIGNED(b[i], 16), "ox_pool_alloc #%d", i);
            memset(b[i], i, 48);
        }
        CHECK(ox_pool_in_use(pool) == 100, "ox_pool_in_use = %zu", ox_pool_in_use(pool));
        for (int i = 0; i < 100; i += 2)
            ox_pool_free(pool, b[i]);
        CHECK(ox_pool_in_use(pool) == 50, "ox_pool_in_use after frees = %zu", ox_pool_in_use(pool));
        ox_pool_destroy(pool);
    }
    OxArena *arena = ox_arena_create(4096);
    CHECK(arena != NULL, "ox_arena_create");
    if (arena) {
        for (int i = 0; i < 1000; i++) {
            void *p = ox_arena_alloc(arena, 100, 32);
            CHECK(p != NULL && ALIGNED(p, 32), "ox_arena_alloc #%d", i);
            memset(p, 1, 100);
        }
        CHECK(ox_arena_allocated_bytes(arena) >= 100000, "ox_arena_allocated_bytes");
        ox_arena_reset(arena);
        ox_arena_destroy(arena);
    }
    static _Alignas(64) unsigned char buf[1 << 16];
    OxStaticHeap *h = ox_static_heap_init(buf, sizeof buf);
    CHECK(h != NULL, "ox_static_heap_init");
    if (h) {
        void *p = ox_static_heap_alloc(h, 1000, 64);
        CHECK(p != NULL && ALIGNED(p, 64), "ox_static_heap_alloc");
        ox_heap_stats st;
        CHECK(ox_static_heap_stats(h, &st) == 0 && st.used_blocks == 1, "ox_static_heap_stats");
        CHECK(ox_static_heap_free(h, p) == 0, "ox_static_heap_free");
    }
}

/* Threads: each makes blocks, frees some itself, hands the rest to the next thread
 * of the round through a locked list, and exits with blocks still in its heap. */
#define THREADS 6
#define PER_THREAD 3000
struct item {
    struct item *next;
    uint32_t seed;
    size_t n;
};
static CRITICAL_SECTION qlock;
static struct item *queue;
static volatile LONG thread_failures;

static DWORD WINAPI worker(LPVOID arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = sizeof(struct item) + (size_t)(rng_next(&rng) % (i % 100 == 0 ? 300000 : 2000));
        struct item *it = ox_malloc(n);
        if (!it) {
            InterlockedIncrement(&thread_failures);
            continue;
        }
        it->n = n - sizeof *it;
        it->seed = (uint32_t)rng_next(&rng);
        fill(it + 1, it->n, it->seed);
        if (rng_next(&rng) % 3 == 0) {
            ox_free(it);
            continue;
        }
        EnterCriticalSection(&qlock);
        struct item *other = queue;
        if (other && rng_next(&rng) % 2)
            queue = other->next;
        else
            other = NULL;
        it->next = queue;
        queue = it;
        LeaveCriticalSection(&qlock);
        if (other) {
            if (verify(other + 1, other->n, other->seed) != SIZE_MAX)
                InterlockedIncrement(&thread_failures);
            ox_free(other); /* most likely another thread's block */
        }
    }
    return 0;
}

static void test_threads(void)
{
    InitializeCriticalSection(&qlock);
    for (int round = 0; round < 4; round++) {
        HANDLE th[THREADS];
        for (int t = 0; t < THREADS; t++) {
            th[t] = CreateThread(NULL, 0, worker, (LPVOID)(uintptr_t)(round * THREADS + t + 1), 0, NULL);
            CHECK(th[t] != NULL, "CreateThread");
        }
        for (int t = 0; t < THREADS; t++) {
            if (th[t]) {
                WaitForSingleObject(th[t], INFINITE);
                CloseHandle(th[t]);
            }
        }
        /* Every thread of the round has exited: free what they left, on this thread. */
        size_t left = 0;
        while (queue) {
            struct item *it = queue;
            queue = it->next;
            CHECK(verify(it + 1, it->n, it->seed) == SIZE_MAX, "round %d: a block corrupted", round);
            ox_free(it);
            left++;
        }
        CHECK(left > 0, "round %d: no block crossed threads", round);
    }
    CHECK(thread_failures == 0, "%ld failures in the threads", (long)thread_failures);
    DeleteCriticalSection(&qlock);
}

#define SLOTS 2048
static struct {
    unsigned char *p;
    size_t n;
    uint32_t seed;
} slot[SLOTS];

static void test_integrity(void)
{
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    for (long op = 0; op < 100000; op++) {
        size_t i = (size_t)(rng_next(&rng) % SLOTS);
        uint64_t r = rng_next(&rng);
        size_t n = r % 1000 == 0 ? (size_t)(r >> 20) % ((size_t)3 << 20)
                                 : r % 10 == 0 ? (size_t)(r >> 20) % 70000 : (size_t)(r >> 20) % 600;
        if (slot[i].p) {
            CHECK(verify(slot[i].p, slot[i].n, slot[i].seed) == SIZE_MAX, "op %ld: block corrupted", op);
            if (r % 4 == 0 && n > 0) {
                unsigned char *q = ox_realloc(slot[i].p, n);
                CHECK(q != NULL, "ox_realloc(%zu)", n);
                if (!q)
                    continue;
                size_t keep = n < slot[i].n ? n : slot[i].n;
                CHECK(verify(q, keep, slot[i].seed) == SIZE_MAX, "ox_realloc lost contents");
                slot[i].p = q;
                slot[i].n = n;
                fill(q, n, slot[i].seed);
            } else {
                ox_free(slot[i].p);
                slot[i].p = NULL;
            }
        } else {
            unsigned char *p = r % 8 == 0 ? ox_calloc(1, n) : ox_malloc(n);
            CHECK(p != NULL && ALIGNED(p, 16) && ox_malloc_usable_size(p) >= n, "ox_malloc(%zu)", n);
            if (!p)
                continue;
            slot[i].p = p;
            slot[i].n = n;
            slot[i].seed = (uint32_t)rng_next(&rng);
            fill(p, n, slot[i].seed);
        }
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (slot[i].p) {
            CHECK(verify(slot[i].p, slot[i].n, slot[i].seed) == SIZE_MAX, "final check of slot %zu", i);
            ox_free(slot[i].p);
        }
    }
}

int main(void)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    page = si.dwPageSize;
    test_exports();
    test_malloc();
    test_bad_input();
    test_alignment();
    test_calloc_realloc();
    test_info();
    test_typed();
    test_threads();
    test_integrity();
    /* The statistics as JSON on stdout (fd 1 is the standard output handle), on a line
     * of their own, after everything printed so far. */
    printf("stats: ");
    fflush(stdout);
    ox_stats_json(1);
    printf("\n");
    return finish("dll_test");
}
