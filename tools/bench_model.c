/* End-to-end model benchmark cases for tools/ropex-bench:
   - the bundled model (or --model FILE): prompt and generation tokens/s, peak memory;
   - a model of TinyLlama-1.1B's shape (dim 2048, hidden 5632, 22 layers, 32 heads, 4 kv heads,
     vocab 32000) with random weights built in memory by ropex_quantize, in Q4_0 and Q8_0, for each
     thread count: a 64-token prompt in one call, then 64 generated tokens. Decode reads every weight
     once per token, so generation tokens/s x weight bytes per token is the bandwidth it achieves;
     the goal is >= 0.8 of the machine's read bandwidth. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/time.h>
#include <sys/resource.h>

#define BM_PROMPT 64
#define BM_GEN 64
#define BM_MAX_SECONDS 4.0     /* generation stops early past this (tokens/s from the steps done) */

static long bm_max_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (long)ru.ru_maxrss;   /* kilobytes on Linux */
}

static int bm_argmax(const float *x, int n) {
    int i, b = 0;
    for (i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static int bm_finite(const float *x, int n) {
    int i;
    for (i = 0; i < n; i++) if (!(x[i] == x[i]) || fabsf(x[i]) > 1e30f) return 0;
    return 1;
}

/* ---- a random model of a given shape, weights quantized by ropex_quantize ---- */
typedef struct bm_shape { int dim, hidden, layers, heads, kv_heads, vocab; } bm_shape;

typedef struct bm_model {
    ropex_model *m;
    unsigned char *mem;          /* all weights, one allocation */
    size_t weight_bytes;         /* bytes read per decoded token: every matrix + classifier */
    size_t total_bytes;
} bm_model;

static uint64_t bm_rng = 0x9E3779B97F4A7C15ull;
static float bm_randn(void) {    /* sum of 4 uniforms: roughly normal, mean 0, var 1/3 */
    float s = 0.0f;
    int i;
    for (i = 0; i < 4; i++) {
        bm_rng ^= bm_rng << 13; bm_rng ^= bm_rng >> 7; bm_rng ^= bm_rng << 17;
        s += (float)(bm_rng >> 40) * (1.0f / 16777216.0f) - 0.5f;
    }
    return s;
}

/* A pool of quantized random blocks: tensors are filled with runs of whole blocks copied from it
   at varying offsets, so a 1 GB model is built in well under a second while every byte the
   benchmark streams is distinct memory (timing depends on bytes read, not on their values). */
#define BM_POOL_VALUES (1u << 20)

static void bm_fill(unsigned char *dst, size_t bytes, const unsigned char *pool, size_t pool_bytes,
                    size_t block_bytes) {
    size_t done = 0;
    while (done < bytes) {
        size_t off, n;
        bm_rng ^= bm_rng << 13; bm_rng ^= bm_rng >> 7; bm_rng ^= bm_rng << 17;
        off = (size_t)(bm_rng % (pool_bytes / block_bytes / 2)) * block_bytes;
        n = pool_bytes - off;
        if (n > bytes - done) n = bytes - done;
        memcpy(dst + done, pool + off, n);
        done += n;
    }
}

static void bm_free(bm_model *b) {
    if (b->m) ropex_model_free(b->m);   /* the repacked copy (the rest is ours) */
    free(b->mem);
    free(b->m);
    memset(b, 0, sizeof *b);
}

static int bm_build(bm_model *b, const bm_shape *s, ropex_type t) {
    size_t qd = (size_t)s->dim, kvd = (size_t)s->dim / (size_t)s->heads * (size_t)s->kv_heads;
    size_t rb_dim = ropex_row_bytes(t, (size_t)s->dim), rb_hid = ropex_row_bytes(t, (size_t)s->hidden);
    size_t layer = rb_dim * (2 * qd + 2 * kvd + 2 * (size_t)s->hidden) + rb_hid * (size_t)s->dim;
    size_t norms = sizeof(float) * (size_t)s->dim * (2 * (size_t)s->layers + 1);
    size_t embd = rb_dim * (size_t)s->vocab, off = 0, pool_bytes, block = ropex_row_bytes(t, ROPEX_QK);
    unsigned char *pool;
    float *f;
    size_t i;
    int l;
    memset(b, 0, sizeof *b);
    b->total_bytes = 2 * embd + layer * (size_t)s->layers + norms;
    b->weight_bytes = embd + layer * (size_t)s->layers;
    b->m = (ropex_model *)calloc(1, sizeof(ropex_model));
    b->mem = (unsigned char *)malloc(b->total_bytes);
    pool_bytes = ropex_row_bytes(t, BM_POOL_VALUES);
    pool = (unsigned char *)malloc(pool_bytes);
    f = (float *)malloc(sizeof(float) * BM_POOL_VALUES);
    if (!b->m || !b->mem || !pool || !f) { free(pool); free(f); bm_free(b); return -1; }
    for (i = 0; i < BM_POOL_VALUES; i++) f[i] = 0.05f * bm_randn();
    if (ropex_quantize(t, f, pool, BM_POOL_VALUES) != ROPEX_OK) { free(pool); free(f); bm_free(b); return -1; }
    free(f);
    b->m->format = ROPEX_FORMAT_GGUF;
    b->m->hp.dim = s->dim; b->m->hp.hidden_dim = s->hidden; b->m->hp.n_layers = s->layers;
    b->m->hp.n_heads = s->heads; b->m->hp.n_kv_heads = s->kv_heads; b->m->hp.head_dim = s->dim / s->heads;
    b->m->hp.vocab_size = s->vocab; b->m->hp.file_ctx = 2048; b->m->hp.rms_eps = 1e-5f;
    b->m->hp.rope.head_dim = s->dim / s->heads; b->m->hp.rope.base = 10000.0; b->m->hp.rope.train_ctx = 2048;
    b->m->vocab.bos_id = 1; b->m->vocab.eos_id = 2; b->m->vocab.unk_id = 0;
#define BM_TENSOR(tt, type_, cols_, rows_, bytes_) do { \
        (tt).type = (type_); (tt).cols = (cols_); (tt).rows = (rows_); (tt).data = b->mem + off; \
        if ((type_) == ROPEX_F32) { size_t k_; for (k_ = 0; k_ < (size_t)(cols_); k_++) ((float *)(void *)(b->mem + off))[k_] = 1.0f; } \
        else bm_fill(b->mem + off, (bytes_), pool, pool_bytes, block); \
        off += (bytes_); } while (0)
    BM_TENSOR(b->m->tok_embd, t, s->dim, s->vocab, embd);
    BM_TENSOR(b->m->output, t, s->dim, s->vocab, embd);
    BM_TENSOR(b->m->output_norm, ROPEX_F32, s->dim, 1, sizeof(float) * (size_t)s->dim);
    for (l = 0; l < s->layers; l++) {
        ropex_layer_weights *w = &b->m->layers[l];
        BM_TENSOR(w->attn_norm, ROPEX_F32, s->dim, 1, sizeof(float) * (size_t)s->dim);
        BM_TENSOR(w->ffn_norm, ROPEX_F32, s->dim, 1, sizeof(float) * (size_t)s->dim);
        BM_TENSOR(w->wq, t, s->dim, (int64_t)qd, rb_dim * qd);
        BM_TENSOR(w->wk, t, s->dim, (int64_t)kvd, rb_dim * kvd);
        BM_TENSOR(w->wv, t, s->dim, (int64_t)kvd, rb_dim * kvd);
        BM_TENSOR(w->wo, t, s->dim, (int64_t)qd, rb_dim * qd);
        BM_TENSOR(w->w_gate, t, s->dim, s->hidden, rb_dim * (size_t)s->hidden);
        BM_TENSOR(w->w_up, t, s->dim, s->hidden, rb_dim * (size_t)s->hidden);
        BM_TENSOR(w->w_down, t, s->hidden, s->dim, rb_hid * (size_t)s->dim);
    }
#undef BM_TENSOR
    free(pool);
    /* decode reads every matrix once and one embedding row; the classifier is the `output` tensor */
    b->weight_bytes = layer * (size_t)s->layers + embd;
    return 0;
}

/* A prompt of BM_PROMPT tokens in one call, then up to n_gen greedy tokens (stopping early after
   BM_MAX_SECONDS). Returns 0 and the seconds per prompt token and per generated token. */
/* Process CPU seconds (all threads): on a shared machine wall-clock rates understate the code's
   speed; CPU time per token shows what it costs when it has the cores. */
static double bm_cpu(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double bm_cpu_gen;   /* CPU seconds per generated token of the last bm_run */
static double bm_pair;      /* median paired ratio of the last bm_run with a probe (0 = none) */

/* probe: when env is given, every 8 generated tokens alternate with one read-bandwidth probe
   pass and bm_pair gets the median of (weight_bytes x tokens/s of the group) / probe GB/s. */
static int bm_run(const ropex_model *m, int kv_size, int n_gen, ropex_threads *th, double *s_prompt,
                  double *s_gen, int *n_done, const bench_env *env, int ti, double weight_bytes) {
    double pr[64], tg = 0, cg = 0, tg0;
    int np = 0;
    ropex_ctx c;
    ropex_ctx_config cfg;
    int32_t prompt[BM_PROMPT], t;
    int i;
    double t0, t1, warm, c0;
    memset(&cfg, 0, sizeof cfg);
    cfg.kv_size = kv_size;
    cfg.max_batch = BM_PROMPT;
    if (ropex_ctx_create(&c, m, &cfg) != ROPEX_OK) return -1;
    for (i = 0; i < BM_PROMPT; i++) prompt[i] = (int32_t)((i * 7919 + 1) % m->hp.vocab_size);
    /* Warm-up: one decode step (touches every weight page); a build whose kernels are far too slow
       for a 64-token prompt in a few seconds skips the prompt measurement. */
    t0 = bench_now();
    if (ropex_eval(&c, prompt, 1, NULL, th) != ROPEX_OK) { ropex_ctx_free(&c); return -1; }
    warm = bench_now() - t0;
    ropex_ctx_reset(&c);
    *s_prompt = 0.0;
    if (warm * BM_PROMPT / 4.0 < 2.0 * BM_MAX_SECONDS) {
        t0 = bench_now();
        if (ropex_eval(&c, prompt, BM_PROMPT, NULL, th) != ROPEX_OK) { ropex_ctx_free(&c); return -1; }
        t1 = bench_now();
        *s_prompt = (t1 - t0) / BM_PROMPT;
    } else if (ropex_eval(&c, prompt, 1, NULL, th) != ROPEX_OK) { ropex_ctx_free(&c); return -1; }
    if (!bm_finite(c.logits, m->hp.vocab_size)) { ropex_ctx_free(&c); return -2; }
    /* token time and CPU time exclude the probe passes */
    tg0 = bench_now();
    c0 = bm_cpu();
    for (i = 0; i < n_gen; i++) {
        t = bm_argmax(c.logits, m->hp.vocab_size);
        if (ropex_eval(&c, &t, 1, NULL, th) != ROPEX_OK) { ropex_ctx_free(&c); return -1; }
        if (env && i % 8 == 7 && np < 64) {
            double now = bench_now(), g;
            tg += now - tg0;
            cg += bm_cpu() - c0;
            g = bench_probe_gbs(env, ti);
            pr[np++] = weight_bytes * 8.0 / (now - tg0) * 1e-9 / g;
            tg0 = bench_now();
            c0 = bm_cpu();
        }
        if (tg + (bench_now() - tg0) > BM_MAX_SECONDS && i >= 2) { i++; break; }
    }
    t1 = bench_now();
    tg += t1 - tg0;
    cg += bm_cpu() - c0;
    *n_done = i;
    *s_gen = tg / i;
    bm_cpu_gen = cg / i;
    bm_pair = np ? bench_median(pr, np) : 0.0;
    ropex_ctx_free(&c);
    return 0;
}

static void bm_bundled(const bench_env *env) {
    static ropex_model m;
    const char *path = env->model_path ? env->model_path : "examples/models/stories260K.bin";
    const char *tok = env->model_path ? NULL : "examples/models/tok512.bin";
    size_t n = strlen(path);
    int ti;
    if (!bench_selected(env, "model-bundled")) return;
    if (env->model_path && n > 4 && strcmp(path + n - 4, ".bin") == 0) tok = "examples/models/tok512.bin";
    if (ropex_model_load_file(&m, path, tok) != ROPEX_OK) {
        printf("model-bundled: cannot load %s (%s)\n", path, ropex_model_error(&m));
        return;
    }
    ropex_model_repack(&m);
    for (ti = 0; ti < env->n_threads; ti++) {
        double sp = 0, sg = 0;
        int done = 0;
        char extra[256];
        long rss;
        if (bm_run(&m, 512, env->quick ? 128 : 400, env->pool[ti], &sp, &sg, &done, NULL, ti, 0.0) != 0) {
            printf("model-bundled: run failed\n");
            break;
        }
        rss = bm_max_rss_kb();
        {
            ropex_ctx_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.kv_size = 512;
            cfg.max_batch = BM_PROMPT;
            if (sp > 0) {
                sprintf(extra, "%.0f tok/s (%d-token prompt)", 1.0 / sp, BM_PROMPT);
                bench_report(env, ti, "model", "bundled-prompt", sp, 0.0, 0.0, extra);
            }
            /* The notes column is short: tokens/s, then what ropex holds (model + context). The process
               peak RSS includes the other cases' buffers (the 1 GiB bandwidth probe); examples/generate
               prints the bundled model's own peak RSS. */
            sprintf(extra, "%.0f tok/s; model %.2f + ctx %.2f MB", 1.0 / sg,
                    (double)(m.file_size + m.aux_bytes) / 1e6, (double)ropex_ctx_bytes(&m, &cfg) / 1e6);
            if (rss > 0 && rss < 64 * 1024) {
                size_t k = strlen(extra);
                sprintf(extra + k, "; RSS %.1f MB", (double)rss / 1024.0);
            }
        }
        bench_report(env, ti, "model", "bundled-gen", sg, 0.0, 0.0, extra);
    }
    ropex_model_free(&m);
}

static void bm_tinyllama(const bench_env *env, ropex_type t) {
    bm_shape s;
    bm_model b;
    int ti;
    char name[64];
    s.dim = 2048; s.hidden = 5632; s.layers = 22; s.heads = 32; s.kv_heads = 4; s.vocab = 32000;
    sprintf(name, "model-tinyllama-%s", ropex_type_name(t));
    if (!bench_selected(env, name)) return;
    if (env->quick) { printf("%s: skipped (--quick; 0.6-1.2 GB of weights)\n", name); return; }
    if (bm_build(&b, &s, t) != 0 || ropex_model_repack(b.m) != ROPEX_OK) {
        printf("%s: cannot allocate the model\n", name);
        bm_free(&b);
        return;
    }
    for (ti = 0; ti < env->n_threads; ti++) {
        double sp = 0, sg = 0, goal;
        int done = 0, rc;
        char extra[200];
        rc = bm_run(b.m, BM_PROMPT + BM_GEN, BM_GEN, env->pool[ti], &sp, &sg, &done, env, ti, (double)b.weight_bytes);
        if (rc != 0) { printf("%s: run failed (%d)\n", name, rc); break; }
        goal = env->read_bw[ti] > 0 ? 0.8 * env->read_bw[ti] * 1e9 / (double)b.weight_bytes : 0.0;
        if (sp > 0) {
            sprintf(extra, "%.1f tok/s (%d-token prompt)", 1.0 / sp, BM_PROMPT);
            sprintf(name, "tinyllama-%s-prompt", ropex_type_name(t));
            /* 2 flops per weight per token */
            bench_report(env, ti, "model", name, sp, 0.0,
                         2.0 * (double)b.weight_bytes / (double)ropex_row_bytes(t, ROPEX_QK) * ROPEX_QK, extra);
        } else printf("%s: prompt skipped (one decode step took too long)\n", name);
        /* GB/s = weight bytes per token x tokens/s; xBW is its ratio to the read bandwidth (goal 0.8);
           notes: wall tok/s, (threads / CPU seconds per token), MB per token, 0.8 x BW / bytes */
        sprintf(extra, "paired xBW %.2f; %.2f tok/s (cpu %.2f), %.0f MB/tok, goal %.1f", bm_pair, 1.0 / sg,
                bm_cpu_gen > 0 ? env->threads[ti] / bm_cpu_gen : 0.0, (double)b.weight_bytes / 1e6, goal);
        sprintf(name, "tinyllama-%s-gen", ropex_type_name(t));
        bench_report(env, ti, "model", name, sg, (double)b.weight_bytes, 0.0, extra);
        sprintf(name, "model-tinyllama-%s", ropex_type_name(t));
    }
    bm_free(&b);
}

void bench_model(const bench_env *env) {
    bm_bundled(env);
    bm_tinyllama(env, ROPEX_Q4_0);
    bm_tinyllama(env, ROPEX_Q8_0);
}
