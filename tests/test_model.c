/* Loaders: llama2.c and GGUF on the real files, the GGUF writer read back and checked against the
   spec with an independent walker, and hostile files (truncations, absurd fields, bad offsets,
   types, vocabularies) that must all fail cleanly. The ASan run catches any over-read. */
#include "../ropex.h"
#define TEST_FILE_HELPERS
#include "test_util.h"
#include <stdlib.h>
#include <string.h>


static uint32_t ld32(const unsigned char *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }
static uint64_t ld64(const unsigned char *p) { return ld32(p) | ((uint64_t)ld32(p + 4) << 32); }
static void st32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }
static void st64(unsigned char *p, uint64_t v) { st32(p, (uint32_t)v); st32(p + 4, (uint32_t)(v >> 32)); }
static float ldf(const unsigned char *p) { uint32_t u = ld32(p); float f; memcpy(&f, &u, 4); return f; }

/* ---- an independent GGUF walker (spec docs/gguf.md), used to check written files and to find
   the offsets of fields to corrupt ---- */
#define MAXT 64
typedef struct walk {
    int ok;
    uint32_t version; uint64_t n_tensors, n_kv;
    size_t kv_key_len_off[64];          /* offset of each KV's key-length field */
    size_t kv_val_off[64];              /* offset of each KV's value (after the type) */
    uint32_t kv_type[64];
    char kv_name[64][64];
    size_t ti_off[MAXT];                /* offset of each tensor info (name length field) */
    size_t ti_type_off[MAXT], ti_offset_off[MAXT], ti_ndims_off[MAXT], ti_ne_off[MAXT];
    char t_name[MAXT][64]; uint32_t t_type[MAXT], t_ndims[MAXT]; uint64_t t_ne[MAXT][4], t_offset[MAXT];
    size_t data_start, info_end;
    uint32_t alignment;
} walk;
static size_t scalar_size(uint32_t t) {
    switch (t) { case 0: case 1: case 7: return 1; case 2: case 3: return 2; case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8; default: return 0; }
}
static int skip_val(const unsigned char *d, size_t n, size_t *o, uint32_t t) {
    size_t s = scalar_size(t);
    if (s) { if (*o + s > n) return 0; *o += s; return 1; }
    if (t == 8) { uint64_t l; if (*o + 8 > n) return 0; l = ld64(d + *o); *o += 8; if (l > n - *o) return 0; *o += (size_t)l; return 1; }
    if (t == 9) {
        uint32_t at; uint64_t c, i;
        if (*o + 12 > n) return 0;
        at = ld32(d + *o); c = ld64(d + *o + 4); *o += 12;
        for (i = 0; i < c; i++) if (!skip_val(d, n, o, at)) return 0;
        return 1;
    }
    return 0;
}
static void walk_gguf(walk *w, const unsigned char *d, size_t n) {
    size_t o = 24;
    uint64_t i;
    memset(w, 0, sizeof(*w));
    w->alignment = 32;
    if (n < 24 || memcmp(d, "GGUF", 4)) return;
    w->version = ld32(d + 4); w->n_tensors = ld64(d + 8); w->n_kv = ld64(d + 16);
    if (w->n_kv > 64 || w->n_tensors > MAXT) return;
    for (i = 0; i < w->n_kv; i++) {
        uint64_t kl;
        w->kv_key_len_off[i] = o;
        if (o + 8 > n) return;
        kl = ld64(d + o); o += 8;
        if (kl > n - o || kl > 63) return;
        memcpy(w->kv_name[i], d + o, (size_t)kl); w->kv_name[i][kl] = 0; o += (size_t)kl;
        if (o + 4 > n) return;
        w->kv_type[i] = ld32(d + o); o += 4;
        w->kv_val_off[i] = o;
        if (!strcmp(w->kv_name[i], "general.alignment")) w->alignment = ld32(d + o);
        if (!skip_val(d, n, &o, w->kv_type[i])) return;
    }
    for (i = 0; i < w->n_tensors; i++) {
        uint64_t nl; uint32_t k;
        w->ti_off[i] = o;
        if (o + 8 > n) return;
        nl = ld64(d + o); o += 8;
        if (nl > 63 || nl > n - o) return;
        memcpy(w->t_name[i], d + o, (size_t)nl); w->t_name[i][nl] = 0; o += (size_t)nl;
        w->ti_ndims_off[i] = o;
        if (o + 4 > n) return;
        w->t_ndims[i] = ld32(d + o); o += 4;
        if (w->t_ndims[i] < 1 || w->t_ndims[i] > 4) return;
        w->ti_ne_off[i] = o;
        for (k = 0; k < 4; k++) w->t_ne[i][k] = 1;
        for (k = 0; k < w->t_ndims[i]; k++) { if (o + 8 > n) return; w->t_ne[i][k] = ld64(d + o); o += 8; }
        w->ti_type_off[i] = o;
        if (o + 12 > n) return;
        w->t_type[i] = ld32(d + o); o += 4;
        w->ti_offset_off[i] = o;
        w->t_offset[i] = ld64(d + o); o += 8;
    }
    w->info_end = o;
    w->data_start = (o + w->alignment - 1) / w->alignment * w->alignment;
    w->ok = 1;
}
static int walk_find_kv(const walk *w, const char *name) {
    uint64_t i;
    for (i = 0; i < w->n_kv; i++) if (!strcmp(w->kv_name[i], name)) return (int)i;
    return -1;
}
static int walk_find_t(const walk *w, const char *name) {
    uint64_t i;
    for (i = 0; i < w->n_tensors; i++) if (!strcmp(w->t_name[i], name)) return (int)i;
    return -1;
}
static uint64_t tensor_bytes(uint32_t type, const uint64_t *ne) {
    uint64_t n = ne[0] * ne[1] * ne[2] * ne[3];
    switch (type) { case 0: return 4 * n; case 1: return 2 * n; case 8: return n / 32 * 34; case 2: return n / 32 * 18; default: return 0; }
}

