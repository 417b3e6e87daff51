/*
 * api_test.c: every function liboxalloc exports, under both of its names (the
 * standard one, and the ox_ one from include/oxalloc.h), and every bad input.
 *
 * Built by crates/oxalloc-capi/tests/c_and_programs.rs against liboxalloc.a (run with
 * --expect-no-so) and against liboxalloc.so (run with --expect-so); and, by its port
 * tests, as a static musl program (musl-gcc -static) and for aarch64 against
 * liboxalloc.a (run under qemu-user).
 *
 * Checks, for each name set:
 *   - malloc: sizes 0..4 MiB, 16-byte alignment, malloc_usable_size >= n, the whole
 *     usable size writable; malloc(0) gives distinct pointers;
 *   - malloc(SIZE_MAX), calloc(SIZE_MAX/2, 3), reallocarray overflow, realloc(p, huge):
 *     NULL with errno == ENOMEM, and the old block intact;
 *   - aligned_alloc(3, 16) and memalign(SIZE_MAX, 1): NULL with EINVAL; posix_memalign
 *     with alignment 0, 3, 4, 24: EINVAL and *memptr untouched;
 *   - free(NULL); realloc(NULL, n) is malloc; realloc(p, 0) returns NULL;
 *     realloc up and down through every size range keeps the contents;
 *   - every power-of-two alignment 1 .. 2 MiB through aligned_alloc, posix_memalign and
 *     memalign: aligned, writable over the whole block, usable size >= size;
 *   - valloc/pvalloc: page aligned; pvalloc rounds the size up to whole pages;
 *   - calloc: zeroed memory up to 8 MiB, also right after the same sizes were freed
 *     dirty (filled with 0xAB);
 *   - malloc_trim(0), mallinfo2 (arena >= uordblks, peak >= in use), free_sized,
 *     free_aligned_sized, ox_stats_json (valid output with "allocs":), ox_stats_print;
 *   - glibc's extras under both names: mallinfo (ints, arena >= uordblks > 0), mallopt
 *     (glibc's parameters accepted, an unknown one refused), malloc_info (XML with a
 *     `<system type="current">` size > 0; options != 0 -> -1, EINVAL), malloc_stats
 *     (the summary, on stderr);
 *   - that the standard names are oxalloc's: ox_malloc_usable_size knows their blocks;
 *   - content integrity: 4096 slots, 150000 random malloc/realloc/free operations on
 *     blocks of random sizes filled with per-block patterns, each checked before reuse.
 * Prints "api_test: N checks passed" and exits 0 only if every check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "oxalloc.h"

#ifndef __GLIBC__
/* musl's <malloc.h> has none of glibc's extras, which liboxalloc exports all the same:
 * declared here with glibc's types and parameter values. */
struct mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct mallinfo2 mallinfo2(void);
struct mallinfo mallinfo(void);
int mallopt(int param, int value);
int malloc_info(int options, FILE *stream);
void malloc_stats(void);
int malloc_trim(size_t pad);
void *pvalloc(size_t size);
#define M_TRIM_THRESHOLD -1
#define M_MMAP_THRESHOLD -3
#define M_ARENA_MAX -8
#endif

/* C23 names that glibc 2.36 does not declare yet. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

_Static_assert(sizeof(struct ox_mallinfo2) == sizeof(struct mallinfo2),
               "struct ox_mallinfo2 must match glibc's struct mallinfo2");
_Static_assert(offsetof(struct ox_mallinfo2, keepcost) == offsetof(struct mallinfo2, keepcost),
               "struct ox_mallinfo2 must match glibc's struct mallinfo2");

/* One set of names. Calls go through these pointers, so the compiler cannot fold or
 * drop them as it may with the builtin malloc. */
struct api {
    const char *name;
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable)(void *);
    int (*trim)(size_t);
    void (*free_sized)(void *, size_t);
    void (*free_aligned_sized)(void *, size_t, size_t);
};

