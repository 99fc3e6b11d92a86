/* ropex-convert: llama2.c checkpoint + tokenizer.bin -> GGUF, or GGUF -> GGUF (requantize).

     ropex-convert --model ckpt.bin --tokenizer tok.bin --out out.gguf --type f32|f16|q8_0|q4_0 [--train-ctx N]
     ropex-convert --model in.gguf --out out.gguf --type q8_0|q4_0|f16|f32 [--train-ctx N]

   The file follows GGML's docs/gguf.md (v3, alignment 32) with llama.cpp's key and tensor names.
   llama.context_length gets the true trained length: the llama2.c seq_len, the source GGUF's
   trained context, or --train-ctx. Weight matrices whose rows are not a multiple of 32 stay F16
   when quantizing; norms stay F32. */
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr, "usage: ropex-convert --model FILE [--tokenizer FILE] --out FILE --type f32|f16|q8_0|q4_0\n"
                    "                     [--train-ctx N] [--name NAME]\n");
}

int main(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL, *type = "f32", *name = NULL;
    ropex_gguf_write_config cfg;
    ropex_model m;
    ropex_status st;
    size_t need = 0;
    void *buf;
    FILE *f;
    int i;
    memset(&cfg, 0, sizeof(cfg));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) { fprintf(stderr, "ropex-convert: %s needs a value\n", a); usage(); return 2; }
        if (!strcmp(a, "--model")) model = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tok = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--type")) type = argv[++i];
        else if (!strcmp(a, "--name")) name = argv[++i];
        else if (!strcmp(a, "--train-ctx")) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0 || v > 0x7fffffffL) { fprintf(stderr, "ropex-convert: bad --train-ctx\n"); return 2; }
            cfg.context_length = (int)v;
        } else { fprintf(stderr, "ropex-convert: unknown option %s\n", a); usage(); return 2; }
    }
    if (!model || !out) { usage(); return 2; }
    if (!strcmp(type, "f32")) cfg.type = ROPEX_F32;
    else if (!strcmp(type, "f16")) cfg.type = ROPEX_F16;
    else if (!strcmp(type, "q8_0")) cfg.type = ROPEX_Q8_0;
    else if (!strcmp(type, "q4_0")) cfg.type = ROPEX_Q4_0;
    else { fprintf(stderr, "ropex-convert: bad --type %s\n", type); return 2; }
    cfg.name = name;
    st = ropex_model_load_file(&m, model, tok);
    if (st != ROPEX_OK) {
        fprintf(stderr, "ropex-convert: cannot load %s: %s (%s)\n", model, ropex_status_str(st), ropex_model_error(&m));
        return 1;
    }
    if ((st = ropex_gguf_write(&m, &cfg, NULL, 0, &need)) != ROPEX_OK) {
        fprintf(stderr, "ropex-convert: %s\n", ropex_status_str(st)); ropex_model_free(&m); return 1;
    }
    buf = malloc(need ? need : 1);
    if (!buf) { fprintf(stderr, "ropex-convert: out of memory\n"); ropex_model_free(&m); return 1; }
    if ((st = ropex_gguf_write(&m, &cfg, buf, need, &need)) != ROPEX_OK) {
        fprintf(stderr, "ropex-convert: %s\n", ropex_status_str(st)); free(buf); ropex_model_free(&m); return 1;
    }
    f = fopen(out, "wb");
    if (!f || fwrite(buf, 1, need, f) != need || fclose(f) != 0) {
        fprintf(stderr, "ropex-convert: cannot write %s\n", out); free(buf); ropex_model_free(&m); return 1;
    }
    fprintf(stderr, "ropex-convert: wrote %s (%lu bytes, %s, dim %d, %d layers, vocab %d, context_length %d)\n", out,
            (unsigned long)need, type, m.hp.dim, m.hp.n_layers, m.hp.vocab_size,
            cfg.context_length > 0 ? cfg.context_length : m.hp.rope.train_ctx);
    free(buf);
    ropex_model_free(&m);
    return 0;
}
