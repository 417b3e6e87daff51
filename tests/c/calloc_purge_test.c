/*
 * calloc_purge_test: calloc memory reads zero after frees, purges (whole and partial),
 * merges of dirty and purged free space, and spans cut from either end of a free span.
 * Three threads churn a window of blocks of every kind (small, large spans, huge
 * blocks), each filled with 0xff before it is freed; half the allocations are callocs
 * checked for zero. Run with a short demand window and purge delay so that the
 * page-return policy purges and reuses memory all the time.
 */
#include "common.h"
#include <pthread.h>
#include <unistd.h>

enum { WINDOW = 64, STEPS = 4000, THREADS = 3 };

static void *churn(void *arg)
{
    uint64_t s = 0x9E3779B97F4A7C15ull * (uintptr_t)arg + 7;
    void *p[WINDOW] = {0};
    for (long it = 0; it < STEPS; it++) {
        int i = (int)(rng_next(&s) % WINDOW);
        free(p[i]);
        unsigned kind = (unsigned)(rng_next(&s) % 10);
        size_t n = kind < 5   ? 16 + rng_next(&s) % 65536
                   : kind < 9 ? 65536 + rng_next(&s) % (1 << 20)
                              : (1 << 20) + rng_next(&s) % (8 << 20);
        if (rng_next(&s) % 2) {
            unsigned char *q = calloc(1, n);
            CHECK(q != NULL, "calloc(%zu) failed", n);
            size_t nonzero = 0;
            for (size_t k = 0; q && k < n; k += 509)
                nonzero += q[k] != 0;
            CHECK(q && nonzero == 0 && q[n - 1] == 0, "calloc(%zu) at %p not zero (%zu samples)", n, (void *)q, nonzero);
            p[i] = q;
        } else {
            p[i] = malloc(n);
            CHECK(p[i] != NULL, "malloc(%zu) failed", n);
        }
        if (p[i])
            memset(p[i], 0xff, n);
        if (rng_next(&s) % 1000 == 0)
            usleep((useconds_t)(rng_next(&s) % 3000)); /* let the purger run */
    }
    for (int i = 0; i < WINDOW; i++)
        free(p[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    expect_mapping(argc, argv);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i + 1));
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return finish("calloc_purge_test");
}