struct api plain_api = {
    "plain", malloc, free, calloc, realloc, reallocarray, aligned_alloc, posix_memalign,
    memalign, valloc, pvalloc, malloc_usable_size, malloc_trim, free_sized, free_aligned_sized,
};

struct api ox_api = {
    "ox_", ox_malloc, ox_free, ox_calloc, ox_realloc, ox_reallocarray, ox_aligned_alloc,
    ox_posix_memalign, ox_memalign, ox_valloc, ox_pvalloc, ox_malloc_usable_size,
    ox_malloc_trim, ox_free_sized, ox_free_aligned_sized,
};

/* Kept volatile so that the compiler neither warns about nor folds the huge sizes. */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_zero = 0;

#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)
#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* A list of interesting sizes: every size to 1 KiB, then each power of two up to
 * 4 MiB with its neighbours and a few points in between. */
static size_t sizes[4096];
static size_t nsizes;

static void make_sizes(void)
{
    for (size_t s = 0; s <= 1024; s++)
        sizes[nsizes++] = s;
    for (size_t p = 2048; p <= ((size_t)4 << 20); p *= 2) {
        size_t cand[] = {p - 1, p, p + 1, p + p / 8, p + p / 4 + 3, p + p / 2, p + p / 2 + 17};
        for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
            if (cand[i] <= ((size_t)4 << 20))
                sizes[nsizes++] = cand[i];
    }
}

static void test_malloc(const struct api *a)
{
    for (size_t i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        void *p = a->malloc(n);
        CHECK(p != NULL, "%s malloc(%zu) returned NULL", a->name, n);
        if (!p)
            continue;
        CHECK(ALIGNED(p, 16), "%s malloc(%zu) = %p is not 16-byte aligned", a->name, n, p);
        size_t u = a->usable(p);
        CHECK(u >= n, "%s malloc_usable_size(malloc(%zu)) = %zu", a->name, n, u);
        fill(p, u, (uint32_t)n);
        CHECK(verify(p, u, (uint32_t)n) == SIZE_MAX, "%s malloc(%zu): pattern lost", a->name, n);
        a->free(p);
    }
    /* malloc(0) returns distinct, freeable pointers (glibc). */
    void *z1 = a->malloc(v_zero), *z2 = a->malloc(v_zero);
    CHECK(z1 && z2 && z1 != z2, "%s malloc(0) twice: %p %p", a->name, z1, z2);
    a->free(z1);
    a->free(z2);
    CHECK(a->usable(NULL) == 0, "%s malloc_usable_size(NULL) != 0", a->name);
}

