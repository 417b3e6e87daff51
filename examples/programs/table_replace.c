// Issue 18, item 2. Build: cc -O2 -o table_replace table_replace.c -lpthread -lm
// Random replacement in a table of live objects: SLOTS slots per thread; each step
// frees a random slot and allocates a new block of 8..1024 bytes (log-uniform, so
// skewed small) and writes all of it.  usage: table STEPS [THREADS]
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define SLOTS (1u << 18)
static long steps;

static inline uint64_t xs(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}
// log-uniform in [8, 1024]: 2^(3 + 7u)
static uint16_t size_table[4096];

static void *run(void *arg) {
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uintptr_t)arg * 0x2545F4914F6CDD1Dull;
    void **slot = malloc(SLOTS * sizeof(void *));
    for (unsigned i = 0; i < SLOTS; i++) {
        size_t n = size_table[xs(&seed) & 4095];
        slot[i] = malloc(n);
        memset(slot[i], (int)i, n);
    }
    uint64_t sum = 0;
    for (long s = 0; s < steps; s++) {
        uint64_t r = xs(&seed);
        unsigned i = r & (SLOTS - 1);
        size_t n = size_table[(r >> 20) & 4095];
        sum += *(unsigned char *)slot[i];
        free(slot[i]);
        slot[i] = malloc(n);
        memset(slot[i], (int)s, n);
    }
    for (unsigned i = 0; i < SLOTS; i++) free(slot[i]);
    free(slot);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    steps = argc > 1 ? atol(argv[1]) : 10000000;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    for (int i = 0; i < 4096; i++) size_table[i] = (uint16_t)exp2(3.0 + 7.0 * (i + 0.5) / 4096.0);
    pthread_t t[64];
    uint64_t total = 0;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], 0, run, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++) { void *r; pthread_join(t[i], &r); total += (uintptr_t)r; }
    printf("%llu\n", (unsigned long long)total);
    return 0;
}
