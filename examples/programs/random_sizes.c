// Issue 18, session 23. Build: cc -O2 -o random_sizes random_sizes.c -lpthread
// Random replacement of blocks of any size: each thread keeps 1024 live blocks; each
// step frees a random one and allocates MAX_SIZE-uniform bytes in its place, writing
// the first byte (glibc's bench-malloc-thread shape, with bigger sizes).
// usage: random_sizes THREADS STEPS MAX_SIZE
//   random_sizes 1 3000000 65536     (size classes above 16 KiB: heap/retain.rs)
//   random_sizes 2 300000 524288     (large blocks: the central pool)
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WS 1024
static long steps;
static size_t max_size;

static void *run(void *arg) {
    uint64_t s = (uintptr_t)arg * 2654435761u + 1;
    void *ws[WS] = {0};
    for (long i = 0; i < steps; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int k = s % WS;
        free(ws[k]);
        size_t n = (s >> 20) % max_size + 1;
        ws[k] = malloc(n);
        *(char *)ws[k] = 1;
    }
    for (int k = 0; k < WS; k++) free(ws[k]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS STEPS MAX_SIZE\n", argv[0]);
        return 2;
    }
    int t = atoi(argv[1]);
    steps = atol(argv[2]);
    max_size = (size_t)atol(argv[3]);
    if (t < 1 || t > 64 || max_size < 1) return 2;
    pthread_t th[64];
    for (int i = 0; i < t; i++) pthread_create(&th[i], 0, run, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < t; i++) pthread_join(th[i], 0);
    return 0;
}
