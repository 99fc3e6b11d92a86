/* ropex.h - v0.1.0 - RoPE-based LLM inference past the trained context, in one C99 header.
   See the licence at the end of this file (MIT).

   MANUAL (TODO integrator: full manual is written at integration time)

   Do this:
       #define ROPEX_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.
*/
#ifndef ROPEX_H
#define ROPEX_H

/* ===================================================================== */
/* >> configuration and common declarations                              */
/* ===================================================================== */
#include <stddef.h>
#include <stdint.h>

#define ROPEX_VERSION_MAJOR 0
#define ROPEX_VERSION_MINOR 1
#define ROPEX_VERSION_PATCH 0
#define ROPEX_VERSION_STRING "0.1.0"

#ifndef ROPEX_API
#  ifdef ROPEX_STATIC
#    define ROPEX_API static
#  else
#    define ROPEX_API extern
#  endif
#endif

#if defined(ROPEX_MALLOC) || defined(ROPEX_FREE)
#  if !defined(ROPEX_MALLOC) || !defined(ROPEX_FREE)
#    error "ropex.h: define both ROPEX_MALLOC and ROPEX_FREE, or neither"
#  endif
#endif

/* Threads exist only on hosted targets with pthreads. */
#if !defined(ROPEX_NO_THREADS) && (defined(_WIN32) || defined(__STDC_NO_THREADS__) && !defined(__unix__))
#  define ROPEX_NO_THREADS
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Enums are append-only. */
typedef enum ropex_status {
    ROPEX_OK = 0,
    ROPEX_ERR_ARG = -1,          /* a bad argument (NULL, out of range, inconsistent) */
    ROPEX_ERR_BUFFER = -2,       /* caller buffer too small */
    ROPEX_ERR_FORMAT = -3,       /* malformed, truncated or hostile input data */
    ROPEX_ERR_UNSUPPORTED = -4,  /* valid but not supported (type, architecture, build option) */
    ROPEX_ERR_IO = -5,           /* file could not be opened or read */
    ROPEX_ERR_NOMEM = -6         /* allocation failed (or ROPEX_NO_MALLOC) */
} ropex_status;

ROPEX_API const char *ropex_status_str(ropex_status s);
ROPEX_API const char *ropex_version(void);

/* Tensor element types: GGML's type ids, so GGUF tensors map directly. */
typedef enum ropex_type {
    ROPEX_F32 = 0,
    ROPEX_F16 = 1,
    ROPEX_Q4_0 = 2,
    ROPEX_Q8_0 = 8
} ropex_type;

#define ROPEX_QK 32  /* weights per Q4_0 / Q8_0 block */

/* ---- threads (implemented in the quant/matmul section) ----
   A small optional pool. Without ROPEX_NO_THREADS it uses pthreads; with it,
   ropex_threads_create accepts only n_threads == 1 and work runs on the caller.
   A NULL pool everywhere means "run on the calling thread". */
typedef struct ropex_threads ropex_threads;
typedef void (*ropex_task_fn)(void *arg, int index, int count);
/* Allocates (needs malloc). n_threads >= 1 counts the calling thread. */
ROPEX_API ropex_status ropex_threads_create(ropex_threads **out, int n_threads);
ROPEX_API void ropex_threads_destroy(ropex_threads *th);
ROPEX_API int ropex_threads_count(const ropex_threads *th);      /* NULL -> 1 */
/* Runs fn(arg, i, n) for i = 0..n-1 (n = pool size), index 0 on the caller; returns when all are done. */
ROPEX_API void ropex_threads_run(ropex_threads *th, ropex_task_fn fn, void *arg);

/* ===================================================================== */
/* >> quant: fp16, Q8_0, Q4_0 blocks (GGML byte-compatible)              */
/* ===================================================================== */
/* Bytes of one row of n elements of type t; 0 if t is unknown or n is not a
   multiple of ROPEX_QK for a block type. */
ROPEX_API size_t ropex_row_bytes(ropex_type t, size_t n);
ROPEX_API const char *ropex_type_name(ropex_type t);   /* "f32", "f16", "q4_0", "q8_0" or NULL */

