/* Tokenizer (encode against llama2.c run.c's algorithm and known ids, round trips, byte fallback,
   unknown characters, decode rules) and sampler (greedy, top-k, top-p, temperature, seeds). */
#include "../ropex.h"
#define TEST_FILE_HELPERS
#include "test_util.h"
#include <stdlib.h>
#include <string.h>


static int encode(const ropex_vocab *v, const char *s, size_t len, int bos, int32_t **ids) {
    int n = 0;
    ropex_status st = ropex_tokenize(v, s, len, bos, NULL, 0, &n, NULL);
    if (st != ROPEX_OK && st != ROPEX_ERR_BUFFER) return -1;
    *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (ropex_tokenize(v, s, len, bos, *ids, n, &n, NULL) != ROPEX_OK) return -1;
    return n;
}
static int expect_ids(const ropex_vocab *v, const char *s, const int32_t *want, int nwant) {
    int32_t *ids = NULL;
    int n = encode(v, s, strlen(s), 1, &ids), ok = n == nwant, i;
    for (i = 0; ok && i < n; i++) ok = ids[i] == want[i];
    if (!ok) { printf("  got:"); for (i = 0; i < n; i++) printf(" %d", ids[i]); printf("\n"); }
    free(ids);
    return ok;
}
/* decode(ids) as llama2.c prints: each piece after the previous token */
static size_t decode(const ropex_vocab *v, const int32_t *ids, int n, char *out, size_t cap) {
    size_t len = 0;
    int i;
    char piece[2048];
    for (i = 0; i < n; i++) {
        int k = ropex_token_to_piece(v, i ? ids[i - 1] : -1, ids[i], piece, (int)sizeof(piece));
        if (len + (size_t)k > cap) return (size_t)-1;
        memcpy(out + len, piece, (size_t)k);
        len += (size_t)k;
    }
    return len;
}

/* ---- run.c's encode, O(n^2), as an independent reference ---- */
typedef struct { const char *s; uint32_t len; int id; } ref_entry;
static int ref_cmp(const void *a, const void *b) {
    const ref_entry *x = (const ref_entry *)a, *y = (const ref_entry *)b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}
static int ref_lookup(const ref_entry *tab, int n, const char *s, uint32_t len) {
    ref_entry key, *e;
    key.s = s; key.len = len; key.id = 0;
    e = (ref_entry *)bsearch(&key, tab, (size_t)n, sizeof(ref_entry), ref_cmp);
    return e ? e->id : -1;
}
static int ref_encode(const ropex_vocab *v, const char *text, size_t len, int32_t *out) {
    ref_entry *tab = (ref_entry *)malloc(sizeof(ref_entry) * (size_t)v->n_tokens);
    char *buf = (char *)malloc(2 * (size_t)v->max_token_len + 8);
    int i, n = 0;
    size_t p = 0;
    for (i = 0; i < v->n_tokens; i++) { tab[i].s = v->tokens[i].text; tab[i].len = v->tokens[i].len; tab[i].id = i; }
    qsort(tab, (size_t)v->n_tokens, sizeof(ref_entry), ref_cmp);
    out[n++] = v->bos_id;
    if (len) out[n++] = ref_lookup(tab, v->n_tokens, " ", 1);
    while (p < len) {
        size_t q = p + 1;
        int id;
        while (q < len && ((unsigned char)text[q] & 0xC0) == 0x80 && q - p < 4) q++;
        id = ref_lookup(tab, v->n_tokens, text + p, (uint32_t)(q - p));
        if (id >= 0) out[n++] = id;
        else { size_t k; for (k = p; k < q; k++) out[n++] = (unsigned char)text[k] + 3; }
        p = q;
    }
    for (;;) {
        float best = -1e10f;
        int bi = -1, bid = -1;
        for (i = 0; i + 1 < n; i++) {
            const ropex_token *a = &v->tokens[out[i]], *b = &v->tokens[out[i + 1]];
            int id;
            memcpy(buf, a->text, a->len); memcpy(buf + a->len, b->text, b->len);
            id = ref_lookup(tab, v->n_tokens, buf, a->len + b->len);
            if (id >= 0 && v->tokens[id].score > best) { best = v->tokens[id].score; bi = i; bid = id; }
        }
        if (bi < 0) break;
        out[bi] = bid;
        memmove(out + bi + 1, out + bi + 2, sizeof(int32_t) * (size_t)(n - bi - 2));
        n--;
    }
    free(tab); free(buf);
    return n;
}

