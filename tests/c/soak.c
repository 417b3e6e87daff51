/*
 * soak.c: a long run of everything a malloc must survive at once; scripts/soak.sh
 * builds it and runs it under LD_PRELOAD of liboxalloc.so and liboxalloc_hardened.so.
 *
 * Usage: soak SECONDS [--expect-lib NAME]
 *   --expect-lib NAME  fail unless a mapping named NAME is in /proc/self/maps (so a
 *                      preload that did not take cannot pass as a run of oxalloc),
 *                      and unless oxalloc's purger thread ran
 *
 * What runs, until SECONDS have passed:
 *   - rounds of 2 to 12 worker threads, created and joined; each runs for its own
 *     50-250 ms, so threads exit while others go on, and each exits holding blocks it
 *     hands to the others;
 *   - each worker mallocs, callocs (checked zero), posix_memaligns (checked aligned),
 *     reallocs (the preserved prefix checked) and frees blocks of 1 B to 48 MiB;
 *     every block is filled with a pattern derived from its address and size and
 *     checked before it is freed or resized;
 *   - blocks pass between threads through a shared array (a mutex per stripe), so
 *     most frees of handed-over blocks cross threads, and blocks of exited threads
 *     are freed by the next round's;
 *   - a side thread forks every 20-80 ms from this threaded process: the child (under
 *     alarm(10)) allocates, checks and frees, starts a thread that does the same,
 *     checks and frees a block the parent allocated before the fork, exits 0;
 *   - a side thread calls malloc_trim(0) every 5-30 ms, racing the workers' reuse of
 *     the pages it gives back; the allocator's own purger thread runs as usual (its
 *     thread is checked to be there at the end).
 * The first corruption (a wrong byte, a calloc block not zero, NULL from an
 * allocation that must succeed, a misaligned block, a child that fails or hangs)
 * ends the run at once with a message and exit status 1. At the end it prints the
 * operations done.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_WORKERS = 12,
    OWN = 128,              /* blocks a worker holds */
    SHARED = 1024,          /* blocks in flight between threads */
    STRIPES = 64,           /* mutexes over the shared array */
    DENSE = 256 << 10,      /* blocks up to this are filled and checked whole */
    EDGE = 64 << 10,        /* bigger ones: this much at each end, a word per page */
};
/* Most bytes in blocks of 1 MiB and more alive at once (the machine is shared). */
#define BIG_CAP ((size_t)512 << 20)

struct blk {
    unsigned char *p;
    size_t n;
    int owner; /* worker that allocated it (remote frees are counted) */
};

static struct blk shared[SHARED];
static pthread_mutex_t stripe[STRIPES];

static atomic_ulong n_malloc, n_calloc, n_aligned, n_realloc, n_free, n_remote_free;
static atomic_ulong n_threads, n_rounds, n_forks, n_trims;
static atomic_size_t big_live;
static atomic_int stop_side, next_worker_id;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The first failure ends the process: report it (async-signal-safe, usable in a fork
 * child) and _exit(1). */