/* IEEE binary16 <-> binary32, round to nearest even; zero, subnormals, inf, NaN preserved. */
ROPEX_API uint16_t ropex_fp32_to_fp16(float f);
ROPEX_API float ropex_fp16_to_fp32(uint16_t h);

/* Quantize / dequantize n values (one or more rows laid end to end).
   Block types need n % 32 == 0 (else ROPEX_ERR_ARG). GGML reference rounding. */
ROPEX_API ropex_status ropex_quantize(ropex_type t, const float *x, void *dst, size_t n);
ROPEX_API ropex_status ropex_dequantize(ropex_type t, const void *src, float *y, size_t n);

/* ===================================================================== */
/* >> matmul: y = W x for weights of any type                            */
/* ===================================================================== */
/* W: rows x cols, row-major, GGML layout (row r at r*ropex_row_bytes(t, cols)).
   x: n vectors of cols floats (x[i*cols + c]); y: n vectors of rows floats (y[i*rows + r]).
   Integer types quantize x to Q8_0 on the fly into `work`, whose size
   ropex_matmul_work_bytes() gives (may be 0; work may then be NULL).
   Results are bit-identical for every thread count and SIMD path. */
ROPEX_API size_t ropex_matmul_work_bytes(ropex_type t, size_t cols, size_t n);
ROPEX_API ropex_status ropex_matvec(ropex_type t, const void *w, size_t rows, size_t cols,
                                    const float *x, float *y, void *work, ropex_threads *th);
ROPEX_API ropex_status ropex_matmul(ropex_type t, const void *w, size_t rows, size_t cols,
                                    const float *x, size_t n, float *y, void *work, ropex_threads *th);
/* The scalar reference path, always compiled; same contract, one thread. */
ROPEX_API ropex_status ropex_matmul_ref(ropex_type t, const void *w, size_t rows, size_t cols,
                                        const float *x, size_t n, float *y, void *work);
/* Name of the compiled SIMD path: "avx2", "neon", "neon-dotprod" or "scalar". */
ROPEX_API const char *ropex_simd_name(void);

/* ===================================================================== */
/* >> rope: positions, scaling methods, truncation, log-n                */
/* ===================================================================== */
typedef enum ropex_rope_scaling {
    ROPEX_SCALE_NONE = 0,
    ROPEX_SCALE_LINEAR,        /* position interpolation: w_j / factor */
    ROPEX_SCALE_NTK,           /* static NTK: base * factor^(d/(d-2)), factor = alpha */
    ROPEX_SCALE_DYNAMIC,       /* Hugging Face continuous dynamic NTK, factor s (0 = 1) */
    ROPEX_SCALE_DYNAMIC_QWEN,  /* Qwen discrete dynamic NTK: alpha = 2^ceil(log2(L/L0)+1) - 1 */
    ROPEX_SCALE_YARN,          /* YaRN, Hugging Face v5 semantics */
    ROPEX_SCALE_LLAMA3,        /* Llama 3.1 band-wise */
    ROPEX_SCALE_LONGROPE,      /* LongRoPE / Phi-3 short/long factor lists */
    ROPEX_SCALE_GIRAFFE        /* linear + power basis + truncated basis */
} ropex_rope_scaling;

typedef enum ropex_rope_layout {
    ROPEX_LAYOUT_ADJACENT = 0, /* pairs (x[2j], x[2j+1]): llama2.c, GGML NORMAL, Meta LLaMA */
    ROPEX_LAYOUT_HALF = 1      /* pairs (x[j], x[j+d/2]): NEOX, Hugging Face rotate_half */
} ropex_rope_layout;

typedef enum ropex_rope_truncate {
    ROPEX_TRUNC_NONE = 0,
    ROPEX_TRUNC_CLAMP,         /* pairs >= critical dim use position min(p, train_ctx-1) */
    ROPEX_TRUNC_ZERO           /* those coordinates are zeroed in q and k */
} ropex_rope_truncate;

#define ROPEX_ROPE_MAX_PAIRS 256   /* head_dim up to 512 */

