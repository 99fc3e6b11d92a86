/* Tiny test harness shared by tests/test_*.c. Each program ends with TEST_END(), which prints
   "<name>: N passed, N failed" and returns non-zero on any failure. */
#ifndef ROPEX_TEST_UTIL_H
#define ROPEX_TEST_UTIL_H
#include <stdio.h>
#include <math.h>
static int t__pass, t__fail;
#define CHECK(cond, ...) do { if (cond) { t__pass++; } else { t__fail++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); fflush(stdout); } } while (0)
#define CHECK_NEAR(a, b, tol, what) do { double a_ = (double)(a), b_ = (double)(b); \
    CHECK(fabs(a_ - b_) <= (tol), "%s: %.9g vs %.9g (tol %.3g)", what, a_, b_, (double)(tol)); } while (0)
#define TEST_END(name) (printf("%s: %d passed, %d failed\n", name, t__pass, t__fail), t__fail ? 1 : 0)

/* File and mode helpers for the tests that read data files (define TEST_FILE_HELPERS first). */
#ifdef TEST_FILE_HELPERS
#include <stdlib.h>
/* The whole file, NUL-terminated (not counted in *size); NULL if it cannot be read. */
static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    long n;
    unsigned char *b;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END); n = ftell(f); fseek(f, 0, SEEK_SET);
    if (n < 0) { fclose(f); return NULL; }
    b = (unsigned char *)malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { *size = (size_t)n; b[n] = 0; }
    return b;
}
/* ROPEX_TEST_QUICK=1 (sanitizer and emulator runs): smaller cases. */
static int quick(void) { const char *q = getenv("ROPEX_TEST_QUICK"); return q && *q && *q != '0'; }
#endif
#endif
