/* RoPE tables, rotation and scaling laws against independent float64 references, the published
   values of ROPE_VARIANTS.md / SCALING_LAWS.md, rotation invariants and config validation. */
#include "../ropex.h"
#include "test_util.h"
static FILE *opts_err;   /* parser messages land here, not on the console */
#define ROPE_OPTS_ERR (opts_err ? opts_err : stderr)
#include "../tools/rope_opts.h"
#include <string.h>
#include <stdlib.h>

#define PI_D 3.14159265358979323846
#define TWO_PI_L 6.283185307179586476925286766559005768L

static ropex_rope_config base_cfg(int head_dim, double base) {
    ropex_rope_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = head_dim;
    c.base = base;
    return c;
}

/* ---- independent reference formulas (written from the references' text, in a different form:
   exp/log instead of pow, wavelengths instead of frequencies where the reference uses them) ---- */
static double ref_w(double base, int j, int d) { return exp(-(2.0 * j / d) * log(base)); }

static double ref_inv(const ropex_rope_config *c, int j, double len) {
    int d = c->rot_dims ? c->rot_dims : c->head_dim;
    double B = c->base ? c->base : 10000.0, s = c->factor ? c->factor : 1.0, L0 = c->train_ctx;
    double w = ref_w(B, j, d);
    switch (c->scaling) {
    case ROPEX_SCALE_NONE: return w;
    case ROPEX_SCALE_LINEAR: return w / s;
    case ROPEX_SCALE_NTK: return ref_w(B * exp(log(s) * d / (d - 2.0)), j, d);
    case ROPEX_SCALE_DYNAMIC: {
        double L = len > L0 ? len : L0;
        return ref_w(B * exp(log(s * L / L0 - (s - 1)) * d / (d - 2.0)), j, d);
    }
    case ROPEX_SCALE_DYNAMIC_QWEN: {
        double a = exp2(ceil(log2(len / L0) + 1)) - 1;
        if (a < 1) a = 1;
        return ref_w(B * exp(log(a) * d / (d - 2.0)), j, d);
    }
    case ROPEX_SCALE_YARN: {
        double bf = c->yarn_beta_fast ? c->yarn_beta_fast : 32, bs = c->yarn_beta_slow ? c->yarn_beta_slow : 1;
        /* pair whose wavelength 2 pi B^(2j/d) equals L0/r */
        double lo = (d / 2.0) * log(L0 / (bf * 2 * PI_D)) / log(B);
        double hi = (d / 2.0) * log(L0 / (bs * 2 * PI_D)) / log(B);
        double r;
        if (!c->yarn_no_truncate) { lo = floor(lo); hi = ceil(hi); }
        lo = lo < 0 ? 0 : lo;
        hi = hi > d - 1 ? d - 1 : hi;
        if (lo == hi) hi += 0.001;
        r = (j - lo) / (hi - lo);
        r = r < 0 ? 0 : (r > 1 ? 1 : r);
        return w * (1 - r) + (w / s) * r;
    }
    case ROPEX_SCALE_LLAMA3: {
        double lf = c->llama3_low ? c->llama3_low : 1, hf = c->llama3_high ? c->llama3_high : 4;
        double wl = 2 * PI_D / w;
        if (L0 / wl > hf) return w;          /* wavelength < L0/high */
        if (L0 / wl < lf) return w / s;      /* wavelength > L0/low */
        {
            double sm = (L0 / wl - lf) / (hf - lf);
            return sm * w + (1 - sm) * (w / s);
        }
    }
    case ROPEX_SCALE_LONGROPE:
        return w / (double)(len > L0 ? c->longrope_long[j] : c->longrope_short[j]);
    case ROPEX_SCALE_GIRAFFE: {
        double f = w;
        if (s > 1) f /= s;
        if (c->giraffe_power > 0) f *= exp(c->giraffe_power * log(1 - j / (d / 2.0)));
        if (c->giraffe_truncate > 0) {
            double b = 2 * PI_D / c->giraffe_truncate;
            if (f < b / 8) f = 0;
            else if (f < b) f = b / 16;
        }
        return f;
    }
    }
    return -1;
}

static int table(ropex_rope_table *t, const ropex_rope_config *c, int64_t len) {
    ropex_status st = ropex_rope_table_init(t, c, len);
    CHECK(st == ROPEX_OK, "table_init failed: %s", ropex_status_str(st));
    return st == ROPEX_OK;
}