/* Zero-initialised = defaults (base 10000, no scaling, full rotary, ADJACENT). */
typedef struct ropex_rope_config {
    int head_dim;                  /* required, even */
    int rot_dims;                  /* rotated dims (partial rotary); 0 = head_dim */
    double base;                   /* runtime base; 0 = 10000 */
    double train_base;             /* the base the model was pre-trained with (critical dim); 0 = base */
    ropex_rope_layout layout;
    int train_ctx;                 /* trained context L0 (YaRN, llama3, LongRoPE, dynamic, clamp, log-n) */
    ropex_rope_scaling scaling;
    double factor;                 /* linear/dynamic/yarn/llama3/longrope s, or NTK alpha; 0 = 1 */
    double yarn_beta_fast;         /* 0 = 32 */
    double yarn_beta_slow;         /* 0 = 1 */
    double attn_factor;            /* YaRN/LongRoPE magnitude override; 0 = computed */
    int yarn_no_truncate;          /* 1 = fractional correction range (gpt-oss) */
    double llama3_low;             /* low_freq_factor, 0 = 1 */
    double llama3_high;            /* high_freq_factor, 0 = 4 */
    const float *longrope_short;   /* rot_dims/2 factors each (caller memory, must outlive tables) */
    const float *longrope_long;
    double giraffe_power;          /* power basis exponent, 0 = off */
    int giraffe_truncate;          /* truncated basis context length, 0 = off */
    ropex_rope_truncate truncate;  /* combinable with any scaling */
    int logn;                      /* 1 = q *= max(1, ln(p+1)/ln(logn_ctx)) */
    int logn_ctx;                  /* 0 = train_ctx */
} ropex_rope_config;

/* Checks a config; on error *msg (if msg) points to a static message. */
ROPEX_API ropex_status ropex_rope_validate(const ropex_rope_config *cfg, const char **msg);

/* A frequency table: everything needed to rotate at one sequence length.
   Plain data (no pointers into the config), safe to copy. */
typedef struct ropex_rope_table {
    int head_dim, rot_dims, n_pairs;
    ropex_rope_layout layout;
    double inv_freq[ROPEX_ROPE_MAX_PAIRS];   /* angle of pair j at position p = p * inv_freq[j] */
    int32_t clamp_pos[ROPEX_ROPE_MAX_PAIRS]; /* -1 = no clamp, else position min(p, clamp_pos[j]) */
    unsigned char zero[ROPEX_ROPE_MAX_PAIRS];/* 1 = coordinates of this pair zeroed in q and k */
    float mscale;                            /* magnitude m applied to q and k (logits m^2) */
    double logn_ctx;                         /* 0 = log-n off */
    int64_t length;                          /* sequence length this table was built for */
    int length_dependent;                    /* 1 when dynamic NTK / LongRoPE switch apply */
} ropex_rope_table;

/* Builds the table for a sequence of `length` tokens (length-dependent methods
   use it; others ignore it; 0 = train_ctx). Validates the config. */
ROPEX_API ropex_status ropex_rope_table_init(ropex_rope_table *t, const ropex_rope_config *cfg, int64_t length);

/* Rotate n_heads vectors of head_dim floats (head h at x + h*head_stride) at position pos.
   ropex_rope_apply_q: rotation, mscale, zero mask and log-n factor (query side).
   ropex_rope_apply_k: rotation, mscale and zero mask (key side).
   Angles are formed and range-reduced in double. */
ROPEX_API void ropex_rope_apply_q(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos);
ROPEX_API void ropex_rope_apply_k(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos);
/* A batch: n_tokens tokens at token_stride floats apart, positions pos[i]. */
ROPEX_API void ropex_rope_apply_batch(const ropex_rope_table *t, float *x, int n_tokens, size_t token_stride,
                                      int n_heads, size_t head_stride, const int64_t *pos, int is_query);
/* Exact inverse of ropex_rope_apply_k at pos (un-rotate, divide by mscale; zeroed coordinates stay 0). */
ROPEX_API void ropex_rope_unapply_k(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos);
/* Pure re-rotation, no magnitude: turns a key rotated by table `from` at position p_from into one
   rotated by table `to` at p_to (same delta per pair if from == to). Used by the KV cache. */
