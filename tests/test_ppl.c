/* ropex-ppl reference check: every setting the tool can run is scored twice on a short stretch of real
   text with stories260K: once through the library (ropex_eval with logits_all, odd chunk size, as
   tools/ropex-ppl does), once by a slow float64 path written here from the reference formulas
   (../shared/reference/ROPE_VARIANTS.md, SCALING_LAWS.md): weights dequantized to double, naive
   attention over the keys each query may see, RoPE angles and tables recomputed per query, no cache.
   A tiny trained-length override (train:32 for 96 tokens) makes every extrapolation method active;
   the streaming ring is recomputed as "sinks + last W tokens" per query. Per-token log-probs must
   agree within 1e-4. */
#include "../ropex.h"
#include "test_util.h"
#include <stdlib.h>
#include <string.h>
#include "../tools/ppl_spec.h"

#define PI_D 3.14159265358979323846

typedef struct dmat { double *w; int rows, cols; } dmat;

typedef struct dmodel {
    int dim, hidden, n_layers, n_heads, n_kv, hd, vocab;
    double eps;
    dmat emb, out, onorm;
    dmat an[16], wq[16], wk[16], wv[16], wo[16], fn[16], w1[16], w2[16], w3[16];
} dmodel;

static int to_double(const ropex_tensor *t, dmat *m)
{
    size_t n = (size_t)t->rows * (size_t)t->cols, i, rb = ropex_row_bytes(t->type, (size_t)t->cols);
    float *f = (float *)malloc(n * sizeof(float));
    int r;
    m->rows = (int)t->rows; m->cols = (int)t->cols;
    m->w = (double *)malloc(n * sizeof(double));
    if (!f || !m->w || rb == 0) { free(f); return -1; }
    for (r = 0; r < m->rows; r++)
        if (ropex_dequantize(t->type, (const unsigned char *)t->data + (size_t)r * rb, f + (size_t)r * m->cols,
                             (size_t)m->cols) != ROPEX_OK) { free(f); return -1; }
    for (i = 0; i < n; i++) m->w[i] = f[i];
    free(f);
    return 0;
}

static int dmodel_load(dmodel *d, const ropex_model *m)
{
    int l, bad = 0;
    d->dim = m->hp.dim; d->hidden = m->hp.hidden_dim; d->n_layers = m->hp.n_layers; d->n_heads = m->hp.n_heads;
    d->n_kv = m->hp.n_kv_heads; d->hd = m->hp.head_dim; d->vocab = m->hp.vocab_size; d->eps = m->hp.rms_eps;
    if (d->n_layers > 16) return -1;
    bad |= to_double(&m->tok_embd, &d->emb) | to_double(&m->output, &d->out) | to_double(&m->output_norm, &d->onorm);
    for (l = 0; l < d->n_layers; l++) {
        const ropex_layer_weights *w = &m->layers[l];
        bad |= to_double(&w->attn_norm, &d->an[l]) | to_double(&w->wq, &d->wq[l]) | to_double(&w->wk, &d->wk[l]);
        bad |= to_double(&w->wv, &d->wv[l]) | to_double(&w->wo, &d->wo[l]) | to_double(&w->ffn_norm, &d->fn[l]);
        bad |= to_double(&w->w_gate, &d->w1[l]) | to_double(&w->w_down, &d->w2[l]) | to_double(&w->w_up, &d->w3[l]);
    }
    return bad ? -1 : 0;
}

static void dmodel_free(dmodel *d)
{
    int l;
    free(d->emb.w); free(d->out.w); free(d->onorm.w);
    for (l = 0; l < 16; l++) {
        free(d->an[l].w); free(d->wq[l].w); free(d->wk[l].w); free(d->wv[l].w); free(d->wo[l].w);
        free(d->fn[l].w); free(d->w1[l].w); free(d->w2[l].w); free(d->w3[l].w);
    }
}

static void dmat_vec(const dmat *m, const double *x, double *y)
{
    int r, c;
    for (r = 0; r < m->rows; r++) {
        double s = 0;
        const double *row = m->w + (size_t)r * m->cols;
        for (c = 0; c < m->cols; c++) s += row[c] * x[c];
        y[r] = s;
    }
}

static void rmsnorm(const double *x, const dmat *w, int n, double eps, double *y)
{
    double ss = 0;
    int i;
    for (i = 0; i < n; i++) ss += x[i] * x[i];
    ss = 1.0 / sqrt(ss / n + eps);
    for (i = 0; i < n; i++) y[i] = x[i] * ss * w->w[i];
}