/* The spec's invariants on a written file. */
static void check_spec(const unsigned char *d, size_t n, const char *what) {
    walk w;
    uint64_t i, j;
    walk_gguf(&w, d, n);
    CHECK(w.ok, "%s: walker parses the file", what);
    if (!w.ok) return;
    CHECK(w.version == 3, "%s: version 3", what);
    CHECK(w.data_start % 32 == 0 && w.data_start <= n, "%s: data section aligned and inside", what);
    for (i = 0; i < w.info_end - w.data_start && w.info_end + i < w.data_start; i++) CHECK(d[w.info_end + i] == 0, "%s: zero padding", what);
    for (i = 0; i < w.n_tensors; i++) {
        uint64_t b = tensor_bytes(w.t_type[i], w.t_ne[i]);
        CHECK(w.t_offset[i] % 32 == 0, "%s: %s offset aligned", what, w.t_name[i]);
        CHECK(b > 0 && w.data_start + w.t_offset[i] + b <= n, "%s: %s inside the file", what, w.t_name[i]);
        CHECK(strlen(w.t_name[i]) <= 64, "%s: name <= 64 bytes", what);
        for (j = 0; j < i; j++) {
            uint64_t bj = tensor_bytes(w.t_type[j], w.t_ne[j]);
            CHECK(w.t_offset[i] >= w.t_offset[j] + bj || w.t_offset[j] >= w.t_offset[i] + b, "%s: tensors %s/%s overlap", what, w.t_name[i], w.t_name[j]);
            CHECK(strcmp(w.t_name[i], w.t_name[j]) != 0, "%s: duplicate tensor name", what);
        }
    }
    for (i = 0; i < w.n_kv; i++) for (j = 0; j < i; j++) CHECK(strcmp(w.kv_name[i], w.kv_name[j]) != 0, "%s: duplicate key %s", what, w.kv_name[i]);
    CHECK(walk_find_kv(&w, "general.architecture") == 0, "%s: general.architecture first", what);
}

/* Every tensor of a loaded model lies inside [buf, buf+size). */
static int tensors_inside(const ropex_model *m, const unsigned char *buf, size_t size) {
    int l, k;
    const ropex_tensor *all[3 + 9 * ROPEX_MAX_LAYERS];
    int n = 0;
    all[n++] = &m->tok_embd; all[n++] = &m->output_norm; all[n++] = &m->output;
    for (l = 0; l < m->hp.n_layers; l++) {
        const ropex_layer_weights *w = &m->layers[l];
        all[n++] = &w->attn_norm; all[n++] = &w->wq; all[n++] = &w->wk; all[n++] = &w->wv; all[n++] = &w->wo;
        all[n++] = &w->ffn_norm; all[n++] = &w->w_gate; all[n++] = &w->w_down; all[n++] = &w->w_up;
    }
    for (k = 0; k < n; k++) {
        const unsigned char *p = (const unsigned char *)all[k]->data;
        size_t b = ropex_row_bytes(all[k]->type, (size_t)all[k]->cols) * (size_t)all[k]->rows;
        if (!p || b == 0 || p < buf || p + b > buf + size) return 0;
    }
    return 1;
}

static int tensor_eq(const ropex_tensor *a, const ropex_tensor *b) {
    size_t bytes = ropex_row_bytes(a->type, (size_t)a->cols) * (size_t)a->rows;
    return a->type == b->type && a->cols == b->cols && a->rows == b->rows && memcmp(a->data, b->data, bytes) == 0;
}

/* Max |a - b| over two tensors of any types (dequantized). */
static double tensor_maxdiff(const ropex_tensor *a, const ropex_tensor *b) {
    size_t n = (size_t)(a->cols * a->rows);
    float *x = (float *)malloc(n * 4), *y = (float *)malloc(n * 4);
    double m = 0;
    size_t i;
    if (ropex_dequantize(a->type, a->data, x, n) || ropex_dequantize(b->type, b->data, y, n)) m = 1e9;
    else for (i = 0; i < n; i++) if (fabs((double)x[i] - y[i]) > m) m = fabs((double)x[i] - y[i]);
    free(x); free(y);
    return m;
}

static int all_layers_eq(const ropex_model *a, const ropex_model *b) {
    int l, ok = tensor_eq(&a->tok_embd, &b->tok_embd) && tensor_eq(&a->output_norm, &b->output_norm) &&
                tensor_eq(&a->output, &b->output);
    for (l = 0; l < a->hp.n_layers && ok; l++) {
        const ropex_layer_weights *x = &a->layers[l], *y = &b->layers[l];
        ok = tensor_eq(&x->attn_norm, &y->attn_norm) && tensor_eq(&x->wq, &y->wq) && tensor_eq(&x->wk, &y->wk) &&
             tensor_eq(&x->wv, &y->wv) && tensor_eq(&x->wo, &y->wo) && tensor_eq(&x->ffn_norm, &y->ffn_norm) &&
             tensor_eq(&x->w_gate, &y->w_gate) && tensor_eq(&x->w_down, &y->w_down) && tensor_eq(&x->w_up, &y->w_up);
    }
    return ok;
}

static ropex_status load_gguf(const unsigned char *d, size_t n) {
    ropex_model m;
    ropex_status st = ropex_model_load_gguf_memory(&m, d, n);
    if (st == ROPEX_OK) {
        /* accepted corruptions must still give a self-consistent model inside the buffer */
        CHECK(tensors_inside(&m, d, n), "accepted model has a tensor outside the file");
        ropex_model_free(&m);
    } else {
        CHECK(ropex_model_error(&m)[0] != 0, "error without detail");
    }
    return st;
}
static ropex_status load_l2c(const unsigned char *c, size_t cn, const unsigned char *t, size_t tn) {
    ropex_model m;
    ropex_status st = ropex_model_load_llama2c_memory(&m, c, cn, t, tn);
    if (st == ROPEX_OK) ropex_model_free(&m);
    return st;
}

