/* Correct use of the whole C API; must exit 0 under the hardened library.
 * argv[1] == "junk": prints what a fresh malloc(64) holds (0xAA with OXALLOC_JUNK=1).
 * argv[1] == "order": prints how random the order of 256 fresh blocks is.
 * argv[1] == "trim": prints what malloc_trim gave back after a burst of frees. */
#include <errno.h>
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

void free_sized(void *p, size_t n) __attribute__((weak));
void free_aligned_sized(void *p, size_t a, size_t n) __attribute__((weak));

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed line %d: %s\n", __LINE__, #c); exit(1); } } while (0)

/* Set once main has forked: the workers loop until then, so every fork happens while
 * all four allocate and free. */
static atomic_int forks_done;

static void *worker(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *live[256] = {0};
    for (int i = 0; i < 20000 || !atomic_load(&forks_done); i++) {
        int k = rand_r(&seed) % 256;
        if (live[k]) {
            CHECK(((unsigned char *)live[k])[0] == (unsigned char)k);
            free(live[k]);
        }
        size_t n = 1 + rand_r(&seed) % (i % 100 == 0 ? 200000 : 600);
        live[k] = malloc(n);
        CHECK(live[k]);
        memset(live[k], k, n);
    }
    for (int k = 0; k < 256; k++) free(live[k]);
    return NULL;
}

/* What a child forked from the threaded parent does: small and large blocks filled and
 * checked, a thread of its own that allocates, and the parent's pre-fork block, which
 * it reads and frees. Returns the exit status (0: all well). */
static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)i * 37 % 5000;
        unsigned char *p = malloc(n);
        if (!p) return (void *)1;
        memset(p, 0x5a, n);
        if (p[0] != 0x5a || p[n - 1] != 0x5a) return (void *)1;
        free(p);
    }
    return NULL;
}

static int child_after_fork(char *before, size_t before_n) {
    alarm(20); /* a deadlocked child dies of SIGALRM, which the parent reports */
    for (int round = 0; round < 3; round++) {
        static unsigned char *b[300];
        for (int i = 0; i < 300; i++) {
            size_t n = 1 + (size_t)(i * 7919 + round) % (i % 50 == 0 ? 300000 : 2000);
            b[i] = malloc(n);
            if (!b[i]) return 2;
            memset(b[i], i & 0xff, n);
            if (b[i][n - 1] != (unsigned char)(i & 0xff)) return 3;
        }
        for (int i = 0; i < 300; i++) {
            if (b[i][0] != (unsigned char)(i & 0xff)) return 4;
            free(b[i]);
        }
    }
    pthread_t t;
    void *r = (void *)1;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &r) != 0 || r)
        return 5;
    for (size_t i = 0; i < before_n; i++)
        if (before[i] != 'P') return 6;
    free(before);
    return 0;
}