/* ---- RoPE, independently from the reference formulas, for one query of sequence length qlen ---- */
typedef struct rtab { double inv[64]; int clamp[64]; int zero[64]; double mscale; int np; } rtab;

static void ref_table(const ropex_rope_config *r, int qlen, rtab *t)
{
    int d = r->rot_dims ? r->rot_dims : r->head_dim, np = d / 2, j;
    double B = r->base > 0 ? r->base : 10000.0, b0 = r->train_base > 0 ? r->train_base : B;
    double s = r->factor > 0 ? r->factor : 1.0, L0 = r->train_ctx;
    t->np = np;
    t->mscale = 1.0;
    if (r->scaling == ROPEX_SCALE_NTK) B = B * pow(s, (double)d / (d - 2));
    if (r->scaling == ROPEX_SCALE_DYNAMIC) {
        double L = qlen > L0 ? qlen : L0;   /* HF: base * ((s L / L0) - (s - 1))^(d/(d-2)) */
        B = B * pow(s * L / L0 - (s - 1), (double)d / (d - 2));
    }
    if (r->scaling == ROPEX_SCALE_DYNAMIC_QWEN) {
        double a = pow(2.0, ceil(log2((double)qlen / L0) + 1)) - 1;
        if (a < 1) a = 1;
        B = B * pow(a, (double)d / (d - 2));
    }
    for (j = 0; j < np; j++) {
        double w = pow(B, -2.0 * j / d);
        t->clamp[j] = 0;
        t->zero[j] = 0;
        if (r->scaling == ROPEX_SCALE_LINEAR) w /= s;
        t->inv[j] = w;
    }
    if (r->scaling == ROPEX_SCALE_LLAMA3) {
        /* Llama 3.1 bands by wavelength (ROPE_VARIANTS.md 2.5; low/high default 1/4) */
        double lo = r->llama3_low > 0 ? r->llama3_low : 1.0, hi = r->llama3_high > 0 ? r->llama3_high : 4.0;
        for (j = 0; j < np; j++) {
            double w = pow(B, -2.0 * j / d), wl = 2 * PI_D / w;
            if (wl < L0 / hi) t->inv[j] = w;
            else if (wl > L0 / lo) t->inv[j] = w / s;
            else {
                double sm = (L0 / wl - lo) / (hi - lo);
                t->inv[j] = (1 - sm) * w / s + sm * w;
            }
        }
    }
    if (r->scaling == ROPEX_SCALE_GIRAFFE) {
        /* Giraffe (ROPE_VARIANTS.md 2.6): base, then linear, then power basis, then truncated basis */
        double tb = r->giraffe_truncate > 0 ? 2 * PI_D / r->giraffe_truncate : 0;
        for (j = 0; j < np; j++) {
            double f = pow(B, -2.0 * j / d);
            if (s > 1) f /= s;
            if (r->giraffe_power > 0) f *= pow(1 - j / (d / 2.0), r->giraffe_power);
            if (r->giraffe_truncate > 0) f = f >= tb ? f : (f >= tb / 8 ? tb / 16 : 0.0);
            t->inv[j] = f;
        }
    }
    if (r->scaling == ROPEX_SCALE_YARN) {
        double low = floor(d * log(L0 / (32 * 2 * PI_D)) / (2 * log(B)));
        double high = ceil(d * log(L0 / (1 * 2 * PI_D)) / (2 * log(B)));
        if (low < 0) low = 0;
        if (high > d - 1) high = d - 1;
        if (low == high) high += 0.001;
        for (j = 0; j < np; j++) {
            double ramp = (j - low) / (high - low);
            if (ramp < 0) ramp = 0;
            if (ramp > 1) ramp = 1;
            t->inv[j] = t->inv[j] / s * ramp + t->inv[j] * (1 - ramp);
        }
        t->mscale = s > 1 ? 0.1 * log(s) + 1 : 1;
    }
    if (r->truncate != ROPEX_TRUNC_NONE) {
        /* critical dimension of the pre-trained model (b0, L0), ceiling guarded as in SCALING_LAWS.md */
        int de = 2 * (int)ceil((d / 2.0) * log(L0 / (2 * PI_D)) / log(b0) - 1e-9);
        if (de < 0) de = 0;
        if (de > d) de = d;
        for (j = de / 2; j < np; j++) {
            if (r->truncate == ROPEX_TRUNC_CLAMP) t->clamp[j] = 1;
            else t->zero[j] = 1;
        }
    }
}