/* A copy in a fresh exact-size heap block, so ASan sees any read past the end. */
static ropex_status load_gguf_copy(const unsigned char *d, size_t n) {
    unsigned char *c = (unsigned char *)malloc(n ? n : 1);
    ropex_status st;
    memcpy(c, d, n);
    st = load_gguf(c, n);
    free(c);
    return st;
}

static void test_llama2c(const unsigned char *ck, size_t cn, const unsigned char *tok, size_t tn) {
    ropex_model m;
    ropex_status st;
    size_t aux = 0;
    void *auxbuf;
    st = ropex_model_load_llama2c_memory(&m, ck, cn, tok, tn);
    CHECK(st == ROPEX_OK, "stories260K loads: %d %s", st, ropex_model_error(&m));
    if (st) return;
    CHECK(m.format == ROPEX_FORMAT_LLAMA2C, "format");
    CHECK(m.hp.dim == 64 && m.hp.hidden_dim == 172 && m.hp.n_layers == 5 && m.hp.n_heads == 8 &&
          m.hp.n_kv_heads == 4 && m.hp.head_dim == 8 && m.hp.vocab_size == 512, "stories260K hparams");
    CHECK(m.hp.file_ctx == 512 && m.hp.rope.train_ctx == 512, "seq_len 512 is the trained context");
    CHECK(m.hp.rope.head_dim == 8 && m.hp.rope.base == 10000.0 && m.hp.rope.layout == ROPEX_LAYOUT_ADJACENT &&
          m.hp.rope.scaling == ROPEX_SCALE_NONE, "rope settings");
    CHECK_NEAR(m.hp.rms_eps, 1e-5, 1e-12, "rms eps");
    CHECK(tensors_inside(&m, ck, cn), "zero-copy: every tensor points into the checkpoint");
    CHECK(m.tok_embd.data == ck + 28, "embedding right after the header");
    CHECK(m.output.data == m.tok_embd.data, "shared classifier");
    CHECK(m.layers[0].wq.cols == 64 && m.layers[0].wq.rows == 64 && m.layers[0].wk.rows == 32 &&
          m.layers[0].w_down.cols == 172 && m.layers[0].w_down.rows == 64 && m.layers[0].w_gate.rows == 172, "shapes");
    /* rms_final is the last tensor before the freq_cis blocks (512 * 8 floats) */
    CHECK((const unsigned char *)m.output_norm.data + 64 * 4 + 512 * 8 * 4 == ck + cn, "layout ends at freq_cis");
    CHECK(m.vocab.n_tokens == 512 && m.vocab.bos_id == 1 && m.vocab.eos_id == 2 && m.vocab.unk_id == 0, "vocab ids");
    CHECK(m.vocab.byte_fallback == 1 && m.vocab.byte_token[0x0A] == 13 && !m.vocab.space_is_u2581, "byte tokens");
    ropex_model_free(&m);
    ropex_model_free(&m);   /* freeing twice is harmless */
    /* caller-memory path: exact size works, one byte less does not */
    CHECK(ropex_model_llama2c_aux_bytes(ck, cn, tok, tn, &aux) == ROPEX_OK && aux > 0, "aux size query");
    auxbuf = malloc(aux);
    st = ropex_model_load_llama2c_memory_ex(&m, ck, cn, tok, tn, auxbuf, aux / 2);
    CHECK(st == ROPEX_ERR_BUFFER, "short aux buffer -> ERR_BUFFER (%d)", st);
    CHECK(ropex_model_load_llama2c_memory_ex(&m, ck, cn, tok, tn, NULL, 0) == ROPEX_ERR_BUFFER, "no aux buffer");
    st = ropex_model_load_llama2c_memory_ex(&m, ck, cn, tok, tn, auxbuf, aux);
    CHECK(st == ROPEX_OK && m.vocab.n_tokens == 512 && !m.aux_owned, "load into caller memory");
    ropex_model_free(&m);
    free(auxbuf);
}

