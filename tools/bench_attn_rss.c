/* Peak-memory check of a long stream through a fixed ring: stories260K's attention shape
   (5 layers, 8 query heads, 4 kv heads x 8 dims), Q8_0 K and V, a 4096-token ring with 4 sinks,
   N generated tokens (default 100000) fed one at a time through ropex_attention for every layer.
   Prints max RSS (getrusage) after 10K tokens and at the end; memory must stay flat.
   Build: make tools/bench_attn_rss   Run: ./tools/bench_attn_rss [N] [--f16] */
#define _POSIX_C_SOURCE 200809L
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    enum { L = 5, NH = 8, NKV = 4, HD = 8 };
    long n = 100000, t, rss10k = 0;
    int l, i, f16 = 0;
    ropex_kv_config c;
    ropex_rope_config rc;
    ropex_kv kv;
    size_t bytes;
    void *buf;
    float q[NH * HD], k[NKV * HD], v[NKV * HD], out[NH * HD];
    uint64_t s = 88172645463325252ULL;
    double t0;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--f16")) f16 = 1;
        else n = atol(argv[i]);
    }
    memset(&c, 0, sizeof(c));
    memset(&rc, 0, sizeof(rc));
    c.n_layers = L; c.n_kv_heads = NKV; c.head_dim = HD; c.capacity = 4096; c.n_sink = 4;
    c.k_type = c.v_type = f16 ? ROPEX_F16 : ROPEX_Q8_0;
    rc.head_dim = HD;
    bytes = ropex_kv_bytes(&c);
    buf = malloc(bytes);
    if (!buf || ropex_kv_init(&kv, &c, &rc, buf, bytes) != ROPEX_OK) { fprintf(stderr, "init failed\n"); return 1; }
    printf("cache: ropex_kv_bytes %zu (%s, 5 layers x 4096 slots x 4 kv x 8 dims), max RSS at start %ld KiB\n",
           bytes, f16 ? "f16" : "q8_0", max_rss_kb());
    t0 = now();
    for (t = 0; t < n; t++) {
        for (l = 0; l < L; l++) {
            for (i = 0; i < NH * HD; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; q[i] = (float)(s >> 40) / 8388608.0f - 1.0f; }
            for (i = 0; i < NKV * HD; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; k[i] = (float)(s >> 40) / 8388608.0f - 1.0f; v[i] = -k[i]; }
            if (ropex_attention(&kv, l, NH, q, k, v, 1, out, NULL) != ROPEX_OK) { fprintf(stderr, "attention failed\n"); return 1; }
        }
        ropex_kv_advance(&kv, 1);
        if (t + 1 == 10000) {
            rss10k = max_rss_kb();
            printf("tokens 10000: max RSS %ld KiB (%.1f s)\n", rss10k, now() - t0);
            fflush(stdout);
        }
    }
    printf("tokens %ld: max RSS %ld KiB (%.1f s), kept %d, out[0] %.4f\n", n, max_rss_kb(), now() - t0,
           ropex_kv_n_kept(&kv), out[0]);
    if (rss10k && max_rss_kb() > rss10k) printf("RSS grew by %ld KiB\n", max_rss_kb() - rss10k);
    else if (rss10k) printf("RSS flat\n");
    free(buf);
    return 0;
}