/* Rotates one head vector (adjacent pairs) at position pos, with magnitude and zero mask. */
static void ref_rope(const rtab *t, const ropex_rope_config *r, const double *x, double *y, int hd, long pos)
{
    int j;
    for (j = 0; j < hd; j++) y[j] = x[j] * t->mscale;
    for (j = 0; j < t->np; j++) {
        long p = pos;
        double a, c, s, x0 = y[2 * j], x1 = y[2 * j + 1];
        if (t->clamp[j] && p > r->train_ctx - 1) p = r->train_ctx - 1;
        a = (double)p * t->inv[j];
        c = cos(a); s = sin(a);
        y[2 * j] = x0 * c - x1 * s;
        y[2 * j + 1] = x0 * s + x1 * c;
        if (t->zero[j]) y[2 * j] = y[2 * j + 1] = 0;
    }
}

/* Float64 log-probs: lp[t] = log p(ids[t+1] | ids[0..t]) for t < n-1. */
static void ref_score(const dmodel *d, const ropex_ctx_config *c, const int32_t *ids, int n, double *lp)
{
    int dim = d->dim, hd = d->hd, qd = d->n_heads * hd, kvd = d->n_kv * hd, t, l, h, i;
    int cap = c->kv_size, S = c->n_sink, grp = d->n_heads / d->n_kv;
    double *x = (double *)calloc((size_t)n * dim, sizeof(double)), *xb = (double *)malloc(sizeof(double) * (dim > qd ? dim : qd));
    double *q = (double *)malloc(sizeof(double) * (size_t)n * qd), *k = (double *)malloc(sizeof(double) * (size_t)n * kvd);
    double *v = (double *)malloc(sizeof(double) * (size_t)n * kvd), *att = (double *)malloc(sizeof(double) * qd);
    double *h1 = (double *)malloc(sizeof(double) * d->hidden), *h3 = (double *)malloc(sizeof(double) * d->hidden);
    double *o = (double *)malloc(sizeof(double) * dim), *sc = (double *)malloc(sizeof(double) * n);
    double *logits = (double *)malloc(sizeof(double) * d->vocab), *ao = (double *)malloc(sizeof(double) * (size_t)n * dim);
    int *kidx = (int *)malloc(sizeof(int) * n);
    long *kpos = (long *)malloc(sizeof(long) * n);
    for (t = 0; t < n; t++) memcpy(x + (size_t)t * dim, d->emb.w + (size_t)ids[t] * dim, sizeof(double) * dim);
    for (l = 0; l < d->n_layers; l++) {
        for (t = 0; t < n; t++) {
            rmsnorm(x + (size_t)t * dim, &d->an[l], dim, d->eps, xb);
            dmat_vec(&d->wq[l], xb, q + (size_t)t * qd);
            dmat_vec(&d->wk[l], xb, k + (size_t)t * kvd);
            dmat_vec(&d->wv[l], xb, v + (size_t)t * kvd);
        }
        for (t = 0; t < n; t++) {
            /* the keys this query sees: all so far, or the sinks plus the newest cap-S tokens */
            int nk = 0, qlen;
            long qpos;
            double lg;
            rtab tab;
            if (t + 1 <= cap) { for (i = 0; i <= t; i++) kidx[nk++] = i; }
            else {
                for (i = 0; i < S; i++) kidx[nk++] = i;
                for (i = t - (cap - S) + 1; i <= t; i++) kidx[nk++] = i;
            }
            for (i = 0; i < nk; i++) kpos[i] = c->positions == ROPEX_POS_CACHE ? i : kidx[i];
            qpos = kpos[nk - 1];
            qlen = (int)qpos + 1;
            ref_table(&c->rope, qlen, &tab);
            lg = 1.0;
            if (c->rope.logn) {
                double L = c->rope.logn_ctx > 0 ? c->rope.logn_ctx : c->rope.train_ctx;
                lg = log((double)qpos + 1) / log(L);
                if (lg < 1) lg = 1;
            }
            for (h = 0; h < d->n_heads; h++) {
                double rq[64], rk[64], mx = -1e300, sum = 0;
                int kh = h / grp, j;
                ref_rope(&tab, &c->rope, q + (size_t)t * qd + h * hd, rq, hd, qpos);
                for (j = 0; j < hd; j++) rq[j] *= lg;
                for (i = 0; i < nk; i++) {
                    double s = 0;
                    ref_rope(&tab, &c->rope, k + (size_t)kidx[i] * kvd + kh * hd, rk, hd, kpos[i]);
                    for (j = 0; j < hd; j++) s += rq[j] * rk[j];
                    sc[i] = s / sqrt((double)hd);
                    if (sc[i] > mx) mx = sc[i];
                }
                for (i = 0; i < nk; i++) { sc[i] = exp(sc[i] - mx); sum += sc[i]; }
                for (j = 0; j < hd; j++) att[h * hd + j] = 0;
                for (i = 0; i < nk; i++)
                    for (j = 0; j < hd; j++) att[h * hd + j] += sc[i] / sum * v[(size_t)kidx[i] * kvd + kh * hd + j];
            }
            /* the residual of token t feeds later layers only: add it once every query of the layer ran */
            dmat_vec(&d->wo[l], att, ao + (size_t)t * dim);
        }
        for (t = 0; t < n; t++) {
            double *xt = x + (size_t)t * dim;
            for (i = 0; i < dim; i++) xt[i] += ao[(size_t)t * dim + i];
            rmsnorm(xt, &d->fn[l], dim, d->eps, xb);
            dmat_vec(&d->w1[l], xb, h1);
            dmat_vec(&d->w3[l], xb, h3);
            for (i = 0; i < d->hidden; i++) h1[i] = h1[i] / (1 + exp(-h1[i])) * h3[i];
            dmat_vec(&d->w2[l], h1, o);
            for (i = 0; i < dim; i++) xt[i] += o[i];
        }
    }
    for (t = 0; t + 1 < n; t++) {
        double mx = -1e300, sum = 0;
        rmsnorm(x + (size_t)t * dim, &d->onorm, dim, d->eps, xb);
        dmat_vec(&d->out, xb, logits);
        for (i = 0; i < d->vocab; i++) if (logits[i] > mx) mx = logits[i];
        for (i = 0; i < d->vocab; i++) sum += exp(logits[i] - mx);
        lp[t] = logits[ids[t + 1]] - mx - log(sum);
    }
    free(x); free(xb); free(q); free(k); free(v); free(att); free(h1); free(h3); free(o); free(sc); free(logits); free(ao);
    free(kidx); free(kpos);
}