static void test_llama2c_hostile(const unsigned char *ck, size_t cn, const unsigned char *tok, size_t tn) {
    unsigned char *c = (unsigned char *)malloc(cn + 64), *t = (unsigned char *)malloc(tn + 64);
    static const int32_t bad[] = { 0, -1, -7, INT32_MIN, INT32_MAX, 3, 1 << 20, 1 << 30 };
    size_t i, f, k;
    int n_err = 0, n_cases = 0;
    /* truncation inside and after the header, and a byte too many */
    for (i = 0; i < 40; i++) { memcpy(c, ck, i); n_cases++; n_err += load_l2c(c, i, tok, tn) == ROPEX_ERR_FORMAT; }
    memcpy(c, ck, cn);
    n_cases++; n_err += load_l2c(c, cn - 1, tok, tn) == ROPEX_ERR_FORMAT;
    n_cases++; n_err += load_l2c(c, cn - 4, tok, tn) == ROPEX_ERR_FORMAT;
    c[cn] = 0; n_cases++; n_err += load_l2c(c, cn + 1, tok, tn) == ROPEX_ERR_FORMAT;
    n_cases++; n_err += load_l2c(c, cn + 64, tok, tn) == ROPEX_ERR_FORMAT;
    /* every header field set to hostile values */
    for (f = 0; f < 7; f++) {
        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            ropex_status st;
            memcpy(c, ck, cn);
            st32(c + 4 * f, (uint32_t)bad[k]);
            st = load_l2c(c, cn, tok, tn);
            n_cases++; n_err += st == ROPEX_ERR_FORMAT;
            if (st != ROPEX_ERR_FORMAT) printf("  llama2.c field %d = %d -> %d\n", (int)f, bad[k], st);
        }
    }
    CHECK(n_err == n_cases, "llama2.c hostile headers: %d of %d rejected", n_err, n_cases);
    /* separate classifier: a negative vocab needs vocab*dim more floats */
    memcpy(c, ck, cn);
    st32(c + 20, (uint32_t)-512);
    CHECK(load_l2c(c, cn, tok, tn) == ROPEX_ERR_FORMAT, "negative vocab without classifier bytes");
    {
        size_t big = cn + 512 * 64 * 4;
        unsigned char *c2 = (unsigned char *)calloc(big, 1);
        ropex_model m;
        memcpy(c2, c, cn);
        for (i = 0; i < 512 * 64; i++) { float v = (float)i; uint32_t u; memcpy(&u, &v, 4); st32(c2 + cn + 4 * i, u); }
        CHECK(ropex_model_load_llama2c_memory(&m, c2, big, tok, tn) == ROPEX_OK, "separate classifier loads");
        CHECK(m.output.data == c2 + cn && m.output.data != m.tok_embd.data && ldf((const unsigned char *)m.output.data + 4 * 77) == 77.0f,
              "classifier after freq_cis");
        ropex_model_free(&m);
        free(c2);
    }
    /* tokenizer: truncated anywhere, a byte too many, empty and oversized tokens, bad max length */
    n_err = n_cases = 0;
    for (i = 0; i < tn; i += (i < 300 ? 1 : 97)) { memcpy(t, tok, i); n_cases++; n_err += load_l2c(ck, cn, t, i) == ROPEX_ERR_FORMAT; }
    memcpy(t, tok, tn); t[tn] = 0;
    n_cases++; n_err += load_l2c(ck, cn, t, tn + 1) == ROPEX_ERR_FORMAT;
    n_cases++; n_err += load_l2c(ck, cn, t, tn - 1) == ROPEX_ERR_FORMAT;
    st32(t + 4 + 4, 0);                      /* token 0 length 0 */
    n_cases++; n_err += load_l2c(ck, cn, t, tn) == ROPEX_ERR_FORMAT;
    memcpy(t, tok, tn); st32(t + 4 + 4, 0x7fffffff);   /* huge token */
    n_cases++; n_err += load_l2c(ck, cn, t, tn) == ROPEX_ERR_FORMAT;
    memcpy(t, tok, tn); st32(t + 4 + 4, 0xffffffffu);  /* negative length */
    n_cases++; n_err += load_l2c(ck, cn, t, tn) == ROPEX_ERR_FORMAT;
    memcpy(t, tok, tn); st32(t, 0);                    /* max_token_length 0 */
    n_cases++; n_err += load_l2c(ck, cn, t, tn) == ROPEX_ERR_FORMAT;
    memcpy(t, tok, tn); st32(t, 2);                    /* tokens longer than the declared max */
    n_cases++; n_err += load_l2c(ck, cn, t, tn) == ROPEX_ERR_FORMAT;
    CHECK(n_err == n_cases, "tokenizer.bin hostile: %d of %d rejected", n_err, n_cases);
    {
        ropex_model m;
        CHECK(ropex_model_load_llama2c_memory(&m, NULL, 0, tok, tn) == ROPEX_ERR_ARG, "NULL checkpoint");
        CHECK(ropex_model_load_llama2c_memory(NULL, ck, cn, tok, tn) == ROPEX_ERR_ARG, "NULL model");
    }
    free(c); free(t);
}

static void test_babyllama(void) {
    ropex_model m;
    ropex_status st = ropex_model_load_file(&m, "examples/models/babyllama105_model5000.bin", "examples/models/tok105.bin");
    CHECK(st == ROPEX_OK, "babyllama105 loads: %s", ropex_model_error(&m));
    if (st) return;
    CHECK(m.hp.dim == 128 && m.hp.hidden_dim == 352 && m.hp.n_layers == 5 && m.hp.n_heads == 8 &&
          m.hp.n_kv_heads == 4 && m.hp.head_dim == 16 && m.hp.vocab_size == 105 && m.hp.rope.train_ctx == 256,
          "babyllama105 hparams");
    CHECK(m.vocab.byte_fallback == 0 && m.vocab.byte_token[10] == -1, "tok105 has no byte tokens");
    CHECK(m.file_owned && m.aux_owned, "file load owns its memory");
    ropex_model_free(&m);
    CHECK(m.file_data == NULL && m.aux == NULL, "free resets");
    CHECK(ropex_model_load_file(&m, "examples/models/no-such-file.bin", "examples/models/tok105.bin") == ROPEX_ERR_IO, "missing file");
    CHECK(ropex_model_load_file(&m, "examples/models/stories260K.bin", NULL) == ROPEX_ERR_ARG, "llama2.c needs a tokenizer");
    CHECK(ropex_model_load_file(&m, "examples/models/stories260K.bin", "examples/models/tok105.bin") == ROPEX_ERR_FORMAT,
          "a tokenizer of the wrong size is rejected");
}

