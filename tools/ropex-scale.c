/* ropex-scale: the scaling-law calculator ("Scaling Laws of RoPE-based Extrapolation", Liu et al. 2024)
   and a RoPE frequency-table printer.

     ropex-scale --head-dim D --base B --train-ctx T [--new-base B2 | --rope-base B2] [--tune-ctx T2]
                 [--target N] [--json] [rope options]
     ropex-scale --freqs --head-dim D [--base B] [--train-ctx T] [rope options] [--length N] [--json]

   --base is the base the model was pre-trained with; --new-base (synonym --rope-base) the base it runs
   or was tuned at. Key mode prints `key: value` lines (or one JSON object): the critical dimension, the
   extrapolation limit following the regime (Theorem-2 bound above the critical base, the tuning length
   at or below it, `none` below the smallest small-base threshold), the critical base for --tune-ctx,
   the base for --target, the thresholds and the regime, then the equivalent settings of the runtime
   configuration for llama.cpp and Hugging Face. --freqs prints CSV `pair,inv_freq,wavelength,mscale`
   of the runtime table (base = --rope-base if given, else --base) on stdout and the equivalents as
   `#` lines on stderr. Unknown options and bad values: a message on stderr, exit status 2. */
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include "rope_opts.h"
#include <stdarg.h>

#define TWO_PI 6.28318530717958647692

static int json_mode;
static int n_keys;

/* ---- output: `key: value` lines or the members of one JSON object ---- */
static void out_key(const char *k) {
    if (json_mode) printf("%s\n  \"%s\": ", n_keys ? "," : "{", k);
    else printf("%s: ", k);
    n_keys++;
}
static void out_end(void) { if (!json_mode) printf("\n"); }
static void out_num(const char *k, const char *fmt, double v) { out_key(k); printf(fmt, v); out_end(); }
static void out_int(const char *k, long long v) { out_key(k); printf("%lld", v); out_end(); }
static void out_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') { putchar('\\'); putchar(*s); }
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned)(unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}
static void out_str(const char *k, const char *s) {
    out_key(k);
    if (json_mode) out_json_string(s); else fputs(s, stdout);
    out_end();
}
/* Raw JSON value (an object or null): printed as-is in both modes. */
static void out_raw(const char *k, const char *json) { out_key(k); fputs(json, stdout); out_end(); }
static void out_close(void) { if (json_mode) printf("%s}\n", n_keys ? "\n" : "{"); }

/* ---- growing string buffer for the equivalents ---- */
typedef struct sbuf { char s[8192]; size_t n; } sbuf;
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    int w;
    if (b->n >= sizeof b->s) return;
    va_start(ap, fmt);
    w = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (w > 0) b->n += (size_t)w;
    if (b->n >= sizeof b->s) b->n = sizeof b->s - 1;
}

static double ntk_base(double base, double alpha, int d) { return base * pow(alpha, (double)d / (d - 2)); }

/* Effective base of a dynamic method at the table's length (for the static fallbacks). */
static double dynamic_base_at(const ropex_rope_config *c, const ropex_rope_table *t) {
    (void)c;
    return pow(t->inv_freq[1], -(double)t->rot_dims / 2.0);
}

typedef struct equiv {
    sbuf llama;      /* llama.cpp flags, or empty when none */
    sbuf llama_why;  /* why not / caveats */
    sbuf hf;         /* JSON object or "null" */
    sbuf hf_why;
    double hf_theta;
    sbuf none;       /* features with no equivalent anywhere */
} equiv;

static void list_floats(sbuf *b, const float *v, int n) {
    int j;
    sb_add(b, "[");
    for (j = 0; j < n; j++) sb_add(b, "%s%.9g", j ? ", " : "", (double)v[j]);
    sb_add(b, "]");
}