/* The library path as tools/ropex-ppl runs it: one stream, chunks of `chunk`, logits_all. */
static int lib_score(const ropex_model *m, const ropex_ctx_config *cfg, const int32_t *ids, int n, int chunk,
                     int n_threads, double *lp)
{
    ropex_ctx ctx;
    ropex_threads *th = NULL;
    int V = m->hp.vocab_size, off, i, j;
    float *lg = (float *)malloc(sizeof(float) * (size_t)chunk * V);
    memset(&ctx, 0, sizeof ctx);
    if (!lg || ropex_ctx_create(&ctx, m, cfg) != ROPEX_OK) { free(lg); return -1; }
    if (n_threads > 1 && ropex_threads_create(&th, n_threads) != ROPEX_OK) { ropex_ctx_free(&ctx); free(lg); return -1; }
    for (off = 0; off < n; off += chunk) {
        int cn = n - off < chunk ? n - off : chunk;
        if (ropex_eval(&ctx, ids + off, cn, lg, th) != ROPEX_OK) { ropex_threads_destroy(th); ropex_ctx_free(&ctx); free(lg); return -1; }
        for (i = 0; i < cn; i++) {
            int p = off + i;
            double mx = -1e300, sum = 0;
            const float *row = lg + (size_t)i * V;
            if (p + 1 >= n) continue;
            for (j = 0; j < V; j++) if (row[j] > mx) mx = row[j];
            for (j = 0; j < V; j++) sum += exp((double)row[j] - mx);
            lp[p] = (double)row[ids[p + 1]] - mx - log(sum);
        }
    }
    ropex_threads_destroy(th);
    ropex_ctx_free(&ctx);
    free(lg);
    return 0;
}

