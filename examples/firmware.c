/* ropex on a microcontroller: no heap, no stdio, no threads.
   1. A tiny LLaMA-shaped model lives in static arrays (random weights from a fixed seed, quantized to
      Q8_0 and Q4_0 (feed-forward gate/up) with ropex_quantize at start-up, as a real firmware would link pre-quantized bytes), its
      context in a static buffer. It runs a prompt and decodes past the KV ring's capacity (streaming
      with attention sinks), twice.
   2. The same path a firmware with a linked-in model file takes: a llama2.c checkpoint and its
      tokenizer.bin as byte arrays (generated here at start-up), loaded with
      ropex_model_load_llama2c_memory_ex into static memory, a prompt tokenized, greedy decoding.
   Returns 0 when every logit is finite and both runs of each part are identical.

   Host:       cc -std=c99 examples/firmware.c -lm && ./a.out
   Cortex-M4:  arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -std=c99 -O2 \
                 --specs=rdimon.specs examples/firmware.c -lm     (add -DROPEX_FIRMWARE_PRINT for output) */
#define ROPEX_NO_MALLOC
#define ROPEX_NO_STDIO
#define ROPEX_NO_THREADS
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"

#ifdef ROPEX_FIRMWARE_PRINT
#  include <stdio.h>
#  define FW_PRINT(...) printf(__VA_ARGS__)
#else
#  define FW_PRINT(...) ((void)0)
#endif

/* Model shape: every row a multiple of 32 so every matrix can be Q8_0. */
#define FW_DIM 64
#define FW_HIDDEN 160
#define FW_LAYERS 2
#define FW_HEADS 4
#define FW_KV_HEADS 2
#define FW_HEAD_DIM 16
#define FW_VOCAB 96
#define FW_KV_DIM (FW_KV_HEADS * FW_HEAD_DIM)
#define FW_Q8_ROW(cols) ((cols) / 32 * 34)                /* bytes of a Q8_0 row */
#define FW_Q4_ROW(cols) ((cols) / 32 * 18)                /* bytes of a Q4_0 row */

#define FW_KV_SIZE 24                                     /* ring of 20 tokens + 4 sinks */
#define FW_SINKS 4
#define FW_STEPS 40                                       /* decode steps (past the ring) */

typedef struct fw_layer_bytes {
    unsigned char wq[FW_DIM * FW_Q8_ROW(FW_DIM)], wk[FW_KV_DIM * FW_Q8_ROW(FW_DIM)];
    unsigned char wv[FW_KV_DIM * FW_Q8_ROW(FW_DIM)], wo[FW_DIM * FW_Q8_ROW(FW_DIM)];
    unsigned char gate[FW_HIDDEN * FW_Q4_ROW(FW_DIM)], up[FW_HIDDEN * FW_Q4_ROW(FW_DIM)];   /* Q4_0 */
    unsigned char down[FW_DIM * FW_Q8_ROW(FW_HIDDEN)];
    unsigned char attn_norm[FW_DIM * 4], ffn_norm[FW_DIM * 4];   /* F32, little-endian bytes */
} fw_layer_bytes;

static fw_layer_bytes fw_layers[FW_LAYERS];
static unsigned char fw_embd[FW_VOCAB * FW_Q8_ROW(FW_DIM)];
static unsigned char fw_out_norm[FW_DIM * 4];
static float fw_scratch[FW_HIDDEN * FW_DIM];              /* float weights before quantization */
static ropex_model fw_model;
static unsigned char fw_ctx_mem[48 * 1024];     /* ropex_ctx_bytes says ~31 KB */
static float fw_first[FW_VOCAB];

