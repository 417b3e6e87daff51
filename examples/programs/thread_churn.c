// Session 20's reproducer of a peak-RSS tail. Build: cc -O2 -o thread_churn thread_churn.c -lpthread
// Rounds of PAR short-lived threads (joined before the next round starts). Each thread
// keeps 64 blocks of 16..2016 bytes, replaces a random one 200 times (16..4016 bytes),
// then frees half and leaves the other half in a table of 4096 slots shared by all
// threads (freeing the block it replaces there, which another thread, long gone, left).
// The live memory is the same under every allocator (~9 MiB, mostly the table).
//   usage: thread_churn [ROUNDS=3000] [PAR=8] [SHARE=1]   (SHARE=0: free everything)
// With PERSIST=1 in the environment the same rounds run on PAR threads started once,
// with a barrier between rounds (the same work without thread churn).
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 64
#define SLOTS 4096
static void *shared[SLOTS];
static int share = 1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t step(uint64_t *s) { return *s = *s * 6364136223846793005ULL + 1442695040888963407ULL; }

static void *work(void *arg) {
    uint64_t seed = (uintptr_t)arg * 2654435761u + 1;
    void *mine[LIVE];
    for (int i = 0; i < LIVE; i++) {
        mine[i] = malloc(16 + (step(&seed) >> 33) % 2000);
        memset(mine[i], 1, 16);
    }
    for (int r = 0; r < 200; r++) {
        int i = (step(&seed) >> 33) & (LIVE - 1);
        free(mine[i]);
        mine[i] = malloc(16 + (step(&seed) >> 40) % 4000);
        memset(mine[i], 2, 16);
    }
    pthread_mutex_lock(&mu);
    for (int i = 0; i < LIVE; i++) {
        if ((i & 1) && share) {
            int s = (step(&seed) >> 33) & (SLOTS - 1);
            free(shared[s]);
            shared[s] = mine[i];
        } else {
            free(mine[i]);
        }
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static pthread_barrier_t round_end;
static int g_rounds, g_par;

static void *persistent(void *arg) {
    for (int r = 0; r < g_rounds; r++) {
        work((void *)(uintptr_t)(r * g_par + (uintptr_t)arg + 1));
        pthread_barrier_wait(&round_end);
    }
    return 0;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3000;
    int par = argc > 2 ? atoi(argv[2]) : 8;
    share = argc > 3 ? atoi(argv[3]) : 1;
    if (par < 1 || par > 64) return 2;
    if (getenv("PERSIST")) {
        pthread_t t[64];
        g_rounds = rounds;
        g_par = par;
        pthread_barrier_init(&round_end, 0, par);
        for (int i = 0; i < par; i++) pthread_create(&t[i], 0, persistent, (void *)(uintptr_t)i);
        for (int i = 0; i < par; i++) pthread_join(t[i], 0);
        rounds = 0;
    }
    for (int r = 0; r < rounds; r++) {
        pthread_t t[64];
        for (int i = 0; i < par; i++) pthread_create(&t[i], 0, work, (void *)(uintptr_t)(r * par + i + 1));
        for (int i = 0; i < par; i++) pthread_join(t[i], 0);
    }
    for (int s = 0; s < SLOTS; s++) free(shared[s]);
    puts("ok");
    return 0;
}