static void test_known(const ropex_vocab *v, const char *what) {
    static const int32_t once[] = { 1, 403, 407, 261, 378 };
    static const int32_t lily[] = { 1, 317, 269, 368, 302, 263, 377, 267, 265, 282, 295, 433, 426, 13, 434, 260, 422, 394, 261, 370, 400, 428, 443 };
    static const int32_t two[] = { 1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419 };
    static const int32_t cafe[] = { 1, 280, 412, 431, 485, 410, 229, 155, 152, 297, 412, 198, 178, 360 };
    static const int32_t a[] = { 1, 261 };
    /* ids from llama2.c run.c's encode on tok512 (stories260K) */
    CHECK(expect_ids(v, "Once upon a time", once, 5), "%s: 'Once upon a time' = 1 403 407 261 378", what);
    CHECK(expect_ids(v, "Lily and Ben went to the park.\nThey saw a big dog!", lily, 23), "%s: newline via <0x0A>", what);
    CHECK(expect_ids(v, "  two  spaces", two, 12), "%s: runs of spaces", what);
    CHECK(expect_ids(v, "caf\xc3\xa9 \xe2\x98\x95 na\xc3\xafve", cafe, 14), "%s: byte fallback for UTF-8", what);
    CHECK(expect_ids(v, "a", a, 2), "%s: one char", what);
}

static void test_tokenizer_api(const ropex_vocab *v) {
    int32_t ids[8];
    int n = -1;
    size_t wb = ropex_tokenize_work_bytes(v, 16);
    void *work = malloc(wb);
    char buf[16];
    CHECK(ropex_tokenize(v, "", 0, 1, ids, 8, &n, NULL) == ROPEX_OK && n == 1 && ids[0] == 1, "empty text -> BOS only");
    CHECK(ropex_tokenize(v, NULL, 0, 0, ids, 8, &n, NULL) == ROPEX_OK && n == 0, "empty without BOS");
    CHECK(ropex_tokenize(v, "Once upon a time", 16, 1, ids, 3, &n, work) == ROPEX_ERR_BUFFER && n == 5 && ids[2] == 407,
          "short id buffer: ERR_BUFFER, count, prefix written");
    CHECK(ropex_tokenize(v, "Once upon a time", 16, 0, ids, 8, &n, work) == ROPEX_OK && n == 4 && ids[0] == 403, "caller work, no BOS");
    CHECK(ropex_tokenize(NULL, "x", 1, 1, ids, 8, &n, NULL) == ROPEX_ERR_ARG, "NULL vocab");
    CHECK(ropex_tokenize(v, NULL, 3, 1, ids, 8, &n, NULL) == ROPEX_ERR_ARG, "NULL text");
    CHECK(ropex_tokenize(v, "x", 1, 1, NULL, 8, &n, NULL) == ROPEX_ERR_ARG, "NULL ids with room");
    /* decode rules */
    CHECK(ropex_token_to_piece(v, 1, 403, buf, 16) == 4 && !memcmp(buf, "Once", 4), "leading space stripped after BOS");
    CHECK(ropex_token_to_piece(v, 403, 407, buf, 16) == 5 && !memcmp(buf, " upon", 5), "space kept otherwise");
    CHECK(ropex_token_to_piece(v, 5, 13, buf, 16) == 1 && buf[0] == '\n', "<0x0A> -> newline");
    CHECK(ropex_token_to_piece(v, 5, 3, buf, 16) == 1 && buf[0] == 0, "<0x00> -> byte 0");
    CHECK(ropex_token_to_piece(v, 5, 1, buf, 16) == 0 && ropex_token_to_piece(v, 5, 2, buf, 16) == 0, "BOS/EOS print nothing");
    CHECK(ropex_token_to_piece(v, 5, 407, buf, 2) == 2 && !memcmp(buf, " u", 2), "cap truncates");
    CHECK(ropex_token_to_piece(v, 5, 512, buf, 16) == 0 && ropex_token_to_piece(v, 5, -1, buf, 16) == 0, "bad ids");
    free(work);
}

