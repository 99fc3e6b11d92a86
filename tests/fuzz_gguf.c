/* libFuzzer target for the model loaders (GGUF and llama2.c): any input must load cleanly or
   fail with an error, never crash or read outside the buffer. Built by tests/fuzz.sh. */
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include <stdlib.h>
#include <string.h>

static void exercise(ropex_model *m, const uint8_t *data, size_t size) {
    /* an accepted model must be usable: every tensor inside the buffer, vocabulary usable */
    const ropex_tensor *t[3];
    int i, n = 0;
    int32_t ids[64];
    char piece[64];
    size_t need = 0;
    float row[64];
    t[0] = &m->tok_embd; t[1] = &m->output; t[2] = &m->layers[m->hp.n_layers - 1].w_down;
    for (i = 0; i < 3; i++) {
        const uint8_t *p = (const uint8_t *)t[i]->data;
        size_t b = ropex_row_bytes(t[i]->type, (size_t)t[i]->cols) * (size_t)t[i]->rows;
        if (!p || p < data || p + b > data + size) abort();
        if (t[i]->cols >= 32 && t[i]->cols % 32 == 0) ropex_dequantize(t[i]->type, p, row, 32);
    }
    ropex_tokenize(&m->vocab, "Once upon a time \xe2\x98\x95", 19, 1, ids, 64, &n, NULL);
    for (i = 0; i < n && i < 64; i++) {
        if (ids[i] < 0 || ids[i] >= m->vocab.n_tokens) abort();
        ropex_token_to_piece(&m->vocab, i ? ids[i - 1] : -1, ids[i], piece, 64);
    }
    ropex_gguf_write(m, NULL, NULL, 0, &need);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ropex_model m;
    size_t aux = 0;
    if (ropex_model_load_gguf_memory(&m, data, size) == ROPEX_OK) { exercise(&m, data, size); ropex_model_free(&m); }
    ropex_model_gguf_aux_bytes(data, size, &aux);
    /* llama2.c: the first 4 bytes say where the checkpoint ends and the tokenizer starts */
    if (size >= 4) {
        size_t split = (size_t)(data[0] | (data[1] << 8) | (data[2] << 16)) % (size - 3);
        if (ropex_model_load_llama2c_memory(&m, data + 4, split, data + 4 + split, size - 4 - split) == ROPEX_OK) {
            exercise(&m, data + 4, split);
            ropex_model_free(&m);
        }
    }
    return 0;
}
