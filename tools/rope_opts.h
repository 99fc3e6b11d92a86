/* rope_opts.h - the RoPE / KV command-line options every ropex tool shares (DESIGN.md, "Command-line
   contracts"). Include after ropex.h. Hosted only (stdio, stdlib).

   Usage:
       ropex_rope_config rc; rope_opts_extra ex;
       rope_opts_init(&rc, &ex);
       for (i = 1; i < argc; i++) {
           int r = rope_opts_parse(&i, argc, argv, &rc, &ex);
           if (r < 0) return 2;             (message already on stderr)
           if (r > 0) continue;             (consumed; *i now at the option's last word)
           ... the tool's own options ...
       }
       then either use rc directly (set rc.head_dim), or lay the user's choices over a model's
       config with rope_opts_overlay(&model_rc, &rc, &ex), and finally rope_opts_finish(&cfg, &ex)
       (list-length check + ropex_rope_validate, message on stderr).

   Options (both "--opt value" and "--opt=value"):
     --rope-base B          runtime base                 --train-base B     pre-training base (critical dim)
     --rope-scaling M       none|linear|ntk|dynamic|dynamic-qwen|yarn|llama3|longrope|giraffe
     --rope-factor F        linear/dynamic/yarn/llama3/longrope/giraffe factor s, or NTK alpha
     --train-ctx N          trained context L0           --rope-dims N      rotated dims (partial rotary)
     --rope-layout L        adjacent|half
     --yarn-beta-fast B  --yarn-beta-slow B  --yarn-attn-factor M (YaRN/LongRoPE m)  --yarn-no-truncate
     --llama3-low F  --llama3-high F
     --rope-freq-factors FILE   LongRoPE lists: a text file with two lines of rot_dims/2 numbers
                            (separated by spaces or commas): the short factors, then the long factors;
                            blank lines and lines starting with '#' are ignored
     --giraffe-power P  --giraffe-truncate T
     --truncate none|clamp|zero   --logn   --logn-ctx L (implies --logn)
     --length N             sequence length for length-dependent tables (dynamic NTK, LongRoPE)
     --kv-size N  --sinks N  --kv-type f32|f16|q8_0  --positions text|cache  --threads N

   The longrope lists live in `ex`: a config pointing at them must not outlive `ex`. */
#ifndef ROPE_OPTS_H
#define ROPE_OPTS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>

/* Where messages go (a tool may define it before the include, e.g. to a log). */
#ifndef ROPE_OPTS_ERR
#define ROPE_OPTS_ERR stderr
#endif

/* Bits of rope_opts_extra.set: which config fields the command line set. */
#define ROPE_OPT_BASE         (1u << 0)
#define ROPE_OPT_SCALING      (1u << 1)
#define ROPE_OPT_FACTOR       (1u << 2)
#define ROPE_OPT_TRAIN_CTX    (1u << 3)
#define ROPE_OPT_DIMS         (1u << 4)
#define ROPE_OPT_LAYOUT       (1u << 5)
#define ROPE_OPT_BETA_FAST    (1u << 6)
#define ROPE_OPT_BETA_SLOW    (1u << 7)
#define ROPE_OPT_ATTN_FACTOR  (1u << 8)
#define ROPE_OPT_NO_TRUNCATE  (1u << 9)
#define ROPE_OPT_LLAMA3_LOW   (1u << 10)
#define ROPE_OPT_LLAMA3_HIGH  (1u << 11)
#define ROPE_OPT_FREQ_FACTORS (1u << 12)
#define ROPE_OPT_GIR_POWER    (1u << 13)
#define ROPE_OPT_GIR_TRUNC    (1u << 14)
#define ROPE_OPT_TRUNCATE     (1u << 15)
#define ROPE_OPT_LOGN         (1u << 16)
#define ROPE_OPT_LOGN_CTX     (1u << 17)
#define ROPE_OPT_TRAIN_BASE   (1u << 18)
/* Bits of rope_opts_extra.kv_set. */
#define KV_OPT_SIZE      (1u << 0)
#define KV_OPT_SINKS     (1u << 1)
#define KV_OPT_TYPE      (1u << 2)
#define KV_OPT_POSITIONS (1u << 3)
#define KV_OPT_THREADS   (1u << 4)