static void check_table(const ropex_rope_config *c, int64_t len, const char *what) {
    ropex_rope_table t;
    int j, bad = 0, d = c->rot_dims ? c->rot_dims : c->head_dim;
    double worst = 0;
    if (!table(&t, c, len)) return;
    CHECK(t.n_pairs == d / 2, "%s: n_pairs %d", what, t.n_pairs);
    for (j = 0; j < d / 2; j++) {
        double r = ref_inv(c, j, (double)(len ? len : c->train_ctx));
        double e = fabs(t.inv_freq[j] - r);
        double tol = 1e-12 * fabs(r) + 1e-300;
        if (e > tol) { bad++; if (e / (fabs(r) + 1e-300) > worst) worst = e / (fabs(r) + 1e-300); }
    }
    CHECK(bad == 0, "%s: %d pairs differ from the reference (worst rel %.3g)", what, bad, worst);
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* ---- tables ---- */
static float lr_short[64], lr_long[64];

static void test_tables(void) {
    ropex_rope_config c;
    ropex_rope_table t;
    int j, d;
    const int dims[3] = { 128, 64, 8 };
    const double bases[4] = { 10000, 500000, 1e6, 500 };
    for (d = 0; d < 3; d++) {
        int b;
        for (b = 0; b < 4; b++) {
            int64_t lens[4] = { 0, 1000, 4096, 100000 };
            int li;
            c = base_cfg(dims[d], bases[b]);
            c.train_ctx = 4096;
            check_table(&c, 0, "none");
            c.scaling = ROPEX_SCALE_LINEAR; c.factor = 4; check_table(&c, 0, "linear");
            c.scaling = ROPEX_SCALE_NTK; c.factor = 8; check_table(&c, 0, "ntk");
            c.scaling = ROPEX_SCALE_DYNAMIC; c.factor = 2;
            for (li = 0; li < 4; li++) check_table(&c, lens[li], "dynamic");
            c.scaling = ROPEX_SCALE_DYNAMIC_QWEN; c.factor = 0;
            for (li = 0; li < 4; li++) check_table(&c, lens[li], "dynamic-qwen");
            c.scaling = ROPEX_SCALE_YARN; c.factor = 4; check_table(&c, 0, "yarn");
            c.yarn_no_truncate = 1; check_table(&c, 0, "yarn no-truncate");
            c.yarn_no_truncate = 0; c.yarn_beta_fast = 16; c.yarn_beta_slow = 2; check_table(&c, 0, "yarn betas");
            c.yarn_beta_fast = 0; c.yarn_beta_slow = 0;
            c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 8; c.train_ctx = 8192; check_table(&c, 0, "llama3");
            c.llama3_low = 2; c.llama3_high = 8; check_table(&c, 0, "llama3 2/8");
            c.llama3_low = 0; c.llama3_high = 0; c.train_ctx = 4096;
            c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 32;
            c.longrope_short = lr_short; c.longrope_long = lr_long;
            for (li = 0; li < 4; li++) check_table(&c, lens[li], "longrope");
            c.longrope_short = c.longrope_long = NULL;
            c.scaling = ROPEX_SCALE_GIRAFFE; c.factor = 4; check_table(&c, 0, "giraffe linear");
            c.factor = 0; c.giraffe_power = 0.5; check_table(&c, 0, "giraffe power");
            c.giraffe_power = 0; c.giraffe_truncate = 4096; check_table(&c, 0, "giraffe truncate");
            c.factor = 2; c.giraffe_power = 0.5; check_table(&c, 0, "giraffe all");
        }
    }
    /* partial rotary: the exponent uses rot_dims */
    c = base_cfg(128, 10000); c.rot_dims = 32; c.train_ctx = 4096;
    c.scaling = ROPEX_SCALE_YARN; c.factor = 4; check_table(&c, 0, "yarn partial");

    /* length_dependent, length default, mscale defaults */
    c = base_cfg(64, 0);
    if (table(&t, &c, 0)) {
        CHECK(t.length_dependent == 0 && t.mscale == 1.0f && t.logn_ctx == 0, "none: flags");
        CHECK(fabs(t.inv_freq[1] - pow(10000.0, -2.0 / 64)) < 1e-15, "zero base means 10000");
    }
    c.train_ctx = 2048; c.scaling = ROPEX_SCALE_DYNAMIC; c.factor = 2;
    if (table(&t, &c, 0)) CHECK(t.length_dependent == 1 && t.length == 2048, "dynamic flags, length default");
    c.scaling = ROPEX_SCALE_DYNAMIC_QWEN; c.factor = 0;
    if (table(&t, &c, 5000)) CHECK(t.length_dependent == 1 && t.length == 5000, "qwen flags");
    c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 8;
    if (table(&t, &c, 5000)) CHECK(t.length_dependent == 0, "llama3 fixed");
    /* HF dynamic: at or below L0 nothing changes, at 2 L0 with s = 2 base' = base * 3^(d/(d-2)) */
    c = base_cfg(128, 10000); c.train_ctx = 4096; c.scaling = ROPEX_SCALE_DYNAMIC; c.factor = 2;
    if (table(&t, &c, 2000)) CHECK_NEAR(t.inv_freq[63], pow(10000.0, -126.0 / 128), 1e-18, "dynamic below L0");
    if (table(&t, &c, 8192)) CHECK_NEAR(t.inv_freq[63] * 3.0, pow(10000.0, -126.0 / 128), 1e-15, "dynamic slowest pair / alpha");

    /* NTK: pair 0 unchanged, slowest pair divided by exactly alpha */
    c = base_cfg(128, 10000); c.scaling = ROPEX_SCALE_NTK; c.factor = 8;
    if (table(&t, &c, 0)) {
        CHECK(t.inv_freq[0] == 1.0, "ntk pair 0");
        CHECK_NEAR(t.inv_freq[63] * 8.0 / pow(10000.0, -126.0 / 128), 1.0, 1e-13, "ntk slowest pair");
        CHECK_NEAR(pow(t.inv_freq[1], -64.0), 82685.0, 0.5, "NTK alpha 8 base' = 82,685 (SCALING_LAWS 6.4)");
    }

    /* Qwen alpha table (SCALING_LAWS 5.5): base' = 10000 alpha^(128/126) */
    {
        const int64_t L[9] = { 4096, 4097, 8192, 8193, 16384, 32768, 65536, 131072, 1000000 };
        const double bp[9] = { 10000, 30528, 30528, 72196, 72196, 156588, 327366, 672824, 5641722 };
        int k;
        c = base_cfg(128, 10000); c.train_ctx = 4096; c.scaling = ROPEX_SCALE_DYNAMIC_QWEN;
        for (k = 0; k < 9; k++)
            if (table(&t, &c, L[k])) CHECK_NEAR(pow(t.inv_freq[1], -64.0), bp[k], 0.6 + bp[k] * 1e-9, "qwen base'");
    }

    /* YaRN published values: corr dims 20/46, m for s = 2, 4, 8, 32 */
    {
        const double s[4] = { 2, 4, 8, 32 }, m[4] = { 1.0693, 1.1386, 1.2079, 1.3466 };
        int k;
        c = base_cfg(128, 10000); c.train_ctx = 4096; c.scaling = ROPEX_SCALE_YARN;
        for (k = 0; k < 4; k++) {
            c.factor = s[k];
            if (!table(&t, &c, 0)) continue;
            CHECK_NEAR(t.mscale, m[k], 5e-5, "yarn mscale");
            for (j = 0; j <= 20; j++) CHECK(t.inv_freq[j] == pow(10000.0, -2.0 * j / 128), "yarn j=%d keep", j);
            for (j = 46; j < 64; j++) CHECK_NEAR(t.inv_freq[j] * s[k] / pow(10000.0, -2.0 * j / 128), 1, 1e-14, "yarn interp");
            CHECK_NEAR(t.inv_freq[33] / pow(10000.0, -66.0 / 128), 0.5 * (1 + 1 / s[k]), 1e-14, "yarn ramp midpoint");
        }
        /* HF/ggml clamp quirk: high is clamped to d-1, not d/2-1; with base 500 corr_dim(1) = 66.7 -> 67,
           so the top pair (j = 63) is only (63-31)/(67-31) interpolated. */
        c.base = 500; c.factor = 4;
        if (table(&t, &c, 0)) {
            double w = pow(500.0, -126.0 / 128), ramp = (63.0 - 31.0) / (67.0 - 31.0);
            CHECK_NEAR(t.inv_freq[63] / w, (1 - ramp) + ramp / 4, 1e-14, "yarn d-1 clamp quirk");
        }
        c.base = 10000;
        c.factor = 4; c.attn_factor = 1.5;
        if (table(&t, &c, 0)) CHECK(t.mscale == 1.5f, "yarn attn_factor override");
        c.attn_factor = 0; c.factor = 1;
        if (table(&t, &c, 0)) CHECK(t.mscale == 1.0f, "yarn s=1: m = 1");
    }

    /* llama3 published bands (d=128, B=500000, L0=8192, s=8) */
    c = base_cfg(128, 500000); c.train_ctx = 8192; c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 8;
    if (table(&t, &c, 0)) {
        int keep = 1, interp = 1;
        for (j = 0; j <= 28; j++) keep &= t.inv_freq[j] == pow(500000.0, -2.0 * j / 128);
        for (j = 35; j < 64; j++) interp &= fabs(t.inv_freq[j] * 8 / pow(500000.0, -2.0 * j / 128) - 1) < 1e-14;
        CHECK(keep, "llama3 j<=28 keep");
        CHECK(interp, "llama3 j>=35 interpolate");
        for (j = 29; j <= 34; j++) {
            double w = pow(500000.0, -2.0 * j / 128), sm = (t.inv_freq[j] - w / 8) / (w - w / 8);
            CHECK(sm > 0.07 && sm < 0.81, "llama3 j=%d smooth (sm %g)", j, sm);
            if (j == 29) CHECK_NEAR(sm, 0.8036, 5e-5, "llama3 sm(29)");
            if (j == 34) CHECK_NEAR(sm, 0.0745, 5e-5, "llama3 sm(34)");
        }
    }

    /* LongRoPE: m = 1.19024 at s = 32, L0 = 4096; short/long switch at L0 */
    c = base_cfg(128, 10000); c.train_ctx = 4096; c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 32;
    c.longrope_short = lr_short; c.longrope_long = lr_long;
    if (table(&t, &c, 4096)) {
        CHECK_NEAR(t.mscale, 1.19024, 5e-6, "longrope m");
        CHECK(t.inv_freq[5] == pow(10000.0, -10.0 / 128) / (double)lr_short[5], "longrope short at L0");
    }
    if (table(&t, &c, 4097)) CHECK(t.inv_freq[5] == pow(10000.0, -10.0 / 128) / (double)lr_long[5], "longrope long past L0");

    /* Giraffe d=128 truncate 4096: j<=45 keep, 46..59 rho, >= 60 zero */
    c = base_cfg(128, 10000); c.scaling = ROPEX_SCALE_GIRAFFE; c.giraffe_truncate = 4096;
    if (table(&t, &c, 0)) {
        int ok = 1;
        double rho = 2 * PI_D / (16.0 * 4096);
        for (j = 0; j <= 45; j++) ok &= t.inv_freq[j] == pow(10000.0, -2.0 * j / 128);
        CHECK(ok, "giraffe keep");
        for (j = 46; j <= 59; j++) CHECK_NEAR(t.inv_freq[j], rho, 1e-18, "giraffe rho");
        for (j = 60; j < 64; j++) CHECK(t.inv_freq[j] == 0.0, "giraffe zero j=%d", j);
    }
}

/* ---- rotation ---- */

/* Float64 (long double where available) reference rotation of one head. */
static void ref_rotate(const ropex_rope_table *t, const float *x, double *out, int64_t pos, int is_q) {
    int j, i, np = t->n_pairs;
    double g = is_q && t->logn_ctx > 0 ? log(pos + 1.0) / log(t->logn_ctx) : 1.0;
    if (g < 1) g = 1;
    for (i = 0; i < t->head_dim; i++) out[i] = x[i];
    for (j = 0; j < np; j++) {
        int a = t->layout == ROPEX_LAYOUT_HALF ? j : 2 * j, b = t->layout == ROPEX_LAYOUT_HALF ? j + np : 2 * j + 1;
        int64_t p = (t->clamp_pos[j] >= 0 && pos > t->clamp_pos[j]) ? t->clamp_pos[j] : pos;
        long double ang = fmodl((long double)p * (long double)t->inv_freq[j], TWO_PI_L);
        double cs = (double)cosl(ang), sn = (double)sinl(ang);
        if (t->zero[j]) { out[a] = out[b] = 0; continue; }
        out[a] = t->mscale * (x[a] * cs - x[b] * sn);
        out[b] = t->mscale * (x[a] * sn + x[b] * cs);
    }
    for (i = 0; i < t->head_dim; i++) out[i] *= g;
}

/* Max abs error of apply at `pos` on unit pairs (1,0) and (0,1): the per-unit-norm-pair bound. */
static double unit_pair_error(const ropex_rope_table *t, int64_t pos) {
    float x[512];
    double r[512], worst = 0;
    int j, i, which;
    for (which = 0; which < 2; which++) {
        for (j = 0; j < t->n_pairs; j++) {
            int a = t->layout == ROPEX_LAYOUT_HALF ? j : 2 * j;
            int b = t->layout == ROPEX_LAYOUT_HALF ? j + t->n_pairs : 2 * j + 1;
            x[a] = which ? 0.0f : 1.0f;
            x[b] = which ? 1.0f : 0.0f;
        }
        ref_rotate(t, x, r, pos, 0);
        ropex_rope_apply_k(t, x, 1, 0, pos);
        for (i = 0; i < t->rot_dims; i++) if (fabs(x[i] - r[i]) > worst) worst = fabs(x[i] - r[i]);
    }
    return worst;
}

static void test_precision(void) {
    const int64_t P[7] = { 0, 1, 4095, 4096, 131072, 1000000, 2147483647 };
    ropex_rope_config c = base_cfg(128, 10000);
    ropex_rope_table t;
    int k;
    if (!table(&t, &c, 0)) return;
    for (k = 0; k < 7; k++) {
        double e = unit_pair_error(&t, P[k]);
        /* contract 1e-5; achieved ~3e-7 up to 1e6 and ~1e-6 at 2^31-1 (double angle rounding). */
        double bound = P[k] <= 1000000 ? 1e-6 : 3e-6;
        printf("ok precision pos %lld: max abs error %.3g\n", (long long)P[k], e);
        CHECK(e <= bound && e <= 1e-5, "precision at %lld: %.3g > %.3g", (long long)P[k], e, bound);
    }
    c.base = 500000; c.layout = ROPEX_LAYOUT_HALF;
    if (table(&t, &c, 0)) CHECK(unit_pair_error(&t, 1000000) <= 1e-6, "precision base 5e5 half");
    /* random positions of either sign (every quadrant of the reduction), and huge ones (fmod path) */
    {
        unsigned long long st = 12345;
        double worst = 0, e;
        int n = getenv("ROPEX_TEST_QUICK") ? 50 : 400;
        c = base_cfg(128, 10000);
        if (table(&t, &c, 0)) {
            for (k = 0; k < n; k++) {
                int64_t p;
                st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                p = (int64_t)(st >> 33) - ((int64_t)1 << 30);     /* [-2^30, 2^30) */
                if (k % 4 == 1) p %= 100000;
                e = unit_pair_error(&t, p);
                if (e > worst) worst = e;
            }
            printf("ok precision: %d random positions in [-2^30, 2^30): max abs error %.3g\n", n, worst);
            CHECK(worst < 1e-6, "random positions: %.3g", worst);
            e = unit_pair_error(&t, (int64_t)1 << 40);
            CHECK(e < 1e-3, "position 2^40 (fmod path): %.3g", e);
        }
    }
}

static void fill(float *x, int n, unsigned seed) {
    int i;
    for (i = 0; i < n; i++) x[i] = frand(&seed);
}

static double maxdiff_f(const float *a, const float *b, int n) {
    double m = 0;
    int i;
    for (i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m;
}

static void test_rotation(void) {
    ropex_rope_config c = base_cfg(64, 10000);
    ropex_rope_table t, t2;
    float x[4 * 80], y[4 * 80], z[4 * 80];
    double r[64];
    int h, i, j;
    const int64_t P[5] = { 0, 7, 4095, 123457, 1000000 };

    /* apply vs reference for several methods, layouts, partial rotary, strided heads, q and k */
    {
        int m;
        for (m = 0; m < 6; m++) {
            int layout;
            c = base_cfg(64, 10000);
            c.train_ctx = 512;
            if (m == 1) { c.scaling = ROPEX_SCALE_YARN; c.factor = 8; }
            if (m == 2) { c.rot_dims = 32; }
            if (m == 3) { c.truncate = ROPEX_TRUNC_CLAMP; c.logn = 1; }
            if (m == 4) { c.truncate = ROPEX_TRUNC_ZERO; c.rot_dims = 48; }
            if (m == 5) { c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 4; c.logn = 1; c.logn_ctx = 100; }
            for (layout = 0; layout < 2; layout++) {
                int k, isq;
                c.layout = (ropex_rope_layout)layout;
                if (!table(&t, &c, 0)) continue;
                for (k = 0; k < 5; k++) for (isq = 0; isq < 2; isq++) {
                    double worst = 0;
                    fill(x, 4 * 80, 11u + (unsigned)k);
                    memcpy(y, x, sizeof x);
                    if (isq) ropex_rope_apply_q(&t, y, 4, 80, P[k]);
                    else ropex_rope_apply_k(&t, y, 4, 80, P[k]);
                    for (h = 0; h < 4; h++) {
                        ref_rotate(&t, x + h * 80, r, P[k], isq);
                        for (i = 0; i < 64; i++) if (fabs(y[h * 80 + i] - r[i]) > worst) worst = fabs(y[h * 80 + i] - r[i]);
                        for (i = 64; i < 80; i++) if (y[h * 80 + i] != x[h * 80 + i]) worst = 1;  /* stride gap untouched */
                    }
                    CHECK(worst < 2e-6 * (1 + t.mscale) * 4, "apply m=%d layout=%d pos=%lld q=%d: err %.3g",
                          m, layout, (long long)P[k], isq, worst);
                }
            }
        }
    }

    /* norm preserved (m = 1), partial rotary pass-through unchanged */
    c = base_cfg(64, 10000); c.rot_dims = 48;
    if (table(&t, &c, 0)) {
        double n0 = 0, n1 = 0;
        fill(x, 64, 3);
        memcpy(y, x, 64 * sizeof(float));
        ropex_rope_apply_k(&t, y, 1, 64, 987654);
        for (i = 0; i < 64; i++) { n0 += (double)x[i] * x[i]; n1 += (double)y[i] * y[i]; }
        CHECK_NEAR(n1 / n0, 1.0, 2e-6, "norm preserved");
        CHECK(memcmp(x + 48, y + 48, 16 * sizeof(float)) == 0, "pass-through coordinates untouched");
    }

    /* R(p + d) = R(d) R(p) via rerotate; q.k depends only on p - s */
    for (j = 0; j < 2; j++) {
        c = base_cfg(64, 10000); c.layout = (ropex_rope_layout)j;
        if (!table(&t, &c, 0)) continue;
        fill(x, 64, 5);
        memcpy(y, x, 64 * sizeof(float));
        memcpy(z, x, 64 * sizeof(float));
        ropex_rope_apply_k(&t, y, 1, 64, 1000);
        ropex_rope_rerotate(&t, 1000, &t, 1000 + 4321, y, 1, 64);
        ropex_rope_apply_k(&t, z, 1, 64, 1000 + 4321);
        CHECK(maxdiff_f(y, z, 64) < 2e-6, "R(p+d) = R(d)R(p): %.3g", maxdiff_f(y, z, 64));
        ropex_rope_rerotate(&t, 5321, &t, 1000, y, 1, 64);   /* negative delta */
        memcpy(z, x, 64 * sizeof(float));
        ropex_rope_apply_k(&t, z, 1, 64, 1000);
        CHECK(maxdiff_f(y, z, 64) < 2e-6, "rerotate back: %.3g", maxdiff_f(y, z, 64));
        {
            float q1[64], k1[64], q2[64], k2[64];
            double d1 = 0, d2 = 0;
            fill(q1, 64, 7); fill(k1, 64, 8);
            memcpy(q2, q1, sizeof q1); memcpy(k2, k1, sizeof k1);
            ropex_rope_apply_q(&t, q1, 1, 64, 300); ropex_rope_apply_k(&t, k1, 1, 64, 100);
            ropex_rope_apply_q(&t, q2, 1, 64, 900300); ropex_rope_apply_k(&t, k2, 1, 64, 900100);
            for (i = 0; i < 64; i++) { d1 += (double)q1[i] * k1[i]; d2 += (double)q2[i] * k2[i]; }
            CHECK_NEAR(d1, d2, 1e-5, "q.k depends only on p-s");
        }
    }

    /* layout equivalence: permuting ADJACENT into HALF order commutes with rotation (partial rotary) */
    c = base_cfg(64, 10000); c.rot_dims = 40;
    if (table(&t, &c, 0)) {
        c.layout = ROPEX_LAYOUT_HALF;
        if (table(&t2, &c, 0)) {
            float a[64], hv[64], back[64];
            fill(a, 64, 9);
            for (j = 0; j < 20; j++) { hv[j] = a[2 * j]; hv[j + 20] = a[2 * j + 1]; }
            for (i = 40; i < 64; i++) hv[i] = a[i];
            ropex_rope_apply_q(&t, a, 1, 64, 77777);
            ropex_rope_apply_q(&t2, hv, 1, 64, 77777);
            for (j = 0; j < 20; j++) { back[2 * j] = hv[j]; back[2 * j + 1] = hv[j + 20]; }
            for (i = 40; i < 64; i++) back[i] = hv[i];
            CHECK(maxdiff_f(a, back, 64) == 0, "layout equivalence: %.3g", maxdiff_f(a, back, 64));
        }
    }

    /* unapply_k inverts apply_k, mscale included; rerotate never applies mscale */
    c = base_cfg(64, 10000); c.train_ctx = 512; c.scaling = ROPEX_SCALE_YARN; c.factor = 16;
    if (table(&t, &c, 0)) {
        fill(x, 64, 13);
        memcpy(y, x, 64 * sizeof(float));
        ropex_rope_apply_k(&t, y, 1, 64, 54321);
        ropex_rope_unapply_k(&t, y, 1, 64, 54321);
        CHECK(maxdiff_f(x, y, 64) < 3e-6, "unapply_k: %.3g", maxdiff_f(x, y, 64));
        memcpy(y, x, 64 * sizeof(float));
        ropex_rope_rerotate(&t, 999, &t, 999, y, 1, 64);
        CHECK(maxdiff_f(x, y, 64) == 0, "rerotate by 0 is the identity (no mscale)");
    }

    /* rerotate across tables (a runtime base change): equals apply with the new table */
    {
        ropex_rope_config c2 = base_cfg(64, 10000);
        c = base_cfg(64, 10000);
        c2.scaling = ROPEX_SCALE_NTK; c2.factor = 4;
        if (table(&t, &c, 0) && table(&t2, &c2, 0)) {
            fill(x, 64, 17);
            memcpy(y, x, 64 * sizeof(float)); memcpy(z, x, 64 * sizeof(float));
            ropex_rope_apply_k(&t, y, 1, 64, 30000);
            ropex_rope_rerotate(&t, 30000, &t2, 31000, y, 1, 64);
            ropex_rope_apply_k(&t2, z, 1, 64, 31000);
            CHECK(maxdiff_f(y, z, 64) < 2e-6, "rerotate across tables: %.3g", maxdiff_f(y, z, 64));
        }
    }

    /* batch == per-token calls */
    c = base_cfg(64, 10000); c.logn = 1; c.train_ctx = 16;
    if (table(&t, &c, 0)) {
        int64_t pos[3] = { 3, 400, 70000 };
        float b1[3 * 2 * 64], b2[3 * 2 * 64];
        int tok;
        fill(b1, 3 * 2 * 64, 21);
        memcpy(b2, b1, sizeof b1);
        ropex_rope_apply_batch(&t, b1, 3, 128, 2, 64, pos, 1);
        for (tok = 0; tok < 3; tok++) ropex_rope_apply_q(&t, b2 + tok * 128, 2, 64, pos[tok]);
        CHECK(memcmp(b1, b2, sizeof b1) == 0, "batch q == per-token");
        ropex_rope_apply_batch(&t, b1, 3, 128, 2, 64, pos, 0);
        for (tok = 0; tok < 3; tok++) ropex_rope_apply_k(&t, b2 + tok * 128, 2, 64, pos[tok]);
        CHECK(memcmp(b1, b2, sizeof b1) == 0, "batch k == per-token");
    }
}

static void test_truncation_logn(void) {
    ropex_rope_config c = base_cfg(128, 10000);
    ropex_rope_table t, plain;
    float x[128], y[128], z[128];
    int j, layout;
    c.train_ctx = 4096;
    table(&plain, &c, 0);
    for (layout = 0; layout < 2; layout++) {
        c.layout = (ropex_rope_layout)layout;
        c.truncate = ROPEX_TRUNC_CLAMP;
        if (table(&t, &c, 0)) {
            int ok = 1;
            for (j = 0; j < 64; j++) ok &= t.clamp_pos[j] == (j < 46 ? -1 : 4095) && !t.zero[j];
            CHECK(ok, "clamp mask: pairs >= 46 clamp at 4095");
            /* a key at 10000: pairs < 46 rotate at 10000, pairs >= 46 at 4095 */
            fill(x, 128, 31);
            memcpy(y, x, sizeof x); memcpy(z, x, sizeof x);
            ropex_rope_apply_k(&t, y, 1, 128, 10000);
            plain.layout = t.layout;
            ropex_rope_apply_k(&plain, z, 1, 128, 10000);
            {
                float w[128];
                int okc = 1;
                memcpy(w, x, sizeof x);
                ropex_rope_apply_k(&plain, w, 1, 128, 4095);
                for (j = 0; j < 64; j++) {
                    int a = layout ? j : 2 * j, b = layout ? j + 64 : 2 * j + 1;
                    const float *ref = j < 46 ? z : w;
                    okc &= y[a] == ref[a] && y[b] == ref[b];
                }
                CHECK(okc, "clamp rotation (layout %d)", layout);
            }
            /* below the clamp nothing changes */
            memcpy(y, x, sizeof x); memcpy(z, x, sizeof x);
            ropex_rope_apply_k(&t, y, 1, 128, 4095);
            ropex_rope_apply_k(&plain, z, 1, 128, 4095);
            CHECK(memcmp(y, z, sizeof y) == 0, "clamp inactive inside the window");
            /* rerotating a clamped key: pairs >= 46 stay put */
            memcpy(y, x, sizeof x); memcpy(z, x, sizeof x);
            ropex_rope_apply_k(&t, y, 1, 128, 5000);
            ropex_rope_rerotate(&t, 5000, &t, 9000, y, 1, 128);
            ropex_rope_apply_k(&t, z, 1, 128, 9000);
            CHECK(maxdiff_f(y, z, 128) < 2e-6, "rerotate respects clamp: %.3g", maxdiff_f(y, z, 128));
        }
        c.truncate = ROPEX_TRUNC_ZERO;
        if (table(&t, &c, 0)) {
            int okz = 1;
            fill(x, 128, 41);
            memcpy(y, x, sizeof x);
            ropex_rope_apply_q(&t, x, 1, 128, 5);
            ropex_rope_apply_k(&t, y, 1, 128, 5);
            for (j = 0; j < 64; j++) {
                int a = layout ? j : 2 * j, b = layout ? j + 64 : 2 * j + 1;
                int zero = x[a] == 0 && x[b] == 0 && y[a] == 0 && y[b] == 0;
                okz &= j < 46 ? !zero : zero;
            }
            CHECK(okz, "zero mask: pairs >= 46 zeroed in q and k (layout %d)", layout);
            if (layout == 1) CHECK(x[45] != 0 && x[46] == 0 && x[109] != 0 && x[110] == 0 && x[63] == 0, "half layout zero coords");
        }
    }
    /* train_base: the critical dim belongs to the pre-training base */
    c = base_cfg(128, 1e6); c.train_base = 10000; c.train_ctx = 4096; c.truncate = ROPEX_TRUNC_CLAMP;
    if (table(&t, &c, 0)) CHECK(t.clamp_pos[45] == -1 && t.clamp_pos[46] == 4095, "clamp uses train_base");

    /* log-n */
    c = base_cfg(64, 10000); c.train_ctx = 4096; c.logn = 1;
    if (table(&t, &c, 0)) {
        float q[64], k[64];
        CHECK(ropex_rope_logn(&t, 0) == 1.0f && ropex_rope_logn(&t, 4095) == 1.0f, "logn 1 inside window");
        CHECK_NEAR(ropex_rope_logn(&t, 8191), 13.0 / 12.0, 1e-7, "logn at 8191");
        CHECK_NEAR(ropex_rope_logn(&t, 999999), log(1e6) / log(4096.0), 1e-6, "logn at 1e6");
        fill(q, 64, 1); memcpy(k, q, sizeof q);
        ropex_rope_apply_q(&t, q, 1, 64, 8191);
        ropex_rope_apply_k(&t, k, 1, 64, 8191);
        for (j = 0; j < 64; j++) if (fabs(q[j] - k[j] * (13.0 / 12.0)) > 1e-6) break;
        CHECK(j == 64, "q scaled by logn, k not");
    }
    c.logn_ctx = 100;
    if (table(&t, &c, 0)) CHECK_NEAR(ropex_rope_logn(&t, 9999), 2.0, 1e-6, "logn_ctx overrides train_ctx");
    c.logn = 0; c.logn_ctx = 0;
    if (table(&t, &c, 0)) CHECK(ropex_rope_logn(&t, 1000000) == 1.0f, "logn off");
}

static void test_validation(void) {
    ropex_rope_config good = base_cfg(64, 10000), c;
    ropex_rope_table t;
    const char *msg = NULL;
    int n = 0;
#define BAD(stmt) do { c = good; stmt; msg = NULL; \
        CHECK(ropex_rope_validate(&c, &msg) == ROPEX_ERR_ARG && msg && *msg, "accepted: %s", #stmt); \
        CHECK(ropex_rope_table_init(&t, &c, 0) == ROPEX_ERR_ARG, "table accepted: %s", #stmt); n++; } while (0)
    good.train_ctx = 4096;
    CHECK(ropex_rope_validate(&good, &msg) == ROPEX_OK, "good config");
    CHECK(ropex_rope_validate(NULL, &msg) == ROPEX_ERR_ARG, "NULL config");
    CHECK(ropex_rope_table_init(NULL, &good, 0) == ROPEX_ERR_ARG, "NULL table");
    CHECK(ropex_rope_table_init(&t, &good, -1) == ROPEX_ERR_ARG, "negative length");
    BAD(c.head_dim = 0);
    BAD(c.head_dim = -2);
    BAD(c.head_dim = 63);
    BAD(c.head_dim = 2 * ROPEX_ROPE_MAX_PAIRS + 2);
    BAD(c.rot_dims = 33);
    BAD(c.rot_dims = 66);
    BAD(c.rot_dims = -2);
    BAD(c.base = -1);
    BAD(c.base = 1);
    BAD(c.base = 0.5);
    BAD(c.base = NAN);
    BAD(c.base = INFINITY);
    BAD(c.train_base = NAN);
    BAD(c.train_base = -5);
    BAD(c.layout = (ropex_rope_layout)2);
    BAD(c.scaling = (ropex_rope_scaling)9);
    BAD(c.truncate = (ropex_rope_truncate)3);
    BAD(c.train_ctx = -1);
    BAD(c.scaling = ROPEX_SCALE_LINEAR; c.factor = 0.5);
    BAD(c.scaling = ROPEX_SCALE_LINEAR; c.factor = -2);
    BAD(c.scaling = ROPEX_SCALE_LINEAR; c.factor = INFINITY);
    BAD(c.scaling = ROPEX_SCALE_NTK; c.factor = 0.9);
    BAD(c.scaling = ROPEX_SCALE_NTK; c.factor = 2; c.rot_dims = 2);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 0.5);
    BAD(c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 0.99);
    BAD(c.scaling = ROPEX_SCALE_GIRAFFE; c.factor = 0.5);
    BAD(c.scaling = ROPEX_SCALE_NONE; c.factor = 2);
    BAD(c.scaling = ROPEX_SCALE_DYNAMIC_QWEN; c.factor = 4);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 4; c.train_ctx = 0);
    BAD(c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 8; c.train_ctx = 0);
    BAD(c.scaling = ROPEX_SCALE_DYNAMIC; c.factor = 2; c.train_ctx = 0);
    BAD(c.scaling = ROPEX_SCALE_DYNAMIC; c.factor = 0.5);
    BAD(c.scaling = ROPEX_SCALE_DYNAMIC_QWEN; c.train_ctx = 0);
    BAD(c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 4; c.longrope_short = lr_short; c.longrope_long = lr_long; c.train_ctx = 0);
    BAD(c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 4);
    BAD(c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 4; c.longrope_short = lr_short);
    BAD(c.longrope_short = lr_short; c.longrope_long = lr_long);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 4; c.yarn_beta_fast = 1; c.yarn_beta_slow = 2);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 4; c.yarn_beta_fast = NAN);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 4; c.yarn_beta_slow = -1);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 4; c.attn_factor = -1);
    BAD(c.scaling = ROPEX_SCALE_YARN; c.factor = 4; c.yarn_no_truncate = 2);
    BAD(c.yarn_beta_fast = 32);
    BAD(c.yarn_no_truncate = 1);
    BAD(c.attn_factor = 1.2);
    BAD(c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 8; c.llama3_low = 4; c.llama3_high = 2);
    BAD(c.scaling = ROPEX_SCALE_LLAMA3; c.factor = 8; c.llama3_low = NAN);
    BAD(c.llama3_high = 4);
    BAD(c.giraffe_power = 0.5);
    BAD(c.giraffe_truncate = 4096);
    BAD(c.scaling = ROPEX_SCALE_GIRAFFE; c.giraffe_power = -1);
    BAD(c.scaling = ROPEX_SCALE_GIRAFFE; c.giraffe_truncate = -1);
    BAD(c.truncate = ROPEX_TRUNC_CLAMP; c.train_ctx = 0);
    BAD(c.truncate = ROPEX_TRUNC_ZERO; c.train_ctx = 0);
    BAD(c.logn = 1; c.train_ctx = 0);
    BAD(c.logn = 1; c.logn_ctx = 1);
    BAD(c.logn = 2);
    BAD(c.logn_ctx = 100);
    BAD(c.logn = 1; c.logn_ctx = -5);
    {
        float badlist[32];
        int k;
        for (k = 0; k < 32; k++) badlist[k] = 1.0f;
        badlist[7] = 0.0f;
        BAD(c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 4; c.longrope_short = badlist; c.longrope_long = lr_long);
        badlist[7] = NAN;
        BAD(c.scaling = ROPEX_SCALE_LONGROPE; c.factor = 4; c.longrope_short = lr_short; c.longrope_long = badlist);
    }
