/* brk_test: OXALLOC_PAGE_SOURCE=brk puts oxalloc's segments in the program break.
 *
 * Checks, with the library preloaded and the option set (argv[1] == "brk"):
 *  - small blocks come from the break: between the break at start and the break now;
 *  - the program's own sbrk() calls, mixed with malloc, keep working: its memory is
 *    intact and malloc goes on (falling back to mmap if needed);
 *  - after everything is freed, malloc_trim(0) moves the break back down.
 * With argv[1] == "mmap", blocks must NOT come from the break.
 * Prints "brk_test: ok" and exits 0 on success. */
#define _DEFAULT_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static uintptr_t cur_brk(void) { return (uintptr_t)syscall(SYS_brk, 0); }

#define FAIL(...) do { fprintf(stderr, "brk_test: FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

int main(int argc, char **argv) {
    int want_brk = argc > 1 && strcmp(argv[1], "brk") == 0;
    uintptr_t start = cur_brk();
    enum { N = 20000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(100 + i % 400);
        if (!blocks[i]) FAIL("malloc failed");
        memset(blocks[i], i & 0xff, 100);
    }
    uintptr_t grown = cur_brk();
    uintptr_t p = (uintptr_t)blocks[0];
    int in_brk = p >= start && p < grown;
    if (want_brk && !in_brk) FAIL("block %p not in the break [%#lx, %#lx)", (void *)p, start, grown);
    if (!want_brk && in_brk) FAIL("block %p in the break without OXALLOC_PAGE_SOURCE=brk", (void *)p);

    for (int i = 0; i < N; i++) {
        if (blocks[i][99] != (char)(i & 0xff)) FAIL("block %d corrupted", i);
        free(blocks[i]);
    }
    malloc_trim(0);
    uintptr_t trimmed = cur_brk();
    if (want_brk && trimmed >= grown) FAIL("break did not shrink: %#lx -> %#lx", grown, trimmed);

    /* The program grows the break itself, then mallocs again: oxalloc's new segments
     * go above the program's memory, and giving them back never cuts into it. */
    char *mine = sbrk(64 * 1024);
    if (mine == (void *)-1) FAIL("sbrk failed");
    memset(mine, 0x5a, 64 * 1024);
    char *more[1000];
    for (int i = 0; i < 1000; i++) {
        more[i] = malloc(3000);
        if (!more[i]) FAIL("malloc after sbrk failed");
        memset(more[i], 0x33, 3000);
    }
    for (int i = 0; i < 1000; i++) {
        if (more[i][2999] != 0x33) FAIL("block after sbrk corrupted");
        free(more[i]);
    }
    malloc_trim(0);
    uintptr_t after = cur_brk();
    if (after < (uintptr_t)mine + 64 * 1024) FAIL("the break went below the program's own sbrk memory");
    for (int i = 0; i < 64 * 1024; i++)
        if (mine[i] != 0x5a) FAIL("own sbrk memory corrupted at %d", i);
    printf("brk_test: ok (%s: break %#lx -> %#lx -> %#lx -> %#lx)\n", want_brk ? "brk" : "mmap", start,
           grown, trimmed, after);
    return 0;
}