static void test_bad_input(const struct api *a)
{
    errno = 0;
    CHECK(a->malloc(v_size_max) == NULL && errno == ENOMEM, "%s malloc(SIZE_MAX): errno %d", a->name, errno);
    errno = 0;
    CHECK(a->malloc(v_size_max / 2) == NULL && errno == ENOMEM, "%s malloc(SIZE_MAX/2): errno %d", a->name, errno);
    errno = 0;
    CHECK(a->calloc(v_size_max / 2, 3) == NULL && errno == ENOMEM, "%s calloc(SIZE_MAX/2, 3): errno %d", a->name, errno);
    errno = 0;
    CHECK(a->calloc(3, v_size_max / 2) == NULL && errno == ENOMEM, "%s calloc(3, SIZE_MAX/2): errno %d", a->name, errno);
    errno = 0;
    CHECK(a->calloc(v_size_max, v_size_max) == NULL && errno == ENOMEM, "%s calloc(SIZE_MAX, SIZE_MAX): errno %d", a->name, errno);

    /* reallocarray overflow: NULL, ENOMEM, the old block intact and still usable. */
    void *p = a->malloc(100);
    CHECK(p != NULL, "%s malloc(100)", a->name);
    fill(p, 100, 7);
    errno = 0;
    void *q = a->reallocarray(p, v_size_max / 2, 3);
    CHECK(q == NULL && errno == ENOMEM, "%s reallocarray overflow: %p errno %d", a->name, q, errno);
    CHECK(verify(p, 100, 7) == SIZE_MAX, "%s reallocarray overflow changed the block", a->name);
    q = a->reallocarray(p, 50, 40);
    CHECK(q != NULL && verify(q, 100, 7) == SIZE_MAX, "%s reallocarray(p, 50, 40) lost the contents", a->name);
    p = q;
    /* realloc to an impossible size: NULL, ENOMEM, block intact. */
    errno = 0;
    q = a->realloc(p, v_size_max - 4096);
    CHECK(q == NULL && errno == ENOMEM, "%s realloc(p, SIZE_MAX-4096): %p errno %d", a->name, q, errno);
    CHECK(verify(p, 100, 7) == SIZE_MAX, "%s failed realloc changed the block", a->name);
    a->free(p);

    /* Alignments that are not powers of two. */
    errno = 0;
    CHECK(a->aligned_alloc(3, 16) == NULL && errno == EINVAL, "%s aligned_alloc(3, 16): errno %d", a->name, errno);
    errno = 0;
    CHECK(a->aligned_alloc(48, 96) == NULL && errno == EINVAL, "%s aligned_alloc(48, 96): errno %d", a->name, errno);
    errno = 0;
    CHECK(a->memalign(v_size_max, 1) == NULL && errno != 0, "%s memalign(SIZE_MAX, 1): errno %d", a->name, errno);
    size_t bad_aligns[] = {0, 3, 4, 24, sizeof(void *) / 2, 12};
    for (size_t i = 0; i < sizeof bad_aligns / sizeof bad_aligns[0]; i++) {
        void *out = (void *)0x1234;
        int rc = a->posix_memalign(&out, bad_aligns[i], 64);
        CHECK(rc == EINVAL, "%s posix_memalign(align %zu) = %d, want EINVAL", a->name, bad_aligns[i], rc);
        CHECK(out == (void *)0x1234, "%s posix_memalign(align %zu) wrote *memptr", a->name, bad_aligns[i]);
    }
    void *out = (void *)0x1234;
    int rc = a->posix_memalign(&out, 64, v_size_max);
    CHECK(rc == ENOMEM && out == (void *)0x1234, "%s posix_memalign(64, SIZE_MAX) = %d", a->name, rc);
    errno = 0;
    CHECK(a->aligned_alloc(64, v_size_max) == NULL && errno == ENOMEM, "%s aligned_alloc(64, SIZE_MAX): errno %d", a->name, errno);

    /* free(NULL) and friends are no-ops. */
    a->free(NULL);
    a->free_sized(NULL, 0);
    a->free_aligned_sized(NULL, 64, 0);
    CHECK(1, "free(NULL)");
}

static void test_realloc(const struct api *a)
{
    /* realloc(NULL, n) is malloc(n). */
    void *p = a->realloc(NULL, 300);
    CHECK(p != NULL && ALIGNED(p, 16) && a->usable(p) >= 300, "%s realloc(NULL, 300)", a->name);
    fill(p, 300, 1);
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    CHECK(a->realloc(p, 0) == NULL, "%s realloc(p, 0) did not return NULL", a->name);

    /* Grow from 1 byte to 8 MiB and shrink back, keeping the contents each time. */
    size_t n = 1;
    p = a->malloc(n);
    fill(p, n, 99);
    for (size_t next = 2; next <= ((size_t)8 << 20); next = next * 3 / 2 + 1) {
        void *q = a->realloc(p, next);
        CHECK(q != NULL, "%s realloc(%zu -> %zu)", a->name, n, next);
        if (!q)
            return;
        CHECK(ALIGNED(q, 16), "%s realloc result unaligned", a->name);
        CHECK(verify(q, n, 99) == SIZE_MAX, "%s realloc(%zu -> %zu) lost the contents", a->name, n, next);
        CHECK(a->usable(q) >= next, "%s usable after realloc to %zu", a->name, next);
        fill(q, next, 99);
        p = q;
        n = next;
    }
    while (n > 1) {
        size_t next = n / 3;
        if (next == 0)
            next = 1;
        void *q = a->realloc(p, next);
        CHECK(q != NULL && verify(q, next, 99) == SIZE_MAX, "%s realloc shrink %zu -> %zu", a->name, n, next);
        if (!q)
            return;
        p = q;
        n = next;
    }
    a->free(p);
}