typedef struct rope_opts_extra {
    unsigned set;                 /* ROPE_OPT_* */
    unsigned kv_set;              /* KV_OPT_* */
    long long length;             /* --length (0 = not given) */
    int kv_size;                  /* --kv-size (0 = not given) */
    int sinks;                    /* --sinks */
    ropex_type kv_type;           /* --kv-type, default ROPEX_F32 */
    ropex_pos_policy positions;   /* --positions, default ROPEX_POS_TEXT */
    int threads;                  /* --threads, default 1 */
    int longrope_n;               /* numbers per list read from --rope-freq-factors (0 = none) */
    float longrope_short[ROPEX_ROPE_MAX_PAIRS];
    float longrope_long[ROPEX_ROPE_MAX_PAIRS];
} rope_opts_extra;

static inline void rope_opts_init(ropex_rope_config *cfg, rope_opts_extra *ex) {
    memset(cfg, 0, sizeof(*cfg));
    memset(ex, 0, sizeof(*ex));
    ex->kv_type = ROPEX_F32;
    ex->positions = ROPEX_POS_TEXT;
    ex->threads = 1;
}

static inline const char *rope_opts_scaling_name(ropex_rope_scaling s) {
    static const char *const names[] = { "none", "linear", "ntk", "dynamic", "dynamic-qwen", "yarn",
                                         "llama3", "longrope", "giraffe" };
    return (unsigned)s <= (unsigned)ROPEX_SCALE_GIRAFFE ? names[(unsigned)s] : "unknown";
}

static inline int rope_opts_scaling_from_name(const char *s, ropex_rope_scaling *out) {
    int k;
    for (k = 0; k <= (int)ROPEX_SCALE_GIRAFFE; k++)
        if (strcmp(s, rope_opts_scaling_name((ropex_rope_scaling)k)) == 0) { *out = (ropex_rope_scaling)k; return 1; }
    return 0;
}

/* A finite double, entire string consumed. */
static inline int rope_opts_double(const char *opt, const char *v, double lo, double *out) {
    char *end;
    double x;
    errno = 0;
    x = strtod(v, &end);
    if (end == v || *end || errno || !(x == x) || x - x != 0.0 || x < lo) {
        fprintf(ROPE_OPTS_ERR, "%s: bad value '%s' (a finite number >= %g expected)\n", opt, v, lo);
        return -1;
    }
    *out = x;
    return 1;
}