ROPEX_API void ropex_rope_rerotate(const ropex_rope_table *from, int64_t p_from, const ropex_rope_table *to,
                                   int64_t p_to, float *x, int n_heads, size_t head_stride);
/* log-n query factor at position pos: max(1, ln(pos+1)/ln(logn_ctx)), 1 when off. */
ROPEX_API float ropex_rope_logn(const ropex_rope_table *t, int64_t pos);

/* ===================================================================== */
/* >> scaling laws (Liu et al., ICLR 2024), all in double                */
/* ===================================================================== */
typedef enum ropex_regime {
    ROPEX_REGIME_UNCHANGED = 0,    /* base == b0 and T_tune == T_train: limit ~ T_train */
    ROPEX_REGIME_LARGE_BASE,       /* base > critical base: hard limit T_extra (16b) */
    ROPEX_REGIME_TUNING_BOUND,     /* b1 < base <= critical base: limit ~ T_tune */
    ROPEX_REGIME_SMALL_BASE        /* base <= b1 = 2 T_tune/pi: no hard limit */
} ropex_regime;

/* d_extra = 2*ceil((d/2)*log_b0(T_train/2pi)), clamped to [0, d]. */
ROPEX_API int ropex_critical_dim(int d, double train_ctx, double b0);
/* 2pi * base^(crit_dim/d) (ceiling form of Theorem 2). */
ROPEX_API double ropex_extrapolation_limit(double base, int d, int crit_dim);
/* b0^(ln(T_tune/2pi)/ln(T_train/2pi)) (16a). */
ROPEX_API double ropex_critical_base(double train_ctx, double tune_ctx, double b0);
/* (T/2pi)^(d/crit_dim): smallest base whose (16b) limit reaches target. */
ROPEX_API double ropex_base_for_target(double target, int d, int crit_dim);
/* 2T/pi, T/pi, T/2pi (16d). */
ROPEX_API void ropex_small_base_thresholds(double tune_ctx, double out[3]);
/* min(d, 2*ceil((d/2)*log_base(T_tune/2pi))) (16c). */
ROPEX_API int ropex_updated_critical_dim(double base, int d, double tune_ctx);
/* Regime of running/tuning at `base` a model pre-trained at (b0, train_ctx), tuned at tune_ctx
   (0 = train_ctx); *limit (if non-NULL) gets the usable length, or 0 for "no hard limit". */
ROPEX_API ropex_regime ropex_scaling_regime(int d, double b0, double train_ctx, double base,
                                            double tune_ctx, double *limit);
ROPEX_API const char *ropex_regime_name(ropex_regime r);

/* ===================================================================== */
/* >> kv cache: ring buffer with attention sinks, caller memory          */
/* ===================================================================== */
typedef enum ropex_pos_policy {
    ROPEX_POS_TEXT = 0,   /* keys keep their text positions */
    ROPEX_POS_CACHE = 1   /* StreamingLLM: positions are cache slots (sinks, then the ring in age order) */
} ropex_pos_policy;

typedef struct ropex_kv_config {
    int n_layers, n_kv_heads, head_dim;
    int capacity;                /* tokens kept per layer, sinks included */
    int n_sink;                  /* first tokens pinned (attention sinks), < capacity */
    ropex_type k_type, v_type;   /* ROPEX_F32 (default), ROPEX_F16, ROPEX_Q8_0; v_type may be ROPEX_Q4_0 */
    ropex_pos_policy positions;
} ropex_kv_config;

/* The cache. Public so it can live on the stack or in static memory; treat the fields as private. */
typedef struct ropex_kv {
    ropex_kv_config cfg;
    ropex_rope_config rope;      /* the active RoPE config */
    ropex_rope_table table;      /* table the stored keys are rotated with (when stored rotated) */
    int keys_raw;                /* 1 = keys stored before RoPE and rotated at use */
    int64_t n_past;              /* tokens appended so far (next text position) */
    size_t k_row_bytes, v_row_bytes;
    unsigned char *k, *v;        /* [layer][slot] rows of n_kv_heads*head_dim */
    int64_t *slot_pos;           /* text position held by each slot, -1 = empty */
    void *user_buf;
} ropex_kv;