/* The equivalent settings of the runtime config c in llama.cpp and Hugging Face. */
static void equivalents(const ropex_rope_config *c, const ropex_rope_table *t, equiv *e) {
    int d = c->rot_dims ? c->rot_dims : c->head_dim;
    double B = c->base ? c->base : 10000.0, s = c->factor ? c->factor : 1.0;
    memset(e, 0, sizeof *e);
    e->hf_theta = B;
    switch (c->scaling) {
    case ROPEX_SCALE_NONE:
        sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling none", B);
        sb_add(&e->hf, "null");
        break;
    case ROPEX_SCALE_LINEAR:
        sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling linear --rope-scale %.10g", B, s);
        sb_add(&e->hf, "{\"rope_type\": \"linear\", \"factor\": %.10g}", s);
        break;
    case ROPEX_SCALE_NTK: {
        /* static NTK is a base change: every runtime can express it as rope_theta. */
        double b2 = ntk_base(B, s, d);
        sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling none", b2);
        sb_add(&e->hf, "null");
        e->hf_theta = b2;
        sb_add(&e->hf_why, "static NTK alpha %.10g = rope_theta %.10g (base*alpha^(d/(d-2)))", s, b2);
        break;
    }
    case ROPEX_SCALE_DYNAMIC:
        sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling none", dynamic_base_at(c, t));
        sb_add(&e->llama_why, "llama.cpp has no dynamic NTK; these flags fix the base of length %lld", (long long)t->length);
        sb_add(&e->hf, "{\"rope_type\": \"dynamic\", \"factor\": %.10g}", s);
        sb_add(&e->hf_why, "HF takes L0 from max_position_embeddings: set it to %d; HF keeps cached keys under older bases, ropex re-rotates them", c->train_ctx);
        break;
    case ROPEX_SCALE_DYNAMIC_QWEN:
        sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling none", dynamic_base_at(c, t));
        sb_add(&e->llama_why, "llama.cpp has no Qwen discrete dynamic NTK; these flags fix the base of length %lld", (long long)t->length);
        sb_add(&e->hf, "null");
        e->hf_theta = dynamic_base_at(c, t);
        sb_add(&e->hf_why, "no rope_type for Qwen dynamic NTK (Qwen-7B remote code: use_dynamic_ntk=true, seq_length=%d); rope_theta shown fixes the base of length %lld",
               c->train_ctx, (long long)t->length);
        break;
    case ROPEX_SCALE_YARN: {
        double bf = c->yarn_beta_fast ? c->yarn_beta_fast : 32, bs = c->yarn_beta_slow ? c->yarn_beta_slow : 1;
        sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling yarn --rope-scale %.10g --yarn-orig-ctx %d --yarn-beta-fast %.10g --yarn-beta-slow %.10g",
               B, s, c->train_ctx, bf, bs);
        if (c->attn_factor != 0) {
            /* ggml multiplies its own 1 + 0.1 ln s into yarn_attn_factor */
            sb_add(&e->llama, " --yarn-attn-factor %.10g", c->attn_factor / (1.0 + 0.1 * log(s)));
            sb_add(&e->llama_why, "--yarn-attn-factor assumes ggml multiplies 1+0.1 ln s back in (check your llama.cpp version); ");
        }
        if (c->yarn_no_truncate) sb_add(&e->llama_why, "llama.cpp has no truncate=false: corr dims are floor/ceil there; ");
        sb_add(&e->llama_why, "ggml computes the correction range in float32");
        sb_add(&e->hf, "{\"rope_type\": \"yarn\", \"factor\": %.10g, \"original_max_position_embeddings\": %d, \"beta_fast\": %.10g, \"beta_slow\": %.10g",
               s, c->train_ctx, bf, bs);
        if (c->attn_factor != 0) sb_add(&e->hf, ", \"attention_factor\": %.10g", c->attn_factor);
        if (c->yarn_no_truncate) sb_add(&e->hf, ", \"truncate\": false");
        sb_add(&e->hf, "}");
        if (c->yarn_no_truncate) sb_add(&e->hf_why, "\"truncate\" is read by Hugging Face v5 only");
        break;
    }
    case ROPEX_SCALE_LLAMA3:
        sb_add(&e->llama_why, "no command-line flags: llama.cpp reads llama3 factors from the GGUF rope_freqs tensor (written by convert_hf_to_gguf from rope_scaling)");
        sb_add(&e->hf, "{\"rope_type\": \"llama3\", \"factor\": %.10g, \"low_freq_factor\": %.10g, \"high_freq_factor\": %.10g, \"original_max_position_embeddings\": %d}",
               s, c->llama3_low ? c->llama3_low : 1.0, c->llama3_high ? c->llama3_high : 4.0, c->train_ctx);
        break;
    case ROPEX_SCALE_LONGROPE:
        sb_add(&e->llama_why, "no command-line flags: llama.cpp reads LongRoPE lists from the GGUF rope_factors_short/long tensors and picks one per context (n_ctx > %d -> long)", c->train_ctx);
        sb_add(&e->hf, "{\"rope_type\": \"longrope\", \"factor\": %.10g, \"original_max_position_embeddings\": %d", s, c->train_ctx);
        if (c->attn_factor != 0) sb_add(&e->hf, ", \"attention_factor\": %.10g", c->attn_factor);
        sb_add(&e->hf, ", \"short_factor\": ");
        list_floats(&e->hf, c->longrope_short, d / 2);
        sb_add(&e->hf, ", \"long_factor\": ");
        list_floats(&e->hf, c->longrope_long, d / 2);
        sb_add(&e->hf, "}");
        break;
    case ROPEX_SCALE_GIRAFFE:
        if (c->giraffe_power == 0 && c->giraffe_truncate == 0) {
            sb_add(&e->llama, "--rope-freq-base %.10g --rope-scaling linear --rope-scale %.10g", B, s);
            sb_add(&e->hf, "{\"rope_type\": \"linear\", \"factor\": %.10g}", s);
            sb_add(&e->hf_why, "Giraffe without power/truncate is linear scaling");
        } else {
            sb_add(&e->llama_why, "no Giraffe power/truncated basis in llama.cpp");
            sb_add(&e->hf, "null");
            sb_add(&e->hf_why, "no rope_type for Giraffe; abacusai/Long-Context: --scale-context %.10g --scale-power %.10g --truncate-pos %d",
                   s, c->giraffe_power, c->giraffe_truncate);
            sb_add(&e->none, "giraffe power/truncated basis; ");
        }
        break;
    }
    if (c->truncate != ROPEX_TRUNC_NONE)
        sb_add(&e->none, "truncation (%s beyond the critical dimension): no equivalent in llama.cpp or Hugging Face; ",
               c->truncate == ROPEX_TRUNC_CLAMP ? "clamp" : "zero");
    if (c->logn)
        sb_add(&e->none, "log-n query scaling (L = %d): no equivalent in llama.cpp or Hugging Face rope_scaling (Qwen-7B remote code: use_logn_attn=true); ",
               c->logn_ctx ? c->logn_ctx : c->train_ctx);
    if (e->none.n >= 2 && e->none.s[e->none.n - 2] == ';') e->none.s[e->none.n -= 2] = 0;
    if (e->llama_why.n >= 2 && e->llama_why.s[e->llama_why.n - 2] == ';') e->llama_why.s[e->llama_why.n -= 2] = 0;
}

