/* Kernel test for Cortex-M (qemu-system-arm -M mps2-an386, semihosting): quantization, matvec,
   fp16, RoPE and a tiny attention through a KV cache in static memory. The library object is built
   with ROPEX_NO_THREADS ROPEX_NO_STDIO ROPEX_NO_MALLOC; only this test file prints (semihosting).
   Also builds and runs on a host: cc -std=c99 tests/mcu_main.c tests/impl.c -lm.
   References are computed here in double from the documented formulas, never by the library. */
#include "../ropex.h"
#include "test_util.h"

#include <string.h>

/* Deterministic inputs: a 32-bit LCG mapped to [-1, 1). */
static uint32_t rng_state = 12345u;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

/* Static scratch for everything (no heap on the target). */
#define MAXR 8
#define MAXC 96
#define NVEC 3
static float W[MAXR * MAXC], Wd[MAXR * MAXC], X[NVEC * MAXC], Xd[NVEC * MAXC], Y[NVEC * MAXR], Y1[MAXR];
static unsigned char Wq[MAXR * MAXC * 4], Xq[NVEC * MAXC * 2];
static double work_align[512];           /* matmul work buffer, 4 KB */

/* ---------------------------------------------------------------- fp16 */
static void test_fp16(void) {
    static const struct { float f; uint16_t h; } known[] = {
        { 1.0f, 0x3C00 }, { -2.0f, 0xC000 }, { 0.5f, 0x3800 }, { 65504.0f, 0x7BFF },
        { 65520.0f, 0x7C00 },                 /* halfway past the largest finite: rounds to inf */
        { 5.9604644775390625e-08f, 0x0001 },  /* 2^-24, smallest subnormal */
        { 2.98023223876953125e-08f, 0x0000 }, /* 2^-25: tie, rounds to even (0) */
        { 8.94069671630859375e-08f, 0x0002 }, /* 1.5 * 2^-24: tie, rounds to even (2) */
        { 6.103515625e-05f, 0x0400 },         /* 2^-14, smallest normal */
        { 1.0009765625f, 0x3C01 },            /* 1 + 2^-10 */
        { 1.00048828125f, 0x3C00 },           /* 1 + 2^-11: tie, rounds to even */
        { 1.00146484375f, 0x3C02 },           /* 1 + 3*2^-11: tie, rounds to even */
        { 0.0f, 0x0000 }
    };
    size_t i;
    uint32_t h, bad = 0;
    float z = -0.0f;
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint16_t got = ropex_fp32_to_fp16(known[i].f);
        CHECK(got == known[i].h, "fp16(%.9g) = 0x%04x, want 0x%04x", (double)known[i].f, got, known[i].h);
    }
    CHECK(ropex_fp32_to_fp16(z) == 0x8000, "fp16(-0) = 0x%04x", ropex_fp32_to_fp16(z));
    CHECK(ropex_fp32_to_fp16(INFINITY) == 0x7C00, "fp16(inf)");
    CHECK(ropex_fp32_to_fp16(-INFINITY) == 0xFC00, "fp16(-inf)");
    h = ropex_fp32_to_fp16(NAN);
    CHECK((h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0, "fp16(nan) = 0x%04x", (unsigned)h);
    CHECK(ropex_fp16_to_fp32(0x0001) == 5.9604644775390625e-08f, "fp32(0x0001)");
    CHECK(ropex_fp16_to_fp32(0x03FF) == 1023.0f * 5.9604644775390625e-08f, "fp32(0x03ff)");
    CHECK(ropex_fp16_to_fp32(0x7BFF) == 65504.0f, "fp32(0x7bff)");
    CHECK(ropex_fp16_to_fp32(0xFC00) == -INFINITY, "fp32(0xfc00)");
    CHECK(ropex_fp16_to_fp32(0x7E00) != ropex_fp16_to_fp32(0x7E00), "fp32(0x7e00) is NaN");
    /* every non-NaN half survives a round trip */
    for (h = 0; h < 65536u; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF)) continue;
        if (ropex_fp32_to_fp16(ropex_fp16_to_fp32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "fp16 round trip: %lu halves changed", (unsigned long)bad);
}