/* Bytes the cache needs in caller memory (0 if cfg is invalid). */
ROPEX_API size_t ropex_kv_bytes(const ropex_kv_config *cfg);
ROPEX_API ropex_status ropex_kv_init(ropex_kv *kv, const ropex_kv_config *cfg, const ropex_rope_config *rope,
                                     void *buf, size_t bytes);
/* Runtime RoPE change (new base, scaling): cached keys follow, queries and keys share one frequency set. */
ROPEX_API ropex_status ropex_kv_set_rope(ropex_kv *kv, const ropex_rope_config *rope);
ROPEX_API void ropex_kv_reset(ropex_kv *kv);
ROPEX_API int ropex_kv_n_kept(const ropex_kv *kv);   /* tokens currently held */

/* ===================================================================== */
/* >> attention: streaming (online softmax) over the cache               */
/* ===================================================================== */
/* Processes a chunk of n_tokens new tokens at text positions kv->n_past .. kv->n_past+n_tokens-1
   for one layer: stores k and v (raw, before RoPE: n_tokens x n_kv_heads x head_dim each),
   rotates q (n_tokens x n_heads x head_dim, raw; used as scratch and overwritten) and writes
   out (n_tokens x n_heads x head_dim). Causal: each query sees exactly the keys a
   token-by-token run would hold at its step. n_heads must be a multiple of n_kv_heads.
   Call it for every layer with the same chunk, then ropex_kv_advance(kv, n_tokens). */
ROPEX_API ropex_status ropex_attention(ropex_kv *kv, int layer, int n_heads, float *q, const float *k,
                                       const float *v, int n_tokens, float *out, ropex_threads *th);
ROPEX_API ropex_status ropex_kv_advance(ropex_kv *kv, int n_tokens);

/* ===================================================================== */
/* >> model: GGUF / llama2.c loaders, vocabulary                          */
/* ===================================================================== */
#define ROPEX_MAX_LAYERS 256

typedef struct ropex_tensor {
    ropex_type type;
    int64_t cols;            /* row length (GGUF ne[0]) */
    int64_t rows;            /* GGUF ne[1] (1 for vectors) */
    const void *data;        /* GGML layout, little-endian bytes */
} ropex_tensor;

typedef struct ropex_layer_weights {
    ropex_tensor attn_norm;  /* [dim] f32 */
    ropex_tensor wq, wk, wv; /* [dim] -> [n_heads*head_dim], [n_kv_heads*head_dim] */
    ropex_tensor wo;         /* [n_heads*head_dim] -> [dim] */
    ropex_tensor ffn_norm;   /* [dim] f32 */
    ropex_tensor w_gate;     /* w1: [dim] -> [hidden] */
    ropex_tensor w_down;     /* w2: [hidden] -> [dim] */
    ropex_tensor w_up;       /* w3: [dim] -> [hidden] */
} ropex_layer_weights;

typedef struct ropex_hparams {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size;
    int file_ctx;            /* the file's context_length (GGUF) or seq_len (llama2.c) */
    float rms_eps;
    ropex_rope_config rope;  /* from the file (base, dims, layout, scaling, train_ctx) */
} ropex_hparams;

typedef struct ropex_token {
    const char *text;        /* bytes of the piece (not NUL-terminated), spaces as in the source vocab */
    uint32_t len;
    float score;
    uint8_t type;            /* 1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte (GGUF ids) */
} ropex_token;

typedef struct ropex_vocab {
    int n_tokens;
    int bos_id, eos_id, unk_id;  /* -1 = none */
    int byte_fallback;           /* byte tokens <0x00>..<0xFF> present */
    int space_is_u2581;          /* pieces spell spaces as U+2581 (GGUF llama vocab) */
    int byte_token[256];         /* id of <0xXX>, or -1 */
    ropex_token *tokens;         /* n_tokens entries (in the model's aux memory) */
    int32_t *sorted;             /* ids sorted by piece bytes, for encoding (aux memory) */
} ropex_vocab;