static uint32_t fw_rng = 0x12345678u;
static float fw_rand(void) {                              /* xorshift32, uniform in [-1, 1) */
    fw_rng ^= fw_rng << 13; fw_rng ^= fw_rng >> 17; fw_rng ^= fw_rng << 5;
    return (float)(fw_rng >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

/* rows x cols random weights of scale ~1/sqrt(cols), quantized to type t into dst. */
static int fw_tensor(ropex_tensor *t, ropex_type type, void *dst, int cols, int rows, float center) {
    size_t i, n = (size_t)cols * (size_t)rows;
    float s = 1.0f / sqrtf((float)cols);
    for (i = 0; i < n; i++) fw_scratch[i] = center + (center != 0.0f ? 0.1f : s) * fw_rand();
    if (ropex_quantize(type, fw_scratch, dst, n) != ROPEX_OK) return -1;
    t->type = type; t->cols = cols; t->rows = rows; t->data = dst;
    return 0;
}

static int fw_build_model(void) {
    ropex_model *m = &fw_model;
    int l, bad = 0;
    memset(m, 0, sizeof *m);
    m->format = ROPEX_FORMAT_GGUF;
    m->hp.dim = FW_DIM; m->hp.hidden_dim = FW_HIDDEN; m->hp.n_layers = FW_LAYERS;
    m->hp.n_heads = FW_HEADS; m->hp.n_kv_heads = FW_KV_HEADS; m->hp.head_dim = FW_HEAD_DIM;
    m->hp.vocab_size = FW_VOCAB; m->hp.file_ctx = 16; m->hp.rms_eps = 1e-5f;
    m->hp.rope.head_dim = FW_HEAD_DIM; m->hp.rope.base = 10000.0; m->hp.rope.train_ctx = 16;
    m->vocab.bos_id = m->vocab.eos_id = m->vocab.unk_id = -1;
    bad |= fw_tensor(&m->tok_embd, ROPEX_Q8_0, fw_embd, FW_DIM, FW_VOCAB, 0.0f);
    bad |= fw_tensor(&m->output_norm, ROPEX_F32, fw_out_norm, FW_DIM, 1, 1.0f);
    m->output = m->tok_embd;                              /* shared classifier, as llama2.c models */
    for (l = 0; l < FW_LAYERS; l++) {
        ropex_layer_weights *w = &m->layers[l];
        fw_layer_bytes *b = &fw_layers[l];
        bad |= fw_tensor(&w->attn_norm, ROPEX_F32, b->attn_norm, FW_DIM, 1, 1.0f);
        bad |= fw_tensor(&w->ffn_norm, ROPEX_F32, b->ffn_norm, FW_DIM, 1, 1.0f);
        bad |= fw_tensor(&w->wq, ROPEX_Q8_0, b->wq, FW_DIM, FW_DIM, 0.0f);
        bad |= fw_tensor(&w->wk, ROPEX_Q8_0, b->wk, FW_DIM, FW_KV_DIM, 0.0f);
        bad |= fw_tensor(&w->wv, ROPEX_Q8_0, b->wv, FW_DIM, FW_KV_DIM, 0.0f);
        bad |= fw_tensor(&w->wo, ROPEX_Q8_0, b->wo, FW_DIM, FW_DIM, 0.0f);
        bad |= fw_tensor(&w->w_gate, ROPEX_Q4_0, b->gate, FW_DIM, FW_HIDDEN, 0.0f);
        bad |= fw_tensor(&w->w_up, ROPEX_Q4_0, b->up, FW_DIM, FW_HIDDEN, 0.0f);
        bad |= fw_tensor(&w->w_down, ROPEX_Q8_0, b->down, FW_HIDDEN, FW_DIM, 0.0f);
    }
    return bad;
}

/* One run: a 6-token prompt in one call, then greedy decoding. Returns a checksum of every logit
   (order-sensitive), or a negative value on error or a non-finite logit. */
static double fw_run(ropex_ctx *ctx, float *first_logits) {
    static const int32_t prompt[6] = {1, 17, 42, 5, 77, 30};
    double sum = 0.0;
    int step, i;
    int32_t next;
    ropex_ctx_reset(ctx);
    if (ropex_eval(ctx, prompt, 6, NULL, NULL) != ROPEX_OK) return -1.0;
    for (step = 0; step < FW_STEPS; step++) {
        const float *lg = ctx->logits;
        next = 0;
        for (i = 0; i < FW_VOCAB; i++) {
            if (!(lg[i] == lg[i]) || lg[i] > 1e30f || lg[i] < -1e30f) return -2.0;
            sum += (double)lg[i] * (double)(i + 1 + step);
            if (lg[i] > lg[next]) next = i;
        }
        if (step == 0 && first_logits) memcpy(first_logits, lg, sizeof(float) * FW_VOCAB);
        FW_PRINT("%d ", (int)next);
        if (ropex_eval(ctx, &next, 1, NULL, NULL) != ROPEX_OK) return -3.0;
    }
    FW_PRINT("\n");
    return fabs(sum) + 1.0;
}

/* ---- part 2: llama2.c checkpoint + tokenizer.bin bytes in memory ---- */
#define L2_DIM 32
#define L2_HIDDEN 64
#define L2_LAYERS 2
#define L2_HEADS 4
#define L2_KV_HEADS 2
#define L2_SEQ 16
#define L2_HD (L2_DIM / L2_HEADS)
#define L2_CHARS " abcdefghijklmnopqrstuvwxyz.,"
#define L2_VOCAB (3 + 29)
#define L2_FLOATS (L2_VOCAB * L2_DIM + L2_LAYERS * (2 * L2_DIM + 2 * L2_DIM * L2_DIM + \
                   2 * L2_HD * L2_KV_HEADS * L2_DIM + 3 * L2_HIDDEN * L2_DIM) + L2_DIM + L2_SEQ * L2_HD)

