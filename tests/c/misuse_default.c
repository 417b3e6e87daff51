/*
 * misuse_default.c: the heap misuses the default liboxalloc must stop (issue 19), one
 * per run, selected by argv[1]. Each misuse case must end in SIGABRT with a report on
 * stderr; "foreign" (a pointer into another allocator's memory) must be reported once
 * and ignored, and "clean" (correct use of the sized frees) must exit 0 silently.
 * -O0 keeps the compiler from reasoning about the (deliberately) undefined frees.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* C23, not in every libc's headers or library: weak, so the program links against
 * glibc alone and finds oxalloc's when it is preloaded. */
void free_sized(void *p, size_t size) __attribute__((weak));
void free_aligned_sized(void *p, size_t align, size_t size) __attribute__((weak));

static char static_buf[64];
static void *volatile sink;

static void *free_on_thread(void *p) {
    free(p);
    return NULL;
}

static void free_elsewhere(void *p) {
    pthread_t t;
    pthread_create(&t, NULL, free_on_thread, p);
    pthread_join(t, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    const char *c = argv[1];
    char *p;
    if (!strcmp(c, "double_free_small")) {
        p = malloc(32);
        free(p);
        free(p);
    } else if (!strcmp(c, "double_free_small_other_thread")) {
        /* Caught when the block would be handed out a second time. */
        p = malloc(32);
        free(p);
        free_elsewhere(p);
        for (int i = 0; i < 1000; i++)
            sink = malloc(32);
    } else if (!strcmp(c, "double_free_small_both_other_thread")) {
        p = malloc(100);
        free_elsewhere(p);
        free_elsewhere(p);
        for (int i = 0; i < 1000; i++)
            sink = malloc(100);
    } else if (!strcmp(c, "double_free_small_later")) {
        /* Not at once: another free between the two; caught at a later malloc. */
        char *q = malloc(48);
        p = malloc(48);
        free(p);
        free(q);
        free(p);
        for (int i = 0; i < 1000; i++)
            sink = malloc(48);
    } else if (!strcmp(c, "double_free_large")) {
        p = malloc(256 << 10);
        free(p);
        free(p);
    } else if (!strcmp(c, "double_free_huge")) {
        sink = malloc(8 << 20);
        p = malloc(8 << 20);
        free(p);
        free(p);
    } else if (!strcmp(c, "interior_small")) {
        p = malloc(64);
        free(p + 16);
    } else if (!strcmp(c, "unaligned_small")) {
        p = malloc(64);
        free(p + 1);
    } else if (!strcmp(c, "interior_large")) {
        p = malloc(256 << 10);
        free(p + 4096);
    } else if (!strcmp(c, "interior_huge")) {
        p = malloc(8 << 20);
        free(p + (1 << 20));
    } else if (!strcmp(c, "never_handed_out")) {
        p = malloc(16);
        free(p + 16 * 1000);
    } else if (!strcmp(c, "stack")) {
        char local[64];
        sink = local;
        free(sink);
    } else if (!strcmp(c, "static")) {
        free(static_buf);
    } else if (!strcmp(c, "literal")) {
        free((void *)"a string literal");
    } else if (!strcmp(c, "wild")) {
        /* Below 4 MiB, where a non-PIE executable starts (a static musl program's
         * image, liboxalloc's tables included, reaches past 0x2000000). */
        free((void *)0x123450);
    } else if (!strcmp(c, "high_alias")) {
        /* 2^47 above a live block: no user mapping there; on x86-64 the segment map is
         * indexed modulo 2^47, so this names the block's own segment and offset. */
        p = malloc(48);
        free(p + (1ULL << 47));
    } else if (!strcmp(c, "high_alias_large")) {
        p = malloc(256 << 10);
        free(p + (1ULL << 47));
    } else if (!strcmp(c, "realloc_freed")) {
        p = malloc(40);
        free(p);
        sink = realloc(p, 80);
    } else if (!strcmp(c, "realloc_interior")) {
        p = malloc(40);
        sink = realloc(p + 16, 80);
    } else if (!strcmp(c, "realloc_stack")) {
        char local[64];
        sink = local;
        sink = realloc(sink, 128);
    } else if (!strcmp(c, "usable_size_interior")) {
        p = malloc(100);
        sink = (void *)malloc_usable_size(p + 8);
    } else if (!strcmp(c, "free_sized_wrong")) {
        p = malloc(32);
        free_sized(p, 1000);
    } else if (!strcmp(c, "free_aligned_sized_wrong")) {
        p = aligned_alloc(64, 64);
        free_aligned_sized(p, 64, 4000);
    } else if (!strcmp(c, "foreign")) {
        /* Memory of "another allocator": a mapping oxalloc did not make. */
        char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        free(m + 64);
        free(m + 128);
        sink = realloc(m + 256, 10); /* refused: NULL, the memory untouched */
        printf("foreign: went on, realloc %s\n", sink ? "moved" : "refused");
    } else if (!strcmp(c, "clean")) {
        p = malloc(64);
        char *q = realloc(p, 40); /* stays in place */
        free_sized(q, 40);
        p = malloc(24);
        free_sized(p, 24);
        p = aligned_alloc(256, 100);
        free_aligned_sized(p, 256, 100);
        p = malloc(300 << 10);
        free_sized(p, 300 << 10);
        p = malloc(3 << 20);
        free_sized(p, 3 << 20);
        /* A block whose data happens to hold what a free block's second word would. */
        uintptr_t *a = malloc(32);
        free(a);
        uintptr_t key = a[1];
        uintptr_t *b = malloc(32);
        b[1] = key;
        free(b);
        printf("clean: ok\n");
    } else {
        fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    printf("survived %s\n", c);
    return 0;
}
