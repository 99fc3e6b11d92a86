/* Quantization formats, fp16, matrix kernels and the thread pool.
   References here are written independently of the library: fp16 from ldexp/frexp in double,
   GGML's quantizers re-implemented from their documented rule, golden bytes computed
   outside C (Python struct float32/half emulation of the documented algorithm), float64 dot
   products. Scalar vs SIMD and every thread count must agree bit for bit. */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "../ropex.h"
#include "test_util.h"

static uint32_t rng_state = 12345u;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 17; rng_state ^= rng_state << 5;
    return rng_state;
}
static float frand(void) { return (float)((double)(rng() >> 8) / 16777216.0 * 2.0 - 1.0); }

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Value of a half by its definition (double). */
static double half_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) return m ? NAN : (s ? -INFINITY : INFINITY);
    v = e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024 + m), e - 25);
    return s ? -v : v;
}

/* Nearest half (ties to even) by scaling in double; returns the half's value. */
static double half_round(double f) {
    double a = fabs(f), q;
    int e;
    if (a < ldexp(1.0, -14)) {
        q = rint(a / ldexp(1.0, -24)) * ldexp(1.0, -24);
    } else {
        frexp(a, &e);                       /* a = mant * 2^e, mant in [0.5, 1) */
        q = rint(a / ldexp(1.0, e - 11)) * ldexp(1.0, e - 11);
        if (q >= 65520.0) q = INFINITY;
    }
    return f < 0 ? -q : q;
}

