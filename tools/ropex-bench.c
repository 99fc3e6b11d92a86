/* ropex-bench: kernel benchmarks (matvec / matmul per weight type, cache-resident and streamed
   weights, thread counts) against this machine's read bandwidth measured in the same run, then
   the attention and end-to-end model cases (tools/bench_attn.c, tools/bench_model.c).

   usage: ropex-bench [--threads LIST] [--quick] [--json] [--filter S] [--model FILE]

   Method (DESIGN.md, Benchmarks): read bandwidth = widest SIMD loads over >= 1 GiB, same thread
   count, median of >= 5 runs. Streamed cases cycle through distinct weight copies totalling
   >= 1 GiB, so every call reads its weights from DRAM; cache-resident cases use a shape whose bytes
   fit half the last-level cache. Each figure is the median of several timed samples. */
#define _GNU_SOURCE 1
#define ROPEX_IMPLEMENTATION   /* this file holds the library implementation for the tool */
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#if defined(__linux__)
#  include <sys/mman.h>
#endif
#if defined(__AVX2__)
#  include <immintrin.h>
#elif defined(__ARM_NEON)
#  include <arm_neon.h>
#endif

/* ---------------------------------------------------------------- utilities */
double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
double bench_median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof(double), bench_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Large buffers: anonymous mappings with transparent huge pages requested (fewer TLB misses;
   the bandwidth probe and the weights use the same allocator, so the ratio is fair). */
static void *big_alloc(size_t n) {
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#  ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE);
#  endif
    return p;
#else
    return malloc(n);
#endif
}
static void big_free(void *p, size_t n) {
    if (!p) return;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    munmap(p, n);
#else
    (void)n;
    free(p);
#endif
}

/* ---------------------------------------------------------------- reporting */
typedef struct bench_row {
    char group[24], name[64], extra[64];
    int threads;
    double seconds, gbs, gflops, ratio;
} bench_row;
#define BENCH_MAX_ROWS 1024
static bench_row g_rows[BENCH_MAX_ROWS];
static int g_nrows;
static int g_json;
static FILE *g_out;   /* the table: stdout, or stderr when --json owns stdout */

static void table_header(void) {
    fprintf(g_out, "%-10s %-34s %3s %11s %9s %9s %6s  %s\n", "group", "case", "thr", "ms/call", "GB/s",
            "GFLOP/s", "xBW", "notes");
}

void bench_report(const bench_env *env, int ti, const char *group, const char *name,
                  double seconds, double bytes, double flops, const char *extra) {
    bench_row *r;
    char gb[16] = "-", gf[16] = "-", ra[16] = "-";
    double bw = (ti >= 0 && ti < env->n_threads) ? env->read_bw[ti] : 0;
    if (g_nrows >= BENCH_MAX_ROWS) return;
    r = &g_rows[g_nrows++];
    snprintf(r->group, sizeof r->group, "%s", group ? group : "");
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    snprintf(r->extra, sizeof r->extra, "%s", extra ? extra : "");
    r->threads = (ti >= 0 && ti < env->n_threads) ? env->threads[ti] : 1;
    r->seconds = seconds;
    r->gbs = (bytes > 0 && seconds > 0) ? bytes / seconds * 1e-9 : 0;
    r->gflops = (flops > 0 && seconds > 0) ? flops / seconds * 1e-9 : 0;
    r->ratio = (r->gbs > 0 && bw > 0) ? r->gbs / bw : 0;
    if (r->gbs > 0) snprintf(gb, sizeof gb, "%.2f", r->gbs);
    if (r->gflops > 0) snprintf(gf, sizeof gf, "%.2f", r->gflops);
    if (r->ratio > 0) snprintf(ra, sizeof ra, "%.2f", r->ratio);
    fprintf(g_out, "%-10s %-34s %3d %11.4f %9s %9s %6s  %s\n", r->group, r->name, r->threads, seconds * 1e3,
            gb, gf, ra, r->extra);
    fflush(g_out);
}

int bench_selected(const bench_env *env, const char *name) {
    return !env->filter || !env->filter[0] || (name && strstr(name, env->filter) != NULL);
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned)(unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}

