/* Attention benchmark cases: one decode step (one layer) over a full ring of 4K, 64K and 1M tokens,
   8 kv heads x 128 dims, F16 and Q8_0 storage, 8 query heads (one per kv head: the most
   memory-bound shape) and 32 query heads (GQA 4:1). Bytes read per step = every kept K and V row
   of the layer; the ratio column compares that rate with the read bandwidth at the same thread
   count. Plus the stories260K shape (5 layers, 4 kv heads x 8 dims) at 1,048,576 tokens in Q8_0. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Process CPU seconds (all threads): on a shared machine wall time includes waiting for a core;
   bytes / (cpu / threads) is reported beside it as the rate the code reaches when it runs. */
static double ba_cpu(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double ba_last_cpu;   /* median CPU seconds of the last ba_time_steps */
static double ba_last_pair;  /* median paired ratio (step GB/s / adjacent probe GB/s) of the last run */

static uint64_t ba_rng = 0x243f6a8885a308d3ULL;
static float ba_rand(void) {
    ba_rng ^= ba_rng << 13; ba_rng ^= ba_rng >> 7; ba_rng ^= ba_rng << 17;
    return (float)((double)(ba_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static void ba_fill_rand(float *x, size_t n) { size_t i; for (i = 0; i < n; i++) x[i] = ba_rand(); }

static const char *ba_len_name(int n) {
    static char b[32];
    if (n >= 1048576 && n % 1048576 == 0) sprintf(b, "%dM", n / 1048576);
    else if (n % 1024 == 0) sprintf(b, "%dK", n / 1024);
    else sprintf(b, "%d", n);
    return b;
}

/* Fills a 1-layer, no-sink cache to capacity: the first block through ropex_kv_store (real rotated,
   quantized rows), the rest as copies of it (contents do not change the cost of a step). */
static int ba_fill(ropex_kv *kv, int n_layers_used) {
    int cap = kv->cfg.capacity, B = cap < 4096 ? cap : 4096, l;
    size_t row = (size_t)kv->cfg.n_kv_heads * (size_t)kv->cfg.head_dim;
    float *k = (float *)malloc(sizeof(float) * row * (size_t)B), *v = (float *)malloc(sizeof(float) * row * (size_t)B);
    int64_t s;
    if (!k || !v) { free(k); free(v); return 0; }
    ba_fill_rand(k, row * (size_t)B);
    ba_fill_rand(v, row * (size_t)B);
    for (l = 0; l < n_layers_used; l++) ropex_kv_store(kv, l, k, v, B);
    ropex_kv_advance(kv, B);
    for (s = B; s < cap; s += B) {
        int n = cap - s < B ? (int)(cap - s) : B;
        /* rows are [layer][unit][slot] */
        size_t units = (size_t)kv->n_units, u;
        size_t kub = kv->k_unit_bytes, vub = kv->v_unit_bytes;
        for (l = 0; l < n_layers_used; l++)
            for (u = 0; u < units; u++) {
                size_t base = ((size_t)l * units + u) * (size_t)cap;
                memcpy(kv->k + (base + (size_t)s) * kub, kv->k + base * kub, (size_t)n * kub);
                memcpy(kv->v + (base + (size_t)s) * vub, kv->v + base * vub, (size_t)n * vub);
            }
        ropex_kv_advance(kv, n);
    }
    free(k); free(v);
    return 1;
}

/* One decode step (store the new token, attend over the full ring) per layer in [0, n_layers). */
static double ba_time_steps(const bench_env *env, int ti, ropex_kv *kv, int n_layers, int n_heads, int reps) {
    int hd = kv->cfg.head_dim, r, l;
    size_t qn = (size_t)n_heads * (size_t)hd, kn = (size_t)kv->cfg.n_kv_heads * (size_t)hd;
    float *q0 = (float *)malloc(sizeof(float) * qn), *q = (float *)malloc(sizeof(float) * qn);
    float *k = (float *)malloc(sizeof(float) * kn), *v = (float *)malloc(sizeof(float) * kn);
    float *out = (float *)malloc(sizeof(float) * qn);
    double t[16], cp[16], pr[16], med, rd = 0;
    if (reps > 16) reps = 16;
    for (l = 0; l < n_layers; l++) rd += (double)ropex_kv_n_kept(kv) * (double)(kv->k_row_bytes + kv->v_row_bytes);
    ba_fill_rand(q0, qn); ba_fill_rand(k, kn); ba_fill_rand(v, kn);
    for (r = -1; r < reps; r++) {
        double t0 = bench_now(), c0 = ba_cpu();
        for (l = 0; l < n_layers; l++) {
            memcpy(q, q0, sizeof(float) * qn);
            ropex_attention(kv, l, n_heads, q, k, v, 1, out, env->pool[ti]);
        }
        if (r >= 0) {
            t[r] = bench_now() - t0; cp[r] = ba_cpu() - c0;
            pr[r] = rd / t[r] * 1e-9 / bench_probe_gbs(env, ti);
        }
        ropex_kv_advance(kv, 1);
    }
    med = bench_median(t, reps);
    ba_last_cpu = bench_median(cp, reps);
    ba_last_pair = bench_median(pr, reps);
    free(q0); free(q); free(k); free(v); free(out);
    return med;
}

static void ba_decode_case(const bench_env *env, ropex_type type, int len) {
    static const int heads[2] = { 8, 32 };
    char name[2][64];
    int hi, any = 0, ti;
    ropex_kv_config c;
    ropex_rope_config rc;
    ropex_kv kv;
    size_t bytes;
    void *buf;
    for (hi = 0; hi < 2; hi++) {
        sprintf(name[hi], "attn-decode-%s-%s-q%d", ropex_type_name(type), ba_len_name(len), heads[hi]);
        any |= bench_selected(env, name[hi]) && !(env->quick && hi);
    }
    if (!any) return;
    memset(&c, 0, sizeof(c)); memset(&rc, 0, sizeof(rc));
    c.n_layers = 1; c.n_kv_heads = 8; c.head_dim = 128; c.capacity = len; c.n_sink = 0;
    c.k_type = type; c.v_type = type; c.positions = ROPEX_POS_TEXT;
    rc.head_dim = 128; rc.base = 500000.0;
    bytes = ropex_kv_bytes(&c);
    buf = malloc(bytes);
    if (!buf || ropex_kv_init(&kv, &c, &rc, buf, bytes) != ROPEX_OK || !ba_fill(&kv, 1)) {
        fprintf(stderr, "bench_attn: cannot allocate %zu bytes for %s\n", bytes, name[0]);
        free(buf);
        return;
    }
    for (hi = 0; hi < 2; hi++) {
        if (!bench_selected(env, name[hi]) || (env->quick && hi)) continue;
        for (ti = 0; ti < env->n_threads; ti++) {
            int reps = env->quick ? 3 : (len >= 1048576 ? 5 : 9);
            double sec = ba_time_steps(env, ti, &kv, 1, heads[hi], reps);
            double rd = (double)len * (double)(kv.k_row_bytes + kv.v_row_bytes);
            char extra[200];
            double cpu_s = ba_last_cpu / env->threads[ti];
            sprintf(extra, "paired xBW %.2f; ropex_kv_bytes %zu; %.2f ns/key; cpu-time rate %.2f GB/s; 8kv x 128, %d q heads",
                    ba_last_pair, bytes, sec * 1e9 / (double)len, cpu_s > 0 ? rd / cpu_s * 1e-9 : 0.0, heads[hi]);
            bench_report(env, ti, "attention", name[hi], sec, rd, 0, extra);
        }
    }
    free(buf);
}

/* stories260K's KV shape at 1,048,576 tokens: fits in exactly ropex_kv_bytes, fills through
   ropex_kv_store (all 5 layers, real rows), one decode step over all layers. */
static void ba_stories_case(const bench_env *env) {
    const char *name = "attn-stories260k-1M-q8_0";
    ropex_kv_config c;
    ropex_rope_config rc;
    ropex_kv kv;
    size_t bytes, row;
    unsigned char *buf;
    float *k, *v;
    int B = 8192, l, ti;
    int64_t s;
    double t0, fill;
    if (!bench_selected(env, name)) return;
    memset(&c, 0, sizeof(c)); memset(&rc, 0, sizeof(rc));
    c.n_layers = 5; c.n_kv_heads = 4; c.head_dim = 8; c.capacity = 1048576; c.n_sink = 4;
    c.k_type = ROPEX_Q8_0; c.v_type = ROPEX_Q8_0; c.positions = ROPEX_POS_TEXT;
    rc.head_dim = 8;
    bytes = ropex_kv_bytes(&c);
    buf = (unsigned char *)malloc(bytes);
    row = 32;
    k = (float *)malloc(sizeof(float) * row * (size_t)B);
    v = (float *)malloc(sizeof(float) * row * (size_t)B);
    if (!buf || !k || !v || ropex_kv_init(&kv, &c, &rc, buf, bytes) != ROPEX_OK) {
        fprintf(stderr, "bench_attn: %s: init failed\n", name);
        free(buf); free(k); free(v);
        return;
    }
    ba_fill_rand(k, row * (size_t)B); ba_fill_rand(v, row * (size_t)B);
    t0 = bench_now();
    for (s = 0; s < c.capacity; s += B) {
        for (l = 0; l < c.n_layers; l++) ropex_kv_store(&kv, l, k, v, B);
        ropex_kv_advance(&kv, B);
    }
    fill = bench_now() - t0;
    /* Everything the cache touched lies inside [buf, buf + bytes). */
    if ((unsigned char *)(void *)(kv.slot_pos + c.capacity) > buf + bytes ||
        kv.v + (size_t)c.n_layers * (size_t)c.capacity * kv.v_row_bytes > buf + bytes)
        fprintf(stderr, "bench_attn: %s: layout exceeds ropex_kv_bytes\n", name);
    for (ti = 0; ti < env->n_threads; ti++) {
        double sec = ba_time_steps(env, ti, &kv, c.n_layers, 8, env->quick ? 2 : 3);
        double rd = (double)c.n_layers * (double)c.capacity * (double)(kv.k_row_bytes + kv.v_row_bytes);
        char extra[200];
        sprintf(extra, "ropex_kv_bytes %zu (%.1f MiB), kept %d; fill %.2f s (%.2f Mrow/s); step = 5 layers, 8 q heads",
                bytes, (double)bytes / 1048576.0, ropex_kv_n_kept(&kv), fill,
                (double)c.capacity * c.n_layers / fill * 1e-6);
        bench_report(env, ti, "attention", name, sec, rd, 0, extra);
    }
    free(buf); free(k); free(v);
}

void bench_attention(const bench_env *env) {
    static const int lens[3] = { 4096, 65536, 1048576 };
    int t, i;
    /* --quick: 4K and 64K with 8 query heads only (the 1M caches take 2.3-4.3 GB and seconds to fill) */
    for (t = 0; t < 2; t++)
        for (i = 0; i < (env->quick ? 2 : 3); i++) ba_decode_case(env, t ? ROPEX_Q8_0 : ROPEX_F16, lens[i]);
    if (!env->quick) ba_stories_case(env);
}