/* ---------------------------------------------------------------- quantization */
static float fp16_le(const unsigned char *p) { return ropex_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

static void test_quant(void) {
    float x[64], y[64];
    unsigned char b[2 * 34];   /* two Q8_0 blocks */
    int i, j;
    /* Q4_0 golden: x = (i mod 16) - 8 gives max = -8, d = max / -8 = 1, q = x + 8; byte j holds
       q[j] (low nibble) and q[j+16] (high nibble). */
    for (i = 0; i < 32; i++) x[i] = (float)(i % 16 - 8);
    CHECK(ropex_row_bytes(ROPEX_Q4_0, 32) == 18 && ropex_row_bytes(ROPEX_Q8_0, 32) == 34, "row bytes");
    CHECK(ropex_quantize(ROPEX_Q4_0, x, b, 32) == ROPEX_OK, "quantize q4_0");
    CHECK(b[0] == 0x00 && b[1] == 0x3C, "q4_0 scale bytes %02x %02x", b[0], b[1]);
    for (j = 0; j < 16; j++) CHECK(b[2 + j] == (unsigned char)(j | (j << 4)), "q4_0 byte %d = 0x%02x", j, b[2 + j]);
    /* Q8_0 golden: all ones give d = 1/127 (fp16) and q = 127. */
    for (i = 0; i < 32; i++) x[i] = 1.0f;
    CHECK(ropex_quantize(ROPEX_Q8_0, x, b, 32) == ROPEX_OK, "quantize q8_0");
    CHECK((uint16_t)(b[0] | (b[1] << 8)) == ropex_fp32_to_fp16(1.0f / 127.0f), "q8_0 scale");
    for (j = 0; j < 32; j++) CHECK((signed char)b[2 + j] == 127, "q8_0 q[%d] = %d", j, (signed char)b[2 + j]);
    /* Q8_0 by the GGML reference rounding: d = amax/127, q = round(x / d) (halves away from zero). */
    for (i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.37f;
    CHECK(ropex_quantize(ROPEX_Q8_0, x, b, 32) == ROPEX_OK, "quantize q8_0 ramp");
    {
        float d = 16.0f * 0.37f / 127.0f, id = 1.0f / d;
        for (j = 0; j < 32; j++) {
            int want = (int)roundf(x[j] * id);
            CHECK((signed char)b[2 + j] == want, "q8_0 ramp q[%d] = %d want %d", j, (signed char)b[2 + j], want);
        }
    }
    /* round trips within the format's bound, on random data (two blocks) */
    for (i = 0; i < 64; i++) x[i] = frand() * 3.0f;
    CHECK(ropex_quantize(ROPEX_Q8_0, x, b, 64) == ROPEX_OK && ropex_dequantize(ROPEX_Q8_0, b, y, 64) == ROPEX_OK, "q8_0 64");
    for (j = 0; j < 2; j++) {
        float amax = 0, d = fp16_le(b + 34 * j);
        for (i = 0; i < 32; i++) amax = fabsf(x[32 * j + i]) > amax ? fabsf(x[32 * j + i]) : amax;
        CHECK_NEAR(d, amax / 127.0f, amax / 127.0f / 1024.0f, "q8_0 scale = amax/127");
        /* d/2 from rounding plus |q| <= 127 times the fp16 rounding of d (2^-11 relative) */
        for (i = 0; i < 32; i++) CHECK_NEAR(y[32 * j + i], x[32 * j + i], 0.563 * d + 1e-6, "q8_0 round trip");
    }
    CHECK(ropex_quantize(ROPEX_Q4_0, x, b, 64) == ROPEX_OK && ropex_dequantize(ROPEX_Q4_0, b, y, 64) == ROPEX_OK, "q4_0 64");
    for (j = 0; j < 2; j++) {
        float amax = 0, d = fabsf(fp16_le(b + 18 * j));
        for (i = 0; i < 32; i++) amax = fabsf(x[32 * j + i]) > amax ? fabsf(x[32 * j + i]) : amax;
        CHECK_NEAR(d, amax / 8.0f, amax / 8.0f / 1024.0f, "q4_0 |scale| = amax/8");
        /* the value opposite in sign to the extreme clamps at q = 15: error up to d, plus the
           fp16 rounding of d times |q - 8| <= 8 */
        for (i = 0; i < 32; i++) CHECK_NEAR(y[32 * j + i], x[32 * j + i], d * 1.004 + 1e-6, "q4_0 round trip");
    }
    /* a row that is not a multiple of 32 is an error for block types */
    CHECK(ropex_quantize(ROPEX_Q8_0, x, b, 40) != ROPEX_OK, "q8_0 n=40 must fail");
    CHECK(ropex_quantize(ROPEX_Q4_0, x, b, 33) != ROPEX_OK, "q4_0 n=33 must fail");
    CHECK(ropex_quantize(ROPEX_Q8_0, NULL, b, 32) != ROPEX_OK, "NULL input must fail");
}

/* ---------------------------------------------------------------- matvec / matmul */
static void test_matvec_type(ropex_type t, int rows, int cols) {
    static const char *names[9] = { "f32", "f16", "q4_0", "", "", "", "", "", "q8_0" };
    size_t wb = ropex_row_bytes(t, (size_t)cols) * (size_t)rows;
    size_t work = ropex_matmul_work_bytes(t, (size_t)cols, NVEC);
    int r, c, i, quant_x = (t == ROPEX_Q8_0 || t == ROPEX_Q4_0);
    ropex_status st;
    for (i = 0; i < rows * cols; i++) W[i] = frand();
    for (i = 0; i < NVEC * cols; i++) X[i] = frand() * 2.0f;
    CHECK(wb > 0 && wb <= sizeof Wq, "%s: row bytes", names[t]);
    CHECK(work <= sizeof work_align, "%s: work bytes %lu", names[t], (unsigned long)work);
    if (wb == 0 || wb > sizeof Wq || work > sizeof work_align) return;
    CHECK(ropex_quantize(t, W, Wq, (size_t)(rows * cols)) == ROPEX_OK, "%s: quantize", names[t]);
    CHECK(ropex_dequantize(t, Wq, Wd, (size_t)(rows * cols)) == ROPEX_OK, "%s: dequantize", names[t]);
    /* integer paths see x through Q8_0: the reference uses the same rounded activations */
    if (quant_x) {
        CHECK(ropex_quantize(ROPEX_Q8_0, X, Xq, (size_t)(NVEC * cols)) == ROPEX_OK, "q8_0 x");
        CHECK(ropex_dequantize(ROPEX_Q8_0, Xq, Xd, (size_t)(NVEC * cols)) == ROPEX_OK, "q8_0 x back");
    } else {
        memcpy(Xd, X, sizeof(float) * (size_t)(NVEC * cols));
    }
    st = ropex_matvec(t, Wq, (size_t)rows, (size_t)cols, X, Y1, work_align, NULL);
    CHECK(st == ROPEX_OK, "%s: matvec status %d", names[t], (int)st);
    st = ropex_matmul(t, Wq, (size_t)rows, (size_t)cols, X, NVEC, Y, work_align, NULL);
    CHECK(st == ROPEX_OK, "%s: matmul status %d", names[t], (int)st);
    for (i = 0; i < NVEC; i++) {
        for (r = 0; r < rows; r++) {
            double ref = 0, mag = 0, tol;
            for (c = 0; c < cols; c++) {
                ref += (double)Wd[r * cols + c] * (double)Xd[i * cols + c];
                mag += fabs((double)Wd[r * cols + c] * (double)X[i * cols + c]);
            }
            /* f16 kernels may round activations to fp16 (as GGML does): allow 2^-10 of the magnitude */
            tol = (t == ROPEX_F16 ? 1e-3 : 1e-5) * mag + 1e-6;
            CHECK_NEAR(Y[i * rows + r], ref, tol, names[t]);
            if (i == 0) CHECK_NEAR(Y1[r], ref, tol, names[t]);
        }
    }
}

static void test_matvec(void) {
    test_matvec_type(ROPEX_F32, 5, 96);
    test_matvec_type(ROPEX_F16, 5, 96);
    test_matvec_type(ROPEX_Q8_0, 8, 96);
    test_matvec_type(ROPEX_Q4_0, 7, 64);
    test_matvec_type(ROPEX_Q4_0, 1, 32);
    CHECK(ropex_matvec(ROPEX_Q8_0, Wq, 4, 40, X, Y, work_align, NULL) != ROPEX_OK, "matvec cols=40 must fail");
}

/* ---------------------------------------------------------------- RoPE */
#define HD 32
static void rope_ref(const float *x, double *y, int64_t pos) {
    int j;
    for (j = 0; j < HD / 2; j++) {
        double a = (double)pos * pow(10000.0, -2.0 * j / HD), c = cos(a), s = sin(a);
        y[2 * j] = x[2 * j] * c - x[2 * j + 1] * s;
        y[2 * j + 1] = x[2 * j] * s + x[2 * j + 1] * c;
    }
}

static ropex_rope_table tab;  /* ~3 KB: static, not on the stack */

static void test_rope(void) {
    static const int64_t pos[4] = { 0, 7, 1000, 1000000 };
    ropex_rope_config cfg;
    float x[HD], y[HD];
    double ref[HD];
    int i, p;
    memset(&cfg, 0, sizeof cfg);
    cfg.head_dim = HD;
    CHECK(ropex_rope_table_init(&tab, &cfg, 0) == ROPEX_OK, "rope table init");
    for (i = 0; i < HD; i++) x[i] = frand();
    for (p = 0; p < 4; p++) {
        memcpy(y, x, sizeof x);
        ropex_rope_apply_k(&tab, y, 1, HD, pos[p]);
        rope_ref(x, ref, pos[p]);
        for (i = 0; i < HD; i++) CHECK_NEAR(y[i], ref[i], 1e-5, "rope vs double");
        /* query side at these positions: no log-n, no mscale by default, so the same rotation */
        memcpy(y, x, sizeof x);
        ropex_rope_apply_q(&tab, y, 1, HD, pos[p]);
        for (i = 0; i < HD; i++) CHECK_NEAR(y[i], ref[i], 1e-5, "rope q vs double");
    }
}

/* ---------------------------------------------------------------- attention through the KV cache */
#define NH 2      /* query heads sharing one kv head (grouped-query) */
#define NT 6
static double kv_align[4096];   /* 32 KB of caller memory for the cache */

static void test_attention(void) {
    ropex_kv_config kc;
    ropex_rope_config rc;
    static ropex_kv kv;
    static float q[NT][NH * HD], k[NT][HD], v[NT][HD], qs[NT * NH * HD], out[NT * NH * HD];
    size_t need;
    int t, h, s, i;
    memset(&kc, 0, sizeof kc);
    memset(&rc, 0, sizeof rc);
    kc.n_layers = 1; kc.n_kv_heads = 1; kc.head_dim = HD; kc.capacity = 16; kc.n_sink = 0;
    kc.k_type = ROPEX_F32; kc.v_type = ROPEX_F32; kc.positions = ROPEX_POS_TEXT;
    rc.head_dim = HD;
    need = ropex_kv_bytes(&kc);
    CHECK(need > 0 && need <= sizeof kv_align, "kv bytes %lu", (unsigned long)need);
    if (need == 0 || need > sizeof kv_align) return;
    CHECK(ropex_kv_init(&kv, &kc, &rc, kv_align, sizeof kv_align) == ROPEX_OK, "kv init");
    for (t = 0; t < NT; t++) {
        for (i = 0; i < NH * HD; i++) q[t][i] = frand();
        for (i = 0; i < HD; i++) { k[t][i] = frand(); v[t][i] = frand(); }
    }
    /* a causal chunk of 4 tokens, then 2 single tokens */
    memcpy(qs, q, sizeof q);
    CHECK(ropex_attention(&kv, 0, NH, qs, k[0], v[0], 4, out, NULL) == ROPEX_OK, "attention chunk");
    CHECK(ropex_kv_advance(&kv, 4) == ROPEX_OK, "kv advance 4");
    for (t = 4; t < NT; t++) {
        CHECK(ropex_attention(&kv, 0, NH, qs + t * NH * HD, k[t], v[t], 1, out + t * NH * HD, NULL) == ROPEX_OK,
              "attention token %d", t);
        CHECK(ropex_kv_advance(&kv, 1) == ROPEX_OK, "kv advance 1");
    }
    CHECK(ropex_kv_n_kept(&kv) == NT, "kv holds %d tokens", ropex_kv_n_kept(&kv));
    /* naive two-pass softmax attention in double, scores scaled by 1/sqrt(head_dim) */
    for (t = 0; t < NT; t++) {
        for (h = 0; h < NH; h++) {
            double qr[HD], kr[HD], sc[NT], mx = -1e300, sum = 0, o[HD];
            rope_ref(q[t] + h * HD, qr, t);
            for (s = 0; s <= t; s++) {
                double d = 0;
                rope_ref(k[s], kr, s);
                for (i = 0; i < HD; i++) d += qr[i] * kr[i];
                sc[s] = d / sqrt((double)HD);
                if (sc[s] > mx) mx = sc[s];
            }
            for (i = 0; i < HD; i++) o[i] = 0;
            for (s = 0; s <= t; s++) { sc[s] = exp(sc[s] - mx); sum += sc[s]; }
            for (s = 0; s <= t; s++)
                for (i = 0; i < HD; i++) o[i] += sc[s] / sum * v[s][i];
            for (i = 0; i < HD; i++) CHECK_NEAR(out[(t * NH + h) * HD + i], o[i], 1e-4, "attention vs naive");
        }
    }
}

int main(void) {
    printf("ropex %s, simd %s\n", ropex_version(), ropex_simd_name());
    test_fp16();
    test_quant();
    test_matvec();
    test_rope();
    test_attention();
    return TEST_END("mcu");
}
