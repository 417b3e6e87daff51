/* Leaks 3 x 1000 bytes from leaky_function (and frees everything else). Built with
 * -g -O0 -fno-omit-frame-pointer; the leak test symbolises the report with addr2line. */
#include <stdlib.h>
#include <string.h>

void *keep[3];

__attribute__((noinline)) void leaky_function(int i) {
    keep[i] = malloc(1000); /* the leak */
    memset(keep[i], i, 1000);
}

int main(void) {
    for (int i = 0; i < 3; i++) leaky_function(i);
    for (int i = 0; i < 100; i++) free(malloc(i * 10));
    keep[0] = keep[1] = keep[2] = 0;
    return 0;
}
