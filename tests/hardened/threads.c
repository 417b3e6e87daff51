/* Threads under the hardened library's per-thread quarantines. argv[1] picks the case:
 *   clean            cross-thread frees, threads that exit holding quarantined
 *                    blocks, reuse of what they handed back, fork while the
 *                    threads allocate and free (and once after they exited),
 *                    ox_hardened_check; leaks 5 x 777 bytes from an exited thread
 *                    (for the leak report); exits 0.
 *   double_free      a block freed on one thread, then again on another.
 *   never_handed_out a neighbouring block of a live one, never handed out, freed from
 *                    a second thread while the first is alive.
 *   recycled_slot    a block freed, pushed out of the quarantine back to the heap
 *                    (free, not handed out again yet), then freed again from another
 *                    thread.
 *   overflow         a 1-byte overflow of a block allocated on one thread, found when
 *                    another frees it.
 *   write_after_free a write into a block freed by a thread that then exits: its
 *                    quarantine is checked as the thread exits.
 *   usable_size      malloc_usable_size from a second thread of a block the first freed.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

size_t ox_hardened_check(void) __attribute__((weak));

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed line %d: %s\n", __LINE__, #c); exit(1); } } while (0)

enum { THREADS = 4, ROUNDS = 30000, RING = 64 };

/* One ring of blocks per thread pair: thread t allocates into ring t, thread t+1
 * frees from it (cross-thread frees in both directions over the whole run). */
struct ring {
    pthread_mutex_t mu;
    void *slot[RING];
    size_t size[RING];
    int head, len;
};
static struct ring rings[THREADS];

/* In the fork round the mixers go on past ROUNDS until main has forked, so that every
 * fork happens while all of them allocate, free and hand blocks across threads. */
static atomic_int fork_round, forks_done;

static void *mixer(void *arg) {
    int t = (int)(intptr_t)arg;
    unsigned seed = 12345u + t;
    struct ring *mine = &rings[t], *next = &rings[(t + 1) % THREADS];
    void *local[128] = {0};
    for (int i = 0; i < ROUNDS || (atomic_load(&fork_round) && !atomic_load(&forks_done)); i++) {
        size_t n = 1 + rand_r(&seed) % (i % 500 == 0 ? 100000 : 700);
        unsigned char *p = i % 2 ? calloc(1, n) : malloc(n);
        CHECK(p);
        if (i % 2)
            CHECK(p[0] == 0 && p[n - 1] == 0); /* calloc zeroes, whatever the block held */
        memset(p, t + 1, n);
        int k = rand_r(&seed) % 128;
        if (rand_r(&seed) % 2) {
            free(local[k]);
            local[k] = p;
            continue;
        }
        pthread_mutex_lock(&mine->mu);
        if (mine->len < RING) {
            mine->slot[(mine->head + mine->len) % RING] = p;
            mine->size[(mine->head + mine->len) % RING] = n;
            mine->len++;
            p = NULL;
        }
        pthread_mutex_unlock(&mine->mu);
        free(p);
        pthread_mutex_lock(&next->mu);
        if (next->len > 0) {
            unsigned char *q = next->slot[next->head];
            size_t qn = next->size[next->head];
            next->head = (next->head + 1) % RING;
            next->len--;
            pthread_mutex_unlock(&next->mu);
            CHECK(malloc_usable_size(q) == qn);
            CHECK(q[0] == (unsigned char)((t + 1) % THREADS + 1) && q[qn - 1] == q[0]);
            free(q);
        } else {
            pthread_mutex_unlock(&next->mu);
        }
    }
    for (int k = 0; k < 128; k++) free(local[k]);
    /* Exit with blocks in the quarantine, and one block that main frees. */
    return malloc(1);
}

/* A child forked while the mixers run: allocates, checks and frees (small and large
 * blocks, in a thread of its own too) and frees the block the parent allocated before
 * the fork. Returns its exit status (0: all well). */
static void *child_churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        size_t n = 1 + (size_t)i % 900 * (i % 1000 == 0 ? 200 : 1);
        unsigned char *p = malloc(n);
        if (!p) return (void *)1;
        memset(p, 0x3c, n);
        if (p[0] != 0x3c || p[n - 1] != 0x3c) return (void *)1;
        free(p);
    }
    return NULL;
}

static int child_after_fork(unsigned char *before, size_t before_n) {
    alarm(20); /* a deadlocked child dies of SIGALRM, which the parent reports */
    if (child_churn(NULL)) return 2;
    pthread_t t;
    void *r = (void *)1;
    if (pthread_create(&t, NULL, child_churn, NULL) != 0 || pthread_join(t, &r) != 0 || r)
        return 3;
    for (size_t i = 0; i < before_n; i++)
        if (before[i] != 0xbf) return 4;
    free(before);
    return 0;
}