static void test_spec_parser(void)
{
    ropex_ctx_config base;
    ppl_setting s;
    char err[256];
    static const char *bad[] = { "", "ntk", "ntk:x", "ntk:0.5", "foo", "ntk:4+", "+ntk:4", "stream:sinks=4",
                                 "stream:kv=8,sinks=8", "stream:kv=8,pos=slot", "stream:kv=8,foo=1", "plain:1",
                                 "logn:1", "linear:", "kv-type:q4", "giraffe:power=-1" };
    size_t i;
    memset(&base, 0, sizeof base);
    base.rope.head_dim = 8; base.rope.base = 10000; base.rope.train_base = 10000; base.rope.train_ctx = 512;
    base.kv_size = 1000;
    CHECK(ppl_apply_spec("ntk:4+logn", &base, 10000, 1000, &s, err, sizeof err) == 0, "ntk:4+logn: %s", err);
    CHECK(s.cfg.rope.scaling == ROPEX_SCALE_NTK && s.cfg.rope.factor == 4 && s.cfg.rope.logn == 1 && !s.ring, "ntk+logn fields");
    CHECK_NEAR(ppl_effective_base(&s.cfg), 10000 * pow(4.0, 8.0 / 6.0), 1e-6, "NTK effective base");
    CHECK(ppl_apply_spec("stream:sinks=2,kv=256,pos=text", &base, 10000, 1000, &s, err, sizeof err) == 0, "stream: %s", err);
    CHECK(s.cfg.kv_size == 256 && s.cfg.n_sink == 2 && s.cfg.positions == ROPEX_POS_TEXT && s.ring, "stream fields");
    CHECK(ppl_apply_spec("stream:kv=256", &base, 10000, 1000, &s, err, sizeof err) == 0 && s.cfg.n_sink == 4 &&
          s.cfg.positions == ROPEX_POS_CACHE, "stream defaults: sinks 4, cache positions");
    CHECK(ppl_effective_base(&s.cfg) == 0, "cache positions inside the trained window: no limit marker");
    CHECK(ppl_apply_spec("base:40000+truncate-clamp", &base, 10000, 1000, &s, err, sizeof err) == 0 &&
          s.cfg.rope.base == 40000 && s.cfg.rope.train_base == 10000 && s.cfg.rope.truncate == ROPEX_TRUNC_CLAMP,
          "base change keeps the pre-training base");
    CHECK(ppl_apply_spec("yarn:4+plain", &base, 10000, 1000, &s, err, sizeof err) == 0 &&
          s.cfg.rope.scaling == ROPEX_SCALE_NONE && s.cfg.kv_size == 1000, "plain resets");
    CHECK(ppl_apply_spec("giraffe:power=0.5,trunc=64", &base, 10000, 1000, &s, err, sizeof err) == 0 &&
          s.cfg.rope.giraffe_power == 0.5 && s.cfg.rope.giraffe_truncate == 64, "giraffe keys");
    CHECK(ppl_apply_spec("dynamic", &base, 10000, 1000, &s, err, sizeof err) == 0 && s.cfg.rope.factor == 1 &&
          s.cfg.rope.scaling == ROPEX_SCALE_DYNAMIC, "dynamic default factor 1");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(ppl_apply_spec(bad[i], &base, 10000, 1000, &s, err, sizeof err) != 0, "spec '%s' must be rejected", bad[i]);
}