static void check_aligned_block(const struct api *a, const char *fn, void *p, size_t align, size_t size)
{
    CHECK(p != NULL, "%s %s(align %zu, size %zu) returned NULL", a->name, fn, align, size);
    if (!p)
        return;
    CHECK(ALIGNED(p, align), "%s %s(align %zu, size %zu) = %p misaligned", a->name, fn, align, size, p);
    CHECK(ALIGNED(p, 16), "%s %s result not 16-byte aligned", a->name, fn);
    CHECK(a->usable(p) >= size, "%s %s(align %zu, size %zu): usable %zu", a->name, fn, align, size, a->usable(p));
    fill(p, size, (uint32_t)(align + size));
    CHECK(verify(p, size, (uint32_t)(align + size)) == SIZE_MAX, "%s %s pattern", a->name, fn);
}

static void test_alignment(const struct api *a)
{
    for (size_t align = 1; align <= ((size_t)2 << 20); align *= 2) {
        size_t sz[] = {1, 24, align, align + 1, 3 * align, 1000};
        /* Keep several blocks of one alignment live at once, so that the second and
         * later ones come from the middle of a span, not only from fresh memory. */
        void *live[3 * (sizeof sz / sizeof sz[0])];
        size_t live_size[3 * (sizeof sz / sizeof sz[0])];
        size_t nlive = 0;
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
            size_t size = sz[i];
            void *p = a->aligned_alloc(align, size);
            check_aligned_block(a, "aligned_alloc", p, align, size);
            live_size[nlive] = size;
            live[nlive++] = p;
            p = a->memalign(align, size);
            check_aligned_block(a, "memalign", p, align, size);
            live_size[nlive] = size;
            live[nlive++] = p;
            if (align >= sizeof(void *)) {
                p = NULL;
                int rc = a->posix_memalign(&p, align, size);
                CHECK(rc == 0, "%s posix_memalign(%zu, %zu) = %d", a->name, align, size, rc);
                check_aligned_block(a, "posix_memalign", p, align, size);
                live_size[nlive] = size;
                live[nlive++] = p;
            }
        }
        for (size_t i = 0; i < nlive; i++) {
            if (i % 2 == 0)
                a->free_aligned_sized(live[i], align, live_size[i]);
            else
                a->free(live[i]);
        }
    }
    /* memalign rounds an alignment that is not a power of two up (glibc). */
    void *p = a->memalign(24, 100);
    CHECK(p != NULL && ALIGNED(p, 32), "%s memalign(24, 100) = %p", a->name, p);
    a->free(p);

    /* valloc / pvalloc. */
    size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 100000, (size_t)3 << 20};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        size_t n = vs[i];
        p = a->valloc(n);
        CHECK(p != NULL && ALIGNED(p, PAGE), "%s valloc(%zu) = %p", a->name, n, p);
        if (p) {
            CHECK(a->usable(p) >= n, "%s valloc(%zu): usable %zu", a->name, n, a->usable(p));
            memset(p, 0x5A, n);
            a->free(p);
        }
        p = a->pvalloc(n);
        size_t rounded = n == 0 ? PAGE : (n + PAGE - 1) / PAGE * PAGE;
        CHECK(p != NULL && ALIGNED(p, PAGE), "%s pvalloc(%zu) = %p", a->name, n, p);
        if (p) {
            CHECK(a->usable(p) >= rounded, "%s pvalloc(%zu): usable %zu < %zu", a->name, n, a->usable(p), rounded);
            memset(p, 0x5A, rounded);
            a->free(p);
        }
    }
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_calloc(const struct api *a)
{
    size_t cs[] = {0, 1, 8, 15, 16, 17, 100, 1000, 4096, 8191, 32768, 65536, 65537, 200000,
                   (size_t)1 << 20, ((size_t)1 << 20) + 1, (size_t)3 << 20, (size_t)8 << 20};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            size_t n = cs[i];
            /* Dirty a block of this size first, so calloc may be handed it back. */
            unsigned char *d = a->malloc(n);
            CHECK(d != NULL, "%s malloc(%zu)", a->name, n);
            memset(d, 0xAB, a->usable(d));
            a->free(d);
            unsigned char *p = a->calloc(1, n);
            CHECK(p != NULL && all_zero(p, n), "%s calloc(1, %zu) not zero (round %d)", a->name, n, round);
            if (p)
                memset(p, 0xAB, a->usable(p));
            a->free(p);
            p = a->calloc(n, 1);
            CHECK(p != NULL && all_zero(p, n), "%s calloc(%zu, 1) not zero (round %d)", a->name, n, round);
            a->free(p);
            /* Many at once: the second block of a class comes from a used span. */
            unsigned char *many[8];
            int nmany = n <= ((size_t)1 << 20) ? 8 : 2;
            for (int k = 0; k < nmany; k++) {
                many[k] = a->malloc(n);
                if (many[k])
                    memset(many[k], 0xAB, n);
            }
            for (int k = 0; k < nmany; k++)
                a->free(many[k]);
            for (int k = 0; k < nmany; k++) {
                many[k] = (n % 16) ? a->calloc(n, 1) : a->calloc(n / 16, 16);
                CHECK(many[k] != NULL && all_zero(many[k], n), "%s calloc %zu bytes after dirty frees", a->name, n);
            }
            for (int k = 0; k < nmany; k++)
                a->free(many[k]);
        }
    }
}