static void fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    /* One report: a second thread that fails meanwhile waits for the exit. */
    static atomic_int failed;
    if (atomic_exchange(&failed, 1))
        for (;;)
            pause();
    static const char head[] = "soak: FAILED: ";
    if (write(2, head, sizeof head - 1) < 0 || write(2, buf, (size_t)n) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

/* ---- the pattern: 8-byte words derived from the block's address, size and offset */

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t key_of(const void *p, size_t n)
{
    return mix((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL ^ (uint64_t)n);
}

/* The offsets of the words a block of n bytes carries: all of them up to DENSE bytes;
 * above, the first and last EDGE bytes and the first word of every page between. */
static inline size_t next_off(size_t n, size_t off)
{
    if (n <= DENSE)
        return off + 8;
    size_t tail = (n - EDGE) & ~(size_t)7;
    if (off < EDGE || off >= tail)
        return off + 8;
    size_t nx = (off + 4096) & ~(size_t)4095;
    return nx > tail ? tail : nx;
}

static void fill(unsigned char *p, size_t n)
{
    uint64_t key = key_of(p, n);
    for (size_t off = 0; off < n; off = next_off(n, off)) {
        uint64_t w = mix(key + off);
        memcpy(p + off, &w, n - off < 8 ? n - off : 8);
    }
}

/* Checks the pattern of a block of n bytes filled under `key` (key_of its address
 * and size then), now at q: only its first `upto` bytes (a realloc keeps the prefix). */
static void check_key(const unsigned char *q, uint64_t key, size_t n, size_t upto,
                      const char *what)
{
    for (size_t off = 0; off < upto; off = next_off(n, off)) {
        uint64_t w = mix(key + off);
        size_t k = upto - off < 8 ? upto - off : 8;
        if (memcmp(q + off, &w, k) != 0) {
            uint64_t got = 0;
            memcpy(&got, q + off, k);
            fail("%s: block %p (%zu bytes when filled) corrupted at offset %zu: "
                 "%016llx, expected %016llx (%zu bytes compared)",
                 what, (const void *)q, n, off, (unsigned long long)got,
                 (unsigned long long)w, k);
        }
    }
}

/* Checks a whole block (p, n) filled where it is. */
static void check(const unsigned char *p, size_t n, const char *what)
{
    check_key(p, key_of(p, n), n, n, what);
}

static void check_zero(const unsigned char *p, size_t n)
{
    for (size_t off = 0; off < n; off = next_off(n, off)) {
        static const unsigned char zero[8];
        size_t k = n - off < 8 ? n - off : 8;
        if (memcmp(p + off, zero, k) != 0)
            fail("calloc(%zu) = %p: byte not zero at offset %zu", n, (const void *)p, off);
    }
}

/* ---- sizes */

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned k = (unsigned)(r % 10000);
    size_t x = (size_t)(r >> 20);
    /* Mostly small, as programs allocate; the big ones cost page faults and purges
     * (kernel time), so they are rarer: 1.6% 64 KiB-1 MiB, 0.38% 1-8 MiB, 0.02%
     * 8-48 MiB. */
    if (k < 6000)
        return 1 + x % 256;
    if (k < 8700)
        return 257 + x % (4096 - 256);
    if (k < 9800)
        return 4097 + x % ((64 << 10) - 4096);
    if (k < 9960)
        return (64 << 10) + 1 + x % ((1 << 20) - (64 << 10));
    if (k < 9998)
        return ((size_t)1 << 20) + x % ((size_t)7 << 20);
    return ((size_t)8 << 20) + x % ((size_t)40 << 20);
}

/* Reserves room for a block of n bytes under BIG_CAP; false: pick a smaller size. */
static int reserve_big(size_t n)
{
    if (n < ((size_t)1 << 20))
        return 1;
    size_t cur = atomic_load(&big_live);
    while (cur + n <= BIG_CAP)
        if (atomic_compare_exchange_weak(&big_live, &cur, cur + n))
            return 1;
    return 0;
}

static void unreserve_big(size_t n)
{
    if (n >= ((size_t)1 << 20))
        atomic_fetch_sub(&big_live, n);
}

/* ---- one worker's operations */

struct counts {
    unsigned long malloc, calloc, aligned, realloc, free, remote_free;
};

static void release(struct blk *b, int me, struct counts *c, const char *what)
{
    if (!b->p)
        return;
    check(b->p, b->n, what);
    free(b->p);
    unreserve_big(b->n);
    c->free++;
    c->remote_free += b->owner != me;
    b->p = NULL;
}

static void allocate(struct blk *b, uint64_t *rng, int me, struct counts *c)
{
    size_t n = pick_size(rng);
    if (!reserve_big(n))
        n = 1 + n % 4096;
    unsigned kind = (unsigned)(rng_next(rng) % 10);
    unsigned char *p;
    if (kind < 6) {
        p = malloc(n);
        c->malloc++;
        if (!p)
            fail("malloc(%zu) returned NULL", n);
    } else if (kind < 9) {
        p = calloc(1, n);
        c->calloc++;
        if (!p)
            fail("calloc(1, %zu) returned NULL", n);
        check_zero(p, n);
    } else {
        size_t align = (size_t)1 << (4 + rng_next(rng) % 13); /* 16 B to 64 KiB */
        void *q = NULL;
        int e = posix_memalign(&q, align, n);
        c->aligned++;
        if (e != 0 || !q)
            fail("posix_memalign(%zu, %zu) failed: %d", align, n, e);
        if ((uintptr_t)q % align)
            fail("posix_memalign(%zu, %zu) = %p: misaligned", align, n, q);
        p = q;
    }
    if (malloc_usable_size(p) < n)
        fail("malloc_usable_size(%p) = %zu < %zu", (void *)p, malloc_usable_size(p), n);
    fill(p, n);
    b->p = p;
    b->n = n;
    b->owner = me;
}

static void resize(struct blk *b, uint64_t *rng, int me, struct counts *c)
{
    uint64_t r = rng_next(rng);
    size_t n2;
    switch (r % 4) {
    case 0: n2 = pick_size(rng); break;                 /* anything */
    case 1: n2 = b->n + 1 + (size_t)(r >> 8) % (b->n / 2 + 16); break; /* grow */
    case 2: n2 = 1 + b->n / 2 + (size_t)(r >> 8) % (b->n / 2 + 1); break; /* shrink */
    default: n2 = b->n + (size_t)(r >> 8) % 64; break;  /* a few bytes more */
    }
    if (n2 > b->n && !reserve_big(n2))
        n2 = 1 + b->n / 2; /* over the cap: shrink instead */
    if (n2 <= b->n && n2 >= ((size_t)1 << 20))
        atomic_fetch_add(&big_live, n2); /* shrinking stays under the cap */
    uint64_t key = key_of(b->p, b->n);
    uintptr_t old = (uintptr_t)b->p;
    unsigned char *q = realloc(b->p, n2);
    c->realloc++;
    if (!q)
        fail("realloc(%p, %zu) returned NULL", (void *)b->p, n2);
    unreserve_big(b->n);
    check_key(q, key, b->n, b->n < n2 ? b->n : n2, "realloc");
    if (malloc_usable_size(q) < n2)
        fail("realloc: malloc_usable_size(%p) = %zu < %zu", (void *)q, malloc_usable_size(q), n2);
    fill(q, n2);
    if ((uintptr_t)q != old)
        b->owner = me;
    b->p = q;
    b->n = n2;
}

/* Swaps b with a random slot of the shared array. */
static void exchange(struct blk *b, uint64_t *rng)
{
    size_t j = (size_t)(rng_next(rng) % SHARED);
    pthread_mutex_t *m = &stripe[j % STRIPES];
    pthread_mutex_lock(m);
    struct blk t = shared[j];
    shared[j] = *b;
    *b = t;
    pthread_mutex_unlock(m);
}

struct worker_arg {
    uint64_t seed;
    double until;
};

static void *worker(void *argp)
{
    struct worker_arg *arg = argp;
    uint64_t rng = arg->seed | 1;
    int me = atomic_fetch_add(&next_worker_id, 1);
    struct blk own[OWN];
    memset(own, 0, sizeof own);
    struct counts c = {0};
    for (unsigned long i = 0;; i++) {
        if (i % 256 == 0 && now() > arg->until)
            break;
        uint64_t r = rng_next(&rng);
        struct blk *b = &own[(r >> 8) % OWN];
        unsigned k = (unsigned)(r % 100);
        if (k < 40) {
            release(b, me, &c, "free before reuse");
            allocate(b, &rng, me, &c);
        } else if (k < 55) {
            if (b->p)
                resize(b, &rng, me, &c);
            else
                allocate(b, &rng, me, &c);
        } else if (k < 80) {
            /* Hand a block over and free (3 times in 4) or keep what comes back:
             * usually another thread's block. */
            exchange(b, &rng);
            if (b->p && rng_next(&rng) % 4)
                release(b, me, &c, "free of a handed-over block");
        } else {
            release(b, me, &c, "free");
        }
    }
    /* Exit holding blocks: a quarter go to the shared array for the threads that are
     * still running or come next. */
    for (int k = 0; k < OWN; k++) {
        if (own[k].p && k % 4 == 0)
            exchange(&own[k], &rng);
        release(&own[k], me, &c, "free at thread exit");
    }
    atomic_fetch_add(&n_malloc, c.malloc);
    atomic_fetch_add(&n_calloc, c.calloc);
    atomic_fetch_add(&n_aligned, c.aligned);
    atomic_fetch_add(&n_realloc, c.realloc);
    atomic_fetch_add(&n_free, c.free);
    atomic_fetch_add(&n_remote_free, c.remote_free);
    atomic_fetch_add(&n_threads, 1);
    return NULL;
}

/* ---- side threads: fork, malloc_trim */

/* What a fork child does: blocks of all sizes (big ones capped: the child is a copy
 * of a process that may hold hundreds of MiB) filled, checked, resized and freed. */
static void *child_work(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
    struct blk b[64];
    memset(b, 0, sizeof b);
    for (int i = 0; i < 1000; i++) {
        struct blk *x = &b[rng_next(&rng) % 64];
        if (x->p && rng_next(&rng) % 3 == 0) {
            size_t n2 = 1 + (size_t)(rng_next(&rng) % 100000);
            uint64_t key = key_of(x->p, x->n);
            unsigned char *q = realloc(x->p, n2);
            if (!q)
                fail("fork child: realloc(%zu) returned NULL", n2);
            check_key(q, key, x->n, x->n < n2 ? x->n : n2, "fork child realloc");
            fill(q, n2);
            x->p = q;
            x->n = n2;
            continue;
        }
        if (x->p) {
            check(x->p, x->n, "fork child free");
            free(x->p);
        }
        size_t n = pick_size(&rng);
        if (n > ((size_t)4 << 20))
            n = 1 + n % ((size_t)4 << 20);
        x->p = malloc(n);
        if (!x->p)
            fail("fork child: malloc(%zu) returned NULL", n);
        x->n = n;
        fill(x->p, n);
    }
    for (int k = 0; k < 64; k++) {
        if (b[k].p) {
            check(b[k].p, b[k].n, "fork child free at exit");
            free(b[k].p);
        }
    }
    return NULL;
}

static void *forker(void *arg)
{
    uint64_t rng = 0xF0F0F0F0ULL;
    (void)arg;
    while (!atomic_load(&stop_side)) {
        usleep(20000 + (useconds_t)(rng_next(&rng) % 60000));
        size_t n = 1 + (size_t)(rng_next(&rng) % 200000);
        unsigned char *before = malloc(n);
        if (!before)
            fail("malloc(%zu) before fork returned NULL", n);
        fill(before, n);
        pid_t pid = fork();
        if (pid < 0)
            fail("fork failed");
        if (pid == 0) {
            alarm(10); /* a deadlocked child dies of SIGALRM, which the parent reports */
            child_work((void *)(uintptr_t)rng_next(&rng));
            pthread_t t;
            if (pthread_create(&t, NULL, child_work, (void *)(uintptr_t)rng_next(&rng)) != 0 ||
                pthread_join(t, NULL) != 0)
                fail("fork child: cannot run a thread");
            check(before, n, "fork child: the parent's pre-fork block");
            free(before);
            _exit(0);
        }
        check(before, n, "the parent's block after fork");
        free(before);
        int st = 0;
        if (waitpid(pid, &st, 0) != pid)
            fail("waitpid(%d) failed", (int)pid);
        if (WIFSIGNALED(st))
            fail("fork child %d killed by signal %d%s", (int)pid, WTERMSIG(st),
                 WTERMSIG(st) == SIGALRM ? " (SIGALRM: it hung)" : "");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("fork child %d exited with %d", (int)pid, WEXITSTATUS(st));
        atomic_fetch_add(&n_forks, 1);
    }
    return NULL;
}

static void *trimmer(void *arg)
{
    uint64_t rng = 0x7777ULL;
    (void)arg;
    while (!atomic_load(&stop_side)) {
        usleep(5000 + (useconds_t)(rng_next(&rng) % 25000));
        malloc_trim(0);
        atomic_fetch_add(&n_trims, 1);
    }
    return NULL;
}

static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, name) != NULL;
    fclose(f);
    return found;
}