typedef enum ropex_model_format { ROPEX_FORMAT_GGUF = 1, ROPEX_FORMAT_LLAMA2C = 2 } ropex_model_format;

typedef struct ropex_model {
    ropex_model_format format;
    ropex_hparams hp;
    ropex_tensor tok_embd;       /* [dim] x vocab rows */
    ropex_tensor output_norm;    /* [dim] */
    ropex_tensor output;         /* classifier [dim] x vocab rows (== tok_embd when shared) */
    ropex_layer_weights layers[ROPEX_MAX_LAYERS];
    ropex_vocab vocab;
    /* memory the model owns (freed by ropex_model_free) */
    void *file_data; size_t file_size; int file_owned;  /* whole file bytes */
    void *aux; size_t aux_bytes; int aux_owned;          /* vocab tables, converted tensors */
} ropex_model;

/* Zero-copy from memory (data must stay valid; 32-byte aligned for zero-copy on little-endian
   hosts, otherwise tensors are copied into aux memory). Allocates the aux tables with malloc. */
ROPEX_API ropex_status ropex_model_load_gguf_memory(ropex_model *m, const void *data, size_t size);
/* The same into caller memory: first ask how much (aux_bytes), then pass a buffer. */
ROPEX_API ropex_status ropex_model_gguf_aux_bytes(const void *data, size_t size, size_t *aux_bytes);
ROPEX_API ropex_status ropex_model_load_gguf_memory_ex(ropex_model *m, const void *data, size_t size,
                                                       void *aux, size_t aux_bytes);
/* llama2.c checkpoint + tokenizer.bin, from memory (same ownership rules). */
ROPEX_API ropex_status ropex_model_load_llama2c_memory(ropex_model *m, const void *ckpt, size_t ckpt_size,
                                                       const void *tok, size_t tok_size);
#ifndef ROPEX_NO_STDIO
/* From files: GGUF (tokenizer_path NULL) or llama2.c (.bin + tokenizer.bin); detected by magic. */
ROPEX_API ropex_status ropex_model_load_file(ropex_model *m, const char *path, const char *tokenizer_path);
#endif
ROPEX_API void ropex_model_free(ropex_model *m);
/* Optional detail for the last load error (static or model-owned string). */
ROPEX_API const char *ropex_model_error(const ropex_model *m);

/* ===================================================================== */
/* >> tokenizer: sentencepiece-style BPE with scores and byte fallback   */
/* ===================================================================== */
/* Encodes text (len bytes) into ids; add_bos prepends BOS. Writes at most max_ids ids and sets
   *n_ids to the count needed (ROPEX_ERR_BUFFER if larger than max_ids). `work` is scratch of
   ropex_tokenize_work_bytes(len) bytes (NULL: allocated internally when malloc is available). */
ROPEX_API size_t ropex_tokenize_work_bytes(const ropex_vocab *v, size_t len);
ROPEX_API ropex_status ropex_tokenize(const ropex_vocab *v, const char *text, size_t len, int add_bos,
                                      int32_t *ids, int max_ids, int *n_ids, void *work);
/* The bytes a token prints after token `prev` (handles byte tokens, U+2581, leading space after BOS).
   Writes up to cap bytes to buf and returns the length (may be 0). */
ROPEX_API int ropex_token_to_piece(const ropex_vocab *v, int prev, int id, char *buf, int cap);

/* ===================================================================== */
/* >> sampler                                                             */
/* ===================================================================== */
typedef struct ropex_sampler {
    float temperature;           /* 0 = greedy */
    int top_k;                   /* 0 = off */
    float top_p;                 /* 0 or 1 = off */
    uint64_t rng;                /* state, seeded by ropex_sampler_init */
} ropex_sampler;
ROPEX_API void ropex_sampler_init(ropex_sampler *s, float temperature, int top_k, float top_p, uint64_t seed);
/* work: ropex_sampler_work_bytes(n_vocab) bytes of scratch. Returns the token id (or -1 on bad input). */
ROPEX_API size_t ropex_sampler_work_bytes(int n_vocab);
ROPEX_API int ropex_sample(ropex_sampler *s, const float *logits, int n_vocab, void *work);


