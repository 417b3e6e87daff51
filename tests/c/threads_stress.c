/*
 * threads_stress.c: many threads, random sizes, cross-thread frees, thread churn.
 *
 * For ROUNDS rounds (default 50), start THREADS threads (default 8) and join them.
 * Each thread does OPS operations (default 1500): allocate a block of a random size
 * (mostly 0..1 KiB, often up to 64 KiB, rarely up to 4 MiB; malloc, calloc or
 * aligned_alloc), fill it with a pattern, and either keep it (and later realloc or
 * free it itself) or push it onto a mutex-protected queue shared by all threads;
 * every thread also pops blocks other threads pushed and frees them after checking
 * their pattern (cross-thread frees). Blocks left in the queue when a round ends
 * are freed by the main thread, or by the threads of the next round.
 * Any corrupted block, NULL from malloc or misaligned pointer is a failure.
 * Usage: threads_stress [--expect-so] [ROUNDS THREADS OPS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct item {
    struct item *next;
    unsigned char *p;
    size_t n;
    uint32_t seed;
};

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static struct item *qhead;
static size_t qlen;
static unsigned long failures; /* under qlock */
static int ops = 1500;

static void fail(const char *what, size_t n)
{
    pthread_mutex_lock(&qlock);
    if (failures++ < 20)
        fprintf(stderr, "threads_stress: %s (size %zu)\n", what, n);
    pthread_mutex_unlock(&qlock);
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    size_t x = (size_t)(r >> 20);
    unsigned k = (unsigned)(r % 1000);
    if (k < 2)
        return x % ((size_t)4 << 20);
    if (k < 250)
        return x % 65536;
    return x % 1024;
}

static struct item *make_item(uint64_t *rng)
{
    size_t n = random_size(rng);
    unsigned kind = (unsigned)(rng_next(rng) % 8);
    unsigned char *p;
    if (kind == 0)
        p = calloc(1, n);
    else if (kind == 1)
        p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    else
        p = malloc(n);
    if (!p || ((uintptr_t)p & 15) || (kind == 1 && ((uintptr_t)p & 63))) {
        fail("allocation failed or misaligned", n);
        return NULL;
    }
    if (kind == 0) {
        for (size_t i = 0; i < n; i++)
            if (p[i]) {
                fail("calloc memory not zero", n);
                break;
            }
    }
    struct item *it = malloc(sizeof *it);
    if (!it) {
        fail("malloc(item)", sizeof *it);
        free(p);
        return NULL;
    }
    it->p = p;
    it->n = n;
    it->seed = (uint32_t)rng_next(rng);
    fill(p, n, it->seed);
    return it;
}

static void drop_item(struct item *it)
{
    if (verify(it->p, it->n, it->seed) != SIZE_MAX)
        fail("block corrupted", it->n);
    free(it->p);
    free(it);
}

static void *thread_main(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    struct item *local[32] = {0};
    for (int op = 0; op < ops; op++) {
        unsigned choice = (unsigned)(rng_next(&rng) % 4);
        if (choice == 0) {
            /* Take a block another thread made, and free it here. */
            pthread_mutex_lock(&qlock);
            struct item *it = qhead;
            if (it) {
                qhead = it->next;
                qlen--;
            }
            pthread_mutex_unlock(&qlock);
            if (it)
                drop_item(it);
        } else if (choice == 1) {
            struct item *it = make_item(&rng);
            if (!it)
                continue;
            pthread_mutex_lock(&qlock);
            int full = qlen > 20000;
            if (!full) {
                it->next = qhead;
                qhead = it;
                qlen++;
            }
            pthread_mutex_unlock(&qlock);
            if (full)
                drop_item(it);
        } else {
            int i = (int)(rng_next(&rng) % 32);
            if (local[i] && choice == 2) {
                /* realloc a block we keep: contents survive up to the smaller size. */
                struct item *it = local[i];
                size_t n = random_size(&rng) + 1;
                size_t keep = n < it->n ? n : it->n;
                if (verify(it->p, keep, it->seed) != SIZE_MAX)
                    fail("block corrupted before realloc", it->n);
                unsigned char *q = realloc(it->p, n);
                if (!q) {
                    fail("realloc failed", n);
                    continue;
                }
                if (verify(q, keep, it->seed) != SIZE_MAX)
                    fail("realloc lost the contents", n);
                it->p = q;
                it->n = n;
                fill(q, n, it->seed);
            } else if (local[i]) {
                drop_item(local[i]);
                local[i] = NULL;
            } else {
                local[i] = make_item(&rng);
            }
        }
    }
    for (int i = 0; i < 32; i++)
        if (local[i])
            drop_item(local[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = 50, threads = 8, argi = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        int v = atoi(argv[i]);
        if (argi == 0)
            rounds = v;
        else if (argi == 1)
            threads = v;
        else
            ops = v;
        argi++;
    }
    expect_mapping(argc, argv);
    pthread_t *th = malloc(sizeof *th * (size_t)threads);
    CHECK(th != NULL, "malloc");
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < threads; t++)
            CHECK(pthread_create(&th[t], NULL, thread_main, (void *)(uintptr_t)(r * 1000 + t + 1)) == 0, "pthread_create");
        for (int t = 0; t < threads; t++)
            CHECK(pthread_join(th[t], NULL) == 0, "pthread_join");
        /* Every other round, the main thread frees what is left in the queue. */
        if (r % 2) {
            while (qhead) {
                struct item *it = qhead;
                qhead = it->next;
                qlen--;
                drop_item(it);
            }
        }
    }
    while (qhead) {
        struct item *it = qhead;
        qhead = it->next;
        drop_item(it);
    }
    free(th);
    CHECK(failures == 0, "%lu failures in the threads", failures);
    return finish("threads_stress");
}
