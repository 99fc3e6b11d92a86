/* ropex-ppl: perplexity by position, and the plot that shows how each RoPE setting extrapolates.

   ropex-ppl --model FILE [--tokenizer FILE] --text FILE --tokens N [--bucket B] [rope/kv options]
             [--compare SPEC...] [--csv FILE] [--svg FILE] [--table FILE] [--table-at K,K,...]
             [--title TEXT] [--threads N] [--chunk N] [--quiet]

   The whole text is encoded llama2.c-style (BOS, then the text) and the first N ids are run through
   the model in one stream (chunks of --chunk tokens), so every token is predicted from all the
   context the setting keeps. The N-1 predictions are scored with a log-softmax in double.
   Position p below is the position of the token whose logits predict token p+1 (its RoPE/query
   position in the stream): bucket START-END holds the predictions made at positions START..END-1.
   --compare runs several settings (syntax: tools/ppl_spec.h, or --help) over the same tokens.
   Output: `ppl: X` and one `bucket START-END: ppl X` line per bucket, per setting. */
#define _POSIX_C_SOURCE 200809L
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include "ppl_spec.h"

#include "rope_opts.h"

#define PPL_MAX_SETTINGS 32

static const char *ppl_usage =
    "usage: ropex-ppl --model FILE [--tokenizer FILE] --text FILE --tokens N [--bucket B]\n"
    "                 [rope/kv options] [--compare SPEC...] [--csv FILE] [--svg FILE]\n"
    "                 [--table FILE] [--table-at K,...] [--table-window W] [--title TEXT] [--ymax P] [--threads N] [--chunk N] [--quiet]\n"
    "Scores the first N tokens of the text (BOS first) in one stream; prints `ppl: X` and one\n"
    "`bucket START-END: ppl X` line per bucket (positions START..END-1 predict the next token).\n"
    "  --bucket B      bucket width (default train_ctx/2, or 64 when unknown)\n"
    "  --compare SPEC  one or more settings run over the same tokens (each a separate argument;\n"
    "                  the list ends at the next --option). A spec is terms joined by '+':\n"
    "                  plain, base:B, linear:S, ntk:A, dynamic[:S], dynamic-qwen, yarn:S, llama3:S,\n"
    "                  giraffe:power=P[,trunc=T][,s=S], truncate-clamp, truncate-zero, logn[:L],\n"
    "                  stream:kv=C[,sinks=S][,pos=cache|text], kv-type:f32|f16|q8_0, train:N\n"
    "                  e.g. plain ntk:4 ntk:4+logn yarn:4 truncate-clamp stream:sinks=4,kv=256\n"
    "                  Each starts from the command-line rope/kv options. Without a stream term the\n"
    "                  cache holds all N tokens.\n"
    "  --csv FILE      per-bucket table: start,end, then one perplexity column per setting\n"
    "  --svg FILE      perplexity (log scale) vs position, one line per setting\n"
    "  --ymax P        plot perplexities above P at the top edge (default 10 x vocabulary size)\n"
    "  --title TEXT    plot title\n"
    "  --table FILE    Markdown table of perplexity over the B positions before K x train_ctx, the\n"
    "                  scaling-law limit, and where it breaks: the first bucket past train_ctx whose\n"
    "                  perplexity exceeds 3x the setting's own over train_ctx/2..train_ctx-1\n"
    "  --table-at LIST multiples K of train_ctx for --table (default 1,2,4,8,16, those that fit)\n"
    "  --table-window W  the table's window: positions K*train_ctx-W .. K*train_ctx-1 (default B)\n"
    "  --chunk N       tokens per ropex_eval call (default 64; results do not depend on it)\n"
    "  --quiet         no progress indicator (it is also off when stderr is not a terminal)\n";

typedef struct ppl_run {
    ppl_setting set;
    double *nll;            /* n_tokens-1 negative log-likelihoods, by position */
    double ppl;
    double limit;           /* predicted extrapolation limit (0 = none) */
    double eff_base;
    int train_ctx;
    int nonfinite;
} ppl_run;

static void die_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "ropex-ppl: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    fprintf(stderr, "run `ropex-ppl --help` for usage\n");
    exit(2);
}