static void test_roundtrip(const ropex_vocab *v, const char *text, size_t len, const char *what) {
    int32_t *ids = NULL;
    char *out = (char *)malloc(len + 16);
    int n = encode(v, text, len, 1, &ids), i, inrange = 1;
    size_t dl;
    CHECK(n > 1, "%s: encodes", what);
    for (i = 0; i < n; i++) inrange &= ids[i] >= 0 && ids[i] < v->n_tokens;
    CHECK(inrange, "%s: ids in range", what);
    dl = n > 0 ? decode(v, ids, n, out, len + 16) : 0;
    CHECK(dl == len && memcmp(out, text, len) == 0, "%s: decode(encode(x)) == x (%lu bytes, %d ids)", what, (unsigned long)len, n);
    free(ids); free(out);
}

static void test_vs_reference(const ropex_vocab *v, const char *text, size_t len, const char *what) {
    int32_t *ids = NULL, *ref = (int32_t *)malloc(sizeof(int32_t) * (len * 4 + 4));
    int n = encode(v, text, len, 1, &ids), nr = ref_encode(v, text, len, ref), same = n == nr, i;
    for (i = 0; same && i < n; i++) same = ids[i] == ref[i];
    CHECK(same, "%s: heap BPE == run.c's O(n^2) merge loop on %lu bytes (%d vs %d ids)", what, (unsigned long)len, n, nr);
    free(ids); free(ref);
}

static void test_tok105(void) {
    ropex_model m;
    size_t n;
    unsigned char *text = read_all("tests/data/tinystories_val_tok105safe_head.txt", &n);
    int32_t *ids = NULL;
    int k, i, zeros = 0;
    static const int32_t hello[] = { 1, 3, 33, 4, 14, 14, 7, 25, 3, 17, 7, 13, 14, 11, 36 };
    if (ropex_model_load_file(&m, "examples/models/babyllama105_model5000.bin", "examples/models/tok105.bin") != ROPEX_OK) {
        CHECK(0, "babyllama105 loads"); free(text); return;
    }
    CHECK(expect_ids(&m.vocab, "Hello, world!", hello, 15), "tok105: run.c ids");
    /* newline and emoji have no piece and there are no byte tokens: unk (0), one per character */
    k = encode(&m.vocab, "a\nb \xf0\x9f\x98\x80!", 9, 1, &ids);
    for (i = 0; i < k; i++) zeros += ids[i] == 0;
    CHECK(k == 8 && ids[3] == 0 && ids[6] == 0 && zeros == 2, "tok105: unknown chars -> unk id 0 (k=%d)", k);
    free(ids);
    if (text) {
        size_t len = n < 32768 ? n : 32768;
        if (quick()) len = 4096;
        test_roundtrip(&m.vocab, (const char *)text, len, "tok105 round trip");
    } else CHECK(0, "tok105-safe text present");
    ropex_model_free(&m);
    free(text);
}