static void test_misc(const struct api *a)
{
    /* free_sized / free_aligned_sized with the sizes the blocks were made with. */
    for (size_t n = 1; n < ((size_t)4 << 20); n = n * 5 + 3) {
        void *p = a->malloc(n);
        CHECK(p != NULL, "%s malloc(%zu)", a->name, n);
        memset(p, 1, n);
        a->free_sized(p, n);
        p = a->aligned_alloc(64, n);
        CHECK(p != NULL && ALIGNED(p, 64), "%s aligned_alloc(64, %zu)", a->name, n);
        memset(p, 1, n);
        a->free_aligned_sized(p, 64, n);
        p = a->aligned_alloc(4096, n);
        CHECK(p != NULL && ALIGNED(p, 4096), "%s aligned_alloc(4096, %zu)", a->name, n);
        a->free_aligned_sized(p, 4096, n);
    }
    int t = a->trim(0);
    CHECK(t == 0 || t == 1, "%s malloc_trim(0) = %d", a->name, t);
    /* The allocator still works after a trim. */
    void *p = a->malloc(12345);
    CHECK(p != NULL, "%s malloc after trim", a->name);
    memset(p, 3, 12345);
    a->free(p);
}

static void test_mallinfo(void)
{
    void *big = malloc((size_t)8 << 20), *mid = malloc(100000), *small = malloc(100);
    memset(big, 1, (size_t)8 << 20);
    memset(mid, 1, 100000);
    memset(small, 1, 100);
    struct mallinfo2 m = mallinfo2();
    struct ox_mallinfo2 o = ox_mallinfo2();
    CHECK(m.arena >= m.uordblks, "mallinfo2: arena %zu < uordblks %zu", m.arena, m.uordblks);
    CHECK(o.arena >= o.uordblks, "ox_mallinfo2: arena %zu < uordblks %zu", o.arena, o.uordblks);
    CHECK(m.uordblks >= 100000, "mallinfo2: uordblks %zu with > 8 MiB live", m.uordblks);
    CHECK(m.usmblks >= m.uordblks, "mallinfo2: peak %zu < in use %zu", m.usmblks, m.uordblks);
    CHECK(m.arena < ((size_t)1 << 40) && m.fordblks < ((size_t)1 << 40), "mallinfo2: arena %zu fordblks %zu", m.arena, m.fordblks);
    CHECK(m.uordblks + m.hblkhd >= ((size_t)8 << 20), "mallinfo2: uordblks %zu + hblkhd %zu < 8 MiB live", m.uordblks, m.hblkhd);
    free(big);
    free(mid);
    free(small);
}