/* Threads of this process that are not ours: the allocator's purger. */
static int helper_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n - 1; /* all but main */
}

static void summary(FILE *f, const char *what, double elapsed)
{
    unsigned long m = atomic_load(&n_malloc), ca = atomic_load(&n_calloc),
                  al = atomic_load(&n_aligned), re = atomic_load(&n_realloc),
                  fr = atomic_load(&n_free);
    fprintf(f,
            "soak: %s %.0f s: %lu operations (malloc %lu, calloc %lu, posix_memalign %lu, "
            "realloc %lu, free %lu of which %lu by another thread), %lu threads in %lu "
            "rounds, %lu forks, %lu malloc_trim\n",
            what, elapsed, m + ca + al + re + fr, m, ca, al, re, fr,
            atomic_load(&n_remote_free), atomic_load(&n_threads), atomic_load(&n_rounds),
            atomic_load(&n_forks), atomic_load(&n_trims));
    fflush(f);
}

int main(int argc, char **argv)
{
    if (argc < 2 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: soak SECONDS [--expect-lib NAME]\n");
        return 2;
    }
    int seconds = atoi(argv[1]);
    const char *expect_lib = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--expect-lib") && i + 1 < argc) {
            expect_lib = argv[i + 1];
            if (!mapped(argv[i + 1]))
                fail("%s is not mapped: the allocator under test was not loaded", argv[i + 1]);
            i++;
        } else {
            fprintf(stderr, "soak: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    alarm((unsigned)seconds + 120); /* a hang ends the run (SIGALRM) instead of CI */
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripe[i], NULL);

    pthread_t fork_thread, trim_thread;
    if (pthread_create(&fork_thread, NULL, forker, NULL) != 0 ||
        pthread_create(&trim_thread, NULL, trimmer, NULL) != 0)
        fail("cannot start the side threads");

    double start = now(), end = start + seconds, next_report = start + 30;
    uint64_t rng = (uint64_t)time(NULL) * 2654435761ULL | 1;
    fprintf(stderr, "soak: seed %llu\n", (unsigned long long)rng);
    while (now() < end) {
        int nw = 2 + (int)(rng_next(&rng) % (MAX_WORKERS - 1));
        pthread_t th[MAX_WORKERS];
        struct worker_arg args[MAX_WORKERS];
        for (int i = 0; i < nw; i++) {
            args[i].seed = rng_next(&rng);
            args[i].until = now() + 0.05 + (double)(rng_next(&rng) % 200) * 0.001;
            if (pthread_create(&th[i], NULL, worker, &args[i]) != 0)
                fail("pthread_create failed");
        }
        for (int i = 0; i < nw; i++)
            if (pthread_join(th[i], NULL) != 0)
                fail("pthread_join failed");
        atomic_fetch_add(&n_rounds, 1);
        if (now() > next_report) {
            summary(stderr, "after", now() - start);
            next_report += 30;
        }
    }
    atomic_store(&stop_side, 1);
    pthread_join(fork_thread, NULL);
    pthread_join(trim_thread, NULL);
    /* What the last round left in flight. */
    struct counts c = {0};
    for (int j = 0; j < SHARED; j++)
        release(&shared[j], -1, &c, "free of a block left in flight");
    atomic_fetch_add(&n_free, c.free);
    atomic_fetch_add(&n_remote_free, c.remote_free);
    malloc_trim(0);
    /* oxalloc's purger starts on the first large free and stays: it must have run
     * beside the workers (unless OXALLOC_BACKGROUND_PURGE=0 turned it off). */
    int helpers = helper_threads();
    const char *bg = getenv("OXALLOC_BACKGROUND_PURGE");
    if (expect_lib && helpers < 1 && !(bg && !strcmp(bg, "0")))
        fail("no allocator thread beside main: the purger did not run");
    summary(stdout, "ok:", now() - start);
    printf("soak: %d allocator thread(s) beside main at the end (the purger)\n", helpers);
    return 0;
}