static int parse_pos_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;
    if (!s || !*s) return -1;
    v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) return NULL;
    for (;;) {
        size_t got;
        if (n + 65536 + 1 > cap) {
            char *nb;
            cap = (n + 65536 + 1) * 2;
            nb = (char *)realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { free(buf); fclose(f); return NULL; }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- scoring ---- */

/* -log softmax(logits)[target] in double (max-shifted). */
static double nll_of(const float *logits, int vocab, int target)
{
    double mx = logits[0], sum = 0;
    int i;
    for (i = 1; i < vocab; i++) if (logits[i] > mx) mx = logits[i];
    for (i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    return -((double)logits[target] - mx - log(sum));
}

static int g_progress = 0;

static void progress(int setting, int n_settings, const char *spec, long done, long total)
{
    if (!g_progress) return;
    fprintf(stderr, "\r[%d/%d] %-40.40s %5.1f%%", setting + 1, n_settings, spec, total ? 100.0 * done / total : 100.0);
    fflush(stderr);
}

static ropex_status score_setting(const ropex_model *m, const int32_t *ids, int n_tokens, int chunk, ropex_threads *th,
                                  ppl_run *r, int idx, int n_settings)
{
    ropex_ctx ctx;
    int vocab = m->hp.vocab_size, off;
    float *lg;
    ropex_status st;
    double sum = 0;
    memset(&ctx, 0, sizeof ctx);
    st = ropex_ctx_create(&ctx, m, &r->set.cfg);
    if (st != ROPEX_OK) return st;
    lg = (float *)malloc((size_t)chunk * (size_t)vocab * sizeof(float));
    if (!lg) { ropex_ctx_free(&ctx); return ROPEX_ERR_NOMEM; }
    for (off = 0; off < n_tokens; off += chunk) {
        int n = n_tokens - off < chunk ? n_tokens - off : chunk, i;
        st = ropex_eval(&ctx, ids + off, n, lg, th);
        if (st != ROPEX_OK) break;
        for (i = 0; i < n; i++) {
            int p = off + i;
            if (p + 1 < n_tokens) {
                double v = nll_of(lg + (size_t)i * vocab, vocab, ids[p + 1]);
                if (!(v == v) || v > 1e30) { r->nonfinite++; v = 1e30 > v ? v : 1e30; if (!(v == v)) v = 1e30; }
                r->nll[p] = v;
                sum += v;
            }
        }
        progress(idx, n_settings, r->set.spec, off + n, n_tokens);
    }
    free(lg);
    ropex_ctx_free(&ctx);
    r->ppl = exp(sum / (n_tokens - 1));
    return st;
}

/* Perplexity over positions [a, b) (clipped to the scored range), NAN when empty. */
static double range_ppl(const ppl_run *r, int n_pred, int a, int b)
{
    double s = 0;
    int i;
    if (a < 0) a = 0;
    if (b > n_pred) b = n_pred;
    if (b <= a) return NAN;
    for (i = a; i < b; i++) s += r->nll[i];
    return exp(s / (b - a));
}

/* ---- SVG plot ---- */

static void svg_text_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return step * mag;
}

static void fmt_num(char *buf, size_t cap, double v)
{
    if (v >= 1e6) snprintf(buf, cap, "%.3g", v);
    else if (v >= 100 || v == floor(v)) snprintf(buf, cap, "%.0f", v);
    else if (v >= 10) snprintf(buf, cap, "%.3g", v);
    else snprintf(buf, cap, "%.2g", v);
}

static const char *palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"
};
static const char *dashes[] = { "", "6,3", "2,2", "8,3,2,3" };

/* ycap: perplexities above it are drawn at the top edge (a curve far worse than uniform guessing
   would otherwise squash the interesting range). */
static int write_svg(const char *path, const char *title, const ppl_run *runs, int n_runs, int n_pred, int bucket,
                     int train_ctx, double ycap)
{
    const double W = 820, H = 450, L = 62, T = 34, B = 392;
    double R;
    int nb = (n_pred + bucket - 1) / bucket, i, k, clipped = 0;
    size_t maxlab = 0;
    double ymin = 1e300, ymax = 0, lo, hi, xmax = n_pred, step, x;
    const int npal = (int)(sizeof palette / sizeof palette[0]);
    FILE *f;
    for (k = 0; k < n_runs; k++) {
        char buf[200];
        snprintf(buf, sizeof buf, "%s (%.3g)", runs[k].set.spec, runs[k].ppl);
        if (strlen(buf) > maxlab) maxlab = strlen(buf);
    }
    /* legend column wide enough for the longest label (~6.1 px per character at 11 px) */
    R = W - 14 - 50 - 6.1 * (double)(maxlab < 18 ? 18 : maxlab > 44 ? 44 : maxlab);
    f = fopen(path, "w");
    if (!f) return -1;
    for (k = 0; k < n_runs; k++)
        for (i = 0; i < nb; i++) {
            double v = range_ppl(&runs[k], n_pred, i * bucket, (i + 1) * bucket);
            if (v == v && v < 1e300) {
                if (ycap > 0 && v > ycap) { v = ycap; clipped = 1; }
                if (v < ymin) ymin = v;
                if (v > ymax) ymax = v;
            }
        }
    if (!(ymax > 0)) { ymin = 1; ymax = 10; }
    lo = log10(ymin) - 0.04 * (log10(ymax) - log10(ymin) + 0.1);
    hi = log10(ymax) + 0.04 * (log10(ymax) - log10(ymin) + 0.1);
    if (hi - lo < 0.3) { double c = (hi + lo) / 2; lo = c - 0.15; hi = c + 0.15; }
#define SX(v) (L + (R - L) * (v) / xmax)
#define SY(v) (B - (B - T) * (log10(v) - lo) / (hi - lo))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", W / 2);
    svg_text_escaped(f, title);
    fprintf(f, "</text>\n");
    /* y grid: log scale; decades, plus 2 and 5 (or every mantissa) when few decades are in view */
    {
        double span = hi - lo;
        static const double m_all[] = { 1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9 };
        static const double m_125[] = { 1, 2, 5 };
        static const double m_1[] = { 1 };
        const double *ms = span < 0.7 ? m_all : span < 3.5 ? m_125 : m_1;
        int nm = span < 0.7 ? 10 : span < 3.5 ? 3 : 1, e, j;
        int every = span > 10 ? (int)ceil(span / 10) : 1;  /* at most ~10 decade labels */
        for (e = (int)floor(lo) - 1; e <= (int)ceil(hi); e++)
            for (j = 0; j < nm; j++) {
                double v = ms[j] * pow(10, e);
                char buf[32];
                if (log10(v) < lo || log10(v) > hi) continue;
                if (nm == 1 && e % every != 0) continue;
                if (v >= 1e5) snprintf(buf, sizeof buf, "1e%d", e);
                else fmt_num(buf, sizeof buf, v);
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", L, SY(v), R, SY(v));
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 5, SY(v) + 4, buf);
            }
    }
    /* x grid: linear, nice steps */
    step = nice_step(xmax, 8);
    for (x = 0; x <= xmax + 1e-9; x += step) {
        char buf[32];
        fmt_num(buf, sizeof buf, x);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", SX(x), T, SX(x), B);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", SX(x), B + 16, buf);
    }
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", L, T, R - L, B - T);
    fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">position in the stream (tokens; bucket width %d)</text>\n",
            (L + R) / 2, H - 22, bucket);
    fprintf(f, "<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">perplexity (log scale)</text>\n",
            (T + B) / 2);
    if (clipped)
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">clipped at %.0f</text>\n",
                R - 3, T + 12, ycap);
    /* the trained length */
    if (train_ctx > 0 && train_ctx < xmax) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#333\" stroke-width=\"1.5\" "
                   "stroke-dasharray=\"6,4\"/>\n", SX(train_ctx), T, SX(train_ctx), B);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" fill=\"#333\" stroke=\"white\" stroke-width=\"3\" "
                   "paint-order=\"stroke\">trained %d</text>\n",
                SX(train_ctx) + 3, T + 12, train_ctx);
    }
    /* predicted limits (scaling law, for the setting's runtime base), one per distinct length */
    {
        int drawn = 0;
        for (k = 0; k < n_runs; k++) {
            double lim = runs[k].limit;
            int j, dup = 0;
            if (!(lim > 0) || lim >= xmax) continue;
            if (train_ctx > 0 && fabs(lim - train_ctx) < 0.5) continue;
            for (j = 0; j < k; j++) if (fabs(runs[j].limit - lim) < 0.5) dup = 1;
            if (dup) continue;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"1.2\" "
                       "stroke-dasharray=\"3,3\"/>\n", SX(lim), T, SX(lim), B, palette[k % npal]);
            fprintf(f, "<text transform=\"translate(%.1f,%.0f) rotate(-90)\" text-anchor=\"end\" font-size=\"10\" fill=\"%s\" "
                       "stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">",
                    SX(lim) - 3, T + 4, palette[k % npal]);
            svg_text_escaped(f, runs[k].set.spec);
            fprintf(f, ": limit if tuned at this base (%.0f)</text>\n", lim);
            drawn++;
        }
        (void)drawn;
    }
    /* curves: one point per bucket at its centre */
    for (k = 0; k < n_runs; k++) {
        int started = 0;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" stroke-linejoin=\"round\"%s%s%s points=\"",
                palette[k % npal], dashes[(k / npal) % 4][0] ? " stroke-dasharray=\"" : "",
                dashes[(k / npal) % 4], dashes[(k / npal) % 4][0] ? "\"" : "");
        for (i = 0; i < nb; i++) {
            int a = i * bucket, b = (i + 1) * bucket < n_pred ? (i + 1) * bucket : n_pred;
            double v = range_ppl(&runs[k], n_pred, a, b), yv;
            if (!(v == v)) continue;
            if (ycap > 0 && v > ycap) v = ycap;
            yv = SY(v);
            if (yv < T) yv = T;
            if (yv > B) yv = B;
            fprintf(f, "%s%.1f,%.1f", started ? " " : "", SX((a + b) / 2.0), yv);
            started = 1;
        }
        fprintf(f, "\"/>\n");
    }
    /* legend, right of the plot */
    {
        double ly = T + 4;
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">setting (overall ppl)</text>\n", R + 14, ly + 8);
        ly += 22;
        for (k = 0; k < n_runs; k++) {
            const char *d = dashes[(k / npal) % 4];
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s%s%s/>\n",
                    R + 14, ly - 4, R + 38, ly - 4, palette[k % npal], d[0] ? " stroke-dasharray=\"" : "", d,
                    d[0] ? "\"" : "");
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\">", R + 44, ly);
            svg_text_escaped(f, runs[k].set.spec);
            fprintf(f, " (%.3g)</text>\n", runs[k].ppl);
            ly += n_runs > 20 ? 13 : 17;
        }
        if (n_runs > 0) {
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#333\" stroke-width=\"1.5\" "
                       "stroke-dasharray=\"6,4\"/>\n", R + 14, ly + 2, R + 38, ly + 2);
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\">trained length</text>\n", R + 44, ly + 6);
            ly += 17;
            fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#777\" stroke-width=\"1.2\" "
                       "stroke-dasharray=\"3,3\"/>\n", R + 14, ly + 2, R + 38, ly + 2);
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\">scaling-law limit</text>\n", R + 44, ly + 6);
        }
    }
    fprintf(f, "</svg>\n");