/* ===================================================================== */
/* >> context: forward pass                                               */
/* ===================================================================== */
typedef struct ropex_ctx_config {
    ropex_rope_config rope;      /* head_dim == 0: use the model's RoPE settings */
    int kv_size;                 /* cache capacity in tokens, sinks included; 0 = model file ctx */
    int n_sink;                  /* attention sinks (0 = none) */
    ropex_type kv_type;          /* F32 (default), F16, Q8_0 */
    ropex_pos_policy positions;
    int max_batch;               /* tokens per internal prompt chunk; 0 = 64 */
} ropex_ctx_config;

typedef struct ropex_ctx {
    const ropex_model *model;
    ropex_ctx_config cfg;
    ropex_kv kv;
    int max_batch;
    float *x, *xb, *xb2, *hb, *hb2, *q, *k, *v, *att_out, *logits; /* activations (caller memory) */
    void *work; size_t work_bytes;                               /* matmul quantization scratch */
    void *mem; int mem_owned;
} ropex_ctx;

ROPEX_API size_t ropex_ctx_bytes(const ropex_model *m, const ropex_ctx_config *cfg);
ROPEX_API ropex_status ropex_ctx_init(ropex_ctx *c, const ropex_model *m, const ropex_ctx_config *cfg,
                                      void *mem, size_t bytes);
/* Convenience: allocates once with malloc. */
ROPEX_API ropex_status ropex_ctx_create(ropex_ctx *c, const ropex_model *m, const ropex_ctx_config *cfg);
ROPEX_API void ropex_ctx_free(ropex_ctx *c);
/* Runs n tokens at the next positions. logits_all: NULL, or n x vocab floats for every token's
   logits. The last token's logits are always in c->logits. Same results for any chunking/threads. */
ROPEX_API ropex_status ropex_eval(ropex_ctx *c, const int32_t *tokens, int n, float *logits_all, ropex_threads *th);
ROPEX_API int64_t ropex_ctx_n_past(const ropex_ctx *c);
#ifdef __cplusplus
}
#endif
#endif /* ROPEX_H */

#if defined(ROPEX_IMPLEMENTATION) && !defined(ROPEX__IMPLEMENTED)
#define ROPEX__IMPLEMENTED

/* ===================================================================== */
/* >> implementation: common                                             */
/* ===================================================================== */
#include <string.h>
#include <math.h>
#include <float.h>
#include <limits.h>

#ifndef ROPEX_NO_MALLOC
#  ifndef ROPEX_MALLOC
#    include <stdlib.h>
#    define ROPEX_MALLOC(sz) malloc(sz)
#    define ROPEX_FREE(p) free(p)
#  endif
#endif

#ifndef ROPEX_ASSERT
#  define ROPEX_ASSERT(x) ((void)0)
#endif

/* Internal allocation helpers: NULL when the build has no heap. */
static void *ropex__malloc(size_t n) {
#ifdef ROPEX_NO_MALLOC
    (void)n; return NULL;
#else
    return n ? ROPEX_MALLOC(n) : NULL;
#endif
}
static void ropex__free(void *p) {
#ifdef ROPEX_NO_MALLOC
    (void)p;
#else
    if (p) ROPEX_FREE(p);
#endif
}

ROPEX_API const char *ropex_status_str(ropex_status s) {
    switch (s) {
    case ROPEX_OK: return "ok";
    case ROPEX_ERR_ARG: return "bad argument";
    case ROPEX_ERR_BUFFER: return "buffer too small";
    case ROPEX_ERR_FORMAT: return "malformed input data";
    case ROPEX_ERR_UNSUPPORTED: return "unsupported";
    case ROPEX_ERR_IO: return "i/o error";
    case ROPEX_ERR_NOMEM: return "out of memory";
    }
    return "unknown status";
}

ROPEX_API const char *ropex_version(void) { return ROPEX_VERSION_STRING; }
#endif /* ROPEX_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License

Copyright (c) 2026 the ropex authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
