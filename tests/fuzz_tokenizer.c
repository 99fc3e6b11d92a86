/* libFuzzer target for the tokenizer and sampler: encode any bytes with the three vocabularies
   (llama2.c tok512, its GGUF spelling, tok105 without byte tokens); ids must be in range, and with
   byte fallback decode(encode(x)) must give x back exactly. Built by tests/fuzz.sh (run from the
   repository root: it loads the bundled models). */
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include <stdlib.h>
#include <string.h>

static ropex_model g_models[3];

static int memmem_u2581(const uint8_t *d, size_t n) {
    size_t i;
    for (i = 0; i + 3 <= n; i++) if (d[i] == 0xE2 && d[i + 1] == 0x96 && d[i + 2] == 0x81) return 1;
    return 0;
}
static int g_loaded = -1;

static void load(void) {
    g_loaded = ropex_model_load_file(&g_models[0], "examples/models/stories260K.bin", "examples/models/tok512.bin") == ROPEX_OK &&
               ropex_model_load_file(&g_models[1], "tests/data/stories260K-f32.gguf", NULL) == ROPEX_OK &&
               ropex_model_load_file(&g_models[2], "examples/models/babyllama105_model5000.bin", "examples/models/tok105.bin") == ROPEX_OK;
    if (!g_loaded) abort();   /* run from the repository root */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const ropex_vocab *v;
    int32_t *ids;
    int n = 0, i, max;
    char *out, piece[64];
    size_t len = 0;
    ropex_status st;
    if (g_loaded < 0) load();
    if (size < 1) return 0;
    v = &g_models[data[0] % 3].vocab;
    data++; size--;
    max = 3 * (int)size + 3;   /* a space is U+2581: up to 3 byte tokens */
    ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)max);
    out = (char *)malloc(size + 1);
    st = ropex_tokenize(v, (const char *)data, size, 1, ids, max, &n, NULL);
    if (st != ROPEX_OK || n < 1 || n > max) abort();
    for (i = 0; i < n; i++) {
        int k;
        if (ids[i] < 0 || ids[i] >= v->n_tokens) abort();
        k = ropex_token_to_piece(v, i ? ids[i - 1] : -1, ids[i], piece, (int)sizeof(piece));
        if (k < 0 || k > (int)sizeof(piece)) abort();
        if (len + (size_t)k > size) break;
        memcpy(out + len, piece, (size_t)k);
        len += (size_t)k;
    }
    /* exact round trip with byte fallback, unless the text spells U+2581 itself (it decodes as a
       space in a sentencepiece vocabulary, as in llama.cpp) */
    if (v->byte_fallback && !(v->space_is_u2581 && size >= 3 && memmem_u2581(data, size)) &&
        (len != size || (size && memcmp(out, data, size) != 0))) abort();
    /* the sampler on the input read as logits */
    if (size >= 8) {
        ropex_sampler s;
        int nv = (int)(size / 4), id;
        float *lg = (float *)malloc(sizeof(float) * (size_t)nv);
        memcpy(lg, data, sizeof(float) * (size_t)nv);
        ropex_sampler_init(&s, (float)(data[0] % 4) * 0.5f, data[1] % 5, (float)(data[2] % 11) / 10.0f, data[3]);
        id = ropex_sample(&s, lg, nv, NULL);
        if (id < 0 || id >= nv) abort();
        free(lg);
    }
    free(ids); free(out);
    return 0;
}