static void print_equivalents(const equiv *e, FILE *f, int as_comments) {
    if (as_comments) {
        fprintf(f, "# llama_cpp: %s\n", e->llama.n ? e->llama.s : "none");
        if (e->llama_why.n) fprintf(f, "# llama_cpp_note: %s\n", e->llama_why.s);
        fprintf(f, "# hf_rope_theta: %.10g\n# hf_rope_scaling: %s\n", e->hf_theta, e->hf.s);
        if (e->hf_why.n) fprintf(f, "# hf_note: %s\n", e->hf_why.s);
        if (e->none.n) fprintf(f, "# no_equivalent: %s\n", e->none.s);
        return;
    }
    if (e->llama.n) out_str("llama_cpp", e->llama.s);
    else if (json_mode) out_raw("llama_cpp", "null");
    else out_str("llama_cpp", "none");
    if (e->llama_why.n) out_str("llama_cpp_note", e->llama_why.s);
    out_num("hf_rope_theta", "%.10g", e->hf_theta);
    out_raw("hf_rope_scaling", e->hf.s);
    if (e->hf_why.n) out_str("hf_note", e->hf_why.s);
    if (e->none.n) out_str("no_equivalent", e->none.s);
}

static void usage(FILE *f) {
    fputs("usage: ropex-scale --head-dim D --base B --train-ctx T [--new-base B2|--rope-base B2] [--tune-ctx T2]\n"
          "                   [--target N] [--json] [rope options]\n"
          "       ropex-scale --freqs --head-dim D [--base B] [--train-ctx T] [rope options] [--length N]\n"
          "--base: pre-training base; --new-base/--rope-base: the base the model runs (or was tuned) at.\n", f);
    rope_opts_usage(f);
}

