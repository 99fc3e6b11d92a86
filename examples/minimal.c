/* The smallest complete use of ropex: load a model, tokenize a prompt, generate 50 tokens greedily.
   Usage: examples/minimal [MODEL [TOKENIZER] [PROMPT]]   (default: the bundled stories260K) */
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "examples/models/stories260K.bin";
    const char *tok = argc > 2 ? argv[2] : argc > 1 ? NULL : "examples/models/tok512.bin";
    const char *prompt = argc > 3 ? argv[3] : "Once upon a time";
    static ropex_model model;            /* big (per-layer tables): keep it off the stack */
    ropex_ctx ctx;
    int32_t ids[256], next;
    int n, i, j;
    char piece[256];

    if (ropex_model_load_file(&model, path, tok) != ROPEX_OK) { fprintf(stderr, "cannot load %s\n", path); return 1; }
    if (ropex_ctx_create(&ctx, &model, NULL) != ROPEX_OK ||       /* NULL: the model's RoPE, full context */
        ropex_tokenize(&model.vocab, prompt, strlen(prompt), 1, ids, 256, &n, NULL) != ROPEX_OK) return 1;
    for (i = 1; i < n; i++)                                          /* echo the prompt (after BOS) */
        fwrite(piece, 1, (size_t)ropex_token_to_piece(&model.vocab, ids[i - 1], ids[i], piece, 256), stdout);
    if (ropex_eval(&ctx, ids, n, NULL, NULL) != ROPEX_OK) return 1; /* the whole prompt in one call */
    for (i = 0; i < 50; i++) {
        for (next = 0, j = 1; j < model.hp.vocab_size; j++)        /* greedy: the most likely token */
            if (ctx.logits[j] > ctx.logits[next]) next = j;
        fwrite(piece, 1, (size_t)ropex_token_to_piece(&model.vocab, ids[n - 1], next, piece, 256), stdout);
        fflush(stdout);
        ids[n - 1] = next;
        if (ropex_eval(&ctx, &next, 1, NULL, NULL) != ROPEX_OK) return 1;
    }
    printf("\n");
    ropex_ctx_free(&ctx);
    ropex_model_free(&model);
    return 0;
}