static void fork_and_wait(int f) {
    size_t before_n = 50 + (size_t)f * 3000;
    unsigned char *before = malloc(before_n);
    CHECK(before);
    memset(before, 0xbf, before_n);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(child_after_fork(before, before_n));
    free(before);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "fork %d: child %s %d\n", f,
                WIFSIGNALED(st) ? "killed by signal" : "exited with",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        exit(1);
    }
}

static void *leaker(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) {
        char *p = malloc(777);
        p[0] = 1;
    }
    return NULL;
}

static void *g_ptr;
static pthread_barrier_t bar;

static void *alloc_and_wait(void *arg) {
    g_ptr = malloc(48);
    memset(g_ptr, 1, 48);
    if (arg) {
        free(g_ptr);
        /* Push it out of this thread's quarantine (4096 blocks / 64 KiB): it goes
         * back to the heap's free list. */
        for (int i = 0; i < 3000; i++) free(malloc(48));
    }
    pthread_barrier_wait(&bar); /* the block is ready */
    pthread_barrier_wait(&bar); /* stay alive while the other thread acts */
    return NULL;
}

static void *free_g(void *arg) {
    (void)arg;
    free(g_ptr);
    return NULL;
}

static void run_pair(int freed_first, void (*act)(void)) {
    pthread_t a;
    pthread_barrier_init(&bar, NULL, 2);
    pthread_create(&a, NULL, alloc_and_wait, freed_first ? (void *)1 : NULL);
    pthread_barrier_wait(&bar);
    act();
    pthread_barrier_wait(&bar);
    pthread_join(a, NULL);
}

static void act_free_neighbour(void) {
    free((char *)g_ptr + 64); /* the class-48 stride is 64 bytes */
}
static void act_free(void) {
    free(g_ptr);
}
static void act_usable_size(void) {
    malloc_usable_size(g_ptr);
}

static void *write_after_free_and_exit(void *arg) {
    (void)arg;
    char *p = malloc(48);
    memset(p, 1, 48);
    free(p);
    p[8] = 'A';
    return NULL; /* exit: the quarantine batch (with p) is handed back */
}

static void *overflow_writer(void *arg) {
    (void)arg;
    char *p = malloc(40);
    /* One byte too many. An even value: canary bytes are odd (never zero), so this
     * byte can never happen to equal the one it overwrites (an odd value would, one
     * time in 128). */
    memset(p, 2, 41);
    return p;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    pthread_t th[THREADS];
    if (!strcmp(c, "clean")) {
        for (int t = 0; t < THREADS; t++) pthread_mutex_init(&rings[t].mu, NULL);
        for (int round = 0; round < 3; round++) {
            atomic_store(&fork_round, round == 1);
            atomic_store(&forks_done, 0);
            for (int t = 0; t < THREADS; t++)
                CHECK(pthread_create(&th[t], NULL, mixer, (void *)(intptr_t)t) == 0);
            if (round == 1) {
                /* fork while the mixers allocate, free and pass blocks around */
                for (int f = 0; f < 6; f++) {
                    usleep(2000);
                    fork_and_wait(f);
                }
                atomic_store(&forks_done, 1);
            }
            for (int t = 0; t < THREADS; t++) {
                void *r;
                pthread_join(th[t], &r);
                free(r);
            }
            if (round == 1)
                /* and with the exited threads' caches in whatever state they left */
                fork_and_wait(6);
        }
        for (int t = 0; t < THREADS; t++) {
            while (rings[t].len) {
                free(rings[t].slot[rings[t].head]);
                rings[t].head = (rings[t].head + 1) % RING;
                rings[t].len--;
            }
        }
        /* What the exited threads handed back is reused (all zero, as calloc needs). */
        for (int i = 0; i < 20000; i++) {
            size_t n = 1 + i % 700;
            unsigned char *p = calloc(1, n);
            for (size_t k = 0; k < n; k++) CHECK(p[k] == 0);
            free(p);
        }
        pthread_t l;
        pthread_create(&l, NULL, leaker, NULL);
        pthread_join(l, NULL);
        if (ox_hardened_check) ox_hardened_check();
        return 0;
    }
    if (!strcmp(c, "double_free")) {
        g_ptr = malloc(48);
        free(g_ptr);
        pthread_create(&th[0], NULL, free_g, NULL);
        pthread_join(th[0], NULL);
        return 0;
    }
    if (!strcmp(c, "never_handed_out")) {
        run_pair(0, act_free_neighbour);
        return 0;
    }
    if (!strcmp(c, "recycled_slot")) {
        run_pair(1, act_free);
        return 0;
    }
    if (!strcmp(c, "overflow")) {
        void *p;
        pthread_create(&th[0], NULL, overflow_writer, NULL);
        pthread_join(th[0], &p);
        free(p);
        return 0;
    }
    if (!strcmp(c, "write_after_free")) {
        pthread_create(&th[0], NULL, write_after_free_and_exit, NULL);
        pthread_join(th[0], NULL);
        ox_hardened_check();
        return 0;
    }
    if (!strcmp(c, "usable_size")) {
        run_pair(1, act_usable_size);
        return 0;
    }
    return 2;
}