static void test_gguf_real(const ropex_model *ref, const unsigned char *g32, size_t n32, const unsigned char *g8, size_t n8) {
    ropex_model a, b;
    ropex_status st;
    int l, i, bad = 0;
    st = ropex_model_load_gguf_memory(&a, g32, n32);
    CHECK(st == ROPEX_OK, "stories260K-f32.gguf loads: %s", ropex_model_error(&a));
    if (st) return;
    CHECK(a.format == ROPEX_FORMAT_GGUF && a.hp.dim == 64 && a.hp.hidden_dim == 172 && a.hp.n_layers == 5 &&
          a.hp.n_heads == 8 && a.hp.n_kv_heads == 4 && a.hp.head_dim == 8 && a.hp.vocab_size == 512, "gguf hparams");
    CHECK(a.hp.file_ctx == 128 && a.hp.rope.train_ctx == 128, "llama.cpp's converter writes context_length 128");
    CHECK(a.hp.rope.base == 10000.0 && a.hp.rope.rot_dims == 8 && a.hp.rope.layout == ROPEX_LAYOUT_ADJACENT, "gguf rope");
    CHECK_NEAR(a.hp.rms_eps, 1e-5, 1e-11, "gguf eps");
    CHECK(tensors_inside(&a, g32, n32), "gguf zero-copy");
    CHECK(a.output.data != a.tok_embd.data && tensor_eq(&a.output, &a.tok_embd), "output.weight is a copy of the embedding");
    /* llama.cpp's llama2c converter copies wq/wk unpermuted: identical to the llama2.c tensors */
    CHECK(all_layers_eq(&a, ref), "every gguf f32 tensor equals the llama2.c tensor (no Q/K permutation)");
    CHECK(a.vocab.n_tokens == 512 && a.vocab.bos_id == 1 && a.vocab.eos_id == 2 && a.vocab.unk_id == 0 &&
          a.vocab.space_is_u2581 && a.vocab.byte_fallback, "gguf vocab");
    CHECK(a.vocab.tokens[1].len == 3 && !memcmp(a.vocab.tokens[1].text, "<s>", 3) && a.vocab.tokens[1].type == 3, "<s> control");
    for (i = 0; i < 512; i++) {
        /* the same pieces as tok512 with spaces spelled U+2581 */
        const ropex_token *x = &a.vocab.tokens[i], *y = &ref->vocab.tokens[i];
        uint32_t j, k = 0;
        if (i == 1 || i == 2) continue;
        if (x->score != y->score) bad++;
        for (j = 0; j < y->len; j++) {
            if (y->text[j] == ' ') { if (k + 3 > x->len || memcmp(x->text + k, "\xe2\x96\x81", 3)) bad++; k += 3; }
            else { if (k >= x->len || x->text[k] != y->text[j]) bad++; k++; }
        }
        if (k != x->len) bad++;
    }
    CHECK(bad == 0, "gguf pieces/scores match tok512 (%d differences)", bad);
    st = ropex_model_load_gguf_memory(&b, g8, n8);
    CHECK(st == ROPEX_OK, "stories260K-q8_0.gguf loads: %s", ropex_model_error(&b));
    if (st == ROPEX_OK) {
        CHECK(b.tok_embd.type == ROPEX_Q8_0 && b.output.type == ROPEX_Q8_0 && b.output_norm.type == ROPEX_F32, "q8 file types");
        for (l = 0; l < 5; l++) {
            const ropex_layer_weights *w = &b.layers[l];
            CHECK(w->wq.type == ROPEX_Q8_0 && w->wk.type == ROPEX_Q8_0 && w->w_up.type == ROPEX_Q8_0 &&
                  w->w_gate.type == ROPEX_Q8_0 && w->attn_norm.type == ROPEX_F32 && w->ffn_norm.type == ROPEX_F32, "q8 layer types");
            CHECK(w->w_down.type == ROPEX_F16 && w->w_down.cols == 172 && w->w_down.rows == 64, "F16 ffn_down with 344-byte rows");
            CHECK(tensor_maxdiff(&w->wq, &ref->layers[l].wq) < 0.01 && tensor_maxdiff(&w->w_down, &ref->layers[l].w_down) < 1e-3,
                  "q8/f16 tensors close to f32");
        }
        CHECK(tensors_inside(&b, g8, n8), "q8 zero-copy inside");
        CHECK(tensor_maxdiff(&b.tok_embd, &ref->tok_embd) < 0.02, "q8 embedding close");
        ropex_model_free(&b);
    }
    {
        size_t aux = 0;
        void *buf;
        CHECK(ropex_model_gguf_aux_bytes(g32, n32, &aux) == ROPEX_OK && aux >= 512 * sizeof(ropex_token), "gguf aux size");
        buf = malloc(aux);
        CHECK(ropex_model_load_gguf_memory_ex(&b, g32, n32, buf, aux) == ROPEX_OK && all_layers_eq(&a, &b), "gguf into caller memory");
        ropex_model_free(&b);
        CHECK(ropex_model_load_gguf_memory_ex(&b, g32, n32, buf, 100) == ROPEX_ERR_BUFFER, "short gguf aux");
        free(buf);
    }
    ropex_model_free(&a);
}

/* Writer: llama2.c -> GGUF in memory, read back, compared with the llama2.c model and with
   llama.cpp's own files (byte-identical tensors, also for Q8_0 with the F16 ffn_down). */
