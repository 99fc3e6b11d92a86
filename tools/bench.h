/* Shared pieces of tools/ropex-bench: ropex-bench.c holds main(), the read-bandwidth probe,
   timing and reporting; bench_attn.c and bench_model.c add their cases through these calls. */
#ifndef ROPEX_BENCH_H
#define ROPEX_BENCH_H
#include "../ropex.h"

typedef struct bench_env {
    int threads[4];          /* thread counts to run (e.g. {1, 2}) */
    int n_threads;           /* entries used in threads[] */
    ropex_threads *pool[4];  /* a pool per entry (NULL for 1 thread) */
    double read_bw[4];       /* measured read bandwidth, GB/s, per entry */
    int quick;               /* --quick: fewer repetitions, smaller streamed sets */
    const char *filter;      /* run only cases whose name contains this (NULL = all) */
    const char *model_path;  /* --model FILE for end-to-end cases (NULL = bundled default) */
    const unsigned char *probe_buf;   /* the read-bandwidth probe's buffer, kept for paired ratios */
    size_t probe_bytes;
} bench_env;

/* Wall-clock seconds (monotonic). */
double bench_now(void);
/* Median of n samples (sorts in place). */
double bench_median(double *v, int n);
/* One result row: `bytes` read per call (for GB/s, 0 = n/a), `flops` per call (0 = n/a),
   `seconds` the median per call; `extra` free text (e.g. "cache 1.1 GB"). The ratio column is
   (bytes/seconds) / env->read_bw[ti]. Printed as a table row and kept for --json. */
void bench_report(const bench_env *env, int ti, const char *group, const char *name,
                  double seconds, double bytes, double flops, const char *extra);
/* One pass of the read-bandwidth probe over env->probe_buf with the pool of entry ti: GB/s now.
   Cases alternate it with their own samples and report the median of the per-sample ratios
   ("paired xBW"), which a drift of the shared machine's bandwidth during the run cannot bias. */
double bench_probe_gbs(const bench_env *env, int ti);
/* 1 if a case named `name` should run under env->filter. */
int bench_selected(const bench_env *env, const char *name);

/* Cases added by other files. */
void bench_attention(const bench_env *env);   /* tools/bench_attn.c */
void bench_model(const bench_env *env);       /* tools/bench_model.c */
#endif
