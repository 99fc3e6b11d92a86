/* Forward pass on the real stories260K model: llama2.c's greedy story (from the llama2.c checkpoint
   and from llama.cpp's GGUF), the known float32 perplexity, chunking and thread invariance,
   quantized models against float32, and a stream past the trained context through a sink ring. */
#include "../ropex.h"
#include "test_util.h"
#include <stdlib.h>
#include <string.h>

#define BIN "examples/models/stories260K.bin"
#define TOK "examples/models/tok512.bin"
#define GGUF_F32 "tests/data/stories260K-f32.gguf"
#define GGUF_Q8 "tests/data/stories260K-q8_0.gguf"
#define TEXT "tests/data/tinystories_val_head.txt"

/* llama2.c run.c, stories260K, temperature 0, prompt "Once upon a time" (shared/models/README.md). */
static const char *EXPECTED =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

static int quick;

static int argmax(const float *x, int n) {
    int i, b = 0;
    for (i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static int all_finite(const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) if (!(x[i] == x[i]) || x[i] > 3e38f || x[i] < -3e38f) return 0;
    return 1;
}

/* -log softmax(logits)[target] in double. */
static double nll(const float *logits, int n, int target) {
    double mx = logits[0], s = 0.0;
    int i;
    for (i = 1; i < n; i++) if (logits[i] > mx) mx = logits[i];
    for (i = 0; i < n; i++) s += exp((double)logits[i] - mx);
    return log(s) + mx - (double)logits[target];
}

static char *read_text(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf;
    if (!f) return NULL;
    buf = (char *)malloc(max + 1);
    *len = fread(buf, 1, max, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

/* Greedy generation: prompt with BOS, then up to max_new tokens, stopping at BOS (id 1) as run.c.
   Writes the decoded text (prompt included) into out; returns the number of generated tokens. */
static int greedy(const ropex_model *m, const ropex_ctx_config *cfg, const char *prompt, int max_new,
                  char *out, size_t cap, int32_t *gen) {
    ropex_ctx c;
    int32_t ids[64];
    int n = 0, i, prev, ng = 0;
    size_t len = 0;
    char piece[64];
    if (ropex_tokenize(&m->vocab, prompt, strlen(prompt), 1, ids, 64, &n, NULL) != ROPEX_OK) return -1;
    if (ropex_ctx_create(&c, m, cfg) != ROPEX_OK) return -1;
    out[0] = 0;
    prev = ids[0];
    for (i = 1; i < n; i++) {
        int k = ropex_token_to_piece(&m->vocab, prev, ids[i], piece, (int)sizeof piece);
        if (k > 0 && len + (size_t)k < cap) { memcpy(out + len, piece, (size_t)k); len += (size_t)k; }
        prev = ids[i];
    }
    if (ropex_eval(&c, ids, n, NULL, NULL) != ROPEX_OK) { ropex_ctx_free(&c); return -1; }
    while (ng < max_new) {
        int32_t t = argmax(c.logits, m->hp.vocab_size);
        int k;
        if (t == 1 || t == m->vocab.eos_id) break;
        if (gen) gen[ng] = t;
        ng++;
        k = ropex_token_to_piece(&m->vocab, prev, t, piece, (int)sizeof piece);
        if (k > 0 && len + (size_t)k < cap) { memcpy(out + len, piece, (size_t)k); len += (size_t)k; }
        prev = t;
        if (ropex_eval(&c, &t, 1, NULL, NULL) != ROPEX_OK) { ng = -1; break; }
    }
    out[len] = 0;
    ropex_ctx_free(&c);
    return ng;
}

/* Every token's logits for ids[0..n) in one stream (chunks of `step` tokens per call). */
static int run_logits(const ropex_model *m, const ropex_ctx_config *cfg, const int32_t *ids, int n, int step,
                      float *out, ropex_threads *th) {
    ropex_ctx c;
    int s;
    ropex_status st = ropex_ctx_create(&c, m, cfg);
    if (st != ROPEX_OK) { printf("ctx_create: %s\n", ropex_status_str(st)); return -1; }
    for (s = 0; s < n; s += step) {
        int k = n - s < step ? n - s : step;
        st = ropex_eval(&c, ids + s, k, out + (size_t)s * (size_t)m->hp.vocab_size, th);
        if (st != ROPEX_OK) { printf("eval: %s\n", ropex_status_str(st)); ropex_ctx_free(&c); return -1; }
    }
    ropex_ctx_free(&c);
    return 0;
}

static double perplexity(const float *logits, const int32_t *ids, int n, int vocab) {
    double s = 0.0;
    int i;
    for (i = 0; i + 1 < n; i++) s += nll(logits + (size_t)i * (size_t)vocab, vocab, ids[i + 1]);
    return exp(s / (double)(n - 1));
}

static double top1_agreement(const float *a, const float *b, int n, int vocab) {
    int i, same = 0;
    for (i = 0; i < n; i++)
        same += argmax(a + (size_t)i * (size_t)vocab, vocab) == argmax(b + (size_t)i * (size_t)vocab, vocab);
    return (double)same / (double)n;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0.0;
    size_t i;
    for (i = 0; i < n; i++) { double e = fabs((double)a[i] - (double)b[i]); if (e > d || e != e) d = e; }
    return d;
}

/* A copy of m whose 2-D weights (rows a multiple of 32 long) are quantized to t (the embedding /
   classifier to t_embd), as llama.cpp's quantizer does; norms and rows of other lengths stay as they
   are. Buffers go to bufs[]. */
static int quantize_model(const ropex_model *m, ropex_model *q, ropex_type t, ropex_type t_embd, void **bufs,
                          int *nbufs) {
    int l, i;
    *q = *m;
    q->file_owned = 0; q->aux_owned = 0;
    for (l = -1; l < m->hp.n_layers; l++) {
        ropex_tensor *ts[8];
        int nt = 0;
        if (l < 0) { ts[nt++] = &q->tok_embd; if (m->output.data != m->tok_embd.data) ts[nt++] = &q->output; }
        else {
            ropex_layer_weights *w = &q->layers[l];
            ts[nt++] = &w->wq; ts[nt++] = &w->wk; ts[nt++] = &w->wv; ts[nt++] = &w->wo;
            ts[nt++] = &w->w_gate; ts[nt++] = &w->w_up; ts[nt++] = &w->w_down;
        }
        for (i = 0; i < nt; i++) {
            ropex_tensor *x = ts[i];
            size_t n = (size_t)x->cols * (size_t)x->rows;
            float *f;
            void *dst;
            ropex_type tt = l < 0 ? t_embd : t;
            if (x->type != ROPEX_F32 || x->cols % ROPEX_QK != 0) continue;
            f = (float *)malloc(n * sizeof(float));
            dst = malloc(ropex_row_bytes(tt, (size_t)x->cols) * (size_t)x->rows);
            if (!f || !dst || ropex_dequantize(x->type, x->data, f, n) != ROPEX_OK ||
                ropex_quantize(tt, f, dst, n) != ROPEX_OK) { free(f); free(dst); return -1; }
            free(f);
            x->type = tt; x->data = dst;
            bufs[(*nbufs)++] = dst;
        }
    }
    if (m->output.data == m->tok_embd.data) q->output = q->tok_embd;
    return 0;
}

int main(void) {
    static ropex_model bin, gguf, q8;
    ropex_ctx_config cfg;
    ropex_status st;
    char text[2048];
    int32_t gen_bin[128], gen_q8[128];
    int ng, V, i;
    int N = 512;
    int32_t *ids = NULL;
    int n_ids = 0, NQ, max_new;
    float *ref = NULL, *tmp = NULL, *f32 = NULL;
    double ppl_f32 = 0.0, ppl_f32_q = 0.0;
    quick = getenv("ROPEX_TEST_QUICK") && atoi(getenv("ROPEX_TEST_QUICK")) != 0;
    NQ = quick ? 192 : N;          /* tokens for the quantized-model comparisons */
    max_new = quick ? 57 : 80;     /* the expected story is 57 tokens after the prompt */

    memset(&cfg, 0, sizeof cfg);
    st = ropex_model_load_file(&bin, BIN, TOK);
    CHECK(st == ROPEX_OK, "load %s: %s", BIN, ropex_status_str(st));
    if (st != ROPEX_OK) return TEST_END("forward");
    V = bin.hp.vocab_size;

    /* ---- llama2.c's greedy story ---- */
    ng = greedy(&bin, &cfg, "Once upon a time", max_new, text, sizeof text, gen_bin);
    CHECK(ng > 0 && strncmp(text, EXPECTED, strlen(EXPECTED)) == 0, "llama2.c greedy (%d tokens):\n  got  %s\n  want %s",
          ng, text, EXPECTED);
    printf("stories260K.bin greedy: %s\n", text);

    /* ---- the llama.cpp GGUF (file context 128; the true trained context 512 given by hand) ---- */
    st = ropex_model_load_file(&gguf, GGUF_F32, NULL);
    CHECK(st == ROPEX_OK, "load %s: %s", GGUF_F32, ropex_status_str(st));
    if (st == ROPEX_OK) {
        ropex_ctx_config gc = cfg;
        char gtext[2048];
        int32_t gen_g[128];
        gc.rope = gguf.hp.rope;
        gc.rope.train_ctx = 512;
        gc.kv_size = 512;
        ng = greedy(&gguf, &gc, "Once upon a time", max_new, gtext, sizeof gtext, gen_g);
        CHECK(ng > 0 && strncmp(gtext, EXPECTED, strlen(EXPECTED)) == 0, "gguf f32 greedy:\n  got  %s\n  want %s",
              gtext, EXPECTED);
        CHECK(ng > 0 && memcmp(gen_g, gen_bin, sizeof(int32_t) * (size_t)ng) == 0, "gguf f32 tokens == llama2.c tokens");
    }

    /* ---- the llama.cpp Q8_0 GGUF: greedy stays close ---- */
    st = ropex_model_load_file(&q8, GGUF_Q8, NULL);
    CHECK(st == ROPEX_OK, "load %s: %s", GGUF_Q8, ropex_status_str(st));
    if (st == ROPEX_OK) {
        char qtext[2048];
        int same = 0;
        ng = greedy(&q8, &cfg, "Once upon a time", max_new, qtext, sizeof qtext, gen_q8);
        for (i = 0; i < ng && gen_q8[i] == gen_bin[i]; i++) same++;
        printf("stories260K-q8_0.gguf greedy: %s\n  (first %d generated tokens equal float32's)\n", qtext, same);
        CHECK(same >= 10, "q8_0 gguf greedy agrees with float32 for %d tokens (want >= 10)", same);
    }

    /* ---- evaluation ids: BOS then the text, llama2.c style ---- */
    {
        size_t len;
        char *t = read_text(TEXT, 16384, &len);
        CHECK(t != NULL, "read %s", TEXT);
        if (!t) return TEST_END("forward");
        ids = (int32_t *)malloc(sizeof(int32_t) * 8192);
        st = ropex_tokenize(&bin.vocab, t, len, 1, ids, 8192, &n_ids, NULL);
        CHECK(st == ROPEX_OK && n_ids > 2100, "tokenize eval text: %s, %d ids", ropex_status_str(st), n_ids);
        free(t);
        if (st != ROPEX_OK || n_ids < N) return TEST_END("forward");
    }
    ref = (float *)malloc(sizeof(float) * (size_t)V * 2048);
    tmp = (float *)malloc(sizeof(float) * (size_t)V * 2048);
    f32 = (float *)malloc(sizeof(float) * (size_t)V * (size_t)N);

    /* ---- perplexity of the first 512 ids in one pass: the known float32 value ---- */
    if (run_logits(&bin, &cfg, ids, N, N, f32, NULL) == 0) {
        ppl_f32 = perplexity(f32, ids, N, V);
        ppl_f32_q = perplexity(f32, ids, NQ, V);
        printf("float32 perplexity (512 ids, 511 predictions): %.5f\n", ppl_f32);
        CHECK_NEAR(ppl_f32, 3.7107, 1e-3, "stories260K float32 perplexity");
    } else CHECK(0, "run float32 eval");

    /* The GGUF written by llama.cpp holds the same floats: the same logits. */
    if (gguf.hp.n_layers) {
        ropex_ctx_config gc = cfg;
        gc.kv_size = 512;
        if (run_logits(&gguf, &gc, ids, NQ, 64, tmp, NULL) == 0)
            CHECK(max_abs_diff(f32, tmp, (size_t)NQ * V) <= 1e-4, "gguf f32 logits == llama2.c logits (max diff %.3g)",
                  max_abs_diff(f32, tmp, (size_t)NQ * V));
    }
    if (q8.hp.n_layers) {
        ropex_ctx_config gc = cfg;
        gc.kv_size = 512;
        if (run_logits(&q8, &gc, ids, NQ, 64, tmp, NULL) == 0) {
            double agree = top1_agreement(f32, tmp, NQ, V), ppl = perplexity(tmp, ids, NQ, V);
            printf("llama.cpp q8_0 gguf (%d ids): top-1 agreement %.4f, perplexity %.5f (ratio %.5f)\n", NQ, agree, ppl,
                   ppl / ppl_f32_q);
            CHECK(agree >= 0.90 && ppl / ppl_f32_q < 1.02 && ppl / ppl_f32_q > 0.98, "q8_0 gguf close to float32");
        }
    }

    /* ---- chunking invariance: one call vs calls of 1, 7, 64 tokens; a small internal batch ---- */
    {
        int n = quick ? 48 : 200, steps[3] = {1, 7, 64}, k;
        ropex_ctx_config small = cfg;
        small.max_batch = 5;
        if (run_logits(&bin, &cfg, ids, n, n, ref, NULL) == 0) {
            for (k = 0; k < 3; k++) {
                if (run_logits(&bin, &cfg, ids, n, steps[k], tmp, NULL) != 0) { CHECK(0, "run"); continue; }
                CHECK(max_abs_diff(ref, tmp, (size_t)n * V) <= 1e-4, "chunks of %d: max diff %.3g", steps[k],
                      max_abs_diff(ref, tmp, (size_t)n * V));
            }
            if (run_logits(&bin, &small, ids, n, n, tmp, NULL) == 0)
                CHECK(max_abs_diff(ref, tmp, (size_t)n * V) <= 1e-4, "max_batch 5: max diff %.3g",
                      max_abs_diff(ref, tmp, (size_t)n * V));
        }
        /* Through a wrapping sink ring (CACHE and TEXT positions, F32 and Q8_0 storage): a prompt in
           one call == token by token. */
        for (k = 0; k < 4; k++) {
            ropex_ctx_config ring = cfg;
            if (quick && (k == 1 || k == 2)) continue;
            ring.kv_size = 68; ring.n_sink = 4;
            ring.positions = k & 1 ? ROPEX_POS_TEXT : ROPEX_POS_CACHE;
            ring.kv_type = k & 2 ? ROPEX_Q8_0 : ROPEX_F32;
            if (run_logits(&bin, &ring, ids, n, n, ref, NULL) == 0 && run_logits(&bin, &ring, ids, n, 1, tmp, NULL) == 0)
                CHECK(max_abs_diff(ref, tmp, (size_t)n * V) <= 1e-4, "ring 64+4 %s positions, %s kv: one call vs 1 by 1, max diff %.3g",
                      k & 1 ? "text" : "cache", k & 2 ? "q8_0" : "f32", max_abs_diff(ref, tmp, (size_t)n * V));
        }
    }

    /* ---- thread counts: identical logits ---- */
#ifndef ROPEX_NO_THREADS
    {
        int n = quick ? 24 : 130, t, mi;
        const ropex_model *models[2];
        models[0] = &bin; models[1] = &q8;
        for (mi = 0; mi < 2; mi++) {
            if (!models[mi]->hp.n_layers) continue;
            if (run_logits(models[mi], &cfg, ids, n, 64, ref, NULL) != 0) { CHECK(0, "run"); continue; }
            for (t = 2; t <= 3; t++) {
                ropex_threads *th = NULL;
                st = ropex_threads_create(&th, t);
                CHECK(st == ROPEX_OK, "threads_create(%d): %s", t, ropex_status_str(st));
                if (st != ROPEX_OK) continue;
                if (run_logits(models[mi], &cfg, ids, n, 64, tmp, th) == 0)
                    CHECK(memcmp(ref, tmp, sizeof(float) * (size_t)n * V) == 0, "%s: %d threads == 1 thread (bitwise)",
                          mi ? "q8_0" : "f32", t);
                /* decode steps (the matvec path) too */
                if (run_logits(models[mi], &cfg, ids, 8, 1, ref + (size_t)n * V, NULL) == 0 &&
                    run_logits(models[mi], &cfg, ids, 8, 1, tmp, th) == 0)
                    CHECK(memcmp(ref + (size_t)n * V, tmp, sizeof(float) * 8 * (size_t)V) == 0,
                          "%s: decode with %d threads == 1 thread (bitwise)", mi ? "q8_0" : "f32", t);
                ropex_threads_destroy(th);
            }
        }
    }
#endif

    /* ---- Q8_0 and Q4_0 conversions of the float32 model ----
       Case 3 keeps the (shared) embedding/classifier at Q8_0, as llama.cpp's Q4_0 mixture keeps the
       output matrix at a higher precision; dim 64 rows make all-Q4_0 a hard case. */
    if (ppl_f32 > 0.0) {
        ropex_type types[3] = {ROPEX_Q8_0, ROPEX_Q4_0, ROPEX_Q4_0}, embd[3] = {ROPEX_Q8_0, ROPEX_Q4_0, ROPEX_Q8_0};
        double min_agree[3] = {0.95, 0.75, 0.80}, max_ratio[3] = {1.01, 1.25, 1.15};
        const char *names[3] = {"q8_0", "q4_0", "q4_0 + q8_0 classifier"};
        int k;
        for (k = 0; k < 3; k++) {
            static ropex_model qm;
            void *bufs[64];
            int nb = 0, b;
            if (quantize_model(&bin, &qm, types[k], embd[k], bufs, &nb) != 0) { CHECK(0, "quantize model"); continue; }
            if (run_logits(&qm, &cfg, ids, NQ, 64, tmp, NULL) == 0) {
                double agree = top1_agreement(f32, tmp, NQ, V), ppl = perplexity(tmp, ids, NQ, V);
                printf("%s (converted here, %d ids): top-1 agreement %.4f, perplexity %.5f, ratio to float32 %.5f\n",
                       names[k], NQ, agree, ppl, ppl / ppl_f32_q);
                CHECK(agree >= min_agree[k], "%s top-1 agreement %.4f >= %.2f", names[k], agree, min_agree[k]);
                CHECK(ppl / ppl_f32_q < max_ratio[k] && ppl / ppl_f32_q > 0.97, "%s perplexity ratio %.5f < %.2f",
                      names[k], ppl / ppl_f32_q, max_ratio[k]);
            } else CHECK(0, "run quantized model");
            {   /* the repacked layout (SIMD builds) gives the same logits bit for bit, prompt and
                   decode steps, and the GGUF writer refuses it */
                float *t2 = (float *)malloc((size_t)NQ * V * sizeof(float));
                size_t gsz = 0;
                int same;
                CHECK(ropex_model_repack(&qm) == ROPEX_OK, "%s repack", names[k]);
                same = t2 && run_logits(&qm, &cfg, ids, NQ, 5, t2, NULL) == 0 &&
                       memcmp(t2, tmp, (size_t)NQ * V * sizeof(float)) == 0;
                CHECK(same, "%s repacked (%s, %zu bytes): logits identical", names[k],
                      ropex_type_name(qm.layers[0].wq.type), qm.pack_bytes);
                if (qm.pack) {
                    ropex_gguf_write_config gc;
                    memset(&gc, 0, sizeof gc);
                    CHECK(ropex_gguf_write(&qm, &gc, NULL, 0, &gsz) == ROPEX_ERR_UNSUPPORTED, "gguf_write refuses repacked");
                    free(qm.pack);
                    qm.pack = NULL;
                }
                free(t2);
            }
            for (b = 0; b < nb; b++) free(bufs[b]);
        }
    }

    /* ---- mixed weight types in one layer (Q4_0 q/k/gate/up/down, Q8_0 v): the forward pass groups
       the q/k/v products into one dispatch only when their activations agree, so this model takes
       the one-product-at-a-time path; it must stay close to float32 and bit-identical for any
       thread count ---- */
    if (ppl_f32 > 0.0) {
        static ropex_model qa, qb;
        void *bufs[128];
        int nb = 0, b, l;
        if (quantize_model(&bin, &qa, ROPEX_Q4_0, ROPEX_Q8_0, bufs, &nb) == 0 &&
            quantize_model(&bin, &qb, ROPEX_Q8_0, ROPEX_Q8_0, bufs, &nb) == 0) {
            float *t2 = (float *)malloc((size_t)NQ * V * sizeof(float));
            for (l = 0; l < qa.hp.n_layers; l++) qa.layers[l].wv = qb.layers[l].wv;
            if (t2 && run_logits(&qa, &cfg, ids, NQ, 64, tmp, NULL) == 0) {
                double agree = top1_agreement(f32, tmp, NQ, V);
                printf("q4_0 with q8_0 v (mixed layer): top-1 agreement %.4f\n", agree);
                CHECK(agree >= 0.80, "mixed-type layers: top-1 agreement %.4f >= 0.80", agree);
                /* decode steps (matrix-vector products, whose kernels read type-specific activations) */
                CHECK(run_logits(&qa, &cfg, ids, 16, 1, t2, NULL) == 0 && max_abs_diff(t2, tmp, (size_t)16 * V) <= 1e-4,
                      "mixed-type layers: token by token == prompt chunks of 64 (1e-4)");
#ifndef ROPEX_NO_THREADS
                {
                    ropex_threads *th = NULL;
                    if (ropex_threads_create(&th, 2) == ROPEX_OK) {
                        CHECK(run_logits(&qa, &cfg, ids, NQ, 64, t2, th) == 0 &&
                              memcmp(t2, tmp, (size_t)NQ * V * sizeof(float)) == 0, "mixed-type layers: 2 threads == 1 (bitwise)");
                        ropex_threads_destroy(th);
                    }
                }
#endif
            } else CHECK(0, "run the mixed-type model");
            free(t2);
        } else CHECK(0, "quantize the mixed-type model");
        for (b = 0; b < nb; b++) free(bufs[b]);
    }

    /* ---- per-pair RoPE frequency factors (GGUF rope_freqs, as llama.cpp writes them for Llama 3.x):
       the model with factors written to GGUF and read back gives the same logits; the factors
       change them; one list for all lengths keeps the table length-independent ---- */
    if (ppl_f32 > 0.0) {
        static ropex_model lr, back;
        static float ff[ROPEX_ROPE_MAX_PAIRS], ff2[ROPEX_ROPE_MAX_PAIRS];
        ropex_gguf_write_config gc;
        ropex_rope_table tab;
        size_t gsz = 0;
        unsigned char *gb;
        int j, n = 96, np = bin.hp.head_dim / 2;
        float *a = (float *)malloc((size_t)n * V * sizeof(float)), *b = (float *)malloc((size_t)n * V * sizeof(float));
        lr = bin;   /* shares bin's memory: never freed */
        for (j = 0; j < np; j++) { ff[j] = 1.0f + 0.75f * (float)j; ff2[j] = ff[j]; }
        lr.hp.rope.scaling = ROPEX_SCALE_LONGROPE;
        lr.hp.rope.longrope_short = ff;
        lr.hp.rope.longrope_long = ff2;   /* equal contents, another array */
        CHECK(ropex_rope_table_init(&tab, &lr.hp.rope, 0) == ROPEX_OK && tab.length_dependent == 0,
              "equal LongRoPE lists: table not length-dependent");
        ff2[0] = 2.0f;
        CHECK(ropex_rope_table_init(&tab, &lr.hp.rope, 0) == ROPEX_OK && tab.length_dependent == 1,
              "different LongRoPE lists: length-dependent");
        ff2[0] = ff[0];
        memset(&gc, 0, sizeof gc);
        gb = NULL;
        if (ropex_gguf_write(&lr, &gc, NULL, 0, &gsz) == ROPEX_OK && (gb = (unsigned char *)malloc(gsz)) != NULL &&
            ropex_gguf_write(&lr, &gc, gb, gsz, &gsz) == ROPEX_OK) {
            st = ropex_model_load_gguf_memory(&back, gb, gsz);
            CHECK(st == ROPEX_OK && back.hp.rope.scaling == ROPEX_SCALE_LONGROPE && back.hp.rope.longrope_short &&
                  back.hp.rope.longrope_short[np - 1] == ff[np - 1] && back.hp.rope.longrope_long[1] == ff[1],
                  "rope_freqs read back as per-pair factors (%s)", ropex_status_str(st));
            if (st == ROPEX_OK && a && b && run_logits(&lr, &cfg, ids, n, 32, a, NULL) == 0 &&
                run_logits(&back, &cfg, ids, n, 7, b, NULL) == 0) {
                CHECK(max_abs_diff(a, b, (size_t)n * V) <= 1e-4, "rope_freqs GGUF round trip: same logits (max diff %.3g)",
                      max_abs_diff(a, b, (size_t)n * V));
                CHECK(max_abs_diff(a, f32, (size_t)n * V) > 1e-2, "the factors change the logits (max diff %.3g)",
                      max_abs_diff(a, f32, (size_t)n * V));
            } else CHECK(0, "run the rope_freqs models");
            ropex_model_free(&back);
        } else CHECK(0, "write a GGUF with rope_freqs");
        free(gb); free(a); free(b);
    }

    /* ---- streaming past the trained context: 256 + 4 sinks, CACHE positions, Q8_0 KV
       (quick: 64 + 4 sinks, 320 tokens: the ring still wraps four times) ---- */
    {
        int n = quick ? 320 : 2048, W = quick ? 128 : 512, R = quick ? 64 : 256;
        ropex_ctx_config sc = cfg;
        sc.kv_size = R + 4; sc.n_sink = 4; sc.positions = ROPEX_POS_CACHE; sc.kv_type = ROPEX_Q8_0;
        if (n > n_ids) n = n_ids;
        if (run_logits(&bin, &sc, ids, n, 64, ref, NULL) == 0) {
            double p_head = perplexity(ref, ids, W, V), p_ref = perplexity(f32, ids, W, V);
            double p_tail = perplexity(ref + (size_t)(n - W) * V, ids + (n - W), W, V);
            CHECK(all_finite(ref, (size_t)n * V), "stream of %d tokens: finite logits", n);
            printf("stream %d tokens through %d+4 ring (cache positions, q8_0 kv): ppl first %d %.4f (full cache %.4f), "
                   "last %d %.4f\n", n, R, W, p_head, p_ref, W, p_tail);
            CHECK(p_tail < 2.0 * p_ref && p_head < 1.2 * p_ref, "stream perplexity stays sensible");
        } else CHECK(0, "stream run");
    }

    /* ---- caller memory: ropex_ctx_bytes is enough even at an unaligned address; reset ---- */
    {
        size_t need = ropex_ctx_bytes(&bin, &cfg);
        unsigned char *mem = (unsigned char *)malloc(need + 1);
        ropex_ctx c;
        int n = 40;
        run_logits(&bin, &cfg, ids, n, n, ref, NULL);
        CHECK(need > 0 && mem != NULL, "ropex_ctx_bytes %lu", (unsigned long)need);
        st = ropex_ctx_init(&c, &bin, &cfg, mem + 1, need);
        CHECK(st == ROPEX_OK, "init at an unaligned address with ropex_ctx_bytes bytes: %s", ropex_status_str(st));
        if (st == ROPEX_OK) {
            CHECK(((uintptr_t)c.x & 63) == 0 && ((uintptr_t)c.logits & 63) == 0, "activations 64-byte aligned");
            CHECK(ropex_eval(&c, ids, 17, NULL, NULL) == ROPEX_OK && ropex_ctx_n_past(&c) == 17, "eval 17, n_past 17");
            ropex_ctx_reset(&c);
            CHECK(ropex_ctx_n_past(&c) == 0, "reset");
            CHECK(ropex_eval(&c, ids, n, tmp, NULL) == ROPEX_OK && memcmp(tmp, ref, sizeof(float) * (size_t)n * V) == 0,
                  "after reset: the same logits as a fresh context");
            CHECK(memcmp(c.logits, ref + (size_t)(n - 1) * V, sizeof(float) * (size_t)V) == 0, "c->logits = last row");
        }
        free(mem);
    }

    /* ---- runtime RoPE change mid-stream ---- */
    {
        ropex_ctx a, b;
        ropex_rope_config r = bin.hp.rope, bad = bin.hp.rope;
        float *la = (float *)malloc(sizeof(float) * (size_t)V), *lb = (float *)malloc(sizeof(float) * (size_t)V);
        bad.head_dim = 6;
        if (ropex_ctx_create(&a, &bin, &cfg) == ROPEX_OK && ropex_ctx_create(&b, &bin, &cfg) == ROPEX_OK) {
            ropex_eval(&a, ids, 30, NULL, NULL);
            ropex_eval(&b, ids, 30, NULL, NULL);
            CHECK(ropex_ctx_set_rope(&a, &r) == ROPEX_OK, "set_rope (same settings)");
            CHECK(ropex_ctx_set_rope(&a, &bad) == ROPEX_ERR_ARG && a.cfg.rope.head_dim == bin.hp.head_dim,
                  "set_rope rejects a head_dim mismatch, settings unchanged");
            ropex_eval(&a, ids + 30, 5, NULL, NULL);
            ropex_eval(&b, ids + 30, 5, NULL, NULL);
            CHECK(max_abs_diff(a.logits, b.logits, (size_t)V) <= 1e-5, "set_rope to the same settings changes nothing (%.3g)",
                  max_abs_diff(a.logits, b.logits, (size_t)V));
            memcpy(la, a.logits, sizeof(float) * (size_t)V);
            r.base = 40000.0;
            CHECK(ropex_ctx_set_rope(&a, &r) == ROPEX_OK && a.cfg.rope.base == 40000.0 && a.cfg.rope.train_base == 10000.0,
                  "set_rope base 40000 (pre-training base kept)");
            ropex_eval(&a, ids + 35, 1, NULL, NULL);
            ropex_eval(&b, ids + 35, 1, NULL, NULL);
            memcpy(lb, b.logits, sizeof(float) * (size_t)V);
            CHECK(all_finite(a.logits, (size_t)V) && max_abs_diff(a.logits, lb, (size_t)V) > 1e-3,
                  "the new base is in effect (logits differ by %.3g)", max_abs_diff(a.logits, lb, (size_t)V));
            ropex_ctx_free(&a);
            ropex_ctx_free(&b);
        } else CHECK(0, "create");
        free(la); free(lb);
    }

    /* ---- bad arguments ---- */
    {
        ropex_ctx c;
        ropex_ctx_config bad = cfg;
        int32_t t = 100000;
        bad.n_sink = 600; bad.kv_size = 512;
        CHECK(ropex_ctx_bytes(&bin, &bad) == 0, "n_sink >= kv_size rejected");
        CHECK(ropex_ctx_create(&c, &bin, &bad) == ROPEX_ERR_ARG, "create rejects n_sink >= kv_size");
        bad = cfg; bad.rope.head_dim = 6;
        CHECK(ropex_ctx_create(&c, &bin, &bad) == ROPEX_ERR_ARG, "create rejects a head_dim mismatch");
        CHECK(ropex_ctx_create(&c, &bin, &cfg) == ROPEX_OK, "create");
        CHECK(ropex_eval(&c, &t, 1, NULL, NULL) == ROPEX_ERR_ARG && ropex_ctx_n_past(&c) == 0, "bad token id rejected, no state change");
        {
            unsigned char small[256];
            ropex_ctx c2;
            CHECK(ropex_ctx_init(&c2, &bin, &cfg, small, sizeof small) == ROPEX_ERR_BUFFER, "small buffer rejected");
        }
        ropex_ctx_free(&c);
    }

    free(ref); free(tmp); free(f32); free(ids);
    ropex_model_free(&bin);
    ropex_model_free(&gguf);
    ropex_model_free(&q8);
    return TEST_END("forward");
}