static void test_writer(ropex_model *ref, const unsigned char *g32, size_t n32, const unsigned char *g8, size_t n8) {
    static const ropex_type types[4] = { ROPEX_F32, ROPEX_F16, ROPEX_Q8_0, ROPEX_Q4_0 };
    int k;
    for (k = 0; k < 4; k++) {
        ropex_gguf_write_config cfg;
        size_t need = 0, got = 0;
        unsigned char *buf;
        ropex_model b;
        ropex_status st;
        walk w;
        memset(&cfg, 0, sizeof(cfg));
        cfg.type = types[k];
        CHECK(ropex_gguf_write(ref, &cfg, NULL, 0, &need) == ROPEX_OK && need > 0, "writer size query");
        buf = (unsigned char *)malloc(need);
        CHECK(ropex_gguf_write(ref, &cfg, buf, need - 1, &got) == ROPEX_ERR_BUFFER, "writer short buffer");
        st = ropex_gguf_write(ref, &cfg, buf, need, &got);
        CHECK(st == ROPEX_OK && got == need, "writer writes %d", (int)types[k]);
        check_spec(buf, need, ropex_type_name(types[k]));
        walk_gguf(&w, buf, need);
        {
            int c = walk_find_kv(&w, "llama.context_length"), ft = walk_find_kv(&w, "general.file_type");
            CHECK(c >= 0 && ld32(buf + w.kv_val_off[c]) == 512, "context_length is the true trained length");
            CHECK(ft >= 0 && ld32(buf + w.kv_val_off[ft]) == (uint32_t)(k == 0 ? 0 : k == 1 ? 1 : k == 2 ? 7 : 2), "file_type");
        }
        st = ropex_model_load_gguf_memory(&b, buf, need);
        CHECK(st == ROPEX_OK, "written gguf loads back: %s", ropex_model_error(&b));
        if (st == ROPEX_OK) {
            int i, same = 1;
            CHECK(b.hp.rope.train_ctx == 512 && b.hp.dim == 64 && b.hp.vocab_size == 512, "read-back hparams");
            if (k == 0) CHECK(all_layers_eq(&b, ref), "f32 round trip is exact");
            CHECK(b.layers[0].attn_norm.type == ROPEX_F32, "norms stay f32");
            if (k >= 2) CHECK(b.layers[2].w_down.type == ROPEX_F16 && b.layers[2].wq.type == types[k], "172-wide rows stay F16");
            CHECK(tensor_maxdiff(&b.layers[3].wv, &ref->layers[3].wv) < (k == 3 ? 0.05 : 0.01), "quantized close");
            for (i = 0; i < 512; i++) same &= b.vocab.tokens[i].score == ref->vocab.tokens[i].score && b.vocab.tokens[i].type == ref->vocab.tokens[i].type;
            CHECK(same && b.vocab.bos_id == 1 && b.vocab.eos_id == 2 && b.vocab.unk_id == 0, "vocab round trip");
            /* against llama.cpp's own files: the same pieces and tensor bytes */
            if (k == 0 || k == 2) {
                ropex_model l;
                if (ropex_model_load_gguf_memory(&l, k == 0 ? g32 : g8, k == 0 ? n32 : n8) == ROPEX_OK) {
                    int pieces = 1;
                    for (i = 0; i < 512; i++)
                        pieces &= l.vocab.tokens[i].len == b.vocab.tokens[i].len &&
                                  !memcmp(l.vocab.tokens[i].text, b.vocab.tokens[i].text, l.vocab.tokens[i].len) &&
                                  l.vocab.tokens[i].type == b.vocab.tokens[i].type;
                    CHECK(pieces, "vocabulary identical to llama.cpp's converter");
                    CHECK(all_layers_eq(&b, &l), "tensors byte-identical to llama.cpp's %s file", k == 0 ? "f32" : "q8_0");
                    ropex_model_free(&l);
                } else CHECK(0, "reload llama.cpp file");
            }
            ropex_model_free(&b);
        }
        free(buf);
    }
    {
        /* GGUF -> GGUF requantization through the same writer */
        ropex_model a, b;
        ropex_gguf_write_config cfg;
        size_t need = 0;
        unsigned char *buf;
        memset(&cfg, 0, sizeof(cfg));
        cfg.type = ROPEX_Q8_0; cfg.context_length = 512;
        if (ropex_model_load_gguf_memory(&a, g32, n32) == ROPEX_OK) {
            ropex_gguf_write(&a, &cfg, NULL, 0, &need);
            buf = (unsigned char *)malloc(need);
            CHECK(ropex_gguf_write(&a, &cfg, buf, need, &need) == ROPEX_OK, "requantize");
            if (ropex_model_load_gguf_memory(&b, buf, need) == ROPEX_OK) {
                ropex_model l;
                CHECK(b.hp.rope.train_ctx == 512, "--train-ctx sets context_length");
                if (ropex_model_load_gguf_memory(&l, g8, n8) == ROPEX_OK) {
                    CHECK(all_layers_eq(&b, &l), "requantized f32 gguf == llama-quantize's q8_0 (bytes)");
                    ropex_model_free(&l);
                }
                ropex_model_free(&b);
            } else CHECK(0, "requantized loads");
            free(buf);
            ropex_model_free(&a);
        }
    }
    {
        /* RoPE scaling metadata survives a write/read: YaRN x4 over a 512 trained context */
        ropex_gguf_write_config cfg;
        ropex_hparams save = ref->hp;
        size_t need = 0;
        unsigned char *buf;
        ropex_model b;
        memset(&cfg, 0, sizeof(cfg));
        ref->hp.rope.scaling = ROPEX_SCALE_YARN; ref->hp.rope.factor = 4.0; ref->hp.file_ctx = 2048;
        ref->hp.rope.base = 50000.0;
        ropex_gguf_write(ref, &cfg, NULL, 0, &need);
        buf = (unsigned char *)malloc(need);
        CHECK(ropex_gguf_write(ref, &cfg, buf, need, &need) == ROPEX_OK, "write yarn");
        ref->hp = save;
        if (ropex_model_load_gguf_memory(&b, buf, need) == ROPEX_OK) {
            CHECK(b.hp.rope.scaling == ROPEX_SCALE_YARN && b.hp.rope.factor == 4.0 && b.hp.rope.train_ctx == 512 &&
                  b.hp.file_ctx == 2048 && b.hp.rope.base == 50000.0, "yarn keys read back (L0 = original_context_length)");
            ropex_model_free(&b);
        } else CHECK(0, "yarn file loads");
        free(buf);
    }
    {
        /* tokenizer.ggml.add_space_prefix = false: written, read back, honoured by encode/decode */
        ropex_gguf_write_config cfg;
        size_t need = 0;
        unsigned char *buf;
        ropex_model b;
        memset(&cfg, 0, sizeof(cfg));
        ref->vocab.no_space_prefix = 1;
        ropex_gguf_write(ref, &cfg, NULL, 0, &need);
        buf = (unsigned char *)malloc(need);
        CHECK(ropex_gguf_write(ref, &cfg, buf, need, &need) == ROPEX_OK, "write no-prefix vocab");
        ref->vocab.no_space_prefix = 0;
        if (ropex_model_load_gguf_memory(&b, buf, need) == ROPEX_OK) {
            int32_t ids[16], ids2[16];
            int n = 0, n2 = 0, k, len = 0;
            char out[64];
            CHECK(b.vocab.no_space_prefix == 1, "add_space_prefix false read back");
            ropex_tokenize(&b.vocab, "Once upon", 9, 1, ids, 16, &n, NULL);
            ropex_tokenize(&ref->vocab, "Once upon", 9, 1, ids2, 16, &n2, NULL);
            CHECK(n > 1 && n2 == 3 && ids[1] != ids2[1], "no dummy space: 'Once' is not the ' Once' piece");
            for (k = 0; k < n; k++) len += ropex_token_to_piece(&b.vocab, k ? ids[k - 1] : -1, ids[k], out + len, 64 - len);
            CHECK(len == 9 && !memcmp(out, "Once upon", 9), "round trip without prefix");
            ropex_model_free(&b);
        } else CHECK(0, "no-prefix file loads");
        free(buf);
    }
    {
        /* hostile vocabularies written through the writer: an empty and a huge piece */
        ropex_gguf_write_config cfg;
        size_t need = 0;
        unsigned char *buf;
        char *huge = (char *)malloc(5000);
        ropex_token save = ref->vocab.tokens[300];
        memset(&cfg, 0, sizeof(cfg));
        memset(huge, 'a', 5000);
        ref->vocab.tokens[300].len = 0;
        ropex_gguf_write(ref, &cfg, NULL, 0, &need);
        buf = (unsigned char *)malloc(need);
        ropex_gguf_write(ref, &cfg, buf, need, &need);
        CHECK(load_gguf(buf, need) == ROPEX_ERR_FORMAT, "empty token rejected");
        free(buf);
        ref->vocab.tokens[300].text = huge; ref->vocab.tokens[300].len = 5000;
        ropex_gguf_write(ref, &cfg, NULL, 0, &need);
        buf = (unsigned char *)malloc(need);
        ropex_gguf_write(ref, &cfg, buf, need, &need);
        CHECK(load_gguf(buf, need) == ROPEX_ERR_FORMAT, "huge token rejected");
        free(buf);
        ref->vocab.tokens[300] = save;
        free(huge);
    }
}

