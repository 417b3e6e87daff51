/* One misuse per run, selected by argv[1]. Each case must end in SIGABRT with an
 * oxalloc report (or SIGSEGV where a guard page / freed large block is touched). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>

/* Weak: resolved at run time from the hardened library (preloaded or linked). */
void free_sized(void *p, size_t n) __attribute__((weak));
void free_aligned_sized(void *p, size_t a, size_t n) __attribute__((weak));
size_t ox_hardened_check(void) __attribute__((weak));

static char static_buf[64] __attribute__((aligned(16)));
#define SMALL 48
#define LARGE (256 * 1024)

static volatile char sink;

static void cycle_quarantine(void) {
    /* Enough frees to push every quarantined block out of the thread's quarantine
     * (at most 4096 blocks / 64 KiB). */
    for (int i = 0; i < 10000; i++) {
        void *q = malloc(32);
        free(q);
        q = malloc(SMALL);
        free(q);
    }
}

/* Frees and allocates large blocks of one size (80 KiB) until their mappings are being
 * reused (more rounds than the large quarantine holds), so a freed block of that
 * size keeps its pages. Returns a block from a reused mapping, checked to read as
 * zero (no byte of the blocks before it). */
#define REUSED (80 * 1024)
static char *reused_large(void) {
    /* 300 x 80 KiB: all of them fit in what freed large blocks may keep resident. */
    char *held[300];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 300; i++) {
            held[i] = malloc(REUSED);
            memset(held[i], 0x5A, REUSED);
        }
        for (int i = 0; i < 300; i++) free(held[i]);
    }
    char *r = malloc(REUSED);
    for (size_t i = 0; i < REUSED; i++) {
        if (r[i] != 0) {
            fprintf(stderr, "stale byte 0x%x at %zu of a reused large block\n", r[i] & 0xff, i);
            exit(3);
        }
    }
    return r;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    size_t n = strstr(c, "large") ? LARGE : SMALL;
    char *p = malloc(n);
    memset(p, 1, n);
    if (!strcmp(c, "double_free_small") || !strcmp(c, "double_free_large")) {
        free(p); free(p);
    } else if (!strcmp(c, "invalid_free_stack")) {
        char local[32] __attribute__((aligned(16)));
        sink = local[0];
        free(local);
    } else if (!strcmp(c, "invalid_free_static")) {
        free(static_buf);
    } else if (!strcmp(c, "interior_small") || !strcmp(c, "interior_large")) {
        free(p + (n == SMALL ? 16 : 4096));
    } else if (!strcmp(c, "unaligned_small") || !strcmp(c, "unaligned_large")) {
        free(p + 1);
    } else if (!strcmp(c, "never_handed_out")) {
        /* The neighbouring block (a 48-byte request takes a 64-byte block), which
         * malloc never returned. */
        free(p + 64);
    } else if (!strcmp(c, "write_after_free_small")) {
        free(p);
        p[8] = 'A';
        cycle_quarantine();
    } else if (!strcmp(c, "write_after_free_check")) {
        free(p);
        p[0] = 'B';
        ox_hardened_check();
    } else if (!strcmp(c, "write_after_free_trim")) {
        free(p);
        p[5] = 'C';
        malloc_trim(0);
    } else if (!strcmp(c, "reused_large_read_after_free")) {
        char *r = reused_large();
        free(r);
        sink = r[100];
    } else if (!strcmp(c, "reused_large_double_free")) {
        char *r = reused_large();
        free(r);
        free(r);
    } else if (!strcmp(c, "read_after_free_large")) {
        free(p);
        sink = p[100];
    } else if (!strcmp(c, "write_after_free_large")) {
        free(p);
        p[100] = 1;
    } else if (!strcmp(c, "overflow_small") || !strcmp(c, "overflow_large_canary")) {
        char *q = malloc(n - 3);
        q[n - 3] = 'X'; /* one byte past the end */
        free(q);
    } else if (!strcmp(c, "overflow_large")) {
        memset(p, 0, n + 4096); /* runs into the guard page */
    } else if (!strcmp(c, "usable_size_bad")) {
        sink = (char)malloc_usable_size(p + 16);
    } else if (!strcmp(c, "usable_size_freed")) {
        free(p);
        sink = (char)malloc_usable_size(p);
    } else if (!strcmp(c, "realloc_freed_small") || !strcmp(c, "realloc_freed_large")) {
        free(p);
        p = realloc(p, 100);
    } else if (!strcmp(c, "realloc_invalid")) {
        p = realloc(static_buf, 100);
    } else if (!strcmp(c, "free_sized_freed")) {
        free(p);
        free_sized(p, n);
    } else if (!strcmp(c, "free_sized_wrong_small") || !strcmp(c, "free_sized_wrong_large")) {
        free_sized(p, n - 8);
    } else if (!strcmp(c, "free_aligned_sized_wrong_align")) {
        void *a = aligned_alloc(64, 128);
        free_aligned_sized(a, 128, 128);
    } else if (!strcmp(c, "free_aligned_sized_wrong_size")) {
        void *a = aligned_alloc(64, 128);
        free_aligned_sized(a, 64, 64);
    } else if (!strcmp(c, "freelist_foreign") || !strcmp(c, "freelist_interior")) {
        /* Run with OXALLOC_QUARANTINE=0: the freed block goes straight back to the
         * allocator's free list, linked through its first word; overwrite the link. */
        free(p);
        *(char **)p = !strcmp(c, "freelist_foreign") ? static_buf : p + 16;
        char *a = malloc(SMALL); /* p again */
        char *b = malloc(SMALL); /* whatever the overwritten link says */
        sink = a[0] + b[0];
    } else if (!strcmp(c, "underflow_into_metadata")) {
        /* The last byte before the heap's first data slice (64 KiB into the 4 MiB
         * segment that holds p), where an underflow out of the first block would
         * land: inaccessible, so the write faults. */
        char *seg = (char *)((uintptr_t)p & ~(uintptr_t)((4u << 20) - 1));
        seg[(64 << 10) - 1] = 1;
    } else if (!strcmp(c, "overflow_aligned")) {
        char *a = aligned_alloc(64, 40);
        a[40] = 'X'; /* one byte past the end of an over-aligned small block */
        free(a);
    } else if (!strcmp(c, "malloc0_access")) {
        char *z = malloc(0);
        sink = z[0];
    } else if (!strcmp(c, "malloc0_double_free")) {
        char *z = malloc(0);
        free(z); free(z);
    } else if (!strcmp(c, "overflow_1mib_small") || !strcmp(c, "overflow_1mib_medium")) {
        /* A linear write of 1 MiB past the end of a small block or a medium one (40000
         * bytes, several blocks a span): it must hit a guard slice (SIGSEGV) before it
         * ends. If it does not, say so without calling malloc (the heap is trashed). */
        size_t m = strstr(c, "small") ? 24 : 40000;
        char *q = malloc(m);
        memset(q, 'A', m + (1 << 20));
        write(1, "survived\n", 9);
        _exit(0);
    } else if (!strcmp(c, "unterminated_string")) {
        /* A C string that fills its block to the size asked for, without a terminator:
         * the byte after it is 0, so strlen stops there. Not a misuse report. */
        char *q = malloc(45);
        memset(q, 'a', 45);
        printf("strlen %zu\n", strlen(q));
        free(q);
    } else {
        fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    puts("survived");
    return 0;
}