#undef SX
#undef SY
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- CSV and Markdown ---- */

static int write_csv(const char *path, const ppl_run *runs, int n_runs, int n_pred, int bucket)
{
    FILE *f = fopen(path, "w");
    int i, k, nb = (n_pred + bucket - 1) / bucket;
    if (!f) return -1;
    fprintf(f, "start,end");
    for (k = 0; k < n_runs; k++) {
        /* RFC 4180 quoting: stream specs contain commas */
        const char *c;
        fputs(",\"", f);
        for (c = runs[k].set.spec; *c; c++) { if (*c == '"') fputc('"', f); fputc(*c, f); }
        fputc('"', f);
    }
    fprintf(f, "\n");
    for (i = 0; i < nb; i++) {
        int a = i * bucket, b = (i + 1) * bucket < n_pred ? (i + 1) * bucket : n_pred;
        fprintf(f, "%d,%d", a, b);
        for (k = 0; k < n_runs; k++) fprintf(f, ",%.6g", range_ppl(&runs[k], n_pred, a, b));
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Observed breakdown: the start of the first bucket at or past train_ctx whose perplexity exceeds
   3x the setting's own perplexity over [train_ctx/2, train_ctx): -1 when none. */
static int breakdown_pos(const ppl_run *r, int n_pred, int bucket, int train_ctx)
{
    double ref = range_ppl(r, n_pred, train_ctx / 2, train_ctx);
    int a;
    if (!(ref == ref)) return -1;
    for (a = (train_ctx + bucket - 1) / bucket * bucket; a < n_pred; a += bucket)
        if (range_ppl(r, n_pred, a, a + bucket) > 3 * ref) return a;
    return -1;
}

static int write_table(const char *path, const ppl_run *runs, int n_runs, int n_pred, int window, int bucket,
                       int train_ctx, const int *at, int n_at)
{
    FILE *f = fopen(path, "w");
    int i, k;
    if (!f) return -1;
    fprintf(f, "| setting | all |");
    for (i = 0; i < n_at; i++) fprintf(f, " %dx (%d) |", at[i], at[i] * train_ctx);
    fprintf(f, " predicted limit | breaks at |\n|---|---:|");
    for (i = 0; i < n_at; i++) fprintf(f, "---:|");
    fprintf(f, "---:|---:|\n");
    for (k = 0; k < n_runs; k++) {
        fprintf(f, "| `%s` | %.3f |", runs[k].set.spec, runs[k].ppl);
        for (i = 0; i < n_at; i++) {
            int end = at[i] * train_ctx;
            double v = end <= n_pred ? range_ppl(&runs[k], n_pred, end - window, end) : NAN;
            if (v == v) fprintf(f, " %.3f |", v);
            else fprintf(f, " - |");
        }
        if (runs[k].limit > 0) fprintf(f, " %.0f |", runs[k].limit);
        else fprintf(f, " - |");
        i = breakdown_pos(&runs[k], n_pred, bucket, train_ctx);
        if (i >= 0) fprintf(f, " %d |\n", i);
        else fprintf(f, " - |\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *csv_path = NULL, *svg_path = NULL;
    const char *table_path = NULL, *title = NULL;
    const char *specs[PPL_MAX_SETTINGS];
    int n_specs = 0, n_tokens = 0, bucket = 0, chunk = 64, n_threads = 1, quiet = 0, i, k;
    int at[32], n_at = 0, at_given = 0, train_ctx, n_pred, n_ids = 0;
    double ycap = 0;
    int twin = 0;
    ropex_model model;
    ropex_ctx_config base;
    ropex_rope_config ro;
    rope_opts_extra ex;
    ropex_threads *th = NULL;
    ppl_run *runs;
    char *text;
    size_t text_len;
    int32_t *ids;
    ropex_status st;

    memset(&model, 0, sizeof model);
    rope_opts_init(&ro, &ex);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(ppl_usage, stdout); rope_opts_usage(stdout); return 0; }
        used = rope_opts_parse(&i, argc, argv, &ro, &ex);
        if (used < 0) return 2;  /* the shared parser printed the message */
        if (used > 0) continue;
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--compare")) {
            if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)) die_usage("--compare needs at least one spec", NULL);
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (n_specs >= PPL_MAX_SETTINGS) die_usage("too many --compare settings (max 32)", NULL);
                specs[n_specs++] = argv[++i];
            }
            continue;
        }
        {
            static const char *const valued[] = { "--model", "--tokenizer", "--text", "--csv", "--svg", "--table",
                                                  "--title", "--ymax", "--tokens", "--bucket", "--chunk",
                                                  "--table-at", "--table-window", NULL };
            int known = 0, j;
            for (j = 0; valued[j]; j++) if (!strcmp(a, valued[j])) known = 1;
            if (!known) die_usage("unknown option", a);
        }
        if (i + 1 >= argc) die_usage("missing value for", a);
        if (!strcmp(a, "--model")) model_path = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tok_path = argv[++i];
        else if (!strcmp(a, "--text")) text_path = argv[++i];
        else if (!strcmp(a, "--csv")) csv_path = argv[++i];
        else if (!strcmp(a, "--svg")) svg_path = argv[++i];
        else if (!strcmp(a, "--table")) table_path = argv[++i];
        else if (!strcmp(a, "--title")) title = argv[++i];
        else if (!strcmp(a, "--ymax")) {
            char *end;
            ycap = strtod(argv[++i], &end);
            if (*end || !(ycap > 1) || ycap > 1e300) die_usage("bad --ymax", argv[i]);
        }
        else if (!strcmp(a, "--tokens")) { if (parse_pos_int(argv[++i], 2, 1 << 26, &n_tokens)) die_usage("bad --tokens", argv[i]); }
        else if (!strcmp(a, "--table-window")) { if (parse_pos_int(argv[++i], 1, 1 << 26, &twin)) die_usage("bad --table-window", argv[i]); }
        else if (!strcmp(a, "--bucket")) { if (parse_pos_int(argv[++i], 1, 1 << 26, &bucket)) die_usage("bad --bucket", argv[i]); }
        else if (!strcmp(a, "--chunk")) { if (parse_pos_int(argv[++i], 1, 4096, &chunk)) die_usage("bad --chunk (1..4096)", argv[i]); }
        else if (!strcmp(a, "--table-at")) {
            const char *s = argv[++i];
            at_given = 1;
            while (*s) {
                char *end;
                long v = strtol(s, &end, 10);
                if (end == s || v < 1 || v > 1 << 20 || n_at >= 32 || (*end && *end != ',')) die_usage("bad --table-at", argv[i]);
                at[n_at++] = (int)v;
                s = *end ? end + 1 : end;
            }
        } else die_usage("unknown option", a);
    }
    if (!model_path || !text_path || !n_tokens) die_usage("--model, --text and --tokens are required", NULL);
    g_progress = !quiet && isatty(2);

    st = ropex_model_load_file(&model, model_path, tok_path);
    if (st != ROPEX_OK) {
        const char *detail = ropex_model_error(&model);
        fprintf(stderr, "ropex-ppl: cannot load %s: %s%s%s\n", model_path, ropex_status_str(st),
                detail ? ": " : "", detail ? detail : "");
        return 1;
    }
    ropex_model_repack(&model);   /* same logits, faster kernels where the build has them */
    if (model.vocab.bos_id < 0) { fprintf(stderr, "ropex-ppl: the vocabulary has no BOS token\n"); return 1; }
    text = read_file(text_path, &text_len);
    if (!text) { fprintf(stderr, "ropex-ppl: cannot read %s\n", text_path); return 1; }
    if (text_len > (size_t)1 << 30) { fprintf(stderr, "ropex-ppl: text too long\n"); return 1; }
    ids = (int32_t *)malloc((text_len + 8) * sizeof(int32_t));
    if (!ids) { fprintf(stderr, "ropex-ppl: out of memory\n"); return 1; }
    st = ropex_tokenize(&model.vocab, text, text_len, 1, ids, (int)(text_len + 8), &n_ids, NULL);
    if (st != ROPEX_OK) { fprintf(stderr, "ropex-ppl: tokenizing %s: %s\n", text_path, ropex_status_str(st)); return 1; }
    if (n_ids < n_tokens) {
        fprintf(stderr, "ropex-ppl: %s encodes to %d tokens, fewer than --tokens %d\n", text_path, n_ids, n_tokens);
        return 1;
    }

    /* The command-line configuration: the model's RoPE with the shared options applied; the trained
       context is --train-ctx, else the model's (ropex_ctx_resolve_config fills it). */
    memset(&base, 0, sizeof base);
    base.rope = model.hp.rope;
    if (base.rope.head_dim == 0) base.rope.head_dim = model.hp.head_dim;
    if (base.rope.train_base == 0) base.rope.train_base = base.rope.base > 0 ? base.rope.base : 10000.0;
    rope_opts_overlay(&base.rope, &ro, &ex);
    if (rope_opts_finish(&base.rope, &ex) != 0) return 2;
    base.kv_size = (ex.kv_set & KV_OPT_SIZE) ? ex.kv_size : n_tokens;
    base.n_sink = ex.sinks;
    base.kv_type = ex.kv_type;
    base.positions = ex.positions;
    base.max_batch = chunk;
    n_threads = ex.threads;
    {
        ropex_ctx_config resolved;
        st = ropex_ctx_resolve_config(&model, &base, &resolved);
        if (st != ROPEX_OK) { fprintf(stderr, "ropex-ppl: bad configuration: %s\n", ropex_status_str(st)); return 2; }
        base = resolved;
    }
    train_ctx = base.rope.train_ctx;
    if (bucket == 0) bucket = train_ctx >= 2 ? train_ctx / 2 : 64;
    n_pred = n_tokens - 1;

    runs = (ppl_run *)calloc((size_t)(n_specs ? n_specs : 1), sizeof(ppl_run));
    if (!runs) { fprintf(stderr, "ropex-ppl: out of memory\n"); return 1; }
    if (n_specs == 0) {
        runs[0].set.cfg = base;
        runs[0].set.ring = base.kv_size < n_tokens;
        strcpy(runs[0].set.spec, "command line");
    }
    for (k = 0; k < n_specs; k++) {
        char err[256];
        if (ppl_apply_spec(specs[k], &base, model.hp.rope.base > 0 ? model.hp.rope.base : 10000.0, n_tokens,
                           &runs[k].set, err, sizeof err) != 0)
            die_usage(err, NULL);
    }
    if (!n_specs) n_specs = 1;
    for (k = 0; k < n_specs; k++) {
        const ropex_rope_config *r = &runs[k].set.cfg.rope;
        int d = ppl_rot_dims(r);
        runs[k].train_ctx = r->train_ctx;
        runs[k].eff_base = ppl_effective_base(&runs[k].set.cfg);
        runs[k].limit = 0;
        if (runs[k].eff_base > 0 && r->train_ctx > 0)
            (void)ropex_scaling_regime(d, r->train_base > 0 ? r->train_base : 10000.0, r->train_ctx,
                                       runs[k].eff_base, 0, &runs[k].limit);
        runs[k].nll = (double *)calloc((size_t)n_pred, sizeof(double));
        if (!runs[k].nll) { fprintf(stderr, "ropex-ppl: out of memory\n"); return 1; }
    }

    if (n_threads > 1) {
        st = ropex_threads_create(&th, n_threads);
        if (st != ROPEX_OK) { fprintf(stderr, "ropex-ppl: threads: %s\n", ropex_status_str(st)); return 1; }
    }
    fprintf(stderr, "ropex-ppl: %s, %d of %d tokens, train_ctx %d, bucket %d, %d setting(s)\n", model_path,
            n_tokens, n_ids, train_ctx, bucket, n_specs);
    for (k = 0; k < n_specs; k++) {
        st = score_setting(&model, ids, n_tokens, chunk, th, &runs[k], k, n_specs);
        if (g_progress) fprintf(stderr, "\r%60s\r", "");
        if (st != ROPEX_OK) {
            fprintf(stderr, "ropex-ppl: setting '%s': %s\n", runs[k].set.spec, ropex_status_str(st));
            return 1;
        }
        if (runs[k].nonfinite)
            fprintf(stderr, "ropex-ppl: setting '%s': %d non-finite predictions (counted as nll 1e30)\n",
                    runs[k].set.spec, runs[k].nonfinite);
        if (n_specs > 1) printf("%ssetting: %s\n", k ? "\n" : "", runs[k].set.spec);
        printf("ppl: %.4f\n", runs[k].ppl);
        for (i = 0; i * bucket < n_pred; i++) {
            int a = i * bucket, b = (i + 1) * bucket < n_pred ? (i + 1) * bucket : n_pred;
            printf("bucket %d-%d: ppl %.4f\n", a, b, range_ppl(&runs[k], n_pred, a, b));
        }
        if (runs[k].limit > 0)
            printf("predicted limit (if tuned at base %.6g): %.0f\n", runs[k].eff_base, runs[k].limit);
        fflush(stdout);
    }
    if (csv_path && write_csv(csv_path, runs, n_specs, n_pred, bucket) != 0) {
        fprintf(stderr, "ropex-ppl: cannot write %s\n", csv_path);
        return 1;
    }
    if (svg_path) {
        char buf[256];
        if (!title) {
            const char *base_name = strrchr(model_path, '/');
            snprintf(buf, sizeof buf, "Perplexity by position: %s (trained %d tokens)",
                     base_name ? base_name + 1 : model_path, train_ctx);
            title = buf;
        }
        if (write_svg(svg_path, title, runs, n_specs, n_pred, bucket, train_ctx, ycap > 0 ? ycap : 10.0 * model.hp.vocab_size) != 0) {
            fprintf(stderr, "ropex-ppl: cannot write %s\n", svg_path);
            return 1;
        }
    }
    if (table_path) {
        if (!at_given) {
            static const int def[5] = { 1, 2, 4, 8, 16 };
            for (i = 0; i < 5; i++) if (def[i] * train_ctx <= n_pred) at[n_at++] = def[i];
        }
        if (write_table(table_path, runs, n_specs, n_pred, twin ? twin : bucket, bucket, train_ctx, at, n_at) != 0) {
            fprintf(stderr, "ropex-ppl: cannot write %s\n", table_path);
            return 1;
        }
    }
    for (k = 0; k < n_specs; k++) free(runs[k].nll);
    free(runs);
    free(ids);
    free(text);
    ropex_threads_destroy(th);
    ropex_model_free(&model);
    return 0;
}
