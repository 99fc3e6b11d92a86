/* Streaming attention and the ring-buffer KV cache against an independent float64 reference:
   rotation, log-n, magnitude and a two-pass softmax written here from the formulas, over the key
   set each policy defines (TEXT: sinks + ring at text positions; CACHE: the same tokens at
   positions 0..n-1 in cache order, query at its slot). */
#include "../ropex.h"
#include "test_util.h"
#include <stdlib.h>
#include <string.h>

static int quick;

/* ---- deterministic data: value i of (token, layer, kind) in [-1, 1] ---- */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}
static void gen(uint64_t seed, int64_t tok, int layer, int kind, float *x, int n) {
    uint64_t s = mix64(seed * 1000003ULL + (uint64_t)tok * 7919ULL + (uint64_t)layer * 104729ULL + (uint64_t)kind);
    int i;
    for (i = 0; i < n; i++) {
        s = mix64(s + 0x9e3779b97f4a7c15ULL);
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

typedef struct scen {
    int n_layers, n_kv, hd, n_heads, cap, n_sink;
    ropex_type kt, vt;
    ropex_pos_policy pol;
    ropex_rope_config rope;
    uint64_t seed;
    float qgain;   /* q magnitude (sharper softmax) */
} scen;

static scen scen_default(void) {
    scen s;
    memset(&s, 0, sizeof(s));
    s.n_layers = 2; s.n_kv = 2; s.hd = 32; s.n_heads = 4; s.cap = 64; s.n_sink = 4;
    s.kt = ROPEX_F32; s.vt = ROPEX_F32; s.pol = ROPEX_POS_TEXT;
    s.rope.head_dim = 32;
    s.seed = 1;
    s.qgain = 3.0f;
    return s;
}

static void gen_q(const scen *s, int64_t t, int l, float *q) {
    int i, n = s->n_heads * s->hd;
    gen(s->seed, t, l, 0, q, n);
    for (i = 0; i < n; i++) q[i] *= s->qgain;
}
static void gen_k(const scen *s, int64_t t, int l, float *k) { gen(s->seed, t, l, 1, k, s->n_kv * s->hd); }
static void gen_v(const scen *s, int64_t t, int l, float *v) { gen(s->seed, t, l, 2, v, s->n_kv * s->hd); }

/* ---- reference frequencies (independent of the rope module except where noted) ---- */
typedef struct reff { double w[256]; double m; int np, half; int64_t clamp[256]; int zero[256]; } reff;

static void ref_freqs(const ropex_rope_config *c, int64_t L, reff *f) {
    int rot = c->rot_dims ? c->rot_dims : c->head_dim, j;
    double base = c->base ? c->base : 10000.0;
    f->np = rot / 2; f->half = c->layout == ROPEX_LAYOUT_HALF; f->m = 1.0;
    for (j = 0; j < f->np; j++) { f->clamp[j] = -1; f->zero[j] = 0; }
    if (c->truncate != ROPEX_TRUNC_NONE) {
        /* which pairs lie past the critical dimension is the rope module's (tested there); the
           position rule is checked here: clamp to train_ctx-1, or zero those coordinates */
        ropex_rope_table t;
        ropex_rope_table_init(&t, c, L);
        for (j = 0; j < f->np; j++) {
            if (t.clamp_pos[j] >= 0) f->clamp[j] = c->train_ctx - 1;
            f->zero[j] = t.zero[j];
        }
    }
    if (c->scaling == ROPEX_SCALE_DYNAMIC && L > c->train_ctx) {
        /* Hugging Face: base * (s*L/L0 - (s-1))^(d/(d-2)) */
        double s = c->factor ? c->factor : 1.0;
        base = base * pow(s * (double)L / (double)c->train_ctx - (s - 1.0), (double)rot / (double)(rot - 2));
    }
    for (j = 0; j < f->np; j++) f->w[j] = pow(base, -2.0 * j / rot);
    if (c->scaling == ROPEX_SCALE_LINEAR) for (j = 0; j < f->np; j++) f->w[j] /= c->factor;
    if (c->scaling == ROPEX_SCALE_YARN) {
        /* YaRN's per-pair frequency blend is the rope module's (tested there); the magnitude is
           checked here: 0.1 ln s + 1 multiplies q and k. */
        ropex_rope_table t;
        ropex_rope_table_init(&t, c, L);
        for (j = 0; j < f->np; j++) f->w[j] = t.inv_freq[j];
        f->m = 0.1 * log(c->factor) + 1.0;
    }
}

static void ref_rotate(const reff *f, int hd, const float *x, int64_t pos, double *y) {
    int i, j;
    for (i = 0; i < hd; i++) y[i] = x[i];
    for (j = 0; j < f->np; j++) {
        int ia = f->half ? j : 2 * j, ib = f->half ? j + f->np : 2 * j + 1;
        int64_t pj = f->clamp[j] >= 0 && pos > f->clamp[j] ? f->clamp[j] : pos;
        double a = x[ia], b = x[ib], ang = (double)pj * f->w[j];
        y[ia] = (a * cos(ang) - b * sin(ang)) * f->m;
        y[ib] = (a * sin(ang) + b * cos(ang)) * f->m;
        if (f->zero[j]) y[ia] = y[ib] = 0.0;
    }
}

/* Reference outputs of query token p, layer l, all heads (out: n_heads x hd), two-pass softmax. */
static void ref_out(const scen *s, int64_t p, int l, double *out) {
    int hd = s->hd, g = s->n_heads / s->n_kv, h, kh, i;
    int64_t R = s->cap - s->n_sink, ns = s->n_sink < p + 1 ? s->n_sink : p + 1;
    int64_t lo = p - R + 1 > s->n_sink ? p - R + 1 : s->n_sink, t, qpos, idx;
    int64_t nk = ns + (p - lo + 1 > 0 ? p - lo + 1 : 0);
    float *q = (float *)malloc(sizeof(float) * (size_t)(s->n_heads * hd));
    float *k = (float *)malloc(sizeof(float) * (size_t)(s->n_kv * hd));
    float *v = (float *)malloc(sizeof(float) * (size_t)(s->n_kv * hd));
    double *sc = (double *)malloc(sizeof(double) * (size_t)nk * (size_t)s->n_heads);
    double *qr = (double *)malloc(sizeof(double) * (size_t)(s->n_heads * hd));
    double *kr = (double *)malloc(sizeof(double) * (size_t)(s->n_kv * hd));
    double mx[256], sum[256], lg = 1.0;   /* n_heads <= 256 in these tests */
    reff f;
    qpos = s->pol == ROPEX_POS_CACHE && p > s->cap - 1 ? s->cap - 1 : p;
    ref_freqs(&s->rope, qpos + 1, &f);   /* length-dependent tables: L = query position + 1 */
    gen_q(s, p, l, q);
    if (s->rope.logn) {
        double L = s->rope.logn_ctx ? s->rope.logn_ctx : s->rope.train_ctx;
        lg = log((double)qpos + 1.0) / log(L);
        if (lg < 1.0) lg = 1.0;
    }
    for (h = 0; h < s->n_heads; h++) {
        ref_rotate(&f, hd, q + h * hd, qpos, qr + h * hd);
        for (i = 0; i < hd; i++) qr[h * hd + i] *= lg / sqrt((double)hd);
        mx[h] = -1e300; sum[h] = 0;
    }
    /* pass 1: scores */
    for (idx = 0; idx < nk; idx++) {
        int64_t kp;
        t = idx < ns ? idx : lo + (idx - ns);
        kp = s->pol == ROPEX_POS_CACHE ? idx : t;   /* CACHE: positions 0..n-1 in cache order */
        gen_k(s, t, l, k);
        for (kh = 0; kh < s->n_kv; kh++) ref_rotate(&f, hd, k + kh * hd, kp, kr + kh * hd);
        for (h = 0; h < s->n_heads; h++) {
            double d = 0;
            for (i = 0; i < hd; i++) d += qr[h * hd + i] * kr[(h / g) * hd + i];
            sc[idx * s->n_heads + h] = d;
            if (d > mx[h]) mx[h] = d;
        }
    }
    /* pass 2: softmax and values */
    for (i = 0; i < s->n_heads * hd; i++) out[i] = 0;
    for (idx = 0; idx < nk; idx++) {
        t = idx < ns ? idx : lo + (idx - ns);
        gen_v(s, t, l, v);
        for (h = 0; h < s->n_heads; h++) {
            double w = exp(sc[idx * s->n_heads + h] - mx[h]);
            sum[h] += w;
            for (i = 0; i < hd; i++) out[h * hd + i] += w * v[(h / g) * hd + i];
        }
    }
    for (h = 0; h < s->n_heads; h++)
        for (i = 0; i < hd; i++) out[h * hd + i] /= sum[h];
    free(q); free(k); free(v); free(sc); free(qr); free(kr);
}

/* ---- library runs ---- */
typedef struct run {
    ropex_kv kv;
    void *buf;
    scen s;
} run;

static ropex_status run_init(run *r, const scen *s) {
    ropex_kv_config c;
    size_t b;
    memset(&c, 0, sizeof(c));
    c.n_layers = s->n_layers; c.n_kv_heads = s->n_kv; c.head_dim = s->hd; c.capacity = s->cap;
    c.n_sink = s->n_sink; c.k_type = s->kt; c.v_type = s->vt; c.positions = s->pol;
    r->s = *s;
    b = ropex_kv_bytes(&c);
    r->buf = malloc(b ? b : 1);
    return ropex_kv_init(&r->kv, &c, &s->rope, r->buf, b);
}
static void run_free(run *r) { free(r->buf); r->buf = NULL; }

/* Feeds tokens [kv.n_past, kv.n_past + n) as one attention call per layer; outputs of layer l
   token i at out[((i * n_layers) + l) * n_heads * hd] (out may be NULL: outputs dropped). */
static int run_chunk(run *r, int n, float *out, ropex_threads *th) {
    const scen *s = &r->s;
    size_t qn = (size_t)s->n_heads * s->hd, kn = (size_t)s->n_kv * s->hd;
    float *q = (float *)malloc(sizeof(float) * qn * n), *k = (float *)malloc(sizeof(float) * kn * n);
    float *v = (float *)malloc(sizeof(float) * kn * n), *o = (float *)malloc(sizeof(float) * qn * n);
    int l, i, ok = 1;
    for (l = 0; l < s->n_layers; l++) {
        for (i = 0; i < n; i++) {
            int64_t t = r->kv.n_past + i;
            gen_q(s, t, l, q + i * qn); gen_k(s, t, l, k + i * kn); gen_v(s, t, l, v + i * kn);
        }
        if (ropex_attention(&r->kv, l, s->n_heads, q, k, v, n, o, th) != ROPEX_OK) ok = 0;
        if (out) for (i = 0; i < n; i++) memcpy(out + ((size_t)i * s->n_layers + l) * qn, o + i * qn, sizeof(float) * qn);
    }
    if (ropex_kv_advance(&r->kv, n) != ROPEX_OK) ok = 0;
    free(q); free(k); free(v); free(o);
    return ok;
}

/* Stores n tokens without attending (fast prefill for long decode tests). */
static int run_store(run *r, int64_t n) {
    const scen *s = &r->s;
    size_t kn = (size_t)s->n_kv * s->hd;
    int B = 512, l, i, ok = 1;
    float *k = (float *)malloc(sizeof(float) * kn * B), *v = (float *)malloc(sizeof(float) * kn * B);
    while (n > 0) {
        int m = n < B ? (int)n : B;
        for (l = 0; l < s->n_layers; l++) {
            for (i = 0; i < m; i++) { gen_k(s, r->kv.n_past + i, l, k + i * kn); gen_v(s, r->kv.n_past + i, l, v + i * kn); }
            if (ropex_kv_store(&r->kv, l, k, v, m) != ROPEX_OK) ok = 0;
        }
        if (ropex_kv_advance(&r->kv, m) != ROPEX_OK) ok = 0;
        n -= m;
    }
    free(k); free(v);
    return ok;
}

/* chunking: 0 = one call, 1 = token by token, 2 = random sizes 1..maxc */
static float *stream(const scen *s, int N, int chunking, int maxc, ropex_threads *th, int *ok) {
    run r;
    size_t qn = (size_t)s->n_heads * s->hd;
    float *out = (float *)malloc(sizeof(float) * qn * s->n_layers * N);
    int done = 0;
    uint64_t rs = 12345;
    *ok = run_init(&r, s) == ROPEX_OK;
    if (!*ok) { run_free(&r); return out; }
    while (done < N) {
        int n = N - done;
        if (chunking == 1) n = 1;
        else if (chunking == 2) { rs = mix64(rs + 1); n = 1 + (int)(rs % (uint64_t)maxc); if (n > N - done) n = N - done; }
        if (!run_chunk(&r, n, out + (size_t)done * s->n_layers * qn, th)) *ok = 0;
        done += n;
    }
    run_free(&r);
    return out;
}

/* Max abs difference between library outputs (stream) and the reference over tokens [t0, t1). */
static double err_vs_ref(const scen *s, const float *out, int64_t t0, int64_t t1, int64_t base_tok, int step) {
    size_t qn = (size_t)s->n_heads * s->hd;
    double worst = 0, *ref = (double *)malloc(sizeof(double) * qn);
    int64_t t;
    int l;
    size_t i;
    if (quick && t1 - t0 > 64) step *= 5;   /* fewer reference checks under qemu / sanitizers */
    for (t = t0; t < t1; t += step)
        for (l = 0; l < s->n_layers; l++) {
            const float *o = out + ((size_t)(t - base_tok) * s->n_layers + l) * qn;
            ref_out(s, t, l, ref);
            for (i = 0; i < qn; i++) { double e = fabs(o[i] - ref[i]); if (e > worst || e != e) worst = e != e ? 1e9 : e; }
        }
    free(ref);
    return worst;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double w = 0;
    size_t i;
    for (i = 0; i < n; i++) { double e = fabs((double)a[i] - b[i]); if (e > w || e != e) w = e != e ? 1e9 : e; }
    return w;
}

static void test_basic(void) {
    int variant, ok;
    for (variant = 0; variant < 7; variant++) {
        scen s = scen_default();
        float *out;
        double e;
        char what[96];
        s.cap = 256; s.n_sink = 0;
        if (variant == 1) { s.n_kv = 1; s.n_heads = 4; }                 /* MQA */
        if (variant == 2) { s.n_kv = 4; s.n_heads = 4; }                 /* MHA */
        if (variant == 3) { s.rope.layout = ROPEX_LAYOUT_HALF; s.rope.rot_dims = 16; s.n_sink = 2; }
        if (variant == 4) { s.hd = 64; s.rope.head_dim = 64; s.n_heads = 8; s.rope.base = 500000; }
        if (variant == 5) { s.hd = 8; s.rope.head_dim = 8; s.n_kv = 4; s.n_heads = 8; } /* stories260K shape */
        if (variant == 6) { s.hd = 16; s.rope.head_dim = 16; s.n_kv = 2; s.n_heads = 160; s.kt = ROPEX_Q8_0; s.vt = ROPEX_F16; }
        /* ^ 80 query heads per kv head: several passes of at most 64 heads over the cache */
        out = stream(&s, variant == 6 ? 30 : 100, 0, 0, NULL, &ok);
        CHECK(ok, "basic variant %d ran", variant);
        e = err_vs_ref(&s, out, 0, variant == 6 ? 30 : 100, 0, 1);
        sprintf(what, "prompt of 100 vs float64 reference, variant %d", variant);
        CHECK_NEAR(e, 0, variant == 6 ? 2e-2 : 2e-5, what);
        free(out);
    }
}

/* Sinks across many wraps, TEXT and CACHE, against recomputes over the kept tokens. */
static void test_wraps_policies(void) {
    int pol, ok;
    for (pol = 0; pol < 2; pol++) {
        scen s = scen_default();
        float *out;
        int N = quick ? 400 : 1500;
        double e;
        s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
        s.cap = 40; s.n_sink = 4;
        out = stream(&s, N, 2, 90, NULL, &ok);
        CHECK(ok, "stream ran");
        e = err_vs_ref(&s, out, 0, N, 0, 1);
        CHECK_NEAR(e, 0, 3e-5, pol ? "CACHE == recompute of sinks + last W at positions 0..n-1"
                                   : "TEXT == recompute over kept tokens at text positions");
        free(out);
    }
    /* The two policies really differ once the ring wraps (the test can fail). */
    {
        scen a = scen_default(), b;
        float *oa, *ob;
        a.cap = 40; b = a; b.pol = ROPEX_POS_CACHE;
        oa = stream(&a, 120, 0, 0, NULL, &ok); ob = stream(&b, 120, 0, 0, NULL, &ok);
        CHECK(max_diff(oa, ob, (size_t)40 * 2 * 4 * 32) == 0, "TEXT == CACHE before the first wrap");
        CHECK(max_diff(oa, ob, (size_t)120 * 2 * 4 * 32) > 1e-3, "TEXT != CACHE after wraps");
        free(oa); free(ob);
    }
}

/* One call, random chunks, token by token, threads: same outputs. */
static void test_chunking(ropex_threads *th2) {
    int pol, kt, ok;
    for (pol = 0; pol < 2; pol++)
        for (kt = 0; kt < 3; kt++) {
            scen s = scen_default();
            float *a, *b, *c, *d;
            int N = quick ? 160 : 300;
            size_t n;
            s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
            s.cap = 50; s.n_sink = 3;
            s.kt = kt == 0 ? ROPEX_F32 : kt == 1 ? ROPEX_F16 : ROPEX_Q8_0;
            s.vt = kt == 2 ? ROPEX_Q8_0 : ROPEX_F16;
            if (kt) s.n_heads = 8 + 2 * kt;   /* groups of 5 and 6: four-query kernels plus a remainder */
            n = (size_t)N * s.n_layers * s.n_heads * s.hd;
            a = stream(&s, N, 0, 0, NULL, &ok);      /* one call: 300 tokens > ring of 47 */
            b = stream(&s, N, 1, 0, NULL, &ok);
            c = stream(&s, N, 2, 120, NULL, &ok);
            d = stream(&s, N, 2, 7, th2, &ok);
            CHECK(ok, "chunk streams ran");
            CHECK_NEAR(max_diff(a, b, n), 0, 1e-5, "one call == token by token");
            CHECK_NEAR(max_diff(a, c, n), 0, 1e-5, "one call == random chunks");
            CHECK(max_diff(a, d, n) == 0, "2 threads bit-identical to 1 (pol %d kt %d)", pol, kt);
            CHECK(err_vs_ref(&s, a, 0, N, 0, 3) < (kt == 2 ? 3e-2 : 2e-3), "chunk stream vs float64 (pol %d kt %d)", pol, kt);
            free(a); free(b); free(c); free(d);
        }
}

/* Long decode: one query over up to 64K keys (prefill by ropex_kv_store). */
static void test_long_decode(void) {
    int variant;
    for (variant = 0; variant < 2; variant++) {
        scen s = scen_default();
        run r;
        float out[2 * 4 * 32];
        int64_t N = quick ? 2048 : 65536;
        double e;
        s.n_layers = 1; s.cap = (int)N + 8; s.n_sink = 0; s.qgain = 6.0f;
        if (variant == 1) { s.n_kv = 1; s.cap = (int)N / 2; s.n_sink = 4; s.rope.base = 1e6; }   /* MQA, wrapped */
        CHECK(run_init(&r, &s) == ROPEX_OK, "long init");
        CHECK(run_store(&r, N), "prefill by kv_store");
        CHECK(run_chunk(&r, 2, out, NULL), "decode");
        e = err_vs_ref(&s, out, N, N + 2, N, 1);
        CHECK_NEAR(e, 0, 2e-5, variant ? "decode over 32K keys (MQA, sinks, wrapped) vs float64"
                                       : "decode over 64K keys (GQA) vs float64");
        run_free(&r);
    }
}

/* Wide heads (128 dims) in Q8_0 and fp16 storage, two query heads per kv head, a ring whose wrap
   falls inside tiles: the full tiles (prefetch hints spread through the loops) and the tiles cut
   at the wrap (hints in bursts) agree with float64. */
static void test_wide_heads(void) {
    static const struct { ropex_type kt, vt; double bound; } cs[] = {
        { ROPEX_Q8_0, ROPEX_Q8_0, 3e-2 }, { ROPEX_F16, ROPEX_F16, 2e-3 }, { ROPEX_Q8_0, ROPEX_F16, 3e-2 }, { ROPEX_F16, ROPEX_Q8_0, 1e-2 } };
    int i, ok;
    for (i = 0; i < 4; i++) {
        scen s = scen_default();
        float *out;
        double e;
        s.hd = 128; s.rope.head_dim = 128; s.n_kv = 2; s.n_heads = 4;
        s.kt = cs[i].kt; s.vt = cs[i].vt; s.cap = 70; s.n_sink = 4; s.pol = i & 1 ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
        out = stream(&s, 160, 2, 40, NULL, &ok);
        e = err_vs_ref(&s, out, 0, 160, 0, 1);
        CHECK(ok && e <= cs[i].bound && e > 0, "128-dim heads, %s keys, %s values: error vs float64 %.2g",
              cs[i].kt == ROPEX_F16 ? "f16" : "q8_0", cs[i].vt == ROPEX_F16 ? "f16" : "q8_0", e);
        free(out);
    }
}

/* Quantized storage: error bounds vs the float64 reference, K and V separately. */
static void test_quant_bounds(void) {
    /* Bounds for |x| <= 1: q8_0 element error <= amax/254, q4_0 <= amax/8 (GGML clamps the
       nibble at 15), f16 ~ 2^-11; key errors are amplified by |q| / sqrt(d) in the logits. */
    static const struct { ropex_type kt, vt; double bound; const char *name; } cs[] = {
        { ROPEX_F16, ROPEX_F32, 2e-3, "K f16" }, { ROPEX_F32, ROPEX_F16, 1e-3, "V f16" },
        { ROPEX_Q8_0, ROPEX_F32, 2.5e-2, "K q8_0" }, { ROPEX_F32, ROPEX_Q8_0, 1e-2, "V q8_0" },
        { ROPEX_F32, ROPEX_Q4_0, 1.4e-1, "V q4_0" }, { ROPEX_Q8_0, ROPEX_Q8_0, 3e-2, "K+V q8_0" } };
    int i, ok;
    for (i = 0; i < 6; i++) {
        scen s = scen_default();
        float *out;
        double e;
        char what[64];
        s.kt = cs[i].kt; s.vt = cs[i].vt; s.cap = 48; s.n_sink = 4; s.pol = i & 1 ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
        out = stream(&s, 200, 2, 30, NULL, &ok);
        e = err_vs_ref(&s, out, 0, 200, 0, 1);
        sprintf(what, "%s error vs float64 (%.2g)", cs[i].name, e);
        CHECK(ok && e <= cs[i].bound && e > 0, "%s", what);
        free(out);
    }
    /* Q8_0 keys with head_dim 8 (blocks span kv heads, generic path). */
    {
        scen s = scen_default();
        float *out;
        double e;
        s.hd = 8; s.rope.head_dim = 8; s.n_kv = 4; s.n_heads = 8; s.kt = ROPEX_Q8_0; s.vt = ROPEX_Q8_0; s.cap = 20;
        out = stream(&s, 100, 2, 30, NULL, &ok);
        e = err_vs_ref(&s, out, 0, 100, 0, 1);
        CHECK(ok && e < 3e-2, "q8_0 head_dim 8 error %.3g", e);
        free(out);
    }
}

/* Thousands of wraps with Q8_0 keys: error after 5000 wraps no larger than after 100. */
static void test_many_wraps(void) {
    int pol;
    for (pol = 0; pol < 2; pol++) {
        scen s = scen_default();
        run r;
        float out[4 * 2 * 4 * 32];
        int R, wraps_a = 100, wraps_b = quick ? 400 : 5000;
        double ea, eb;
        s.kt = ROPEX_Q8_0; s.vt = ROPEX_Q8_0; s.cap = 36; s.n_sink = 4; s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
        R = s.cap - s.n_sink;
        CHECK(run_init(&r, &s) == ROPEX_OK, "init");
        run_store(&r, (int64_t)wraps_a * R);
        run_chunk(&r, 4, out, NULL);
        ea = err_vs_ref(&s, out, (int64_t)wraps_a * R, (int64_t)wraps_a * R + 4, (int64_t)wraps_a * R, 1);
        run_store(&r, (int64_t)(wraps_b - wraps_a) * R - 4);
        run_chunk(&r, 4, out, NULL);
        eb = err_vs_ref(&s, out, (int64_t)wraps_b * R, (int64_t)wraps_b * R + 4, (int64_t)wraps_b * R, 1);
        CHECK(ea < 3e-2 && eb < 3e-2 && eb < 2.0 * ea + 5e-3, "q8_0 error after %d wraps %.3g, after %d wraps %.3g (pol %d)",
              wraps_a, ea, wraps_b, eb, pol);
        run_free(&r);
    }
}

/* Dynamic NTK: every query uses the table at L = qpos + 1 for itself and all its keys. */
static void test_dynamic(void) {
    int pol, ok;
    for (pol = 0; pol < 2; pol++) {
        scen s = scen_default();
        float *out, *out2;
        double e;
        s.rope.scaling = ROPEX_SCALE_DYNAMIC; s.rope.factor = 2.0; s.rope.train_ctx = 16;
        s.cap = pol ? 40 : 256; s.n_sink = pol ? 4 : 0; s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
        out = stream(&s, 150, 2, 25, NULL, &ok);
        CHECK(ok, "dynamic stream");
        e = err_vs_ref(&s, out, 0, 150, 0, 1);
        CHECK_NEAR(e, 0, 3e-5, pol ? "dynamic NTK, CACHE ring, vs recompute at L = slot+1"
                                   : "dynamic NTK, TEXT, vs recompute at L = p+1 for all keys");
        /* q8_0 keys stored raw: quantization error only */
        s.kt = ROPEX_Q8_0;
        out2 = stream(&s, 150, 1, 0, NULL, &ok);
        e = err_vs_ref(&s, out2, 0, 150, 0, 1);
        CHECK(ok && e < 3e-2, "dynamic NTK q8_0 keys error %.3g", e);
        free(out); free(out2);
    }
}

/* Runtime base change mid-stream == a run that used the new base from the start. */
static void test_set_rope(void) {
    int kt, pol;
    for (kt = 0; kt < 2; kt++)
        for (pol = 0; pol < 2; pol++) {
            scen s = scen_default(), s2;
            run r, r2;
            size_t qn = (size_t)s.n_heads * s.hd, n;
            float *o1 = (float *)malloc(sizeof(float) * qn * 2 * 30), *o2 = (float *)malloc(sizeof(float) * qn * 2 * 30);
            ropex_rope_config nr;
            double e;
            s.kt = kt ? ROPEX_Q8_0 : ROPEX_F32; s.cap = 48; s.n_sink = 4; s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT;
            s2 = s; s2.rope.base = 40000.0;
            nr = s2.rope;
            run_init(&r, &s); run_init(&r2, &s2);
            run_chunk(&r, 100, NULL, NULL); run_chunk(&r2, 100, NULL, NULL);
            CHECK(ropex_kv_set_rope(&r.kv, &nr) == ROPEX_OK, "set_rope");
            r.s = s2;
            run_chunk(&r, 30, o1, NULL); run_chunk(&r2, 30, o2, NULL);
            n = qn * 2 * 30;
            e = max_diff(o1, o2, n);
            if (kt == 0) CHECK_NEAR(e, 0, 1e-5, "base change mid-stream == from-scratch at new base (f32)");
            else CHECK(e < 2e-2, "base change mid-stream q8_0 vs from-scratch: %.3g", e);
            e = err_vs_ref(&s2, o1, 100, 130, 100, 1);
            CHECK(e < (kt ? 3e-2 : 2e-5), "after base change vs float64 reference: %.3g", e);
            run_free(&r); run_free(&r2); free(o1); free(o2);
        }
}

/* YaRN magnitude (m^2 on logits) and log-n (query position rules: slot under CACHE). */
static void test_magnitudes(void) {
    int pol, ok;
    for (pol = 0; pol < 2; pol++) {
        scen s = scen_default();
        float *out;
        double e;
        s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT; s.cap = 48; s.n_sink = 4;
        s.rope.scaling = ROPEX_SCALE_YARN; s.rope.factor = 8.0; s.rope.train_ctx = 32;
        s.rope.logn = 1; s.rope.logn_ctx = 8;
        s.qgain = 2.0f;
        out = stream(&s, 160, 2, 33, NULL, &ok);
        e = err_vs_ref(&s, out, 0, 160, 0, 1);
        CHECK(ok, "yarn stream");
        CHECK_NEAR(e, 0, 3e-5, pol ? "YaRN m^2 and log-n at the cache slot (CACHE)" : "YaRN m^2 and log-n at text pos (TEXT)");
        /* Without m or log-n the reference disagrees (the factors matter here). */
        {
            scen t = s;
            t.rope.logn = 0;
            e = err_vs_ref(&t, out, 100, 110, 0, 1);
            CHECK(e > 1e-3, "log-n changes the output (%.3g)", e);
        }
        free(out);
    }
}

/* Critical-dimension truncation: CLAMP (stored raw and rotated at use under CACHE positions) and
   ZERO, both policies, across wraps. */
static void test_truncation(void) {
    int pol, tr, ok;
    for (tr = 0; tr < 2; tr++)
        for (pol = 0; pol < 2; pol++) {
            scen s = scen_default();
            float *out;
            double e;
            s.pol = pol ? ROPEX_POS_CACHE : ROPEX_POS_TEXT; s.cap = 40; s.n_sink = 2;
            s.rope.truncate = tr ? ROPEX_TRUNC_ZERO : ROPEX_TRUNC_CLAMP; s.rope.train_ctx = 24;
            s.kt = pol ? ROPEX_F16 : ROPEX_F32;
            out = stream(&s, 130, 2, 45, NULL, &ok);
            e = err_vs_ref(&s, out, 0, 130, 0, 1);
            CHECK(ok && e < (pol ? 2e-3 : 3e-5), "truncation %s, %s: error %.3g", tr ? "zero" : "clamp", pol ? "CACHE" : "TEXT", e);
            free(out);
        }
}

static void test_bad_args(void) {
    ropex_kv_config c;
    ropex_rope_config rc;
    ropex_kv kv;
    static unsigned char buf[1 << 16];
    float x[256];
    memset(&c, 0, sizeof(c)); memset(&rc, 0, sizeof(rc));
    c.n_layers = 1; c.n_kv_heads = 2; c.head_dim = 16; c.capacity = 8; c.n_sink = 2; rc.head_dim = 16;
    CHECK(ropex_kv_bytes(&c) > 0, "valid config has a size");
    CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_OK, "valid init");
    CHECK(ropex_kv_init(&kv, &c, &rc, NULL, sizeof(buf)) == ROPEX_ERR_ARG, "NULL buffer");
    CHECK(ropex_kv_init(NULL, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "NULL kv");
    CHECK(ropex_kv_init(&kv, &c, NULL, buf, sizeof(buf)) == ROPEX_ERR_ARG, "NULL rope");
    CHECK(ropex_kv_init(&kv, &c, &rc, buf, ropex_kv_bytes(&c) - 1) == ROPEX_ERR_BUFFER, "buffer too small");
    CHECK(ropex_kv_bytes(NULL) == 0, "bytes(NULL)");
    c.n_sink = 8; CHECK(ropex_kv_bytes(&c) == 0 && ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "capacity == sinks");
    c.n_sink = 9; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "capacity < sinks");
    c.n_sink = -1; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "negative sinks");
    c.n_sink = 0; c.capacity = 0; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "capacity 0");
    c.capacity = 8; c.head_dim = 15; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "odd head_dim");
    c.head_dim = 16; rc.head_dim = 32; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "rope head_dim mismatch");
    rc.head_dim = 16; c.k_type = ROPEX_Q4_0; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "q4_0 keys");
    c.k_type = (ropex_type)5; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "unknown type");
    c.k_type = ROPEX_Q8_0; c.n_kv_heads = 1; c.head_dim = 8; rc.head_dim = 8;
    CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_UNSUPPORTED, "q8_0 with a row of 8 values");
    c.n_kv_heads = 4; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_OK, "q8_0 with 4 heads x 8 dims");
    c.n_layers = 0; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "no layers");
    c.n_layers = 1; c.positions = (ropex_pos_policy)7; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_ERR_ARG, "bad policy");
    c.positions = ROPEX_POS_TEXT; rc.base = -1; CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) != ROPEX_OK, "bad rope");
    rc.base = 0;
    CHECK(ropex_kv_init(&kv, &c, &rc, buf, sizeof(buf)) == ROPEX_OK, "re-init");
    memset(x, 0, sizeof(x));
    CHECK(ropex_attention(&kv, 0, 6, x, x, x, 1, x + 128, NULL) == ROPEX_ERR_ARG, "heads not a multiple of kv heads");
    CHECK(ropex_attention(&kv, 0, 2, x, x, x, 1, x + 128, NULL) == ROPEX_ERR_ARG, "fewer heads than kv heads");
    CHECK(ropex_attention(&kv, 1, 4, x, x, x, 1, x + 128, NULL) == ROPEX_ERR_ARG, "layer out of range");
    CHECK(ropex_attention(&kv, 0, 4, NULL, x, x, 1, x + 128, NULL) == ROPEX_ERR_ARG, "NULL q");
    CHECK(ropex_attention(&kv, 0, 4, x, x, x, -1, x + 128, NULL) == ROPEX_ERR_ARG, "negative tokens");
    CHECK(ropex_attention(NULL, 0, 4, x, x, x, 1, x + 128, NULL) == ROPEX_ERR_ARG, "NULL kv");
    CHECK(ropex_kv_advance(&kv, -1) == ROPEX_ERR_ARG, "negative advance");
    rc.head_dim = 16; CHECK(ropex_kv_set_rope(&kv, &rc) == ROPEX_ERR_ARG, "set_rope head_dim mismatch");
    CHECK(ropex_kv_set_rope(&kv, NULL) == ROPEX_ERR_ARG, "set_rope NULL");
    CHECK(ropex_kv_store(&kv, 0, NULL, x, 1) == ROPEX_ERR_ARG, "store NULL k");
    /* Ring bookkeeping: n_kept saturates at capacity, slots follow the formula. */
    CHECK(ropex_attention(&kv, 0, 4, x, x, x, 1, x + 128, NULL) == ROPEX_OK, "one token");
    ropex_kv_advance(&kv, 1);
    ropex_kv_advance(&kv, 20);
    CHECK(ropex_kv_n_kept(&kv) == 8, "n_kept == capacity after 21 tokens");
    CHECK(ropex_kv_slot(&kv, 20) == 20 % 8, "slot formula");
    CHECK(kv.slot_pos[20 % 8] == 20 && kv.slot_pos[(20 - 8 + 1) % 8] == 13, "slot_pos bookkeeping");
    ropex_kv_reset(&kv);
    CHECK(ropex_kv_n_kept(&kv) == 0 && kv.n_past == 0, "reset");
}

int main(void) {
    ropex_threads *th2 = NULL;
    quick = getenv("ROPEX_TEST_QUICK") && atoi(getenv("ROPEX_TEST_QUICK")) != 0;
    if (ropex_threads_create(&th2, 2) != ROPEX_OK) th2 = NULL;
    test_bad_args();
    test_basic();
    test_wraps_policies();
    test_chunking(th2);
    test_quant_bounds();
    test_wide_heads();
    test_many_wraps();
    test_dynamic();
    test_set_rope();
    test_magnitudes();
    test_truncation();
    test_long_decode();
    if (th2) ropex_threads_destroy(th2);
    return TEST_END("test_attn");
}
