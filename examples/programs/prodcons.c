// Issue 18, item 3. Build: cc -O2 -o prodcons prodcons.c -lpthread
// Producer/consumer: one thread allocates 16..256 B blocks and writes them, another
// frees them, through a single-producer single-consumer ring.  usage: prodcons N
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>

#define RING 4096
static void *ring[RING];
static _Atomic unsigned long head, tail; // head: produced, tail: consumed
static long total;

static void *producer(void *a) {
    (void)a;
    uint64_t s = 88172645463325252ull;
    for (long i = 0; i < total; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t n = 16 + (s % 241);
        void *p = malloc(n);
        memset(p, (int)i, n);
        unsigned long h = atomic_load_explicit(&head, memory_order_relaxed);
        while (h - atomic_load_explicit(&tail, memory_order_acquire) >= RING) sched_yield();
        ring[h % RING] = p;
        atomic_store_explicit(&head, h + 1, memory_order_release);
    }
    return 0;
}

static void *consumer(void *a) {
    (void)a;
    uint64_t sum = 0;
    for (long i = 0; i < total; i++) {
        unsigned long t = atomic_load_explicit(&tail, memory_order_relaxed);
        while (atomic_load_explicit(&head, memory_order_acquire) == t) sched_yield();
        void *p = ring[t % RING];
        sum += *(unsigned char *)p;
        free(p);
        atomic_store_explicit(&tail, t + 1, memory_order_release);
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    total = argc > 1 ? atol(argv[1]) : 20000000;
    pthread_t p, c;
    void *r;
    pthread_create(&c, 0, consumer, 0);
    pthread_create(&p, 0, producer, 0);
    pthread_join(p, 0);
    pthread_join(c, &r);
    printf("%llu\n", (unsigned long long)(uintptr_t)r);
    return 0;
}
