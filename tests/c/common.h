/*
 * common.h: helpers shared by the C test programs in tests/c/.
 *
 *   CHECK(cond, fmt, ...)  counts a check; on failure prints where and why and
 *                          counts a failure (the program goes on, and fails at exit).
 *   finish(name)           prints "<name>: N checks passed" and returns the exit code.
 *   rng_next(&s)           xorshift64*, a deterministic random source.
 *   fill()/verify()        a position- and seed-dependent byte pattern.
 *   oxalloc_mapped()       1 if liboxalloc.so is mapped into this process.
 *   expect_mapping(argc, argv)  --expect-so: liboxalloc.so must be mapped;
 *                          --expect-no-so: it must not be (static link).
 */
#ifndef OXALLOC_TEST_COMMON_H
#define OXALLOC_TEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long checks_run;
static unsigned long checks_failed;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        checks_run++;                                                        \
        if (!(cond)) {                                                       \
            checks_failed++;                                                 \
            if (checks_failed <= 50) {                                       \
                fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__,       \
                        __LINE__, #cond);                                    \
                fprintf(stderr, __VA_ARGS__);                                \
                fputc('\n', stderr);                                         \
            }                                                                \
        }                                                                    \
    } while (0)

static inline int finish(const char *name)
{
    if (checks_failed) {
        printf("%s: %lu of %lu checks FAILED\n", name, checks_failed, checks_run);
        fflush(stdout);
        return 1;
    }
    printf("%s: %lu checks passed\n", name, checks_run);
    fflush(stdout);
    return 0;
}

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint8_t pattern_byte(uint32_t seed, size_t i)
{
    return (uint8_t)(seed + i * 131u + (i >> 8));
}

static inline void fill(void *p, size_t n, uint32_t seed)
{
    uint8_t *b = (uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(seed, i);
}

/* Returns the index of the first wrong byte, or SIZE_MAX if all are right. */
static inline size_t verify(const void *p, size_t n, uint32_t seed)
{
    const uint8_t *b = (const uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(seed, i))
            return i;
    return SIZE_MAX;
}

static inline int oxalloc_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "liboxalloc.so"))
            found = 1;
    fclose(f);
    return found;
}

static inline void expect_mapping(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--expect-so"))
            CHECK(oxalloc_mapped(), "liboxalloc.so is not in /proc/self/maps");
        if (!strcmp(argv[i], "--expect-no-so"))
            CHECK(!oxalloc_mapped(), "liboxalloc.so is mapped in a static build");
    }
}

#endif
