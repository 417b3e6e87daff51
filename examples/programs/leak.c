/* A C program with known leaks at known lines, for `oxalloc leaks`.
 *
 *   cc -g -O0 -o /tmp/leak examples/programs/leak.c && oxalloc leaks -- /tmp/leak
 *
 * Expected: 8 x 4096 bytes from make_buffer() (LEAK_BUFFER_LINE), 1 x 100 bytes from
 * copy_name() (LEAK_NAME_LINE), and nothing from the freed ones in main(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *make_buffer(size_t n) {
    char *p = malloc(n); /* LEAK_BUFFER_LINE */
    memset(p, 'x', n);
    return p;
}

__attribute__((noinline)) static char *copy_name(const char *s) {
    char *p = calloc(1, 100); /* LEAK_NAME_LINE */
    strncpy(p, s, 99);
    return p;
}

int main(void) {
    char *kept[8];
    for (int i = 0; i < 8; i++) {
        kept[i] = make_buffer(4096); /* never freed: 32768 bytes in 8 blocks */
    }
    char *name = copy_name("oxalloc");
    printf("leak: %s %c\n", name, kept[7][0]);
    name = NULL; /* leaked: 100 bytes */
    for (int i = 0; i < 1000; i++) {
        free(make_buffer(64)); /* freed: not a leak */
    }
    return 0;
}
