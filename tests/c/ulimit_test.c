/*
 * ulimit_test.c: malloc when the kernel refuses memory.
 *
 * Sets RLIMIT_AS (the limit `ulimit -v` sets) to the address space in use now plus
 * 256 MiB, then, for each of several block sizes (small, medium, large, huge):
 *   - allocates blocks until malloc returns NULL, which it must do with
 *     errno == ENOMEM (no abort, no crash);
 *   - checks that every earlier block still holds its pattern;
 *   - frees every other block and checks that allocating works again;
 *   - frees everything before the next size (no malloc_trim: the allocator must
 *     reuse or give back that memory by itself).
 * The blocks form a linked list through their own first bytes, so the test itself
 * needs no memory beyond them. Also checks calloc and realloc failing the same way.
 * Pass --expect-so to also check that liboxalloc.so is mapped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common.h"

struct block {
    struct block *next;
    size_t size;
    uint32_t seed;
};

#define HDR sizeof(struct block)

/* Called through a pointer so that the compiler does not warn about using the block
 * after a realloc: the test reads it exactly when realloc failed. */
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

static size_t vm_size_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static void fill_block(struct block *b)
{
    fill((unsigned char *)b + HDR, b->size - HDR, b->seed);
}

static int check_block(const struct block *b)
{
    return verify((const unsigned char *)b + HDR, b->size - HDR, b->seed) == SIZE_MAX;
}

/* Allocates blocks of `size` until NULL; returns the list, sets *count. */
static struct block *exhaust(size_t size, uint32_t seed0, size_t *count, int *saw_enomem)
{
    struct block *head = NULL;
    size_t n = 0;
    *saw_enomem = 0;
    for (;;) {
        errno = 0;
        struct block *b = malloc(size);
        if (!b) {
            *saw_enomem = errno == ENOMEM;
            break;
        }
        b->next = head;
        b->size = size;
        b->seed = seed0 + (uint32_t)n;
        fill_block(b);
        head = b;
        n++;
        if (n > 100000000)
            break; /* the limit did not bite: fail below */
    }
    *count = n;
    return head;
}

static void run_size(size_t size)
{
    size_t count = 0;
    int enomem = 0;
    struct block *head = exhaust(size, (uint32_t)size, &count, &enomem);
    CHECK(enomem, "size %zu: malloc returned NULL without ENOMEM (after %zu blocks)", size, count);
    CHECK(count > 0, "size %zu: not even one block", size);
    size_t bad = 0;
    for (struct block *b = head; b; b = b->next)
        bad += !check_block(b);
    CHECK(bad == 0, "size %zu: %zu of %zu blocks corrupted after malloc failed", size, bad, count);

    /* calloc and realloc fail the same way at the limit. */
    errno = 0;
    void *c = calloc(1, size);
    CHECK(c == NULL ? errno == ENOMEM : 1, "size %zu: calloc failed without ENOMEM", size);
    free(c);
    if (head) {
        errno = 0;
        void *r = realloc_fn(head, (size_t)512 << 20);
        CHECK(r == NULL && errno == ENOMEM, "size %zu: realloc to 512 MiB at the limit: %p errno %d", size, r, errno);
        if (r)
            head = r; /* (cannot happen under the limit; keeps the list valid) */
        else
            CHECK(check_block(head), "size %zu: failed realloc damaged the block", size);
    }

    /* Free every other block; allocating must work again. */
    struct block **link = &head;
    size_t freed = 0;
    while (*link) {
        struct block *b = *link;
        if (b->next) {
            struct block *victim = b->next;
            b->next = victim->next;
            free(victim);
            freed++;
        }
        link = &b->next;
    }
    size_t again = 0;
    for (; again < freed; again++) {
        struct block *b = malloc(size);
        if (!b)
            break;
        b->next = head;
        b->size = size;
        b->seed = 7 * (uint32_t)again;
        fill_block(b);
        head = b;
    }
    CHECK(again > 0 && again * 2 >= freed, "size %zu: after freeing %zu blocks only %zu could be allocated again", size, freed, again);
    bad = 0;
    size_t total = 0;
    while (head) {
        struct block *next = head->next;
        bad += !check_block(head);
        total++;
        free(head);
        head = next;
    }
    CHECK(bad == 0, "size %zu: %zu of %zu blocks corrupted at the end", size, bad, total);
    fprintf(stderr, "ulimit_test: size %zu: %zu blocks before NULL, %zu freed, %zu again\n", size, count, freed, again);
}

int main(int argc, char **argv)
{
    expect_mapping(argc, argv);
    printf("ulimit_test: starting\n"); /* stdout's buffer is made before the limit */
    fflush(stdout);
    size_t vm = vm_size_bytes();
    CHECK(vm > 0, "VmSize not found in /proc/self/status");
    struct rlimit rl = {vm + ((size_t)256 << 20), vm + ((size_t)256 << 20)};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit(RLIMIT_AS)");

    size_t sizes[] = {48, 5000, 200000, (size_t)3 << 20, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        run_size(sizes[i]);

    /* After all that, ordinary allocation still works. */
    void *p = malloc((size_t)64 << 20);
    CHECK(p != NULL, "64 MiB after the runs (limit 256 MiB above start)");
    if (p)
        memset(p, 1, (size_t)64 << 20);
    free(p);
    return finish("ulimit_test");
}
