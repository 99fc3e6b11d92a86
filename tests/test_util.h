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
#endif
