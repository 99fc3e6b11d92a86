/* generate: text generation with ropex, past the model's trained context if you like.

   examples/generate --model FILE [--tokenizer FILE] --prompt TEXT --tokens N [--temp T] [--seed S]
                     [--top-k K] [--top-p P] [--ignore-eos] [RoPE/KV options, see --help]

   The text (prompt included) goes to stdout, statistics to stderr. It stops after N generated tokens
   or at end-of-sequence (the vocabulary's EOS, and BOS for llama2.c story models), unless
   --ignore-eos. Without arguments it runs the bundled model with the default setting below. */
#define _POSIX_C_SOURCE 200112L
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include "../tools/rope_opts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#  include <sys/resource.h>
#  define GEN_HAVE_RUSAGE 1
#endif

/* ===================================================================================== */
/* DEFAULT RUN (no arguments, `make run`): the bundled stories260K (trained at 512 tokens)
   writes 1024 tokens, past its trained context, through a streaming KV cache: 4 attention sinks
   plus a ring of the 508 most recent tokens, keys at their cache slots (StreamingLLM), so every
   distance the model sees stays inside the 512 it was trained on. --ignore-eos: a story model ends
   a story with BOS; the stream goes on into the next story. Edit this list to change the default.
   Why this setting (perplexity of stories260K on tests/data/tinystories_val_head.txt, 3072 tokens in
   one stream, per 512-token bucket, measured with tools/ropex-ppl; the README's Results section has the full tables): plain RoPE with a full cache 3.70 | 5.47 5.43
   6.37 20.1 197; ring 512 + 4 sinks, cache positions 3.70 | 4.06 3.57 3.56 3.64 3.65; NTK alpha 4
   4.46 | 4.64 4.94 4.89 5.02 5.11; YaRN s=4 5.35 | 5.35 5.82 4.79 6.10 6.42; dynamic NTK 3.70 |
   4.92 4.67 4.99 5.51 6.16. */
static const char *const gen_default_args[] = {
    "--model", "examples/models/stories260K.bin", "--tokenizer", "examples/models/tok512.bin",
    "--prompt", "Once upon a time", "--tokens", "1024", "--ignore-eos",
    "--temp", "0.8", "--top-p", "0.9", "--seed", "42",
    "--kv-size", "512", "--sinks", "4", "--positions", "cache",
    NULL
};
/* ===================================================================================== */

#define GEN_BUNDLED_MODEL "examples/models/stories260K.bin"
#define GEN_BUNDLED_TOKENIZER "examples/models/tok512.bin"
#define GEN_AUTO_KV_MAX 32768   /* largest cache chosen without --kv-size */

typedef struct gen_opts {
    const char *model, *tokenizer, *prompt;
    long long tokens;
    double temp, top_p;
    int top_k, ignore_eos;
    unsigned long long seed;
} gen_opts;

static double gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void gen_usage(FILE *f) {
    fputs("usage: examples/generate --model FILE [--tokenizer FILE] --prompt TEXT --tokens N\n"
          "                         [--temp T] [--seed S] [--top-k K] [--top-p P] [--ignore-eos]\n"
          "                         [RoPE/KV options]\n"
          "  --model FILE       GGUF, or llama2.c checkpoint with --tokenizer tokenizer.bin\n"
          "  --tokens N         tokens to generate after the prompt (default 256)\n"
          "  --temp T           temperature, 0 = greedy (default 0.8); --top-k K (0 = off), --top-p P (default 0.9)\n"
          "  --seed S           sampler seed (default 42)\n"
          "  --ignore-eos       go on to N tokens past end-of-sequence\n"
          "  --kv-size N        cache capacity in tokens (default: prompt + N, at least the trained context,\n"
          "                     at most 32768 unless given; a longer stream slides through the ring)\n"
          "With no arguments: the bundled model past its trained context (see the top of generate.c).\n", f);
    rope_opts_usage(f);
}

/* Matches "--name VALUE" or "--name=VALUE"; 1 with *v set, 0 not this option, -1 missing value. */
static int gen_opt(const char *name, int *i, int argc, char **argv, const char **v) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') { *v = a + n + 1; return 1; }
    if (a[n] != 0) return 0;
    if (*i + 1 >= argc) { fprintf(stderr, "%s needs a value\n", name); return -1; }
    *v = argv[++*i];
    return 1;
}