/* A decimal integer in [lo, hi], entire string consumed. */
static inline int rope_opts_ll(const char *opt, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    long long x;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(ROPE_OPTS_ERR, "%s: bad value '%s' (an integer in [%lld, %lld] expected)\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 1;
}

static inline int rope_opts_int(const char *opt, const char *v, int lo, int hi, int *out) {
    long long x;
    if (rope_opts_ll(opt, v, lo, hi, &x) < 0) return -1;
    *out = (int)x;
    return 1;
}

/* Reads the LongRoPE factor file (format above) into ex. 1 ok, -1 with a message. */
static inline int rope_opts_read_factors(const char *path, rope_opts_extra *ex) {
    FILE *f = fopen(path, "r");
    char line[16384];
    int nl = 0, n[2] = { 0, 0 };
    if (!f) { fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: cannot open '%s'\n", path); return -1; }
    while (fgets(line, sizeof line, f)) {
        char *p = line, *end;
        float *dst;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: line too long in '%s'\n", path); fclose(f); return -1;
        }
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p || *p == '#') continue;
        if (nl == 2) { fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: '%s' has more than two lists\n", path); fclose(f); return -1; }
        dst = nl == 0 ? ex->longrope_short : ex->longrope_long;
        for (;;) {
            double x;
            while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r' || *p == '\n') p++;
            if (!*p) break;
            errno = 0;
            x = strtod(p, &end);
            if (end == p || errno || !(x == x) || x - x != 0.0 || x <= 0) {
                fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: bad number in '%s' (list %d, entry %d)\n", path, nl + 1, n[nl] + 1);
                fclose(f); return -1;
            }
            if (n[nl] == ROPEX_ROPE_MAX_PAIRS) {
                fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: more than %d numbers in a list\n", ROPEX_ROPE_MAX_PAIRS);
                fclose(f); return -1;
            }
            dst[n[nl]++] = (float)x;
            p = end;
        }
        nl++;
    }
    fclose(f);
    if (nl != 2 || n[0] != n[1] || n[0] == 0) {
        fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: '%s' needs two lists of equal length (short, then long)\n", path);
        return -1;
    }
    ex->longrope_n = n[0];
    return 1;
}

/* Parses the option at argv[*i] if it is one of ours: 1 consumed (*i advanced past its value),
   0 not ours, -1 bad value (message on stderr; the tool exits with status 2). */
static inline int rope_opts_parse(int *i, int argc, char **argv, ropex_rope_config *cfg, rope_opts_extra *ex) {
    static const char *const with_value[] = {
        "--rope-base", "--train-base", "--rope-scaling", "--rope-factor", "--train-ctx", "--rope-dims",
        "--rope-layout", "--yarn-beta-fast", "--yarn-beta-slow", "--yarn-attn-factor", "--llama3-low",
        "--llama3-high", "--rope-freq-factors", "--giraffe-power", "--giraffe-truncate", "--truncate",
        "--logn-ctx", "--length", "--kv-size", "--sinks", "--kv-type", "--positions", "--threads", NULL };
    char name[64];
    const char *arg = argv[*i], *eq, *v = NULL;
    int k, takes = 0;
    size_t nlen;
    if (strncmp(arg, "--", 2) != 0) return 0;
    eq = strchr(arg, '=');
    nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nlen >= sizeof name) return 0;
    memcpy(name, arg, nlen);
    name[nlen] = 0;
    for (k = 0; with_value[k]; k++) if (strcmp(name, with_value[k]) == 0) takes = 1;
    if (!takes) {
        if (strcmp(name, "--logn") != 0 && strcmp(name, "--yarn-no-truncate") != 0) return 0;
        if (eq) { fprintf(ROPE_OPTS_ERR, "%s takes no value\n", name); return -1; }
        if (name[2] == 'l') { cfg->logn = 1; ex->set |= ROPE_OPT_LOGN; }
        else { cfg->yarn_no_truncate = 1; ex->set |= ROPE_OPT_NO_TRUNCATE; }
        return 1;
    }
    if (eq) v = eq + 1;
    else if (*i + 1 < argc) v = argv[++*i];
    else { fprintf(ROPE_OPTS_ERR, "%s needs a value\n", name); return -1; }

#define ROPE_OPTS__D(optname, field, lo, bit) \
    if (strcmp(name, optname) == 0) { \
        if (rope_opts_double(name, v, lo, &cfg->field) < 0) { return -1; } \
        ex->set |= bit; \
        return 1; \
    }
#define ROPE_OPTS__I(optname, field, lo, hi, bit) \
    if (strcmp(name, optname) == 0) { \
        if (rope_opts_int(name, v, lo, hi, &cfg->field) < 0) { return -1; } \
        ex->set |= bit; \
        return 1; \
    }
    ROPE_OPTS__D("--rope-base", base, 0, ROPE_OPT_BASE)
    ROPE_OPTS__D("--train-base", train_base, 0, ROPE_OPT_TRAIN_BASE)
    ROPE_OPTS__D("--rope-factor", factor, 0, ROPE_OPT_FACTOR)
    ROPE_OPTS__I("--train-ctx", train_ctx, 0, 2147483647, ROPE_OPT_TRAIN_CTX)
    ROPE_OPTS__I("--rope-dims", rot_dims, 0, 2 * ROPEX_ROPE_MAX_PAIRS, ROPE_OPT_DIMS)
    ROPE_OPTS__D("--yarn-beta-fast", yarn_beta_fast, 0, ROPE_OPT_BETA_FAST)
    ROPE_OPTS__D("--yarn-beta-slow", yarn_beta_slow, 0, ROPE_OPT_BETA_SLOW)
    ROPE_OPTS__D("--yarn-attn-factor", attn_factor, 0, ROPE_OPT_ATTN_FACTOR)
    ROPE_OPTS__D("--llama3-low", llama3_low, 0, ROPE_OPT_LLAMA3_LOW)
    ROPE_OPTS__D("--llama3-high", llama3_high, 0, ROPE_OPT_LLAMA3_HIGH)
    ROPE_OPTS__D("--giraffe-power", giraffe_power, 0, ROPE_OPT_GIR_POWER)
    ROPE_OPTS__I("--giraffe-truncate", giraffe_truncate, 0, 2147483647, ROPE_OPT_GIR_TRUNC)
    if (strcmp(name, "--logn-ctx") == 0) {
        if (rope_opts_int(name, v, 2, 2147483647, &cfg->logn_ctx) < 0) return -1;
        cfg->logn = 1;
        ex->set |= ROPE_OPT_LOGN_CTX | ROPE_OPT_LOGN;
        return 1;
    }
#undef ROPE_OPTS__D
#undef ROPE_OPTS__I
    if (strcmp(name, "--rope-scaling") == 0) {
        if (!rope_opts_scaling_from_name(v, &cfg->scaling)) {
            fprintf(ROPE_OPTS_ERR, "--rope-scaling: unknown method '%s' (none|linear|ntk|dynamic|dynamic-qwen|yarn|"
                            "llama3|longrope|giraffe)\n", v);
            return -1;
        }
        ex->set |= ROPE_OPT_SCALING;
        return 1;
    }
    if (strcmp(name, "--rope-layout") == 0) {
        if (strcmp(v, "adjacent") == 0) cfg->layout = ROPEX_LAYOUT_ADJACENT;
        else if (strcmp(v, "half") == 0) cfg->layout = ROPEX_LAYOUT_HALF;
        else { fprintf(ROPE_OPTS_ERR, "--rope-layout: '%s' (adjacent|half)\n", v); return -1; }
        ex->set |= ROPE_OPT_LAYOUT;
        return 1;
    }
    if (strcmp(name, "--truncate") == 0) {
        if (strcmp(v, "none") == 0) cfg->truncate = ROPEX_TRUNC_NONE;
        else if (strcmp(v, "clamp") == 0) cfg->truncate = ROPEX_TRUNC_CLAMP;
        else if (strcmp(v, "zero") == 0) cfg->truncate = ROPEX_TRUNC_ZERO;
        else { fprintf(ROPE_OPTS_ERR, "--truncate: '%s' (none|clamp|zero)\n", v); return -1; }
        ex->set |= ROPE_OPT_TRUNCATE;
        return 1;
    }
    if (strcmp(name, "--rope-freq-factors") == 0) {
        if (rope_opts_read_factors(v, ex) < 0) return -1;
        cfg->longrope_short = ex->longrope_short;
        cfg->longrope_long = ex->longrope_long;
        ex->set |= ROPE_OPT_FREQ_FACTORS;
        return 1;
    }
    if (strcmp(name, "--length") == 0)
        return rope_opts_ll(name, v, 1, (long long)1 << 62, &ex->length);
    if (strcmp(name, "--kv-size") == 0) {
        if (rope_opts_int(name, v, 1, 1 << 30, &ex->kv_size) < 0) return -1;
        ex->kv_set |= KV_OPT_SIZE; return 1;
    }
    if (strcmp(name, "--sinks") == 0) {
        if (rope_opts_int(name, v, 0, 1 << 30, &ex->sinks) < 0) return -1;
        ex->kv_set |= KV_OPT_SINKS; return 1;
    }
    if (strcmp(name, "--threads") == 0) {
        if (rope_opts_int(name, v, 1, 1024, &ex->threads) < 0) return -1;
        ex->kv_set |= KV_OPT_THREADS; return 1;
    }
    if (strcmp(name, "--kv-type") == 0) {
        if (strcmp(v, "f32") == 0) ex->kv_type = ROPEX_F32;
        else if (strcmp(v, "f16") == 0) ex->kv_type = ROPEX_F16;
        else if (strcmp(v, "q8_0") == 0) ex->kv_type = ROPEX_Q8_0;
        else { fprintf(ROPE_OPTS_ERR, "--kv-type: '%s' (f32|f16|q8_0)\n", v); return -1; }
        ex->kv_set |= KV_OPT_TYPE; return 1;
    }
    /* --positions */
    if (strcmp(v, "text") == 0) ex->positions = ROPEX_POS_TEXT;
    else if (strcmp(v, "cache") == 0) ex->positions = ROPEX_POS_CACHE;
    else { fprintf(ROPE_OPTS_ERR, "--positions: '%s' (text|cache)\n", v); return -1; }
    ex->kv_set |= KV_OPT_POSITIONS;
    return 1;
}