static void print_json(const bench_env *env, double llc_mb) {
    int i;
    printf("{\n  \"simd\": \"%s\",\n  \"llc_mb\": %.1f,\n  \"read_bw_gbs\": {", ropex_simd_name(), llc_mb);
    for (i = 0; i < env->n_threads; i++) printf("%s\"%d\": %.3f", i ? ", " : "", env->threads[i], env->read_bw[i]);
    printf("},\n  \"rows\": [\n");
    for (i = 0; i < g_nrows; i++) {
        const bench_row *r = &g_rows[i];
        printf("    {\"group\": "); json_str(r->group);
        printf(", \"case\": "); json_str(r->name);
        printf(", \"threads\": %d, \"ms\": %.6f, \"gbs\": %.4f, \"gflops\": %.4f, \"ratio_bw\": %.4f, \"notes\": ",
               r->threads, r->seconds * 1e3, r->gbs, r->gflops, r->ratio);
        json_str(r->extra);
        printf("}%s\n", i + 1 < g_nrows ? "," : "");
    }
    printf("  ]\n}\n");
}

/* ---------------------------------------------------------------- read bandwidth */
typedef struct bw_job { const unsigned char *buf; size_t bytes; volatile unsigned long long sink[64]; } bw_job;

static void bw_task(void *arg, int index, int count) {
    bw_job *j = (bw_job *)arg;
    size_t chunk = (j->bytes / (size_t)count) & ~(size_t)255;
    const unsigned char *p = j->buf + chunk * (size_t)index, *end = p + chunk;
#if defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (; p < end; p += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(const void *)p));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(const void *)(p + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(const void *)(p + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(const void *)(p + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    j->sink[index * 8] = (unsigned long long)_mm256_extract_epi64(a0, 0);
#elif defined(__ARM_NEON)
    uint32x4_t a0 = vdupq_n_u32(0), a1 = a0, a2 = a0, a3 = a0;
    for (; p < end; p += 64) {
        a0 = vaddq_u32(a0, vld1q_u32((const uint32_t *)(const void *)p));
        a1 = vaddq_u32(a1, vld1q_u32((const uint32_t *)(const void *)(p + 16)));
        a2 = vaddq_u32(a2, vld1q_u32((const uint32_t *)(const void *)(p + 32)));
        a3 = vaddq_u32(a3, vld1q_u32((const uint32_t *)(const void *)(p + 48)));
    }
    a0 = vaddq_u32(vaddq_u32(a0, a1), vaddq_u32(a2, a3));
    j->sink[index * 8] = vgetq_lane_u32(a0, 0);
#else
    unsigned long long s0 = 0, s1 = 0;
    for (; p < end; p += 16) {
        unsigned long long u, v;
        memcpy(&u, p, 8); memcpy(&v, p + 8, 8);
        s0 += u; s1 += v;
    }
    j->sink[index * 8] = s0 + s1;
#endif
}

/* One timed pass of the probe over [buf, buf + bytes) with the pool: GB/s. */
static double probe_pass(ropex_threads *pool, const unsigned char *buf, size_t bytes) {
    bw_job j;
    int nt = ropex_threads_count(pool);
    double t0;
    j.buf = buf;
    j.bytes = bytes;
    t0 = bench_now();
    ropex_threads_run(pool, bw_task, &j);
    return (double)((bytes / (size_t)nt) & ~(size_t)255) * nt / (bench_now() - t0) * 1e-9;
}

/* Median GB/s of `runs` passes after a warm-up one. */
static double measure_read_bw(ropex_threads *pool, int runs, size_t bytes, unsigned char *buf) {
    double g[16];
    int i;
    if (runs > 16) runs = 16;
    (void)probe_pass(pool, buf, bytes);
    for (i = 0; i < runs; i++) g[i] = probe_pass(pool, buf, bytes);
    return bench_median(g, runs);
}

double bench_probe_gbs(const bench_env *env, int ti) {
    return probe_pass(env->pool[ti], env->probe_buf, env->probe_bytes);
}