/* Parses every option; 0 ok, 1 --help shown, -1 error (message printed). */
static int gen_parse(int argc, char **argv, gen_opts *o, ropex_rope_config *rc, rope_opts_extra *ex) {
    int i;
    for (i = 0; i < argc; i++) {
        const char *v = NULL;
        int r = rope_opts_parse(&i, argc, argv, rc, ex);
        if (r < 0) return -1;
        if (r > 0) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { gen_usage(stdout); return 1; }
        if (strcmp(argv[i], "--ignore-eos") == 0) { o->ignore_eos = 1; continue; }
#define GEN_TRY(name) ((r = gen_opt(name, &i, argc, argv, &v)) < 0 ? -1 : r)
        if ((r = GEN_TRY("--model")) != 0) { if (r < 0) return -1; o->model = v; continue; }
        if ((r = GEN_TRY("--tokenizer")) != 0) { if (r < 0) return -1; o->tokenizer = v; continue; }
        if ((r = GEN_TRY("--prompt")) != 0) { if (r < 0) return -1; o->prompt = v; continue; }
        if ((r = GEN_TRY("--tokens")) != 0) {
            if (r < 0 || rope_opts_ll("--tokens", v, 0, (long long)1 << 40, &o->tokens) < 0) return -1;
            continue;
        }
        if ((r = GEN_TRY("--temp")) != 0) {
            if (r < 0 || rope_opts_double("--temp", v, 0.0, &o->temp) < 0) return -1;
            continue;
        }
        if ((r = GEN_TRY("--top-p")) != 0) {
            if (r < 0 || rope_opts_double("--top-p", v, 0.0, &o->top_p) < 0) return -1;
            if (o->top_p > 1.0) { fprintf(stderr, "--top-p: bad value '%s' (0..1)\n", v); return -1; }
            continue;
        }
        if ((r = GEN_TRY("--top-k")) != 0) {
            if (r < 0 || rope_opts_int("--top-k", v, 0, 1 << 30, &o->top_k) < 0) return -1;
            continue;
        }
        if ((r = GEN_TRY("--seed")) != 0) {
            char *end;
            if (r < 0) return -1;
            o->seed = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-') { fprintf(stderr, "--seed: bad value '%s'\n", v); return -1; }
            continue;
        }
#undef GEN_TRY
        fprintf(stderr, "unknown option '%s' (see --help)\n", argv[i]);
        return -1;
    }
    return 0;
}

static const char *gen_kv_type_name(ropex_type t) {
    return t == ROPEX_F16 ? "f16" : t == ROPEX_Q8_0 ? "q8_0" : "f32";
}

static void gen_print_setting(const ropex_ctx *c, int threads) {
    const ropex_rope_config *r = &c->cfg.rope;
    fprintf(stderr, "rope: base %g (trained at base %g), scaling %s", r->base != 0.0 ? r->base : 10000.0,
            r->train_base != 0.0 ? r->train_base : (r->base != 0.0 ? r->base : 10000.0),
            rope_opts_scaling_name(r->scaling));
    if (r->scaling != ROPEX_SCALE_NONE) fprintf(stderr, " factor %g", r->factor != 0.0 ? r->factor : 1.0);
    fprintf(stderr, ", train_ctx %d, dims %d/%d, layout %s", r->train_ctx, r->rot_dims ? r->rot_dims : r->head_dim,
            r->head_dim, r->layout == ROPEX_LAYOUT_HALF ? "half" : "adjacent");
    if (r->truncate != ROPEX_TRUNC_NONE) fprintf(stderr, ", truncate %s", r->truncate == ROPEX_TRUNC_CLAMP ? "clamp" : "zero");
    if (r->logn) fprintf(stderr, ", logn (L=%d)", r->logn_ctx ? r->logn_ctx : r->train_ctx);
    fprintf(stderr, "\nkv: %d tokens (%d sinks), %s, %s positions; threads %d; simd %s\n", c->cfg.kv_size,
            c->cfg.n_sink, gen_kv_type_name(c->cfg.kv_type), c->cfg.positions == ROPEX_POS_CACHE ? "cache" : "text",
            threads, ropex_simd_name());
}