int main(void)
{
    static const char *specs[] = {
        "plain", "linear:4", "ntk:4", "dynamic", "dynamic:2", "dynamic-qwen", "yarn:4", "truncate-clamp",
        "truncate-zero", "logn", "ntk:4+logn", "stream:sinks=4,kv=24,pos=cache", "stream:sinks=4,kv=24,pos=text",
        "stream:sinks=2,kv=20,pos=cache+dynamic-qwen", "stream:sinks=4,kv=24,pos=text+ntk:4+logn",
        "llama3:4", "giraffe:power=0.5", "giraffe:power=0.5,trunc=20,s=2"
    };
    int quick = getenv("ROPEX_TEST_QUICK") != NULL;
    int n = quick ? 48 : 96, train = quick ? 16 : 32, n_specs = (int)(sizeof specs / sizeof specs[0]);
    ropex_model m;
    dmodel d;
    ropex_ctx_config base;
    int32_t ids[4096];
    int n_ids = 0, k, t;
    double lp_ref[128], lp_lib[128], lp_thr[128];
    char *text;
    FILE *f;
    size_t len;

    test_spec_parser();
    memset(&m, 0, sizeof m);
    memset(&d, 0, sizeof d);
    if (ropex_model_load_file(&m, "examples/models/stories260K.bin", "examples/models/tok512.bin") != ROPEX_OK) {
        CHECK(0, "cannot load stories260K (run from the repository root)");
        return TEST_END("test_ppl");
    }
    CHECK(dmodel_load(&d, &m) == 0, "dequantize the weights to double");
    f = fopen("tests/data/tinystories_val_head.txt", "rb");
    text = (char *)malloc(4097);
    len = f && text ? fread(text, 1, 4096, f) : 0;
    if (f) fclose(f);
    CHECK(ropex_tokenize(&m.vocab, text, len, 1, ids, 4096, &n_ids, NULL) == ROPEX_OK && n_ids >= n,
          "tokenize the text (%d ids)", n_ids);
    free(text);
    if (n_ids < n || !d.emb.w) { dmodel_free(&d); ropex_model_free(&m); return TEST_END("test_ppl"); }
    CHECK(ids[0] == m.vocab.bos_id, "BOS first");

    memset(&base, 0, sizeof base);
    base.rope = m.hp.rope;
    if (base.rope.head_dim == 0) base.rope.head_dim = m.hp.head_dim;
    if (base.rope.train_base == 0) base.rope.train_base = base.rope.base > 0 ? base.rope.base : 10000;
    base.rope.train_ctx = train;
    base.kv_size = n;
    for (k = 0; k < n_specs; k++) {
        ppl_setting s;
        char err[256];
        double worst = 0, sref = 0, slib = 0;
        int at = -1;
        if (ppl_apply_spec(specs[k], &base, base.rope.train_base, n, &s, err, sizeof err) != 0) {
            CHECK(0, "spec %s: %s", specs[k], err);
            continue;
        }
        if (quick && s.cfg.kv_size < n) { s.cfg.kv_size = 12; if (s.cfg.n_sink >= 12) s.cfg.n_sink = 2; }
        s.cfg.max_batch = 64;
        ref_score(&d, &s.cfg, ids, n, lp_ref);
        if (lib_score(&m, &s.cfg, ids, n, 7, 1, lp_lib) != 0) { CHECK(0, "%s: library run failed", specs[k]); continue; }
        for (t = 0; t + 1 < n; t++) {
            double e = fabs(lp_ref[t] - lp_lib[t]);
            if (!(e <= worst)) { worst = e; at = t; }
            sref += lp_ref[t]; slib += lp_lib[t];
        }
        CHECK(worst <= 1e-4, "%s: per-token log-prob differs by %.3g at position %d (ref %.6f lib %.6f)", specs[k],
              worst, at, at >= 0 ? lp_ref[at] : 0.0, at >= 0 ? lp_lib[at] : 0.0);
        printf("ok %-44s ppl ref %.5f lib %.5f  max |dlogp| %.2g\n", specs[k], exp(-sref / (n - 1)), exp(-slib / (n - 1)), worst);
        if (k == 2 || k == 12) {
            /* threads and chunking must not change a bit of the scores */
            int same = 1;
            if (lib_score(&m, &s.cfg, ids, n, 64, 2, lp_thr) != 0) { CHECK(0, "2-thread run failed"); continue; }
            for (t = 0; t + 1 < n; t++) if (fabs(lp_thr[t] - lp_lib[t]) > 1e-4) same = 0;
            CHECK(same, "%s: chunk 64 with 2 threads differs from chunk 7 with 1 thread", specs[k]);
        }
    }
    /* the settings must actually differ past the trained length (a test that cannot fail is no test) */
    {
        ppl_setting a, b;
        char err[256];
        double sa = 0, sb = 0;
        ppl_apply_spec("plain", &base, base.rope.train_base, n, &a, err, sizeof err);
        ppl_apply_spec("ntk:4", &base, base.rope.train_base, n, &b, err, sizeof err);
        ref_score(&d, &a.cfg, ids, n, lp_ref);
        ref_score(&d, &b.cfg, ids, n, lp_lib);
        for (t = 0; t + 1 < n; t++) { sa += fabs(lp_ref[t] - lp_lib[t]); if (t < train) sb += fabs(lp_ref[t] - lp_lib[t]); }
        CHECK(sa > 1e-2, "plain and ntk:4 differ past the trained length (sum |dlogp| %.3g)", sa);
        (void)sb;
    }
    dmodel_free(&d);
    ropex_model_free(&m);
    return TEST_END("test_ppl");
}