/* Lays the command-line choices (src, with ex->set) over dst (e.g. the model's config). Choosing a
   different scaling method drops dst's parameters of the old method first, so a model's linear
   factor does not leak into, say, --rope-scaling none. */
static inline void rope_opts_overlay(ropex_rope_config *dst, const ropex_rope_config *src, const rope_opts_extra *ex) {
    unsigned s = ex->set;
    if ((s & ROPE_OPT_SCALING) && src->scaling != dst->scaling) {
        dst->factor = 0; dst->yarn_beta_fast = 0; dst->yarn_beta_slow = 0; dst->attn_factor = 0;
        dst->yarn_no_truncate = 0; dst->llama3_low = 0; dst->llama3_high = 0;
        dst->longrope_short = NULL; dst->longrope_long = NULL; dst->giraffe_power = 0; dst->giraffe_truncate = 0;
        dst->scaling = src->scaling;
    }
    if (s & ROPE_OPT_BASE) {
        /* A new runtime base: the critical dimension still belongs to the pre-training base. */
        if (dst->train_base == 0) dst->train_base = dst->base != 0 ? dst->base : 10000.0;
        dst->base = src->base;
    }
    if (s & ROPE_OPT_TRAIN_BASE) dst->train_base = src->train_base;
    if (s & ROPE_OPT_FACTOR) dst->factor = src->factor;
    if (s & ROPE_OPT_TRAIN_CTX) dst->train_ctx = src->train_ctx;
    if (s & ROPE_OPT_DIMS) dst->rot_dims = src->rot_dims;
    if (s & ROPE_OPT_LAYOUT) dst->layout = src->layout;
    if (s & ROPE_OPT_BETA_FAST) dst->yarn_beta_fast = src->yarn_beta_fast;
    if (s & ROPE_OPT_BETA_SLOW) dst->yarn_beta_slow = src->yarn_beta_slow;
    if (s & ROPE_OPT_ATTN_FACTOR) dst->attn_factor = src->attn_factor;
    if (s & ROPE_OPT_NO_TRUNCATE) dst->yarn_no_truncate = src->yarn_no_truncate;
    if (s & ROPE_OPT_LLAMA3_LOW) dst->llama3_low = src->llama3_low;
    if (s & ROPE_OPT_LLAMA3_HIGH) dst->llama3_high = src->llama3_high;
    if (s & ROPE_OPT_FREQ_FACTORS) { dst->longrope_short = ex->longrope_short; dst->longrope_long = ex->longrope_long; }
    if (s & ROPE_OPT_GIR_POWER) dst->giraffe_power = src->giraffe_power;
    if (s & ROPE_OPT_GIR_TRUNC) dst->giraffe_truncate = src->giraffe_truncate;
    if (s & ROPE_OPT_TRUNCATE) dst->truncate = src->truncate;
    if (s & ROPE_OPT_LOGN) dst->logn = src->logn;
    if (s & ROPE_OPT_LOGN_CTX) dst->logn_ctx = src->logn_ctx;
}