static int bad(const char *what, const char *v) {
    fprintf(stderr, "ropex-scale: %s: bad value '%s'\n", what, v ? v : "(missing)");
    return 2;
}

int main(int argc, char **argv) {
    ropex_rope_config cfg;
    rope_opts_extra ex;
    ropex_rope_table t;
    equiv eq;
    double b0 = 0, tune = 0, target = 0;
    int head_dim = 0, freqs = 0, i, d;
    rope_opts_init(&cfg, &ex);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
        if (strcmp(a, "--json") == 0) { json_mode = 1; continue; }
        if (strcmp(a, "--freqs") == 0) { freqs = 1; continue; }
        if (strcmp(a, "--new-base") == 0) {
            /* synonym of --rope-base */
            argv[i] = (char *)"--rope-base";
            a = argv[i];
        } else if (strncmp(a, "--new-base=", 11) == 0) {
            static char buf[128];
            snprintf(buf, sizeof buf, "--rope-base=%s", a + 11);
            argv[i] = buf;
            a = argv[i];
        }
        {
            static const char *const own[] = { "--head-dim", "--base", "--tune-ctx", "--target" };
            const char *v = NULL, *name = NULL;
            int k;
            double x;
            for (k = 0; k < 4; k++) {
                size_t n = strlen(own[k]);
                if (strncmp(a, own[k], n) == 0 && (a[n] == 0 || a[n] == '=')) {
                    name = own[k];
                    if (a[n] == '=') v = a + n + 1;
                    else if (i + 1 < argc) v = argv[++i];
                }
            }
            if (name) {
                if (!v) return bad(name, v);
                if (rope_opts_double(name, v, 0, &x) < 0) return 2;
                if (name[2] == 'h') {
                    if (x != floor(x) || x < 2 || x > 2 * ROPEX_ROPE_MAX_PAIRS || fmod(x, 2.0) != 0) return bad(name, v);
                    head_dim = (int)x;
                } else if (name[2] == 'b') {
                    if (x <= 1) return bad(name, v);
                    b0 = x;
                } else if (name[3] == 'u') {
                    if (x < 1) return bad(name, v);
                    tune = x;
                } else {
                    if (x < 1) return bad(name, v);
                    target = x;
                }
                continue;
            }
        }
        r = rope_opts_parse(&i, argc, argv, &cfg, &ex);
        if (r < 0) return 2;
        if (r == 0) { fprintf(stderr, "ropex-scale: unknown option '%s' (--help lists them)\n", a); return 2; }
    }
    if (!head_dim) { fprintf(stderr, "ropex-scale: --head-dim D is required\n"); return 2; }
    if (!freqs && (b0 == 0 || cfg.train_ctx == 0)) {
        fprintf(stderr, "ropex-scale: --base B and --train-ctx T are required (or use --freqs)\n");
        return 2;
    }
    if (b0 == 0) b0 = 10000.0;
    if ((ex.set & ROPE_OPT_BASE) && cfg.base <= 1) return bad("--rope-base", "<= 1");
    /* runtime config: --rope-base if given, else --base; the critical dim uses the pre-training base */
    cfg.head_dim = head_dim;
    if (!(ex.set & ROPE_OPT_BASE)) cfg.base = b0;
    if (!(ex.set & ROPE_OPT_TRAIN_BASE)) cfg.train_base = b0;
    if (rope_opts_finish(&cfg, &ex) < 0) return 2;
    if (ropex_rope_table_init(&t, &cfg, (int64_t)ex.length) != ROPEX_OK) {
        fprintf(stderr, "ropex-scale: cannot build the RoPE table\n");
        return 2;
    }
    equivalents(&cfg, &t, &eq);
    d = t.rot_dims;

    if (freqs) {
        int j;
        if (json_mode) {
            printf("{\n  \"length\": %lld,\n  \"mscale\": %.9g,\n  \"freqs\": [", (long long)t.length, (double)t.mscale);
            for (j = 0; j < t.n_pairs; j++) {
                printf("%s\n    {\"pair\": %d, \"inv_freq\": %.17g, ", j ? "," : "", j, t.inv_freq[j]);
                if (t.inv_freq[j] > 0) printf("\"wavelength\": %.17g, ", TWO_PI / t.inv_freq[j]);
                else printf("\"wavelength\": null, ");
                printf("\"mscale\": %.9g, \"clamp_pos\": %d, \"zero\": %d}", (double)t.mscale, (int)t.clamp_pos[j], t.zero[j]);
            }
            printf("\n  ]");
            n_keys = 1;
            print_equivalents(&eq, stdout, 0);
            out_close();
            return 0;
        }
        printf("pair,inv_freq,wavelength,mscale\n");
        for (j = 0; j < t.n_pairs; j++) {
            printf("%d,%.17g,", j, t.inv_freq[j]);
            if (t.inv_freq[j] > 0) printf("%.17g", TWO_PI / t.inv_freq[j]); else printf("inf");
            printf(",%.9g\n", (double)t.mscale);
        }
        fprintf(stderr, "# table: %d pairs, length %lld, mscale %.9g", t.n_pairs, (long long)t.length, (double)t.mscale);
        if (cfg.truncate != ROPEX_TRUNC_NONE) {
            for (j = 0; j < t.n_pairs && t.clamp_pos[j] < 0 && !t.zero[j]; j++) {}
            fprintf(stderr, "; pairs %d..%d %s", j, t.n_pairs - 1,
                    cfg.truncate == ROPEX_TRUNC_CLAMP ? "clamp positions at train_ctx-1" : "zeroed in q and k");
        }
        if (cfg.logn) fprintf(stderr, "; log-n L = %g", t.logn_ctx);
        fprintf(stderr, "\n");
        print_equivalents(&eq, stderr, 1);
        return 0;
    }

    {
        double T = (double)cfg.train_ctx, bt = cfg.base, lim, th[3];
        double T2 = tune ? tune : T;
        int crit = ropex_critical_dim(d, T, b0);
        ropex_regime reg;
        char buf[96];
        if (T <= TWO_PI) { fprintf(stderr, "ropex-scale: --train-ctx must be > 2 pi\n"); return 2; }
        if (tune && tune < T) { fprintf(stderr, "ropex-scale: --tune-ctx must be >= --train-ctx\n"); return 2; }
        reg = ropex_scaling_regime(d, b0, T, bt, T2, &lim);
        ropex_small_base_thresholds(T2, th);
        out_int("head_dim", head_dim);
        if (d != head_dim) out_int("rot_dims", d);
        out_num("base", "%.10g", b0);
        out_int("train_ctx", cfg.train_ctx);
        if (ex.set & ROPE_OPT_BASE) out_num("new_base", "%.10g", bt);
        if (tune) out_num("tune_ctx", "%.10g", tune);
        out_int("critical_dim", crit);
        out_int("critical_pairs", crit / 2);
        out_num("critical_period", "%.1f", TWO_PI * pow(b0, (double)crit / d));
        if (tune) {
            out_num("critical_base", "%.1f", ropex_critical_base(T, tune, b0));
        }
        if ((ex.set & ROPE_OPT_BASE) || tune) out_int("updated_critical_dim", ropex_updated_critical_dim(bt, d, T2));
        if (lim > 0) out_num("extrapolation_limit", "%.0f", lim);
        else if (json_mode) out_raw("extrapolation_limit", "null");
        else out_str("extrapolation_limit", "none");
        if (target) {
            double bft = ropex_base_for_target(target, d, crit);
            out_num("target", "%.10g", target);
            if (bft < HUGE_VAL) out_num("base_for_target", "%.1f", bft);
            else if (json_mode) out_raw("base_for_target", "null");
            else out_str("base_for_target", "none");
        }
        if (json_mode) {
            snprintf(buf, sizeof buf, "[%.1f, %.1f, %.1f]", th[0], th[1], th[2]);
            out_raw("small_base_thresholds", buf);
        } else {
            snprintf(buf, sizeof buf, "%.1f %.1f %.1f", th[0], th[1], th[2]);
            out_str("small_base_thresholds", buf);
        }
        out_str("regime", ropex_regime_name(reg));
        if (reg != ROPEX_REGIME_UNCHANGED) out_str("note", "limits assume the model is tuned at the new base");
        out_str("rope_scaling", rope_opts_scaling_name(cfg.scaling));
        if (t.mscale != 1.0f) out_num("mscale", "%.9g", (double)t.mscale);
        print_equivalents(&eq, stdout, 0);
        out_close();
    }
    return 0;
}
