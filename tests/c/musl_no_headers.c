/* A static C program for musl on a machine without musl's headers for its target
 * (Debian ships none for arm64): the few prototypes it needs are declared here, as musl
 * and the C standard define them. Linked against liboxalloc.a and musl's libc.a (the
 * copy Rust's target brings), it checks that the C allocation calls are oxalloc's and
 * behave: contents kept by realloc, calloc zeroed, alignment, and malloc(SIZE_MAX)
 * failing with ENOMEM. Prints "ok" and exits 0, or names each failed check. */
typedef unsigned long size_t;
void *malloc(size_t);
void free(void *);
void *calloc(size_t, size_t);
void *realloc(void *, size_t);
int posix_memalign(void **, size_t, size_t);
int *__errno_location(void);
long write(int, const void *, size_t);
size_t ox_malloc_usable_size(void *);

static int fails;

static void check(int ok, const char *what) {
  size_t n = 0;
  while (what[n])
    n++;
  if (!ok) {
    fails++;
    write(2, "FAILED: ", 8);
    write(2, what, n);
    write(2, "\n", 1);
  }
}

int main(void) {
  char *a = malloc(100);
  check(a != 0, "malloc(100)");
  /* oxalloc's own call knows the block: malloc is oxalloc's, not musl's. */
  check(a && ox_malloc_usable_size(a) >= 100, "malloc's block is oxalloc's");
  for (int i = 0; i < 100; i++)
    a[i] = (char)i;
  a = realloc(a, 5000);
  int same = a != 0;
  for (int i = 0; same && i < 100; i++)
    same = a[i] == (char)i;
  check(same, "realloc keeps the bytes");
  free(a);
  unsigned char *z = calloc(1000, 10);
  int zero = z != 0;
  for (int i = 0; zero && i < 10000; i++)
    zero = z[i] == 0;
  check(zero, "calloc zeroes");
  free(z);
  void *al = 0;
  check(posix_memalign(&al, 4096, 100) == 0 && ((unsigned long)al & 4095) == 0,
        "posix_memalign(4096)");
  free(al);
  volatile size_t huge = (size_t)-1;
  *__errno_location() = 0;
  check(malloc(huge) == 0 && *__errno_location() == 12, "malloc(SIZE_MAX): NULL, ENOMEM");
  if (!fails)
    write(1, "ok\n", 3);
  return fails != 0;
}