int main(int argc, char **argv) {
    static ropex_model m;
    gen_opts o;
    ropex_rope_config rc, mrc;
    rope_opts_extra ex;
    ropex_ctx_config cfg;
    ropex_ctx ctx;
    ropex_sampler sampler;
    ropex_threads *th = NULL;
    ropex_status st;
    int32_t *ids = NULL;
    void *swork = NULL;
    int n_ids = 0, r, is_default = argc <= 1, i, prev;
    long long n_gen = 0;
    size_t plen;
    double t0, t1, t2;
    char piece[512];

    memset(&o, 0, sizeof o);
    o.tokens = 256; o.temp = 0.8; o.top_p = 0.9; o.seed = 42; o.prompt = "Once upon a time";
    rope_opts_init(&rc, &ex);
    if (is_default) {
        int n = 0;
        while (gen_default_args[n]) n++;
        r = gen_parse(n, (char **)(void *)gen_default_args, &o, &rc, &ex);
    } else {
        r = gen_parse(argc - 1, argv + 1, &o, &rc, &ex);
    }
    if (r > 0) return 0;
    if (r < 0) return 2;
    if (!o.model) { o.model = GEN_BUNDLED_MODEL; if (!o.tokenizer) o.tokenizer = GEN_BUNDLED_TOKENIZER; }
    else if (!o.tokenizer && strcmp(o.model, GEN_BUNDLED_MODEL) == 0) o.tokenizer = GEN_BUNDLED_TOKENIZER;

    st = ropex_model_load_file(&m, o.model, o.tokenizer);
    if (st != ROPEX_OK) {
        const char *detail = ropex_model_error(&m);
        fprintf(stderr, "cannot load model '%s'%s%s: %s%s%s\n", o.model, o.tokenizer ? " with tokenizer " : "",
                o.tokenizer ? o.tokenizer : "", ropex_status_str(st), detail ? " - " : "", detail ? detail : "");
        return 1;
    }
    if ((st = ropex_model_repack(&m)) != ROPEX_OK)   /* faster kernels where the build has them */
        fprintf(stderr, "note: weights not repacked (%s)\n", ropex_status_str(st));

    /* The user's RoPE choices laid over the model's own settings. */
    mrc = m.hp.rope;
    if (mrc.head_dim == 0) mrc.head_dim = m.hp.head_dim;
    rope_opts_overlay(&mrc, &rc, &ex);
    if (rope_opts_finish(&mrc, &ex) != 0) { ropex_model_free(&m); return 2; }

    plen = strlen(o.prompt);
    ids = (int32_t *)malloc(sizeof(int32_t) * (plen + 3));
    if (!ids) { fprintf(stderr, "out of memory\n"); return 1; }
    st = ropex_tokenize(&m.vocab, o.prompt, plen, 1, ids, (int)(plen + 3), &n_ids, NULL);
    if (st != ROPEX_OK || n_ids < 1) { fprintf(stderr, "cannot tokenize the prompt: %s\n", ropex_status_str(st)); return 1; }

    memset(&cfg, 0, sizeof cfg);
    cfg.rope = mrc;
    cfg.n_sink = ex.sinks;
    cfg.kv_type = ex.kv_type;
    cfg.positions = ex.positions;
    if (ex.kv_set & KV_OPT_SIZE) cfg.kv_size = ex.kv_size;
    else {
        /* Without --kv-size the cache holds the whole sequence (at least the model's default), up to
           GEN_AUTO_KV_MAX tokens; a longer stream slides through a ring of that size. */
        ropex_ctx_config d;
        long long want = (long long)n_ids + o.tokens, cap = GEN_AUTO_KV_MAX;
        if (ropex_ctx_resolve_config(&m, &cfg, &d) == ROPEX_OK) {
            if (cap < d.kv_size) cap = d.kv_size;
            if (want < d.kv_size) want = d.kv_size;
        }
        if (want > cap) want = cap;
        cfg.kv_size = (int)want;
    }
    st = ropex_ctx_create(&ctx, &m, &cfg);
    if (st != ROPEX_OK) {
        fprintf(stderr, "cannot create the context (kv-size %d, sinks %d, kv-type %s): %s\n", cfg.kv_size, cfg.n_sink,
                gen_kv_type_name(cfg.kv_type), ropex_status_str(st));
        return st == ROPEX_ERR_NOMEM ? 1 : 2;
    }
    if (ex.threads > 1) {
        st = ropex_threads_create(&th, ex.threads);
        if (st != ROPEX_OK) { fprintf(stderr, "cannot start %d threads: %s\n", ex.threads, ropex_status_str(st)); return 1; }
    }
    ropex_sampler_init(&sampler, (float)o.temp, o.top_k, (float)o.top_p, (uint64_t)o.seed);
    swork = malloc(ropex_sampler_work_bytes(m.hp.vocab_size) + 1);
    if (!swork) { fprintf(stderr, "out of memory\n"); return 1; }

    /* The prompt, as llama2.c prints it: every piece after BOS. */
    for (i = 1; i < n_ids; i++) {
        int k = ropex_token_to_piece(&m.vocab, ids[i - 1], ids[i], piece, (int)sizeof piece);
        if (k > 0) fwrite(piece, 1, (size_t)k, stdout);
    }
    fflush(stdout);
    t0 = gen_now();
    st = ropex_eval(&ctx, ids, n_ids, NULL, th);
    t1 = gen_now();
    if (st != ROPEX_OK) { fprintf(stderr, "\neval failed: %s\n", ropex_status_str(st)); return 1; }
    prev = ids[n_ids - 1];
    while (n_gen < o.tokens) {
        int32_t t = ropex_sample(&sampler, ctx.logits, m.hp.vocab_size, swork);
        int end_token, k;
        if (t < 0) { fprintf(stderr, "\nsampling failed\n"); return 1; }
        end_token = t == m.vocab.eos_id || (m.format == ROPEX_FORMAT_LLAMA2C && t == m.vocab.bos_id);
        if (end_token && !o.ignore_eos) break;
        n_gen++;
        /* a story model's BOS or EOS inside a stream: a paragraph break between stories */
        if (t == m.vocab.eos_id || t == m.vocab.bos_id) { fputs("\n\n", stdout); }
        else {
            k = ropex_token_to_piece(&m.vocab, prev, t, piece, (int)sizeof piece);
            if (k > 0) fwrite(piece, 1, (size_t)k, stdout);
        }
        fflush(stdout);
        prev = t;
        if (n_gen == o.tokens) break;            /* the last token needs no forward pass */
        st = ropex_eval(&ctx, &t, 1, NULL, th);
        if (st != ROPEX_OK) { fprintf(stderr, "\neval failed: %s\n", ropex_status_str(st)); return 1; }
    }
    t2 = gen_now();
    printf("\n");
    fflush(stdout);

    fprintf(stderr, "\n--- %s%s\n", o.model, is_default ? " (default run: past the trained context, streaming cache)" : "");
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generated: %lld tokens in %.3f s (%.1f tok/s); "
            "position %lld\n", n_ids, t1 - t0, (t1 - t0) > 0 ? n_ids / (t1 - t0) : 0.0, n_gen, t2 - t1,
            (t2 - t1) > 0 ? (double)n_gen / (t2 - t1) : 0.0, (long long)ropex_ctx_n_past(&ctx));
    fprintf(stderr, "memory: model %.2f MB (file %.2f MB + aux %.2f MB), context %.2f MB (KV cache %.2f MB)",
            (double)(m.file_size + m.aux_bytes) / 1e6, (double)m.file_size / 1e6, (double)m.aux_bytes / 1e6,
            (double)ctx.mem_bytes / 1e6, (double)ctx.kv_bytes / 1e6);
#ifdef GEN_HAVE_RUSAGE
    {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)   /* ru_maxrss: kilobytes on Linux, bytes on macOS */
#  ifdef __APPLE__
            fprintf(stderr, ", peak RSS %.1f MB", (double)ru.ru_maxrss / 1e6);
#  else
            fprintf(stderr, ", peak RSS %.1f MB", (double)ru.ru_maxrss / 1024.0);
#  endif
    }
#endif
    fputc('\n', stderr);
    fprintf(stderr, "model: dim %d, %d layers, %d heads (%d kv), head_dim %d, vocab %d, trained ctx %d; "
            "sampling temp %g top-k %d top-p %g seed %llu\n", m.hp.dim, m.hp.n_layers, m.hp.n_heads, m.hp.n_kv_heads,
            m.hp.head_dim, m.hp.vocab_size, m.hp.rope.train_ctx, o.temp, o.top_k, o.top_p, o.seed);
    gen_print_setting(&ctx, ex.threads);

    free(swork);
    free(ids);
    if (th) ropex_threads_destroy(th);
    ropex_ctx_free(&ctx);
    ropex_model_free(&m);
    return 0;
}