#undef BAD
    printf("ok validation: %d invalid configs rejected\n", n);
    /* documented zero-defaults are accepted */
    c = good; c.scaling = ROPEX_SCALE_YARN;
    CHECK(ropex_rope_validate(&c, NULL) == ROPEX_OK, "yarn factor 0 = 1");
    c = good; c.logn = 1;
    CHECK(ropex_rope_validate(&c, NULL) == ROPEX_OK, "logn with train_ctx");
}

static void test_scaling_laws(void) {
    double th[3], lim;
    ropex_regime r;
    /* SCALING_LAWS 5.1 */
    CHECK(ropex_critical_dim(128, 4096, 10000) == 92, "crit 92");
    CHECK(ropex_critical_dim(128, 2048, 10000) == 82, "crit 82");
    CHECK(ropex_critical_dim(128, 16384, 10000) == 110, "crit 110");
    CHECK(ropex_critical_dim(64, 2048, 10000) == 42, "crit 42");
    CHECK(ropex_critical_dim(8, 512, 10000) == 4, "crit 4");
    CHECK(ropex_critical_dim(128, 8192, 500000) == 70, "crit 70 (b0 = 5e5)");
    CHECK(ropex_critical_dim(128, 4096, 500) == 128, "crit clamped to d");
    CHECK(ropex_critical_dim(128, 4, 10000) == 0, "crit clamped to 0");
    CHECK(ropex_critical_dim(0, 4096, 10000) == 0 && ropex_critical_dim(128, 4096, 1) == 0, "crit invalid");
    /* (d/2) log = exactly an integer must not jump: b0 = (T/2pi)^(2/ d * ...) chosen so x = 40 */
    CHECK(ropex_critical_dim(128, 2 * PI_D * pow(10000.0, 40.0 / 64), 10000) == 80, "ceiling guard");
    /* 5.2 */
    CHECK_NEAR(ropex_extrapolation_limit(600000, 128, 92), 89377, 0.5, "limit 6e5");
    CHECK_NEAR(ropex_extrapolation_limit(1e6, 128, 92), 129027, 0.5, "limit 1e6");
    CHECK_NEAR(ropex_extrapolation_limit(10000, 128, 92), 4712, 0.5, "limit 1e4");
    CHECK_NEAR(ropex_extrapolation_limit(40000, 128, 92), 12762, 0.5, "limit 4e4");
    CHECK_NEAR(ropex_extrapolation_limit(800000, 128, 92), 109907, 0.5, "limit 8e5");
    CHECK_NEAR(ropex_extrapolation_limit(1e9, 128, 92), 18489700, 1, "limit 1e9");
    /* 4.2 / 5.3 / 5.4 */
    CHECK_NEAR(ropex_critical_base(4096, 16384, 10000), 71738, 0.5, "critical base 16K");
    CHECK_NEAR(ropex_critical_base(4096, 4096, 10000), 10000, 1e-6, "critical base T_tune = T_train");
    CHECK_NEAR(ropex_base_for_target(16384, 128, 92), 56628, 0.5, "base for 16384");
    CHECK_NEAR(ropex_base_for_target(32768, 128, 92), 148544, 0.5, "base for 32768");
    CHECK_NEAR(ropex_base_for_target(100000, 128, 92), 701472, 0.5, "base for 100000");
    CHECK_NEAR(ropex_extrapolation_limit(ropex_base_for_target(1e6, 128, 92), 128, 92), 1e6, 1e-3, "inverse round trip");
    CHECK(ropex_base_for_target(16384, 128, 0) == HUGE_VAL, "no trained pair: no base");
    ropex_small_base_thresholds(4096, th);
    CHECK_NEAR(th[0], 2607.6, 0.05, "b1"); CHECK_NEAR(th[1], 1303.8, 0.05, "b2"); CHECK_NEAR(th[2], 651.9, 0.05, "b3");
    ropex_small_base_thresholds(16384, th);
    CHECK_NEAR(th[0], 10430.4, 0.05, "b1 16K");
    CHECK(ropex_updated_critical_dim(10000, 128, 16384) == 110, "updated crit 110");
    CHECK(ropex_updated_critical_dim(40000, 128, 16384) == 96, "updated crit 96");
    CHECK(ropex_updated_critical_dim(71738, 128, 16384) == 92, "updated crit 92");
    CHECK(ropex_updated_critical_dim(2600, 128, 16384) == 128, "updated crit 128");
    /* regimes */
    r = ropex_scaling_regime(128, 10000, 4096, 1e6, 0, &lim);
    CHECK(r == ROPEX_REGIME_LARGE_BASE && fabs(lim - 129027) < 0.5, "regime large base (%s %g)", ropex_regime_name(r), lim);
    r = ropex_scaling_regime(128, 10000, 4096, 10000, 0, &lim);
    CHECK(r == ROPEX_REGIME_UNCHANGED && lim == 4096, "regime unchanged");
    r = ropex_scaling_regime(128, 10000, 4096, 500, 0, &lim);
    CHECK(r == ROPEX_REGIME_SMALL_BASE && lim == 0, "regime small base");
    r = ropex_scaling_regime(128, 10000, 4096, 5000, 0, &lim);
    CHECK(r == ROPEX_REGIME_TUNING_BOUND && lim == 4096, "regime tuning bound at 4K");
    r = ropex_scaling_regime(128, 10000, 4096, 40000, 16384, &lim);
    CHECK(r == ROPEX_REGIME_TUNING_BOUND && lim == 16384, "regime tuning bound at 16K");
    r = ropex_scaling_regime(128, 10000, 4096, 1e6, 16384, &lim);
    CHECK(r == ROPEX_REGIME_LARGE_BASE && fabs(lim - 129027) < 0.5, "Code LLaMA fits the law");
    r = ropex_scaling_regime(128, 10000, 4096, 10000, 16384, &lim);
    CHECK(r == ROPEX_REGIME_SMALL_BASE, "10000 at 16K is below b1 = 10430");
    r = ropex_scaling_regime(128, 500000, 8192, 4e6, 0, &lim);
    CHECK(r == ROPEX_REGIME_LARGE_BASE && fabs(lim - 2 * PI_D * pow(4e6, 70.0 / 128)) < 1e-6, "b0 = 5e5 large base");
    CHECK(strcmp(ropex_regime_name(ROPEX_REGIME_SMALL_BASE), "small-base") == 0, "regime name");
}


