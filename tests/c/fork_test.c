/*
 * fork_test.c: fork() from a multi-threaded process that allocates.
 *
 * Four worker threads malloc/realloc/free blocks of random sizes in a loop (and pass
 * some to each other, so frees cross threads) while the main thread forks 20
 * children. Each child, under alarm(20) so that a deadlock becomes a failure:
 *   - mallocs, fills, checks and frees blocks of many sizes (small to 2 MiB);
 *   - starts a new thread that does the same, and joins it;
 *   - frees a block the parent allocated before the fork;
 *   - exits 0 only if all of that worked.
 * The parent waits for each child and checks that it exited 0.
 * Pass --expect-so to also check that liboxalloc.so is mapped.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define WORKERS 4
#define FORKS 20

static atomic_int stop;
static _Atomic(void *) mailbox[WORKERS];

static void *worker(void *arg)
{
    uint64_t rng = 0x1234567ULL + (uintptr_t)arg;
    int id = (int)(uintptr_t)arg;
    void *keep[64] = {0};
    size_t keep_n[64] = {0};
    while (!atomic_load(&stop)) {
        int i = (int)(rng_next(&rng) % 64);
        if (keep[i]) {
            if (verify(keep[i], keep_n[i], (uint32_t)keep_n[i]) != SIZE_MAX) {
                fprintf(stderr, "fork_test: worker %d: block corrupted\n", id);
                abort();
            }
            /* Hand some blocks to the next worker, who frees them. */
            void *old = atomic_exchange(&mailbox[(id + 1) % WORKERS], keep[i]);
            free(old);
            keep[i] = NULL;
        } else {
            size_t n = (size_t)(rng_next(&rng) % (rng_next(&rng) % 64 == 0 ? 100000 : 1000));
            keep[i] = malloc(n);
            if (!keep[i]) {
                fprintf(stderr, "fork_test: worker %d: malloc(%zu) failed\n", id, n);
                abort();
            }
            keep_n[i] = n;
            fill(keep[i], n, (uint32_t)n);
        }
        free(atomic_exchange(&mailbox[id], NULL));
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return NULL;
}

/* Allocation work for a child; returns the number of failures. */
static int child_work(uint64_t seed)
{
    int bad = 0;
    void *blocks[200];
    size_t sizes[200];
    uint64_t rng = seed;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 200; i++) {
            sizes[i] = (size_t)(rng_next(&rng) % (i % 100 == 0 ? ((size_t)2 << 20) : 5000));
            blocks[i] = malloc(sizes[i]);
            if (!blocks[i]) {
                bad++;
                continue;
            }
            fill(blocks[i], sizes[i], (uint32_t)i);
        }
        for (int i = 0; i < 200; i++) {
            if (blocks[i] && verify(blocks[i], sizes[i], (uint32_t)i) != SIZE_MAX)
                bad++;
            if (i % 3 == 0)
                blocks[i] = realloc(blocks[i], sizes[i] + 100);
            free(blocks[i]);
        }
    }
    return bad;
}

static void *child_thread(void *arg)
{
    return (void *)(uintptr_t)child_work((uintptr_t)arg);
}

int main(int argc, char **argv)
{
    expect_mapping(argc, argv);
    alarm(50); /* the whole test normally takes a few seconds */
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) == 0, "pthread_create");

    for (int f = 0; f < FORKS; f++) {
        char *before = malloc(1000 + (size_t)f * 100);
        strcpy(before, "allocated by the parent before fork");
        usleep(2000); /* let the workers get into their loops */
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            alarm(20); /* a deadlocked child dies of SIGALRM, which the parent sees */
            int bad = child_work((uint64_t)f + 1);
            pthread_t t;
            void *ret = NULL;
            if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(f + 100)) != 0 ||
                pthread_join(t, &ret) != 0)
                bad++;
            bad += (int)(uintptr_t)ret;
            if (strcmp(before, "allocated by the parent before fork") != 0)
                bad++;
            free(before);
            char *s = strdup("child");
            bad += s == NULL;
            free(s);
            exit(bad ? 1 : 0);
        }
        free(before);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        if (WIFSIGNALED(status))
            CHECK(0, "child %d killed by signal %d%s", f, WTERMSIG(status),
                  WTERMSIG(status) == SIGALRM ? " (SIGALRM: it hung)" : "");
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d exited with %d", f, WEXITSTATUS(status));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(th[i], NULL) == 0, "pthread_join");
    for (int i = 0; i < WORKERS; i++)
        free(atomic_exchange(&mailbox[i], NULL));
    return finish("fork_test");
}