/* ---- sampler ---- */
static void test_sampler(void) {
    ropex_sampler s, s2;
    float logits[1000];
    size_t wb = ropex_sampler_work_bytes(1000);
    void *work = malloc(wb);
    int i, t, ok, counts[4] = { 0, 0, 0, 0 }, N = quick() ? 4000 : 40000;
    uint64_t x = 12345;
    float p4[4] = { 0.1f, 0.2f, 0.3f, 0.4f }, l4[4];
    CHECK(wb >= 1000 * sizeof(float), "work size");
    for (i = 0; i < 4; i++) l4[i] = logf(p4[i]);
    /* greedy: argmax, lowest id on ties, NaN never wins */
    ropex_sampler_init(&s, 0.0f, 0, 0.0f, 1);
    for (i = 0; i < 1000; i++) logits[i] = (float)(i % 37);
    CHECK(ropex_sample(&s, logits, 1000, work) == 36, "greedy: lowest id of the tied maxima");
    logits[5] = NAN; logits[700] = 99.0f;
    CHECK(ropex_sample(&s, logits, 1000, NULL) == 700, "greedy ignores NaN");
    CHECK(ropex_sample(&s, logits, 0, work) == -1 && ropex_sample(NULL, logits, 10, work) == -1 &&
          ropex_sample(&s, NULL, 10, work) == -1, "bad arguments -> -1");
    /* top-k = 1 and a tiny top-p are greedy at any temperature */
    ok = 1;
    for (t = 0; t < 200; t++) {
        int g;
        for (i = 0; i < 1000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; logits[i] = (float)(x % 1000) / 100.0f; }
        ropex_sampler_init(&s, 0.0f, 0, 0.0f, 1); g = ropex_sample(&s, logits, 1000, work);
        ropex_sampler_init(&s, 1.5f, 1, 0.0f, (uint64_t)t); ok &= ropex_sample(&s, logits, 1000, work) == g;
        ropex_sampler_init(&s, 1.0f, 0, 1e-6f, (uint64_t)t); ok &= ropex_sample(&s, logits, 1000, work) == g;
        ropex_sampler_init(&s, 0.8f, 50, 1e-6f, (uint64_t)t); ok &= ropex_sample(&s, logits, 1000, work) == g;
    }
    CHECK(ok, "top-k 1 / top-p 1e-6 == greedy");
    /* the same seed gives the same sequence; another seed another one */
    ropex_sampler_init(&s, 1.0f, 40, 0.9f, 42); ropex_sampler_init(&s2, 1.0f, 40, 0.9f, 42);
    for (i = 0; i < 1000; i++) logits[i] = (float)((i * 7919) % 1000) / 200.0f;
    ok = 1;
    for (t = 0; t < 500; t++) ok &= ropex_sample(&s, logits, 1000, work) == ropex_sample(&s2, logits, 1000, work);
    CHECK(ok, "same seed, same draws");
    ropex_sampler_init(&s2, 1.0f, 40, 0.9f, 43);
    ok = 0;
    for (t = 0; t < 100; t++) ok += ropex_sample(&s, logits, 1000, work) != ropex_sample(&s2, logits, 1000, work);
    CHECK(ok > 10, "different seeds differ (%d of 100)", ok);
    /* distributions: plain, temperature 0.5 (p^2), top-k 2, top-p 0.5 */
    {
        double want[4][4] = { { 0.1, 0.2, 0.3, 0.4 }, { 1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0 },
                              { 0, 0, 3 / 7.0, 4 / 7.0 }, { 0, 0, 3 / 7.0, 4 / 7.0 } };
        float temps[4] = { 1.0f, 0.5f, 1.0f, 1.0f }, tps[4] = { 0, 0, 0, 0.5f };
        int ks[4] = { 0, 0, 2, 0 }, c;
        for (c = 0; c < 4; c++) {
            double worst = 0;
            memset(counts, 0, sizeof(counts));
            ropex_sampler_init(&s, temps[c], ks[c], tps[c], 7 + (uint64_t)c);
            for (t = 0; t < N; t++) { int id = ropex_sample(&s, l4, 4, work); if (id >= 0 && id < 4) counts[id]++; }
            for (i = 0; i < 4; i++) { double e = fabs(counts[i] / (double)N - want[c][i]); if (e > worst) worst = e; }
            CHECK(worst < (quick() ? 0.04 : 0.012), "distribution case %d within tolerance (worst %.4f)", c, worst);
            CHECK(want[c][0] > 0 || counts[0] + counts[1] == 0, "case %d: excluded tokens never drawn", c);
        }
        /* top-p 0.62 over (0.05, 0.05, 0.3, 0.6): the nucleus needs 0.6 + 0.3, drawn 2:1 */
        {
            float l5[4];
            l5[0] = logf(0.05f); l5[1] = logf(0.05f); l5[2] = logf(0.3f); l5[3] = logf(0.6f);
            memset(counts, 0, sizeof(counts));
            ropex_sampler_init(&s, 1.0f, 0, 0.62f, 99);
            for (t = 0; t < N; t++) { int id = ropex_sample(&s, l5, 4, work); if (id >= 0 && id < 4) counts[id]++; }
            CHECK(counts[0] + counts[1] == 0 && fabs(counts[2] / (double)N - 1 / 3.0) < (quick() ? 0.04 : 0.012),
                  "top-p nucleus measured on the whole distribution (%d %d %d %d)", counts[0], counts[1], counts[2], counts[3]);
        }
    }
    free(work);
}