/* Final check once head_dim is known: LongRoPE list length, then ropex_rope_validate.
   0 ok, -1 with a message on stderr. */
static inline int rope_opts_finish(const ropex_rope_config *cfg, const rope_opts_extra *ex) {
    const char *msg = NULL;
    if (cfg->scaling == ROPEX_SCALE_LONGROPE && (ex->set & ROPE_OPT_FREQ_FACTORS)) {
        int rot = cfg->rot_dims ? cfg->rot_dims : cfg->head_dim;
        if (ex->longrope_n != rot / 2) {
            fprintf(ROPE_OPTS_ERR, "--rope-freq-factors: the lists have %d numbers, rot_dims/2 = %d needed\n",
                    ex->longrope_n, rot / 2);
            return -1;
        }
    }
    if (cfg->scaling == ROPEX_SCALE_LONGROPE && !cfg->longrope_short) {
        fprintf(ROPE_OPTS_ERR, "--rope-scaling longrope needs --rope-freq-factors FILE\n");
        return -1;
    }
    if (ropex_rope_validate(cfg, &msg) != ROPEX_OK) {
        fprintf(ROPE_OPTS_ERR, "invalid RoPE settings: %s\n", msg ? msg : "?");
        return -1;
    }
    return 0;
}

/* One block of help text for the tools' usage messages. */
static inline void rope_opts_usage(FILE *f) {
    fputs("RoPE options:\n"
          "  --rope-base B  --train-base B  --rope-scaling none|linear|ntk|dynamic|dynamic-qwen|yarn|llama3|longrope|giraffe\n"
          "  --rope-factor F  --train-ctx N  --rope-dims N  --rope-layout adjacent|half\n"
          "  --yarn-beta-fast B  --yarn-beta-slow B  --yarn-attn-factor M  --yarn-no-truncate\n"
          "  --llama3-low F  --llama3-high F  --rope-freq-factors FILE  --giraffe-power P  --giraffe-truncate T\n"
          "  --truncate none|clamp|zero  --logn  --logn-ctx L  --length N\n"
          "KV options:\n"
          "  --kv-size N  --sinks N  --kv-type f32|f16|q8_0  --positions text|cache  --threads N\n", f);
}
#endif