/* ---- the shared command-line parser (tools/rope_opts.h) ---- */
static int parse_all(int argc, char **argv, ropex_rope_config *c, rope_opts_extra *ex) {
    int i, r = 1;
    rope_opts_init(c, ex);
    for (i = 0; i < argc && r > 0; i++) r = rope_opts_parse(&i, argc, argv, c, ex);
    return r;
}

static void test_rope_opts(void) {
    ropex_rope_config c, model;
    rope_opts_extra ex;
    char *a1[] = { (char *)"--rope-base", (char *)"500000", (char *)"--rope-scaling=yarn", (char *)"--rope-factor",
                   (char *)"4", (char *)"--train-ctx", (char *)"4096", (char *)"--yarn-beta-fast", (char *)"16",
                   (char *)"--yarn-no-truncate", (char *)"--truncate", (char *)"clamp", (char *)"--logn-ctx",
                   (char *)"8192", (char *)"--rope-layout", (char *)"half", (char *)"--rope-dims", (char *)"64",
                   (char *)"--kv-size", (char *)"256", (char *)"--sinks", (char *)"4", (char *)"--kv-type",
                   (char *)"q8_0", (char *)"--positions", (char *)"cache", (char *)"--threads", (char *)"2",
                   (char *)"--length", (char *)"100000" };
    char *bad[][2] = { { (char *)"--rope-factor", (char *)"x" }, { (char *)"--rope-scaling", (char *)"ntk2" },
                       { (char *)"--rope-base", (char *)"nan" }, { (char *)"--train-ctx", (char *)"-1" },
                       { (char *)"--kv-type", (char *)"q4" }, { (char *)"--positions", (char *)"slot" },
                       { (char *)"--truncate", (char *)"cut" }, { (char *)"--rope-layout", (char *)"neox" },
                       { (char *)"--threads", (char *)"0" }, { (char *)"--rope-factor", (char *)"1e999" },
                       { (char *)"--rope-freq-factors", (char *)"tests/data/no-such-file.txt" } };
    char *nov[] = { (char *)"--rope-factor" };
    char *flagval[] = { (char *)"--logn=1" };
    char *other[] = { (char *)"--model", (char *)"x.gguf" };
    int k;
    CHECK(parse_all(30, a1, &c, &ex) == 1, "parse all");
    CHECK(c.base == 500000 && c.scaling == ROPEX_SCALE_YARN && c.factor == 4 && c.train_ctx == 4096 &&
          c.yarn_beta_fast == 16 && c.yarn_no_truncate == 1 && c.truncate == ROPEX_TRUNC_CLAMP && c.logn == 1 &&
          c.logn_ctx == 8192 && c.layout == ROPEX_LAYOUT_HALF && c.rot_dims == 64, "rope fields");
    CHECK(ex.kv_size == 256 && ex.sinks == 4 && ex.kv_type == ROPEX_Q8_0 && ex.positions == ROPEX_POS_CACHE &&
          ex.threads == 2 && ex.length == 100000 && ex.kv_set == (KV_OPT_SIZE | KV_OPT_SINKS | KV_OPT_TYPE |
          KV_OPT_POSITIONS | KV_OPT_THREADS), "kv fields");
    CHECK((ex.set & (ROPE_OPT_BASE | ROPE_OPT_SCALING | ROPE_OPT_LOGN | ROPE_OPT_LOGN_CTX)) ==
          (ROPE_OPT_BASE | ROPE_OPT_SCALING | ROPE_OPT_LOGN | ROPE_OPT_LOGN_CTX) && !(ex.set & ROPE_OPT_LLAMA3_LOW), "set bits");
    c.head_dim = 128;
    CHECK(rope_opts_finish(&c, &ex) == 0, "finish ok");
    opts_err = tmpfile();
    for (k = 0; k < (int)(sizeof bad / sizeof bad[0]); k++) CHECK(parse_all(2, bad[k], &c, &ex) == -1, "bad value %s %s", bad[k][0], bad[k][1]);
    CHECK(parse_all(1, nov, &c, &ex) == -1, "missing value");
    CHECK(parse_all(1, flagval, &c, &ex) == -1, "flag with value");
    {
        int i = 0;
        rope_opts_init(&c, &ex);
        CHECK(rope_opts_parse(&i, 2, other, &c, &ex) == 0 && i == 0, "not ours");
    }
    /* overlay: a new scaling drops the model's old method parameters; a new base keeps train_base */
    model = base_cfg(64, 10000); model.train_ctx = 2048; model.scaling = ROPEX_SCALE_LINEAR; model.factor = 4;
    {
        char *a2[] = { (char *)"--rope-scaling", (char *)"none", (char *)"--rope-base", (char *)"40000" };
        parse_all(4, a2, &c, &ex);
        rope_opts_overlay(&model, &c, &ex);
        CHECK(model.scaling == ROPEX_SCALE_NONE && model.factor == 0 && model.base == 40000 && model.train_base == 10000 &&
              model.train_ctx == 2048 && model.head_dim == 64, "overlay");
        CHECK(rope_opts_finish(&model, &ex) == 0, "overlay result valid");
    }
    /* LongRoPE factor file: two lists, length checked against rot_dims/2 */
    {
        FILE *f = fopen("build/test_rope_factors.txt", "w");
        CHECK(f != NULL, "cannot write build/test_rope_factors.txt");
        if (f) {
            char *a3[] = { (char *)"--rope-scaling", (char *)"longrope", (char *)"--rope-freq-factors",
                           (char *)"build/test_rope_factors.txt", (char *)"--train-ctx", (char *)"4096", (char *)"--rope-factor", (char *)"32" };
            ropex_rope_table t;
            fprintf(f, "# short\n1, 1.5, 2, 2.5\n\n3 4 5 6\n");
            fclose(f);
            CHECK(parse_all(8, a3, &c, &ex) == 1 && ex.longrope_n == 4, "factor file read");
            c.head_dim = 8;
            CHECK(rope_opts_finish(&c, &ex) == 0, "factor file fits head_dim 8");
            if (ropex_rope_table_init(&t, &c, 5000) == ROPEX_OK)
                CHECK_NEAR(t.inv_freq[3], pow(10000.0, -6.0 / 8) / 6.0, 1e-15, "long list used past L0");
            else CHECK(0, "longrope table");
            c.head_dim = 16;
            CHECK(rope_opts_finish(&c, &ex) == -1, "factor list length mismatch rejected");
            f = fopen("build/test_rope_factors.txt", "w");
            if (f) { fprintf(f, "1 2 3 4\n1 2 3\n"); fclose(f); }
            CHECK(parse_all(8, a3, &c, &ex) == -1, "unequal lists rejected");
            remove("build/test_rope_factors.txt");
        }
    }
    if (opts_err) {
        CHECK(ftell(opts_err) > 200, "error messages were written (%ld bytes)", ftell(opts_err));
        fclose(opts_err);
        opts_err = NULL;
    }
}

int main(void) {
    int j;
    for (j = 0; j < 64; j++) { lr_short[j] = 1.0f + 0.01f * (float)j; lr_long[j] = 1.0f + 0.5f * (float)j; }
    test_tables();
    test_precision();
    test_rotation();
    test_truncation_logn();
    test_validation();
    test_scaling_laws();
    test_rope_opts();
    return TEST_END("test_rope");
}