int main(void) {
    ropex_model l2c, gg;
    size_t n;
    unsigned char *text = read_all("tests/data/tinystories_val_head.txt", &n);
    size_t len = n < 32768 ? n : 32768;
    int have_l2c = ropex_model_load_file(&l2c, "examples/models/stories260K.bin", "examples/models/tok512.bin") == ROPEX_OK;
    int have_gg = ropex_model_load_file(&gg, "tests/data/stories260K-f32.gguf", NULL) == ROPEX_OK;
    CHECK(text && have_l2c && have_gg, "test files present (run from the repository root)");
    if (quick()) len = 4096;
    if (have_l2c) {
        test_known(&l2c.vocab, "tok512");
        test_tokenizer_api(&l2c.vocab);
        if (text) {
            test_roundtrip(&l2c.vocab, (const char *)text, len, "tok512 round trip");
            test_vs_reference(&l2c.vocab, (const char *)text, quick() ? 1024 : 6000, "tok512");
        }
    }
    if (have_gg) {
        char buf[16];
        test_known(&gg.vocab, "gguf vocab");
        CHECK(ropex_token_to_piece(&gg.vocab, 1, 403, buf, 16) == 4 && !memcmp(buf, "Once", 4), "gguf: U+2581 stripped after BOS");
        CHECK(ropex_token_to_piece(&gg.vocab, 9, 403, buf, 16) == 5 && !memcmp(buf, " Once", 5), "gguf: U+2581 -> space");
        if (text) test_roundtrip(&gg.vocab, (const char *)text, len, "gguf vocab round trip");
        /* a stray continuation byte after a space must not swallow the space's U+2581 */
        test_roundtrip(&gg.vocab, "was very \xa4trong. \xe2 x\x80", 21, "gguf vocab, invalid UTF-8");
        test_roundtrip(&l2c.vocab, "was very \xa4trong. \xe2 x\x80", 21, "tok512, invalid UTF-8");
        if (have_l2c && text) {
            /* both spellings of the same vocabulary give the same ids */
            int32_t *a = NULL, *b = NULL;
            int na = encode(&l2c.vocab, (const char *)text, len, 1, &a), nb = encode(&gg.vocab, (const char *)text, len, 1, &b);
            CHECK(na == nb && na > 0 && memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0, "llama2.c and GGUF vocab agree on the text");
            free(a); free(b);
        }
    }
    test_tok105();
    test_sampler();
    if (have_l2c) ropex_model_free(&l2c);
    if (have_gg) ropex_model_free(&gg);
    free(text);
    return TEST_END("test_tokenizer");
}
