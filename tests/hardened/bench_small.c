/* Small-block workload for the overhead numbers: 5M malloc/free pairs of random sizes
 * 16..512 bytes over a working set of 10k live blocks (each block written once). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    enum { SLOTS = 10000, OPS = 5000000 };
    static void *live[SLOTS];
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < OPS; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t k = x % SLOTS;
        size_t n = 16 + (x >> 32) % 497;
        free(live[k]);
        live[k] = malloc(n);
        memset(live[k], (int)i, 16);
    }
    for (int k = 0; k < SLOTS; k++) free(live[k]);
    return 0;
}