/* The standard names must be oxalloc's: ox_ functions recognise their blocks. */
static void test_same_allocator(void)
{
    void *p = malloc(100);
    CHECK(ox_malloc_usable_size(p) >= 100, "malloc is not oxalloc's (ox_malloc_usable_size = %zu)", ox_malloc_usable_size(p));
    void *q = ox_malloc(200);
    CHECK(malloc_usable_size(q) >= 200, "malloc_usable_size does not know ox_malloc's block");
    q = realloc(q, 5000);
    CHECK(q != NULL && ox_malloc_usable_size(q) >= 5000, "realloc of an ox_malloc block");
    ox_free(p);
    free(q);
    char *s = strdup("strdup goes through malloc");
    CHECK(s && ox_malloc_usable_size(s) > 0, "strdup's block is not oxalloc's");
    free(s);
}

static void test_stats(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (!f)
        return;
    ox_stats_json(fileno(f));
    long len = lseek(fileno(f), 0, SEEK_END);
    CHECK(len > 2, "ox_stats_json wrote %ld bytes", len);
    char *buf = calloc(1, (size_t)len + 1);
    CHECK(pread(fileno(f), buf, (size_t)len, 0) == len, "read back stats");
    CHECK(buf[0] == '{' && strstr(buf, "}") && strstr(buf, "\"allocs\":"), "ox_stats_json output: %.200s", buf);
    char *a = strstr(buf, "\"allocs\":");
    CHECK(a && strtoull(a + 9, NULL, 10) > 0, "ox_stats_json: allocs not > 0");
    free(buf);
    fclose(f);
    ox_stats_print();
}

/* Reads a whole stream back from its start, NUL-terminated (free the result). */
static char *read_back(FILE *f)
{
    fflush(f);
    long len = lseek(fileno(f), 0, SEEK_END);
    char *buf = calloc(1, len > 0 ? (size_t)len + 1 : 1);
    if (len > 0 && pread(fileno(f), buf, (size_t)len, 0) != len)
        buf[0] = 0;
    return buf;
}

static void test_glibc_extras(void)
{
    void *live = malloc(200000);
    memset(live, 1, 200000);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
    struct ox_mallinfo o = ox_mallinfo();
    CHECK(m.uordblks > 0 && m.arena >= m.uordblks, "mallinfo: arena %d uordblks %d", m.arena, m.uordblks);
    CHECK(o.uordblks > 0 && o.arena >= o.uordblks, "ox_mallinfo: arena %d uordblks %d", o.arena, o.uordblks);

    CHECK(mallopt(M_ARENA_MAX, 2) == 1 && mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt refused a glibc parameter");
    CHECK(ox_mallopt(M_TRIM_THRESHOLD, 0) == 1, "ox_mallopt refused M_TRIM_THRESHOLD");
    CHECK(mallopt(12345, 1) == 0 && ox_mallopt(-100, 1) == 0, "mallopt accepted an unknown parameter");

    int (*infos[])(int, FILE *) = {malloc_info, ox_malloc_info};
    for (int k = 0; k < 2; k++) {
        FILE *f = tmpfile();
        CHECK(f != NULL, "tmpfile");
        if (!f)
            continue;
        CHECK(infos[k](0, f) == 0, "malloc_info #%d failed", k);
        char *xml = read_back(f);
        char *cur = strstr(xml, "<system type=\"current\" size=\"");
        CHECK(strncmp(xml, "<malloc version=\"1\">", 20) == 0 && strstr(xml, "</malloc>\n"), "malloc_info #%d: %.200s", k, xml);
        CHECK(cur && strtoull(cur + 29, NULL, 10) > 0, "malloc_info #%d: no current size > 0: %.300s", k, xml);
        free(xml);
        errno = 0;
        CHECK(infos[k](1, f) == -1 && errno == EINVAL, "malloc_info #%d with options 1: not EINVAL", k);
        fclose(f);
    }

    void (*stats[])(void) = {malloc_stats, ox_malloc_stats};
    for (int k = 0; k < 2; k++) {
        FILE *f = tmpfile();
        if (!f)
            continue;
        fflush(stderr);
        int saved = dup(2);
        dup2(fileno(f), 2);
        stats[k]();
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        char *text = read_back(f);
        CHECK(strstr(text, "allocations") != NULL, "malloc_stats #%d printed: %.200s", k, text);
        free(text);
        fclose(f);
    }
    free(live);
}

/* Random malloc/realloc/free on many blocks, each with its own pattern. */
#define SLOTS 4096
static struct {
    unsigned char *p;
    size_t n;
    uint32_t seed;
} slot[SLOTS];

static size_t random_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    size_t x = (size_t)(r >> 16);
    switch (r % 1000) {
    case 0:
    case 1:
        return x % ((size_t)3 << 20); /* huge: up to 3 MiB */
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
        return x % 300000; /* large */
    default:
        if (r % 1000 < 250)
            return x % 8192; /* medium */
        return x % 512; /* small */
    }
}