static unsigned char l2_ckpt[28 + 4 * L2_FLOATS];
static unsigned char l2_tok[4 + L2_VOCAB * 8 + 16 + 29];
static unsigned char l2_aux[16 * 1024];
static unsigned char l2_tok_work[4096];
static ropex_model l2_model;

static void l2_put32(unsigned char *p, uint32_t v) {    /* little-endian, whatever the host */
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static void l2_putf(unsigned char *p, float f) { uint32_t u; memcpy(&u, &f, 4); l2_put32(p, u); }

static size_t l2_build(void) {
    static const int32_t hdr[7] = {L2_DIM, L2_HIDDEN, L2_LAYERS, L2_HEADS, L2_KV_HEADS, L2_VOCAB, L2_SEQ};
    static const char *const special[3] = {"<unk>", "\n<s>\n", "\n</s>\n"};
    size_t i, off = 0;
    int k;
    for (k = 0; k < 7; k++) l2_put32(l2_ckpt + 4 * k, (uint32_t)hdr[k]);
    /* weights in llama2.c order; the two RMSNorm blocks per layer and the final one are where
       a real file has its norm weights: close to 1 */
    for (i = 0; i < L2_FLOATS; i++) l2_putf(l2_ckpt + 28 + 4 * i, 0.3f * fw_rand());
    {
        size_t o = L2_VOCAB * L2_DIM, per = L2_DIM * L2_DIM;
        for (i = 0; i < (size_t)L2_LAYERS * L2_DIM; i++) l2_putf(l2_ckpt + 28 + 4 * (o + i), 1.0f + 0.1f * fw_rand());
        o += (size_t)L2_LAYERS * (L2_DIM + 2 * per + 2 * L2_HD * L2_KV_HEADS * L2_DIM);
        for (i = 0; i < (size_t)L2_LAYERS * L2_DIM; i++) l2_putf(l2_ckpt + 28 + 4 * (o + i), 1.0f + 0.1f * fw_rand());
        o += (size_t)L2_LAYERS * (L2_DIM + 3 * L2_HIDDEN * L2_DIM);
        for (i = 0; i < L2_DIM; i++) l2_putf(l2_ckpt + 28 + 4 * (o + i), 1.0f);
    }
    /* tokenizer.bin: max_token_length, then (score, length, bytes) per token */
    l2_put32(l2_tok, 7);
    off = 4;
    for (k = 0; k < L2_VOCAB; k++) {
        const char *piece = k < 3 ? special[k] : L2_CHARS + (k - 3);
        uint32_t len = k < 3 ? (uint32_t)strlen(piece) : 1;
        l2_putf(l2_tok + off, k < 3 ? 0.0f : -(float)k);
        l2_put32(l2_tok + off + 4, len);
        memcpy(l2_tok + off + 8, piece, len);
        off += 8 + len;
    }
    return off;
}

/* Tokenizes a prompt, decodes greedily through a 12-token ring (4 sinks); returns a checksum of
   the generated ids and logits, or a negative value on error. */
static double l2_run(ropex_ctx *ctx) {
    static const char prompt[] = "once upon a time";
    int32_t ids[32], next;
    int n = 0, step, i;
    double sum = 0.0;
    char piece[16];
    ropex_ctx_reset(ctx);
    if (ropex_tokenize_work_bytes(&l2_model.vocab, sizeof prompt - 1) > sizeof l2_tok_work) return -1.0;
    if (ropex_tokenize(&l2_model.vocab, prompt, sizeof prompt - 1, 1, ids, 32, &n, l2_tok_work) != ROPEX_OK || n < 2)
        return -2.0;
    if (ropex_eval(ctx, ids, n, NULL, NULL) != ROPEX_OK) return -3.0;
    for (step = 0; step < 24; step++) {
        next = 0;
        for (i = 0; i < L2_VOCAB; i++) {
            float v = ctx->logits[i];
            if (!(v == v) || v > 1e30f || v < -1e30f) return -4.0;
            sum += (double)v * (double)(i + 1);
            if (v > ctx->logits[next]) next = i;
        }
        sum += (double)next * 1000.0;
        i = ropex_token_to_piece(&l2_model.vocab, ids[n - 1], next, piece, (int)sizeof piece - 1);
        piece[i > 0 ? i : 0] = 0;
        FW_PRINT("%s", piece);
        ids[n - 1] = next;
        if (ropex_eval(ctx, &next, 1, NULL, NULL) != ROPEX_OK) return -5.0;
    }
    FW_PRINT("\n");
    return fabs(sum) + 1.0;
}

static int l2_main(void) {
    static unsigned char mem[32 * 1024];
    size_t tok_size = l2_build(), aux = 0;
    ropex_ctx ctx;
    ropex_ctx_config cfg;
    ropex_status st;
    double a, b;
    st = ropex_model_llama2c_aux_bytes(l2_ckpt, sizeof l2_ckpt, l2_tok, tok_size, &aux);
    if (st != ROPEX_OK || aux > sizeof l2_aux) { FW_PRINT("llama2.c aux: %s\n", ropex_status_str(st)); return 11; }
    st = ropex_model_load_llama2c_memory_ex(&l2_model, l2_ckpt, sizeof l2_ckpt, l2_tok, tok_size, l2_aux, sizeof l2_aux);
    if (st != ROPEX_OK) { FW_PRINT("llama2.c load: %s\n", ropex_status_str(st)); return 12; }
    memset(&cfg, 0, sizeof cfg);
    cfg.kv_size = 12; cfg.n_sink = 4; cfg.positions = ROPEX_POS_CACHE; cfg.max_batch = 4;
    st = ropex_ctx_init(&ctx, &l2_model, &cfg, mem, sizeof mem);
    if (st != ROPEX_OK) { FW_PRINT("llama2.c ctx_init: %s\n", ropex_status_str(st)); return 13; }
    FW_PRINT("llama2.c model from memory: aux %u bytes, context %u bytes\n", (unsigned)aux,
             (unsigned)ropex_ctx_bytes(&l2_model, &cfg));
    a = l2_run(&ctx);
    b = l2_run(&ctx);
    if (a <= 0.0 || b <= 0.0) { FW_PRINT("llama2.c run failed (%d, %d)\n", (int)a, (int)b); return 14; }
    if (a != b) { FW_PRINT("llama2.c runs differ\n"); return 15; }
    return 0;
}

int main(void) {
    ropex_ctx ctx;
    ropex_ctx_config cfg;
    ropex_status st;
    size_t need;
    double a, b;
    if (fw_build_model() != 0) { FW_PRINT("build model failed\n"); return 1; }
    memset(&cfg, 0, sizeof cfg);
    cfg.kv_size = FW_KV_SIZE;
    cfg.n_sink = FW_SINKS;
    cfg.positions = ROPEX_POS_CACHE;
    cfg.kv_type = ROPEX_Q8_0;                             /* K/V rows of 32 values: one Q8_0 block */
    cfg.max_batch = 8;
    need = ropex_ctx_bytes(&fw_model, &cfg);
    FW_PRINT("ropex %s (%s): context %u bytes\n", ropex_version(), ropex_simd_name(), (unsigned)need);
    if (need == 0 || need > sizeof fw_ctx_mem) { FW_PRINT("context does not fit\n"); return 2; }
    st = ropex_ctx_init(&ctx, &fw_model, &cfg, fw_ctx_mem, sizeof fw_ctx_mem);
    if (st != ROPEX_OK) { FW_PRINT("ctx_init: %s\n", ropex_status_str(st)); return 3; }
    a = fw_run(&ctx, fw_first);
    b = fw_run(&ctx, NULL);
    /* integers: newlib-nano printf has no %f */
    FW_PRINT("checksums %lu %lu, n_past %d\n", (unsigned long)fmod(a * 1e3, 4e9), (unsigned long)fmod(b * 1e3, 4e9),
             (int)ropex_ctx_n_past(&ctx));
    if (a <= 0.0 || b <= 0.0) { FW_PRINT("run failed (%d, %d)\n", (int)a, (int)b); return 4; }
    if (a != b || ropex_ctx_n_past(&ctx) != 6 + FW_STEPS) { FW_PRINT("runs differ\n"); return 5; }
    {
        int rc = l2_main();
        if (rc != 0) return rc;
    }
    FW_PRINT("firmware: ok\n");
    return 0;
}