static void test_gguf_hostile(const unsigned char *g, size_t n) {
    walk w;
    unsigned char *c = (unsigned char *)malloc(n + 64);
    size_t i, step;
    int n_err, n_cases, t, k;
    ropex_status st;
    walk_gguf(&w, g, n);
    CHECK(w.ok && w.data_start > 0, "walker reads the q8_0 file");
    if (!w.ok) { free(c); return; }
    CHECK(load_gguf(g, n) == ROPEX_OK, "q8_0 baseline loads");
    /* truncation at every byte up to the data section, then every 997 bytes of data */
    n_err = n_cases = 0;
    step = quick() ? 7 : 1;
    for (i = 0; i < w.data_start; i += step) { n_cases++; n_err += load_gguf_copy(g, i) != ROPEX_OK; }
    for (; i < n - 16; i += 997) { n_cases++; n_err += load_gguf_copy(g, i) != ROPEX_OK; }
    CHECK(n_err == n_cases, "gguf truncations: %d of %d rejected", n_err, n_cases);
    CHECK(load_gguf_copy(g, n - 16) == ROPEX_OK, "the 16 padding bytes after the last tensor are optional");
    /* every byte of the header + KV + tensor-info region corrupted: no crash, and an accepted
       file still has every tensor inside (checked in load_gguf) */
    for (i = 0; i < w.data_start; i += step) {
        memcpy(c, g, n);
        c[i] ^= 0xA5;
        load_gguf(c, n);
        c[i] = 0xFF;
        load_gguf(c, n);
    }
    /* targeted fields */
    n_err = n_cases = 0;
#define HOSTILE(expr, want) do { memcpy(c, g, n); expr; st = load_gguf(c, n); n_cases++; \
        if (st == (want)) n_err++; else printf("  hostile %s -> %d (%s)\n", #expr, st, "want " #want); } while (0)
    HOSTILE(c[0] = 'X', ROPEX_ERR_FORMAT);
    HOSTILE(st32(c + 4, 2), ROPEX_OK);                                   /* v2: same layout */
    HOSTILE(st32(c + 4, 1), ROPEX_ERR_UNSUPPORTED);
    HOSTILE(st32(c + 4, 99), ROPEX_ERR_UNSUPPORTED);
    HOSTILE(st64(c + 8, (uint64_t)1 << 62), ROPEX_ERR_FORMAT);           /* tensor count */
    HOSTILE(st64(c + 16, (uint64_t)1 << 62), ROPEX_ERR_FORMAT);          /* kv count */
    HOSTILE(st64(c + 16, w.n_kv + 1), ROPEX_ERR_FORMAT);
    HOSTILE(st64(c + w.kv_key_len_off[0], (uint64_t)1 << 63), ROPEX_ERR_FORMAT);  /* huge key length */
    HOSTILE(st64(c + w.kv_key_len_off[0], n), ROPEX_ERR_FORMAT);
    HOSTILE(st32(c + w.kv_val_off[0] - 4, 13), ROPEX_ERR_FORMAT);         /* unknown value type */
    k = walk_find_kv(&w, "tokenizer.ggml.tokens");
    HOSTILE(st64(c + w.kv_val_off[k] + 4, (uint64_t)1 << 60), ROPEX_ERR_FORMAT);  /* huge array */
    HOSTILE(st64(c + w.kv_val_off[k] + 4, 511), ROPEX_ERR_FORMAT);       /* one token less: misparse */
    HOSTILE(st64(c + w.kv_val_off[k] + 12, (uint64_t)1 << 40), ROPEX_ERR_FORMAT); /* huge string in array */
    HOSTILE(st64(c + w.kv_val_off[k] + 12, 0), ROPEX_ERR_FORMAT);
    k = walk_find_kv(&w, "tokenizer.ggml.scores");
    HOSTILE(st32(c + w.kv_val_off[k], 5), ROPEX_ERR_FORMAT);             /* scores as int32 */
    k = walk_find_kv(&w, "llama.embedding_length");
    HOSTILE(st32(c + w.kv_val_off[k], 1u << 30), ROPEX_ERR_FORMAT);
    HOSTILE(st32(c + w.kv_val_off[k], 0), ROPEX_ERR_FORMAT);
    HOSTILE(st32(c + w.kv_val_off[k], 65), ROPEX_ERR_FORMAT);            /* not a multiple of heads */
    HOSTILE(st32(c + w.kv_val_off[k], 128), ROPEX_ERR_FORMAT);           /* shapes disagree */
    k = walk_find_kv(&w, "llama.block_count");
    HOSTILE(st32(c + w.kv_val_off[k], 0xFFFFFFFFu), ROPEX_ERR_UNSUPPORTED);
    HOSTILE(st32(c + w.kv_val_off[k], 6), ROPEX_ERR_FORMAT);             /* a layer missing */
    HOSTILE(st32(c + w.kv_val_off[k], 4), ROPEX_ERR_FORMAT);             /* a layer beyond block_count */
    k = walk_find_kv(&w, "llama.attention.head_count_kv");
    HOSTILE(st32(c + w.kv_val_off[k], 3), ROPEX_ERR_FORMAT);
    HOSTILE(st32(c + w.kv_val_off[k], 0), ROPEX_ERR_FORMAT);
    k = walk_find_kv(&w, "llama.attention.head_count");
    HOSTILE(st32(c + w.kv_val_off[k], 0), ROPEX_ERR_FORMAT);
    k = walk_find_kv(&w, "tokenizer.ggml.bos_token_id");
    HOSTILE(st32(c + w.kv_val_off[k], 512), ROPEX_ERR_FORMAT);
    k = walk_find_kv(&w, "general.architecture");
    HOSTILE(c[w.kv_val_off[k] + 8] = 'x', ROPEX_ERR_UNSUPPORTED);
    t = walk_find_t(&w, "blk.1.attn_q.weight");
    HOSTILE(st64(c + w.ti_offset_off[t], (uint64_t)n), ROPEX_ERR_FORMAT);          /* past the end */
    HOSTILE(st64(c + w.ti_offset_off[t], (uint64_t)-32), ROPEX_ERR_FORMAT);        /* wraps */
    HOSTILE(st64(c + w.ti_offset_off[t], w.t_offset[t] + 16), ROPEX_ERR_FORMAT);   /* misaligned */
    HOSTILE(st64(c + w.ti_offset_off[t], (n - w.data_start) / 32 * 32 - 64), ROPEX_ERR_FORMAT); /* overhangs the end */
    HOSTILE(st32(c + w.ti_type_off[t], 3), ROPEX_ERR_UNSUPPORTED);       /* Q4_1 */
    HOSTILE(st32(c + w.ti_type_off[t], 999), ROPEX_ERR_UNSUPPORTED);
    HOSTILE(st32(c + w.ti_ndims_off[t], 5), ROPEX_ERR_FORMAT);
    HOSTILE(st32(c + w.ti_ndims_off[t], 0), ROPEX_ERR_FORMAT);
    HOSTILE(st64(c + w.ti_ne_off[t], (uint64_t)1 << 62), ROPEX_ERR_FORMAT);
    HOSTILE(st64(c + w.ti_ne_off[t] + 8, (uint64_t)1 << 62), ROPEX_ERR_FORMAT);
    HOSTILE(st64(c + w.ti_ne_off[t], 0), ROPEX_ERR_FORMAT);
    HOSTILE((st64(c + w.ti_ne_off[t], 0), st64(c + w.ti_ne_off[t] + 8, (uint64_t)1 << 62)), ROPEX_ERR_FORMAT);
    HOSTILE(st64(c + w.ti_off[t], (uint64_t)1 << 50), ROPEX_ERR_FORMAT);           /* name length */
    t = walk_find_t(&w, "blk.0.ffn_down.weight");
    HOSTILE(st32(c + w.ti_type_off[t], 8), ROPEX_ERR_FORMAT);            /* Q8_0 with 172-wide rows */
    t = walk_find_t(&w, "output_norm.weight");
    HOSTILE(st32(c + w.ti_type_off[t], 1), ROPEX_ERR_UNSUPPORTED);       /* f16 norm */
    HOSTILE(c[w.ti_off[t] + 8] = 'X', ROPEX_ERR_FORMAT);                 /* renamed: missing */
    t = walk_find_t(&w, "blk.4.ffn_up.weight");
    HOSTILE(c[w.ti_off[t] + 8 + 4] = '0', ROPEX_ERR_FORMAT);             /* blk.0.ffn_up twice */
    t = walk_find_t(&w, "token_embd.weight");                            /* same length as: */
    HOSTILE(memcpy(c + w.ti_off[t] + 8, "rope_freqs.weight", 17), ROPEX_ERR_FORMAT);   /* factors: 2-d, 64x512 */
#undef HOSTILE
    CHECK(n_err == n_cases, "targeted hostile gguf fields: %d of %d give the expected error", n_err, n_cases);
    CHECK(ropex_model_load_gguf_memory(NULL, g, n) == ROPEX_ERR_ARG, "NULL model");
    {
        ropex_model m;
        size_t aux;
        CHECK(ropex_model_load_gguf_memory(&m, NULL, 10) == ROPEX_ERR_ARG, "NULL data");
        CHECK(ropex_model_gguf_aux_bytes(g, n, NULL) == ROPEX_ERR_ARG, "NULL aux size");
        CHECK(ropex_model_gguf_aux_bytes(g, 100, &aux) == ROPEX_ERR_FORMAT && aux == 0, "aux size of truncated");
    }
    free(c);
}

int main(void) {
    size_t cn, tn, n32, n8;
    unsigned char *ck = read_all("examples/models/stories260K.bin", &cn);
    unsigned char *tok = read_all("examples/models/tok512.bin", &tn);
    unsigned char *g32 = read_all("tests/data/stories260K-f32.gguf", &n32);
    unsigned char *g8 = read_all("tests/data/stories260K-q8_0.gguf", &n8);
    ropex_model ref;
    CHECK(ck && tok && g32 && g8, "test files present (run from the repository root)");
    if (!ck || !tok || !g32 || !g8) return TEST_END("test_model");
    test_llama2c(ck, cn, tok, tn);
    test_llama2c_hostile(ck, cn, tok, tn);
    test_babyllama();
    if (ropex_model_load_llama2c_memory(&ref, ck, cn, tok, tn) == ROPEX_OK) {
        test_gguf_real(&ref, g32, n32, g8, n8);
        test_writer(&ref, g32, n32, g8, n8);
        ropex_model_free(&ref);
    }
    test_gguf_hostile(g8, n8);
    free(ck); free(tok); free(g32); free(g8);
    return TEST_END("test_model");
}