static void test_integrity(const struct api *a, uint64_t seed)
{
    uint64_t rng = seed;
    for (long op = 0; op < 150000; op++) {
        size_t i = (size_t)(rng_next(&rng) % SLOTS);
        if (slot[i].p) {
            size_t bad = verify(slot[i].p, slot[i].n, slot[i].seed);
            CHECK(bad == SIZE_MAX, "%s op %ld: block %p (%zu bytes) corrupted at byte %zu", a->name, op, (void *)slot[i].p, slot[i].n, bad);
            if (rng_next(&rng) % 4 == 0) {
                size_t n = random_size(&rng);
                unsigned char *q = a->realloc(slot[i].p, n);
                if (n == 0) {
                    CHECK(q == NULL, "%s realloc(p, 0)", a->name);
                    slot[i].p = NULL;
                    continue;
                }
                CHECK(q != NULL && ALIGNED(q, 16), "%s realloc(%zu)", a->name, n);
                size_t keep = n < slot[i].n ? n : slot[i].n;
                CHECK(verify(q, keep, slot[i].seed) == SIZE_MAX, "%s realloc %zu -> %zu lost contents", a->name, slot[i].n, n);
                slot[i].p = q;
                slot[i].n = n;
                slot[i].seed = (uint32_t)rng_next(&rng);
                fill(q, n, slot[i].seed);
            } else {
                a->free(slot[i].p);
                slot[i].p = NULL;
            }
        } else {
            size_t n = random_size(&rng);
            unsigned char *p = (rng_next(&rng) % 8 == 0) ? a->calloc(1, n) : a->malloc(n);
            CHECK(p != NULL && ALIGNED(p, 16), "%s malloc(%zu) = %p", a->name, n, (void *)p);
            CHECK(a->usable(p) >= n, "%s usable(%zu)", a->name, n);
            slot[i].p = p;
            slot[i].n = n;
            slot[i].seed = (uint32_t)rng_next(&rng);
            fill(p, n, slot[i].seed);
        }
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (slot[i].p) {
            CHECK(verify(slot[i].p, slot[i].n, slot[i].seed) == SIZE_MAX, "%s final check of slot %zu", a->name, i);
            a->free(slot[i].p);
            slot[i].p = NULL;
        }
    }
}

int main(int argc, char **argv)
{
    make_sizes();
    expect_mapping(argc, argv);
    test_same_allocator();
    const struct api *apis[] = {&plain_api, &ox_api};
    for (int k = 0; k < 2; k++) {
        const struct api *a = apis[k];
        test_malloc(a);
        test_bad_input(a);
        test_realloc(a);
        test_alignment(a);
        test_calloc(a);
        test_misc(a);
        test_integrity(a, 0x9E3779B97F4A7C15ULL + (uint64_t)k);
    }
    test_mallinfo();
    test_stats();
    test_glibc_extras();
    return finish("api_test");
}