static void test_fp16(void) {
    uint32_t h;
    int bad = 0, i;
    CHECK(ropex_fp32_to_fp16(0.0f) == 0x0000, "+0");
    CHECK(ropex_fp32_to_fp16(-0.0f) == 0x8000, "-0");
    CHECK(ropex_fp32_to_fp16(1.0f) == 0x3C00, "1");
    CHECK(ropex_fp32_to_fp16(-2.0f) == 0xC000, "-2");
    CHECK(ropex_fp32_to_fp16(65504.0f) == 0x7BFF, "max");
    CHECK(ropex_fp32_to_fp16(65519.99f) == 0x7BFF, "below overflow tie");
    CHECK(ropex_fp32_to_fp16(65520.0f) == 0x7C00, "overflow tie -> inf");
    CHECK(ropex_fp32_to_fp16(1e10f) == 0x7C00, "huge -> inf");
    CHECK(ropex_fp32_to_fp16(bits_f(0x7F800000u)) == 0x7C00, "inf");
    CHECK(ropex_fp32_to_fp16(bits_f(0xFF800000u)) == 0xFC00, "-inf");
    h = ropex_fp32_to_fp16(bits_f(0x7FC00000u));
    CHECK((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0, "nan -> nan %04x", (unsigned)h);
    h = ropex_fp32_to_fp16(bits_f(0xFF800001u));   /* signalling NaN with low payload only */
    CHECK((h & 0xFC00) == 0xFC00 && (h & 0x3FF) != 0, "snan keeps sign and stays nan %04x", (unsigned)h);
    CHECK(ropex_fp32_to_fp16((float)ldexp(1.0, -24)) == 0x0001, "min subnormal");
    CHECK(ropex_fp32_to_fp16((float)ldexp(1.0, -25)) == 0x0000, "half of min subnormal: tie to even 0");
    CHECK(ropex_fp32_to_fp16((float)ldexp(1.5, -25)) == 0x0001, "0.75 ulp -> 1");
    CHECK(ropex_fp32_to_fp16((float)ldexp(3.0, -25)) == 0x0002, "1.5 ulp tie -> 2 (even)");
    CHECK(ropex_fp32_to_fp16((float)ldexp(1.0, -14)) == 0x0400, "min normal");
    CHECK(ropex_fp32_to_fp16((float)(ldexp(1.0, -14) - ldexp(1.0, -25))) == 0x0400, "subnormal rounds up to normal");
    CHECK(ropex_fp32_to_fp16(1.0f + (float)ldexp(1.0, -11)) == 0x3C00, "tie to even (down)");
    CHECK(ropex_fp32_to_fp16(1.0f + (float)ldexp(3.0, -11)) == 0x3C02, "tie to even (up)");
    CHECK(ropex_fp32_to_fp16(0.1f) == 0x2E66, "0.1");
    CHECK(ropex_fp32_to_fp16(bits_f(1u)) == 0, "fp32 subnormal -> 0");
    CHECK(ropex_fp32_to_fp16(-(float)ldexp(1.0, -30)) == 0x8000, "tiny negative -> -0");
    CHECK(isinf(ropex_fp16_to_fp32(0x7C00)) && ropex_fp16_to_fp32(0x7C00) > 0, "inf back");
    CHECK(isnan(ropex_fp16_to_fp32(0x7E00)), "nan back");
    CHECK(f_bits(ropex_fp16_to_fp32(0x8000)) == 0x80000000u, "-0 back");

    /* every half: decode matches the definition, encode(decode(h)) == h */
    for (h = 0; h < 65536; h++) {
        float f = ropex_fp16_to_fp32((uint16_t)h);
        double v = half_value((uint16_t)h);
        if (isnan(v)) {
            uint16_t back = ropex_fp32_to_fp16(f);
            if (!isnan(f) || (back & 0x7C00) != 0x7C00 || !(back & 0x3FF) || (back >> 15) != (h >> 15)) bad++;
            if (!isnan(f) || (back != h && (h & 0x200))) bad++;   /* quiet NaN payload survives */
        } else {
            if ((double)f != v || ropex_fp32_to_fp16(f) != h) bad++;
            if (v == 0 && (f_bits(f) >> 31) != (h >> 15)) bad++;
        }
    }
    CHECK(bad == 0, "exhaustive half round trip: %d bad", bad);

    /* random floats over the half range and around it: nearest-even against double scaling */
    bad = 0;
    for (i = 0; i < 400000; i++) {
        uint32_t u = (rng() & 0x807FFFFFu) | ((uint32_t)(96 + rng() % 50) << 23);
        float f = bits_f(u);
        uint16_t got = ropex_fp32_to_fp16(f);
        double want = half_round((double)f), gv = half_value(got);
        if (!(gv == want)) bad++;
        if (want == 0 && (got >> 15) != (u >> 31)) bad++;
    }
    CHECK(bad == 0, "random fp32 -> fp16 rounding: %d bad", bad);
}

/* ---- independent re-implementations of GGML's reference quantizers ---- */
static void ref_q8_0(const float *x, unsigned char *o, size_t n) {
    size_t b; int j;
    for (b = 0; b < n / 32; b++) {
        float amax = 0, d, id;
        uint16_t h;
        for (j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        d = amax / 127;
        id = d ? 1.0f / d : 0.0f;
        h = ropex_fp32_to_fp16(d);
        o[34 * b] = (unsigned char)(h & 255); o[34 * b + 1] = (unsigned char)(h >> 8);
        for (j = 0; j < 32; j++) o[34 * b + 2 + j] = (unsigned char)(signed char)roundf(x[32 * b + j] * id);
    }
}
static void ref_q4_0(const float *x, unsigned char *o, size_t n) {
    size_t b; int j;
    for (b = 0; b < n / 32; b++) {
        float amax = 0, max = 0, d, id;
        uint16_t h;
        for (j = 0; j < 32; j++) if (amax < fabsf(x[32 * b + j])) { amax = fabsf(x[32 * b + j]); max = x[32 * b + j]; }
        d = max / -8;
        id = d ? 1.0f / d : 0.0f;
        h = ropex_fp32_to_fp16(d);
        o[18 * b] = (unsigned char)(h & 255); o[18 * b + 1] = (unsigned char)(h >> 8);
        for (j = 0; j < 16; j++) {
            volatile float p0 = x[32 * b + j] * id, p1 = x[32 * b + 16 + j] * id;   /* no FMA contraction */
            int a = (signed char)(p0 + 8.5f), c = (signed char)(p1 + 8.5f);
            if (a > 15) a = 15;
            if (c > 15) c = 15;
            o[18 * b + 2 + j] = (unsigned char)(a | (c << 4));
        }
    }
}

/* Golden blocks for golden_input(), computed outside C with Python: every float32 operation
   emulated as struct.unpack('f', struct.pack('f', double_result)) (one rounding per op),
   fp16 by struct.pack('<e') (nearest-even), roundf as floor(|v|+0.5) with sign, the Q4_0
   cast as int() truncation; the rules of QUANT_FORMATS.md (GGML's *_ref quantizers). */
static const unsigned char golden_q8[] = {
0x08,0x24,0x81,0xe9,0x51,0xb9,0x20,0x8a,0xf0,0x58,0xc2,0x28,0x92,0xf9,0x5f,0xc9,0x31,0x99,0x01,0x68,0xd0,0x38,
0xa2,0x08,0x70,0xda,0x40,0xa9,0x11,0x77,0xe1,0x49,0xb1,0x18,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,
0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,
0x00,0x00,0x0c,0x26,0x81,0x89,0x91,0x99,0xa1,0xa9,0xb1,0xb9,0xc0,0xc8,0xd0,0xd8,0xe0,0xe8,0xf0,0xf8,0x00,0x08,
0x10,0x18,0x20,0x28,0x30,0x38,0x40,0x47,0x4f,0x57,0x5f,0x67,0x6f,0x77};
static const unsigned char golden_q4[] = {
0x00,0x34,0x80,0xf7,0x5d,0xc4,0x2a,0x91,0xf7,0x6e,0xc4,0x3b,0x91,0xf8,0x6e,0xd5,0x3b,0xa2,0x00,0x80,0x88,0x88,
0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x88,0x00,0x36,0x80,0x91,0x91,0xa2,0xa2,0xb3,
0xb3,0xc4,0xc4,0xd5,0xd5,0xe6,0xe6,0xf7,0xf7,0xf8};

static void golden_input(float *x) {
    int j;
    for (j = 0; j < 32; j++) x[j] = (float)(((j * 13) % 32 - 16) / 8.0 + (j % 3) * 0.01);
    for (j = 0; j < 32; j++) x[32 + j] = 0.0f;
    for (j = 0; j < 32; j++) x[64 + j] = (float)(-3.0 + j * 0.1875);
}

static void test_quantize(int quick) {
    float g[96], *x, *y;
    unsigned char q[34 * 3], *a, *b;
    size_t n = quick ? 32 * 64 : 32 * 2048, i;
    int bad, t;
    golden_input(g);
    CHECK(ropex_quantize(ROPEX_Q8_0, g, q, 96) == ROPEX_OK, "q8 golden");
    CHECK(memcmp(q, golden_q8, sizeof golden_q8) == 0, "q8_0 golden bytes");
    CHECK(ropex_quantize(ROPEX_Q4_0, g, q, 96) == ROPEX_OK, "q4 golden");
    CHECK(memcmp(q, golden_q4, sizeof golden_q4) == 0, "q4_0 golden bytes");

    x = (float *)malloc(n * sizeof(float));
    y = (float *)malloc(n * sizeof(float));
    a = (unsigned char *)malloc(n * 4);
    b = (unsigned char *)malloc(n * 4);
    /* random data with scale variety, exact .5 ties after scaling, zero blocks, denormal-ish tiny */
    for (i = 0; i < n; i++) {
        size_t blk = i / 32;
        float s = (float)ldexp(1.0, (int)(blk % 18) - 6);   /* fp16 scales stay normal */
        x[i] = frand() * s;
        if (blk % 7 == 3 && blk % 18 < 14) x[i] = (float)((int)(rng() % 255) - 127) * 0.5f * s;   /* many ties */
        if (blk % 11 == 5) x[i] = 0.0f;
    }
    for (t = 0; t < 2; t++) {
        ropex_type ty = t ? ROPEX_Q4_0 : ROPEX_Q8_0;
        size_t bs = t ? 18 : 34;
        if (t) ref_q4_0(x, a, n); else ref_q8_0(x, a, n);
        CHECK(ropex_quantize(ty, x, b, n) == ROPEX_OK, "quantize");
        CHECK(memcmp(a, b, n / 32 * bs) == 0, "%s bytes == GGML reference rule", ropex_type_name(ty));
        CHECK(ropex_dequantize(ty, b, y, n) == ROPEX_OK, "dequantize");
        bad = 0;
        for (i = 0; i < n; i += 32) {
            double amax = 0, d, bound;
            int j;
            for (j = 0; j < 32; j++) if (fabs(x[i + j]) > amax) amax = fabs(x[i + j]);
            /* q*d error <= d/2, plus the fp16 rounding of d times |q| <= 127 (or 8) */
            d = t ? amax / 8 : amax / 127;
            bound = t ? d * (1.0 + 8.0 / 2048) : d * (0.5 + 127.0 / 2048);
            for (j = 0; j < 32; j++) if (fabs((double)y[i + j] - x[i + j]) > bound * 1.0001 + 1e-30) bad++;
        }
        CHECK(bad == 0, "%s dequantize error within bound: %d bad", ropex_type_name(ty), bad);
    }
    /* F16 and F32 rows: little-endian bytes */
    CHECK(ropex_quantize(ROPEX_F16, x, b, n) == ROPEX_OK, "f16");
    bad = 0;
    for (i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(b[2 * i] | (b[2 * i + 1] << 8));
        if (h != ropex_fp32_to_fp16(x[i])) bad++;
    }
    CHECK(bad == 0, "f16 bytes little-endian: %d bad", bad);
    CHECK(ropex_dequantize(ROPEX_F16, b, y, n) == ROPEX_OK, "f16 back");
    bad = 0;
    for (i = 0; i < n; i++) if (fabs((double)y[i] - x[i]) > fabs(x[i]) / 2048 + ldexp(1.0, -25)) bad++;
    CHECK(bad == 0, "f16 error bound: %d bad", bad);
    CHECK(ropex_quantize(ROPEX_F32, x, b, n) == ROPEX_OK, "f32");
    {
        uint32_t u = f_bits(x[1]);
        CHECK(b[4] == (u & 255) && b[7] == (u >> 24), "f32 bytes little-endian");
    }
    CHECK(ropex_dequantize(ROPEX_F32, b, y, n) == ROPEX_OK && memcmp(x, y, n * 4) == 0, "f32 exact");

    /* sizes, names, errors */
    CHECK(ropex_row_bytes(ROPEX_Q8_0, 64) == 68 && ropex_row_bytes(ROPEX_Q4_0, 64) == 36, "row bytes q");
    CHECK(ropex_row_bytes(ROPEX_F16, 3) == 6 && ropex_row_bytes(ROPEX_F32, 3) == 12, "row bytes f");
    CHECK(ropex_row_bytes(ROPEX_Q4_0, 33) == 0 && ropex_row_bytes((ropex_type)5, 32) == 0, "row bytes bad");
    CHECK(strcmp(ropex_type_name(ROPEX_Q4_0), "q4_0") == 0 && ropex_type_name((ropex_type)3) == NULL, "names");
    CHECK(ropex_quantize(ROPEX_Q8_0, x, b, 48) == ROPEX_ERR_ARG, "n%%32");
    CHECK(ropex_dequantize(ROPEX_Q4_0, b, y, 31) == ROPEX_ERR_ARG, "n%%32 deq");
    CHECK(ropex_quantize(ROPEX_Q8_0, NULL, b, 32) == ROPEX_ERR_ARG, "null x");
    CHECK(ropex_dequantize(ROPEX_Q8_0, NULL, y, 32) == ROPEX_ERR_ARG, "null src");
    CHECK(ropex_quantize((ropex_type)7, x, b, 32) == ROPEX_ERR_ARG, "bad type");
    free(x); free(y); free(a); free(b);
}

/* ---- matrix kernels ---- */
static const ropex_type types[4] = {ROPEX_F32, ROPEX_F16, ROPEX_Q8_0, ROPEX_Q4_0};

/* The activation rule, independently: amax/127 stored as fp16; q = nearest-even(x*127/amax). */
static void ref_act(const float *x, size_t cols, float *xq) {
    size_t b; int j;
    for (b = 0; b < cols / 32; b++) {
        float amax = 0, id, d;
        for (j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        d = ropex_fp16_to_fp32(ropex_fp32_to_fp16(amax / 127.0f));
        id = amax ? 127.0f / amax : 0.0f;
        for (j = 0; j < 32; j++) xq[32 * b + j] = rintf(x[32 * b + j] * id) * d;
    }
}

static void fill(float *v, size_t n) { size_t i; for (i = 0; i < n; i++) v[i] = frand(); }
/* Activations whose scaled values are exact .5 ties: amax = 127 per block, so x*127/amax = x. */
static int g_ties, g_raw;
static void fill_x(float *v, size_t n) {
    size_t i;
    if (!g_ties) { fill(v, n); return; }
    for (i = 0; i < n; i++) v[i] = (i % 32 == 0) ? 127.0f : (float)((int)(rng() % 253) - 126) + 0.5f;
}

static int check_against_f64(ropex_type t, size_t rows, size_t cols, size_t n) {
    size_t wb = ropex_row_bytes(t, cols) * rows, r, k, c;
    float *wf = (float *)malloc(rows * cols * 4), *x = (float *)malloc(n * cols * 4);
    float *wd = (float *)malloc(rows * cols * 4), *xq = (float *)malloc(n * cols * 4);
    float *y = (float *)malloc(n * rows * 4);
    unsigned char *w = (unsigned char *)malloc(wb);
    void *work = malloc(ropex_matmul_work_bytes(t, cols, n) + 1);
    int bad = 0;
    fill(wf, rows * cols); fill_x(x, n * cols);
    ropex_quantize(t, wf, w, rows * cols);
    ropex_dequantize(t, w, wd, rows * cols);
    for (k = 0; k < n; k++) {
        if (t == ROPEX_Q8_0 || t == ROPEX_Q4_0) ref_act(x + k * cols, cols, xq + k * cols);
        else memcpy(xq + k * cols, x + k * cols, cols * 4);
    }
    if (ropex_matmul_ref(t, w, rows, cols, x, n, y, work) != ROPEX_OK) bad++;
    for (k = 0; k < n; k++)
        for (r = 0; r < rows; r++) {
            double s = 0, sa = 0;
            for (c = 0; c < cols; c++) {
                s += (double)wd[r * cols + c] * xq[k * cols + c];
                sa += fabs((double)wd[r * cols + c] * xq[k * cols + c]);
            }
            if (fabs(y[k * rows + r] - s) > 1e-6 * sa + 1e-30) bad++;
        }
    free(wf); free(x); free(wd); free(xq); free(y); free(w); free(work);
    return bad;
}

/* Scalar reference vs the compiled SIMD path and 1..4 threads, bit for bit; misaligned
   buffers (weights at an odd address, x/y/work off 32-byte alignment). */
static int check_exact(ropex_type t, size_t rows, size_t cols, size_t n, ropex_threads **pools, int npools) {
    size_t rb = ropex_row_bytes(t, cols), k;
    float *wf = (float *)malloc(rows * cols * 4);
    unsigned char *wbuf = (unsigned char *)malloc(rb * rows + 8);
    unsigned char *w = wbuf + 1;
    float *xbuf = (float *)malloc((n * cols + 1) * 4), *x = xbuf + 1;
    float *yref = (float *)malloc(n * rows * 4), *ybuf = (float *)malloc((n * rows + 1) * 4), *y = ybuf + 1;
    size_t wsz = ropex_matmul_work_bytes(t, cols, n);
    unsigned char *workbuf = (unsigned char *)malloc(wsz + 8), *work = wsz ? workbuf + 3 : NULL;
    int bad = 0, p;
    fill(wf, rows * cols); fill_x(x, n * cols);
    if (!g_ties) for (k = 0; k < n * cols; k += 97) x[k] *= 30.0f;        /* outliers */
    ropex_quantize(t, wf, w, rows * cols);
    if (g_raw && (t == ROPEX_Q8_0 || t == ROPEX_Q4_0)) {
        /* arbitrary quant bytes (Q8_0 -128 included), finite random scales: as a hostile file */
        size_t bs = t == ROPEX_Q8_0 ? 34 : 18, nblk = rb * rows / bs, i2;
        int j2;
        for (i2 = 0; i2 < nblk; i2++) {
            uint16_t h = (uint16_t)((rng() & 0x83FF) | ((1 + rng() % 29) << 10));   /* finite, normal */
            w[i2 * bs] = (unsigned char)(h & 255); w[i2 * bs + 1] = (unsigned char)(h >> 8);
            for (j2 = 2; j2 < (int)bs; j2++) w[i2 * bs + j2] = (unsigned char)(rng() & 255);
            if (i2 % 5 == 0) for (j2 = 2; j2 < (int)bs; j2++) w[i2 * bs + j2] = 0x80;   /* extremes */
            if (i2 % 5 == 1) for (j2 = 2; j2 < (int)bs; j2++) w[i2 * bs + j2] = 0xFF;   /* Q4_0: nibbles 15, the int16 sums' largest lanes */
        }
    }
    if (ropex_matmul_ref(t, w, rows, cols, x, n, yref, work) != ROPEX_OK) bad += 1000;
    for (p = 0; p < npools; p++) {
        memset(y, 0xAB, n * rows * 4);
        if (n == 1) {
            if (ropex_matvec(t, w, rows, cols, x, y, work, pools[p]) != ROPEX_OK) bad += 1000;
        } else {
            if (ropex_matmul(t, w, rows, cols, x, n, y, work, pools[p]) != ROPEX_OK) bad += 1000;
        }
        if (memcmp(y, yref, n * rows * 4) != 0) {
            for (k = 0; k < n * rows; k++) if (memcmp(&y[k], &yref[k], 4)) bad++;
            printf("  mismatch %s %zux%zu n=%zu threads=%d: %d outputs\n", ropex_type_name(t), rows, cols, n,
                   ropex_threads_count(pools[p]), bad);
        }
    }
    if (t == ROPEX_Q8_0 || t == ROPEX_Q4_0) {   /* the repacked layout gives the same bits */
        ropex_type tx = t == ROPEX_Q8_0 ? ROPEX_Q8_0_X8 : ROPEX_Q4_0_X8;
        unsigned char *xb8 = (unsigned char *)malloc(rb * rows + 8), *w8 = xb8 + 3;
        int bad0 = bad;
        if (ropex_repack(t, w, rows, cols, w8) != ROPEX_OK) bad += 1000;
        memset(y, 0xAB, n * rows * 4);
        if (ropex_matmul_ref(tx, w8, rows, cols, x, n, y, work) != ROPEX_OK) bad += 1000;
        if (memcmp(y, yref, n * rows * 4) != 0) bad++;
        for (p = 0; p < npools; p++) {
            memset(y, 0xAB, n * rows * 4);
            if (ropex_matmul(tx, w8, rows, cols, x, n, y, work, pools[p]) != ROPEX_OK) bad += 1000;
            if (memcmp(y, yref, n * rows * 4) != 0) bad++;
        }
        if (bad != bad0) printf("  mismatch %s %zux%zu n=%zu\n", ropex_type_name(tx), rows, cols, n);
        free(xb8);
    }
    free(wf); free(wbuf); free(xbuf); free(yref); free(ybuf); free(workbuf);
    return bad;
}

/* ropex_repack against the layout as documented in ropex.h, written out independently:
   group g, block b: scales of rows 0..7, then Q4_0: for h = 0..3 bytes 4h..4h+3 of rows 0..7;
   Q8_0: for k = 0..3 elements 0..15 of row k then row k+4, then 16..31 of both; rows past the
   last group unchanged. */
static void test_repack(void) {
    static const ropex_type ts[2] = {ROPEX_Q4_0, ROPEX_Q8_0};
    int ti;
    for (ti = 0; ti < 2; ti++) {
        ropex_type t = ts[ti];
        size_t rows = 19, cols = 96, rb = ropex_row_bytes(t, cols), bs = t == ROPEX_Q4_0 ? 18 : 34, nb = cols / 32;
        unsigned char *w = (unsigned char *)malloc(rows * rb), *o = (unsigned char *)malloc(rows * rb);
        unsigned char *e = (unsigned char *)malloc(rows * rb);
        size_t i, g, b, at;
        int k, h;
        for (i = 0; i < rows * rb; i++) w[i] = (unsigned char)(rng() & 255);
        for (g = 0; g < 2; g++) {
            at = g * 8 * rb;
            for (b = 0; b < nb; b++) {
                for (k = 0; k < 8; k++) { memcpy(e + at, w + (g * 8 + (size_t)k) * rb + b * bs, 2); at += 2; }
                if (t == ROPEX_Q4_0) {   /* chunk h: bytes 4h..4h+3 of rows 0..7 */
                    for (h = 0; h < 4; h++)
                        for (k = 0; k < 8; k++) { memcpy(e + at, w + (g * 8 + (size_t)k) * rb + b * bs + 2 + 4 * (size_t)h, 4); at += 4; }
                    continue;
                }
                for (k = 0; k < 4; k++)
                    for (h = 0; h < 2; h++) {
                        memcpy(e + at, w + (g * 8 + (size_t)k) * rb + b * bs + 2 + 16 * (size_t)h, 16);
                        memcpy(e + at + 16, w + (g * 8 + (size_t)k + 4) * rb + b * bs + 2 + 16 * (size_t)h, 16);
                        at += 32;
                    }
            }
        }
        memcpy(e + 16 * rb, w + 16 * rb, 3 * rb);
        CHECK(ropex_repack(t, w, rows, cols, o) == ROPEX_OK && memcmp(o, e, rows * rb) == 0,
              "%s repack bytes follow the documented layout", ropex_type_name(t));
        CHECK(ropex_repack(t, w, rows, cols, w + 5) == ROPEX_ERR_ARG, "repack overlap");
        CHECK(ropex_repack(t, w, rows, 48, o) == ROPEX_ERR_ARG && ropex_repack(t, NULL, rows, cols, o) == ROPEX_ERR_ARG &&
              ropex_repack(t, w, 0, cols, o) == ROPEX_ERR_ARG && ropex_repack(t, w, rows, cols, NULL) == ROPEX_ERR_ARG,
              "repack bad arguments");
        free(w); free(o); free(e);
    }
    {
        float f[32] = {0}, y[32];
        unsigned char b[34];
        CHECK(ropex_repack(ROPEX_F16, f, 1, 32, b) == ROPEX_ERR_ARG && ropex_repack(ROPEX_Q4_0_X8, f, 1, 32, b) == ROPEX_ERR_ARG,
              "repack source must be q4_0 or q8_0");
        CHECK(ropex_quantize(ROPEX_Q4_0_X8, f, b, 32) == ROPEX_ERR_ARG && ropex_dequantize(ROPEX_Q8_0_X8, b, y, 32) == ROPEX_ERR_ARG,
              "repacked types are not row formats");
        CHECK(ropex_row_bytes(ROPEX_Q4_0_X8, 64) == 36 && ropex_row_bytes(ROPEX_Q8_0_X8, 64) == 68 &&
              strcmp(ropex_type_name(ROPEX_Q4_0_X8), "q4_0_x8") == 0 && ropex_matmul_work_bytes(ROPEX_Q4_0_X8, 64, 1) > 0,
              "repacked type sizes and names");
    }
}

typedef struct pool_probe { int *counts; int bad; } pool_probe;
static void probe_task(void *arg, int index, int count) {
    pool_probe *p = (pool_probe *)arg;
    /* distinct indices write distinct counters: no race */
    if (index < 0 || index >= count || count > 4) { p->bad = 1; return; }
    p->counts[index]++;
}

static void test_matmul(int quick) {
    ropex_threads *pools[4] = {NULL, NULL, NULL, NULL};
    int np = 0, ti, i;
    static const size_t shapes[][3] = {   /* rows, cols, tokens */
        {1, 32, 1}, {1, 32, 3}, {13, 64, 1}, {13, 96, 5}, {8, 256, 1}, {37, 160, 7},
        {64, 512, 1}, {67, 320, 9}, {5, 33 * 32, 2}, {13, 10240, 1}, {37, 4096, 1},
        /* large enough (>= 131072 MACs) to be split across threads */
        {200, 1024, 1}, {129, 256, 64}, {96, 4096, 4},
        /* 8-token tiles, then a 4-token tile, then single tokens; rows left over from 4-row tiles */
        {22, 2048, 21}};
    int nshapes = quick ? 11 : (int)(sizeof shapes / sizeof shapes[0]);
    for (i = 1; i <= 4; i++) {
        ropex_threads *th = NULL;
        ropex_status s = ropex_threads_create(&th, i);
        if (s == ROPEX_OK) pools[np++] = th;
        else CHECK(i > 1 && s == ROPEX_ERR_UNSUPPORTED, "threads_create(%d): %d", i, (int)s);
    }
    CHECK(np >= 1 && ropex_threads_count(pools[0]) == 1 && ropex_threads_count(NULL) == 1, "pool counts");
    printf("simd path: %s, pools: %d\n", ropex_simd_name(), np);
    for (ti = 0; ti < 4; ti++) {
        ropex_type t = types[ti];
        CHECK(check_against_f64(t, 7, 128, 3) == 0, "%s ref vs float64 (7x128, 3 tokens)", ropex_type_name(t));
        CHECK(check_against_f64(t, 3, quick ? 512 : 4096, 2) == 0, "%s ref vs float64 (long rows)", ropex_type_name(t));
        for (i = 0; i < nshapes; i++) {
            size_t rows = shapes[i][0], cols = shapes[i][1], n = shapes[i][2];
            CHECK(check_exact(t, rows, cols, n, pools, np) == 0, "%s %zux%zu n=%zu: simd+threads == scalar",
                  ropex_type_name(t), rows, cols, n);
        }
        g_ties = 1;   /* activation rounding ties: round-half-even on every path */
        CHECK(check_against_f64(t, 5, 256, 3) == 0, "%s ties vs float64", ropex_type_name(t));
        CHECK(check_exact(t, 37, 256, 5, pools, np) == 0, "%s ties: simd == scalar", ropex_type_name(t));
        CHECK(check_exact(t, 16, 8192, 1, pools, np) == 0, "%s ties threaded: simd == scalar", ropex_type_name(t));
        g_ties = 0;
        g_raw = 1;
        CHECK(check_exact(t, 24, 512, 5, pools, np) == 0, "%s arbitrary bytes: simd == scalar", ropex_type_name(t));
        CHECK(check_exact(t, 40, 4096, 1, pools, np) == 0, "%s arbitrary bytes threaded", ropex_type_name(t));
        g_raw = 0;
        if (t == ROPEX_F32 || t == ROPEX_F16) {   /* float types take any length */
            CHECK(check_exact(t, 9, 13, 3, pools, np) == 0, "%s cols=13", ropex_type_name(t));
            CHECK(check_exact(t, 3, 1, 1, pools, np) == 0, "%s cols=1", ropex_type_name(t));
            CHECK(check_against_f64(t, 5, 77, 2) == 0, "%s cols=77 vs float64", ropex_type_name(t));
        }
    }
    /* the pool itself: every index runs exactly once per call, many calls in a row */
    for (i = 0; i < np; i++) {
        int counts[4] = {0, 0, 0, 0}, k, ok = 1, n = ropex_threads_count(pools[i]);
        pool_probe pr;
        pr.counts = counts;
        pr.bad = 0;
        for (k = 0; k < 2000; k++) ropex_threads_run(pools[i], probe_task, &pr);
        for (k = 0; k < n; k++) ok &= counts[k] == 2000;
        CHECK(ok && pr.bad == 0, "pool of %d: 2000 runs, each index once per run", n);
    }
    if (np >= 2) {   /* repeated matvec dispatch (the runner calls it many times per token) */
        size_t rows = 64, cols = 4096;
        float *w = (float *)malloc(rows * cols * 4), *x = (float *)malloc(cols * 4), y1[64], y2[64];
        unsigned char *wq = (unsigned char *)malloc(ropex_row_bytes(ROPEX_Q4_0, cols) * rows);
        void *work = malloc(ropex_matmul_work_bytes(ROPEX_Q4_0, cols, 1));
        int bad = 0;
        fill(w, rows * cols); fill(x, cols);
        ropex_quantize(ROPEX_Q4_0, w, wq, rows * cols);
        ropex_matmul_ref(ROPEX_Q4_0, wq, rows, cols, x, 1, y1, work);
        for (i = 0; i < (quick ? 50 : 300); i++) {
            ropex_matvec(ROPEX_Q4_0, wq, rows, cols, x, y2, work, pools[np - 1 - i % 2]);
            if (memcmp(y1, y2, sizeof y1)) bad++;
        }
        CHECK(bad == 0, "repeated threaded matvec");
        free(w); free(x); free(wq); free(work);
    }
    {   /* bad arguments */
        float x[64], y[4];
        unsigned char w[4 * 68], work[1024];
        fill(x, 64);
        memset(w, 0, sizeof w);
        CHECK(ropex_matvec(ROPEX_Q8_0, NULL, 4, 64, x, y, work, NULL) == ROPEX_ERR_ARG, "null w");
        CHECK(ropex_matvec(ROPEX_Q8_0, w, 4, 64, NULL, y, work, NULL) == ROPEX_ERR_ARG, "null x");
        CHECK(ropex_matvec(ROPEX_Q8_0, w, 4, 64, x, NULL, work, NULL) == ROPEX_ERR_ARG, "null y");
        CHECK(ropex_matvec(ROPEX_Q8_0, w, 4, 64, x, y, NULL, NULL) == ROPEX_ERR_ARG, "null work");
        CHECK(ropex_matvec(ROPEX_Q4_0, w, 4, 48, x, y, work, NULL) == ROPEX_ERR_ARG, "cols%%32");
        CHECK(ropex_matmul(ROPEX_Q4_0, w, 4, 64, x, 0, y, work, NULL) == ROPEX_ERR_ARG, "n=0");
        CHECK(ropex_matmul_ref((ropex_type)9, w, 4, 64, x, 1, y, work) == ROPEX_ERR_ARG, "bad type");
        CHECK(ropex_matvec(ROPEX_F32, w, 0, 16, x, y, NULL, NULL) == ROPEX_ERR_ARG, "rows=0");
        CHECK(ropex_matvec(ROPEX_F32, w, 4, 16, x, y, NULL, NULL) == ROPEX_OK, "f32 needs no work");
        CHECK(ropex_matmul_work_bytes(ROPEX_F32, 64, 1) == 0 && ropex_matmul_work_bytes(ROPEX_Q8_0, 64, 2) > 128,
              "work bytes");
        CHECK(ropex_matmul_work_bytes(ROPEX_Q8_0, 48, 1) == 0, "work bytes bad cols");
        CHECK(ropex_threads_create(NULL, 2) == ROPEX_ERR_ARG, "threads null");
        {
            ropex_threads *th = (ropex_threads *)&x;
            CHECK(ropex_threads_create(&th, 0) == ROPEX_ERR_ARG && th == NULL, "threads 0");
        }
    }
    for (i = 0; i < np; i++) ropex_threads_destroy(pools[i]);
    ropex_threads_destroy(NULL);
}

int main(void) {
    const char *q = getenv("ROPEX_TEST_QUICK");
    int quick = q && q[0] == '1';
    test_fp16();
    test_quantize(quick);
    test_repack();
    test_matmul(quick);
    return TEST_END("test_quant");
}