/* Resident set size in KiB, from /proc/self/statm (pages). */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    CHECK(f && fscanf(f, "%ld %ld", &size, &resident) == 2);
    fclose(f);
    return resident * 4;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "junk")) {
        /* Prints what a fresh malloc(64) holds (0xaa with OXALLOC_JUNK=1, zero without)
         * and exits 0 either way: the test compares the line, so a crash cannot pass. */
        unsigned char *p = malloc(64);
        CHECK(p);
        int same = 1;
        for (int i = 1; i < 64; i++) same &= p[i] == p[0];
        unsigned char *z = calloc(1, 64);
        CHECK(z);
        for (int i = 0; i < 64; i++) CHECK(z[i] == 0);
        if (same)
            printf("fresh malloc(64): 64 bytes of 0x%02x\n", p[0]);
        else
            printf("fresh malloc(64): mixed bytes, first 0x%02x\n", p[0]);
        free(p); free(z);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "trim")) {
        /* Run with a long purge delay and no background purging, so freed memory stays
         * resident until malloc_trim gives it back. Prints the RSS drop in KiB. */
        enum { N = 20000 };
        static char *b[N];
        for (int i = 0; i < N; i++) {
            b[i] = malloc(1000);
            CHECK(b[i]);
            memset(b[i], 1, 1000);
        }
        for (int i = 0; i < N; i++) free(b[i]);
        long before = rss_kib();
        int released = malloc_trim(0);
        long after = rss_kib();
        printf("trim released %d drop %ld\n", released, before - after);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "order")) {
        /* 256 blocks of 200 bytes (224-byte blocks: 216 with the canary room) in a row:
         * print how many came right after the previous one, and the order of their
         * offsets from the lowest, as a hash. */
        enum { N = 256 };
        static char *b[N];
        for (int i = 0; i < N; i++) b[i] = malloc(200);
        char *lo = b[0];
        for (int i = 1; i < N; i++) if (b[i] < lo) lo = b[i];
        int next = 0;
        unsigned long long h = 1469598103934665603ull;
        for (int i = 0; i < N; i++) {
            if (i > 0 && b[i] - b[i - 1] == 224) next++;
            h = (h ^ (unsigned long long)(b[i] - lo)) * 1099511628211ull;
        }
        printf("adjacent %d order %llx\n", next, h);
        for (int i = 0; i < N; i++) free(b[i]);
        return 0;
    }
    /* malloc(0): unique, freeable. */
    void *z1 = malloc(0), *z2 = malloc(0);
    CHECK(z1 && z2 && z1 != z2);
    free(z1); free(z2);
    /* calloc zeroes and checks overflow. */
    unsigned char *c = calloc(100, 10);
    for (int i = 0; i < 1000; i++) CHECK(c[i] == 0);
    free(c);
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    /* realloc chains keep contents, small and large. */
    char *r = NULL;
    for (size_t n = 1; n < 300000; n = n * 3 / 2 + 1) {
        r = realloc(r, n);
        CHECK(r);
        r[n - 1] = 'x';
        r[0] = 'a';
    }
    CHECK(r[0] == 'a');
    for (size_t n = 300000; n > 1; n /= 3) {
        r = realloc(r, n);
        CHECK(r && r[0] == 'a');
    }
    CHECK(realloc(r, 0) == NULL);
    CHECK(reallocarray(NULL, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    /* Aligned allocations of every kind. */
    for (size_t a = 8; a <= 65536; a *= 2) {
        void *p = aligned_alloc(a, 3 * a);
        CHECK(p && (uintptr_t)p % a == 0);
        memset(p, 1, 3 * a);
        if (free_aligned_sized) free_aligned_sized(p, a, 3 * a); else free(p);
        void *q = NULL;
        CHECK(posix_memalign(&q, a, 100) == 0 && (uintptr_t)q % a == 0);
        free(q);
        q = memalign(a, 10);
        CHECK(q && (uintptr_t)q % a == 0);
        free(q);
    }
    /* Many small over-aligned blocks share pages (a size class whose blocks are
     * multiples of the alignment), rather than taking a guarded mapping each. */
    {
        enum { N = 1000 };
        static char *blk[N];
        size_t pages = 0;
        for (int i = 0; i < N; i++) {
            blk[i] = aligned_alloc(64, 64);
            CHECK(blk[i] && (uintptr_t)blk[i] % 64 == 0);
            memset(blk[i], 7, 64);
            int seen = 0;
            for (int j = 0; j < i && !seen; j++)
                seen = ((uintptr_t)blk[j] >> 12) == ((uintptr_t)blk[i] >> 12);
            pages += !seen;
        }
        CHECK(pages < N / 4);
        for (int i = 0; i < N; i++) {
            if (free_aligned_sized) free_aligned_sized(blk[i], 64, 64); else free(blk[i]);
        }
    }
    void *q;
    CHECK(posix_memalign(&q, 3, 10) == EINVAL);
    CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
    void *v = valloc(10);
    CHECK(v && (uintptr_t)v % 4096 == 0);
    free(v);
    v = pvalloc(10);
    CHECK(v && (uintptr_t)v % 4096 == 0);
    free(v);
    /* Sized frees with the right size, usable size, trim, mallinfo2. */
    char *s = malloc(77);
    CHECK(malloc_usable_size(s) >= 77);
    memset(s, 2, malloc_usable_size(s));
    if (free_sized) free_sized(s, 77); else free(s);
    CHECK(malloc_usable_size(NULL) == 0);
    free(NULL);
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    (void)mi;
    /* Threads, and fork while they allocate and free: the child can allocate (and
     * start a thread, and free what the parent allocated before the fork). */
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0);
    for (int f = 0; f < 8; f++) {
        usleep(2000); /* the workers are in their loops */
        size_t before_n = 100 + (size_t)f * 1000;
        char *before = malloc(before_n);
        CHECK(before);
        memset(before, 'P', before_n);
        fflush(stdout);
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
    atomic_store(&forks_done, 1);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
    puts("clean ok");
    return 0;
}