/* ---------------------------------------------------------------- kernel cases */
static unsigned int g_rng = 2463534242u;
static float frnd(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 17; g_rng ^= g_rng << 5;
    return (float)((g_rng >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

static double llc_bytes(void) {
    double v = 32.0 * 1024 * 1024;
#if defined(__linux__)
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (f) {
        long k = 0;
        char unit = 'K';
        if (fscanf(f, "%ld%c", &k, &unit) >= 1 && k > 0)
            v = (double)k * (unit == 'M' ? 1024.0 * 1024 : unit == 'G' ? 1024.0 * 1024 * 1024 : 1024.0);
        fclose(f);
    }
#endif
    return v;
}

/* Quantized weights of rows x cols, random in [-1, 1); the repacked types from their base. */
static unsigned char *make_weights(ropex_type t, size_t rows, size_t cols, size_t *bytes) {
    ropex_type base = t == ROPEX_Q4_0_X8 ? ROPEX_Q4_0 : t == ROPEX_Q8_0_X8 ? ROPEX_Q8_0 : t;
    size_t rb = ropex_row_bytes(t, cols), r;
    unsigned char *w = (unsigned char *)big_alloc(rb * rows);
    float *tmp = (float *)malloc(cols * sizeof(float));
    if (!w || !tmp) { free(tmp); big_free(w, rb * rows); return NULL; }
    for (r = 0; r < rows; r++) {
        size_t c;
        for (c = 0; c < cols; c++) tmp[c] = frnd();
        ropex_quantize(base, tmp, w + r * rb, cols);
    }
    free(tmp);
    if (base != t) {
        unsigned char *o = (unsigned char *)big_alloc(rb * rows);
        if (!o || ropex_repack(base, w, rows, cols, o) != ROPEX_OK) { big_free(o, rb * rows); big_free(w, rb * rows); return NULL; }
        big_free(w, rb * rows);
        w = o;
    }
    *bytes = rb * rows;
    return w;
}

/* Time `calls` calls of matvec/matmul per sample, `samples` samples; median seconds per call. */
static double time_mm(ropex_type t, unsigned char *const *w, int nw, size_t rows, size_t cols, const float *x,
                      size_t n, float *y, void *work, ropex_threads *pool, int calls, int samples) {
    double s[32];
    int i, k, wi = 0;
    if (samples > 32) samples = 32;
    for (k = 0; k < (nw > 1 ? nw : 1); k++)  /* warm-up (and page in) */
        ropex_matmul(t, w[k % nw], rows, cols, x, n, y, work, pool);
    for (i = 0; i < samples; i++) {
        double t0 = bench_now();
        for (k = 0; k < calls; k++) {
            if (n == 1) ropex_matvec(t, w[wi], rows, cols, x, y, work, pool);
            else ropex_matmul(t, w[wi], rows, cols, x, n, y, work, pool);
            if (++wi == nw) wi = 0;
        }
        s[i] = (bench_now() - t0) / calls;
    }
    return bench_median(s, samples);
}

/* Streamed cases, paired with the probe: samples alternate one read-bandwidth pass over the very
   bytes of the weight copies (same pages, same thread count) and one pass of matvecs through all
   copies; the median of the per-sample ratios is immune to drifts of the shared machine's
   bandwidth between the probe at the start of the run and this case. */
static double paired_ratio(ropex_type t, unsigned char *const *w, int nw, size_t one, size_t rows, size_t cols,
                           const float *x, float *y, void *work, ropex_threads *pool, int samples) {
    double r[32];
    int i, k;
    if (samples > 32) samples = 32;
    for (i = 0; i < samples; i++) {
        /* the copies are consecutive in one mapping */
        double g = probe_pass(pool, w[0], one * (size_t)nw), t0 = bench_now(), tk;
        for (k = 0; k < nw; k++) ropex_matvec(t, w[k], rows, cols, x, y, work, pool);
        tk = bench_now() - t0;
        r[i] = (double)one * nw / tk * 1e-9 / g;
    }
    return bench_median(r, samples);
}

static const ropex_type k_types[6] = {ROPEX_Q4_0_X8, ROPEX_Q4_0, ROPEX_Q8_0_X8, ROPEX_Q8_0, ROPEX_F16, ROPEX_F32};

static void bench_kernels(const bench_env *env, double llc) {
    int ti, ki;
    size_t cols = 4096;
    size_t nmax = 64;
    float *x = (float *)malloc(11008 * nmax * sizeof(float));
    float *y = (float *)malloc(11008 * nmax * sizeof(float));
    void *work = malloc(ropex_matmul_work_bytes(ROPEX_Q8_0, 11008, nmax) + 64);
    size_t i;
    int samples = env->quick ? 3 : 7;
    if (!x || !y || !work) { fprintf(stderr, "ropex-bench: out of memory\n"); free(x); free(y); free(work); return; }
    for (i = 0; i < 11008 * nmax; i++) x[i] = frnd();
    for (ki = 0; ki < 6; ki++) {
        ropex_type t = k_types[ki];
        const char *tn = ropex_type_name(t);
        char name[64], extra[64];
        size_t bytes, rows_res;
        unsigned char *w;
        double mv_s[4] = {0, 0, 0, 0};
        /* 1. 4096 x 4096 matvec, and a resident shape when 4096 x 4096 exceeds half the LLC */
        snprintf(name, sizeof name, "matvec %s 4096x4096", tn);
        if (bench_selected(env, name) || bench_selected(env, "matmul")) {
            w = make_weights(t, 4096, cols, &bytes);
            if (w) {
                if (bench_selected(env, name))
                    for (ti = 0; ti < env->n_threads; ti++) {
                        double s = time_mm(t, &w, 1, 4096, cols, x, 1, y, work, env->pool[ti],
                                           (int)(2e7 / bytes) + 1, samples);
                        mv_s[ti] = s;
                        snprintf(extra, sizeof extra, "%.1f MB %s", bytes / 1048576.0,
                                 bytes <= llc / 2 ? "resident" : "> LLC/2");
                        bench_report(env, ti, "kernel", name, s, (double)bytes, 2.0 * 4096 * cols, extra);
                    }
                /* 2. matmul, 64 tokens on the same matrix */
                snprintf(name, sizeof name, "matmul %s 4096x4096 n=64", tn);
                if (bench_selected(env, name) && (t == ROPEX_Q4_0 || t == ROPEX_Q8_0 || t == ROPEX_Q4_0_X8 ||
                                                  t == ROPEX_Q8_0_X8 || !env->quick))
                    for (ti = 0; ti < env->n_threads; ti++) {
                        double s = time_mm(t, &w, 1, 4096, cols, x, 64, y, work, env->pool[ti], 1,
                                           env->quick ? 3 : 5);
                        extra[0] = 0;
                        if (mv_s[ti] > 0) snprintf(extra, sizeof extra, "%.1fx the speed of 64 matvecs", 64 * mv_s[ti] / s);
                        bench_report(env, ti, "kernel", name, s, (double)bytes, 2.0 * 4096 * cols * 64, extra);
                    }
                big_free(w, bytes);
            }
        }
        rows_res = (size_t)(llc / 2 / (double)ropex_row_bytes(t, cols)) & ~(size_t)63;
        snprintf(name, sizeof name, "matvec %s %zux4096", tn, rows_res);
        if (rows_res < 4096 && rows_res >= 64 && bench_selected(env, name)) {
            w = make_weights(t, rows_res, cols, &bytes);
            if (w) {
                for (ti = 0; ti < env->n_threads; ti++) {
                    double s = time_mm(t, &w, 1, rows_res, cols, x, 1, y, work, env->pool[ti],
                                       (int)(2e7 / bytes) + 1, samples);
                    snprintf(extra, sizeof extra, "%.1f MB resident", bytes / 1048576.0);
                    bench_report(env, ti, "kernel", name, s, (double)bytes, 2.0 * rows_res * cols, extra);
                }
                big_free(w, bytes);
            }
        }
        /* 3. streamed: distinct 11008 x 4096 copies totalling >= 1 GiB (quick: >= 256 MiB) */
        snprintf(name, sizeof name, "matvec %s 11008x4096 stream", tn);
        if (bench_selected(env, name)) {
            size_t one = ropex_row_bytes(t, cols) * 11008, total = env->quick ? (256u << 20) : (1024u << 20);
            int nw = (int)((total + one - 1) / one), k;
            unsigned char **ws = (unsigned char **)calloc((size_t)nw, sizeof(*ws));
            unsigned char *base = (unsigned char *)big_alloc(one * (size_t)nw);
            w = make_weights(t, 11008, cols, &bytes);
            if (ws && base && w) {
                for (k = 0; k < nw; k++) { ws[k] = base + one * (size_t)k; memcpy(ws[k], w, one); }
                for (ti = 0; ti < env->n_threads; ti++) {
                    double s = time_mm(t, ws, nw, 11008, cols, x, 1, y, work, env->pool[ti], nw, env->quick ? 3 : 5);
                    double pr = paired_ratio(t, ws, nw, one, 11008, cols, x, y, work, env->pool[ti], env->quick ? 3 : 7);
                    snprintf(extra, sizeof extra, "%d copies, %.0f MB; paired xBW %.2f", nw, one * (double)nw / 1048576.0, pr);
                    bench_report(env, ti, "kernel", name, s, (double)one, 2.0 * 11008 * cols, extra);
                }
            }
            big_free(w, bytes);
            big_free(base, one * (size_t)nw);
            free(ws);
        }
    }
    free(x); free(y); free(work);
}

/* ---------------------------------------------------------------- main */
static void usage(FILE *f) {
    fprintf(f, "usage: ropex-bench [--threads LIST] [--quick] [--json] [--filter S] [--model FILE]\n"
               "  --threads LIST  comma-separated thread counts (default 1,2; at most 4 entries)\n"
               "  --quick         fewer repetitions, 256 MiB streamed sets (under 30 s)\n"
               "  --json          JSON on stdout (the table goes to stderr)\n"
               "  --filter S      run only cases whose name contains S\n"
               "  --model FILE    model for the end-to-end cases (default: the bundled model)\n");
}

int main(int argc, char **argv) {
    bench_env env;
    int i;
    size_t bw_bytes;
    unsigned char *bw_buf;
    double llc;
    memset(&env, 0, sizeof env);
    env.threads[0] = 1; env.threads[1] = 2; env.n_threads = 2;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick")) env.quick = 1;
        else if (!strcmp(a, "--json")) g_json = 1;
        else if (!strcmp(a, "--filter") && i + 1 < argc) env.filter = argv[++i];
        else if (!strcmp(a, "--model") && i + 1 < argc) env.model_path = argv[++i];
        else if (!strcmp(a, "--threads") && i + 1 < argc) {
            const char *p = argv[++i];
            env.n_threads = 0;
            while (*p) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 256 || env.n_threads >= 4 || (*end && *end != ',')) {
                    fprintf(stderr, "ropex-bench: bad --threads list '%s'\n", argv[i]);
                    return 2;
                }
                env.threads[env.n_threads++] = (int)v;
                p = *end ? end + 1 : end;
            }
            if (env.n_threads == 0) { fprintf(stderr, "ropex-bench: empty --threads\n"); return 2; }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else { fprintf(stderr, "ropex-bench: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    g_out = g_json ? stderr : stdout;
    for (i = 0; i < env.n_threads; i++) {
        env.pool[i] = NULL;
        if (env.threads[i] > 1 && ropex_threads_create(&env.pool[i], env.threads[i]) != ROPEX_OK) {
            fprintf(stderr, "ropex-bench: cannot start %d threads\n", env.threads[i]);
            return 1;
        }
    }
    llc = llc_bytes();
    fprintf(g_out, "ropex-bench %s, simd %s, last-level cache %.0f MB%s\n", ropex_version(), ropex_simd_name(),
            llc / 1048576.0, env.quick ? ", quick" : "");
    /* read bandwidth per thread count */
    bw_bytes = env.quick ? (512u << 20) : (1024u << 20);
    bw_buf = (unsigned char *)big_alloc(bw_bytes);
    if (!bw_buf) { fprintf(stderr, "ropex-bench: cannot allocate %zu bytes\n", bw_bytes); return 1; }
    memset(bw_buf, 1, bw_bytes);
    table_header();
    for (i = 0; i < env.n_threads; i++) {
        double s;
        char extra[64];
        env.read_bw[i] = measure_read_bw(env.pool[i], env.quick ? 5 : 7, bw_bytes, bw_buf);
        s = (double)bw_bytes / (env.read_bw[i] * 1e9);
        snprintf(extra, sizeof extra, "%s loads over %zu MiB, median of %d", ropex_simd_name(), bw_bytes >> 20,
                 env.quick ? 5 : 7);
        bench_report(&env, i, "memory", "read bandwidth", s, (double)bw_bytes, 0, extra);
    }
    env.probe_buf = bw_buf;
    env.probe_bytes = bw_bytes;

    bench_kernels(&env, llc);
    bench_attention(&env);
    bench_model(&env);
    big_free(bw_buf, bw_bytes);

    if (g_json) print_json(&env, llc / 1048576.0);
    for (i = 0; i < env.n_threads; i++) ropex_threads_destroy(env.pool[i]);
    return 0;
}
