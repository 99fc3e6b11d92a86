/* ropex.h - v0.1.0 - RoPE-based LLM inference past the trained context, in one C99 header.
   Public domain-style freedom under the MIT licence at the end of this file.

   WHAT IT IS
   ----------
   One stb-style header that gives any C or C++ program:
     - quantized matrix kernels (GGML-compatible F32/F16/Q8_0/Q4_0 blocks; scalar, AVX2+FMA, NEON and
       NEON dot-product paths chosen at compile time; an optional pthreads pool),
     - RoPE with a runtime base and every mainstream scaling method (linear, NTK, dynamic NTK in the
       Hugging Face and Qwen forms, YaRN, llama3, LongRoPE, Giraffe), the critical-dimension truncation
       and log-n attention scaling of Liu et al., "Scaling Laws of RoPE-based Extrapolation" (ICLR 2024),
       and that paper's scaling-law calculator,
     - streaming (online-softmax) attention over a ring-buffer KV cache in caller memory, with attention
       sinks, TEXT or CACHE (StreamingLLM) positions and F32/F16/Q8_0 storage,
     - a LLaMA-family runner: GGUF v3 and llama2.c loaders, sentencepiece-style BPE tokenizer, sampler.
   Dependencies: libc and libm; pthreads unless ROPEX_NO_THREADS.

   USAGE
   -----
   In exactly one C or C++ file:
       #define ROPEX_IMPLEMENTATION
       #include "ropex.h"
   Elsewhere just #include "ropex.h". Link with -lm (and -pthread unless ROPEX_NO_THREADS).

       static ropex_model m;                       // large (per-layer tables): keep it off the stack
       ropex_ctx ctx; ropex_ctx_config cc; ropex_sampler s; int32_t ids[256]; int n, i; char piece[64];
       if (ropex_model_load_file(&m, "model.gguf", NULL) != ROPEX_OK) return 1;   // or .bin + tokenizer.bin
       ropex_model_repack(&m);                     // optional: Q4_0/Q8_0 in the SIMD layout (same logits)
       memset(&cc, 0, sizeof cc);                  // zero = defaults: the model's RoPE, its trained context
       cc.kv_size = 512; cc.n_sink = 4; cc.positions = ROPEX_POS_CACHE;   // a ring: stream forever
       // cc.rope = m.hp.rope; cc.rope.base = 40000; ...  to change RoPE at run time
       if (ropex_ctx_create(&ctx, &m, &cc) != ROPEX_OK) return 1;         // or ropex_ctx_bytes + ropex_ctx_init
       ropex_tokenize(&m.vocab, "Once upon a time", 16, 1, ids, 256, &n, NULL);
       ropex_eval(&ctx, ids, n, NULL, NULL);       // whole prompt; logits of the last token in ctx.logits
       ropex_sampler_init(&s, 0.8f, 40, 0.95f, 42);
       for (i = 0; i < 100; i++) {
           int32_t next = ropex_sample(&s, ctx.logits, m.hp.vocab_size, NULL);
           fwrite(piece, 1, ropex_token_to_piece(&m.vocab, ids[n-1], next, piece, 64), stdout);
           ids[n-1] = next; ropex_eval(&ctx, &next, 1, NULL, NULL);
       }
       ropex_ctx_free(&ctx); ropex_model_free(&m);
   examples/minimal.c is a complete program; examples/generate.c the full command line.

   CONFIGURATION MACROS (define before including the implementation)
   ----------------------------------------------------------------
   | macro                     | default     | effect                                               |
   |---------------------------|-------------|------------------------------------------------------|
   | ROPEX_IMPLEMENTATION      | off         | emit the implementation in this translation unit     |
   | ROPEX_STATIC              | off         | every function static (private copy per TU)          |
   | ROPEX_NO_THREADS          | off         | no <pthread.h>; pools have one thread (the caller)   |
   | ROPEX_NO_SIMD             | off         | scalar kernels only                                  |
   | ROPEX_NO_STDIO            | off         | no <stdio.h>, no file loading (load from memory)     |
   | ROPEX_NO_MALLOC           | off         | no heap at all: every buffer is caller memory        |
   | ROPEX_MALLOC(n)/ROPEX_FREE(p) | malloc/free | your allocator (define both or neither)         |
   | ROPEX_NO_MMAP             | off         | read model files into the heap instead of mmap       |
   | ROPEX_ASSERT(x)           | no-op       | internal invariant checks (debug builds)             |
   SIMD is chosen at compile time from the compiler's macros: __AVX2__ + __FMA__ (x86-64, build with
   -mavx2 -mfma -mf16c), __ARM_NEON (armv7 and aarch64), __ARM_FEATURE_DOTPROD (e.g.
   -march=armv8.2-a+dotprod or -mcpu=cortex-a76 for a Raspberry Pi 5). There is no runtime dispatch.
   The kernels (quant, matmul, rope, attention, kv) build for Cortex-M4 with
   ROPEX_NO_THREADS ROPEX_NO_STDIO ROPEX_NO_MALLOC.

   MEMORY
   ------
   Caller memory is the main path: every stateful object has a size query and an init into a
   caller buffer (ropex_kv_bytes + ropex_kv_init, ropex_ctx_bytes + ropex_ctx_init); allocating
   inits (ropex_ctx_create, ropex_model_load_file) are conveniences on top. Nothing allocates inside
   the token loop; the KV cache never grows (a full ring overwrites its oldest non-sink token).

   ERRORS, UNTRUSTED INPUT
   -----------------------
   Functions return ropex_status (ropex_status_str names it). The library never prints, exits or
   aborts. Model files are untrusted input: every field is read as little-endian with bounds and
   overflow checks, so truncated or hostile files give ROPEX_ERR_FORMAT, never a crash.

   THREADS
   -------
   No globals. A loaded ropex_model is read-only and may be shared by any number of threads; a
   ropex_ctx, ropex_kv, ropex_sampler or ropex_threads pool belongs to one thread at a time.
   The library starts threads only inside ropex_threads_create.

   DETERMINISM
   -----------
   No -ffast-math. Rows are split across threads so that each output is computed entirely by one
   thread: results are bit-identical for any thread count. Integer block sums are bit-identical
   between the scalar reference (ropex_matmul_ref, always compiled) and every SIMD path. Prompt
   chunking changes logits by float rounding only (within 1e-4). RoPE angles are formed and range
   reduced in double, so rotations at position 1,000,000 match a float64 reference to 1e-5.

   WHAT IT DOES NOT DO
   -------------------
   No GPU, no training, no architectures other than the LLaMA family (RMSNorm, RoPE, SwiGLU,
   grouped-query attention), no tensor types other than F32/F16/Q8_0/Q4_0, no runtime CPU dispatch,
   no network or model download. Quantized K/V in the cache is lossy by design (bounds in tests).

   VERSION: 0.1.0 (ROPEX_VERSION_* macros, ropex_version()).
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
     /* a private copy per translation unit: functions the TU does not call are not warned about */
#    if defined(__GNUC__) || defined(__clang__)
#      define ROPEX_API static __attribute__((unused))
#    else
#      define ROPEX_API static
#    endif
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
    ROPEX_Q8_0 = 8,
    /* ropex-only layouts of Q4_0 / Q8_0 weights for the matrix kernels (ropex_repack); never
       in a file, not accepted by ropex_quantize/ropex_dequantize or the GGUF writer. */
    ROPEX_Q4_0_X8 = 0x102,
    ROPEX_Q8_0_X8 = 0x108
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
ROPEX_API const char *ropex_type_name(ropex_type t);   /* "f32", "f16", "q4_0", "q8_0", "q4_0_x8", "q8_0_x8" or NULL */

/* IEEE binary16 <-> binary32, round to nearest even; zero, subnormals, inf, NaN preserved. */
ROPEX_API uint16_t ropex_fp32_to_fp16(float f);
ROPEX_API float ropex_fp16_to_fp32(uint16_t h);

/* Quantize / dequantize n values (one or more rows laid end to end).
   Block types need n % 32 == 0 (else ROPEX_ERR_ARG). GGML reference rounding
   (quantize_row_q8_0_ref / quantize_row_q4_0_ref): the same floats give the same bytes.
   Byte order: quantized data (`dst`, `src`, and the weights `w` below) is always GGML's on-disk
   layout, little-endian on every host: F32 rows are little-endian floats, F16 rows and the
   fp16 block scales are little-endian halves. Only the float arrays (x, y) are host floats.
   So a GGUF tensor is used as-is on any host (big-endian hosts need no conversion of weights). */
ROPEX_API ropex_status ropex_quantize(ropex_type t, const float *x, void *dst, size_t n);
ROPEX_API ropex_status ropex_dequantize(ropex_type t, const void *src, float *y, size_t n);

/* Repacked weights: the same bytes as a Q4_0 / Q8_0 matrix (rows x cols, GGML layout),
   rearranged so the SIMD kernels read 8 rows as one sequential stream: for each group of 8 rows
   and each block column, the 8 fp16 scales (16 bytes) then the quants. Q4_0: 4 x 32 bytes,
   chunk i holding bytes 4i..4i+3 of rows 0..7 in row order (so one register is 8 rows x 8
   elements); Q8_0: rows k and k+4 side by side, 4 x (32 bytes of elements 0..15, 32 of 16..31)). Rows past
   the last whole group keep the GGML layout at their usual offset, so the size is unchanged
   (rows * ropex_row_bytes). Pass the result to ropex_matvec/ropex_matmul as ROPEX_Q4_0_X8 /
   ROPEX_Q8_0_X8: every path gives the same bits as on the GGML layout. The AVX2 kernels read it
   about 1.3x faster (no gather of scales, one stream per 8 rows); other builds compute it with
   the scalar reference, so there use the GGML layout (ropex_model_repack does so by itself).
   t: ROPEX_Q4_0 or ROPEX_Q8_0 (the source type); src and dst must not overlap. */
ROPEX_API ropex_status ropex_repack(ropex_type t, const void *src, size_t rows, size_t cols, void *dst);

/* ===================================================================== */
/* >> matmul: y = W x for weights of any type                            */
/* ===================================================================== */
/* W: rows x cols, row-major, GGML layout (row r at r*ropex_row_bytes(t, cols)), any alignment.
   x: n vectors of cols floats (x[i*cols + c]); y: n vectors of rows floats (y[i*rows + r]).
   Integer types quantize x to Q8_0 on the fly into `work`, whose size
   ropex_matmul_work_bytes() gives (0 for F32/F16; work may then be NULL; any alignment).
   Bad arguments (NULL, zero sizes, cols % 32 for Q4_0/Q8_0, unknown type, size overflow)
   return ROPEX_ERR_ARG. The call is thread-safe for distinct y/work buffers.

   Arithmetic contract (every path: scalar, AVX2, NEON, NEON dot-product, any thread count
   gives the same bits; tests/test_quant.c checks it):
   - Activations, per block of 32: amax = max|x|; d = fp16(amax/127);
     q = round-half-even(x * (127/amax)) (GGML's SIMD activation rule, one rule everywhere).
   - Q4_0: a block's 32 products (w-8)*x are summed exactly in int32 (s); then
     acc = fmaf(dw*dx, (float)s, acc) block after block from acc = 0; y = acc.
   - Q8_0: the 32 products of a block are summed exactly in int32 into 4 lanes,
     lane m = elements {4m..4m+3} and {16+4m..16+4m+3}; per lane acc[m] = fmaf(dw*dx, lane, acc[m])
     block after block; y = (acc0+acc2) + (acc1+acc3).
   - F32/F16: acc[c % 8] = fmaf(w[c], x[c], acc[c % 8]); y = ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
   fmaf is explicit, so -ffp-contract cannot change results. Float expressions round at each
   step under ISO C modes (-std=c99: assignments drop excess precision, which matters where
   FLT_EVAL_METHOD != 0, e.g. s390x); GNU modes with excess precision (x87, s390x -std=gnu99)
   may differ in the last bit on those targets only.
   Threads: rows are split in contiguous ranges of whole 8-row units; each output is computed
   by one thread following the contract above, so the split cannot change it. Products under
   ~131K multiply-adds run on the caller (waking workers would cost more). x, y and work must
   not overlap. The pool (ropex_threads_*) keeps its workers; after a run they spin briefly,
   then sleep on a condition variable; one caller at a time per pool. */
ROPEX_API size_t ropex_matmul_work_bytes(ropex_type t, size_t cols, size_t n);
ROPEX_API ropex_status ropex_matvec(ropex_type t, const void *w, size_t rows, size_t cols,
                                    const float *x, float *y, void *work, ropex_threads *th);
ROPEX_API ropex_status ropex_matmul(ropex_type t, const void *w, size_t rows, size_t cols,
                                    const float *x, size_t n, float *y, void *work, ropex_threads *th);
/* The scalar reference path, always compiled; same contract, one thread. */
ROPEX_API ropex_status ropex_matmul_ref(ropex_type t, const void *w, size_t rows, size_t cols,
                                        const float *x, size_t n, float *y, void *work);
/* Name of the compiled SIMD path: "avx2", "neon", "neon-dotprod" or "scalar".
   Chosen at compile time: AVX2 needs -mavx2 -mfma (F16C, -mf16c, speeds up F16 and scales);
   NEON needs __ARM_NEON on a little-endian target (armv7 also wants VFPv4 for vfma);
   __ARM_FEATURE_DOTPROD selects sdot. ROPEX_NO_SIMD forces the scalar path. */
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
   Angles are formed and range-reduced in double. mscale multiplies the rotated coordinates only
   (as HF/GGML scale cos and sin); log-n multiplies the whole query head; coordinates past rot_dims
   are otherwise untouched. Bad arguments (NULL, n_heads <= 0, head_stride < head_dim) do nothing.
   Precision: per unit-norm pair within 1e-5 of exact for any position < 2^31 (contract); measured
   <= 7e-8 for p <= 1e6 and 8.5e-8 at p = 2^31-1 (d 128, base 10000; tests/test_rope.c). Beyond
   ~2^33 rad the double angle itself loses precision (2^40: ~1e-4). */
ROPEX_API void ropex_rope_apply_q(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos);
ROPEX_API void ropex_rope_apply_k(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos);
/* A batch: n_tokens tokens at token_stride floats apart, positions pos[i]. */
ROPEX_API void ropex_rope_apply_batch(const ropex_rope_table *t, float *x, int n_tokens, size_t token_stride,
                                      int n_heads, size_t head_stride, const int64_t *pos, int is_query);
/* Exact inverse of ropex_rope_apply_k at pos (un-rotate, divide by mscale; zeroed coordinates stay 0). */
ROPEX_API void ropex_rope_unapply_k(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos);
/* Pure re-rotation, no magnitude: turns a key rotated by table `from` at position p_from into one
   rotated by table `to` at p_to (same delta per pair if from == to). Used by the KV cache.
   Each table's clamp mask applies to its own position; pairs zeroed in either table end up 0.
   The tables must share head_dim, rot_dims and layout (otherwise nothing happens). */
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
   (0 or < train_ctx = train_ctx); *limit (if non-NULL) gets the usable length: train_ctx when
   unchanged, 2pi*base^(d_extra/d) for a large base, tune_ctx when tuning-bound, 0 for "no hard
   limit" (small base; tested before large base). Scaling-law functions return 0 on bad arguments
   (ropex_base_for_target: HUGE_VAL when crit_dim == 0). */
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
    size_t k_row_bytes, v_row_bytes;     /* bytes of one token's keys / values in one layer */
    size_t k_unit_bytes, v_unit_bytes;   /* the same for one unit of kv heads (see below) */
    int unit_heads, n_units;     /* kv heads per unit (whole Q8_0 blocks), units per row */
    unsigned char *k, *v;        /* the rows */
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

/* Notes on the cache (see the implementation banner for the full design):
   - Memory: ropex_kv_bytes = K and V rows (per layer and slot; stored unit-major, [layer][unit of
     kv heads][slot]) + slot_pos + 63 bytes of alignment slack;
     the buffer may start at any address. Nothing allocates after init; every call is O(1) memory.
   - Slots: text position t lives in slot t < n_sink ? t : n_sink + (t-n_sink) % (capacity-n_sink).
   - Keys are stored after RoPE (quantized once, at their text position) when the frequency set is
     fixed; CACHE positions then score the ring with the query at its text position (same slot
     distance) and the sinks with the query at its cache slot: exact StreamingLLM re-rotation, and no
     stored key is ever re-rotated per step. Keys are stored raw and rotated at use for dynamic NTK
     and LongRoPE (the table for L = query position + 1 serves the query and every key) and for
     CLAMP truncation under CACHE positions.
   - ropex_kv_set_rope on stored-rotated keys dequantizes, un-rotates with the old table, rotates with
     the new one and requantizes once per call (never per step); raw keys need nothing.
   - Q8_0 blocks are 32 consecutive values of a token's row across kv heads: n_kv_heads*head_dim must
     be a multiple of 32 (else ROPEX_ERR_UNSUPPORTED), and the smallest run of kv heads holding whole
     blocks must be <= 1024 values. head_dim <= 512, even.
   - Threads split kv heads (in whole blocks); each query head is computed by one thread in one
     fixed order, so outputs are bit-identical for any thread count and any chunking.
   Additions (helper C):
   Stores n_tokens rows (raw k and v, as ropex_attention takes them) at text positions
   kv->n_past.. for one layer without attending (prompt prefill whose outputs are not needed,
   cache fills). Call it for every layer, then ropex_kv_advance(kv, n_tokens). */
ROPEX_API ropex_status ropex_kv_store(ropex_kv *kv, int layer, const float *k, const float *v, int n_tokens);
/* Slot holding text position pos once stored: pos < n_sink ? pos : n_sink + (pos-n_sink) % (capacity-n_sink). */
ROPEX_API int64_t ropex_kv_slot(const ropex_kv *kv, int64_t pos);

/* ===================================================================== */
/* >> model: GGUF / llama2.c loaders, vocabulary                          */
/* ===================================================================== */
#define ROPEX_MAX_LAYERS 256

typedef struct ropex_tensor {
    ropex_type type;
    int64_t cols;            /* row length (GGUF ne[0]) */
    int64_t rows;            /* GGUF ne[1] (1 for vectors) */
    const void *data;        /* GGML layout, little-endian bytes on every host (the kernels and
                                ropex_dequantize read bytes), pointing into the model file (zero-copy) */
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
    int n_sorted;                /* entries in sorted: the encodable pieces (not control, byte, unknown) */
    int max_token_len;           /* longest piece in bytes */
    int no_space_prefix;         /* 1: no dummy space before the text (GGUF tokenizer.ggml.add_space_prefix = false) */
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
    void *file_data; size_t file_size; int file_owned;  /* whole file bytes (owned: 1 heap, 2 mmap) */
    void *aux; size_t aux_bytes; int aux_owned;          /* vocab tables (llama2.c: also the piece texts) */
    void *pack; size_t pack_bytes;                        /* repacked matrices (ropex_model_repack) */
    const char *error;           /* detail of the last load error (static string) or NULL */
} ropex_model;

/* Zero-copy from memory on every host (tensors and token texts point into data, which must stay
   valid; no alignment needed since all readers decode little-endian bytes). Allocates the vocabulary
   tables (aux) with malloc. */
ROPEX_API ropex_status ropex_model_load_gguf_memory(ropex_model *m, const void *data, size_t size);
/* The same into caller memory: first ask how much (aux_bytes), then pass a buffer. */
ROPEX_API ropex_status ropex_model_gguf_aux_bytes(const void *data, size_t size, size_t *aux_bytes);
ROPEX_API ropex_status ropex_model_load_gguf_memory_ex(ropex_model *m, const void *data, size_t size,
                                                       void *aux, size_t aux_bytes);
/* llama2.c checkpoint + tokenizer.bin, from memory (same ownership rules; the tokenizer bytes are
   copied into aux, so only the checkpoint must stay valid). Tensors are zero-copy. */
ROPEX_API ropex_status ropex_model_load_llama2c_memory(ropex_model *m, const void *ckpt, size_t ckpt_size,
                                                       const void *tok, size_t tok_size);
/* The same into caller memory (no malloc): ask the size, then pass a buffer. */
ROPEX_API ropex_status ropex_model_llama2c_aux_bytes(const void *ckpt, size_t ckpt_size, const void *tok,
                                                     size_t tok_size, size_t *aux_bytes);
ROPEX_API ropex_status ropex_model_load_llama2c_memory_ex(ropex_model *m, const void *ckpt, size_t ckpt_size,
                                                          const void *tok, size_t tok_size,
                                                          void *aux, size_t aux_bytes);
#ifndef ROPEX_NO_STDIO
/* From files: GGUF (tokenizer_path NULL) or llama2.c (.bin + tokenizer.bin); detected by magic.
   The model file is mmapped read-only on POSIX hosts (define ROPEX_NO_MMAP to read it into the
   heap instead); ropex_model_free releases it. */
ROPEX_API ropex_status ropex_model_load_file(ropex_model *m, const char *path, const char *tokenizer_path);
#endif
ROPEX_API void ropex_model_free(ropex_model *m);
/* Speed: copies the model's Q4_0/Q8_0 matrices (attention, feed-forward, and the classifier unless
   it is the embedding table) into the repacked layout of ropex_repack, in one allocation the model
   owns (their size in bytes: pack_bytes), and points the tensors there (types *_X8). Logits stay
   bit-identical; decode reads Q4_0 weights about 1.3x faster with AVX2. Builds without repacked
   kernels (all but AVX2 today) return ROPEX_OK and change nothing, so call it unconditionally
   after loading. Afterwards ropex_gguf_write refuses the model (ROPEX_ERR_UNSUPPORTED). The file
   bytes stay mapped (clean page cache the OS may drop). Needs malloc (else ROPEX_ERR_NOMEM). */
ROPEX_API ropex_status ropex_model_repack(ropex_model *m);
/* Optional detail for the last load error (static or model-owned string). */
ROPEX_API const char *ropex_model_error(const ropex_model *m);

/* GGUF v3 writer (what tools/ropex-convert uses). Writes a loaded model with llama.cpp's key and
   tensor names into out (little-endian on every host, alignment 32); a LongRoPE config with one list
   for both lengths and no magnitude becomes llama.cpp's rope_freqs tensor (the loader maps it back).
   Weight matrices get `type`;
   norms stay F32; rows that are not a multiple of 32 stay F16 when `type` is Q8_0/Q4_0. Tensors are
   written as loaded (no Q/K permutation: llama.cpp's llama arch uses adjacent pairs like llama2.c).
   Zero-initialised config = F32, context_length = the model's trained context, name "llama".
   *size gets the bytes needed; out NULL (cap 0) only measures; ROPEX_ERR_BUFFER if cap is short. */
typedef struct ropex_gguf_write_config {
    ropex_type type;             /* F32, F16, Q8_0 or Q4_0 */
    int context_length;          /* llama.context_length: 0 = hp.rope.train_ctx (the true trained length) */
    const char *name;            /* general.name; NULL = "llama" */
} ropex_gguf_write_config;
ROPEX_API ropex_status ropex_gguf_write(const ropex_model *m, const ropex_gguf_write_config *cfg, void *out,
                                        size_t cap, size_t *size);

/* ===================================================================== */
/* >> tokenizer: sentencepiece-style BPE with scores and byte fallback   */
/* ===================================================================== */
/* Encodes text (len bytes) into ids; add_bos prepends BOS. Writes at most max_ids ids and sets
   *n_ids to the count needed (ROPEX_ERR_BUFFER if larger than max_ids). `work` is scratch of
   ropex_tokenize_work_bytes(len) bytes (NULL: allocated internally when malloc is available).
   Semantics of llama2.c's run.c / sentencepiece: a dummy space before non-empty text (spaces are
   U+2581 in GGUF vocabularies), one symbol per UTF-8 character, then merges of the best-scoring
   adjacent pair (leftmost on ties) in O(n log n). A character without a piece becomes byte tokens
   <0xXX>, or the unknown id when the vocabulary lacks them. Control, byte and unknown pieces are
   never produced by merges. Scratch is about 85 bytes per input byte. Thread-safe (no state). */
ROPEX_API size_t ropex_tokenize_work_bytes(const ropex_vocab *v, size_t len);
ROPEX_API ropex_status ropex_tokenize(const ropex_vocab *v, const char *text, size_t len, int add_bos,
                                      int32_t *ids, int max_ids, int *n_ids, void *work);
/* The bytes a token prints after token `prev` (handles byte tokens, U+2581, leading space after BOS).
   Writes up to cap bytes to buf and returns the number written (may be 0; control tokens such as
   BOS/EOS print nothing; pieces are at most vocab.max_token_len bytes). */
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
/* work: ropex_sampler_work_bytes(n_vocab) bytes of scratch (NULL: allocated per call when malloc is
   available). Returns the token id (or -1 on bad input). temperature <= 0 or top_k == 1: argmax
   (lowest id on ties, NaN never wins). Otherwise softmax(logits / T), then top-k, then top-p over
   the candidates sorted by logit, then one draw from a xorshift64* stream seeded via splitmix64:
   the same seed and logits give the same ids on every host. */
ROPEX_API size_t ropex_sampler_work_bytes(int n_vocab);
ROPEX_API int ropex_sample(ropex_sampler *s, const float *logits, int n_vocab, void *work);


/* ===================================================================== */
/* >> context: forward pass                                               */
/* ===================================================================== */
typedef struct ropex_ctx_config {
    ropex_rope_config rope;      /* head_dim == 0: use the model's RoPE settings */
    int kv_size;                 /* cache capacity in tokens, sinks included; 0 = max(train_ctx, file ctx) */
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
    /* added fields (end of struct) */
    float *normw;                /* dim floats: the norm weight in use, dequantized */
    size_t mem_bytes;            /* bytes of the context memory in use */
    size_t kv_bytes;             /* of which the KV cache */
    int chunk;                   /* tokens per internal chunk (<= max_batch, <= the ring size) */
} ropex_ctx;

/* A context holds one token stream: activations for max_batch tokens, the matmul scratch, the logits
   and the KV cache, all in one caller buffer (64-byte aligned pieces; any alignment of `mem` works).
   The model is read-only: many contexts (threads) may share it; one context serves one thread at a time.
   ropex_ctx_bytes: bytes ropex_ctx_init needs (0 if the model or cfg is invalid; cfg NULL = defaults:
   the model's RoPE, kv_size = max(train_ctx, file ctx), F32 cache, TEXT positions, batch 64).
   Nothing allocates after init: ropex_eval runs in that memory. */
ROPEX_API size_t ropex_ctx_bytes(const ropex_model *m, const ropex_ctx_config *cfg);
ROPEX_API ropex_status ropex_ctx_init(ropex_ctx *c, const ropex_model *m, const ropex_ctx_config *cfg,
                                      void *mem, size_t bytes);
/* Convenience: allocates once with malloc. */
ROPEX_API ropex_status ropex_ctx_create(ropex_ctx *c, const ropex_model *m, const ropex_ctx_config *cfg);
ROPEX_API void ropex_ctx_free(ropex_ctx *c);
/* Runs n tokens at the next positions (n = 0: nothing). logits_all: NULL, or n x vocab floats for
   every token's logits. The last token's logits are always in c->logits. Same results for any
   chunking (within 1e-4) and thread count (bitwise). Token ids are checked before any state changes;
   th NULL = the calling thread. */
ROPEX_API ropex_status ropex_eval(ropex_ctx *c, const int32_t *tokens, int n, float *logits_all, ropex_threads *th);
ROPEX_API int64_t ropex_ctx_n_past(const ropex_ctx *c);
/* Added: forget all tokens (the next eval starts at position 0); memory is kept. */
ROPEX_API void ropex_ctx_reset(ropex_ctx *c);
/* Added: change the RoPE settings mid-stream (e.g. a new runtime base): the cached keys follow
   (ropex_kv_set_rope), so queries and keys always share one frequency set. rope->head_dim must be
   the model's; train_ctx/train_base 0 are filled from the model. On error nothing changes. */
ROPEX_API ropex_status ropex_ctx_set_rope(ropex_ctx *c, const ropex_rope_config *rope);
/* Added: the configuration a context would run with after defaults are applied (RoPE from the model
   unless cfg->rope.head_dim != 0, its train_ctx/train_base filled from the model when 0, kv_size,
   max_batch). Validates; cfg may be NULL (all defaults). */
ROPEX_API ropex_status ropex_ctx_resolve_config(const ropex_model *m, const ropex_ctx_config *cfg,
                                                ropex_ctx_config *out);
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

/* ===================================================================== */
/* >> implementation: quant (fp16, Q8_0, Q4_0), threads, matmul          */
/* ===================================================================== */
/* SIMD is chosen here, once, at compile time. */
#if !defined(ROPEX_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#  define ROPEX__AVX2 1
#  include <immintrin.h>
#elif !defined(ROPEX_NO_SIMD) && defined(__ARM_NEON) && \
      (!defined(__BYTE_ORDER__) || __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#  define ROPEX__NEON 1
#  include <arm_neon.h>
#  if defined(__ARM_FEATURE_DOTPROD)
#    define ROPEX__DOTPROD 1
#  endif
#endif

#ifndef ROPEX_NO_THREADS
#  include <pthread.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define ROPEX__Q_INLINE static __inline__ __attribute__((always_inline))
#  define ROPEX__NOINLINE static __attribute__((noinline))
#else
#  define ROPEX__Q_INLINE static
#  define ROPEX__NOINLINE static
#endif

/* ---- little-endian byte access (GGML data is little-endian on every host) ---- */
ROPEX__Q_INLINE uint16_t ropex__q_ld16(const unsigned char *p) {
    return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8));
}
static void ropex__q_st16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)(v & 0xFF);
    p[1] = (unsigned char)(v >> 8);
}
static float ropex__q_ldf32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void ropex__q_stf32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (unsigned char)(u & 0xFF);
    p[1] = (unsigned char)((u >> 8) & 0xFF);
    p[2] = (unsigned char)((u >> 16) & 0xFF);
    p[3] = (unsigned char)(u >> 24);
}

/* ---- fp16 <-> fp32, integer arithmetic only (no FPU rounding-mode dependence) ---- */
ROPEX_API uint16_t ropex_fp32_to_fp16(float f) {
    uint32_t u, a, e, m, q, rem, half;
    uint16_t sign;
    int shift;
    memcpy(&u, &f, 4);
    sign = (uint16_t)((u >> 16) & 0x8000u);
    a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) {                      /* inf stays inf; NaN stays a (quiet) NaN */
        if (a == 0x7F800000u) return (uint16_t)(sign | 0x7C00u);
        return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    }
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);   /* >= 65520 rounds to inf */
    e = a >> 23;
    if (e < 113) {                               /* below 2^-14: half subnormal (or zero) */
        if (e < 102) return sign;                /* below 2^-25: rounds to zero */
        m = (a & 0x7FFFFFu) | 0x800000u;
        shift = (int)(126 - e);                  /* value / 2^-24 = m / 2^shift, shift 14..24 */
        q = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);             /* q may carry into the min normal: still right */
    }
    q = ((e - 112u) << 10) | ((a >> 13) & 0x3FFu);
    rem = a & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;  /* carry may bump the exponent */
    return (uint16_t)(sign | q);
}

ROPEX__Q_INLINE float ropex__q_h2f(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t e = ((uint32_t)h >> 10) & 0x1Fu, m = (uint32_t)h & 0x3FFu, u;
    float f;
    if (e == 0) {
        if (m == 0) {
            u = sign;
        } else {                                  /* subnormal: normalize */
            uint32_t ee = 113;
            while (!(m & 0x400u)) { m <<= 1; ee--; }
            u = sign | (ee << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (e == 31) {
        u = sign | 0x7F800000u | (m << 13);
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}
ROPEX_API float ropex_fp16_to_fp32(uint16_t h) { return ropex__q_h2f(h); }

ROPEX_API size_t ropex_row_bytes(ropex_type t, size_t n) {
    switch (t) {
    case ROPEX_F32: return n > SIZE_MAX / 4 ? 0 : n * 4;
    case ROPEX_F16: return n > SIZE_MAX / 2 ? 0 : n * 2;
    case ROPEX_Q8_0: return (n % ROPEX_QK) ? 0 : (n / ROPEX_QK) * 34;
    case ROPEX_Q4_0: case ROPEX_Q4_0_X8: return (n % ROPEX_QK) ? 0 : (n / ROPEX_QK) * 18;
    case ROPEX_Q8_0_X8: return (n % ROPEX_QK) ? 0 : (n / ROPEX_QK) * 34;
    }
    return 0;
}

ROPEX_API const char *ropex_type_name(ropex_type t) {
    switch (t) {
    case ROPEX_F32: return "f32";
    case ROPEX_F16: return "f16";
    case ROPEX_Q8_0: return "q8_0";
    case ROPEX_Q4_0: return "q4_0";
    case ROPEX_Q8_0_X8: return "q8_0_x8";
    case ROPEX_Q4_0_X8: return "q4_0_x8";
    }
    return NULL;
}

static int ropex__type_ok(ropex_type t) {
    return t == ROPEX_F32 || t == ROPEX_F16 || t == ROPEX_Q8_0 || t == ROPEX_Q4_0;
}
static int ropex__is_block(ropex_type t) { return t == ROPEX_Q8_0 || t == ROPEX_Q4_0; }
static int ropex__is_x8(ropex_type t) { return t == ROPEX_Q8_0_X8 || t == ROPEX_Q4_0_X8; }
/* the GGML type whose blocks a repacked layout holds */
static ropex_type ropex__base_type(ropex_type t) {
    return t == ROPEX_Q4_0_X8 ? ROPEX_Q4_0 : t == ROPEX_Q8_0_X8 ? ROPEX_Q8_0 : t;
}

/* GGML quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) (ties away from zero). */
/* GGML's roundf(p) (half away from zero) clamped to [-128, 127], NaN -> 0, without a libm call:
   below 128.5 the truncation and the fraction a - trunc(a) are exact in float. */
static int ropex__q8_round(float p) {
    float a = p < 0.0f ? -p : p;
    int32_t i;
    if (!(a < 128.5f)) return p != p ? 0 : (p > 0.0f ? 127 : -128);
    i = (int32_t)a;
    if (a - (float)i >= 0.5f) i++;
    if (p < 0.0f) i = -i;
    return i > 127 ? 127 : i;
}

static void ropex__quant_q8_0_block(const float *x, unsigned char *blk) {
    float amax = 0.0f, d, id;
    int j;
    for (j = 0; j < 32; j++) { float a = fabsf(x[j]); if (a > amax) amax = a; }
    d = amax / 127.0f;
    id = d != 0.0f ? 1.0f / d : 0.0f;
    ropex__q_st16(blk, ropex_fp32_to_fp16(d));
    for (j = 0; j < 32; j++) {
        volatile float p = x[j] * id;   /* rounded to float as GGML does (no FMA contraction below) */
        blk[2 + j] = (unsigned char)(ropex__q8_round(p) & 0xFF);
    }
}

/* GGML quantize_row_q4_0_ref: d = (signed value of largest |x|) / -8, q = min(15, trunc(x/d + 8.5)). */
static void ropex__quant_q4_0_block(const float *x, unsigned char *blk) {
    float amax = 0.0f, max = 0.0f, d, id;
    int j;
    for (j = 0; j < 32; j++) {
        float a = fabsf(x[j]);
        if (amax < a) { amax = a; max = x[j]; }
    }
    d = max / -8.0f;
    id = d != 0.0f ? 1.0f / d : 0.0f;
    ropex__q_st16(blk, ropex_fp32_to_fp16(d));
    for (j = 0; j < 16; j++) {
        /* one rounding per operation: volatile keeps the product from being contracted into an
           FMA (g++ and gnu modes default to -ffp-contract=fast) and drops excess precision
           where FLT_EVAL_METHOD != 0 (s390x evaluates float in double) */
        volatile float p0 = x[j] * id, p1 = x[16 + j] * id;
        float v0 = p0 + 8.5f, v1 = p1 + 8.5f;
        /* the argument is >= 0 for finite input, so truncation = GGML's (int8_t) cast */
        int q0 = (v0 >= 0.0f && v0 < 16.0f) ? (int)v0 : (v0 >= 16.0f ? 15 : 0);
        int q1 = (v1 >= 0.0f && v1 < 16.0f) ? (int)v1 : (v1 >= 16.0f ? 15 : 0);
        if (q0 > 15) q0 = 15;
        if (q1 > 15) q1 = 15;
        blk[2 + j] = (unsigned char)(q0 | (q1 << 4));
    }
}

ROPEX_API ropex_status ropex_quantize(ropex_type t, const float *x, void *dst, size_t n) {
    unsigned char *o = (unsigned char *)dst;
    size_t i;
    if (!ropex__type_ok(t)) return ROPEX_ERR_ARG;
    if (n == 0) return ROPEX_OK;
    if (!x || !dst) return ROPEX_ERR_ARG;
    if (ropex__is_block(t) && n % ROPEX_QK) return ROPEX_ERR_ARG;
    switch (t) {
    case ROPEX_F32:
        for (i = 0; i < n; i++) ropex__q_stf32(o + 4 * i, x[i]);
        break;
    case ROPEX_F16:
        for (i = 0; i < n; i++) ropex__q_st16(o + 2 * i, ropex_fp32_to_fp16(x[i]));
        break;
    case ROPEX_Q8_0:
        for (i = 0; i < n / 32; i++) ropex__quant_q8_0_block(x + 32 * i, o + 34 * i);
        break;
    case ROPEX_Q4_0:
        for (i = 0; i < n / 32; i++) ropex__quant_q4_0_block(x + 32 * i, o + 18 * i);
        break;
    default: break;
    }
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_dequantize(ropex_type t, const void *src, float *y, size_t n) {
    const unsigned char *p = (const unsigned char *)src;
    size_t i;
    int j;
    if (!ropex__type_ok(t)) return ROPEX_ERR_ARG;
    if (n == 0) return ROPEX_OK;
    if (!src || !y) return ROPEX_ERR_ARG;
    if (ropex__is_block(t) && n % ROPEX_QK) return ROPEX_ERR_ARG;
    switch (t) {
    case ROPEX_F32:
        for (i = 0; i < n; i++) y[i] = ropex__q_ldf32(p + 4 * i);
        break;
    case ROPEX_F16:
        for (i = 0; i < n; i++) y[i] = ropex__q_h2f(ropex__q_ld16(p + 2 * i));
        break;
    case ROPEX_Q8_0:
        for (i = 0; i < n / 32; i++) {
            const unsigned char *b = p + 34 * i;
            float d = ropex__q_h2f(ropex__q_ld16(b));
            for (j = 0; j < 32; j++) y[32 * i + j] = (float)(signed char)b[2 + j] * d;
        }
        break;
    case ROPEX_Q4_0:
        for (i = 0; i < n / 32; i++) {
            const unsigned char *b = p + 18 * i;
            float d = ropex__q_h2f(ropex__q_ld16(b));
            for (j = 0; j < 16; j++) {
                y[32 * i + j] = (float)((int)(b[2 + j] & 0x0F) - 8) * d;
                y[32 * i + 16 + j] = (float)((int)(b[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    default: break;
    }
    return ROPEX_OK;
}

/* Where row k (0..7) of an 8-row group finds block b in the repacked layout (byte offsets
   from the group's start): its scale; Q4_0: its quant byte j (0..15); Q8_0: its quants
   (elements 0..15, then 16..31 at +32). */
static size_t ropex__x8_scale_at(ropex_type base, size_t b, int k) {
    return (base == ROPEX_Q4_0 ? 144 : 272) * b + 2 * (size_t)k;
}
static size_t ropex__x8_q4_byte(size_t b, int k, int j) {
    return 144 * b + 16 + 32 * (size_t)(j >> 2) + 4 * (size_t)k + (size_t)(j & 3);
}
static size_t ropex__x8_q8_at(size_t b, int k) {
    return 272 * b + 16 + 64 * (size_t)(k & 3) + 16 * (size_t)(k >> 2);
}
/* Q4_0: block column b of 8 GGML-layout rows (row k at src + k*rb) as one repacked block (144 bytes at dst). */
static void ropex__x8_q4_block(unsigned char *dst, const unsigned char *src, size_t rb, size_t b) {
    int k, i;
    for (k = 0; k < 8; k++) {
        const unsigned char *blk = src + (size_t)k * rb + 18 * b;
        memcpy(dst + 2 * k, blk, 2);
        for (i = 0; i < 4; i++) memcpy(dst + ropex__x8_q4_byte(0, k, 4 * i), blk + 2 + 4 * i, 4);
    }
}

ROPEX_API ropex_status ropex_repack(ropex_type t, const void *src, size_t rows, size_t cols, void *dst) {
    const unsigned char *in = (const unsigned char *)src;
    unsigned char *out = (unsigned char *)dst;
    size_t rb, nb, g, b, total;
    int k;
    if (!ropex__is_block(t) || !src || !dst || rows == 0 || cols == 0 || cols % ROPEX_QK) return ROPEX_ERR_ARG;
    rb = ropex_row_bytes(t, cols);
    if (rb == 0 || rows > SIZE_MAX / rb) return ROPEX_ERR_ARG;
    total = rows * rb;
    if (!(in + total <= out || out + total <= in)) return ROPEX_ERR_ARG;   /* overlap */
    nb = cols / ROPEX_QK;
    for (g = 0; g + 8 <= rows; g += 8) {
        const unsigned char *gi = in + g * rb;
        unsigned char *go = out + g * rb;
        for (b = 0; b < nb; b++) {
            if (t == ROPEX_Q4_0) {
                ropex__x8_q4_block(go + 144 * b, gi, rb, b);
                continue;
            }
            for (k = 0; k < 8; k++) {
                const unsigned char *blk = gi + (size_t)k * rb + 34 * b;
                unsigned char *q = go + ropex__x8_q8_at(b, k);
                memcpy(go + ropex__x8_scale_at(t, b, k), blk, 2);
                memcpy(q, blk + 2, 16);
                memcpy(q + 32, blk + 18, 16);
            }
        }
    }
    if (g < rows) memcpy(out + g * rb, in + g * rb, (rows - g) * rb);
    return ROPEX_OK;
}

/* ===================================================================== */
/* >> implementation: threads                                            */
/* ===================================================================== */
#ifndef ROPEX_NO_THREADS
#  if defined(__GNUC__) || defined(__clang__)
#    define ROPEX__ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#    define ROPEX__ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#    define ROPEX__ATOMIC_FADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#    if defined(__x86_64__) || defined(__i386__)
#      define ROPEX__PAUSE() __builtin_ia32_pause()
#    elif defined(__aarch64__)
#      define ROPEX__PAUSE() __asm__ __volatile__("yield")
#    else
#      define ROPEX__PAUSE() ((void)0)
#    endif
/* Spin this many times before sleeping: the runner calls ropex_threads_run back to back,
   so a short spin avoids a futex wake per matrix product. */
#    define ROPEX__SPIN 20000
#  else
#    define ROPEX__SPIN 0
#    define ROPEX__ATOMIC_STORE(p, v) (*(p) = (v))
#  endif

typedef struct ropex__worker { struct ropex_threads *pool; int index; } ropex__worker;

struct ropex_threads {
    int n;
    pthread_t *tid;
    ropex__worker *wk;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    ropex_task_fn fn;
    void *arg;
    unsigned gen;       /* bumped once per run; workers wait for a change */
    int pending;        /* workers still running the current task */
    int quit;
};

static void *ropex__worker_main(void *p) {
    ropex__worker *w = (ropex__worker *)p;
    ropex_threads *th = w->pool;
    unsigned seen = 0;
    for (;;) {
        ropex_task_fn fn;
        void *arg;
#if ROPEX__SPIN
        int s;
        for (s = 0; s < ROPEX__SPIN; s++) {
            if (ROPEX__ATOMIC_LOAD(&th->gen) != seen) break;
            ROPEX__PAUSE();
        }
#endif
        pthread_mutex_lock(&th->mu);
        while (th->gen == seen && !th->quit) pthread_cond_wait(&th->cv_work, &th->mu);
        if (th->quit) { pthread_mutex_unlock(&th->mu); break; }
        seen = th->gen;
        fn = th->fn;
        arg = th->arg;
        pthread_mutex_unlock(&th->mu);
        fn(arg, w->index, th->n);
        pthread_mutex_lock(&th->mu);
        ROPEX__ATOMIC_STORE(&th->pending, th->pending - 1);   /* the caller may spin on it */
        if (th->pending == 0) pthread_cond_signal(&th->cv_done);
        pthread_mutex_unlock(&th->mu);
    }
    return NULL;
}
#else
struct ropex_threads { int n; };
#endif

ROPEX_API ropex_status ropex_threads_create(ropex_threads **out, int n_threads) {
    ropex_threads *th;
    if (!out) return ROPEX_ERR_ARG;
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return ROPEX_ERR_ARG;
#ifdef ROPEX_NO_THREADS
    if (n_threads != 1) return ROPEX_ERR_UNSUPPORTED;
    th = (ropex_threads *)ropex__malloc(sizeof(*th));
    if (!th) return ROPEX_ERR_NOMEM;
    th->n = 1;
#else
    {
        int i;
        th = (ropex_threads *)ropex__malloc(sizeof(*th));
        if (!th) return ROPEX_ERR_NOMEM;
        memset(th, 0, sizeof(*th));
        th->n = n_threads;
        if (n_threads > 1) {
            th->tid = (pthread_t *)ropex__malloc(sizeof(pthread_t) * (size_t)(n_threads - 1));
            th->wk = (ropex__worker *)ropex__malloc(sizeof(ropex__worker) * (size_t)(n_threads - 1));
            if (!th->tid || !th->wk) {
                ropex__free(th->tid); ropex__free(th->wk); ropex__free(th);
                return ROPEX_ERR_NOMEM;
            }
        }
        if (pthread_mutex_init(&th->mu, NULL) != 0) {
            ropex__free(th->tid); ropex__free(th->wk); ropex__free(th);
            return ROPEX_ERR_NOMEM;
        }
        pthread_cond_init(&th->cv_work, NULL);
        pthread_cond_init(&th->cv_done, NULL);
        for (i = 1; i < n_threads; i++) {
            th->wk[i - 1].pool = th;
            th->wk[i - 1].index = i;
            if (pthread_create(&th->tid[i - 1], NULL, ropex__worker_main, &th->wk[i - 1]) != 0) {
                th->n = i;              /* destroy joins the ones that started */
                ropex_threads_destroy(th);
                return ROPEX_ERR_NOMEM;
            }
        }
    }
#endif
    *out = th;
    return ROPEX_OK;
}

ROPEX_API void ropex_threads_destroy(ropex_threads *th) {
    if (!th) return;
#ifndef ROPEX_NO_THREADS
    {
        int i;
        pthread_mutex_lock(&th->mu);
        th->quit = 1;
        pthread_cond_broadcast(&th->cv_work);
        pthread_mutex_unlock(&th->mu);
        for (i = 1; i < th->n; i++) pthread_join(th->tid[i - 1], NULL);
        pthread_cond_destroy(&th->cv_work);
        pthread_cond_destroy(&th->cv_done);
        pthread_mutex_destroy(&th->mu);
        ropex__free(th->tid);
        ropex__free(th->wk);
    }
#endif
    ropex__free(th);
}

ROPEX_API int ropex_threads_count(const ropex_threads *th) { return th ? th->n : 1; }

ROPEX_API void ropex_threads_run(ropex_threads *th, ropex_task_fn fn, void *arg) {
    if (!fn) return;
    if (!th || th->n <= 1) { fn(arg, 0, 1); return; }
#ifndef ROPEX_NO_THREADS
    pthread_mutex_lock(&th->mu);
    th->fn = fn;
    th->arg = arg;
    th->pending = th->n - 1;
    ROPEX__ATOMIC_STORE(&th->gen, th->gen + 1);   /* workers may spin on it */
    pthread_cond_broadcast(&th->cv_work);
    pthread_mutex_unlock(&th->mu);
    fn(arg, 0, th->n);
#if ROPEX__SPIN
    {
        int s;
        for (s = 0; s < ROPEX__SPIN; s++) {
            if (ROPEX__ATOMIC_LOAD(&th->pending) == 0) break;
            ROPEX__PAUSE();
        }
    }
#endif
    pthread_mutex_lock(&th->mu);
    while (th->pending > 0) pthread_cond_wait(&th->cv_done, &th->mu);
    pthread_mutex_unlock(&th->mu);
#endif
}

/* ===================================================================== */
/* >> implementation: matmul                                             */
/* ===================================================================== */
/* Arithmetic contract (the same on the scalar path and every SIMD path, so results are
   bit-identical):
   - Activations: each block of 32 floats becomes Q8_0 with ONE rule: amax = max|x|,
     d = fp16(amax/127), q = round-half-even(x * (127/amax)). (GGML's SIMD activation rule;
     the weight quantizer keeps GGML's reference rule.)
   - Q4_0: a block's 32 products (w_j-8)*x_j are summed exactly in int32 (s, |s| <= 32512, exact
     in float); then acc = fmaf(dw*dx, (float)s, acc) block after block from 0 (dw*dx is exact in
     float: two 11-bit significands), and y = acc. One sum per block lets the AVX2 kernels add
     eight maddubs results in int16 (each lane <= 16*15*127 = 30480) before one widening, one
     conversion and one fma per 8 rows and block: the instruction count that bounds products.
   - Q8_0: a block's 32 products w_j*x_j are summed exactly in int32 into 4 lanes,
     lane m = sum over j in {4m..4m+3} and {16+4m..16+4m+3}; then, per lane,
     acc[m] = fmaf(dw*dx, (float)lane[m], acc[m]) block after block, and
     y = (acc[0]+acc[2]) + (acc[1]+acc[3]).
   - Float paths (F32, F16): acc[c % 8] = fmaf(w[c], x[c], acc[c % 8]) for c in order, then
     y = ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
   fmaf is explicit everywhere, so FP contraction (-ffp-contract) cannot change a result. */

/* Activation work layout per token (stride ropex__act_stride): qs[cols] int8, d[nb] float,
   aux[cols] int16 (x as int16 for the AVX2 Q8_0 kernel; for Q4_0 an int32 per block, 8 * the
   block's sum of q: the nibble-offset correction of the AVX2 kernels). Offsets are 32-byte multiples from a 32-byte aligned base. */
#define ROPEX__ALIGN_UP(v, a) (((v) + ((a) - 1)) & ~(size_t)((a) - 1))
static size_t ropex__act_stride(size_t cols) {
    return ROPEX__ALIGN_UP(cols, 32) + ROPEX__ALIGN_UP(cols / 32 * 4, 32) + ROPEX__ALIGN_UP(cols * 2, 32);
}

typedef struct ropex__act {
    const signed char *qs;
    const float *d;
    const int16_t *aux;
} ropex__act;

static ropex__act ropex__act_at(const unsigned char *base, size_t cols, size_t t) {
    ropex__act a;
    const unsigned char *p = base + t * ropex__act_stride(cols);
    a.qs = (const signed char *)p;
    a.d = (const float *)(const void *)(p + ROPEX__ALIGN_UP(cols, 32));
    a.aux = (const int16_t *)(const void *)(p + ROPEX__ALIGN_UP(cols, 32) + ROPEX__ALIGN_UP(cols / 32 * 4, 32));
    return a;
}

/* Round half to even (default rounding mode), the same as the SIMD round-to-nearest
   instructions. rintf, not a magic-number addition: x*id + 1.5*2^23 could be contracted
   into one FMA and change the tie rule. */
static int ropex__rne(float v) {
    if (!(v > -256.0f && v < 256.0f)) return 0;   /* NaN (and impossible magnitudes) */
    return (int)rintf(v);
}

/* The activation rule, scalar. (aux is only read by the AVX2 kernels, filled below.) */
static void ropex__quantize_act_ref(const float *x, size_t cols, unsigned char *dst) {
    signed char *qs = (signed char *)dst;
    float *dd = (float *)(void *)(dst + ROPEX__ALIGN_UP(cols, 32));
    size_t b, nb = cols / 32;
    int j;
    for (b = 0; b < nb; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f, id;
        for (j = 0; j < 32; j++) { float a = fabsf(xb[j]); if (a > amax) amax = a; }
        dd[b] = ropex__q_h2f(ropex_fp32_to_fp16(amax / 127.0f));
        id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (j = 0; j < 32; j++) {
            int q = ropex__rne(xb[j] * id);
            if (q > 127) q = 127;
            if (q < -127) q = -127;
            qs[32 * b + j] = (signed char)q;
        }
    }
}

#if defined(ROPEX__AVX2)
/* The same rule with AVX2 (bit-identical for finite input: max is exact, the scale math is
   the scalar code, _mm256_round_ps nearest = rintf), plus the aux data of the AVX2 kernels:
   Q8_0: x widened to int16; Q4_0: 8 * the block's sum of q as one int32 (those kernels multiply
   the unsigned nibbles w+8, then subtract it). */
static void ropex__quantize_act_avx2(const float *x, size_t cols, unsigned char *dst, int ty) {
    signed char *qs = (signed char *)dst;
    float *dd = (float *)(void *)(dst + ROPEX__ALIGN_UP(cols, 32));
    int16_t *aux = (int16_t *)(void *)(dst + ROPEX__ALIGN_UP(cols, 32) + ROPEX__ALIGN_UP(cols / 32 * 4, 32));
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), m127 = _mm256_set1_epi8(-127);
    size_t b, nb = cols / 32;
    for (b = 0; b < nb; b++) {
        const float *xb = x + 32 * b;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                                 _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        __m256 vid;
        __m256i q0, q1, q2, q3, q;
        float amax, id;
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        amax = _mm_cvtss_f32(h);
        dd[b] = ropex__q_h2f(ropex_fp32_to_fp16(amax / 127.0f));
        id = amax != 0.0f ? 127.0f / amax : 0.0f;
        vid = _mm256_set1_ps(id);
#define ROPEX__RQ(v) _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
        q0 = ROPEX__RQ(v0); q1 = ROPEX__RQ(v1); q2 = ROPEX__RQ(v2); q3 = ROPEX__RQ(v3);
#undef ROPEX__RQ
        q = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        q = _mm256_max_epi8(_mm256_permutevar8x32_epi32(q, perm), m127);
        _mm256_store_si256((__m256i *)(void *)(qs + 32 * b), q);
        if (ty == ROPEX_Q8_0) {
            _mm256_store_si256((__m256i *)(void *)(aux + 32 * b), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)));
            _mm256_store_si256((__m256i *)(void *)(aux + 32 * b + 16), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)));
        } else {   /* 8 * sum of the block's q, one int32 */
            __m256i pr = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(8));
            __m128i c = _mm_add_epi32(_mm256_castsi256_si128(pr), _mm256_extracti128_si256(pr, 1));
            c = _mm_add_epi32(c, _mm_shuffle_epi32(c, 0x4E));
            c = _mm_add_epi32(c, _mm_shuffle_epi32(c, 0xB1));
            ((int32_t *)(void *)aux)[b] = _mm_cvtsi128_si32(c);
        }
    }
}
#endif

static void ropex__quantize_act(const float *x, size_t cols, unsigned char *dst, int ty, int ref) {
#if defined(ROPEX__AVX2)
    if (!ref) { ropex__quantize_act_avx2(x, cols, dst, ty); return; }
#endif
    (void)ty;
    (void)ref;
    ropex__quantize_act_ref(x, cols, dst);
}

/* Reductions round after every addition (separate statements: see FLT_EVAL_METHOD above). */
static float ropex__reduce4(const float *a) {
    float s02 = a[0] + a[2], s13 = a[1] + a[3];
    float r = s02 + s13;
    return r;
}
static float ropex__reduce8(const float *a) {
    float s[4];
    s[0] = a[0] + a[4]; s[1] = a[1] + a[5]; s[2] = a[2] + a[6]; s[3] = a[3] + a[7];
    return ropex__reduce4(s);
}

/* ---- scalar reference kernels: one output (row r, token t) ---- */
/* One block into the contract's 4 lanes: scale bytes sp, quants q (Q8_0: elements 16..31 at qh). */
static void ropex__acc_q8_0_blk(const unsigned char *sp, const signed char *q, const signed char *qh,
                                const signed char *x, float dx, float *acc) {
    float dd = ropex__q_h2f(ropex__q_ld16(sp)) * dx;
    int m, j;
    for (m = 0; m < 4; m++) {
        int32_t s = 0;
        for (j = 4 * m; j < 4 * m + 4; j++) s += q[j] * x[j] + qh[j] * x[16 + j];
        acc[m] = fmaf(dd, (float)s, acc[m]);
    }
}
/* One Q4_0 block into the row's accumulator: byte j of q holds elements j (low nibble) and j+16. */
static float ropex__acc_q4_0_blk(const unsigned char *sp, const unsigned char *q, const signed char *x,
                                 float dx, float acc) {
    float dd = ropex__q_h2f(ropex__q_ld16(sp)) * dx;
    int32_t s = 0;
    int j;
    for (j = 0; j < 16; j++) s += ((int)(q[j] & 0x0F) - 8) * x[j] + ((int)(q[j] >> 4) - 8) * x[16 + j];
    return fmaf(dd, (float)s, acc);
}
static float ropex__dot_q8_0_ref(const unsigned char *w, const ropex__act *a, size_t nb) {
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *blk = w + 34 * b;
        ropex__acc_q8_0_blk(blk, (const signed char *)(blk + 2), (const signed char *)(blk + 18),
                            a->qs + 32 * b, a->d[b], acc);
    }
    return ropex__reduce4(acc);
}
static float ropex__dot_q4_0_ref(const unsigned char *w, const ropex__act *a, size_t nb) {
    float acc = 0.0f;
    size_t b;
    for (b = 0; b < nb; b++) acc = ropex__acc_q4_0_blk(w + 18 * b, w + 18 * b + 2, a->qs + 32 * b, a->d[b], acc);
    return acc;
}
/* Row k of a repacked 8-row group (same arithmetic, blocks found through the layout). */
static float ropex__dot_x8_ref(ropex_type base, const unsigned char *grp, int k, const ropex__act *a, size_t nb) {
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc4 = 0.0f;
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *sp = grp + ropex__x8_scale_at(base, b, k);
        if (base == ROPEX_Q4_0) {
            unsigned char q[16];
            int j;
            for (j = 0; j < 16; j++) q[j] = grp[ropex__x8_q4_byte(b, k, j)];
            acc4 = ropex__acc_q4_0_blk(sp, q, a->qs + 32 * b, a->d[b], acc4);
        } else {
            const unsigned char *q = grp + ropex__x8_q8_at(b, k);
            ropex__acc_q8_0_blk(sp, (const signed char *)q, (const signed char *)(q + 32), a->qs + 32 * b, a->d[b], acc);
        }
    }
    return base == ROPEX_Q4_0 ? acc4 : ropex__reduce4(acc);
}

/* Float rows: continue the 8-lane accumulation from column c0 (SIMD paths finish tails here). */
static float ropex__dot_f32_tail(const unsigned char *w, const float *x, size_t c0, size_t cols, float *acc) {
    size_t c;
    for (c = c0; c < cols; c++) acc[c & 7] = fmaf(ropex__q_ldf32(w + 4 * c), x[c], acc[c & 7]);
    return ropex__reduce8(acc);
}
static float ropex__dot_f16_tail(const unsigned char *w, const float *x, size_t c0, size_t cols, float *acc) {
    size_t c;
    for (c = c0; c < cols; c++) acc[c & 7] = fmaf(ropex__q_h2f(ropex__q_ld16(w + 2 * c)), x[c], acc[c & 7]);
    return ropex__reduce8(acc);
}

typedef struct ropex__mm_job {
    ropex_type t;
    const unsigned char *w;
    size_t rows, cols, rb;      /* rb: bytes per weight row */
    const float *x;
    size_t n;
    float *y;
    const unsigned char *act;   /* quantized activations (integer types) */
    int ref;                    /* 1: scalar reference only */
    size_t rows8;               /* repacked layout (t is then its base type): rows [0, rows8) in groups */
    size_t chunk;               /* rows per work item (threads take items in turn) */
} ropex__mm_job;

/* Scalar: rows [r0, r1) x all tokens. */
static void ropex__mm_rows_ref(const ropex__mm_job *j, size_t r0, size_t r1) {
    size_t r, t, nb = j->cols / 32;
    for (t = 0; t < j->n; t++) {
        ropex__act a;
        const float *x = j->x + t * j->cols;
        float *y = j->y + t * j->rows;
        memset(&a, 0, sizeof a);
        if (ropex__is_block(j->t)) a = ropex__act_at(j->act, j->cols, t);
        for (r = r0; r < r1; r++) {
            const unsigned char *w = j->w + r * j->rb;
            float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            if (r < j->rows8) {
                y[r] = ropex__dot_x8_ref(j->t, j->w + (r & ~(size_t)7) * j->rb, (int)(r & 7), &a, nb);
                continue;
            }
            switch (j->t) {
            case ROPEX_F32: y[r] = ropex__dot_f32_tail(w, x, 0, j->cols, acc); break;
            case ROPEX_F16: y[r] = ropex__dot_f16_tail(w, x, 0, j->cols, acc); break;
            case ROPEX_Q8_0: y[r] = ropex__dot_q8_0_ref(w, &a, nb); break;
            case ROPEX_Q4_0: y[r] = ropex__dot_q4_0_ref(w, &a, nb); break;
            default: break;
            }
        }
    }
}

#ifndef ROPEX__MM_CHUNK
#  define ROPEX__MM_CHUNK 64   /* rows per chunk in prompt tiles (a multiple of 8) */
#endif
#if defined(ROPEX__AVX2)
/* ---- AVX2 (+FMA, F16C when available) ---- */
ROPEX__Q_INLINE __m128 ropex__avx2_d4(const unsigned char *p, size_t rb) {
#if defined(__F16C__) && defined(__x86_64__)
    /* assemble the four halves in a general register: keeps the vector pipes free. memcpy loads
       (x86 is little-endian): clang 14 turns the byte-wise ropex__q_ld16 here into byte loads,
       shifts and ors (GGML-layout Q4_0 matvec 1.2-1.3x the time of gcc's build) */
    uint16_t h0, h1, h2, h3;
    uint64_t u;
    memcpy(&h0, p, 2); memcpy(&h1, p + rb, 2); memcpy(&h2, p + 2 * rb, 2); memcpy(&h3, p + 3 * rb, 2);
    u = (uint64_t)h0 | ((uint64_t)h1 << 16) | ((uint64_t)h2 << 32) | ((uint64_t)h3 << 48);
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)u));
#elif defined(__F16C__)
    __m128i h = _mm_setr_epi16((short)ropex__q_ld16(p), (short)ropex__q_ld16(p + rb), (short)ropex__q_ld16(p + 2 * rb),
                               (short)ropex__q_ld16(p + 3 * rb), 0, 0, 0, 0);
    return _mm_cvtph_ps(h);
#else
    return _mm_setr_ps(ropex__q_h2f(ropex__q_ld16(p)), ropex__q_h2f(ropex__q_ld16(p + rb)),
                       ropex__q_h2f(ropex__q_ld16(p + 2 * rb)), ropex__q_h2f(ropex__q_ld16(p + 3 * rb)));
#endif
}
/* (v0+v2)+(v1+v3), the contract's lane reduction */
ROPEX__Q_INLINE float ropex__avx2_hsum4(__m128 v) {
    __m128 t = _mm_add_ps(v, _mm_movehl_ps(v, v));
    t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(t);
}
/* Writes a 2-row x 4-token tile: acc k holds [row a | row b] lanes of token k; y is token-major
   (row a at y[k*ys], row b at y[k*ys + yo]). */
ROPEX__Q_INLINE void ropex__avx2_store_2x4(float *y, size_t ys, size_t yo, __m256 acc0, __m256 acc1, __m256 acc2, __m256 acc3) {
    __m256 acc[4];
    int k;
    acc[0] = acc0; acc[1] = acc1; acc[2] = acc2; acc[3] = acc3;
    for (k = 0; k < 4; k++, y += ys) {
        y[0] = ropex__avx2_hsum4(_mm256_castps256_ps128(acc[k]));
        y[yo] = ropex__avx2_hsum4(_mm256_extractf128_ps(acc[k], 1));
    }
}

/* Q4_0 on the GGML layout: one register [row a quants | row b quants] (16 bytes each) as
   unsigned nibbles, maddubs against the broadcast activation halves xl/xh, widened by madd:
   [a: 4 partial int32 | b: 4 partial int32] (the offset 8 comes off the block sum later). */
ROPEX__Q_INLINE __m256i ropex__q4_avx2_pair(const unsigned char *pa, const unsigned char *pb, __m256i xl, __m256i xh) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)pa)),
                                        _mm_loadu_si128((const __m128i *)(const void *)pb), 1);
    __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(q, m4), xl),
                                 _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), xh));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}
#define ROPEX__Q4_X(a, b, xl, xh) do { \
        xl = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)((a)->qs + 32 * (b)))); \
        xh = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)((a)->qs + 32 * (b) + 16))); \
    } while (0)
#define ROPEX__Q4_CORR(a, b) (((const int32_t *)(const void *)(a)->aux)[b])
/* Q4_0, 4 rows x 1 token: pairs (0,2) and (1,3); two hadds leave [r0 r1 r0 r1 | r2 r3 r2 r3],
   one qword permute the four block sums in row order. */
static void ropex__q4_0_avx2_4x1(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y) {
    __m128 acc = _mm_setzero_ps();
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *p = w + 18 * b + 2;
        __m256i xl, xh, h;
        __m128i s;
        ROPEX__Q4_X(a, b, xl, xh);
        h = _mm256_hadd_epi32(ropex__q4_avx2_pair(p, p + 2 * rb, xl, xh), ropex__q4_avx2_pair(p + rb, p + 3 * rb, xl, xh));
        h = _mm256_permute4x64_epi64(_mm256_hadd_epi32(h, h), 0x08);
        s = _mm_sub_epi32(_mm256_castsi256_si128(h), _mm_set1_epi32(ROPEX__Q4_CORR(a, b)));
        acc = _mm_fmadd_ps(_mm_mul_ps(ropex__avx2_d4(p - 2, rb), _mm_set1_ps(a->d[b])), _mm_cvtepi32_ps(s), acc);
    }
    _mm_storeu_ps(y, acc);
}

/* y[k] and y[k+4] from acc k (k = 0..3): the 8-row Q8_0 kernel's outputs (rows k and k+4 share a register). */
#define ROPEX__STORE8(y) do { \
        y[0] = ropex__avx2_hsum4(_mm256_castps256_ps128(acc0)); y[4] = ropex__avx2_hsum4(_mm256_extractf128_ps(acc0, 1)); \
        y[1] = ropex__avx2_hsum4(_mm256_castps256_ps128(acc1)); y[5] = ropex__avx2_hsum4(_mm256_extractf128_ps(acc1, 1)); \
        y[2] = ropex__avx2_hsum4(_mm256_castps256_ps128(acc2)); y[6] = ropex__avx2_hsum4(_mm256_extractf128_ps(acc2, 1)); \
        y[3] = ropex__avx2_hsum4(_mm256_castps256_ps128(acc3)); y[7] = ropex__avx2_hsum4(_mm256_extractf128_ps(acc3, 1)); \
    } while (0)
/* Streaming from DRAM: while an 8-row Q4_0 tile is computed, the next tile (the contiguous
   bytes [w + tb, w + 2 tb)) is fetched into L2 as ONE sequential stream, 144 bytes per block
   iteration plus a line of overlap so no line is skipped. The kernel itself reads a tile as
   eight row streams, which the hardware prefetchers alone leave latency-bound. Integer address
   arithmetic: prefetch never faults, even past the matrix end. */
#define ROPEX__PF_NEXT_TILE(w, tb, off) do { \
        const char *pf_ = (const char *)(uintptr_t)((uintptr_t)(w) + (tb) + (off)); \
        _mm_prefetch(pf_, _MM_HINT_T1); _mm_prefetch(pf_ + 64, _MM_HINT_T1); _mm_prefetch(pf_ + 128, _MM_HINT_T1); \
    } while (0)
/* Q4_0, 8 rows x 1 token: pairs (k, k+4); three hadds leave the eight block sums in row order. */
static void ropex__q4_0_avx2_8x1(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y) {
    __m256 acc = _mm256_setzero_ps();
    const size_t r2 = 2 * rb, r3 = 3 * rb, r4 = 4 * rb;
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *p = w + 18 * b, *p4 = p + r4;   /* two bases: fewer live registers */
        __m256 d8;
        __m256i xl, xh, h01, h23, s;
        ROPEX__PF_NEXT_TILE(w, 8 * rb, 144 * b);
        d8 = _mm256_mul_ps(_mm256_set_m128(ropex__avx2_d4(p4, rb), ropex__avx2_d4(p, rb)),
                           _mm256_set1_ps(a->d[b]));     /* [d0 d1 d2 d3 | d4 d5 d6 d7] */
        ROPEX__Q4_X(a, b, xl, xh);
        h01 = _mm256_hadd_epi32(ropex__q4_avx2_pair(p + 2, p4 + 2, xl, xh), ropex__q4_avx2_pair(p + rb + 2, p4 + rb + 2, xl, xh));
        h23 = _mm256_hadd_epi32(ropex__q4_avx2_pair(p + r2 + 2, p4 + r2 + 2, xl, xh), ropex__q4_avx2_pair(p + r3 + 2, p4 + r3 + 2, xl, xh));
        s = _mm256_sub_epi32(_mm256_hadd_epi32(h01, h23), _mm256_set1_epi32(ROPEX__Q4_CORR(a, b)));
        acc = _mm256_fmadd_ps(d8, _mm256_cvtepi32_ps(s), acc);
    }
    _mm256_storeu_ps(y, acc);
}

/* Q8_0, 4 rows x 1 token: int8 weights widened to int16, madd against x as int16 (aux) gives
   lanes {2k,2k+1,16+2k,17+2k}; hadd of two rows packs the contract's lanes as
   [a m0, a m1, b m0, b m1 | a m2, a m3, b m2, b m3]. */
ROPEX__Q_INLINE __m256i ropex__q8_avx2_row(const unsigned char *p, __m256i xa, __m256i xb) {
    __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p + 2)));
    __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p + 18)));
    return _mm256_add_epi32(_mm256_madd_epi16(w0, xa), _mm256_madd_epi16(w1, xb));
}
ROPEX__Q_INLINE void ropex__q8_avx2_out2(__m256 acc, float *y) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    __m128 u = _mm_add_ps(t, _mm_shuffle_ps(t, t, 0xB1));   /* (m0+m2)+(m1+m3) per row */
    y[0] = _mm_cvtss_f32(u);
    y[1] = _mm_cvtss_f32(_mm_movehl_ps(u, u));
}
static void ropex__q8_0_avx2_4x1(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y) {
    const __m256i i01 = _mm256_setr_epi32(0, 0, 1, 1, 0, 0, 1, 1), i23 = _mm256_setr_epi32(2, 2, 3, 3, 2, 2, 3, 3);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *p = w + 34 * b;
        __m256 d8;
        __m256i xa, xb, h01, h23;
        if ((b & 1) == 0) {   /* the next 4-row tile into L2, row by row (measured better here than
                                 the Q4_0 kernel's single sequential stream) */
            const char *pf = (const char *)(uintptr_t)((uintptr_t)p + 4 * rb);
            _mm_prefetch(pf, _MM_HINT_T1); _mm_prefetch(pf + rb, _MM_HINT_T1);
            _mm_prefetch(pf + 2 * rb, _MM_HINT_T1); _mm_prefetch(pf + 3 * rb, _MM_HINT_T1);
        }
        d8 = _mm256_castps128_ps256(_mm_mul_ps(ropex__avx2_d4(p, rb), _mm_set1_ps(a->d[b])));
        xa = _mm256_load_si256((const __m256i *)(const void *)(a->aux + 32 * b));
        xb = _mm256_load_si256((const __m256i *)(const void *)(a->aux + 32 * b + 16));
        h01 = _mm256_hadd_epi32(ropex__q8_avx2_row(p, xa, xb), ropex__q8_avx2_row(p + rb, xa, xb));
        h23 = _mm256_hadd_epi32(ropex__q8_avx2_row(p + 2 * rb, xa, xb), ropex__q8_avx2_row(p + 3 * rb, xa, xb));
        acc0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d8, i01), _mm256_cvtepi32_ps(h01), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d8, i23), _mm256_cvtepi32_ps(h23), acc1);
    }
    ropex__q8_avx2_out2(acc0, y);
    ropex__q8_avx2_out2(acc1, y + 2);
}

/* F32 / F16, 4 rows x 1 token: one 8-lane accumulator per row, lane = column % 8. */
static void ropex__flt_avx2_4x1(ropex_type t, const unsigned char *w, size_t rb, size_t cols, const float *x, float *y) {
    __m256 acc[4];
    size_t c, c8 = cols & ~(size_t)7;
    int r;
    for (r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
    if (t == ROPEX_F32) {
        for (c = 0; c < c8; c += 8) {
            __m256 xv = _mm256_loadu_ps(x + c);
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)(w + 4 * c)), xv, acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)(w + rb + 4 * c)), xv, acc[1]);
            acc[2] = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)(w + 2 * rb + 4 * c)), xv, acc[2]);
            acc[3] = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)(w + 3 * rb + 4 * c)), xv, acc[3]);
        }
    } else {
#if defined(__F16C__)
        for (c = 0; c < c8; c += 8) {
            __m256 xv = _mm256_loadu_ps(x + c);
            acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * c))), xv, acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + rb + 2 * c))), xv, acc[1]);
            acc[2] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * rb + 2 * c))), xv, acc[2]);
            acc[3] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 3 * rb + 2 * c))), xv, acc[3]);
        }
#else
        c8 = 0;
#endif
    }
    for (r = 0; r < 4; r++) {
        float a8[8];
        _mm256_storeu_ps(a8, acc[r]);
        y[r] = t == ROPEX_F32 ? ropex__dot_f32_tail(w + r * rb, x, c8, cols, a8)
                              : ropex__dot_f16_tail(w + r * rb, x, c8, cols, a8);
    }
}
/* Prompt tiles: 2 rows x 4 tokens. Each weight block is unpacked once and used by four
   activation blocks; per (row pair, token) the work is the same as in the 4x1 kernels, so the
   lanes and the float order are identical. y[k*ys + 0..1] receive token k's two rows. */
ROPEX__Q_INLINE __m256 ropex__avx2_d2(const unsigned char *p, size_t rb, __m256i idx) {
#if defined(__F16C__)
    __m128 d = _mm_cvtph_ps(_mm_setr_epi16((short)ropex__q_ld16(p), (short)ropex__q_ld16(p + rb), 0, 0, 0, 0, 0, 0));
#else
    __m128 d = _mm_setr_ps(ropex__q_h2f(ropex__q_ld16(p)), ropex__q_h2f(ropex__q_ld16(p + rb)), 0.0f, 0.0f);
#endif
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d), idx);
}
/* Tokens of a tile lie at a fixed stride S in the work buffer (ropex__act_at), so one running
   pointer per activation array (block b of token 0) and S address every token: no per-token
   pointers to keep in registers or spill. ROPEX__TOK_NEXT advances them by one block. */
#define ROPEX__TOK_SETUP \
    const unsigned char *qb = (const unsigned char *)a[0].qs, *db = (const unsigned char *)a[0].d; \
    const unsigned char *ab = (const unsigned char *)a[0].aux; \
    const size_t S = (size_t)((const unsigned char *)a[1].qs - qb)
#define ROPEX__TOK_NEXT (qb += 32, db += 4, ab += 32)
#define ROPEX__TOK_D(k) _mm256_broadcast_ss((const float *)(const void *)(db + (size_t)(k) * S))
/* Q8_0 tiles use maddubs with the sign trick: |w| (unsigned, <= 128) times x carrying w's sign
   (|x| <= 127: activations are clamped to -127), so a pair sum is <= 32512 and never saturates.
   Registers hold [row a elements | row b elements] as in the Q4_0 kernels, so the madd by one
   of each half gives the contract's lanes directly (no horizontal add); |w| and w are made
   once per weight block and reused by the four tokens. */
/* Lanes of one half block: |w| (aw) times x carrying w's sign, pairs summed, then fours by madd. */
#define ROPEX__Q8_HALF(aw, w, x) _mm256_madd_epi16(_mm256_maddubs_epi16((aw), _mm256_sign_epi8((x), (w))), ones)
#define ROPEX__Q8_TOK(k, acc) do { \
        const unsigned char *t_ = qb + (size_t)(k) * S; \
        __m256i xl_ = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)t_)); \
        __m256i xh_ = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)(t_ + 16))); \
        __m256i s_ = _mm256_add_epi32(ROPEX__Q8_HALF(al, wl, xl_), ROPEX__Q8_HALF(ah, wh, xh_)); \
        acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, ROPEX__TOK_D(k)), _mm256_cvtepi32_ps(s_), acc); \
    } while (0)
static void ropex__q8_0_avx2_2x4(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y, size_t ys) {
    const __m256i i01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t b;
    ROPEX__TOK_SETUP;
    for (b = 0; b < nb; b++, ROPEX__TOK_NEXT) {
        const unsigned char *p = w + 34 * b;
        __m256 dw = ropex__avx2_d2(p, rb, i01);
        __m256i wl = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p + 2))),
                                             _mm_loadu_si128((const __m128i *)(const void *)(p + rb + 2)), 1);
        __m256i wh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p + 18))),
                                             _mm_loadu_si128((const __m128i *)(const void *)(p + rb + 18)), 1);
        __m256i al = _mm256_abs_epi8(wl), ah = _mm256_abs_epi8(wh);
        ROPEX__Q8_TOK(0, acc0);
        ROPEX__Q8_TOK(1, acc1);
        ROPEX__Q8_TOK(2, acc2);
        ROPEX__Q8_TOK(3, acc3);
    }
    ropex__avx2_store_2x4(y, ys, 1, acc0, acc1, acc2, acc3);
}
/* 2 rows x 8 tokens: the 2x4 kernels' per-token work (same lanes, same float order), with the
   weight unpacking and scale conversion shared by twice as many tokens. */
#define ROPEX__OUT8(yo) do { \
        __m256 o_[8]; \
        int k_; \
        o_[0] = acc0; o_[1] = acc1; o_[2] = acc2; o_[3] = acc3; o_[4] = acc4; o_[5] = acc5; o_[6] = acc6; o_[7] = acc7; \
        for (k_ = 0; k_ < 8; k_++, y += ys) { \
            y[0] = ropex__avx2_hsum4(_mm256_castps256_ps128(o_[k_])); \
            y[yo] = ropex__avx2_hsum4(_mm256_extractf128_ps(o_[k_], 1)); \
        } \
    } while (0)
static void ropex__q8_0_avx2_2x8(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y, size_t ys) {
    const __m256i i01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0, acc4 = acc0, acc5 = acc0, acc6 = acc0, acc7 = acc0;
    size_t b;
    ROPEX__TOK_SETUP;
    for (b = 0; b < nb; b++, ROPEX__TOK_NEXT) {
        const unsigned char *p = w + 34 * b;
        __m256 dw = ropex__avx2_d2(p, rb, i01);
        __m256i wl = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p + 2))),
                                             _mm_loadu_si128((const __m128i *)(const void *)(p + rb + 2)), 1);
        __m256i wh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p + 18))),
                                             _mm_loadu_si128((const __m128i *)(const void *)(p + rb + 18)), 1);
        __m256i al = _mm256_abs_epi8(wl), ah = _mm256_abs_epi8(wh);
        ROPEX__Q8_TOK(0, acc0); ROPEX__Q8_TOK(1, acc1); ROPEX__Q8_TOK(2, acc2); ROPEX__Q8_TOK(3, acc3);
        ROPEX__Q8_TOK(4, acc4); ROPEX__Q8_TOK(5, acc5); ROPEX__Q8_TOK(6, acc6); ROPEX__Q8_TOK(7, acc7);
    }
    ROPEX__OUT8(1);
}
/* 4 rows x 8 tokens for Q8_0 (a[0..7]). */
static void ropex__simd_4x8(const unsigned char *w, size_t rb, size_t cols, const ropex__act *a, float *y, size_t ys) {
    ropex__q8_0_avx2_2x8(w, rb, cols / 32, a, y, ys);
    ropex__q8_0_avx2_2x8(w + 2 * rb, rb, cols / 32, a, y + 2, ys);
}
/* 4 rows x 4 tokens for Q8_0 (Q4_0 prompts take the 8-row tiles of ropex__mm_q4_tiles);
   returns 0 when the type has no tile kernel here. */
static int ropex__simd_4x4(ropex_type t, const unsigned char *w, size_t rb, size_t cols, const ropex__act *a,
                           float *y, size_t ys) {
    switch (t) {
    case ROPEX_Q8_0:
        ropex__q8_0_avx2_2x4(w, rb, cols / 32, a, y, ys);
        ropex__q8_0_avx2_2x4(w + 2 * rb, rb, cols / 32, a, y + 2, ys);
        return 1;
    default:
        return 0;
    }
}
#define ROPEX__HAVE_SIMD_4X4 1
#ifndef ROPEX__NO_Q4_8X1
#define ROPEX__HAVE_Q4_8X1 1
#endif

static void ropex__simd_4x1(ropex_type t, const unsigned char *w, size_t rb, size_t cols, const ropex__act *a,
                            const float *x, float *y) {
    switch (t) {
    case ROPEX_Q4_0: ropex__q4_0_avx2_4x1(w, rb, cols / 32, a, y); break;
    case ROPEX_Q8_0: ropex__q8_0_avx2_4x1(w, rb, cols / 32, a, y); break;
    default: ropex__flt_avx2_4x1(t, w, rb, cols, x, y); break;
    }
}
#define ROPEX__HAVE_SIMD_4X1 1

/* ---- repacked layouts (ropex_repack): an 8-row group is one sequential stream ----
   Group block b: 8 fp16 scales, then Q8_0: pairs (k, k+4) as [row k | row k+4] registers (the
   registers the kernels above assemble with inserts: same lanes, same float order); Q4_0: four
   chunks of 8 rows x 4 bytes (rows in lanes, the one-sum-per-block rule). */
ROPEX__Q_INLINE __m256 ropex__avx2_d8(const unsigned char *p) {
#if defined(__F16C__)
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
#else
    return _mm256_setr_ps(ropex__q_h2f(ropex__q_ld16(p)), ropex__q_h2f(ropex__q_ld16(p + 2)),
                          ropex__q_h2f(ropex__q_ld16(p + 4)), ropex__q_h2f(ropex__q_ld16(p + 6)),
                          ropex__q_h2f(ropex__q_ld16(p + 8)), ropex__q_h2f(ropex__q_ld16(p + 10)),
                          ropex__q_h2f(ropex__q_ld16(p + 12)), ropex__q_h2f(ropex__q_ld16(p + 14)));
#endif
}
#ifndef ROPEX__X8_PF
#  define ROPEX__X8_PF 1024   /* prefetch distance in bytes along a group's stream (Q8_0) */
#endif
/* Q4_0's distance: measured over a token's TinyLlama-shaped matvecs, 1.5-2 KB ahead streams a few
   percent faster than 1 KB (Q8_0 is slower beyond 1 KB). */
#ifndef ROPEX__X8_PF_Q4
#  define ROPEX__X8_PF_Q4 1792
#endif
/* Q4_0 repacked: chunk i of a block (32 bytes at 16 + 32i) is 8 rows x bytes 4i..4i+3, i.e.
   after the nibble split 8 rows x elements 4i..4i+3 (low) and 16+4i..16+4i+3 (high). maddubs
   against the token's 4 matching activation bytes (broadcast) gives 2 int16 per row; the eight
   of a block add in int16 (<= 16*15*127 per lane), one madd finishes each row's block sum. */
#define ROPEX__Q4X_SPLIT(p) \
    __m256i q0_ = _mm256_loadu_si256((const __m256i *)(const void *)((p) + 16)); \
    __m256i q1_ = _mm256_loadu_si256((const __m256i *)(const void *)((p) + 48)); \
    __m256i q2_ = _mm256_loadu_si256((const __m256i *)(const void *)((p) + 80)); \
    __m256i q3_ = _mm256_loadu_si256((const __m256i *)(const void *)((p) + 112)); \
    __m256i l0 = _mm256_and_si256(q0_, m4), h0 = _mm256_and_si256(_mm256_srli_epi16(q0_, 4), m4); \
    __m256i l1 = _mm256_and_si256(q1_, m4), h1 = _mm256_and_si256(_mm256_srli_epi16(q1_, 4), m4); \
    __m256i l2 = _mm256_and_si256(q2_, m4), h2 = _mm256_and_si256(_mm256_srli_epi16(q2_, 4), m4); \
    __m256i l3 = _mm256_and_si256(q3_, m4), h3 = _mm256_and_si256(_mm256_srli_epi16(q3_, 4), m4)
#define ROPEX__Q4X_BX(xq, o) _mm256_castps_si256(_mm256_broadcast_ss((const float *)(const void *)((xq) + (o))))
#define ROPEX__Q4X_MUL(w, xq, o) _mm256_maddubs_epi16((w), ROPEX__Q4X_BX(xq, o))
/* 8 block sums (int32, rows in lanes) of one token: xq its 32 activation bytes, corr 8*sum(q). */
#define ROPEX__Q4X_SUM(xq, corr) _mm256_sub_epi32(_mm256_madd_epi16(_mm256_add_epi16( \
        _mm256_add_epi16(_mm256_add_epi16(ROPEX__Q4X_MUL(l0, xq, 0), ROPEX__Q4X_MUL(h0, xq, 16)), \
                         _mm256_add_epi16(ROPEX__Q4X_MUL(l1, xq, 4), ROPEX__Q4X_MUL(h1, xq, 20))), \
        _mm256_add_epi16(_mm256_add_epi16(ROPEX__Q4X_MUL(l2, xq, 8), ROPEX__Q4X_MUL(h2, xq, 24)), \
                         _mm256_add_epi16(ROPEX__Q4X_MUL(l3, xq, 12), ROPEX__Q4X_MUL(h3, xq, 28)))), ones), \
        _mm256_set1_epi32(corr))
/* Q4_0 repacked, 8 rows x 1 token (g: the group; 144 bytes per block column). */
static void ropex__q4x8_avx2_8x1(const unsigned char *g, size_t nb, const ropex__act *a, float *y) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *p = g + 144 * b;
        const char *pf = (const char *)(uintptr_t)((uintptr_t)p + ROPEX__X8_PF_Q4);   /* never faults */
        const signed char *xq = a->qs + 32 * b;
        /* four block columns are 576 bytes, 9 lines: 3 + 2 + 2 + 2 prefetches touch each line once */
        switch (b & 3) {
        case 0: _mm_prefetch(pf, _MM_HINT_T0); _mm_prefetch(pf + 64, _MM_HINT_T0); _mm_prefetch(pf + 128, _MM_HINT_T0); break;
        case 1: _mm_prefetch(pf + 48, _MM_HINT_T0); _mm_prefetch(pf + 112, _MM_HINT_T0); break;
        case 2: _mm_prefetch(pf + 32, _MM_HINT_T0); _mm_prefetch(pf + 96, _MM_HINT_T0); break;
        default: _mm_prefetch(pf + 16, _MM_HINT_T0); _mm_prefetch(pf + 80, _MM_HINT_T0); break;
        }
        {
            ROPEX__Q4X_SPLIT(p);
            __m256i s = ROPEX__Q4X_SUM(xq, ROPEX__Q4_CORR(a, b));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(ropex__avx2_d8(p), _mm256_set1_ps(a->d[b])), _mm256_cvtepi32_ps(s), acc);
        }
    }
    _mm256_storeu_ps(y, acc);
}
/* Q4_0 prompt tile: 8 rows (a repacked group or a piece of one: nb block columns from g) x nt
   tokens (1..4; token k's activations at a->qs + k*S etc., a already at the piece's first
   block). Row k of token t goes to y[t*ys + k]; cont: the accumulators start from y (a later
   piece of the same rows: the contract's sum runs on in block order). The split weights stay
   in registers for all tokens. */
ROPEX__Q_INLINE void ropex__q4x8_avx2_tile(const unsigned char *g, size_t nb, const ropex__act *a, size_t S, int nt,
                                           float *y, size_t ys, int cont) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const unsigned char *qb = (const unsigned char *)a->qs, *db = (const unsigned char *)a->d;
    const unsigned char *cb = (const unsigned char *)a->aux;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t b;
    if (cont) {
        acc0 = _mm256_loadu_ps(y);
        if (nt > 1) acc1 = _mm256_loadu_ps(y + ys);
        if (nt > 2) acc2 = _mm256_loadu_ps(y + 2 * ys);
        if (nt > 3) acc3 = _mm256_loadu_ps(y + 3 * ys);
    }
    for (b = 0; b < nb; b++, qb += 32, db += 4, cb += 4) {
        const unsigned char *p = g + 144 * b;
        __m256 dw = ropex__avx2_d8(p);
        ROPEX__Q4X_SPLIT(p);
#define ROPEX__Q4X_TOK(k, acc) do { \
            __m256i s_ = ROPEX__Q4X_SUM(qb + (size_t)(k) * S, *(const int32_t *)(const void *)(cb + (size_t)(k) * S)); \
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss((const float *)(const void *)(db + (size_t)(k) * S))), \
                                  _mm256_cvtepi32_ps(s_), acc); \
        } while (0)
        ROPEX__Q4X_TOK(0, acc0);
        if (nt > 1) ROPEX__Q4X_TOK(1, acc1);
        if (nt > 2) ROPEX__Q4X_TOK(2, acc2);
        if (nt > 3) ROPEX__Q4X_TOK(3, acc3);
#undef ROPEX__Q4X_TOK
    }
    _mm256_storeu_ps(y, acc0);
    if (nt > 1) _mm256_storeu_ps(y + ys, acc1);
    if (nt > 2) _mm256_storeu_ps(y + 2 * ys, acc2);
    if (nt > 3) _mm256_storeu_ps(y + 3 * ys, acc3);
}
/* one copy for full tiles (nt a constant: no branch in the loop), one for the last tokens */
ROPEX__NOINLINE void ropex__q4x8_tile4(const unsigned char *g, size_t nb, const ropex__act *a, size_t S, float *y,
                                       size_t ys, int cont) {
    ropex__q4x8_avx2_tile(g, nb, a, S, 4, y, ys, cont);
}
ROPEX__NOINLINE void ropex__q4x8_tile_n(const unsigned char *g, size_t nb, const ropex__act *a, size_t S, int nt,
                                        float *y, size_t ys, int cont) {
    ropex__q4x8_avx2_tile(g, nb, a, S, nt, y, ys, cont);
}
#ifndef ROPEX__Q4_PIECE
#  define ROPEX__Q4_PIECE 64   /* block columns per piece of a Q4_0 prompt tile (9 KB of weights) */
#endif
/* Q4_0 prompts (n >= 2 tokens), rows [r0, r0 + 8*groups): each 8-row group, a piece of up to
   ROPEX__Q4_PIECE block columns at a time, meets every token; the piece's weights stay in L1.
   GGML layout (x8 == 0): the piece is first repacked into a buffer on the stack (one pass,
   reused by all tokens). */
static void ropex__mm_q4_tiles(const ropex__mm_job *j, size_t r0, size_t groups, int x8) {
    unsigned char buf[144 * ROPEX__Q4_PIECE];
    size_t nb = j->cols / 32, S = ropex__act_stride(j->cols), gi, b0, b, t;
    for (gi = 0; gi < groups; gi++) {
        size_t r = r0 + 8 * gi;
        const unsigned char *grp = j->w + r * j->rb;
        for (b0 = 0; b0 < nb; b0 += ROPEX__Q4_PIECE) {
            size_t pb = nb - b0 < ROPEX__Q4_PIECE ? nb - b0 : ROPEX__Q4_PIECE;
            const unsigned char *g = grp + 144 * b0;
            if (!x8) {
                for (b = 0; b < pb; b++) ropex__x8_q4_block(buf + 144 * b, grp, j->rb, b0 + b);
                g = buf;
            }
            for (t = 0; t < j->n; t += 4) {
                ropex__act a = ropex__act_at(j->act, j->cols, t);
                float *y = j->y + t * j->rows + r;
                a.qs += 32 * b0;
                a.d += b0;
                a.aux += 2 * b0;
                if (t + 4 <= j->n) ropex__q4x8_tile4(g, pb, &a, S, y, j->rows, b0 > 0);
                else ropex__q4x8_tile_n(g, pb, &a, S, (int)(j->n - t), y, j->rows, b0 > 0);
            }
        }
    }
}
#define ROPEX__HAVE_Q4_TILES 1
/* Q8_0 repacked, 8 rows x 1 token (272 bytes per block column): maddubs with the sign trick
   as in the Q8_0 tiles, lanes as in the contract. */
#define ROPEX__Q8X_PAIR(pp, acc, dv) do { \
        __m256i wl_ = _mm256_loadu_si256((const __m256i *)(const void *)(pp)); \
        __m256i wh_ = _mm256_loadu_si256((const __m256i *)(const void *)((pp) + 32)); \
        __m256i s_ = _mm256_add_epi32(ROPEX__Q8_HALF(_mm256_abs_epi8(wl_), wl_, xl), \
                                      ROPEX__Q8_HALF(_mm256_abs_epi8(wh_), wh_, xh)); \
        acc = _mm256_fmadd_ps(dv, _mm256_cvtepi32_ps(s_), acc); \
    } while (0)
static void ropex__q8x8_avx2_8x1(const unsigned char *g, size_t nb, const ropex__act *a, float *y) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t b;
    for (b = 0; b < nb; b++) {
        const unsigned char *p = g + 272 * b;
        const char *pf = (const char *)(uintptr_t)((uintptr_t)p + ROPEX__X8_PF);
        __m256 d8;
        __m256i xl, xh;
        _mm_prefetch(pf, _MM_HINT_T0); _mm_prefetch(pf + 64, _MM_HINT_T0); _mm_prefetch(pf + 128, _MM_HINT_T0);
        _mm_prefetch(pf + 192, _MM_HINT_T0); _mm_prefetch(pf + 256, _MM_HINT_T0);
        d8 = _mm256_mul_ps(ropex__avx2_d8(p), _mm256_set1_ps(a->d[b]));
        xl = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)(a->qs + 32 * b)));
        xh = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(const void *)(a->qs + 32 * b + 16)));
        ROPEX__Q8X_PAIR(p + 16, acc0, _mm256_permute_ps(d8, 0x00));
        ROPEX__Q8X_PAIR(p + 80, acc1, _mm256_permute_ps(d8, 0x55));
        ROPEX__Q8X_PAIR(p + 144, acc2, _mm256_permute_ps(d8, 0xAA));
        ROPEX__Q8X_PAIR(p + 208, acc3, _mm256_permute_ps(d8, 0xFF));
    }
    ROPEX__STORE8(y);
}
/* Prompt tiles on a repacked group: pair k (rows k and k+4) x 4 or 8 tokens, the per-token work
   of the 2x4/2x8 kernels above; y[t*ys] receives row k, y[t*ys + 4] row k+4. */
#define ROPEX__X8_PAIR_SETUP(bs) \
        const unsigned char *p = g + (bs) * b; \
        __m256 dw = _mm256_permutevar_ps(ropex__avx2_d8(p), kidx)
ROPEX__Q_INLINE void ropex__q8x8_avx2_pair(const unsigned char *g, int k, size_t nb, const ropex__act *a, int nt,
                                           float *y, size_t ys) {
    const __m256i ones = _mm256_set1_epi16(1), kidx = _mm256_set1_epi32(k);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0, acc4 = acc0, acc5 = acc0, acc6 = acc0, acc7 = acc0;
    size_t b;
    ROPEX__TOK_SETUP;
    for (b = 0; b < nb; b++, ROPEX__TOK_NEXT) {
        ROPEX__X8_PAIR_SETUP(272);
        __m256i wl = _mm256_loadu_si256((const __m256i *)(const void *)(p + 16 + 64 * k));
        __m256i wh = _mm256_loadu_si256((const __m256i *)(const void *)(p + 48 + 64 * k));
        __m256i al = _mm256_abs_epi8(wl), ah = _mm256_abs_epi8(wh);
        ROPEX__Q8_TOK(0, acc0); ROPEX__Q8_TOK(1, acc1); ROPEX__Q8_TOK(2, acc2); ROPEX__Q8_TOK(3, acc3);
        if (nt == 8) { ROPEX__Q8_TOK(4, acc4); ROPEX__Q8_TOK(5, acc5); ROPEX__Q8_TOK(6, acc6); ROPEX__Q8_TOK(7, acc7); }
    }
    if (nt == 8) ROPEX__OUT8(4);
    else ropex__avx2_store_2x4(y, ys, 4, acc0, acc1, acc2, acc3);
}
/* one copy per tile width (nt a constant: no branch in the loop, registers for 4 or 8 sums) */
ROPEX__NOINLINE void ropex__x8_pair8(const unsigned char *g, int k, size_t nb, const ropex__act *a, float *y, size_t ys) {
    ropex__q8x8_avx2_pair(g, k, nb, a, 8, y, ys);
}
ROPEX__NOINLINE void ropex__x8_pair4(const unsigned char *g, int k, size_t nb, const ropex__act *a, float *y, size_t ys) {
    ropex__q8x8_avx2_pair(g, k, nb, a, 4, y, ys);
}
/* Rows [r0, r1) of the repacked part (whole groups), all tokens; the same tiling as the GGML
   layout path (chunks of rows meet every token group). */
static void ropex__mm_rows_x8(const ropex__mm_job *j, size_t r0, size_t r1) {
    size_t nb = j->cols / 32, t, r, rc, re, k;
    int q4 = j->t == ROPEX_Q4_0;
    if (q4 && j->n >= 2) {
        ropex__mm_q4_tiles(j, r0, (r1 - r0) / 8, 1);
        return;
    }
    for (rc = r0; rc < r1; rc = re) {
        re = r1 - rc > ROPEX__MM_CHUNK ? rc + ROPEX__MM_CHUNK : r1;
        for (t = 0; t + 4 <= j->n;) {   /* Q8_0 only: Q4_0 with n >= 2 took the tiles above */
            ropex__act at[8];
            int nt = t + 8 <= j->n ? 8 : 4, kk;
            for (k = 0; k < (size_t)nt; k++) at[k] = ropex__act_at(j->act, j->cols, t + k);
            for (r = rc; r < re; r += 8)
                for (kk = 0; kk < 4; kk++) {
                    float *y = j->y + t * j->rows + r + (size_t)kk;
                    if (nt == 8) ropex__x8_pair8(j->w + r * j->rb, kk, nb, at, y, j->rows);
                    else ropex__x8_pair4(j->w + r * j->rb, kk, nb, at, y, j->rows);
                }
            t += (size_t)nt;
        }
        for (; t < j->n; t++) {
            ropex__act a = ropex__act_at(j->act, j->cols, t);
            for (r = rc; r < re; r += 8) {
                if (q4) ropex__q4x8_avx2_8x1(j->w + r * j->rb, nb, &a, j->y + t * j->rows + r);
                else ropex__q8x8_avx2_8x1(j->w + r * j->rb, nb, &a, j->y + t * j->rows + r);
            }
        }
    }
}
#define ROPEX__HAVE_X8 1
#endif /* ROPEX__AVX2 */

#if defined(ROPEX__NEON)
/* ---- NEON (armv7 and aarch64), with sdot when __ARM_FEATURE_DOTPROD ---- */
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#  define ROPEX__NEON_FMA 1
#endif
/* The contract's 4 lanes: lane m = sum over {4m..4m+3} of a0*b0 (elements 0..15) plus the
   same of a1*b1 (elements 16..31). Products of int8 fit int16 and two of them too. */
ROPEX__Q_INLINE int32x4_t ropex__neon_dot32(int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
#if defined(ROPEX__DOTPROD)
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, b0), a1, b1);
#else
    int16x8_t pa = vmlal_s8(vmull_s8(vget_low_s8(a0), vget_low_s8(b0)), vget_low_s8(a1), vget_low_s8(b1));
    int16x8_t pb = vmlal_s8(vmull_s8(vget_high_s8(a0), vget_high_s8(b0)), vget_high_s8(a1), vget_high_s8(b1));
    int32x4_t sa = vpaddlq_s16(pa), sb = vpaddlq_s16(pb);   /* lanes {2j,2j+1,16+2j,17+2j} (+8 for sb) */
#  if defined(__aarch64__)
    return vpaddq_s32(sa, sb);
#  else
    return vcombine_s32(vpadd_s32(vget_low_s32(sa), vget_high_s32(sa)), vpadd_s32(vget_low_s32(sb), vget_high_s32(sb)));
#  endif
#endif
}
ROPEX__Q_INLINE float32x4_t ropex__neon_acc(float32x4_t acc, float dd, int32x4_t s) {
#if defined(ROPEX__NEON_FMA)
    return vfmaq_f32(acc, vdupq_n_f32(dd), vcvtq_f32_s32(s));
#else
    float a[4];
    int32_t v[4];
    int m;
    vst1q_f32(a, acc);
    vst1q_s32(v, s);
    for (m = 0; m < 4; m++) a[m] = fmaf(dd, (float)v[m], a[m]);
    return vld1q_f32(a);
#endif
}
ROPEX__Q_INLINE float ropex__neon_out4(float32x4_t acc) {
    float32x2_t t = vadd_f32(vget_low_f32(acc), vget_high_f32(acc));   /* [a0+a2, a1+a3] */
    float r = vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
    return r;
}
/* Block scales of 4 rows as floats (hardware fp16 conversion on aarch64). */
ROPEX__Q_INLINE float32x4_t ropex__neon_d4(const unsigned char *p, size_t rb) {
#if defined(__aarch64__)
    uint16x4_t h = vdup_n_u16(ropex__q_ld16(p));
    h = vset_lane_u16(ropex__q_ld16(p + rb), h, 1);
    h = vset_lane_u16(ropex__q_ld16(p + 2 * rb), h, 2);
    h = vset_lane_u16(ropex__q_ld16(p + 3 * rb), h, 3);
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
#else
    float d[4];
    d[0] = ropex__q_h2f(ropex__q_ld16(p));
    d[1] = ropex__q_h2f(ropex__q_ld16(p + rb));
    d[2] = ropex__q_h2f(ropex__q_ld16(p + 2 * rb));
    d[3] = ropex__q_h2f(ropex__q_ld16(p + 3 * rb));
    return vld1q_f32(d);
#endif
}
/* One Q4_0 row block (signed nibbles lo = elements 0..15, hi = 16..31) into 4 int32 partial sums. */
ROPEX__Q_INLINE int32x4_t ropex__neon_q4sum(int8x16_t lo, int8x16_t x0, int8x16_t hi, int8x16_t x1) {
#if defined(ROPEX__DOTPROD)
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, x0), hi, x1);
#else
    int16x8_t p = vmull_s8(vget_low_s8(lo), vget_low_s8(x0));   /* 4 products per lane: <= 4*8*127 */
    p = vmlal_s8(p, vget_high_s8(lo), vget_high_s8(x0));
    p = vmlal_s8(p, vget_low_s8(hi), vget_low_s8(x1));
    p = vmlal_s8(p, vget_high_s8(hi), vget_high_s8(x1));
    return vpaddlq_s16(p);
#endif
}
/* [sum(s0), sum(s1), sum(s2), sum(s3)] */
ROPEX__Q_INLINE int32x4_t ropex__neon_hsum4x4(int32x4_t s0, int32x4_t s1, int32x4_t s2, int32x4_t s3) {
#if defined(__aarch64__)
    return vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
#else
    int32x2_t t0 = vpadd_s32(vget_low_s32(s0), vget_high_s32(s0)), t1 = vpadd_s32(vget_low_s32(s1), vget_high_s32(s1));
    int32x2_t t2 = vpadd_s32(vget_low_s32(s2), vget_high_s32(s2)), t3 = vpadd_s32(vget_low_s32(s3), vget_high_s32(s3));
    return vcombine_s32(vpadd_s32(t0, t1), vpadd_s32(t2, t3));
#endif
}
/* Q4_0, 4 rows x 1 token: four block sums, then one fma per row (lanes = rows). */
static void ropex__q4_0_neon_4x1(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t k8 = vdupq_n_s8(8);
    float32x4_t acc = vdupq_n_f32(0.0f);
    size_t b;
    int r;
    for (b = 0; b < nb; b++) {
        const unsigned char *p = w + 18 * b;
        int8x16_t x0 = vld1q_s8(a->qs + 32 * b), x1 = vld1q_s8(a->qs + 32 * b + 16);
        float32x4_t dd = vmulq_n_f32(ropex__neon_d4(p, rb), a->d[b]);   /* exact products */
        int32x4_t s[4];
        for (r = 0; r < 4; r++) {
            uint8x16_t q = vld1q_u8(p + (size_t)r * rb + 2);
            int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), k8);
            int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), k8);
            s[r] = ropex__neon_q4sum(lo, x0, hi, x1);
        }
        {
            float32x4_t v = vcvtq_f32_s32(ropex__neon_hsum4x4(s[0], s[1], s[2], s[3]));
#if defined(ROPEX__NEON_FMA)
            acc = vfmaq_f32(acc, dd, v);
#else
            float av[4], dv[4], vv[4];
            vst1q_f32(av, acc); vst1q_f32(dv, dd); vst1q_f32(vv, v);
            for (r = 0; r < 4; r++) av[r] = fmaf(dv[r], vv[r], av[r]);
            acc = vld1q_f32(av);
#endif
        }
    }
    vst1q_f32(y, acc);
}
static void ropex__q8_0_neon_4x1(const unsigned char *w, size_t rb, size_t nb, const ropex__act *a, float *y) {
    float32x4_t acc[4];
    size_t b;
    int r;
    for (r = 0; r < 4; r++) acc[r] = vdupq_n_f32(0.0f);
    for (b = 0; b < nb; b++) {
        const unsigned char *p = w + 34 * b;
        int8x16_t x0 = vld1q_s8(a->qs + 32 * b), x1 = vld1q_s8(a->qs + 32 * b + 16);
        float32x4_t dd = vmulq_n_f32(ropex__neon_d4(p, rb), a->d[b]);
        float ddr[4];
        vst1q_f32(ddr, dd);
        for (r = 0; r < 4; r++) {
            const int8_t *q = (const int8_t *)(p + (size_t)r * rb + 2);
            acc[r] = ropex__neon_acc(acc[r], ddr[r], ropex__neon_dot32(vld1q_s8(q), x0, vld1q_s8(q + 16), x1));
        }
    }
    for (r = 0; r < 4; r++) y[r] = ropex__neon_out4(acc[r]);
}
static float ropex__flt_neon_row(ropex_type t, const unsigned char *w, size_t cols, const float *x) {
    float a8[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    size_t c = 0;
#if defined(ROPEX__NEON_FMA)
    float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
    size_t c8 = cols & ~(size_t)7;
    if (t == ROPEX_F32) {
        for (; c < c8; c += 8) {
            lo = vfmaq_f32(lo, vreinterpretq_f32_u8(vld1q_u8(w + 4 * c)), vld1q_f32(x + c));
            hi = vfmaq_f32(hi, vreinterpretq_f32_u8(vld1q_u8(w + 4 * c + 16)), vld1q_f32(x + c + 4));
        }
    }
#  if defined(__aarch64__)
    else {
        for (; c < c8; c += 8) {
            float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(w + 2 * c));
            lo = vfmaq_f32(lo, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(x + c));
            hi = vfmaq_f32(hi, vcvt_f32_f16(vget_high_f16(h)), vld1q_f32(x + c + 4));
        }
    }
#  endif
    vst1q_f32(a8, lo);
    vst1q_f32(a8 + 4, hi);
#endif
    return t == ROPEX_F32 ? ropex__dot_f32_tail(w, x, c, cols, a8) : ropex__dot_f16_tail(w, x, c, cols, a8);
}
static void ropex__simd_4x1(ropex_type t, const unsigned char *w, size_t rb, size_t cols, const ropex__act *a,
                            const float *x, float *y) {
    int r;
    switch (t) {
    case ROPEX_Q4_0: ropex__q4_0_neon_4x1(w, rb, cols / 32, a, y); break;
    case ROPEX_Q8_0: ropex__q8_0_neon_4x1(w, rb, cols / 32, a, y); break;
    default:
        for (r = 0; r < 4; r++) y[r] = ropex__flt_neon_row(t, w + (size_t)r * rb, cols, x);
        break;
    }
}
#define ROPEX__HAVE_SIMD_4X1 1
#endif /* ROPEX__NEON */

/* SIMD: rows [r0, r1) x all tokens, 4-row tiles; leftover rows take the reference (which
   gives the same bits). Row tiles outside, tokens inside: the tile's weights stay in L1. */
static void ropex__mm_rows_ggml(const ropex__mm_job *j, size_t r0, size_t r1) {
#if defined(ROPEX__HAVE_SIMD_4X1)
    size_t r, t, rc, re, r4 = r0 + ((r1 - r0) & ~(size_t)3), step;
    float yt[8];
#if defined(ROPEX__HAVE_Q4_TILES)
    if (j->t == ROPEX_Q4_0 && j->n >= 2 && j->act && r1 - r0 >= 8) {
        size_t groups = (r1 - r0) / 8;
        ropex__mm_q4_tiles(j, r0, groups, 0);
        r0 += 8 * groups;
        r4 = r0 + ((r1 - r0) & ~(size_t)3);
    }
#endif
    /* Prompt tiles: a chunk of rows (weights stay in L2) meets every token group before the
       next chunk, so the activations come from L3 once per chunk, not once per 8 rows. The
       order of tiles never changes a result: each output is one tile's work. */
    for (rc = r0; rc < r4; rc = re) {
        re = r4 - rc > ROPEX__MM_CHUNK ? rc + ROPEX__MM_CHUNK : r4;
        t = 0;
#if defined(ROPEX__HAVE_SIMD_4X4)
        if (j->act && j->t == ROPEX_Q8_0) {
            for (; t + 8 <= j->n; t += 8) {
                ropex__act a8[8];
                size_t k;
                for (k = 0; k < 8; k++) a8[k] = ropex__act_at(j->act, j->cols, t + k);
                for (r = rc; r < re; r += 4)
                    ropex__simd_4x8(j->w + r * j->rb, j->rb, j->cols, a8, j->y + t * j->rows + r, j->rows);
            }
            for (; t + 4 <= j->n; t += 4) {
                ropex__act a4[4];
                size_t k;
                for (k = 0; k < 4; k++) a4[k] = ropex__act_at(j->act, j->cols, t + k);
                for (r = rc; r < re; r += 4)
                    (void)ropex__simd_4x4(j->t, j->w + r * j->rb, j->rb, j->cols, a4, j->y + t * j->rows + r, j->rows);
            }
        }
#endif
        for (; t < j->n; t++) {
            ropex__act a;
            if (j->act) a = ropex__act_at(j->act, j->cols, t);
            else memset(&a, 0, sizeof a);
            for (r = rc; r < re; r += step) {
                const unsigned char *w = j->w + r * j->rb;
                float *y = j->y + t * j->rows + r;
                size_t k;
                step = 4;
#if defined(ROPEX__HAVE_Q4_8X1)
                if (j->t == ROPEX_Q4_0 && r + 8 <= re) step = 8;
                if (step == 8) ropex__q4_0_avx2_8x1(w, j->rb, j->cols / 32, &a, yt);
                else
#endif
                ropex__simd_4x1(j->t, w, j->rb, j->cols, &a, j->x + t * j->cols, yt);
                for (k = 0; k < step; k++) y[k] = yt[k];
            }
        }
    }
    if (r4 < r1) ropex__mm_rows_ref(j, r4, r1);
#else
    ropex__mm_rows_ref(j, r0, r1);
#endif
}

static void ropex__mm_rows_simd(const ropex__mm_job *j, size_t r0, size_t r1) {
    if (r0 < j->rows8) {   /* repacked groups (r0 is a multiple of 8) */
        size_t e = r1 < j->rows8 ? r1 : j->rows8;
#if defined(ROPEX__HAVE_X8)
        ropex__mm_rows_x8(j, r0, e);
#else
        ropex__mm_rows_ref(j, r0, e);
#endif
        r0 = e;
    }
    if (r0 < r1) ropex__mm_rows_ggml(j, r0, r1);
}

/* Rows are handed out in units of 8 so that SIMD tiles stay whole; each output is computed
   entirely by one thread, so the thread count never changes a result. With several threads the
   rows go in work items of about 1/8 of a thread's share, taken in turn from an atomic counter:
   a core slowed by other work takes fewer items instead of holding up the call. */
static void ropex__mm_rows(const ropex__mm_job *j, size_t r0, size_t r1) {
    if (r1 > j->rows) r1 = j->rows;
    if (r0 >= r1) return;
    if (j->ref) ropex__mm_rows_ref(j, r0, r1);
    else ropex__mm_rows_simd(j, r0, r1);
}
/* Without atomics: thread `index` of `count` takes a fixed contiguous share of whole 8-row units. */
static void ropex__mm_split(const ropex__mm_job *j, int index, int count) {
    size_t units = (j->rows + 7) / 8;
    ropex__mm_rows(j, units * (size_t)index / (size_t)count * 8, units * (size_t)(index + 1) / (size_t)count * 8);
}

#ifndef ROPEX__MT_MIN_MACS
#  define ROPEX__MT_MIN_MACS 131072.0   /* about 3-10 us of work on one core */
#endif

ROPEX_API size_t ropex_matmul_work_bytes(ropex_type t, size_t cols, size_t n) {
    size_t s;
    t = ropex__base_type(t);
    if (!ropex__is_block(t) || cols % 32 || n == 0) return 0;
    s = ropex__act_stride(cols);
    if (n > (SIZE_MAX - 64) / s) return 0;
    return s * n + 32;
}

/* Checks the arguments and fills a job; quantizes x into work unless `quantized` (a previous job
   of the same base type and cols already did). */
static ropex_status ropex__mm_setup(ropex__mm_job *j, ropex_type t, const void *w, size_t rows, size_t cols,
                                   const float *x, size_t n, float *y, void *work, ropex_threads *th, int ref,
                                   int quantized) {
    size_t rb, i;
    int x8 = ropex__is_x8(t);
    t = ropex__base_type(t);
    if (!ropex__type_ok(t)) return ROPEX_ERR_ARG;
    if (!w || !x || !y || rows == 0 || cols == 0 || n == 0) return ROPEX_ERR_ARG;
    if (ropex__is_block(t) && cols % 32) return ROPEX_ERR_ARG;
    rb = ropex_row_bytes(t, cols);
    if (rb == 0 || rows > SIZE_MAX / rb || n > SIZE_MAX / 4 / cols || n > SIZE_MAX / 4 / rows)
        return ROPEX_ERR_ARG;
    j->t = t; j->w = (const unsigned char *)w; j->rows = rows; j->cols = cols; j->rb = rb;
    j->x = x; j->n = n; j->y = y; j->act = NULL; j->ref = ref;
    j->rows8 = x8 ? rows & ~(size_t)7 : 0;
    {   /* work items: whole 8-row units, about 8 per thread */
        size_t units = (rows + 7) / 8, nt = (size_t)ropex_threads_count(th), per = units / (8 * nt);
        j->chunk = (per ? per : 1) * 8;
    }
    if (ropex__is_block(t)) {
        size_t s = ropex__act_stride(cols);
        unsigned char *base;
        if (!work) return ROPEX_ERR_ARG;
        base = (unsigned char *)work;
        base += (32 - ((size_t)base & 31)) & 31;
        if (!quantized)
            for (i = 0; i < n; i++) ropex__quantize_act(x + i * cols, cols, base + i * s, (int)t, ref);
        j->act = base;
    }
    return ROPEX_OK;
}


/* One to three products of the same input (a single product; the attention's q, k, v; the FFN's
   gate and up) in one dispatch to the pool: one wake-up and one join, and x quantized once when
   the weights share a base type. Work items run through the products in turn; each output is
   computed the same way whichever thread takes it, so results are the same bits. */
typedef struct ropex__mm_group { ropex__mm_job j[3]; int n; size_t items[4], next; } ropex__mm_group;

static void ropex__mm_group_task(void *arg, int index, int count) {
    ropex__mm_group *g = (ropex__mm_group *)arg;
    int k;
#if defined(ROPEX__ATOMIC_FADD)
    if (count > 1) {
        for (;;) {
            size_t it = ROPEX__ATOMIC_FADD(&g->next, (size_t)1), r0;
            for (k = 0; k < g->n && it >= g->items[k + 1]; k++) {}
            if (k == g->n) break;
            r0 = (it - g->items[k]) * g->j[k].chunk;
            ropex__mm_rows(&g->j[k], r0, r0 + g->j[k].chunk);
        }
        return;
    }
#endif
    for (k = 0; k < g->n; k++) ropex__mm_split(&g->j[k], index, count);
}

static ropex_status ropex__matmul_group(const ropex_type *t, const void *const *w, const size_t *rows, size_t cols,
                                        const float *x, size_t n_tok, float *const *y, int n, void *work,
                                        ropex_threads *th, int ref);

static ropex_status ropex__matmul(ropex_type t, const void *w, size_t rows, size_t cols, const float *x,
                                  size_t n, float *y, void *work, ropex_threads *th, int ref) {
    return ropex__matmul_group(&t, &w, &rows, cols, x, n, &y, 1, work, th, ref);
}

/* y[k] = W[k] x for k < n (n <= 3, one x of n_tok vectors of cols floats). */
static ropex_status ropex__matmul_group(const ropex_type *t, const void *const *w, const size_t *rows, size_t cols,
                                        const float *x, size_t n_tok, float *const *y, int n, void *work,
                                        ropex_threads *th, int ref) {
    ropex__mm_group g;
    double macs = 0;
    int k;
    ropex_status st;
    for (k = 1; k < n; k++)
        if (ropex__base_type(t[k]) != ropex__base_type(t[0])) {
            /* mixed types quantize x differently: one product at a time */
            for (k = 0; k < n; k++)
                if ((st = ropex__matmul(t[k], w[k], rows[k], cols, x, n_tok, y[k], work, th, ref)) != ROPEX_OK) return st;
            return ROPEX_OK;
        }
    g.n = n; g.next = 0; g.items[0] = 0;
    for (k = 0; k < n; k++) {
        st = ropex__mm_setup(&g.j[k], t[k], w[k], rows[k], cols, x, n_tok, y[k], work, th, ref, k > 0);
        if (st != ROPEX_OK) return st;
        g.items[k + 1] = g.items[k] + (rows[k] + g.j[k].chunk - 1) / g.j[k].chunk;
        macs += (double)rows[k] * (double)cols * (double)n_tok;
    }
    /* Small products run on the caller: waking workers costs more than they save, and the
       split never changes a result (each output is computed the same way on any thread). */
    if (ref || macs < ROPEX__MT_MIN_MACS) ropex__mm_group_task(&g, 0, 1);
    else ropex_threads_run(th, ropex__mm_group_task, &g);
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_matvec(ropex_type t, const void *w, size_t rows, size_t cols,
                                    const float *x, float *y, void *work, ropex_threads *th) {
    return ropex__matmul(t, w, rows, cols, x, 1, y, work, th, 0);
}

ROPEX_API ropex_status ropex_matmul(ropex_type t, const void *w, size_t rows, size_t cols,
                                    const float *x, size_t n, float *y, void *work, ropex_threads *th) {
    return ropex__matmul(t, w, rows, cols, x, n, y, work, th, 0);
}

ROPEX_API ropex_status ropex_matmul_ref(ropex_type t, const void *w, size_t rows, size_t cols,
                                        const float *x, size_t n, float *y, void *work) {
    return ropex__matmul(t, w, rows, cols, x, n, y, work, NULL, 1);
}

ROPEX_API const char *ropex_simd_name(void) {
#if defined(ROPEX__AVX2)
    return "avx2";
#elif defined(ROPEX__DOTPROD)
    return "neon-dotprod";
#elif defined(ROPEX__NEON)
    return "neon";
#else
    return "scalar";
#endif
}
/* ===================================================================== */
/* >> implementation: rope                                               */
/* ===================================================================== */
/* Every method reduces to per-pair inverse frequencies (double), a magnitude m, and per-pair
   clamp/zero masks; formulas follow reference/ROPE_VARIANTS.md (HF-v5 for YaRN/LongRoPE/llama3,
   Qwen for the discrete dynamic NTK, Giraffe's interpolate.py) and SCALING_LAWS.md (truncation,
   log-n). Where a reference computes in float32 (HF builds inv_freq and the YaRN ramp in fp32,
   ggml multiplies float thetas), ropex computes in double: the tables differ from those
   references by their own rounding (~1e-7 relative), never by formula. */

#define ROPEX__PI 3.14159265358979323846
#define ROPEX__TWO_PI 6.28318530717958647692

static int ropex__finite(double x) { return x == x && x - x == 0.0; }

/* The config with every documented zero-default resolved. Filled by ropex__rope_resolve after
   validation, so the table builder never sees a zero that means "default". */
typedef struct ropex__rope_eff {
    int d;          /* rot_dims */
    double base, train_base, factor, beta_fast, beta_slow, low, high;
    int L0;
} ropex__rope_eff;

static ropex_status ropex__rope_fail(const char **msg, const char *text) {
    if (msg) *msg = text;
    return ROPEX_ERR_ARG;
}

ROPEX_API ropex_status ropex_rope_validate(const ropex_rope_config *c, const char **msg) {
    int rot, uses_factor, needs_l0, yarn, l3, lr, gir, np;
    if (msg) *msg = "ok";
    if (!c) return ropex__rope_fail(msg, "rope: config is NULL");
    if (c->head_dim <= 0) return ropex__rope_fail(msg, "rope: head_dim must be > 0");
    if (c->head_dim % 2) return ropex__rope_fail(msg, "rope: head_dim must be even");
    if (c->head_dim / 2 > ROPEX_ROPE_MAX_PAIRS)
        return ropex__rope_fail(msg, "rope: head_dim/2 exceeds ROPEX_ROPE_MAX_PAIRS (256)");
    if (c->rot_dims < 0) return ropex__rope_fail(msg, "rope: rot_dims must be >= 0 (0 = head_dim)");
    rot = c->rot_dims ? c->rot_dims : c->head_dim;
    if (rot % 2) return ropex__rope_fail(msg, "rope: rot_dims must be even");
    if (rot > c->head_dim) return ropex__rope_fail(msg, "rope: rot_dims > head_dim");
    np = rot / 2;
    if (!ropex__finite(c->base) || c->base < 0) return ropex__rope_fail(msg, "rope: base must be finite and >= 0 (0 = 10000)");
    if (c->base != 0 && c->base <= 1) return ropex__rope_fail(msg, "rope: base must be > 1");
    if (!ropex__finite(c->train_base) || c->train_base < 0)
        return ropex__rope_fail(msg, "rope: train_base must be finite and >= 0 (0 = base)");
    if (c->train_base != 0 && c->train_base <= 1) return ropex__rope_fail(msg, "rope: train_base must be > 1");
    if ((unsigned)c->layout > (unsigned)ROPEX_LAYOUT_HALF)
        return ropex__rope_fail(msg, "rope: unknown layout");
    if (c->train_ctx < 0) return ropex__rope_fail(msg, "rope: train_ctx must be >= 0");
    if ((unsigned)c->scaling > (unsigned)ROPEX_SCALE_GIRAFFE)
        return ropex__rope_fail(msg, "rope: unknown scaling method");
    if ((unsigned)c->truncate > (unsigned)ROPEX_TRUNC_ZERO)
        return ropex__rope_fail(msg, "rope: unknown truncate mode");
    /* Every double must be finite and non-negative (0 = default where documented). */
    if (!ropex__finite(c->factor) || c->factor < 0) return ropex__rope_fail(msg, "rope: factor must be finite and >= 0 (0 = 1)");
    if (!ropex__finite(c->yarn_beta_fast) || c->yarn_beta_fast < 0) return ropex__rope_fail(msg, "rope: yarn_beta_fast must be finite and >= 0 (0 = 32)");
    if (!ropex__finite(c->yarn_beta_slow) || c->yarn_beta_slow < 0) return ropex__rope_fail(msg, "rope: yarn_beta_slow must be finite and >= 0 (0 = 1)");
    if (!ropex__finite(c->attn_factor) || c->attn_factor < 0) return ropex__rope_fail(msg, "rope: attn_factor must be finite and >= 0 (0 = computed)");
    if (!ropex__finite(c->llama3_low) || c->llama3_low < 0) return ropex__rope_fail(msg, "rope: llama3_low must be finite and >= 0 (0 = 1)");
    if (!ropex__finite(c->llama3_high) || c->llama3_high < 0) return ropex__rope_fail(msg, "rope: llama3_high must be finite and >= 0 (0 = 4)");
    if (!ropex__finite(c->giraffe_power) || c->giraffe_power < 0) return ropex__rope_fail(msg, "rope: giraffe_power must be finite and >= 0");
    if (c->giraffe_truncate < 0) return ropex__rope_fail(msg, "rope: giraffe_truncate must be >= 0");
    if (c->yarn_no_truncate != 0 && c->yarn_no_truncate != 1) return ropex__rope_fail(msg, "rope: yarn_no_truncate must be 0 or 1");
    if (c->logn != 0 && c->logn != 1) return ropex__rope_fail(msg, "rope: logn must be 0 or 1");
    if (c->logn_ctx < 0) return ropex__rope_fail(msg, "rope: logn_ctx must be >= 0");

    yarn = c->scaling == ROPEX_SCALE_YARN;
    l3 = c->scaling == ROPEX_SCALE_LLAMA3;
    lr = c->scaling == ROPEX_SCALE_LONGROPE;
    gir = c->scaling == ROPEX_SCALE_GIRAFFE;
    uses_factor = c->scaling != ROPEX_SCALE_NONE && c->scaling != ROPEX_SCALE_DYNAMIC_QWEN;
    needs_l0 = c->scaling == ROPEX_SCALE_DYNAMIC || c->scaling == ROPEX_SCALE_DYNAMIC_QWEN || yarn || l3 || lr;

    /* Parameters of a method that is not selected would be silently ignored: reject them. */
    if (!uses_factor && c->factor != 0 && c->factor != 1)
        return ropex__rope_fail(msg, "rope: factor has no effect with scaling none or dynamic-qwen");
    if (uses_factor && c->factor != 0 && c->factor < 1)
        return ropex__rope_fail(msg, "rope: factor must be >= 1");
    if (!yarn && (c->yarn_beta_fast != 0 || c->yarn_beta_slow != 0 || c->yarn_no_truncate))
        return ropex__rope_fail(msg, "rope: yarn_beta_fast/yarn_beta_slow/yarn_no_truncate need scaling yarn");
    if (!yarn && !lr && c->attn_factor != 0)
        return ropex__rope_fail(msg, "rope: attn_factor needs scaling yarn or longrope");
    if (!l3 && (c->llama3_low != 0 || c->llama3_high != 0))
        return ropex__rope_fail(msg, "rope: llama3_low/llama3_high need scaling llama3");
    if (!lr && (c->longrope_short || c->longrope_long))
        return ropex__rope_fail(msg, "rope: longrope factor lists need scaling longrope");
    if (!gir && (c->giraffe_power != 0 || c->giraffe_truncate != 0))
        return ropex__rope_fail(msg, "rope: giraffe_power/giraffe_truncate need scaling giraffe");
    if (!c->logn && c->logn_ctx != 0) return ropex__rope_fail(msg, "rope: logn_ctx is set but logn is off");

    /* L0 = 1 would make ln(L0) = 0 (LongRoPE) and a zero-length clamp window: require >= 2. */
    if (needs_l0 && c->train_ctx < 2)
        return ropex__rope_fail(msg, "rope: yarn/llama3/longrope/dynamic scaling need train_ctx >= 2");
    if (c->truncate != ROPEX_TRUNC_NONE && c->train_ctx < 2)
        return ropex__rope_fail(msg, "rope: truncate needs train_ctx >= 2");
    if (c->logn) {
        int L = c->logn_ctx ? c->logn_ctx : c->train_ctx;
        if (L == 0) return ropex__rope_fail(msg, "rope: logn needs logn_ctx or train_ctx");
        if (L < 2) return ropex__rope_fail(msg, "rope: logn length must be >= 2");
    }
    if ((c->scaling == ROPEX_SCALE_NTK || c->scaling == ROPEX_SCALE_DYNAMIC ||
         c->scaling == ROPEX_SCALE_DYNAMIC_QWEN) && rot <= 2)
        return ropex__rope_fail(msg, "rope: NTK scaling needs rot_dims > 2 (exponent d/(d-2))");
    if (yarn) {
        double bf = c->yarn_beta_fast != 0 ? c->yarn_beta_fast : 32.0;
        double bs = c->yarn_beta_slow != 0 ? c->yarn_beta_slow : 1.0;
        if (bf <= bs) return ropex__rope_fail(msg, "rope: yarn_beta_fast must be > yarn_beta_slow");
    }
    if (l3) {
        double lo = c->llama3_low != 0 ? c->llama3_low : 1.0;
        double hi = c->llama3_high != 0 ? c->llama3_high : 4.0;
        if (hi <= lo) return ropex__rope_fail(msg, "rope: llama3_high must be > llama3_low");
    }
    if (lr) {
        int j;
        if (!c->longrope_short || !c->longrope_long)
            return ropex__rope_fail(msg, "rope: longrope needs both factor lists (rot_dims/2 floats each)");
        for (j = 0; j < np; j++) {
            double a = c->longrope_short[j], b = c->longrope_long[j];
            if (!ropex__finite(a) || !ropex__finite(b) || a <= 0 || b <= 0)
                return ropex__rope_fail(msg, "rope: longrope factors must be finite and > 0");
        }
    }
    return ROPEX_OK;
}

static void ropex__rope_resolve(const ropex_rope_config *c, ropex__rope_eff *e) {
    e->d = c->rot_dims ? c->rot_dims : c->head_dim;
    e->base = c->base != 0 ? c->base : 10000.0;
    e->train_base = c->train_base != 0 ? c->train_base : e->base;
    e->factor = c->factor != 0 ? c->factor : 1.0;
    e->beta_fast = c->yarn_beta_fast != 0 ? c->yarn_beta_fast : 32.0;
    e->beta_slow = c->yarn_beta_slow != 0 ? c->yarn_beta_slow : 1.0;
    e->low = c->llama3_low != 0 ? c->llama3_low : 1.0;
    e->high = c->llama3_high != 0 ? c->llama3_high : 4.0;
    e->L0 = c->train_ctx;
}

/* w_j = base^(-2j/d), the default inverse frequency of pair j. */
static double ropex__rope_w(double base, int j, int d) {
    return pow(base, -2.0 * (double)j / (double)d);
}

/* Static NTK base: base * alpha^(d/(d-2)); leaves pair 0 alone and divides the slowest pair's
   frequency by exactly alpha. */
static double ropex__ntk_base(double base, double alpha, int d) {
    return base * pow(alpha, (double)d / (double)(d - 2));
}

/* Qwen's alpha = max(2^ceil(log2(L/L0) + 1) - 1, 1), in integers so that L = 2^k L0 lands on the
   right side of each step: the smallest k >= 0 with L <= L0*2^k gives alpha = 2^(k+1) - 1. */
static double ropex__qwen_alpha(int64_t L, int64_t L0) {
    double cap = (double)L0, a = 1.0;
    if (L <= L0) return 1.0;
    while ((double)L > cap) { cap *= 2.0; a = 2.0 * a + 1.0; }
    return a;
}

/* YaRN correction dimension (HF-v5 find_correction_dim): the pair index (as a real number) whose
   wavelength is L0/r. */
static double ropex__yarn_corr(double r, int d, double base, double L0) {
    return (double)d * log(L0 / (r * ROPEX__TWO_PI)) / (2.0 * log(base));
}

ROPEX_API ropex_status ropex_rope_table_init(ropex_rope_table *t, const ropex_rope_config *c, int64_t length) {
    ropex__rope_eff e;
    ropex_status st;
    int j, np, trunc_from = -1;
    double s, mscale = 1.0, L;
    if (!t) return ROPEX_ERR_ARG;
    st = ropex_rope_validate(c, NULL);
    if (st != ROPEX_OK) return st;
    if (length < 0) return ROPEX_ERR_ARG;
    ropex__rope_resolve(c, &e);
    memset(t, 0, sizeof(*t));
    t->head_dim = c->head_dim;
    t->rot_dims = e.d;
    t->n_pairs = np = e.d / 2;
    t->layout = c->layout;
    t->length = length ? length : (int64_t)c->train_ctx;
    /* LongRoPE switches lists at L0; with equal lists (GGUF rope_freqs) nothing depends on the length */
    t->length_dependent = c->scaling == ROPEX_SCALE_DYNAMIC || c->scaling == ROPEX_SCALE_DYNAMIC_QWEN ||
                          (c->scaling == ROPEX_SCALE_LONGROPE &&
                           (c->longrope_short != c->longrope_long &&
                            memcmp(c->longrope_short, c->longrope_long, (size_t)(e.d / 2) * sizeof(float)) != 0));
    L = (double)t->length;
    s = e.factor;

    switch (c->scaling) {
    case ROPEX_SCALE_NONE:
        for (j = 0; j < np; j++) t->inv_freq[j] = ropex__rope_w(e.base, j, e.d);
        break;
    case ROPEX_SCALE_LINEAR:
        for (j = 0; j < np; j++) t->inv_freq[j] = ropex__rope_w(e.base, j, e.d) / s;
        break;
    case ROPEX_SCALE_NTK: {
        double b = ropex__ntk_base(e.base, s, e.d);
        for (j = 0; j < np; j++) t->inv_freq[j] = ropex__rope_w(b, j, e.d);
        break;
    }
    case ROPEX_SCALE_DYNAMIC: {
        /* HF dynamic: L = max(seq_len, L0), base' = base * ((s L/L0) - (s-1))^(d/(d-2)). The HF
           code takes L0 = max_position_embeddings; ropex's L0 is train_ctx (DESIGN: trained context). */
        double Lm = L > (double)e.L0 ? L : (double)e.L0;
        double b = ropex__ntk_base(e.base, s * Lm / (double)e.L0 - (s - 1.0), e.d);
        for (j = 0; j < np; j++) t->inv_freq[j] = ropex__rope_w(b, j, e.d);
        break;
    }
    case ROPEX_SCALE_DYNAMIC_QWEN: {
        double b = ropex__ntk_base(e.base, ropex__qwen_alpha(t->length, e.L0), e.d);
        for (j = 0; j < np; j++) t->inv_freq[j] = ropex__rope_w(b, j, e.d);
        break;
    }
    case ROPEX_SCALE_YARN: {
        /* HF-v5 _compute_yarn_parameters: floor/ceil unless truncate is off, clamp to [0, d-1]
           (d-1 though j < d/2: a quirk ggml shares, kept so both match), 0.001 nudge when equal. */
        double lo = ropex__yarn_corr(e.beta_fast, e.d, e.base, (double)e.L0);
        double hi = ropex__yarn_corr(e.beta_slow, e.d, e.base, (double)e.L0);
        if (!c->yarn_no_truncate) { lo = floor(lo); hi = ceil(hi); }
        if (lo < 0) lo = 0;
        if (hi > (double)(e.d - 1)) hi = (double)(e.d - 1);
        if (lo == hi) hi += 0.001;
        for (j = 0; j < np; j++) {
            double w = ropex__rope_w(e.base, j, e.d);
            double ramp = ((double)j - lo) / (hi - lo);
            double ext;
            if (ramp < 0) ramp = 0;
            if (ramp > 1) ramp = 1;
            ext = 1.0 - ramp;                 /* 1 = keep (extrapolate), 0 = interpolate */
            t->inv_freq[j] = (w / s) * (1.0 - ext) + w * ext;
        }
        mscale = c->attn_factor != 0 ? c->attn_factor : (s <= 1 ? 1.0 : 0.1 * log(s) + 1.0);
        break;
    }
    case ROPEX_SCALE_LLAMA3: {
        double lo_wl = (double)e.L0 / e.low, hi_wl = (double)e.L0 / e.high;
        for (j = 0; j < np; j++) {
            double w = ropex__rope_w(e.base, j, e.d), wl = ROPEX__TWO_PI / w;
            if (wl < hi_wl) t->inv_freq[j] = w;
            else if (wl > lo_wl) t->inv_freq[j] = w / s;
            else {
                double sm = ((double)e.L0 / wl - e.low) / (e.high - e.low);
                t->inv_freq[j] = (1.0 - sm) * w / s + sm * w;
            }
        }
        break;
    }
    case ROPEX_SCALE_LONGROPE: {
        /* HF-v5: long factors once the sequence is longer than L0, short otherwise. */
        const float *ext = L > (double)e.L0 ? c->longrope_long : c->longrope_short;
        for (j = 0; j < np; j++) t->inv_freq[j] = ropex__rope_w(e.base, j, e.d) / (double)ext[j];
        mscale = c->attn_factor != 0 ? c->attn_factor
               : (s <= 1 ? 1.0 : sqrt(1.0 + log(s) / log((double)e.L0)));
        break;
    }
    case ROPEX_SCALE_GIRAFFE: {
        /* Giraffe ScaledLlamaRotaryEmbedding order: base -> linear -> power -> truncated basis. */
        double b = 0, a = 0, rho = 0;
        if (c->giraffe_truncate > 0) {
            b = ROPEX__TWO_PI / (double)c->giraffe_truncate;
            a = b / 8.0;
            rho = b / 16.0;
        }
        for (j = 0; j < np; j++) {
            double f = ropex__rope_w(e.base, j, e.d);
            if (s > 1) f /= s;
            if (c->giraffe_power > 0) f *= pow(1.0 - (double)j / ((double)e.d / 2.0), c->giraffe_power);
            if (c->giraffe_truncate > 0) f = f >= b ? f : (f >= a ? rho : 0.0);
            t->inv_freq[j] = f;
        }
        break;
    }
    }
    t->mscale = (float)mscale;

    /* The paper's truncation: pairs n >= d_extra/2, with d_extra from the pre-training base. */
    if (c->truncate != ROPEX_TRUNC_NONE)
        trunc_from = ropex_critical_dim(e.d, (double)e.L0, e.train_base) / 2;
    for (j = 0; j < np; j++) {
        t->clamp_pos[j] = -1;
        if (trunc_from >= 0 && j >= trunc_from) {
            if (c->truncate == ROPEX_TRUNC_CLAMP) t->clamp_pos[j] = (int32_t)(e.L0 - 1);
            else t->zero[j] = 1;
        }
    }
    for (j = np; j < ROPEX_ROPE_MAX_PAIRS; j++) t->clamp_pos[j] = -1;
    if (c->logn) t->logn_ctx = (double)(c->logn_ctx ? c->logn_ctx : c->train_ctx);
    return ROPEX_OK;
}

/* ---- rotation ---- */

/* pi/2 split in three (Cody-Waite): A and B have 20 significant bits, so k*A and k*B are exact for
   |k| < 2^33 (angles up to ~1.3e10 rad: any position < 2^31 at w <= 1); C is the double rest. */
#define ROPEX__PIO2_A 1.5707969665527344
#define ROPEX__PIO2_B (-6.39757672615815e-07)
#define ROPEX__PIO2_C (-1.6513995372426591e-13)

/* Reduces an angle to [-pi, pi] in double (fmod, for the rare huge argument and for rerotate). */
static double ropex__reduce(double a) {
    a = fmod(a, ROPEX__TWO_PI);
    if (a > ROPEX__PI) a -= ROPEX__TWO_PI;
    else if (a < -ROPEX__PI) a += ROPEX__TWO_PI;
    return a;
}

/* cos/sin of a double angle. The angle is reduced in double to y in [-pi/4, pi/4] plus a quadrant,
   then y is rounded to float and sin/cos come from their Taylor series (truncation error < 2e-9 on
   [-pi/4, pi/4], below float rounding). No libm trig: fast on Cortex-M, identical on every libc.
   Precision bound: p*w is formed with relative error <= 2^-52 (w itself from pow, <= 1 ulp), the
   reduction adds < 1e-15 rad, the float y <= 4.7e-8 rad, the series in float ~1e-7; so each of cos
   and sin is within ~2e-7 of exact for p*w < ~1e8 rad and within ~4e-7 at p = 2^31-1 (there the
   double angle ~2e9 rad itself carries up to 2.4e-7 rad of rounding). Contract: 1e-5. */
static void ropex__cs(double angle, float *c, float *s) {
    double k = floor(angle * (2.0 / ROPEX__PI) + 0.5), y;
    float f, f2, sn, cs;
    int q;
    if (!(fabs(angle) < 1e300)) { *c = 1.0f; *s = 0.0f; return; }   /* inf/NaN: no UB in the casts below */
    if (!(fabs(k) < 8589934592.0)) {          /* |k| >= 2^33 (or NaN): fmod first */
        angle = ropex__reduce(angle);
        k = floor(angle * (2.0 / ROPEX__PI) + 0.5);
    }
    y = ((angle - k * ROPEX__PIO2_A) - k * ROPEX__PIO2_B) - k * ROPEX__PIO2_C;
    q = (int)(k - 4.0 * floor(k * 0.25));     /* k mod 4 in 0..3 */
    f = (float)y;
    f2 = f * f;
    sn = f + f * f2 * (-1.0f / 6.0f + f2 * (1.0f / 120.0f + f2 * (-1.0f / 5040.0f + f2 * (1.0f / 362880.0f))));
    cs = 1.0f + f2 * (-0.5f + f2 * (1.0f / 24.0f + f2 * (-1.0f / 720.0f + f2 * (1.0f / 40320.0f +
         f2 * (-1.0f / 3628800.0f)))));
    switch (q) {
    case 0: *c = cs; *s = sn; break;
    case 1: *c = -sn; *s = cs; break;
    case 2: *c = -cs; *s = -sn; break;
    default: *c = sn; *s = -cs; break;
    }
}

/* Position of pair j under the clamp mask. */
static int64_t ropex__rope_pos(const ropex_rope_table *t, int j, int64_t pos) {
    int64_t c = t->clamp_pos[j];
    return (c >= 0 && pos > c) ? c : pos;
}

static int ropex__rope_args_ok(const ropex_rope_table *t, const float *x, int n_heads, size_t head_stride) {
    if (!t || !x || n_heads <= 0) return 0;
    if (t->n_pairs < 0 || t->n_pairs > ROPEX_ROPE_MAX_PAIRS || 2 * t->n_pairs > t->head_dim) return 0;
    if (n_heads > 1 && head_stride < (size_t)t->head_dim) return 0;
    return 1;
}

/* Pairs per chunk: cos/sin of a chunk are computed once and reused by every head (the angle
   depends only on the pair), while the stack stays small for Cortex-M (2 x 32 floats). */
#define ROPEX__ROPE_CHUNK 32

/* Applies the rotation (c[j], s[j]) to pairs j0..j0+n-1 of every head. */
static void ropex__rope_apply_cs(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride,
                                 int j0, int n, const float *c, const float *s) {
    int h, j;
    for (h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_stride;
        if (t->layout == ROPEX_LAYOUT_HALF) {
            float *va = v + j0, *vb = v + j0 + t->n_pairs;
            for (j = 0; j < n; j++) {
                float a = va[j], b = vb[j];
                va[j] = a * c[j] - b * s[j];
                vb[j] = a * s[j] + b * c[j];
            }
        } else {
            float *va = v + 2 * j0;
            for (j = 0; j < n; j++) {
                float a = va[2 * j], b = va[2 * j + 1];
                va[2 * j] = a * c[j] - b * s[j];
                va[2 * j + 1] = a * s[j] + b * c[j];
            }
        }
    }
}

/* Rotates every head by +angle (dir = 1) or -angle (dir = -1) per pair and scales by `gain`
   (rotated coordinates only, as HF and ggml scale cos/sin). Zero-mask pairs become 0 (c = s = 0). */
static void ropex__rope_rotate(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride,
                               int64_t pos, int dir, float gain) {
    float c[ROPEX__ROPE_CHUNK], s[ROPEX__ROPE_CHUNK];
    int j0, j, n;
    for (j0 = 0; j0 < t->n_pairs; j0 += ROPEX__ROPE_CHUNK) {
        n = t->n_pairs - j0 < ROPEX__ROPE_CHUNK ? t->n_pairs - j0 : ROPEX__ROPE_CHUNK;
        for (j = 0; j < n; j++) {
            int jj = j0 + j;
            if (t->zero[jj]) { c[j] = 0.0f; s[j] = 0.0f; continue; }
            ropex__cs((double)ropex__rope_pos(t, jj, pos) * t->inv_freq[jj], &c[j], &s[j]);
            if (dir < 0) s[j] = -s[j];
            c[j] *= gain;
            s[j] *= gain;
        }
        ropex__rope_apply_cs(t, x, n_heads, head_stride, j0, n, c, s);
    }
}

ROPEX_API float ropex_rope_logn(const ropex_rope_table *t, int64_t pos) {
    double f;
    if (!t || t->logn_ctx <= 1.0 || pos < 0) return 1.0f;
    f = log((double)pos + 1.0) / log(t->logn_ctx);
    return f > 1.0 ? (float)f : 1.0f;
}

ROPEX_API void ropex_rope_apply_q(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos) {
    float g;
    if (!ropex__rope_args_ok(t, x, n_heads, head_stride)) return;
    g = ropex_rope_logn(t, pos);
    ropex__rope_rotate(t, x, n_heads, head_stride, pos, 1, t->mscale);
    if (g != 1.0f) {
        /* log-n scales the whole query (a scalar on q), pass-through coordinates included. */
        int h, i;
        for (h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_stride;
            for (i = 0; i < t->head_dim; i++) v[i] *= g;
        }
    }
}

ROPEX_API void ropex_rope_apply_k(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos) {
    if (!ropex__rope_args_ok(t, x, n_heads, head_stride)) return;
    ropex__rope_rotate(t, x, n_heads, head_stride, pos, 1, t->mscale);
}

ROPEX_API void ropex_rope_apply_batch(const ropex_rope_table *t, float *x, int n_tokens, size_t token_stride,
                                      int n_heads, size_t head_stride, const int64_t *pos, int is_query) {
    int i;
    if (!ropex__rope_args_ok(t, x, n_heads, head_stride) || !pos || n_tokens <= 0) return;
    for (i = 0; i < n_tokens; i++) {
        float *v = x + (size_t)i * token_stride;
        if (is_query) ropex_rope_apply_q(t, v, n_heads, head_stride, pos[i]);
        else ropex_rope_apply_k(t, v, n_heads, head_stride, pos[i]);
    }
}

ROPEX_API void ropex_rope_unapply_k(const ropex_rope_table *t, float *x, int n_heads, size_t head_stride, int64_t pos) {
    if (!ropex__rope_args_ok(t, x, n_heads, head_stride) || t->mscale == 0.0f) return;
    ropex__rope_rotate(t, x, n_heads, head_stride, pos, -1, 1.0f / t->mscale);
}

ROPEX_API void ropex_rope_rerotate(const ropex_rope_table *from, int64_t p_from, const ropex_rope_table *to,
                                   int64_t p_to, float *x, int n_heads, size_t head_stride) {
    float c[ROPEX__ROPE_CHUNK], s[ROPEX__ROPE_CHUNK];
    int j0, j, n;
    if (!ropex__rope_args_ok(to, x, n_heads, head_stride) || !from) return;
    if (from->n_pairs != to->n_pairs || from->head_dim != to->head_dim || from->layout != to->layout) return;
    for (j0 = 0; j0 < to->n_pairs; j0 += ROPEX__ROPE_CHUNK) {
        n = to->n_pairs - j0 < ROPEX__ROPE_CHUNK ? to->n_pairs - j0 : ROPEX__ROPE_CHUNK;
        for (j = 0; j < n; j++) {
            int jj = j0 + j;
            int64_t pt = ropex__rope_pos(to, jj, p_to), pf = ropex__rope_pos(from, jj, p_from);
            double d;
            if (to->zero[jj] || from->zero[jj]) {
                /* zeroed in either table: nothing to rotate (from) or must end up zero (to) */
                c[j] = 0.0f; s[j] = 0.0f;
                continue;
            }
            /* Same frequency: rotate by the exact integer delta; otherwise subtract reduced angles. */
            if (to->inv_freq[jj] == from->inv_freq[jj]) d = (double)(pt - pf) * to->inv_freq[jj];
            else d = ropex__reduce((double)pt * to->inv_freq[jj]) - ropex__reduce((double)pf * from->inv_freq[jj]);
            ropex__cs(d, &c[j], &s[j]);
        }
        ropex__rope_apply_cs(to, x, n_heads, head_stride, j0, n, c, s);
    }
}

/* ===================================================================== */
/* >> implementation: scaling laws                                       */
/* ===================================================================== */
/* Liu et al. 2024 (SCALING_LAWS.md). Ceilings are guarded by 1e-9 because (d/2)*log_b(T/2pi) can
   land a rounding error above an integer. Invalid arguments give 0. */

static int ropex__crit_from_log(double x, int d) {
    double c;
    if (!(x == x)) return 0;
    c = 2.0 * ceil(x - 1e-9);
    if (c < 0) c = 0;
    if (c > (double)d) c = (double)d;
    return (int)c;
}

ROPEX_API int ropex_critical_dim(int d, double train_ctx, double b0) {
    if (d <= 0 || !ropex__finite(train_ctx) || !ropex__finite(b0) || b0 <= 1.0 || train_ctx <= 0) return 0;
    return ropex__crit_from_log((double)d / 2.0 * log(train_ctx / ROPEX__TWO_PI) / log(b0), d);
}

ROPEX_API double ropex_extrapolation_limit(double base, int d, int crit_dim) {
    if (d <= 0 || crit_dim < 0 || crit_dim > d || !ropex__finite(base) || base <= 0) return 0;
    return ROPEX__TWO_PI * pow(base, (double)crit_dim / (double)d);
}

ROPEX_API double ropex_critical_base(double train_ctx, double tune_ctx, double b0) {
    if (!ropex__finite(train_ctx) || !ropex__finite(tune_ctx) || !ropex__finite(b0) ||
        train_ctx <= ROPEX__TWO_PI || tune_ctx <= 0 || b0 <= 0) return 0;
    return pow(b0, log(tune_ctx / ROPEX__TWO_PI) / log(train_ctx / ROPEX__TWO_PI));
}

ROPEX_API double ropex_base_for_target(double target, int d, int crit_dim) {
    if (d <= 0 || crit_dim < 0 || crit_dim > d || !ropex__finite(target) || target <= 0) return 0;
    if (crit_dim == 0) return HUGE_VAL;   /* no fully trained pair: no base reaches any target */
    return pow(target / ROPEX__TWO_PI, (double)d / (double)crit_dim);
}

ROPEX_API void ropex_small_base_thresholds(double tune_ctx, double out[3]) {
    if (!out) return;
    out[0] = 2.0 * tune_ctx / ROPEX__PI;
    out[1] = tune_ctx / ROPEX__PI;
    out[2] = tune_ctx / ROPEX__TWO_PI;
}

ROPEX_API int ropex_updated_critical_dim(double base, int d, double tune_ctx) {
    return ropex_critical_dim(d, tune_ctx, base);
}

ROPEX_API ropex_regime ropex_scaling_regime(int d, double b0, double train_ctx, double base,
                                            double tune_ctx, double *limit) {
    double b1[3], beta0, lim;
    ropex_regime r;
    /* Order of the tests: unchanged first; then small base (base <= b1 = 2 T_tune/pi), which wins
       over "large base" when a small pre-training base puts b1 above the critical base (all pairs
       then complete a large part of a period: no hard limit); then Theorem 2 above the critical
       base; otherwise the tuning length bounds it. */
    if (tune_ctx <= 0 || tune_ctx < train_ctx) tune_ctx = train_ctx;  /* Theorem 3: T_tune >= T_train */
    ropex_small_base_thresholds(tune_ctx, b1);
    beta0 = ropex_critical_base(train_ctx, tune_ctx, b0);
    if (base == b0 && tune_ctx == train_ctx) { r = ROPEX_REGIME_UNCHANGED; lim = train_ctx; }
    else if (base <= b1[0]) { r = ROPEX_REGIME_SMALL_BASE; lim = 0; }
    else if (base > beta0 * (1.0 + 1e-12)) {
        r = ROPEX_REGIME_LARGE_BASE;
        lim = ropex_extrapolation_limit(base, d, ropex_critical_dim(d, train_ctx, b0));
    } else { r = ROPEX_REGIME_TUNING_BOUND; lim = tune_ctx; }
    if (limit) *limit = lim;
    return r;
}

ROPEX_API const char *ropex_regime_name(ropex_regime r) {
    switch (r) {
    case ROPEX_REGIME_UNCHANGED: return "unchanged";
    case ROPEX_REGIME_LARGE_BASE: return "large-base";
    case ROPEX_REGIME_TUNING_BOUND: return "tuning-bound";
    case ROPEX_REGIME_SMALL_BASE: return "small-base";
    }
    return "unknown";
}

/* ===================================================================== */
/* >> implementation: kv cache and streaming attention                   */
/* ===================================================================== */
/* Design (see the kv cache and attention sections of the API):
   - Slot of text position t: t < n_sink ? t : n_sink + (t - n_sink) % (capacity - n_sink). A pure
     function of t, so every layer finds its rows without shared mutable state. A unit is the
     smallest run of kv heads holding whole Q8_0 blocks (one head for head_dim 128). Rows are
     unit-major: layer l, unit u, slot s at k + ((l * units + u) * capacity + s) * k_unit_bytes, so a
     unit's keys and values are two sequential streams and each pass covers one unit. (Token-major
     rows, all units of a slot side by side, made every head re-read the cache lines it shares with
     its neighbours for Q8_0 units of 136 bytes, 1.4-1.7x slower from DRAM; for F16 units of whole
     lines they made a pass over a thread's heads touch 16-32 KB per tile and stream, and measured
     1.1-1.4x slower than unit-major rows with the tile prefetch at 2 threads.) slot_pos[] is
     bookkeeping updated by ropex_kv_advance (and read by ropex_kv_set_rope).
   - The keys visible to the query at text position p are a pure function of p: the sinks
     0..min(n_sink, p+1)-1 and the ring max(n_sink, p-R+1)..p (R = capacity - n_sink). Each layer
     call processes its chunk token by token (store k_i, v_i, then attend q_i), so a query sees exactly
     what a token-by-token run holds, whatever the chunk size; outputs are bit-identical for every
     chunking and thread count.
   - Keys are stored rotated (post-RoPE, quantized once from the float value) when the frequency set
     is fixed for the stream, at their TEXT position. Under CACHE positions the ring is a contiguous
     run of text ending at the query, so the distance query-to-ring-key in cache slots equals the
     text distance: ring keys are scored with the query rotated at its text position and sinks with
     the query rotated at its cache slot. This is exactly StreamingLLM's re-rotation for fixed
     frequency sets, and no stored key is ever re-rotated, so rounding never compounds over wraps.
   - Keys are stored raw (pre-RoPE) and rotated at use when the table depends on the length (dynamic
     NTK, LongRoPE switch: every key is used under the table for L = query position + 1) and for the
     CLAMP truncation under CACHE positions (the clamp breaks relative invariance).
   - Scores: q is rotated (mscale included) and multiplied by log-n(query position) / sqrt(head_dim);
     online softmax per query head in tiles of ROPEX__ATT_TILE keys; accumulators live in `out`.
     AVX2 scores stored-rotated keys eight at a time (ropex__att_scores8); a key's score is computed
     the same way whatever its batch, tile or thread, so outputs stay thread-count invariant. */

#if defined(__AVX2__) && defined(__FMA__) && !defined(ROPEX_NO_SIMD)
#  define ROPEX__ATT_AVX2 1
#  include <immintrin.h>
#  if defined(__F16C__)
#    define ROPEX__ATT_F16C 1
#  endif
#elif !defined(ROPEX_NO_SIMD) && defined(__ARM_NEON) && \
      (!defined(__BYTE_ORDER__) || __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#  define ROPEX__ATT_NEON 1
#  include <arm_neon.h>
#endif

#define ROPEX__ATT_TILE 16      /* keys per online-softmax tile */
#define ROPEX__ATT_MAXQ 64      /* query heads per pass over the cache */
#define ROPEX__ATT_SPAN 1024    /* floats of the store scratch: one unit of kv heads */
#define ROPEX__ATT_MAXD 512     /* max head_dim */

/* ---- element access of stored rows (private layout; fp16 and block scales little-endian) ---- */

#if defined(ROPEX__ATT_F16C)
/* the fp16 value at p (little-endian) in all eight lanes */
static __m256 ropex__h2f8(const unsigned char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}
#endif

static float ropex__h2f(const unsigned char *b) {
    uint16_t h = (uint16_t)(b[0] | (b[1] << 8));
#if defined(ROPEX__ATT_F16C)
    return _cvtsh_ss(h);
#elif defined(ROPEX__ATT_NEON) && defined(__aarch64__)
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);   /* fcvtl: the same values */
#else
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
    union { uint32_t u; float f; } o;
    if (em >= 0x7c00u) o.u = sign | 0x7f800000u | ((em & 0x3ffu) << 13);
    else if (em >= 0x0400u) o.u = sign | ((em << 13) + 0x38000000u);
    else { o.f = (float)em * 5.9604644775390625e-8f; o.u |= sign; }
    return o.f;
#endif
}

static size_t ropex__kv_elem_off(ropex_type t, size_t e) {
    switch (t) {
    case ROPEX_F32: return e * 4;
    case ROPEX_F16: return e * 2;
    case ROPEX_Q8_0: return e / 32 * 34;
    case ROPEX_Q4_0: return e / 32 * 18;
    default: break;
    }
    return 0;
}

/* y[0..n) = elements e0..e0+n-1 of a stored row (any alignment). */
static void ropex__kv_fetch(ropex_type t, const unsigned char *row, size_t e0, size_t n, float *y) {
    size_t i;
    switch (t) {
    case ROPEX_F32: memcpy(y, row + e0 * 4, n * sizeof(float)); break;
    case ROPEX_F16: for (i = 0; i < n; i++) y[i] = ropex__h2f(row + (e0 + i) * 2); break;
    case ROPEX_Q8_0:
        for (i = 0; i < n;) {
            /* one block segment at a time: its scale converts once */
            size_t e = e0 + i, r = e % 32, m = 32 - r < n - i ? 32 - r : n - i, z;
            const unsigned char *b = row + e / 32 * 34;
            float d = ropex__h2f(b);
#if defined(ROPEX__ATT_AVX2)
            if (m == 32) {
                __m256 dd = _mm256_set1_ps(d);
                for (z = 0; z < 32; z += 8)
                    _mm256_storeu_ps(y + i + z, _mm256_mul_ps(dd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                        _mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + z))))));
                i += m;
                continue;
            }
#endif
            for (z = 0; z < m; z++) y[i + z] = d * (float)(signed char)b[2 + r + z];
            i += m;
        }
        break;
    case ROPEX_Q4_0:
        for (i = 0; i < n; i++) {
            size_t e = e0 + i, r = e % 32;
            const unsigned char *b = row + e / 32 * 18;
            int nib = r < 16 ? (b[2 + r] & 0x0f) : (b[2 + r - 16] >> 4);
            y[i] = ropex__h2f(b) * (float)(nib - 8);
        }
        break;
    default: break;
    }
}

/* Writes n floats as elements e0.. of a stored row (block types: e0 and n multiples of 32). */
static void ropex__kv_write(ropex_type t, unsigned char *row, size_t e0, const float *x, size_t n) {
    size_t i;
    unsigned char *d = row + ropex__kv_elem_off(t, e0);
    switch (t) {
    case ROPEX_F32: memcpy(d, x, n * sizeof(float)); break;
    case ROPEX_F16:
        for (i = 0; i < n; i++) {
            uint16_t h = ropex_fp32_to_fp16(x[i]);
            d[2 * i] = (unsigned char)(h & 0xff);
            d[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    case ROPEX_Q8_0: case ROPEX_Q4_0: (void)ropex_quantize(t, x, d, n); break;
    default: break;
    }
}

/* ---- score and accumulate kernels (one head, hd values) ---- */

#if defined(ROPEX__ATT_AVX2)
static float ropex__hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#if defined(ROPEX__ATT_AVX2)
/* A sequential sweep of hints over the cache lines of a span, spread over np steps of a loop: the
   lines in address order, a constant C per step (unrolled: no loop per step) after `lead` at the
   start (ropex__sweep_lead: C * np + lead lines cover n bytes at any alignment). In address order
   the stream reaches DRAM as one sequential run; hints row by row (the first line of eight rows,
   then their second...) measured 1.15-1.25x slower for fp16 1M-token steps. Macros: a function
   called inside the loops (every ymm register caller-saved) measured 1.7x slower. */
static int ropex__sweep_lead(size_t n, int np, int c) {
    int l = (int)((n + 63) / 64) + 1;
    return l > c * np ? l - c * np : 0;
}
#  define ROPEX__PF_NEXT(cur) do { _mm_prefetch((const char *)(cur), _MM_HINT_T0); (cur) += 64; } while (0)
#  define ROPEX__SWEEP_START(cur, p, lead) do { int u_; (cur) = (uintptr_t)(p) & ~(uintptr_t)63; \
        for (u_ = 0; u_ < (lead); u_++) ROPEX__PF_NEXT(cur); } while (0)
#  define ROPEX__SWEEP1(cur) ROPEX__PF_NEXT(cur)
#  define ROPEX__SWEEP2(cur) do { ROPEX__PF_NEXT(cur); ROPEX__PF_NEXT(cur); } while (0)
#  define ROPEX__SWEEP4(cur) do { ROPEX__SWEEP2(cur); ROPEX__SWEEP2(cur); } while (0)
#  define ROPEX__SWEEP8(cur) do { ROPEX__SWEEP4(cur); ROPEX__SWEEP4(cur); } while (0)
/* Before the attention kernels' key loops: clang (14) otherwise unrolls them and hoists every
   row's widening ahead of the multiply-adds, which spills the accumulators (Q8_0 steps 1.2-1.4x
   and grouped-query fp16 steps 1.46x the time of gcc's build); gcc keeps them as written. */
#  if defined(__clang__)
#    define ROPEX__LOOP_PLAIN _Pragma("clang loop unroll(disable) vectorize(disable) distribute(disable)")
#  else
#    define ROPEX__LOOP_PLAIN
#  endif
/* eight int8 values at p as floats */
#  define ROPEX__LD_Q8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))))
#endif

#if defined(ROPEX__ATT_NEON)
#  if defined(__ARM_FEATURE_FMA)
#    define ROPEX__NFMA(a, b, c) vfmaq_f32(a, b, c)   /* a + b * c, fused */
#  else
#    define ROPEX__NFMA(a, b, c) vmlaq_f32(a, b, c)
#  endif
#  if defined(__aarch64__)
/* four fp16 values (little-endian bytes, any alignment) as floats: AArch64 converts in hardware */
#    define ROPEX__ATT_NEON_F16 1
#    define ROPEX__NLD_F16(x, e) vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8((const uint8_t *)(x) + 2 * (e))))
#  endif
#  define ROPEX__NLD_F32(x, e) vld1q_f32((const float *)(const void *)(x) + (e))
#endif

static float ropex__dot_f32(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
#if defined(ROPEX__ATT_AVX2)
    if ((n & 7) == 0) {
        __m256 x = _mm256_setzero_ps(), y = _mm256_setzero_ps();
        for (; i + 16 <= n; i += 16) {
            x = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), x);
            y = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), y);
        }
        if (i < n) x = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), x);
        return ropex__hsum256(_mm256_add_ps(x, y));
    }
#endif
#if defined(ROPEX__ATT_NEON)
    {
        /* four independent chains (one would wait on each add's latency) */
        float32x4_t x = vdupq_n_f32(0.0f), y = x, z = x, u = x;
        float t[4];
        for (; i + 16 <= n; i += 16) {
            x = ROPEX__NFMA(x, vld1q_f32(a + i), vld1q_f32(b + i));
            y = ROPEX__NFMA(y, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
            z = ROPEX__NFMA(z, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
            u = ROPEX__NFMA(u, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
        }
        for (; i + 4 <= n; i += 4) x = ROPEX__NFMA(x, vld1q_f32(a + i), vld1q_f32(b + i));
        vst1q_f32(t, vaddq_f32(vaddq_f32(x, y), vaddq_f32(z, u)));
        s0 = t[0]; s1 = t[1]; s2 = t[2]; s3 = t[3];
    }
#endif
    for (; i + 4 <= n; i += 4) { s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3]; }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* q (floats) . k (fp16 little-endian), n a multiple of 32 on the SIMD path. */
static float ropex__dot_f16(const float *q, const unsigned char *k, int n) {
#if defined(ROPEX__ATT_F16C)
    if ((n & 15) == 0) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int i;
        for (i = 0; i < n; i += 16) {
            __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + 2 * i)));
            __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + 2 * i + 16)));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, a1);
        }
        return ropex__hsum256(_mm256_add_ps(a0, a1));
    }
#elif defined(ROPEX__ATT_NEON_F16)
    if ((n & 15) == 0) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        float t[4];
        int i;
        for (i = 0; i < n; i += 16) {
            a0 = ROPEX__NFMA(a0, vld1q_f32(q + i), ROPEX__NLD_F16(k, i));
            a1 = ROPEX__NFMA(a1, vld1q_f32(q + i + 4), ROPEX__NLD_F16(k, i + 4));
            a2 = ROPEX__NFMA(a2, vld1q_f32(q + i + 8), ROPEX__NLD_F16(k, i + 8));
            a3 = ROPEX__NFMA(a3, vld1q_f32(q + i + 12), ROPEX__NLD_F16(k, i + 12));
        }
        vst1q_f32(t, vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
        return (t[0] + t[1]) + (t[2] + t[3]);
    }
#endif
    {
        float s0 = 0, s1 = 0;
        int i = 0;
        for (; i + 2 <= n; i += 2) { s0 += q[i] * ropex__h2f(k + 2 * i); s1 += q[i + 1] * ropex__h2f(k + 2 * i + 2); }
        for (; i < n; i++) s0 += q[i] * ropex__h2f(k + 2 * i);
        return s0 + s1;
    }
}

/* Q8_0 blocks . Q8_0 blocks (nb blocks): int32 sum per block (exact), then d_q*d_k per block. */
static float ropex__dot_q8(const unsigned char *qq, const unsigned char *k, int nb) {
    int b;
#if defined(ROPEX__ATT_AVX2)
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (b = 0; b < nb; b++) {
        const unsigned char *x = k + 34 * b, *y = qq + 34 * b;
        __m256i kx = _mm256_loadu_si256((const __m256i *)(const void *)(x + 2));
        __m256i qy = _mm256_loadu_si256((const __m256i *)(const void *)(y + 2));
        __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(kx, kx), _mm256_sign_epi8(qy, kx));
        __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ropex__h2f(x) * ropex__h2f(y)), p, acc);
    }
    return ropex__hsum256(acc);
#elif defined(ROPEX__ATT_NEON)
    float32x4_t acc = vdupq_n_f32(0.0f);
    float t[4];
    for (b = 0; b < nb; b++) {
        const unsigned char *x = k + 34 * b, *y = qq + 34 * b;
        int8x16_t k0 = vld1q_s8((const int8_t *)(const void *)(x + 2)), k1 = vld1q_s8((const int8_t *)(const void *)(x + 18));
        int8x16_t q0 = vld1q_s8((const int8_t *)(const void *)(y + 2)), q1 = vld1q_s8((const int8_t *)(const void *)(y + 18));
#  if defined(__ARM_FEATURE_DOTPROD)
        int32x4_t si = vdotq_s32(vdotq_s32(vdupq_n_s32(0), k0, q0), k1, q1);
#  else
        /* |q| <= 127 (Q8_0), so two int8 products fit int16 */
        int16x8_t pa = vmlal_s8(vmull_s8(vget_low_s8(k0), vget_low_s8(q0)), vget_low_s8(k1), vget_low_s8(q1));
        int16x8_t pb = vmlal_s8(vmull_s8(vget_high_s8(k0), vget_high_s8(q0)), vget_high_s8(k1), vget_high_s8(q1));
        int32x4_t si = vaddq_s32(vpaddlq_s16(pa), vpaddlq_s16(pb));
#  endif
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(si), ropex__h2f(x) * ropex__h2f(y));
    }
    vst1q_f32(t, acc);
    return (t[0] + t[1]) + (t[2] + t[3]);
#else
    float s = 0;
    for (b = 0; b < nb; b++) {
        const unsigned char *x = k + 34 * b, *y = qq + 34 * b;
        int32_t is = 0;
        int i;
        for (i = 0; i < 32; i++) is += (int32_t)(signed char)x[2 + i] * (int32_t)(signed char)y[2 + i];
        s += ropex__h2f(x) * ropex__h2f(y) * (float)is;
    }
    return s;
#endif
}

#if defined(ROPEX__ATT_AVX2)
/* Four Q8_0 queries against one Q8_0 key (nb blocks): the key block, its |k| and scale load once.
   Per query the block sums are the same exact int32 as ropex__dot_q8; only the float accumulation
   order across blocks matches it too (one fma per block into a per-query vector). */
static void ropex__dot_q8_x4(const unsigned char *const *qq, const unsigned char *k, int nb, float *out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const __m256i ones = _mm256_set1_epi16(1);
    int b;
    for (b = 0; b < nb; b++) {
        const unsigned char *x = k + 34 * b;
        __m256i kx = _mm256_loadu_si256((const __m256i *)(const void *)(x + 2));
        __m256i ax = _mm256_sign_epi8(kx, kx);
        float dk = ropex__h2f(x);
#define ROPEX__Q8X4(acc, qp) do { const unsigned char *y_ = (qp) + 34 * b; \
            __m256i qy_ = _mm256_loadu_si256((const __m256i *)(const void *)(y_ + 2)); \
            __m256 p_ = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy_, kx)), ones)); \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dk * ropex__h2f(y_)), p_, acc); } while (0)
        ROPEX__Q8X4(a0, qq[0]);
        ROPEX__Q8X4(a1, qq[1]);
        ROPEX__Q8X4(a2, qq[2]);
        ROPEX__Q8X4(a3, qq[3]);
#undef ROPEX__Q8X4
    }
    out[0] = ropex__hsum256(a0); out[1] = ropex__hsum256(a1);
    out[2] = ropex__hsum256(a2); out[3] = ropex__hsum256(a3);
}
#endif

#if defined(ROPEX__ATT_F16C)
#define ROPEX__ATT_HAVE_F16X4 1
/* Four float queries against one fp16 key (n a multiple of 16): each key vector converts once. */
static void ropex__dot_f16_x4(const float *const *q, const unsigned char *k, int n, float *out) {
    __m256 a[4][2];
    int i, z;
    for (z = 0; z < 4; z++) a[z][0] = a[z][1] = _mm256_setzero_ps();
    for (i = 0; i < n; i += 16) {
        __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + 2 * i)));
        __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + 2 * i + 16)));
        for (z = 0; z < 4; z++) {
            a[z][0] = _mm256_fmadd_ps(_mm256_loadu_ps(q[z] + i), k0, a[z][0]);
            a[z][1] = _mm256_fmadd_ps(_mm256_loadu_ps(q[z] + i + 8), k1, a[z][1]);
        }
    }
    for (z = 0; z < 4; z++) out[z] = ropex__hsum256(_mm256_add_ps(a[z][0], a[z][1]));
}
#else
#define ROPEX__ATT_HAVE_F16X4 0
#if defined(ROPEX__ATT_AVX2)
static void ropex__dot_f16_x4(const float *const *q, const unsigned char *k, int n, float *out) {
    int z;
    for (z = 0; z < 4; z++) out[z] = ropex__dot_f16(q[z], k, n);
}
#endif
#endif

static void ropex__axpy_f32(float *acc, float w, const float *v, int n) {
    int i = 0;
#if defined(ROPEX__ATT_AVX2)
    __m256 ww = _mm256_set1_ps(w);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(ww, _mm256_loadu_ps(v + i), _mm256_loadu_ps(acc + i)));
#elif defined(ROPEX__ATT_NEON)
    for (; i + 4 <= n; i += 4) vst1q_f32(acc + i, vmlaq_n_f32(vld1q_f32(acc + i), vld1q_f32(v + i), w));
#endif
    for (; i < n; i++) acc[i] += w * v[i];
}

static void ropex__axpy_f16(float *acc, float w, const unsigned char *v, int n) {
    int i = 0;
#if defined(ROPEX__ATT_F16C)
    __m256 ww = _mm256_set1_ps(w);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(v + 2 * i)));
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(ww, x, _mm256_loadu_ps(acc + i)));
    }
#elif defined(ROPEX__ATT_NEON_F16)
    {
        const float32x4_t ww = vdupq_n_f32(w);
        for (; i + 4 <= n; i += 4) vst1q_f32(acc + i, ROPEX__NFMA(vld1q_f32(acc + i), ROPEX__NLD_F16(v, i), ww));
    }
#endif
    for (; i < n; i++) acc[i] += w * ropex__h2f(v + 2 * i);
}

#if !defined(ROPEX__ATT_NEON)   /* NEON: ropex__vacc_q8 keeps a block in registers across the tile */
static void ropex__axpy_q8(float *acc, float w, const unsigned char *v, int nb) {
    int b;
    for (b = 0; b < nb; b++) {
        const unsigned char *x = v + 34 * b;
        float wd = w * ropex__h2f(x);
        float *a = acc + 32 * b;
#if defined(ROPEX__ATT_AVX2)
        __m256 ww = _mm256_set1_ps(wd);
        int i;
        for (i = 0; i < 32; i += 8) {
            __m128i q8 = _mm_loadl_epi64((const __m128i *)(const void *)(x + 2 + i));
            __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            _mm256_storeu_ps(a + i, _mm256_fmadd_ps(ww, f, _mm256_loadu_ps(a + i)));
        }
#else
        int i;
        for (i = 0; i < 32; i++) a[i] += wd * (float)(signed char)x[2 + i];
#endif
    }
}
#endif

#if defined(ROPEX__ATT_NEON)
/* acc[i..i+32) += sum_j w[j] * row_j[i..i+32): 32 dims in registers across the tile's nk rows
   (one load and store per tile instead of per key); LD(x, e) the four values e..e+3 of row x. */
#define ROPEX__NVACC32(LD) do { \
        float *a = acc + i; \
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4), a2 = vld1q_f32(a + 8), a3 = vld1q_f32(a + 12); \
        float32x4_t a4 = vld1q_f32(a + 16), a5 = vld1q_f32(a + 20), a6 = vld1q_f32(a + 24), a7 = vld1q_f32(a + 28); \
        for (j = 0; j < nk; j++) { \
            const unsigned char *x = v + (size_t)j * vs; \
            const float32x4_t ww = vdupq_n_f32(w[j]); \
            a0 = ROPEX__NFMA(a0, LD(x, i), ww); a1 = ROPEX__NFMA(a1, LD(x, i + 4), ww); \
            a2 = ROPEX__NFMA(a2, LD(x, i + 8), ww); a3 = ROPEX__NFMA(a3, LD(x, i + 12), ww); \
            a4 = ROPEX__NFMA(a4, LD(x, i + 16), ww); a5 = ROPEX__NFMA(a5, LD(x, i + 20), ww); \
            a6 = ROPEX__NFMA(a6, LD(x, i + 24), ww); a7 = ROPEX__NFMA(a7, LD(x, i + 28), ww); \
        } \
        vst1q_f32(a, a0); vst1q_f32(a + 4, a1); vst1q_f32(a + 8, a2); vst1q_f32(a + 12, a3); \
        vst1q_f32(a + 16, a4); vst1q_f32(a + 20, a5); vst1q_f32(a + 24, a6); vst1q_f32(a + 28, a7); \
    } while (0)
#endif

#if defined(ROPEX__ATT_AVX2)
/* The keys' loop of ropex__vacc_q8 over a pair of blocks at x and y = x + 34 in each row, then
   HINT. With F16C the scales convert in vector lanes (one broadcast of the fp16 bits, one
   conversion, one product): fewer instructions than scalar conversion and broadcast, same bits. */
#  if defined(ROPEX__ATT_F16C)
#    define ROPEX__VQ8_SCALES(x, y) __m256 wj = _mm256_set1_ps(w[j]); \
        __m256 d0 = _mm256_mul_ps(wj, ropex__h2f8(x)), d1 = _mm256_mul_ps(wj, ropex__h2f8(y))
#  else
#    define ROPEX__VQ8_SCALES(x, y) __m256 d0 = _mm256_set1_ps(w[j] * ropex__h2f(x)), d1 = _mm256_set1_ps(w[j] * ropex__h2f(y))
#  endif
#  define ROPEX__VQ8_KEYS(HINT) do { \
        ROPEX__LOOP_PLAIN \
        for (j = 0; j < nk; j++) { \
            const unsigned char *x = v + (size_t)j * vs + 34 * b, *y = x + 34; \
            ROPEX__VQ8_SCALES(x, y); \
            a0 = _mm256_fmadd_ps(d0, ROPEX__LD_Q8(x + 2), a0); a1 = _mm256_fmadd_ps(d0, ROPEX__LD_Q8(x + 10), a1); \
            a2 = _mm256_fmadd_ps(d0, ROPEX__LD_Q8(x + 18), a2); a3 = _mm256_fmadd_ps(d0, ROPEX__LD_Q8(x + 26), a3); \
            a4 = _mm256_fmadd_ps(d1, ROPEX__LD_Q8(y + 2), a4); a5 = _mm256_fmadd_ps(d1, ROPEX__LD_Q8(y + 10), a5); \
            a6 = _mm256_fmadd_ps(d1, ROPEX__LD_Q8(y + 18), a6); a7 = _mm256_fmadd_ps(d1, ROPEX__LD_Q8(y + 26), a7); \
            HINT; \
        } } while (0)
#endif

/* acc[0..32*nb) += sum_j w[j] * v_j over nk rows of Q8_0 blocks: accumulators stay in registers
   across the tile (64 dims at a time), one store per tile instead of one per key. */
static void ropex__vacc_q8(float *acc, const float *w, const unsigned char *v, size_t vs, int nk, int nb,
                           const unsigned char *pk, size_t pks) {
    int b, j;
#if defined(ROPEX__ATT_AVX2)
    uintptr_t cur = 0;
    if (pk)   /* the next tile's nk key rows (stride pks, 17 lines per 16 keys and block pair): one per key and pair */
        ROPEX__SWEEP_START(cur, pk, ropex__sweep_lead((size_t)nk * pks, nb / 2 * nk, 1));
    for (b = 0; b + 2 <= nb; b += 2) {
        float *a = acc + 32 * b;
        __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8), a2 = _mm256_loadu_ps(a + 16), a3 = _mm256_loadu_ps(a + 24);
        __m256 a4 = _mm256_loadu_ps(a + 32), a5 = _mm256_loadu_ps(a + 40), a6 = _mm256_loadu_ps(a + 48), a7 = _mm256_loadu_ps(a + 56);
        if (pk) ROPEX__VQ8_KEYS(ROPEX__SWEEP1(cur));   /* two copies: no branch per key */
        else ROPEX__VQ8_KEYS((void)0);
        _mm256_storeu_ps(a, a0); _mm256_storeu_ps(a + 8, a1); _mm256_storeu_ps(a + 16, a2); _mm256_storeu_ps(a + 24, a3);
        _mm256_storeu_ps(a + 32, a4); _mm256_storeu_ps(a + 40, a5); _mm256_storeu_ps(a + 48, a6); _mm256_storeu_ps(a + 56, a7);
    }
    for (; b < nb; b++)
        for (j = 0; j < nk; j++) ropex__axpy_q8(acc + 32 * b, w[j], v + (size_t)j * vs + 34 * b, 1);
#elif defined(ROPEX__ATT_NEON)
    (void)pk; (void)pks;
    for (b = 0; b < nb; b++) {   /* a block's 32 dims in registers across the tile */
        float *a = acc + 32 * b;
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4), a2 = vld1q_f32(a + 8), a3 = vld1q_f32(a + 12);
        float32x4_t a4 = vld1q_f32(a + 16), a5 = vld1q_f32(a + 20), a6 = vld1q_f32(a + 24), a7 = vld1q_f32(a + 28);
        for (j = 0; j < nk; j++) {
            const unsigned char *x = v + (size_t)j * vs + 34 * b;
            const float32x4_t wd = vdupq_n_f32(w[j] * ropex__h2f(x));
            int8x16_t q0 = vld1q_s8((const int8_t *)(const void *)(x + 2)), q1 = vld1q_s8((const int8_t *)(const void *)(x + 18));
            int16x8_t l0 = vmovl_s8(vget_low_s8(q0)), h0 = vmovl_s8(vget_high_s8(q0));
            int16x8_t l1 = vmovl_s8(vget_low_s8(q1)), h1 = vmovl_s8(vget_high_s8(q1));
            a0 = ROPEX__NFMA(a0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(l0))), wd);
            a1 = ROPEX__NFMA(a1, vcvtq_f32_s32(vmovl_s16(vget_high_s16(l0))), wd);
            a2 = ROPEX__NFMA(a2, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h0))), wd);
            a3 = ROPEX__NFMA(a3, vcvtq_f32_s32(vmovl_s16(vget_high_s16(h0))), wd);
            a4 = ROPEX__NFMA(a4, vcvtq_f32_s32(vmovl_s16(vget_low_s16(l1))), wd);
            a5 = ROPEX__NFMA(a5, vcvtq_f32_s32(vmovl_s16(vget_high_s16(l1))), wd);
            a6 = ROPEX__NFMA(a6, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h1))), wd);
            a7 = ROPEX__NFMA(a7, vcvtq_f32_s32(vmovl_s16(vget_high_s16(h1))), wd);
        }
        vst1q_f32(a, a0); vst1q_f32(a + 4, a1); vst1q_f32(a + 8, a2); vst1q_f32(a + 12, a3);
        vst1q_f32(a + 16, a4); vst1q_f32(a + 20, a5); vst1q_f32(a + 24, a6); vst1q_f32(a + 28, a7);
    }
#else
    (void)pk; (void)pks;
    for (b = 0; b < nb; b++)
        for (j = 0; j < nk; j++) ropex__axpy_q8(acc + 32 * b, w[j], v + (size_t)j * vs + 34 * b, 1);
#endif
}

#if defined(ROPEX__ATT_AVX2)
/* acc[i..i+64) += sum_j w[j] * row_j[i..i+64): 64 dims in registers across the tile's nk rows, one
   fma per element and key in key order (the same bits as an axpy per key). LD(x, e) loads the
   eight values e..e+7 of row x as floats. */
#define ROPEX__VACC64(LD, HINT) do { \
        float *a = acc + i; \
        __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8), a2 = _mm256_loadu_ps(a + 16), a3 = _mm256_loadu_ps(a + 24); \
        __m256 a4 = _mm256_loadu_ps(a + 32), a5 = _mm256_loadu_ps(a + 40), a6 = _mm256_loadu_ps(a + 48), a7 = _mm256_loadu_ps(a + 56); \
        ROPEX__LOOP_PLAIN \
        for (j = 0; j < nk; j++) { \
            const unsigned char *x = v + (size_t)j * vs; \
            __m256 ww = _mm256_set1_ps(w[j]); \
            a0 = _mm256_fmadd_ps(ww, LD(x, i), a0); a1 = _mm256_fmadd_ps(ww, LD(x, i + 8), a1); \
            a2 = _mm256_fmadd_ps(ww, LD(x, i + 16), a2); a3 = _mm256_fmadd_ps(ww, LD(x, i + 24), a3); \
            a4 = _mm256_fmadd_ps(ww, LD(x, i + 32), a4); a5 = _mm256_fmadd_ps(ww, LD(x, i + 40), a5); \
            a6 = _mm256_fmadd_ps(ww, LD(x, i + 48), a6); a7 = _mm256_fmadd_ps(ww, LD(x, i + 56), a7); \
            HINT; \
        } \
        _mm256_storeu_ps(a, a0); _mm256_storeu_ps(a + 8, a1); _mm256_storeu_ps(a + 16, a2); _mm256_storeu_ps(a + 24, a3); \
        _mm256_storeu_ps(a + 32, a4); _mm256_storeu_ps(a + 40, a5); _mm256_storeu_ps(a + 48, a6); _mm256_storeu_ps(a + 56, a7); \
    } while (0)
/* The same for 8 dims (short rows, or what remains after the 64s). */
#define ROPEX__VACC8(LD) do { \
        __m256 a0 = _mm256_loadu_ps(acc + i); \
        for (j = 0; j < nk; j++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), LD(v + (size_t)j * vs, i), a0); \
        _mm256_storeu_ps(acc + i, a0); \
    } while (0)
#define ROPEX__LD_F32(x, e) _mm256_loadu_ps((const float *)(const void *)(x) + (e))
#define ROPEX__LD_F16(x, e) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((x) + 2 * (e))))
#endif

/* acc[0..n) += sum_j w[j] * v_j over nk fp16 rows of n values. */
static void ropex__vacc_f16(float *acc, const float *w, const unsigned char *v, size_t vs, int nk, int n,
                            const unsigned char *pk, size_t pks) {
    int i = 0, j;
#if defined(ROPEX__ATT_F16C)
    if (pk) {   /* with hints for the next tile's key rows: one sequential sweep, step (i / 64) * nk + j */
        uintptr_t cur;
        ROPEX__SWEEP_START(cur, pk, ropex__sweep_lead((size_t)nk * pks, n / 64 * nk, 2));   /* 64 dims of a key: 2 lines */
        for (; i + 64 <= n; i += 64) ROPEX__VACC64(ROPEX__LD_F16, ROPEX__SWEEP2(cur));
    }
    for (; i + 64 <= n; i += 64) ROPEX__VACC64(ROPEX__LD_F16, (void)0);
    for (; i + 8 <= n; i += 8) ROPEX__VACC8(ROPEX__LD_F16);
#elif defined(ROPEX__ATT_NEON_F16)
    for (; i + 32 <= n; i += 32) ROPEX__NVACC32(ROPEX__NLD_F16);
#endif
    (void)pk; (void)pks;
    if (i < n)
        for (j = 0; j < nk; j++) ropex__axpy_f16(acc + i, w[j], v + (size_t)j * vs + 2 * i, n - i);
}

#if defined(ROPEX__ATT_AVX2)
/* exp of eight lanes: range reduction by ln 2 and a degree-6 polynomial (Cephes expf coefficients;
   at most 2 ulp from exp over [-87, 88], measured against double), 0 below -87, +inf above 88,
   NaN stays NaN. */
static __m256 ropex__exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f), log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q), fx, r, p, y;
    __m256i e;
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    fx = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(fx, c1, x);
    r = _mm256_fnmadd_ps(fx, c2, r);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_andnot_ps(under, y);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(HUGE_VALF), over);
    return _mm256_blendv_ps(y, _mm256_set1_ps(NAN), nan);
}
#endif

#if defined(ROPEX__ATT_F16C)
/* 32 dims of two heads in registers: a0..a3 at a (head 0), e0..e3 at e (head 1); the values f0..f3
   weighted by u (head 0) and t (head 1) */
#define ROPEX__PAIR_LOAD() do { a0 = _mm256_loadu_ps(a); a1 = _mm256_loadu_ps(a + 8); a2 = _mm256_loadu_ps(a + 16); \
        a3 = _mm256_loadu_ps(a + 24); e0 = _mm256_loadu_ps(e); e1 = _mm256_loadu_ps(e + 8); e2 = _mm256_loadu_ps(e + 16); \
        e3 = _mm256_loadu_ps(e + 24); } while (0)
#define ROPEX__PAIR_FMA(u, t) do { a0 = _mm256_fmadd_ps(u, f0, a0); a1 = _mm256_fmadd_ps(u, f1, a1); \
        a2 = _mm256_fmadd_ps(u, f2, a2); a3 = _mm256_fmadd_ps(u, f3, a3); e0 = _mm256_fmadd_ps(t, f0, e0); \
        e1 = _mm256_fmadd_ps(t, f1, e1); e2 = _mm256_fmadd_ps(t, f2, e2); e3 = _mm256_fmadd_ps(t, f3, e3); } while (0)
#define ROPEX__PAIR_STORE() do { _mm256_storeu_ps(a, a0); _mm256_storeu_ps(a + 8, a1); _mm256_storeu_ps(a + 16, a2); \
        _mm256_storeu_ps(a + 24, a3); _mm256_storeu_ps(e, e0); _mm256_storeu_ps(e + 8, e1); _mm256_storeu_ps(e + 16, e2); \
        _mm256_storeu_ps(e + 24, e3); } while (0)
#endif
/* Two query heads sharing a kv head (grouped-query attention): each value row converts once for
   both heads. Per head the sums are those of ropex__vacc_q8 / ropex__vacc_f16 (one fma per element
   and key in key order, the same weight-scale products): the same bits, fewer conversions. */
static void ropex__vacc_q8_2(float *acc0, float *acc1, const float *w0, const float *w1, const unsigned char *v,
                             size_t vs, int nk, int nb, const unsigned char *pk, size_t pks) {
#if defined(ROPEX__ATT_F16C)
    int b, j;
    uintptr_t cur = 0;
    if (pk)   /* the next tile's key rows: one hint per key and block */
        ROPEX__SWEEP_START(cur, pk, ropex__sweep_lead((size_t)nk * pks, nb * nk, 1));
    for (b = 0; b < nb; b++) {
        float *a = acc0 + 32 * b, *e = acc1 + 32 * b;
        __m256 a0, a1, a2, a3, e0, e1, e2, e3;
        ROPEX__PAIR_LOAD();
        ROPEX__LOOP_PLAIN
        for (j = 0; j < nk; j++) {
            const unsigned char *x = v + (size_t)j * vs + 34 * b;
            __m256 d = ropex__h2f8(x);
            __m256 d0 = _mm256_mul_ps(_mm256_set1_ps(w0[j]), d), d1 = _mm256_mul_ps(_mm256_set1_ps(w1[j]), d);
            __m256 f0 = ROPEX__LD_Q8(x + 2), f1 = ROPEX__LD_Q8(x + 10), f2 = ROPEX__LD_Q8(x + 18), f3 = ROPEX__LD_Q8(x + 26);
            ROPEX__PAIR_FMA(d0, d1);
            if (pk) ROPEX__SWEEP1(cur);
        }
        ROPEX__PAIR_STORE();
    }
#else
    ropex__vacc_q8(acc0, w0, v, vs, nk, nb, pk, pks);
    ropex__vacc_q8(acc1, w1, v, vs, nk, nb, NULL, pks);
#endif
}

static void ropex__vacc_f16_2(float *acc0, float *acc1, const float *w0, const float *w1, const unsigned char *v,
                              size_t vs, int nk, int n, const unsigned char *pk, size_t pks) {
    int i = 0;
#if defined(ROPEX__ATT_F16C)
    int j;
    uintptr_t cur = 0;
    if (pk)   /* the next tile's key rows: 32 dims of a key are one line */
        ROPEX__SWEEP_START(cur, pk, ropex__sweep_lead((size_t)nk * pks, n / 32 * nk, 1));
    for (; i + 32 <= n; i += 32) {
        float *a = acc0 + i, *e = acc1 + i;
        __m256 a0, a1, a2, a3, e0, e1, e2, e3;
        ROPEX__PAIR_LOAD();
        ROPEX__LOOP_PLAIN
        for (j = 0; j < nk; j++) {
            const unsigned char *x = v + (size_t)j * vs;
            __m256 f0 = ROPEX__LD_F16(x, i), f1 = ROPEX__LD_F16(x, i + 8), f2 = ROPEX__LD_F16(x, i + 16), f3 = ROPEX__LD_F16(x, i + 24);
            __m256 u = _mm256_set1_ps(w0[j]), t = _mm256_set1_ps(w1[j]);
            ROPEX__PAIR_FMA(u, t);
            if (pk) ROPEX__SWEEP1(cur);
        }
        ROPEX__PAIR_STORE();
    }
    if (i > 0) pk = NULL;
#endif
    if (i < n) {
        ropex__vacc_f16(acc0 + i, w0, v + 2 * (size_t)i, vs, nk, n - i, pk, pks);
        ropex__vacc_f16(acc1 + i, w1, v + 2 * (size_t)i, vs, nk, n - i, NULL, pks);
    }
}

/* Same for float rows. */
static void ropex__vacc_f32(float *acc, const float *w, const unsigned char *v, size_t vs, int nk, int n) {
    int i = 0, j;
#if defined(ROPEX__ATT_AVX2)
    for (; i + 64 <= n; i += 64) ROPEX__VACC64(ROPEX__LD_F32, (void)0);
    for (; i + 8 <= n; i += 8) ROPEX__VACC8(ROPEX__LD_F32);
#elif defined(ROPEX__ATT_NEON)
    for (; i + 32 <= n; i += 32) ROPEX__NVACC32(ROPEX__NLD_F32);
#endif
    if (i < n)
        for (j = 0; j < nk; j++) ropex__axpy_f32(acc + i, w[j], (const float *)(const void *)(v + (size_t)j * vs) + i, n - i);
}

/* s[j] = exp(s[j] - m) for j < n; returns the sum (fixed order: 8 lane sums, then the tail).
   AVX2: ropex__exp8 eight lanes at a time (arguments <= 0 here: s[j] <= m); the tail and the
   other builds use expf. */
static float ropex__exp_tile(float *s, int n, float m) {
    float sum = 0.0f;
    int j = 0;
#if defined(ROPEX__ATT_AVX2)
    const __m256 mm = _mm256_set1_ps(m);
    __m256 vs = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 y = ropex__exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mm));
        _mm256_storeu_ps(s + j, y);
        vs = _mm256_add_ps(vs, y);   /* lane-wise partial sums: no serial scalar chain */
    }
    sum = ropex__hsum256(vs);
#endif
    for (; j < n; j++) { s[j] = expf(s[j] - m); sum += s[j]; }
    return sum;
}

/* ---- configuration ---- */

/* kv heads per unit: the smallest group whose row span holds whole Q8_0/Q4_0 blocks. */
static int ropex__kv_unit_heads(const ropex_kv_config *c) {
    int u = 1;
    if (c->k_type == ROPEX_Q8_0 || c->v_type == ROPEX_Q8_0 || c->v_type == ROPEX_Q4_0)
        while ((u * c->head_dim) % ROPEX_QK) u++;
    return u;
}

static int ropex__kv_type_ok(ropex_type t, int is_v) {
    return t == ROPEX_F32 || t == ROPEX_F16 || t == ROPEX_Q8_0 || (is_v && t == ROPEX_Q4_0);
}

#define ROPEX__ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

/* Validates cfg and computes the layout; returns the status, *total the bytes (slack included). */
static ropex_status ropex__kv_layout(const ropex_kv_config *c, size_t *krow, size_t *vrow, size_t *kbytes,
                                     size_t *vbytes, size_t *total) {
    size_t row, rows, sp;
    int u;
    if (!c) return ROPEX_ERR_ARG;
    if (c->n_layers < 1 || c->n_kv_heads < 1 || c->head_dim < 2 || (c->head_dim & 1) ||
        c->head_dim > ROPEX__ATT_MAXD || c->capacity < 1 || c->n_sink < 0 || c->n_sink >= c->capacity ||
        (c->positions != ROPEX_POS_TEXT && c->positions != ROPEX_POS_CACHE))
        return ROPEX_ERR_ARG;
    if (!ropex__kv_type_ok(c->k_type, 0) || !ropex__kv_type_ok(c->v_type, 1)) return ROPEX_ERR_ARG;
    if ((size_t)c->n_kv_heads > ((size_t)1 << 20)) return ROPEX_ERR_ARG;
    row = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    u = ropex__kv_unit_heads(c);
    /* Block types need rows of whole blocks (DESIGN: KV Q8_0 blocks span kv heads). */
    if ((c->k_type == ROPEX_Q8_0 || c->v_type == ROPEX_Q8_0 || c->v_type == ROPEX_Q4_0) && row % ROPEX_QK)
        return ROPEX_ERR_UNSUPPORTED;
    if ((size_t)u * (size_t)c->head_dim > ROPEX__ATT_SPAN) return ROPEX_ERR_UNSUPPORTED;
    *krow = ropex__kv_elem_off(c->k_type, row);
    *vrow = ropex__kv_elem_off(c->v_type, row);
    rows = (size_t)c->n_layers * (size_t)c->capacity;
    if (rows / (size_t)c->capacity != (size_t)c->n_layers) return ROPEX_ERR_ARG;
    if (*krow && rows > (SIZE_MAX - 4096) / *krow / 4) return ROPEX_ERR_ARG;
    if (*vrow && rows > (SIZE_MAX - 4096) / *vrow / 4) return ROPEX_ERR_ARG;
    if ((size_t)c->capacity > (SIZE_MAX - 4096) / 16) return ROPEX_ERR_ARG;
    *kbytes = ROPEX__ALIGN64(rows * *krow);
    *vbytes = ROPEX__ALIGN64(rows * *vrow);
    sp = ROPEX__ALIGN64((size_t)c->capacity * sizeof(int64_t));
    if (*kbytes > SIZE_MAX / 2 - sp - 64 || *vbytes > SIZE_MAX / 2 - sp - 64) return ROPEX_ERR_ARG;
    *total = 63 + *kbytes + *vbytes + sp;   /* 63: the buffer may start at any address */
    return ROPEX_OK;
}

ROPEX_API size_t ropex_kv_bytes(const ropex_kv_config *cfg) {
    size_t kr, vr, kb, vb, total;
    if (ropex__kv_layout(cfg, &kr, &vr, &kb, &vb, &total) != ROPEX_OK) return 0;
    return total;
}

/* Keys are stored raw when the frequency set depends on the length, or when clamped positions under
   CACHE slots break relative invariance (R(a+d) != R(d)R(a) for clamped pairs). */
static int ropex__kv_keys_raw(const ropex_kv_config *c, const ropex_rope_table *t) {
    int j;
    if (t->length_dependent) return 1;
    if (c->positions == ROPEX_POS_CACHE)
        for (j = 0; j < t->n_pairs; j++) if (t->clamp_pos[j] >= 0) return 1;
    return 0;
}

static ropex_status ropex__kv_rope_check(const ropex_kv_config *c, const ropex_rope_config *rope,
                                         ropex_rope_table *t) {
    ropex_status st;
    if (!rope) return ROPEX_ERR_ARG;
    if (rope->head_dim != c->head_dim) return ROPEX_ERR_ARG;
    st = ropex_rope_validate(rope, NULL);
    if (st != ROPEX_OK) return st;
    return ropex_rope_table_init(t, rope, 0);
}

ROPEX_API ropex_status ropex_kv_init(ropex_kv *kv, const ropex_kv_config *cfg, const ropex_rope_config *rope,
                                     void *buf, size_t bytes) {
    size_t kr, vr, kb, vb, total;
    unsigned char *p;
    ropex_status st;
    if (!kv || !cfg || !rope || !buf) return ROPEX_ERR_ARG;
    st = ropex__kv_layout(cfg, &kr, &vr, &kb, &vb, &total);
    if (st != ROPEX_OK) return st;
    if (bytes < total) return ROPEX_ERR_BUFFER;
    memset(kv, 0, sizeof(*kv));
    kv->cfg = *cfg;
    st = ropex__kv_rope_check(cfg, rope, &kv->table);
    if (st != ROPEX_OK) return st;
    kv->rope = *rope;
    kv->keys_raw = ropex__kv_keys_raw(cfg, &kv->table);
    kv->k_row_bytes = kr;
    kv->v_row_bytes = vr;
    {
        int uh = ropex__kv_unit_heads(cfg);
        kv->unit_heads = uh;
        kv->n_units = cfg->n_kv_heads / uh;
        kv->k_unit_bytes = ropex__kv_elem_off(cfg->k_type, (size_t)uh * (size_t)cfg->head_dim);
        kv->v_unit_bytes = ropex__kv_elem_off(cfg->v_type, (size_t)uh * (size_t)cfg->head_dim);
    }
    p = (unsigned char *)buf;
    p += (size_t)((64u - ((uintptr_t)p & 63u)) & 63u);
    kv->k = p;
    kv->v = p + kb;
    kv->slot_pos = (int64_t *)(void *)(p + kb + vb);
    kv->user_buf = buf;
    ropex_kv_reset(kv);
    return ROPEX_OK;
}

ROPEX_API void ropex_kv_reset(ropex_kv *kv) {
    int s;
    if (!kv || !kv->slot_pos) return;
    kv->n_past = 0;
    for (s = 0; s < kv->cfg.capacity; s++) kv->slot_pos[s] = -1;
}

ROPEX_API int ropex_kv_n_kept(const ropex_kv *kv) {
    if (!kv || !kv->slot_pos) return 0;
    return kv->n_past < (int64_t)kv->cfg.capacity ? (int)kv->n_past : kv->cfg.capacity;
}

static int64_t ropex__kv_slot(const ropex_kv_config *c, int64_t t) {
    int64_t ns = c->n_sink;
    return t < ns ? t : ns + (t - ns) % (int64_t)(c->capacity - c->n_sink);
}

ROPEX_API int64_t ropex_kv_slot(const ropex_kv *kv, int64_t pos) {
    if (!kv || pos < 0) return -1;
    return ropex__kv_slot(&kv->cfg, pos);
}

ROPEX_API ropex_status ropex_kv_advance(ropex_kv *kv, int n_tokens) {
    int64_t t, end, lo, R;
    if (!kv || !kv->slot_pos || n_tokens < 0) return ROPEX_ERR_ARG;
    if (kv->n_past > INT64_MAX - n_tokens) return ROPEX_ERR_ARG;
    end = kv->n_past + n_tokens;
    R = kv->cfg.capacity - kv->cfg.n_sink;
    for (t = kv->n_past; t < end && t < kv->cfg.n_sink; t++) kv->slot_pos[t] = t;
    lo = end - R;
    if (lo < kv->n_past) lo = kv->n_past;
    if (lo < kv->cfg.n_sink) lo = kv->cfg.n_sink;
    for (t = lo; t < end; t++) kv->slot_pos[ropex__kv_slot(&kv->cfg, t)] = t;
    kv->n_past = end;
    return ROPEX_OK;
}

/* The row of unit u (whole kv-head group) at (layer, slot), keys or values. */
static unsigned char *ropex__kv_urow(const ropex_kv *kv, int is_v, int layer, int u, int64_t slot) {
    const ropex_kv_config *c = &kv->cfg;
    size_t idx = ((size_t)layer * (size_t)kv->n_units + (size_t)u) * (size_t)c->capacity + (size_t)slot;
    return is_v ? kv->v + idx * kv->v_unit_bytes : kv->k + idx * kv->k_unit_bytes;
}

/* Stores token (k, v: full rows of floats) at text position p for kv-head units [ua, ub). */
static void ropex__kv_store_row(ropex_kv *kv, int layer, const float *k, const float *v, int64_t p,
                                int ua, int ub) {
    const ropex_kv_config *c = &kv->cfg;
    int uh = kv->unit_heads, u;
    size_t span = (size_t)uh * (size_t)c->head_dim;
    int64_t slot = ropex__kv_slot(c, p);
    float buf[ROPEX__ATT_SPAN];
    for (u = ua; u < ub; u++) {
        size_t e0 = (size_t)u * span;
        memcpy(buf, k + e0, span * sizeof(float));
        if (!kv->keys_raw) ropex_rope_apply_k(&kv->table, buf, uh, (size_t)c->head_dim, p);
        ropex__kv_write(c->k_type, ropex__kv_urow(kv, 0, layer, u, slot), 0, buf, span);
        ropex__kv_write(c->v_type, ropex__kv_urow(kv, 1, layer, u, slot), 0, v + e0, span);
    }
}

ROPEX_API ropex_status ropex_kv_store(ropex_kv *kv, int layer, const float *k, const float *v, int n_tokens) {
    int i, units;
    size_t row;
    if (!kv || !kv->k || !k || !v || n_tokens < 0 || layer < 0 || layer >= kv->cfg.n_layers) return ROPEX_ERR_ARG;
    if (kv->n_past > INT64_MAX - n_tokens) return ROPEX_ERR_ARG;
    units = kv->n_units;
    row = (size_t)kv->cfg.n_kv_heads * (size_t)kv->cfg.head_dim;
    for (i = 0; i < n_tokens; i++)
        ropex__kv_store_row(kv, layer, k + (size_t)i * row, v + (size_t)i * row, kv->n_past + i, 0, units);
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_kv_set_rope(ropex_kv *kv, const ropex_rope_config *rope) {
    ropex_rope_table nt;
    ropex_status st;
    int new_raw, l, s, u, uh, units;
    size_t span;
    float buf[ROPEX__ATT_SPAN];
    if (!kv || !kv->k) return ROPEX_ERR_ARG;
    st = ropex__kv_rope_check(&kv->cfg, rope, &nt);
    if (st != ROPEX_OK) return st;
    new_raw = ropex__kv_keys_raw(&kv->cfg, &nt);
    uh = kv->unit_heads;
    units = kv->n_units;
    span = (size_t)uh * (size_t)kv->cfg.head_dim;
    /* Stored keys follow the new frequency set once per change (dequantize, undo the old rotation and
       magnitude at the stored text position, apply the new one, requantize). Raw keys need nothing.
       Pairs zeroed by the old table stay zero. */
    if (!(kv->keys_raw && new_raw)) {
        for (l = 0; l < kv->cfg.n_layers; l++)
            for (s = 0; s < kv->cfg.capacity; s++) {
                int64_t pos = kv->slot_pos[s];
                if (pos < 0) continue;
                for (u = 0; u < units; u++) {
                    unsigned char *kr = ropex__kv_urow(kv, 0, l, u, s);
                    ropex__kv_fetch(kv->cfg.k_type, kr, 0, span, buf);
                    if (!kv->keys_raw) ropex_rope_unapply_k(&kv->table, buf, uh, (size_t)kv->cfg.head_dim, pos);
                    if (!new_raw) ropex_rope_apply_k(&nt, buf, uh, (size_t)kv->cfg.head_dim, pos);
                    ropex__kv_write(kv->cfg.k_type, kr, 0, buf, span);
                }
            }
    }
    kv->rope = *rope;
    kv->table = nt;
    kv->keys_raw = new_raw;
    return ROPEX_OK;
}

/* ---- attention ---- */

typedef struct ropex__att_job {
    ropex_kv *kv;
    int layer, n_heads, n_tokens, units;
    float *q, *out;
    const float *k, *v;
} ropex__att_job;

/* Per-pass state of the online softmax: running max m, sum l, accumulators in out. */
typedef struct ropex__att_pass {
    const ropex_kv *kv;
    const ropex_rope_table *tab;  /* table for rotating raw keys at use */
    int layer, hd, g, h0, h1;     /* query heads [h0, h1), group size g */
    int fast_k;                   /* 1: scores straight from stored keys (rotated, aligned) */
    const unsigned char *kb, *vb; /* the unit's rows at slot 0 (this layer) */
    size_t krow, vrow;            /* bytes per slot of the unit's rows */
    int khb;                      /* the unit's first kv head (offsets in a row count from it) */
    int64_t p, qpos;              /* text position and RoPE position of the query */
    float *acc;                   /* token's out */
    float m[ROPEX__ATT_MAXQ], l[ROPEX__ATT_MAXQ];
} ropex__att_pass;

#if defined(ROPEX__ATT_AVX2)
/* Lane z = the sum of a_z's eight lanes, evaluated in the same order for every lane, so a key's
   score does not depend on its position in a batch (nor on the tile split). */
static __m256 ropex__hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6,
                             __m256 a7) {
    __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31));
}

/* 1 when the batched score kernel handles stored (rotated) keys of this type and head size. */
static int ropex__att_k8_ok(ropex_type t, int hd) {
    if (t == ROPEX_Q8_0) return hd % ROPEX_QK == 0;
#if defined(ROPEX__ATT_F16C)
    if (t == ROPEX_F16) return hd % 8 == 0;
#endif
    return t == ROPEX_F32 && hd % 8 == 0;
}

/* Scores of a tile's keys for every query head of the pass, eight keys per batch: each query
   vector (or Q8_0 block) loads once per batch, eight independent accumulator chains, and one
   transposed reduction yields eight scores (no per-key horizontal sum). Padding lanes of a short
   batch repeat key 0 and are dropped. */
static void ropex__att_scores8(const ropex__att_pass *P, const float *const *qh, const unsigned char *k,
                               int nk, float sc[][ROPEX__ATT_TILE], const unsigned char *pv, size_t pvs) {
    const ropex_kv_config *c = &P->kv->cfg;
    int hd = P->hd, j0, z, h, kh, b, i;
    int kh0 = P->h0 / P->g, kh1 = (P->h1 - 1) / P->g;
    const __m256i ones = _mm256_set1_epi16(1);
    /* pv: a batch's value rows swept over its loop's steps of 32 dims */
    int lead = pv ? ropex__sweep_lead(8 * pvs, hd / 32, c->k_type == ROPEX_Q8_0 ? 4 : 8) : 0;   /* pv: hd % 64 == 0 */
    uintptr_t cur = 0;
    for (j0 = 0; j0 < nk; j0 += 8) {
        const unsigned char *kr[8];
        for (z = 0; z < 8; z++) kr[z] = k + (size_t)(j0 + z < nk ? j0 + z : j0) * P->krow;
        for (kh = kh0; kh <= kh1; kh++) {
            size_t off = ropex__kv_elem_off(c->k_type, (size_t)(kh - P->khb) * (size_t)hd);
            const unsigned char *k0 = kr[0] + off, *k1 = kr[1] + off, *k2 = kr[2] + off, *k3 = kr[3] + off;
            const unsigned char *k4 = kr[4] + off, *k5 = kr[5] + off, *k6 = kr[6] + off, *k7 = kr[7] + off;
            int ha = kh * P->g > P->h0 ? kh * P->g : P->h0;
            int hb = (kh + 1) * P->g < P->h1 ? (kh + 1) * P->g : P->h1;
            for (h = ha; h < hb; h++) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, r;
                /* pv: hints for the batch's value rows, spread over the first head's loop */
                const unsigned char *ph = NULL;
                if (pv && h == ha) {
                    ph = pv + (size_t)j0 * pvs;
                    ROPEX__SWEEP_START(cur, ph, lead);
                }
                if (c->k_type == ROPEX_Q8_0) {
                    const unsigned char *qq = (const unsigned char *)(const void *)qh[h - P->h0];
                    ROPEX__LOOP_PLAIN
                    for (b = 0; b < hd / ROPEX_QK; b++) {
                        __m256i qy = _mm256_loadu_si256((const __m256i *)(const void *)(qq + 34 * b + 2));
                        float dq = ropex__h2f(qq + 34 * b);
#if defined(ROPEX__ATT_F16C)
                        const __m256 dqv = _mm256_set1_ps(dq);
#  define ROPEX__KSCALE(x) _mm256_mul_ps(dqv, ropex__h2f8(x))
#else
#  define ROPEX__KSCALE(x) _mm256_set1_ps(dq * ropex__h2f(x))
#endif
                        /* exact int32 block sum (|k| * sign-adjusted q, the maddubs idiom), one fma per block */
#define ROPEX__K8(acc, z) do { const unsigned char *x_ = k##z + 34 * b; \
                        __m256i kx_ = _mm256_loadu_si256((const __m256i *)(const void *)(x_ + 2)); \
                        __m256 p_ = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16( \
                            _mm256_sign_epi8(kx_, kx_), _mm256_sign_epi8(qy, kx_)), ones)); \
                        acc = _mm256_fmadd_ps(ROPEX__KSCALE(x_), p_, acc); } while (0)
                        ROPEX__K8(a0, 0); ROPEX__K8(a1, 1); ROPEX__K8(a2, 2); ROPEX__K8(a3, 3);
                        ROPEX__K8(a4, 4); ROPEX__K8(a5, 5); ROPEX__K8(a6, 6); ROPEX__K8(a7, 7);
#undef ROPEX__K8
#undef ROPEX__KSCALE
                        if (ph) ROPEX__SWEEP4(cur);   /* Q8_0: 8 rows of 34-byte blocks, about 4.25 lines per block */
                    }
                } else {
                    const float *qv = qh[h - P->h0];
                    int f16 = c->k_type == ROPEX_F16;
#if defined(ROPEX__ATT_F16C)
#  define ROPEX__LK(kp, i) (f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((kp) + 2 * (i)))) \
                                : _mm256_loadu_ps((const float *)(const void *)((kp) + 4 * (i))))
#else
#  define ROPEX__LK(kp, i) _mm256_loadu_ps((const float *)(const void *)((kp) + 4 * (i)))
#endif
#define ROPEX__S8(i) do { __m256 x_ = _mm256_loadu_ps(qv + (i)); \
                        a0 = _mm256_fmadd_ps(x_, ROPEX__LK(k0, i), a0); a1 = _mm256_fmadd_ps(x_, ROPEX__LK(k1, i), a1); \
                        a2 = _mm256_fmadd_ps(x_, ROPEX__LK(k2, i), a2); a3 = _mm256_fmadd_ps(x_, ROPEX__LK(k3, i), a3); \
                        a4 = _mm256_fmadd_ps(x_, ROPEX__LK(k4, i), a4); a5 = _mm256_fmadd_ps(x_, ROPEX__LK(k5, i), a5); \
                        a6 = _mm256_fmadd_ps(x_, ROPEX__LK(k6, i), a6); a7 = _mm256_fmadd_ps(x_, ROPEX__LK(k7, i), a7); } while (0)
                    if (ph) {   /* hd % 32 == 0 here: four steps, then the value-row hints of 32 dims */
                        ROPEX__LOOP_PLAIN
                        for (i = 0; i < hd; i += 32) {
                            ROPEX__S8(i); ROPEX__S8(i + 8); ROPEX__S8(i + 16); ROPEX__S8(i + 24);
                            ROPEX__SWEEP8(cur);   /* fp16: 8 rows x 32 dims = 8 lines */
                        }
                    } else {
                        ROPEX__LOOP_PLAIN
                        for (i = 0; i < hd; i += 8) ROPEX__S8(i);
                    }
#undef ROPEX__S8
#undef ROPEX__LK
                    (void)f16;
                }
                r = ropex__hsum8x8(a0, a1, a2, a3, a4, a5, a6, a7);
                if (j0 + 8 <= nk) _mm256_storeu_ps(&sc[h - P->h0][j0], r);
                else {
                    float t[8];
                    _mm256_storeu_ps(t, r);
                    for (z = 0; z < nk - j0; z++) sc[h - P->h0][j0 + z] = t[z];
                }
            }
        }
    }
}
#endif

/* Software prefetch of the bytes [b0, b1) of the rows at the consecutive slots s0..s0+n-1 (one
   sweep over the lines when the span is the whole row). */
#if defined(ROPEX__ATT_AVX2)
#  define ROPEX__ATT_PF(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)   /* T1 measured 3-9% slower */
#elif defined(ROPEX__ATT_NEON) && defined(__GNUC__)
#  define ROPEX__ATT_PF(p) __builtin_prefetch((const void *)(p), 0, 2)
#endif
#if defined(ROPEX__ATT_PF)
static void ropex__att_prefetch(const unsigned char *base, size_t row, size_t b0, size_t b1, int64_t s0, int n) {
    const unsigned char *r = base + (size_t)s0 * row;
    uintptr_t a, e;
    int j;
    if (b0 == 0 && b1 == row) { b1 = (size_t)n * row; n = 1; }
    /* one hint per loop step: unrolled by four (back-to-back hints) measured 7-19% slower with fp16 */
    for (j = 0; j < n; j++, r += row)
        for (a = (uintptr_t)(r + b0) & ~(uintptr_t)63, e = (uintptr_t)(r + b1); a < e; a += 64) ROPEX__ATT_PF(a);
}
#endif

/* One tile of nk keys at the consecutive slots s0.. (a tile never wraps around the ring; RoPE
   positions kp0.. for rotate-at-use) for every query head of the pass. Rows are walked key by key
   across the pass's kv heads, so a thread reads one contiguous span of each row: the access
   stream is sequential. */
static void ropex__att_tile(ropex__att_pass *P, const float *const *qh, int64_t s0, int64_t kp0, int nk) {
    const ropex_kv *kv = P->kv;
    const ropex_kv_config *c = &kv->cfg;
    int hd = P->hd, j, h, kh;
    int kh0 = P->h0 / P->g, kh1 = (P->h1 - 1) / P->g;
    const unsigned char *kbase = P->kb;
    const unsigned char *vbase = P->vb;
    float sc[ROPEX__ATT_MAXQ][ROPEX__ATT_TILE];
    float kb[ROPEX__ATT_SPAN];
    const unsigned char *k0 = kbase + (size_t)s0 * P->krow, *v0 = vbase + (size_t)s0 * P->vrow;   /* key 0's rows */
    size_t span = (size_t)(kh1 - kh0 + 1) * (size_t)hd;
    int span_ok = span <= ROPEX__ATT_SPAN;
    int v_fast = c->v_type == ROPEX_F16 || c->v_type == ROPEX_F32 || (c->v_type == ROPEX_Q8_0 && hd % ROPEX_QK == 0);
    /* The tile's work runs scores, then values, each a long stretch of instructions: the out-of-
       order window reaches neither the values' misses during the scores nor the next tile's keys
       during the values, and the hardware prefetchers stop between bursts. So the values of this
       tile are prefetched before its scores, and the next tile's keys before its values (unless
       the ring wraps there): as two bursts, or spread through the loops below. */
    size_t kv0 = ropex__kv_elem_off(c->k_type, (size_t)(kh0 - P->khb) * (size_t)hd);   /* the pass's span of a row */
    size_t kv1 = ropex__kv_elem_off(c->k_type, (size_t)(kh1 + 1 - P->khb) * (size_t)hd);
    size_t vv0 = ropex__kv_elem_off(c->v_type, (size_t)(kh0 - P->khb) * (size_t)hd);
    size_t vv1 = ropex__kv_elem_off(c->v_type, (size_t)(kh1 + 1 - P->khb) * (size_t)hd);
#if defined(ROPEX__ATT_AVX2)
    /* Full tiles of one kv head with Q8_0 or fp16 rows: the hints are spread through the loops
       instead (each batch's value rows during its scores, the next tile's key rows during the
       values; the lines of each span in address order, ROPEX__SWEEP_*), which keeps them off the
       loops' critical bursts: faster than the bursts at every cache size measured, from tiles
       in L1 to DRAM-streaming steps (4K-token steps: fp16 0.83x the time, Q8_0 0.95x). */
    int spread = P->fast_k && kh0 == kh1 && nk == ROPEX__ATT_TILE && hd % 64 == 0 &&
                 (c->k_type == ROPEX_Q8_0 || c->k_type == ROPEX_F16) && (c->v_type == ROPEX_Q8_0 || c->v_type == ROPEX_F16);
    int next = s0 + nk + ROPEX__ATT_TILE <= c->capacity;   /* a full next tile follows in the ring */
#else
    int spread = 0, next = 0;
#endif
#if defined(ROPEX__ATT_PF)
    if (!spread) ropex__att_prefetch(vbase, P->vrow, vv0, vv1, s0, nk);
#endif
    (void)next; (void)kv0; (void)kv1; (void)vv0; (void)vv1;
    /* scores */
#if defined(ROPEX__ATT_AVX2)
    if (P->fast_k && ropex__att_k8_ok(c->k_type, hd))
        ropex__att_scores8(P, qh, k0, nk, sc, spread ? v0 + vv0 : NULL, P->vrow);
    else
#endif
    if (!P->fast_k && span * ROPEX__ATT_TILE <= ROPEX__ATT_SPAN) {
        /* Small rows (e.g. 4 kv heads x 8 dims): the tile transposed to [element][key] so each
           query element multiplies a vector of keys; no per-key reductions. */
        float row[ROPEX__ATT_SPAN / ROPEX__ATT_TILE];
        int e, i;
#if defined(ROPEX__ATT_AVX2) && ROPEX__ATT_TILE == 16
        if (span % 8 == 0) {
            /* rows converted with the vector paths, then 8x8 transposes (the same values) */
            float rows[ROPEX__ATT_TILE][ROPEX__ATT_SPAN / ROPEX__ATT_TILE];
            for (j = 0; j < ROPEX__ATT_TILE; j++) {
                if (j >= nk) { memset(rows[j], 0, span * sizeof(float)); continue; }
                ropex__kv_fetch(c->k_type, k0 + (size_t)j * P->krow, (size_t)(kh0 - P->khb) * (size_t)hd, span, rows[j]);
                if (kv->keys_raw) ropex_rope_apply_k(P->tab, rows[j], kh1 - kh0 + 1, (size_t)hd, kp0 + j);
            }
            for (e = 0; e < (int)span; e += 8)
                for (j = 0; j < ROPEX__ATT_TILE; j += 8) {
                    __m256 r0 = _mm256_loadu_ps(rows[j] + e), r1 = _mm256_loadu_ps(rows[j + 1] + e);
                    __m256 r2 = _mm256_loadu_ps(rows[j + 2] + e), r3 = _mm256_loadu_ps(rows[j + 3] + e);
                    __m256 r4 = _mm256_loadu_ps(rows[j + 4] + e), r5 = _mm256_loadu_ps(rows[j + 5] + e);
                    __m256 r6 = _mm256_loadu_ps(rows[j + 6] + e), r7 = _mm256_loadu_ps(rows[j + 7] + e);
                    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    float *o = kb + (size_t)e * ROPEX__ATT_TILE + j;
                    _mm256_storeu_ps(o + 0 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u0, u4, 0x20));
                    _mm256_storeu_ps(o + 1 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u1, u5, 0x20));
                    _mm256_storeu_ps(o + 2 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u2, u6, 0x20));
                    _mm256_storeu_ps(o + 3 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u3, u7, 0x20));
                    _mm256_storeu_ps(o + 4 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u0, u4, 0x31));
                    _mm256_storeu_ps(o + 5 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u1, u5, 0x31));
                    _mm256_storeu_ps(o + 6 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u2, u6, 0x31));
                    _mm256_storeu_ps(o + 7 * ROPEX__ATT_TILE, _mm256_permute2f128_ps(u3, u7, 0x31));
                }
        } else
#endif
        for (j = 0; j < ROPEX__ATT_TILE; j++) {
            const unsigned char *kr = k0 + (size_t)(j < nk ? j : 0) * P->krow;
            if (j >= nk) {
                for (e = 0; e < (int)span; e++) kb[e * ROPEX__ATT_TILE + j] = 0.0f;
            } else if (kv->keys_raw || c->k_type != ROPEX_Q8_0) {
                ropex__kv_fetch(c->k_type, kr, (size_t)(kh0 - P->khb) * (size_t)hd, span, row);
                if (kv->keys_raw) ropex_rope_apply_k(P->tab, row, kh1 - kh0 + 1, (size_t)hd, kp0 + j);
                for (e = 0; e < (int)span; e++) kb[e * ROPEX__ATT_TILE + j] = row[e];
            } else {
                /* Q8_0 straight from the block bytes into the transposed tile */
                size_t e0 = (size_t)(kh0 - P->khb) * (size_t)hd;
                for (e = 0; e < (int)span;) {
                    size_t ee = e0 + (size_t)e, r = ee % 32;
                    const unsigned char *b = kr + ee / 32 * 34;
                    float d = ropex__h2f(b);
                    for (; r < 32 && e < (int)span; r++, e++) kb[e * ROPEX__ATT_TILE + j] = d * (float)(signed char)b[2 + r];
                }
            }
        }
        for (kh = kh0; kh <= kh1; kh++) {
            int ha = kh * P->g > P->h0 ? kh * P->g : P->h0;
            int hb = (kh + 1) * P->g < P->h1 ? (kh + 1) * P->g : P->h1;
            for (h = ha; h < hb; h++) {
                const float *qv = qh[h - P->h0];
                const float *kt = kb + (size_t)(kh - kh0) * (size_t)hd * ROPEX__ATT_TILE;
                float *o = sc[h - P->h0];
#if defined(ROPEX__ATT_AVX2) && ROPEX__ATT_TILE == 16
                __m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps();
                for (i = 0; i < hd; i++) {
                    __m256 qi = _mm256_set1_ps(qv[i]);
                    o0 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(kt + i * ROPEX__ATT_TILE), o0);
                    o1 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(kt + i * ROPEX__ATT_TILE + 8), o1);
                }
                _mm256_storeu_ps(o, o0);
                _mm256_storeu_ps(o + 8, o1);
#else
                for (j = 0; j < ROPEX__ATT_TILE; j++) o[j] = 0.0f;
                for (i = 0; i < hd; i++)
                    for (j = 0; j < ROPEX__ATT_TILE; j++) o[j] += qv[i] * kt[i * ROPEX__ATT_TILE + j];
#endif
            }
        }
    } else
    for (j = 0; j < nk; j++) {
        const unsigned char *kr = k0 + (size_t)j * P->krow;
        for (kh = kh0; kh <= kh1; kh++) {
            size_t e0 = (size_t)(kh - P->khb) * (size_t)hd;
            int ha = kh * P->g > P->h0 ? kh * P->g : P->h0;
            int hb = (kh + 1) * P->g < P->h1 ? (kh + 1) * P->g : P->h1;
            if (P->fast_k) {
                const unsigned char *kp = kr + ropex__kv_elem_off(c->k_type, e0);
                h = ha;
#if defined(ROPEX__ATT_AVX2)
                /* grouped-query heads: four queries share each loaded (and converted) key block */
                for (; h + 4 <= hb; h += 4) {
                    float o4[4];
                    int z;
                    if (c->k_type == ROPEX_Q8_0)
                        ropex__dot_q8_x4((const unsigned char *const *)(const void *)(qh + (h - P->h0)), kp, hd / 32, o4);
                    else if (c->k_type == ROPEX_F16 && (hd & 15) == 0 && ROPEX__ATT_HAVE_F16X4)
                        ropex__dot_f16_x4(qh + (h - P->h0), kp, hd, o4);
                    else break;
                    for (z = 0; z < 4; z++) sc[h - P->h0 + z][j] = o4[z];
                }
#endif
                for (; h < hb; h++) {
                    float s;
                    if (c->k_type == ROPEX_Q8_0) s = ropex__dot_q8((const unsigned char *)qh[h - P->h0], kp, hd / 32);
                    else if (c->k_type == ROPEX_F16) s = ropex__dot_f16(qh[h - P->h0], kp, hd);
                    else s = ropex__dot_f32(qh[h - P->h0], (const float *)(const void *)kp, hd);
                    sc[h - P->h0][j] = s;
                }
            } else {
                const float *kf = kb + (size_t)(kh - kh0) * (size_t)hd;
                if (!span_ok) {
                    kf = kb;
                    ropex__kv_fetch(c->k_type, kr, e0, (size_t)hd, kb);
                    if (kv->keys_raw) ropex_rope_apply_k(P->tab, kb, 1, (size_t)hd, kp0 + j);
                } else if (kh == kh0) {
                    /* the pass's whole span once per key; raw keys rotate all heads with one trig set */
                    ropex__kv_fetch(c->k_type, kr, e0, span, kb);
                    if (kv->keys_raw) ropex_rope_apply_k(P->tab, kb, kh1 - kh0 + 1, (size_t)hd, kp0 + j);
                }
                for (h = ha; h < hb; h++) sc[h - P->h0][j] = ropex__dot_f32(qh[h - P->h0], kf, hd);
            }
        }
    }
    /* online softmax: weights replace scores */
    for (h = P->h0; h < P->h1; h++) {
        float *s = sc[h - P->h0], mx = s[0], sum = 0;
        float *m = &P->m[h - P->h0], *l = &P->l[h - P->h0];
#if defined(ROPEX__ATT_AVX2) && ROPEX__ATT_TILE == 16
        if (nk == 16 && mx == mx) {
            /* the same maximum as the loop below (NaN scores take the loop) */
            __m256 x = _mm256_max_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8));
            x = _mm256_max_ps(x, _mm256_permute2f128_ps(x, x, 1));
            x = _mm256_max_ps(x, _mm256_shuffle_ps(x, x, 0x4E));
            x = _mm256_max_ps(x, _mm256_shuffle_ps(x, x, 0xB1));
            mx = _mm256_cvtss_f32(x);
        } else
#endif
        for (j = 1; j < nk; j++) if (s[j] > mx) mx = s[j];
        if (*m == -FLT_MAX) {
            *m = mx;
        } else if (mx > *m) {
            float corr = expf(*m - mx), *a = P->acc + (size_t)h * (size_t)hd;
            int i;
            for (i = 0; i < hd; i++) a[i] *= corr;
            *l *= corr;
            *m = mx;
        }
        sum = ropex__exp_tile(s, nk, *m);
        *l += sum;
    }
    /* values */
#if defined(ROPEX__ATT_PF)
    if (!spread && s0 + nk + ROPEX__ATT_TILE <= c->capacity)
        ropex__att_prefetch(kbase, P->krow, kv0, kv1, s0 + nk, ROPEX__ATT_TILE);
#endif
    if (v_fast) {
        for (kh = kh0; kh <= kh1; kh++) {
            const unsigned char *vp = v0 + ropex__kv_elem_off(c->v_type, (size_t)(kh - P->khb) * (size_t)hd);
            int ha = kh * P->g > P->h0 ? kh * P->g : P->h0;
            int hb = (kh + 1) * P->g < P->h1 ? (kh + 1) * P->g : P->h1;
            for (h = ha; h < hb; h++) {
                float *a = P->acc + (size_t)h * (size_t)hd;
                const unsigned char *pk = spread && next && h == ha ? k0 + (size_t)nk * P->krow + kv0 : NULL;
                if (h + 1 < hb && c->v_type != ROPEX_F32) {   /* grouped-query heads in pairs */
                    if (c->v_type == ROPEX_Q8_0)
                        ropex__vacc_q8_2(a, a + hd, sc[h - P->h0], sc[h + 1 - P->h0], vp, P->vrow, nk, hd / 32, pk, P->krow);
                    else
                        ropex__vacc_f16_2(a, a + hd, sc[h - P->h0], sc[h + 1 - P->h0], vp, P->vrow, nk, hd, pk, P->krow);
                    h++;
                } else
                if (c->v_type == ROPEX_Q8_0) ropex__vacc_q8(a, sc[h - P->h0], vp, P->vrow, nk, hd / 32, pk, P->krow);
                else if (c->v_type == ROPEX_F16) ropex__vacc_f16(a, sc[h - P->h0], vp, P->vrow, nk, hd, pk, P->krow);
                else ropex__vacc_f32(a, sc[h - P->h0], vp, P->vrow, nk, hd);
            }
        }
    } else if (span * (size_t)nk <= ROPEX__ATT_SPAN) {
        /* small rows (blocks spanning heads, Q4_0): the tile's span converted once, row j at
           kb + j * span, then the float kernel per head */
        for (j = 0; j < nk; j++) ropex__kv_fetch(c->v_type, v0 + (size_t)j * P->vrow, (size_t)(kh0 - P->khb) * (size_t)hd, span, kb + (size_t)j * span);
        for (kh = kh0; kh <= kh1; kh++) {
            int ha = kh * P->g > P->h0 ? kh * P->g : P->h0;
            int hb = (kh + 1) * P->g < P->h1 ? (kh + 1) * P->g : P->h1;
            for (h = ha; h < hb; h++)
                ropex__vacc_f32(P->acc + (size_t)h * (size_t)hd, sc[h - P->h0], (const unsigned char *)(kb + (size_t)(kh - kh0) * (size_t)hd),
                                span * sizeof(float), nk, hd);
        }
    } else {
        for (j = 0; j < nk; j++) {
            const unsigned char *vr = v0 + (size_t)j * P->vrow;
            for (kh = kh0; kh <= kh1; kh++) {
                size_t e0 = (size_t)(kh - P->khb) * (size_t)hd;
                int ha = kh * P->g > P->h0 ? kh * P->g : P->h0;
                int hb = (kh + 1) * P->g < P->h1 ? (kh + 1) * P->g : P->h1;
                const float *vf;
                if (c->v_type == ROPEX_F32) vf = (const float *)(const void *)(vr + e0 * 4);
                else if (!span_ok) { ropex__kv_fetch(c->v_type, vr, e0, (size_t)hd, kb); vf = kb; }
                else {
                    if (kh == kh0) ropex__kv_fetch(c->v_type, vr, e0, span, kb);
                    vf = kb + (size_t)(kh - kh0) * (size_t)hd;
                }
                for (h = ha; h < hb; h++) ropex__axpy_f32(P->acc + (size_t)h * (size_t)hd, sc[h - P->h0][j], vf, hd);
            }
        }
    }
}

/* Attends keys t = t0..t1 (consecutive positions; sinks or ring) for every head of the pass. */
static void ropex__att_run(ropex__att_pass *P, const float *const *qh, int64_t t0, int64_t t1, int is_sink) {
    const ropex_kv_config *c = &P->kv->cfg;
    int64_t t, slot;
    int nk;
    /* A pass reads its unit's keys and values as two sequential streams (the unit-major layout);
       ropex__att_tile prefetches within and one tile ahead (prefetching further ahead measured
       slower: lines fetched too early leave L1 before use). */
    if (t1 < t0) return;
    /* slots of consecutive positions advance by one and wrap inside the ring; a tile ends at the
       wrap, so its keys sit in consecutive slots */
    slot = ropex__kv_slot(c, t0);
    for (t = t0; t <= t1; t += nk) {
        nk = (int)(t1 - t + 1 < ROPEX__ATT_TILE ? t1 - t + 1 : ROPEX__ATT_TILE);
        if (c->capacity - slot < nk) nk = (int)(c->capacity - slot);
        /* RoPE position of key 0 when keys rotate at use: its text position (TEXT) or cache slot
           (CACHE: sinks keep theirs, ring keys sit at query slot minus the text distance) */
        ropex__att_tile(P, qh, slot, is_sink ? t : P->qpos - (P->p - t), nk);
        slot += nk;
        if (slot == c->capacity) slot = c->n_sink;
    }
}

/* Rotated, scaled query of head h at position pos into dst (floats). */
static void ropex__att_q(const ropex__att_pass *P, const float *raw, int64_t pos, float gain, float *dst) {
    memcpy(dst, raw, (size_t)P->hd * sizeof(float));
    ropex_rope_apply_k(P->tab, dst, 1, (size_t)P->hd, pos);
    {
        int i;
        for (i = 0; i < P->hd; i++) dst[i] *= gain;
    }
}

static void ropex__att_token(const ropex__att_job *J, int i, int ua, int ub) {
    ropex_kv *kv = J->kv;
    const ropex_kv_config *c = &kv->cfg;
    int hd = c->head_dim, uh = kv->unit_heads, g = J->n_heads / c->n_kv_heads;
    size_t row = (size_t)c->n_kv_heads * (size_t)hd, qrow = (size_t)J->n_heads * (size_t)hd;
    int64_t p = kv->n_past + i, R = c->capacity - c->n_sink, ns, lo;
    int64_t qpos = c->positions == ROPEX_POS_CACHE && p > c->capacity - 1 ? c->capacity - 1 : p;
    int h0, h, u;
    float *q = J->q + (size_t)i * qrow, *out = J->out + (size_t)i * qrow;
    ropex_rope_table ltab;
    const ropex_rope_table *tab = &kv->table;
    float gain;
    int fast_k = !kv->keys_raw && (c->k_type != ROPEX_Q8_0 || hd % ROPEX_QK == 0);

    ropex__kv_store_row(kv, J->layer, J->k + (size_t)i * row, J->v + (size_t)i * row, p, ua, ub);
    if (kv->table.length_dependent) {
        /* DESIGN: the query's position rules; the table for L = qpos + 1 serves the query and every key. */
        if (ropex_rope_table_init(&ltab, &kv->rope, qpos + 1) == ROPEX_OK) tab = &ltab;
    }
    gain = ropex_rope_logn(tab, qpos) / sqrtf((float)hd);
    ns = c->n_sink < p + 1 ? c->n_sink : p + 1;
    lo = p - R + 1 > c->n_sink ? p - R + 1 : c->n_sink;
    /* Passes: one unit per pass (its keys and values are two sequential streams). */
    for (u = ua; u < ub; u++) {
        int hend = (u + 1) * uh * g;
    for (h0 = u * uh * g; h0 < hend; h0 += ROPEX__ATT_MAXQ) {
        ropex__att_pass P;
        const float *qh[ROPEX__ATT_MAXQ];
        float qt[ROPEX__ATT_MAXD];
        int h1 = h0 + ROPEX__ATT_MAXQ < hend ? h0 + ROPEX__ATT_MAXQ : hend;
        P.kv = kv; P.tab = tab; P.layer = J->layer; P.hd = hd; P.g = g; P.h0 = h0; P.h1 = h1;
        P.kb = ropex__kv_urow(kv, 0, J->layer, u, 0); P.vb = ropex__kv_urow(kv, 1, J->layer, u, 0);
        P.krow = kv->k_unit_bytes;
        P.vrow = kv->v_unit_bytes;
        P.khb = u * uh;
        P.fast_k = 0; P.p = p; P.qpos = qpos; P.acc = out;
        for (h = h0; h < h1; h++) {
            P.m[h - h0] = -FLT_MAX; P.l[h - h0] = 0.0f;
            memset(out + (size_t)h * (size_t)hd, 0, (size_t)hd * sizeof(float));
        }
        /* Sinks, one head at a time (few keys): query at qpos, keys at their own positions. */
        if (ns > 0) {
            for (h = h0; h < h1; h++) {
                ropex__att_pass S = P;
                const float *one[1];
                ropex__att_q(&P, q + (size_t)h * (size_t)hd, qpos, gain, qt);
                one[0] = qt;
                S.h0 = h; S.h1 = h + 1; S.acc = out;
                S.m[0] = P.m[h - h0]; S.l[0] = P.l[h - h0];
                ropex__att_run(&S, one, 0, ns - 1, 1);
                P.m[h - h0] = S.m[0]; P.l[h - h0] = S.l[0];
            }
        }
        if (lo <= p) {
            /* Ring: stored-rotated keys meet the query rotated at its text position (same relative
               distance as in cache slots); raw keys meet it at qpos and are rotated at use. */
            P.fast_k = fast_k;
            /* the pass's query heads rotate in place with one trig set (as ropex__att_q per head) */
            ropex_rope_apply_k(tab, q + (size_t)h0 * (size_t)hd, h1 - h0, (size_t)hd, kv->keys_raw ? qpos : p);
            for (h = h0; h < h1; h++) {
                float *qd = q + (size_t)h * (size_t)hd;
                int d;
                for (d = 0; d < hd; d++) qt[d] = qd[d] * gain;
                if (fast_k && c->k_type == ROPEX_Q8_0) (void)ropex_quantize(ROPEX_Q8_0, qt, qd, (size_t)hd);
                else memcpy(qd, qt, (size_t)hd * sizeof(float));
                qh[h - h0] = qd;
            }
            ropex__att_run(&P, qh, lo, p, 0);
        }
        for (h = h0; h < h1; h++) {
            float inv = P.l[h - h0] > 0.0f ? 1.0f / P.l[h - h0] : 0.0f, *a = out + (size_t)h * (size_t)hd;
            int d;
            for (d = 0; d < hd; d++) a[d] *= inv;
        }
    }
    }
}

static void ropex__att_task(void *arg, int index, int count) {
    const ropex__att_job *J = (const ropex__att_job *)arg;
    int ua = (int)((int64_t)J->units * index / count), ub = (int)((int64_t)J->units * (index + 1) / count), i;
    if (ua >= ub) return;
    for (i = 0; i < J->n_tokens; i++) ropex__att_token(J, i, ua, ub);
}

ROPEX_API ropex_status ropex_attention(ropex_kv *kv, int layer, int n_heads, float *q, const float *k,
                                       const float *v, int n_tokens, float *out, ropex_threads *th) {
    ropex__att_job J;
    if (!kv || !kv->k || !q || !k || !v || !out || n_tokens < 0) return ROPEX_ERR_ARG;
    if (layer < 0 || layer >= kv->cfg.n_layers || n_heads < kv->cfg.n_kv_heads || n_heads % kv->cfg.n_kv_heads)
        return ROPEX_ERR_ARG;
    if (kv->n_past > INT64_MAX - n_tokens - 1) return ROPEX_ERR_ARG;
    if (n_tokens == 0) return ROPEX_OK;
    J.kv = kv; J.layer = layer; J.n_heads = n_heads; J.n_tokens = n_tokens;
    J.units = kv->n_units;
    J.q = q; J.out = out; J.k = k; J.v = v;
    if (!th || ropex_threads_count(th) <= 1) ropex__att_task(&J, 0, 1);
    else ropex_threads_run(th, ropex__att_task, &J);
    return ROPEX_OK;
}

/* ===================================================================== */
/* >> implementation: model loaders (llama2.c, GGUF)                     */
/* ===================================================================== */
/* Model files are untrusted: every field is read byte by byte as little-endian, every size is
   computed with overflow checks in 64-bit and compared with the bytes actually present. */

static uint32_t ropex__ld32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t ropex__ld64(const uint8_t *p) { return ropex__ld32(p) | ((uint64_t)ropex__ld32(p + 4) << 32); }
static void ropex__st32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static float ropex__ldf32(const uint8_t *p) { uint32_t u = ropex__ld32(p); float f; memcpy(&f, &u, 4); return f; }
static int ropex__mul64(uint64_t a, uint64_t b, uint64_t *r) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *r = a * b; return 1;
}
static int ropex__add64(uint64_t a, uint64_t b, uint64_t *r) {
    if (b > UINT64_MAX - a) return 0;
    *r = a + b; return 1;
}

/* Bytes of a row of n elements for the four supported types; 0 when unknown or not whole blocks. */
static uint64_t ropex__row_size(uint32_t type, uint64_t n) {
    switch (type) {
    case ROPEX_F32: return n <= (UINT64_MAX >> 3) ? n * 4 : 0;
    case ROPEX_F16: return n <= (UINT64_MAX >> 3) ? n * 2 : 0;
    case ROPEX_Q8_0: return (n % ROPEX_QK || n > (UINT64_MAX >> 8)) ? 0 : (n / ROPEX_QK) * 34;
    case ROPEX_Q4_0: return (n % ROPEX_QK || n > (UINT64_MAX >> 8)) ? 0 : (n / ROPEX_QK) * 18;
    default: return 0;
    }
}

/* A bump allocator over caller memory. With base == NULL it only measures, so one code path
   computes the size query and fills the buffer. Offsets are relative to a 32-byte aligned base. */
typedef struct ropex__arena { uint8_t *base; size_t cap, used; int overflow; } ropex__arena;
static void *ropex__arena_alloc(ropex__arena *a, uint64_t n, size_t align) {
    size_t off = (a->used + (align - 1)) & ~(align - 1);
    if (off < a->used || n > (uint64_t)(SIZE_MAX - off)) { a->overflow = 1; return NULL; }
    a->used = off + (size_t)n;
    if (!a->base || a->used > a->cap) return NULL;
    return a->base + off;
}
/* Aux buffers are aligned up to 32 bytes first: a size query includes that slack. */
#define ROPEX__AUX_SLACK 32
static void ropex__arena_init(ropex__arena *a, void *mem, size_t bytes) {
    memset(a, 0, sizeof(*a));
    if (mem) {
        size_t skip = (size_t)((32 - ((uintptr_t)mem & 31)) & 31);
        if (bytes >= skip) { a->base = (uint8_t *)mem + skip; a->cap = bytes - skip; }
    }
}

/* ---- vocabulary tables (shared by both formats) ---- */
#define ROPEX__MAX_PIECE 1024
#define ROPEX__MAX_VOCAB (1 << 24)
#define ROPEX__MAX_DIM (1 << 20)      /* embedding / hidden widths beyond this are hostile */

static int ropex__piece_cmp(const ropex_token *a, const ropex_token *b) {
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->text, b->text, n) : 0;
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}
/* Total order for the sorted table: by bytes, then by id (lowest id wins a lookup). */
static int ropex__sorted_less(const ropex_token *t, int32_t a, int32_t b) {
    int c = ropex__piece_cmp(&t[a], &t[b]);
    return c < 0 || (c == 0 && a < b);
}
static void ropex__sift(const ropex_token *t, int32_t *s, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        int32_t tmp;
        if (c >= n) return;
        if (c + 1 < n && ropex__sorted_less(t, s[c], s[c + 1])) c++;
        if (!ropex__sorted_less(t, s[i], s[c])) return;
        tmp = s[i]; s[i] = s[c]; s[c] = tmp; i = c;
    }
}
/* Heap sort: O(n log n), no allocation, deterministic. */
static void ropex__sort_ids(const ropex_token *t, int32_t *s, int n) {
    int i;
    for (i = n / 2 - 1; i >= 0; i--) ropex__sift(t, s, n, i);
    for (i = n - 1; i > 0; i--) {
        int32_t tmp = s[0]; s[0] = s[i]; s[i] = tmp;
        ropex__sift(t, s, i, 0);
    }
}

static int ropex__hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}
/* "<0xXX>" -> XX, else -1 (llama2.c and sentencepiece byte pieces). */
static int ropex__byte_piece(const char *s, uint32_t len) {
    int hi, lo;
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    hi = ropex__hexval((uint8_t)s[3]); lo = ropex__hexval((uint8_t)s[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

/* Pieces the encoder may produce from text: not control, unknown or byte tokens (sentencepiece
   never produces those from text; llama2.c would, e.g. "\n<s>\n" -> BOS). */
static int ropex__encodable(const ropex_token *t) { return t->type == 1 || t->type == 4 || t->type == 5; }

/* Byte-token table, flags and the sorted lookup table; tokens[] must be filled. */
static void ropex__vocab_finish(ropex_vocab *v, int32_t *sorted) {
    int i, n = 0, nb = 0;
    for (i = 0; i < 256; i++) v->byte_token[i] = -1;
    v->max_token_len = 0;
    for (i = 0; i < v->n_tokens; i++) {
        ropex_token *t = &v->tokens[i];
        int b = ropex__byte_piece(t->text, t->len);
        if ((int)t->len > v->max_token_len) v->max_token_len = (int)t->len;
        if (b >= 0 && (t->type == 6 || t->type == 1) && v->byte_token[b] < 0) {
            t->type = 6; v->byte_token[b] = i; nb++;
        }
        if (ropex__encodable(t)) sorted[n++] = i;
    }
    v->byte_fallback = nb == 256;
    ropex__sort_ids(v->tokens, sorted, n);
    v->sorted = sorted;
    v->n_sorted = n;
}

static void ropex__model_reset(ropex_model *m) { memset(m, 0, sizeof(*m)); }

static ropex_status ropex__fail(ropex_model *m, ropex_status st, const char *msg) {
    if (m) { ropex__model_reset(m); m->error = msg; }
    return st;
}

/* ---- llama2.c checkpoint + tokenizer.bin ---- */
typedef struct ropex__l2c {
    int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int shared;
    uint64_t text_bytes;      /* sum of token lengths */
    const char *err;
} ropex__l2c;

static ropex_status ropex__l2c_check(ropex__l2c *h, const uint8_t *ck, size_t ck_size, const uint8_t *tok,
                                     size_t tok_size) {
    uint64_t hd, kvd, per_layer, t, total, floats, freq, V;
    uint64_t off;
    uint32_t max_len;
    int32_t i;
    memset(h, 0, sizeof(*h));
    if (ck_size < 28) { h->err = "llama2.c: file shorter than its header"; return ROPEX_ERR_FORMAT; }
    h->dim = (int32_t)ropex__ld32(ck); h->hidden = (int32_t)ropex__ld32(ck + 4);
    h->n_layers = (int32_t)ropex__ld32(ck + 8); h->n_heads = (int32_t)ropex__ld32(ck + 12);
    h->n_kv_heads = (int32_t)ropex__ld32(ck + 16); h->vocab = (int32_t)ropex__ld32(ck + 20);
    h->seq_len = (int32_t)ropex__ld32(ck + 24);
    h->shared = h->vocab > 0;
    if (h->vocab == INT32_MIN || h->vocab == 0) { h->err = "llama2.c: bad vocab size"; return ROPEX_ERR_FORMAT; }
    if (h->vocab < 0) h->vocab = -h->vocab;
    if (h->dim <= 0 || h->hidden <= 0 || h->n_layers <= 0 || h->n_heads <= 0 || h->n_kv_heads <= 0 ||
        h->seq_len <= 0) { h->err = "llama2.c: zero or negative dimension"; return ROPEX_ERR_FORMAT; }
    if (h->n_layers > ROPEX_MAX_LAYERS) { h->err = "llama2.c: too many layers"; return ROPEX_ERR_FORMAT; }
    if (h->dim > ROPEX__MAX_DIM || h->hidden > ROPEX__MAX_DIM) { h->err = "llama2.c: absurd dimension"; return ROPEX_ERR_FORMAT; }
    if (h->dim % h->n_heads || h->n_heads % h->n_kv_heads || h->n_kv_heads > h->n_heads) {
        h->err = "llama2.c: dim/heads/kv_heads inconsistent"; return ROPEX_ERR_FORMAT;
    }
    hd = (uint64_t)(h->dim / h->n_heads);
    if (hd % 2 || hd > 2 * ROPEX_ROPE_MAX_PAIRS) { h->err = "llama2.c: head size odd or too large"; return ROPEX_ERR_FORMAT; }
    if (h->vocab > ROPEX__MAX_VOCAB) { h->err = "llama2.c: vocabulary too large"; return ROPEX_ERR_FORMAT; }
    kvd = hd * (uint64_t)h->n_kv_heads;
    V = (uint64_t)h->vocab;
    /* dims <= 2^20, vocab <= 2^24, so each product below fits in 64 bits; sums are checked */
    per_layer = 2 * (uint64_t)h->dim + 2 * (uint64_t)h->dim * (uint64_t)h->dim + 2 * kvd * (uint64_t)h->dim;
    t = 3 * (uint64_t)h->hidden * (uint64_t)h->dim;
    if (!ropex__add64(per_layer, t, &per_layer) || !ropex__mul64(per_layer, (uint64_t)h->n_layers, &floats) ||
        !ropex__add64(floats, V * (uint64_t)h->dim, &floats) || !ropex__add64(floats, (uint64_t)h->dim, &floats) ||
        (!h->shared && !ropex__add64(floats, V * (uint64_t)h->dim, &floats))) {
        h->err = "llama2.c: sizes overflow"; return ROPEX_ERR_FORMAT;
    }
    freq = (uint64_t)h->seq_len * hd;   /* real + imag, seq_len * head_size / 2 each */
    if (!ropex__add64(floats, freq, &total) || !ropex__mul64(total, 4, &total) || !ropex__add64(total, 28, &total) ||
        floats > UINT64_MAX / 4) { h->err = "llama2.c: sizes overflow"; return ROPEX_ERR_FORMAT; }
    if (total != (uint64_t)ck_size) { h->err = "llama2.c: file size does not match its header"; return ROPEX_ERR_FORMAT; }
    /* tokenizer.bin: uint32 max_token_length, then per token float score, int32 len, bytes */
    if (!tok || tok_size < 4) { h->err = "tokenizer.bin: truncated"; return ROPEX_ERR_FORMAT; }
    max_len = ropex__ld32(tok);
    if (max_len == 0 || max_len > ROPEX__MAX_PIECE) { h->err = "tokenizer.bin: bad max token length"; return ROPEX_ERR_FORMAT; }
    off = 4;
    for (i = 0; i < h->vocab; i++) {
        uint32_t len;
        if (tok_size - off < 8) { h->err = "tokenizer.bin: truncated"; return ROPEX_ERR_FORMAT; }
        len = ropex__ld32(tok + off + 4);
        off += 8;
        if (len == 0 || len > max_len) { h->err = "tokenizer.bin: empty or oversized token"; return ROPEX_ERR_FORMAT; }
        if (tok_size - off < len) { h->err = "tokenizer.bin: truncated"; return ROPEX_ERR_FORMAT; }
        off += len;
        h->text_bytes += len;
    }
    if (off != tok_size) { h->err = "tokenizer.bin: size does not match the vocabulary"; return ROPEX_ERR_FORMAT; }
    return ROPEX_OK;
}

/* Lays out (measure) or fills the aux memory of a llama2.c model. */
static ropex_status ropex__l2c_build(ropex_model *m, const ropex__l2c *h, const uint8_t *ck, const uint8_t *tok,
                                     ropex__arena *ar) {
    ropex_token *toks = (ropex_token *)ropex__arena_alloc(ar, (uint64_t)h->vocab * sizeof(ropex_token), 8);
    int32_t *sorted = (int32_t *)ropex__arena_alloc(ar, (uint64_t)h->vocab * 4, 4);
    char *text = (char *)ropex__arena_alloc(ar, h->text_bytes, 1);
    const uint8_t *src;
    uint64_t D = (uint64_t)h->dim, H = (uint64_t)h->hidden, hd = D / (uint64_t)h->n_heads;
    uint64_t kvd = hd * (uint64_t)h->n_kv_heads, V = (uint64_t)h->vocab;
    uint64_t off, toff;
    int32_t i, l;
    ropex_hparams *hp;
    if (ar->overflow) return ROPEX_ERR_FORMAT;
    if (!m) return ROPEX_OK;
    if (!toks || !sorted || !text) return ROPEX_ERR_BUFFER;
    /* vocabulary: text copied so the tokenizer buffer may be freed */
    off = 4; toff = 0;
    m->vocab.n_tokens = h->vocab;
    m->vocab.tokens = toks;
    for (i = 0; i < h->vocab; i++) {
        uint32_t len = ropex__ld32(tok + off + 4);
        toks[i].score = ropex__ldf32(tok + off);
        memcpy(text + toff, tok + off + 8, len);
        toks[i].text = text + toff;
        toks[i].len = len;
        toks[i].type = 1;
        off += 8 + len; toff += len;
    }
    /* llama2.c vocabularies: 0 <unk>, 1 BOS, 2 EOS (sentencepiece's defaults) */
    toks[0].type = 2;
    if (h->vocab > 1) toks[1].type = 3;
    if (h->vocab > 2) toks[2].type = 3;
    m->vocab.unk_id = 0;
    m->vocab.bos_id = h->vocab > 1 ? 1 : -1;
    m->vocab.eos_id = h->vocab > 2 ? 2 : -1;
    m->vocab.space_is_u2581 = 0;
    ropex__vocab_finish(&m->vocab, sorted);
    /* tensors: zero-copy, in the checkpoint's order */
    src = ck + 28;
#define ROPEX__L2C_T(t, c, r) do { (t).type = ROPEX_F32; (t).cols = (int64_t)(c); (t).rows = (int64_t)(r); \
        (t).data = src; src += (c) * (r) * 4; } while (0)
    ROPEX__L2C_T(m->tok_embd, D, V);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].attn_norm, D, 1);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].wq, D, D);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].wk, D, kvd);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].wv, D, kvd);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].wo, D, D);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].ffn_norm, D, 1);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].w_gate, D, H);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].w_down, H, D);
    for (l = 0; l < h->n_layers; l++) ROPEX__L2C_T(m->layers[l].w_up, D, H);
    ROPEX__L2C_T(m->output_norm, D, 1);
    if (h->shared) {
        m->output = m->tok_embd;
    } else {
        src += (uint64_t)h->seq_len * hd * 4;   /* the legacy freq_cis blocks */
        ROPEX__L2C_T(m->output, D, V);
    }
#undef ROPEX__L2C_T
    hp = &m->hp;
    hp->dim = h->dim; hp->hidden_dim = h->hidden; hp->n_layers = h->n_layers;
    hp->n_heads = h->n_heads; hp->n_kv_heads = h->n_kv_heads; hp->head_dim = (int)hd;
    hp->vocab_size = h->vocab; hp->file_ctx = h->seq_len; hp->rms_eps = 1e-5f;
    memset(&hp->rope, 0, sizeof(hp->rope));
    hp->rope.head_dim = (int)hd;
    hp->rope.base = 10000.0;
    hp->rope.train_base = 10000.0;
    hp->rope.layout = ROPEX_LAYOUT_ADJACENT;
    hp->rope.train_ctx = h->seq_len;
    m->format = ROPEX_FORMAT_LLAMA2C;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_model_llama2c_aux_bytes(const void *ckpt, size_t ckpt_size, const void *tok,
                                                     size_t tok_size, size_t *aux_bytes) {
    ropex__l2c h;
    ropex__arena ar;
    ropex_status st;
    if (!ckpt || !tok || !aux_bytes) return ROPEX_ERR_ARG;
    *aux_bytes = 0;
    st = ropex__l2c_check(&h, (const uint8_t *)ckpt, ckpt_size, (const uint8_t *)tok, tok_size);
    if (st) return st;
    ropex__arena_init(&ar, NULL, 0);
    st = ropex__l2c_build(NULL, &h, (const uint8_t *)ckpt, (const uint8_t *)tok, &ar);
    if (st) return st;
    if (ar.used > SIZE_MAX - ROPEX__AUX_SLACK) return ROPEX_ERR_FORMAT;
    *aux_bytes = ar.used + ROPEX__AUX_SLACK;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_model_load_llama2c_memory_ex(ropex_model *m, const void *ckpt, size_t ckpt_size,
                                                          const void *tok, size_t tok_size,
                                                          void *aux, size_t aux_bytes) {
    ropex__l2c h;
    ropex__arena ar;
    ropex_status st;
    if (!m) return ROPEX_ERR_ARG;
    if (!ckpt || !tok) return ropex__fail(m, ROPEX_ERR_ARG, "NULL checkpoint or tokenizer");
    st = ropex__l2c_check(&h, (const uint8_t *)ckpt, ckpt_size, (const uint8_t *)tok, tok_size);
    if (st) return ropex__fail(m, st, h.err);
    ropex__model_reset(m);
    ropex__arena_init(&ar, aux, aux_bytes);
    st = ropex__l2c_build(m, &h, (const uint8_t *)ckpt, (const uint8_t *)tok, &ar);
    if (st) return ropex__fail(m, st, st == ROPEX_ERR_BUFFER ? "aux buffer too small" : "llama2.c: bad sizes");
    m->file_data = (void *)(uintptr_t)ckpt; m->file_size = ckpt_size; m->file_owned = 0;
    m->aux = aux; m->aux_bytes = aux_bytes; m->aux_owned = 0;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_model_load_llama2c_memory(ropex_model *m, const void *ckpt, size_t ckpt_size,
                                                       const void *tok, size_t tok_size) {
    size_t need = 0;
    void *aux;
    ropex_status st;
    if (!m) return ROPEX_ERR_ARG;
    st = ropex_model_llama2c_aux_bytes(ckpt, ckpt_size, tok, tok_size, &need);
    if (st) {
        ropex__l2c h;
        if (ckpt && tok) { ropex__l2c_check(&h, (const uint8_t *)ckpt, ckpt_size, (const uint8_t *)tok, tok_size); }
        else h.err = "NULL checkpoint or tokenizer";
        return ropex__fail(m, st, h.err);
    }
    aux = ropex__malloc(need);
    if (!aux) return ropex__fail(m, ROPEX_ERR_NOMEM, "out of memory for the model tables");
    st = ropex_model_load_llama2c_memory_ex(m, ckpt, ckpt_size, tok, tok_size, aux, need);
    if (st) { ropex__free(aux); return st; }
    m->aux_owned = 1;
    return ROPEX_OK;
}

/* ---- GGUF (GGML's docs/gguf.md; versions 2 and 3 share the layout) ---- */
enum {
    ROPEX__GT_U8 = 0, ROPEX__GT_I8, ROPEX__GT_U16, ROPEX__GT_I16, ROPEX__GT_U32, ROPEX__GT_I32, ROPEX__GT_F32,
    ROPEX__GT_BOOL, ROPEX__GT_STR, ROPEX__GT_ARR, ROPEX__GT_U64, ROPEX__GT_I64, ROPEX__GT_F64
};
#define ROPEX__GGUF_MAX_DEPTH 3       /* arrays of arrays of arrays */
#define ROPEX__GGUF_MAX_NAME 256      /* the spec's limit is 64; be lenient when reading */
#define ROPEX__GGUF_SLOTS (3 + 9 * ROPEX_MAX_LAYERS)

typedef struct ropex__gguf {
    const uint8_t *d; size_t n, off;
    uint32_t version, alignment;
    uint64_t n_tensors, n_kv;
    int arch_seen, tok_model_seen, no_space_prefix;
    int64_t ctx_len, n_embd, n_layer, n_ff, n_head, n_head_kv, rope_dims, key_len, val_len, orig_ctx;
    double eps, freq_base, scale_factor, attn_factor;
    int scaling;                          /* -1 absent, else ropex_rope_scaling */
    size_t tokens_off, scores_off, types_off;
    uint64_t n_tokens, n_scores, n_types;
    uint32_t types_type;
    int64_t bos, eos, unk;                /* -2 absent, -1 none */
    size_t ti_off, data_start;
    const char *err;
} ropex__gguf;

static ropex_status ropex__gerr(ropex__gguf *g, ropex_status st, const char *msg) { g->err = msg; return st; }
static int ropex__g_has(const ropex__gguf *g, uint64_t k) { return k <= (uint64_t)(g->n - g->off); }
static int ropex__g_u32(ropex__gguf *g, uint32_t *v) {
    if (!ropex__g_has(g, 4)) return 0;
    *v = ropex__ld32(g->d + g->off); g->off += 4; return 1;
}
static int ropex__g_u64(ropex__gguf *g, uint64_t *v) {
    if (!ropex__g_has(g, 8)) return 0;
    *v = ropex__ld64(g->d + g->off); g->off += 8; return 1;
}
static int ropex__g_str(ropex__gguf *g, const char **s, uint64_t *len) {
    uint64_t l;
    if (!ropex__g_u64(g, &l) || !ropex__g_has(g, l)) return 0;
    *s = (const char *)(g->d + g->off); *len = l; g->off += (size_t)l; return 1;
}
static int ropex__g_key_is(const char *s, uint64_t len, const char *lit) {
    size_t n = strlen(lit);
    return len == n && memcmp(s, lit, n) == 0;
}
static uint64_t ropex__g_scalar_size(uint32_t t) {
    switch (t) {
    case ROPEX__GT_U8: case ROPEX__GT_I8: case ROPEX__GT_BOOL: return 1;
    case ROPEX__GT_U16: case ROPEX__GT_I16: return 2;
    case ROPEX__GT_U32: case ROPEX__GT_I32: case ROPEX__GT_F32: return 4;
    case ROPEX__GT_U64: case ROPEX__GT_I64: case ROPEX__GT_F64: return 8;
    default: return 0;
    }
}
/* Skips one value of type t; every count is checked against the bytes left before any loop. */
static int ropex__g_skip(ropex__gguf *g, uint32_t t, int depth) {
    uint64_t sz = ropex__g_scalar_size(t), cnt, i;
    uint32_t at;
    const char *s;
    if (sz) { if (!ropex__g_has(g, sz)) return 0; g->off += (size_t)sz; return 1; }
    if (t == ROPEX__GT_STR) return ropex__g_str(g, &s, &cnt);
    if (t != ROPEX__GT_ARR || depth >= ROPEX__GGUF_MAX_DEPTH) return 0;
    if (!ropex__g_u32(g, &at) || !ropex__g_u64(g, &cnt)) return 0;
    sz = ropex__g_scalar_size(at);
    if (sz) {
        if (cnt > (uint64_t)(g->n - g->off) / sz) return 0;
        g->off += (size_t)(cnt * sz);
        return 1;
    }
    if (at == ROPEX__GT_STR) { if (cnt > (uint64_t)(g->n - g->off) / 8) return 0; }
    else if (at == ROPEX__GT_ARR) { if (cnt > (uint64_t)(g->n - g->off) / 12) return 0; }
    else return 0;
    for (i = 0; i < cnt; i++) if (!ropex__g_skip(g, at, depth + 1)) return 0;
    return 1;
}
/* A scalar as int64 and as double; 0 for non-numeric types or uint64 beyond int64. */
static int ropex__g_number(ropex__gguf *g, uint32_t t, int64_t *iv, double *fv) {
    const uint8_t *p;
    uint64_t sz = ropex__g_scalar_size(t);
    int64_t i = 0;
    double f;
    if (!sz || !ropex__g_has(g, sz)) return 0;
    p = g->d + g->off;
    switch (t) {
    case ROPEX__GT_U8: case ROPEX__GT_BOOL: i = p[0]; break;
    case ROPEX__GT_I8: i = (int8_t)p[0]; break;
    case ROPEX__GT_U16: i = (int64_t)(p[0] | (p[1] << 8)); break;
    case ROPEX__GT_I16: i = (int16_t)(uint16_t)(p[0] | (p[1] << 8)); break;
    case ROPEX__GT_U32: i = (int64_t)ropex__ld32(p); break;
    case ROPEX__GT_I32: i = (int32_t)ropex__ld32(p); break;
    case ROPEX__GT_U64: if (ropex__ld64(p) > (uint64_t)INT64_MAX) return 0; i = (int64_t)ropex__ld64(p); break;
    case ROPEX__GT_I64: i = (int64_t)ropex__ld64(p); break;
    default: break;
    }
    if (t == ROPEX__GT_F32) { f = ropex__ldf32(p); i = 0; }
    else if (t == ROPEX__GT_F64) { uint64_t u = ropex__ld64(p); memcpy(&f, &u, 8); i = 0; }
    else f = (double)i;
    if (t == ROPEX__GT_F32 || t == ROPEX__GT_F64) {
        if (!(f == f)) return 0;
        i = (f >= -9.0e18 && f <= 9.0e18) ? (int64_t)f : 0;
    }
    *iv = i; *fv = f;
    g->off += (size_t)sz;
    return 1;
}

/* Header and key-value pairs. */
static ropex_status ropex__gguf_kv(ropex__gguf *g) {
    uint64_t k, len;
    uint32_t magic_ok;
    g->ctx_len = g->n_embd = g->n_layer = g->n_ff = g->n_head = g->n_head_kv = -1;
    g->rope_dims = g->key_len = g->val_len = g->orig_ctx = -1;
    g->eps = -1.0; g->freq_base = -1.0; g->scale_factor = -1.0; g->attn_factor = -1.0;
    g->scaling = -1; g->bos = g->eos = g->unk = -2; g->alignment = 32;
    if (g->n < 24) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: truncated header");
    magic_ok = memcmp(g->d, "GGUF", 4) == 0;
    if (!magic_ok) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad magic");
    g->off = 4;
    ropex__g_u32(g, &g->version);
    if (g->version != 2 && g->version != 3) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: version not 2 or 3");
    ropex__g_u64(g, &g->n_tensors);
    ropex__g_u64(g, &g->n_kv);
    /* each KV needs >= 13 bytes, each tensor info >= 28: hostile counts fail before any loop */
    if (g->n_kv > (uint64_t)(g->n - g->off) / 13 || g->n_tensors > (uint64_t)(g->n - g->off) / 28)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: counts exceed the file");
    for (k = 0; k < g->n_kv; k++) {
        const char *key;
        uint32_t t;
        int64_t iv; double fv;
        int64_t *ip = NULL;
        double *fp = NULL;
        if (!ropex__g_str(g, &key, &len) || len > 65535 || !ropex__g_u32(g, &t))
            return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: truncated key");
        if (ropex__g_key_is(key, len, "general.architecture") || ropex__g_key_is(key, len, "tokenizer.ggml.model") ||
            ropex__g_key_is(key, len, "llama.rope.scaling.type")) {
            const char *s; uint64_t sl;
            if (t != ROPEX__GT_STR || !ropex__g_str(g, &s, &sl)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad string value");
            if (key[0] == 'g') {
                if (!ropex__g_key_is(s, sl, "llama")) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: architecture is not llama");
                g->arch_seen = 1;
            } else if (key[0] == 't') {
                if (!ropex__g_key_is(s, sl, "llama")) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: tokenizer model is not llama (sentencepiece)");
                g->tok_model_seen = 1;
            } else {
                if (ropex__g_key_is(s, sl, "none")) g->scaling = ROPEX_SCALE_NONE;
                else if (ropex__g_key_is(s, sl, "linear")) g->scaling = ROPEX_SCALE_LINEAR;
                else if (ropex__g_key_is(s, sl, "yarn")) g->scaling = ROPEX_SCALE_YARN;
                else return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: unsupported rope.scaling.type");
            }
            continue;
        }
        if (ropex__g_key_is(key, len, "tokenizer.ggml.tokens") || ropex__g_key_is(key, len, "tokenizer.ggml.scores") ||
            ropex__g_key_is(key, len, "tokenizer.ggml.token_type")) {
            uint32_t at; uint64_t cnt; size_t start;
            if (t != ROPEX__GT_ARR || !ropex__g_u32(g, &at) || !ropex__g_u64(g, &cnt))
                return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad vocabulary array");
            start = g->off;
            if (ropex__g_key_is(key, len, "tokenizer.ggml.tokens")) {
                if (at != ROPEX__GT_STR) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tokens are not strings");
                g->tokens_off = start; g->n_tokens = cnt;
            } else if (ropex__g_key_is(key, len, "tokenizer.ggml.scores")) {
                if (at != ROPEX__GT_F32) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: scores are not f32");
                g->scores_off = start; g->n_scores = cnt;
            } else {
                if (at != ROPEX__GT_I32 && at != ROPEX__GT_U32) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: token types are not int32");
                g->types_off = start; g->n_types = cnt; g->types_type = at;
            }
            /* skip the elements as an array body */
            g->off -= 12;
            if (!ropex__g_skip(g, ROPEX__GT_ARR, 0)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: vocabulary array exceeds the file");
            if (at == ROPEX__GT_STR && cnt == 0) g->tokens_off = 0;
            continue;
        }
        if (ropex__g_key_is(key, len, "tokenizer.ggml.add_space_prefix")) {
            if (t != ROPEX__GT_BOOL || !ropex__g_number(g, t, &iv, &fv) || iv > 1)   /* the spec: 0 or 1 only */
                return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: add_space_prefix not a bool");
            g->no_space_prefix = iv == 0;
            continue;
        }
        if (ropex__g_key_is(key, len, "general.alignment")) ip = &iv;
        else if (ropex__g_key_is(key, len, "llama.context_length")) ip = &g->ctx_len;
        else if (ropex__g_key_is(key, len, "llama.embedding_length")) ip = &g->n_embd;
        else if (ropex__g_key_is(key, len, "llama.block_count")) ip = &g->n_layer;
        else if (ropex__g_key_is(key, len, "llama.feed_forward_length")) ip = &g->n_ff;
        else if (ropex__g_key_is(key, len, "llama.attention.head_count")) ip = &g->n_head;
        else if (ropex__g_key_is(key, len, "llama.attention.head_count_kv")) ip = &g->n_head_kv;
        else if (ropex__g_key_is(key, len, "llama.attention.key_length")) ip = &g->key_len;
        else if (ropex__g_key_is(key, len, "llama.attention.value_length")) ip = &g->val_len;
        else if (ropex__g_key_is(key, len, "llama.rope.dimension_count")) ip = &g->rope_dims;
        else if (ropex__g_key_is(key, len, "llama.rope.scaling.original_context_length")) ip = &g->orig_ctx;
        else if (ropex__g_key_is(key, len, "tokenizer.ggml.bos_token_id")) ip = &g->bos;
        else if (ropex__g_key_is(key, len, "tokenizer.ggml.eos_token_id")) ip = &g->eos;
        else if (ropex__g_key_is(key, len, "tokenizer.ggml.unknown_token_id")) ip = &g->unk;
        else if (ropex__g_key_is(key, len, "llama.attention.layer_norm_rms_epsilon")) fp = &g->eps;
        else if (ropex__g_key_is(key, len, "llama.rope.freq_base")) fp = &g->freq_base;
        else if (ropex__g_key_is(key, len, "llama.rope.scaling.factor")) fp = &g->scale_factor;
        else if (ropex__g_key_is(key, len, "llama.rope.scaling.attn_factor")) fp = &g->attn_factor;
        if (!ip && !fp) {
            if (!ropex__g_skip(g, t, 0)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: value exceeds the file");
            continue;
        }
        if (t == ROPEX__GT_ARR) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: per-layer hyperparameters");
        if (!ropex__g_number(g, t, &iv, &fv)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad numeric value");
        if (fp) { *fp = fv; continue; }
        if (ip == &iv) {   /* general.alignment: a power of two (the spec asks for a multiple of 8) */
            if (iv <= 0 || iv > (1 << 16) || (iv & (iv - 1))) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad alignment");
            g->alignment = (uint32_t)iv;
            continue;
        }
        /* token ids: UINT32_MAX (or -1) means none */
        if ((ip == &g->bos || ip == &g->eos || ip == &g->unk) && (iv == 0xFFFFFFFFLL || iv == -1)) iv = -1;
        else if (iv < 0) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: negative value");
        *ip = iv;
    }
    g->ti_off = g->off;
    return ROPEX_OK;
}

/* The model slot a tensor name maps to, or -1 (ignored) / -2 (layer index out of range). */
static int ropex__gguf_slot(const char *s, uint64_t len, int n_layers) {
    static const char *const names[9] = { "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                          "ffn_norm", "ffn_gate", "ffn_down", "ffn_up" };
    uint64_t i = 4;
    int l = 0, k;
    if (ropex__g_key_is(s, len, "token_embd.weight")) return 0;
    if (ropex__g_key_is(s, len, "output_norm.weight")) return 1;
    if (ropex__g_key_is(s, len, "output.weight")) return 2;
    if (len < 6 || memcmp(s, "blk.", 4) != 0) return -1;
    if (s[i] < '0' || s[i] > '9') return -1;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (l > 100000) return -1;
        l = l * 10 + (s[i] - '0'); i++;
    }
    if (i >= len || s[i] != '.') return -1;
    i++;
    for (k = 0; k < 9; k++) {
        size_t nl = strlen(names[k]);
        if (len - i == nl + 7 && memcmp(s + i, names[k], nl) == 0 && memcmp(s + i + nl, ".weight", 7) == 0)
            return l < n_layers ? 3 + 9 * l + k : -2;
    }
    return -1;
}

static ropex_tensor *ropex__model_slot(ropex_model *m, int slot) {
    ropex_layer_weights *w;
    if (slot == 0) return &m->tok_embd;
    if (slot == 1) return &m->output_norm;
    if (slot == 2) return &m->output;
    w = &m->layers[(slot - 3) / 9];
    switch ((slot - 3) % 9) {
    case 0: return &w->attn_norm;
    case 1: return &w->wq;
    case 2: return &w->wk;
    case 3: return &w->wv;
    case 4: return &w->wo;
    case 5: return &w->ffn_norm;
    case 6: return &w->w_gate;
    case 7: return &w->w_down;
    default: return &w->w_up;
    }
}

/* Expected (cols, rows) of a slot; norms are vectors. */
static void ropex__slot_shape(const ropex_hparams *hp, int slot, int64_t *cols, int64_t *rows, int *is_norm) {
    int64_t D = hp->dim, qd = (int64_t)hp->n_heads * hp->head_dim, kvd = (int64_t)hp->n_kv_heads * hp->head_dim;
    int64_t F = hp->hidden_dim;
    *is_norm = 0;
    if (slot == 0 || slot == 2) { *cols = D; *rows = hp->vocab_size; return; }
    if (slot == 1) { *cols = D; *rows = 1; *is_norm = 1; return; }
    switch ((slot - 3) % 9) {
    case 0: case 5: *cols = D; *rows = 1; *is_norm = 1; break;
    case 1: *cols = D; *rows = qd; break;
    case 2: case 3: *cols = D; *rows = kvd; break;
    case 4: *cols = qd; *rows = D; break;
    case 6: case 8: *cols = D; *rows = F; break;
    default: *cols = F; *rows = D; break;
    }
}

static ropex_status ropex__gguf_hparams(ropex__gguf *g, ropex_hparams *hp) {
    const char *msg = NULL;
    memset(hp, 0, sizeof(*hp));
    if (!g->arch_seen) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: no general.architecture");
    if (g->n_embd <= 0 || g->n_layer <= 0 || g->n_ff <= 0 || g->n_head <= 0 || g->ctx_len <= 0)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: missing or zero llama hyperparameter");
    if (g->n_head_kv < 0) g->n_head_kv = g->n_head;
    if (g->n_embd > ROPEX__MAX_DIM || g->n_ff > ROPEX__MAX_DIM || g->n_head > 65536 ||
        g->ctx_len > INT_MAX || g->orig_ctx > INT_MAX || g->key_len > 65536 || g->val_len > 65536 || g->rope_dims > 65536)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: absurd hyperparameter");
    if (g->n_layer > ROPEX_MAX_LAYERS) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: too many layers");
    if (g->n_head_kv <= 0 || g->n_head % g->n_head_kv)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: head_count not a multiple of head_count_kv");
    hp->dim = (int)g->n_embd; hp->hidden_dim = (int)g->n_ff; hp->n_layers = (int)g->n_layer;
    hp->n_heads = (int)g->n_head; hp->n_kv_heads = (int)g->n_head_kv;
    if (g->key_len > 0) {
        if (g->val_len > 0 && g->val_len != g->key_len) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: key_length != value_length");
        hp->head_dim = (int)g->key_len;
    } else {
        if (g->n_embd % g->n_head) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: embedding_length not a multiple of head_count");
        hp->head_dim = (int)(g->n_embd / g->n_head);
    }
    if (hp->head_dim % 2 || (int64_t)hp->head_dim * g->n_head > ROPEX__MAX_DIM)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad head size");
    hp->file_ctx = (int)g->ctx_len;
    if (g->eps < 0.0) g->eps = 1e-5;
    if (!(g->eps > 0.0 && g->eps < 1.0)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad rms epsilon");
    hp->rms_eps = (float)g->eps;
    hp->rope.head_dim = hp->head_dim;
    hp->rope.rot_dims = g->rope_dims > 0 ? (int)g->rope_dims : hp->head_dim;
    if (hp->rope.rot_dims > hp->head_dim || hp->rope.rot_dims % 2)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad rope.dimension_count");
    if (g->freq_base < 0.0) g->freq_base = 10000.0;
    if (!(g->freq_base > 1.0 && g->freq_base < 1e30)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad rope.freq_base");
    hp->rope.base = g->freq_base;
    hp->rope.train_base = g->freq_base;
    hp->rope.layout = ROPEX_LAYOUT_ADJACENT;   /* llama arch = GGML NORMAL rope: adjacent pairs */
    hp->rope.train_ctx = g->orig_ctx > 0 ? (int)g->orig_ctx : hp->file_ctx;
    if (g->scaling > 0) {
        if (!(g->scale_factor > 0.0 && g->scale_factor < 1e6)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: bad rope.scaling.factor");
        hp->rope.scaling = (ropex_rope_scaling)g->scaling;
        /* the key holds s itself (llama.cpp runs at freq_scale = 1/s) */
        hp->rope.factor = g->scale_factor;
        /* the magnitude override means something only for YaRN (the validator rejects it elsewhere) */
        if (g->attn_factor > 0.0 && hp->rope.scaling == ROPEX_SCALE_YARN) hp->rope.attn_factor = g->attn_factor;
    }
    if (ropex_rope_validate(&hp->rope, &msg) != ROPEX_OK)
        return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, msg ? msg : "gguf: rope settings not supported");
    return ROPEX_OK;
}

/* Vocabulary checks (and the fill when m is non-NULL). */
static ropex_status ropex__gguf_vocab(ropex__gguf *g, ropex_model *m, ropex__arena *ar) {
    uint64_t i, n = g->n_tokens;
    ropex_token *toks;
    int32_t *sorted;
    size_t save = g->off;
    if (!g->tok_model_seen) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: no tokenizer.ggml.model");
    if (n == 0 || g->tokens_off == 0) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: no tokens");
    if (n > ROPEX__MAX_VOCAB) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: vocabulary too large");
    if ((g->scores_off && g->n_scores != n) || (g->types_off && g->n_types != n))
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: scores/token_type length differs from tokens");
    if (g->bos == -2) g->bos = n > 1 ? 1 : -1;
    if (g->eos == -2) g->eos = n > 2 ? 2 : -1;
    if (g->unk == -2) g->unk = 0;
    if (g->bos >= (int64_t)n || g->eos >= (int64_t)n || g->unk >= (int64_t)n)
        return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: special token id out of range");
    toks = (ropex_token *)ropex__arena_alloc(ar, n * sizeof(ropex_token), 8);
    sorted = (int32_t *)ropex__arena_alloc(ar, n * 4, 4);
    if (ar->overflow) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: vocabulary too large");
    if (m && (!toks || !sorted)) return ropex__gerr(g, ROPEX_ERR_BUFFER, "aux buffer too small");
    g->off = g->tokens_off;
    for (i = 0; i < n; i++) {
        const char *s; uint64_t len;
        if (!ropex__g_str(g, &s, &len)) { g->off = save; return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: truncated token"); }
        if (len == 0 || len > ROPEX__MAX_PIECE) { g->off = save; return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: empty or huge token"); }
        if (m) {
            int32_t ty = 1;
            toks[i].text = s; toks[i].len = (uint32_t)len;
            toks[i].score = g->scores_off ? ropex__ldf32(g->d + g->scores_off + 4 * i) : 0.0f;
            if (g->types_off) ty = (int32_t)ropex__ld32(g->d + g->types_off + 4 * i);
            toks[i].type = (uint8_t)(ty >= 1 && ty <= 6 ? ty : 1);
            if (!(toks[i].score == toks[i].score)) toks[i].score = -INFINITY;
        }
    }
    g->off = save;
    if (m) {
        m->vocab.n_tokens = (int)n;
        m->vocab.tokens = toks;
        m->vocab.bos_id = (int)g->bos; m->vocab.eos_id = (int)g->eos; m->vocab.unk_id = (int)g->unk;
        m->vocab.space_is_u2581 = 1;
        m->vocab.no_space_prefix = g->no_space_prefix;
        ropex__vocab_finish(&m->vocab, sorted);
    }
    return ROPEX_OK;
}

/* Tensor infos: pass 1 finds the data section, pass 2 checks and maps every tensor. */
static ropex_status ropex__gguf_tensors(ropex__gguf *g, const ropex_hparams *hp, ropex_model *m, ropex__arena *ar) {
    uint64_t t, end;
    int pass, freqs_seen = 0;
    unsigned char seen[ROPEX__GGUF_SLOTS];
    memset(seen, 0, sizeof(seen));
    for (pass = 0; pass < 2; pass++) {
        g->off = g->ti_off;
        for (t = 0; t < g->n_tensors; t++) {
            const char *name; uint64_t nl, ne[4] = { 1, 1, 1, 1 }, nel = 1, rows, rs, bytes, offset;
            uint32_t nd, type, i;
            int slot;
            if (!ropex__g_str(g, &name, &nl) || !ropex__g_u32(g, &nd)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: truncated tensor info");
            if (nl > ROPEX__GGUF_MAX_NAME) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor name too long");
            if (nd == 0 || nd > 4) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor n_dims not in 1..4");
            for (i = 0; i < nd; i++) {
                if (!ropex__g_u64(g, &ne[i])) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: truncated tensor info");
                if (ne[i] == 0 || ne[i] > (uint64_t)INT64_MAX || !ropex__mul64(nel, ne[i], &nel) || nel > (uint64_t)INT64_MAX)
                    return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor size overflows");
            }
            if (!ropex__g_u32(g, &type) || !ropex__g_u64(g, &offset)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: truncated tensor info");
            if (offset % g->alignment) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor offset not aligned");
            if (pass == 0) continue;
            /* Per-pair frequency factors (llama.cpp's converter writes them for Llama 3.x): theta of
               pair j is divided by f[j] at every position. That is LongRoPE with one list for short
               and long contexts and no magnitude, which is how the model's RoPE is set up (copied into
               aux as host floats; the user's config can still override it at run time). */
            if (ropex__g_key_is(name, nl, "rope_freqs.weight")) {
                int np = hp->rope.rot_dims / 2, j;
                float *f;
                const uint8_t *src = g->d + g->data_start + offset;
                if (freqs_seen++) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: duplicate tensor");
                if (type != ROPEX_F32 || nd != 1 || ne[0] != (uint64_t)np)
                    return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: rope_freqs must be f32 with rope.dimension_count/2 values");
                if (!ropex__add64(offset, 4 * ne[0], &end) || end > (uint64_t)(g->n - g->data_start))
                    return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor data past the end of the file");
                if (hp->rope.scaling != ROPEX_SCALE_NONE)
                    return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: rope_freqs together with rope.scaling.type");
                f = (float *)ropex__arena_alloc(ar, (uint64_t)np * 4, 4);   /* NULL when measuring */
                if (ar->overflow) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: rope_freqs too large");
                if (m && !f) return ropex__gerr(g, ROPEX_ERR_BUFFER, "aux buffer too small");
                for (j = 0; j < np; j++) {
                    float v = ropex__q_ldf32(src + 4 * (size_t)j);
                    if (!(v > 0.0f && v < 1e30f)) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: rope_freqs value not finite and > 0");
                    if (f) f[j] = v;
                }
                if (m) {
                    m->hp.rope.scaling = ROPEX_SCALE_LONGROPE;
                    m->hp.rope.longrope_short = f;
                    m->hp.rope.longrope_long = f;
                }
                continue;
            }
            slot = ropex__gguf_slot(name, nl, hp->n_layers);
            if (slot == -2) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor of a layer beyond block_count");
            rows = ne[1] * ne[2] * ne[3];
            rs = ropex__row_size(type, ne[0]);
            if (slot < 0) {
                /* unknown tensors of the four types must still lie inside the data section */
                if (rs && (!ropex__mul64(rs, rows, &bytes) || !ropex__add64(offset, bytes, &end) ||
                           end > (uint64_t)(g->n - g->data_start)))
                    return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor data past the end of the file");
                continue;
            }
            if (seen[slot]) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: duplicate tensor");
            seen[slot] = 1;
            if (type != ROPEX_F32 && type != ROPEX_F16 && type != ROPEX_Q8_0 && type != ROPEX_Q4_0)
                return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: tensor type not f32/f16/q8_0/q4_0");
            {
                int64_t ec, er; int is_norm;
                ropex__slot_shape(hp, slot, &ec, &er, &is_norm);
                if (ne[0] != (uint64_t)ec || rows != (uint64_t)er || ne[2] != 1 || ne[3] != 1)
                    return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor shape does not match the hyperparameters");
                if (is_norm && type != ROPEX_F32) return ropex__gerr(g, ROPEX_ERR_UNSUPPORTED, "gguf: norm weights not f32");
            }
            if (!rs) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: row length not a multiple of the block size");
            if (!ropex__mul64(rs, rows, &bytes) || !ropex__add64(offset, bytes, &end) || end > (uint64_t)(g->n - g->data_start))
                return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: tensor data past the end of the file");
            if (m) {
                ropex_tensor *dst = ropex__model_slot(m, slot);
                dst->type = (ropex_type)type;
                dst->cols = (int64_t)ne[0];
                dst->rows = (int64_t)rows;
                dst->data = g->d + g->data_start + (size_t)offset;
            }
        }
        if (pass == 0) {
            /* the data section starts at the end of the tensor infos rounded up to the alignment */
            uint64_t ds = ((uint64_t)g->off + g->alignment - 1) / g->alignment * g->alignment;
            if (ds > g->n) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: data section past the end of the file");
            g->data_start = (size_t)ds;
        }
    }
    {
        int s;
        for (s = 0; s < 3 + 9 * hp->n_layers; s++)
            if (!seen[s] && s != 2) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: a required tensor is missing");
        if (m && !seen[2]) m->output = m->tok_embd;   /* shared classifier */
    }
    return ROPEX_OK;
}

/* Parses and checks the whole file; measures aux (m NULL) or fills the model. */
static ropex_status ropex__gguf_load(ropex__gguf *g, ropex_model *m, const void *data, size_t size, ropex__arena *ar) {
    ropex_status st;
    ropex_hparams hp;
    memset(g, 0, sizeof(*g));
    g->d = (const uint8_t *)data; g->n = size;
    if (!data) return ropex__gerr(g, ROPEX_ERR_ARG, "NULL data");
    if ((st = ropex__gguf_kv(g)) != ROPEX_OK) return st;
    if ((st = ropex__gguf_hparams(g, &hp)) != ROPEX_OK) return st;
    if (g->n_tokens > (uint64_t)INT_MAX) return ropex__gerr(g, ROPEX_ERR_FORMAT, "gguf: vocabulary too large");
    hp.vocab_size = (int)g->n_tokens;
    if ((st = ropex__gguf_vocab(g, m, ar)) != ROPEX_OK) return st;
    if (m) m->hp = hp;
    if ((st = ropex__gguf_tensors(g, &hp, m, ar)) != ROPEX_OK) return st;
    if (m) m->format = ROPEX_FORMAT_GGUF;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_model_gguf_aux_bytes(const void *data, size_t size, size_t *aux_bytes) {
    ropex__gguf g;
    ropex__arena ar;
    ropex_status st;
    if (!aux_bytes) return ROPEX_ERR_ARG;
    *aux_bytes = 0;
    ropex__arena_init(&ar, NULL, 0);
    st = ropex__gguf_load(&g, NULL, data, size, &ar);
    if (st) return st;
    if (ar.used > SIZE_MAX - ROPEX__AUX_SLACK) return ROPEX_ERR_FORMAT;
    *aux_bytes = ar.used + ROPEX__AUX_SLACK;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_model_load_gguf_memory_ex(ropex_model *m, const void *data, size_t size,
                                                       void *aux, size_t aux_bytes) {
    ropex__gguf g;
    ropex__arena ar;
    ropex_status st;
    if (!m) return ROPEX_ERR_ARG;
    ropex__model_reset(m);
    ropex__arena_init(&ar, aux, aux_bytes);
    st = ropex__gguf_load(&g, m, data, size, &ar);
    if (st) return ropex__fail(m, st, g.err);
    m->file_data = (void *)(uintptr_t)data; m->file_size = size; m->file_owned = 0;
    m->aux = aux; m->aux_bytes = aux_bytes; m->aux_owned = 0;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_model_load_gguf_memory(ropex_model *m, const void *data, size_t size) {
    ropex__gguf g;
    ropex__arena ar;
    size_t need = 0;
    void *aux;
    ropex_status st;
    if (!m) return ROPEX_ERR_ARG;
    ropex__arena_init(&ar, NULL, 0);
    st = ropex__gguf_load(&g, NULL, data, size, &ar);
    if (st) return ropex__fail(m, st, g.err);
    need = ar.used + ROPEX__AUX_SLACK;
    aux = ropex__malloc(need);
    if (!aux) return ropex__fail(m, ROPEX_ERR_NOMEM, "out of memory for the model tables");
    st = ropex_model_load_gguf_memory_ex(m, data, size, aux, need);
    if (st) { ropex__free(aux); return st; }
    m->aux_owned = 1;
    return ROPEX_OK;
}


/* ---- GGUF v3 writer (llama.cpp key names, little-endian on every host) ---- */
typedef struct ropex__gw { uint8_t *p; size_t cap, off; int overflow; } ropex__gw;

/* Appends bytes (or only counts them when measuring / past the capacity). */
static void ropex__gw_bytes(ropex__gw *w, const void *src, size_t n) {
    if (n > SIZE_MAX - w->off) { w->overflow = 1; return; }
    if (w->p && src && w->off + n <= w->cap && n) memcpy(w->p + w->off, src, n);
    w->off += n;
}
static void ropex__gw_u32(ropex__gw *w, uint32_t v) { uint8_t b[4]; ropex__st32(b, v); ropex__gw_bytes(w, b, 4); }
static void ropex__gw_u64(ropex__gw *w, uint64_t v) { uint8_t b[8]; ropex__st32(b, (uint32_t)v); ropex__st32(b + 4, (uint32_t)(v >> 32)); ropex__gw_bytes(w, b, 8); }
static void ropex__gw_f32(ropex__gw *w, float f) { uint32_t u; memcpy(&u, &f, 4); ropex__gw_u32(w, u); }
static void ropex__gw_str(ropex__gw *w, const char *s) { size_t n = strlen(s); ropex__gw_u64(w, n); ropex__gw_bytes(w, s, n); }
static void ropex__gw_key(ropex__gw *w, const char *k, uint32_t type) { ropex__gw_str(w, k); ropex__gw_u32(w, type); }
static void ropex__gw_kv_u32(ropex__gw *w, const char *k, uint32_t v) { ropex__gw_key(w, k, ROPEX__GT_U32); ropex__gw_u32(w, v); }
static void ropex__gw_kv_f32(ropex__gw *w, const char *k, float v) { ropex__gw_key(w, k, ROPEX__GT_F32); ropex__gw_f32(w, v); }
static void ropex__gw_kv_str(ropex__gw *w, const char *k, const char *v) { ropex__gw_key(w, k, ROPEX__GT_STR); ropex__gw_str(w, v); }
static void ropex__gw_pad(ropex__gw *w, size_t align) {
    static const uint8_t zeros[32] = { 0 };
    while (w->off % align && !w->overflow) ropex__gw_bytes(w, zeros, align - w->off % align < 32 ? align - w->off % align : 32);
}

/* A vocabulary piece as llama.cpp's llama vocabulary spells it: spaces as U+2581, llama2.c's
   "\n<s>\n" / "\n</s>\n" control pieces as "<s>" / "</s>". */
static void ropex__gw_piece(ropex__gw *w, const ropex_vocab *v, int id) {
    const ropex_token *t = &v->tokens[id];
    uint32_t i, spaces = 0;
    if (!v->space_is_u2581 && t->type == 3 && (id == v->bos_id || id == v->eos_id)) {
        ropex__gw_str(w, id == v->bos_id ? "<s>" : "</s>");
        return;
    }
    if (v->space_is_u2581) { ropex__gw_u64(w, t->len); ropex__gw_bytes(w, t->text, t->len); return; }
    for (i = 0; i < t->len; i++) spaces += t->text[i] == ' ';
    ropex__gw_u64(w, (uint64_t)t->len + 2 * (uint64_t)spaces);
    for (i = 0; i < t->len; i++) {
        if (t->text[i] == ' ') ropex__gw_bytes(w, "\xe2\x96\x81", 3);
        else ropex__gw_bytes(w, t->text + i, 1);
    }
}

/* Storage type of a tensor written at target type t: norms stay F32; rows that are not whole
   32-blocks cannot be Q8_0/Q4_0 and stay F16 (GGML refuses to quantize them). */
static ropex_type ropex__gw_type(const ropex_tensor *x, ropex_type t, int is_norm) {
    if (is_norm) return ROPEX_F32;
    if ((t == ROPEX_Q8_0 || t == ROPEX_Q4_0) && x->cols % ROPEX_QK) return ROPEX_F16;
    return t;
}

/* Tensor data converted 32 values at a time (whole blocks), so no scratch beyond the stack. */
static ropex_status ropex__gw_tensor_data(ropex__gw *w, const ropex_tensor *x, ropex_type to) {
    uint64_t n = (uint64_t)x->cols * (uint64_t)x->rows, i;
    size_t sb = ropex_row_bytes(x->type, ROPEX_QK), db = ropex_row_bytes(to, ROPEX_QK);
    float f[ROPEX_QK];
    uint8_t q[ROPEX_QK * 4];
    ropex_status st;
    uint64_t total = ropex__row_size((uint32_t)to, (uint64_t)x->cols) * (uint64_t)x->rows;
    if (total > (uint64_t)SIZE_MAX) { w->overflow = 1; return ROPEX_OK; }
    if (x->type == to) { ropex__gw_bytes(w, x->data, (size_t)total); return ROPEX_OK; }
    /* measuring, or a buffer already too small: count without converting */
    if (!w->p || w->off + (size_t)total > w->cap) { ropex__gw_bytes(w, NULL, (size_t)total); return ROPEX_OK; }
    for (i = 0; i < n; i += ROPEX_QK) {
        size_t c = (size_t)(n - i < ROPEX_QK ? n - i : ROPEX_QK);
        /* partial chunks only happen for float types (block-type rows are whole blocks) */
        const uint8_t *src = (const uint8_t *)x->data + (size_t)(i / ROPEX_QK) * sb;
        if ((st = ropex_dequantize(x->type, src, f, c)) != ROPEX_OK) return st;
        if ((st = ropex_quantize(to, f, q, c)) != ROPEX_OK) return st;
        ropex__gw_bytes(w, q, c == ROPEX_QK ? db : ropex_row_bytes(to, c));
    }
    return ROPEX_OK;
}

/* The tensors in llama.cpp's converter order: name, model tensor, is_norm. */
static const ropex_tensor *ropex__gw_tensor(const ropex_model *m, int i, char *name, int *is_norm) {
    static const char *const ln[9] = { "attn_q", "attn_k", "attn_v", "attn_output", "attn_norm",
                                       "ffn_gate", "ffn_down", "ffn_up", "ffn_norm" };
    const ropex_layer_weights *L;
    int l, k;
    *is_norm = 0;
    if (i == 0) { strcpy(name, "token_embd.weight"); return &m->tok_embd; }
    if (i == 1) { strcpy(name, "output_norm.weight"); *is_norm = 1; return &m->output_norm; }
    if (i == 2) { strcpy(name, "output.weight"); return &m->output; }
    l = (i - 3) / 9; k = (i - 3) % 9;
    L = &m->layers[l];
    {
        /* "blk.<l>.<name>.weight" without snprintf (C89 libraries on firmware lack it) */
        char num[8]; int nd = 0, v = l;
        do { num[nd++] = (char)('0' + v % 10); v /= 10; } while (v);
        strcpy(name, "blk.");
        { int j, p = 4; for (j = nd - 1; j >= 0; j--) name[p++] = num[j]; name[p++] = '.'; name[p] = 0; }
        strcat(name, ln[k]);
        strcat(name, ".weight");
    }
    switch (k) {
    case 0: return &L->wq;
    case 1: return &L->wk;
    case 2: return &L->wv;
    case 3: return &L->wo;
    case 4: *is_norm = 1; return &L->attn_norm;
    case 5: return &L->w_gate;
    case 6: return &L->w_down;
    case 7: return &L->w_up;
    default: *is_norm = 1; return &L->ffn_norm;
    }
}

ROPEX_API ropex_status ropex_gguf_write(const ropex_model *m, const ropex_gguf_write_config *cfg, void *out,
                                        size_t cap, size_t *size) {
    ropex__gw w;
    const ropex_hparams *hp;
    const ropex_vocab *v;
    ropex_type t = cfg ? cfg->type : ROPEX_F32;
    int n_tensors, i, ctx, scaled, is_norm, np, freqs;
    uint64_t off;
    uint32_t ftype;
    char name[64];
    ropex_status st;
    if (size) *size = 0;
    if (!m || !size || (out == NULL && cap != 0)) return ROPEX_ERR_ARG;
    if (m->pack) return ROPEX_ERR_UNSUPPORTED;   /* repacked tensors are not GGML rows */
    hp = &m->hp; v = &m->vocab;
    if (t != ROPEX_F32 && t != ROPEX_F16 && t != ROPEX_Q8_0 && t != ROPEX_Q4_0) return ROPEX_ERR_ARG;
    if (hp->n_layers <= 0 || hp->n_layers > ROPEX_MAX_LAYERS || !v->tokens || v->n_tokens <= 0 || !m->tok_embd.data)
        return ROPEX_ERR_ARG;
    ftype = t == ROPEX_F32 ? 0 : t == ROPEX_F16 ? 1 : t == ROPEX_Q4_0 ? 2 : 7;   /* llama_ftype ids */
    ctx = cfg && cfg->context_length > 0 ? cfg->context_length : (hp->rope.train_ctx > 0 ? hp->rope.train_ctx : hp->file_ctx);
    scaled = hp->rope.scaling == ROPEX_SCALE_LINEAR || hp->rope.scaling == ROPEX_SCALE_YARN;
    /* LongRoPE with one list for all lengths and no magnitude = llama.cpp's rope_freqs tensor */
    np = (hp->rope.rot_dims > 0 ? hp->rope.rot_dims : hp->head_dim) / 2;
    freqs = hp->rope.scaling == ROPEX_SCALE_LONGROPE && hp->rope.longrope_short && hp->rope.longrope_long &&
            (hp->rope.factor == 0.0 || hp->rope.factor == 1.0) && hp->rope.attn_factor == 0.0 && np > 0 &&
            memcmp(hp->rope.longrope_short, hp->rope.longrope_long, (size_t)np * sizeof(float)) == 0;
    n_tensors = 3 + 9 * hp->n_layers;
    memset(&w, 0, sizeof(w));
    w.p = (uint8_t *)out; w.cap = cap;
    ropex__gw_bytes(&w, "GGUF", 4);
    ropex__gw_u32(&w, 3);
    ropex__gw_u64(&w, (uint64_t)(n_tensors + freqs));
    ropex__gw_u64(&w, (uint64_t)(16 + (t == ROPEX_Q8_0 || t == ROPEX_Q4_0) + (scaled ? 3 : 0) +
                                 (hp->head_dim * hp->n_heads != hp->dim ? 2 : 0) +
                                 (v->bos_id >= 0) + (v->eos_id >= 0) + (v->unk_id >= 0) + (v->no_space_prefix != 0)));
    ropex__gw_kv_str(&w, "general.architecture", "llama");
    ropex__gw_kv_str(&w, "general.name", cfg && cfg->name ? cfg->name : "llama");
    ropex__gw_kv_u32(&w, "general.file_type", ftype);
    if (t == ROPEX_Q8_0 || t == ROPEX_Q4_0) ropex__gw_kv_u32(&w, "general.quantization_version", 2);
    ropex__gw_kv_u32(&w, "llama.context_length", (uint32_t)(scaled && hp->file_ctx > ctx ? hp->file_ctx : ctx));
    ropex__gw_kv_u32(&w, "llama.embedding_length", (uint32_t)hp->dim);
    ropex__gw_kv_u32(&w, "llama.block_count", (uint32_t)hp->n_layers);
    ropex__gw_kv_u32(&w, "llama.feed_forward_length", (uint32_t)hp->hidden_dim);
    ropex__gw_kv_u32(&w, "llama.attention.head_count", (uint32_t)hp->n_heads);
    ropex__gw_kv_u32(&w, "llama.attention.head_count_kv", (uint32_t)hp->n_kv_heads);
    if (hp->head_dim * hp->n_heads != hp->dim) {
        ropex__gw_kv_u32(&w, "llama.attention.key_length", (uint32_t)hp->head_dim);
        ropex__gw_kv_u32(&w, "llama.attention.value_length", (uint32_t)hp->head_dim);
    }
    ropex__gw_kv_u32(&w, "llama.rope.dimension_count", (uint32_t)(hp->rope.rot_dims > 0 ? hp->rope.rot_dims : hp->head_dim));
    ropex__gw_kv_f32(&w, "llama.rope.freq_base", (float)(hp->rope.base > 0.0 ? hp->rope.base : 10000.0));
    ropex__gw_kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", hp->rms_eps);
    if (scaled) {
        ropex__gw_kv_str(&w, "llama.rope.scaling.type", hp->rope.scaling == ROPEX_SCALE_LINEAR ? "linear" : "yarn");
        ropex__gw_kv_f32(&w, "llama.rope.scaling.factor", (float)(hp->rope.factor > 0.0 ? hp->rope.factor : 1.0));
        ropex__gw_kv_u32(&w, "llama.rope.scaling.original_context_length", (uint32_t)ctx);
    }
    ropex__gw_kv_str(&w, "tokenizer.ggml.model", "llama");
    ropex__gw_key(&w, "tokenizer.ggml.tokens", ROPEX__GT_ARR);
    ropex__gw_u32(&w, ROPEX__GT_STR); ropex__gw_u64(&w, (uint64_t)v->n_tokens);
    for (i = 0; i < v->n_tokens; i++) ropex__gw_piece(&w, v, i);
    ropex__gw_key(&w, "tokenizer.ggml.scores", ROPEX__GT_ARR);
    ropex__gw_u32(&w, ROPEX__GT_F32); ropex__gw_u64(&w, (uint64_t)v->n_tokens);
    for (i = 0; i < v->n_tokens; i++) ropex__gw_f32(&w, v->tokens[i].score);
    ropex__gw_key(&w, "tokenizer.ggml.token_type", ROPEX__GT_ARR);
    ropex__gw_u32(&w, ROPEX__GT_I32); ropex__gw_u64(&w, (uint64_t)v->n_tokens);
    for (i = 0; i < v->n_tokens; i++) ropex__gw_u32(&w, v->tokens[i].type);
    if (v->bos_id >= 0) ropex__gw_kv_u32(&w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
    if (v->eos_id >= 0) ropex__gw_kv_u32(&w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
    if (v->unk_id >= 0) ropex__gw_kv_u32(&w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id);
    if (v->no_space_prefix) { uint8_t f = 0; ropex__gw_key(&w, "tokenizer.ggml.add_space_prefix", ROPEX__GT_BOOL); ropex__gw_bytes(&w, &f, 1); }
    /* tensor infos; data offsets relative to the data section, each aligned to 32 */
    off = 0;
    for (i = 0; i < n_tensors; i++) {
        const ropex_tensor *x = ropex__gw_tensor(m, i, name, &is_norm);
        ropex_type to = ropex__gw_type(x, t, is_norm);
        uint64_t bytes = ropex__row_size((uint32_t)to, (uint64_t)x->cols) * (uint64_t)x->rows;
        if (!x->data || x->cols <= 0 || x->rows <= 0 || !ropex__row_size((uint32_t)x->type, (uint64_t)x->cols) ||
            (is_norm && x->rows != 1)) return ROPEX_ERR_ARG;
        ropex__gw_str(&w, name);
        ropex__gw_u32(&w, is_norm ? 1 : 2);
        ropex__gw_u64(&w, (uint64_t)x->cols);
        if (!is_norm) ropex__gw_u64(&w, (uint64_t)x->rows);
        ropex__gw_u32(&w, (uint32_t)to);
        ropex__gw_u64(&w, off);
        off = (off + bytes + 31) / 32 * 32;
    }
    if (freqs) {
        ropex__gw_str(&w, "rope_freqs.weight");
        ropex__gw_u32(&w, 1);
        ropex__gw_u64(&w, (uint64_t)np);
        ropex__gw_u32(&w, 0);   /* f32 */
        ropex__gw_u64(&w, off);
    }
    ropex__gw_pad(&w, 32);
    for (i = 0; i < n_tensors; i++) {
        const ropex_tensor *x = ropex__gw_tensor(m, i, name, &is_norm);
        if ((st = ropex__gw_tensor_data(&w, x, ropex__gw_type(x, t, is_norm))) != ROPEX_OK) return st;
        if (i + 1 < n_tensors || freqs) ropex__gw_pad(&w, 32);
    }
    for (i = 0; freqs && i < np; i++) ropex__gw_f32(&w, hp->rope.longrope_short[i]);
    if (w.overflow) return ROPEX_ERR_ARG;
    *size = w.off;
    if (!out) return ROPEX_OK;
    return w.off > cap ? ROPEX_ERR_BUFFER : ROPEX_OK;
}

static void ropex__release_file(ropex_model *m);

#ifndef ROPEX_NO_STDIO
#include <stdio.h>
/* Reads a whole file into malloc'd memory; *data is 32-byte aligned inside *raw. */
static ropex_status ropex__read_file(const char *path, void **raw, uint8_t **data, size_t *size) {
    FILE *f;
    long len;
    size_t got;
    uint8_t *buf;
    *raw = NULL; *data = NULL; *size = 0;
    f = fopen(path, "rb");
    if (!f) return ROPEX_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return ROPEX_ERR_IO; }
    if ((unsigned long)len > (unsigned long)(SIZE_MAX - 64)) { fclose(f); return ROPEX_ERR_NOMEM; }
    buf = (uint8_t *)ropex__malloc((size_t)len + 32);
    if (!buf) { fclose(f); return ROPEX_ERR_NOMEM; }
    *data = buf + ((32 - ((uintptr_t)buf & 31)) & 31);
    got = len ? fread(*data, 1, (size_t)len, f) : 0;
    fclose(f);
    if (got != (size_t)len) { ropex__free(buf); *data = NULL; return ROPEX_ERR_IO; }
    *raw = buf; *size = (size_t)len;
    return ROPEX_OK;
}

/* Model files are mapped read-only where POSIX mmap exists (no copy, pages shared with the page
   cache: a 600 MB model costs no heap on a Raspberry Pi); ROPEX_NO_MMAP or a failed map falls
   back to reading the file into the heap. */
#if !defined(ROPEX_NO_MMAP) && (defined(__unix__) || defined(__APPLE__))
#  define ROPEX__MMAP 1
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <fcntl.h>
#  include <unistd.h>
static int ropex__map_file(const char *path, void **data, size_t *size) {
    struct stat sb;
    void *p;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0 || (unsigned long long)sb.st_size > (unsigned long long)SIZE_MAX) {
        close(fd); return 0;
    }
    p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 0;
    *data = p; *size = (size_t)sb.st_size;
    return 1;
}
#endif
#define ROPEX__OWN_HEAP 1
#define ROPEX__OWN_MMAP 2

ROPEX_API ropex_status ropex_model_load_file(ropex_model *m, const char *path, const char *tokenizer_path) {
    void *raw = NULL, *traw = NULL;
    uint8_t *data = NULL, *tdata = NULL;
    size_t size = 0, tsize = 0;
    int own = ROPEX__OWN_HEAP;
    ropex_status st;
    if (!m) return ROPEX_ERR_ARG;
    if (!path) return ropex__fail(m, ROPEX_ERR_ARG, "no model path");
#ifdef ROPEX__MMAP
    if (ropex__map_file(path, &raw, &size)) { data = (uint8_t *)raw; own = ROPEX__OWN_MMAP; }
    else
#endif
    {
        st = ropex__read_file(path, &raw, &data, &size);
        if (st) return ropex__fail(m, st, "cannot read the model file");
    }
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        st = ropex_model_load_gguf_memory(m, data, size);
    } else if (!tokenizer_path) {
        st = ropex__fail(m, ROPEX_ERR_ARG, "llama2.c checkpoint needs a tokenizer file");
    } else {
        st = ropex__read_file(tokenizer_path, &traw, &tdata, &tsize);
        if (st) st = ropex__fail(m, st, "cannot read the tokenizer file");
        else st = ropex_model_load_llama2c_memory(m, data, size, tdata, tsize);
        ropex__free(traw);
    }
    if (st) {
        m->file_data = raw; m->file_size = size; m->file_owned = own;
        ropex__release_file(m);
        return st;
    }
    m->file_data = raw; m->file_size = size; m->file_owned = own;
    return ROPEX_OK;
}
#endif

/* Frees or unmaps the file bytes the model owns. */
static void ropex__release_file(ropex_model *m) {
#if !defined(ROPEX_NO_STDIO) && defined(ROPEX__MMAP)
    if (m->file_owned == ROPEX__OWN_MMAP) { munmap(m->file_data, m->file_size); m->file_data = NULL; m->file_owned = 0; return; }
#endif
    if (m->file_owned) ropex__free(m->file_data);
    m->file_data = NULL; m->file_owned = 0;
}

#if defined(ROPEX__HAVE_X8)
/* The matrices a repack covers (never tok_embd: the embedding lookup reads GGML rows). */
static int ropex__pack_list(ropex_model *m, ropex_tensor **ts) {
    int n = 0, l;
    for (l = 0; l < m->hp.n_layers && l < ROPEX_MAX_LAYERS; l++) {
        ropex_layer_weights *L = &m->layers[l];
        ts[n++] = &L->wq; ts[n++] = &L->wk; ts[n++] = &L->wv; ts[n++] = &L->wo;
        ts[n++] = &L->w_gate; ts[n++] = &L->w_down; ts[n++] = &L->w_up;
    }
    if (m->output.data != m->tok_embd.data) ts[n++] = &m->output;
    return n;
}
/* Bytes a tensor takes in the pack (whole cache lines), 0 when it is not repacked. */
static size_t ropex__pack_bytes(const ropex_tensor *t) {
    if (!ropex__is_block(t->type) || t->rows < 8) return 0;
    return ((size_t)t->rows * ropex_row_bytes(t->type, (size_t)t->cols) + 63) & ~(size_t)63;
}
#endif

ROPEX_API ropex_status ropex_model_repack(ropex_model *m) {
#if defined(ROPEX__HAVE_X8)
    ropex_tensor *ts[7 * ROPEX_MAX_LAYERS + 1];
    size_t total = 0, off = 0;
    unsigned char *buf;
    int n, i;
    if (!m) return ROPEX_ERR_ARG;
    if (m->pack) return ROPEX_OK;   /* already */
    n = ropex__pack_list(m, ts);
    for (i = 0; i < n; i++) {
        size_t b = ropex__pack_bytes(ts[i]);
        if (b > SIZE_MAX - 64 - total) return ROPEX_ERR_NOMEM;
        total += b;
    }
    if (total == 0) return ROPEX_OK;
    buf = (unsigned char *)ropex__malloc(total + 64);
    if (!buf) return ROPEX_ERR_NOMEM;
    m->pack = buf;
    m->pack_bytes = total;
    buf += (64 - ((uintptr_t)buf & 63)) & 63;   /* groups start on cache lines */
    for (i = 0; i < n; i++) {
        ropex_tensor *t = ts[i];
        size_t b = ropex__pack_bytes(t);
        if (!b) continue;
        (void)ropex_repack(t->type, t->data, (size_t)t->rows, (size_t)t->cols, buf + off);
        t->data = buf + off;
        t->type = t->type == ROPEX_Q4_0 ? ROPEX_Q4_0_X8 : ROPEX_Q8_0_X8;
        off += b;
    }
    return ROPEX_OK;
#else
    return m ? ROPEX_OK : ROPEX_ERR_ARG;
#endif
}

ROPEX_API void ropex_model_free(ropex_model *m) {
    if (!m) return;
    ropex__release_file(m);
    if (m->aux_owned) ropex__free(m->aux);
    ropex__free(m->pack);
    ropex__model_reset(m);
}

ROPEX_API const char *ropex_model_error(const ropex_model *m) {
    if (!m) return "no model";
    return m->error ? m->error : "";
}

/* ===================================================================== */
/* >> implementation: tokenizer                                          */
/* ===================================================================== */
/* Sentencepiece BPE as llama2.c's run.c encodes: a dummy space before non-empty text, one symbol
   per UTF-8 character (byte tokens or unk when the character has no piece), then repeatedly merge
   the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties). A max-heap
   of candidate pairs with lazy invalidation does this in O(n log n) instead of run.c's O(n^2). */
typedef struct ropex__sym { int32_t start, len, prev, next, id, fixed; } ropex__sym;
typedef struct ropex__bigram { float score; int32_t left, right, len, id; } ropex__bigram;

static int32_t ropex__vocab_find(const ropex_vocab *v, const char *s, uint32_t len) {
    int lo = 0, hi = v->n_sorted;
    ropex_token key;
    key.text = s; key.len = len;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ropex__piece_cmp(&v->tokens[v->sorted[mid]], &key) < 0) lo = mid + 1; else hi = mid;
    }
    if (lo < v->n_sorted && ropex__piece_cmp(&v->tokens[v->sorted[lo]], &key) == 0) return v->sorted[lo];
    return -1;
}

static int ropex__bigram_before(const ropex__bigram *a, const ropex__bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}
static void ropex__heap_push(ropex__bigram *h, int *n, const ropex__bigram *e) {
    int i = (*n)++;
    h[i] = *e;
    while (i > 0) {
        int p = (i - 1) / 2;
        ropex__bigram tmp;
        if (!ropex__bigram_before(&h[i], &h[p])) break;
        tmp = h[i]; h[i] = h[p]; h[p] = tmp; i = p;
    }
}
static void ropex__heap_pop(ropex__bigram *h, int *n, ropex__bigram *out) {
    int i = 0;
    *out = h[0];
    h[0] = h[--(*n)];
    for (;;) {
        int c = 2 * i + 1;
        ropex__bigram tmp;
        if (c >= *n) break;
        if (c + 1 < *n && ropex__bigram_before(&h[c + 1], &h[c])) c++;
        if (!ropex__bigram_before(&h[c], &h[i])) break;
        tmp = h[i]; h[i] = h[c]; h[c] = tmp; i = c;
    }
}
static void ropex__try_pair(const ropex_vocab *v, const char *norm, const ropex__sym *sy, int32_t l, int32_t r,
                            ropex__bigram *h, int *nh) {
    ropex__bigram e;
    int32_t id;
    if (l < 0 || r < 0 || sy[l].fixed || sy[r].fixed) return;
    id = ropex__vocab_find(v, norm + sy[l].start, (uint32_t)(sy[l].len + sy[r].len));
    if (id < 0) return;
    e.score = v->tokens[id].score; e.left = l; e.right = r; e.len = sy[l].len + sy[r].len; e.id = id;
    ropex__heap_push(h, nh, &e);
}

static size_t ropex__utf8_len(uint8_t lead) {
    return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
}

/* Longest normalized text: U+2581 (3 bytes) for every byte, plus the dummy prefix. */
#define ROPEX__TOK_MAX_LEN ((size_t)0x7ffffff)
static size_t ropex__norm_max(const ropex_vocab *v, size_t len) {
    return (v && !v->space_is_u2581) ? len + 1 : 3 * len + 3;
}
/* Most symbols: one per character, except that a U+2581 without a piece of its own falls back
   to 3 byte tokens. */
static size_t ropex__sym_max(const ropex_vocab *v, size_t len) {
    if (v && v->space_is_u2581 && v->tokens && v->sorted && ropex__vocab_find(v, "\xe2\x96\x81", 3) < 0)
        return 3 * len + 3;
    return len + 1;
}

ROPEX_API size_t ropex_tokenize_work_bytes(const ropex_vocab *v, size_t len) {
    size_t nm, ns;
    if (len > ROPEX__TOK_MAX_LEN) return 0;
    nm = ropex__norm_max(v, len);
    ns = ropex__sym_max(v, len);
    /* norm text, symbols, heap (initial pairs + two per merge <= 3 per symbol) */
    return ((nm + 8) & ~(size_t)7) + ns * sizeof(ropex__sym) + 3 * ns * sizeof(ropex__bigram) + 16;
}

static ropex_status ropex__emit(int32_t *ids, int max_ids, int *count, int32_t id) {
    if (*count < max_ids && ids) ids[*count] = id;
    if (*count == INT_MAX) return ROPEX_ERR_ARG;
    (*count)++;
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_tokenize(const ropex_vocab *v, const char *text, size_t len, int add_bos,
                                      int32_t *ids, int max_ids, int *n_ids, void *work) {
    size_t wb, nm, i, nlen = 0, scap;
    char *norm;
    ropex__sym *sy;
    ropex__bigram *heap;
    int nh = 0, count = 0, ns = 0;
    int32_t s;
    void *owned = NULL;
    ropex_status st = ROPEX_OK;
    if (n_ids) *n_ids = 0;
    if (!v || !v->tokens || !v->sorted || v->n_tokens <= 0 || (!text && len) || max_ids < 0 || !n_ids ||
        (!ids && max_ids > 0) || len > ROPEX__TOK_MAX_LEN)
        return ROPEX_ERR_ARG;
    if (add_bos && v->bos_id >= 0) ropex__emit(ids, max_ids, &count, v->bos_id);
    if (len == 0) { *n_ids = count; return count > max_ids ? ROPEX_ERR_BUFFER : ROPEX_OK; }
    wb = ropex_tokenize_work_bytes(v, len);
    if (!work) {
        owned = ropex__malloc(wb);
        if (!owned) return ROPEX_ERR_NOMEM;
        work = owned;
    }
    nm = ropex__norm_max(v, len);
    norm = (char *)work;
    sy = (ropex__sym *)(void *)((char *)work + ((nm + 8) & ~(size_t)7));
    scap = ropex__sym_max(v, len);
    heap = (ropex__bigram *)(void *)(sy + scap);
    /* normalize: dummy prefix space, spaces spelled as the vocabulary spells them */
    if (v->space_is_u2581) {
        if (!v->no_space_prefix) { norm[nlen++] = '\xe2'; norm[nlen++] = '\x96'; norm[nlen++] = '\x81'; }
        for (i = 0; i < len; i++) {
            if (text[i] == ' ') { norm[nlen++] = '\xe2'; norm[nlen++] = '\x96'; norm[nlen++] = '\x81'; }
            else norm[nlen++] = text[i];
        }
    } else {
        if (!v->no_space_prefix) norm[nlen++] = ' ';
        memcpy(norm + nlen, text, len);
        nlen += len;
    }
    /* one symbol per UTF-8 character: a lead byte and at most the continuation bytes it announces
       (sentencepiece's rule; run.c also glues stray continuation bytes on, which would swallow
       the U+2581 of a space and differs only on invalid UTF-8) */
    i = 0;
    while (i < nlen) {
        size_t j = i + 1, k, cl = ropex__utf8_len((uint8_t)norm[i]);
        int32_t id;
        while (j < nlen && ((uint8_t)norm[j] & 0xC0) == 0x80 && j - i < cl) j++;
        id = ropex__vocab_find(v, norm + i, (uint32_t)(j - i));
        /* never true (see ropex__sym_max); kept so a wrong bound fails instead of overflowing */
        if ((size_t)ns + (id >= 0 ? 1 : j - i) > scap) { st = ROPEX_ERR_ARG; break; }
        if (id >= 0) {
            sy[ns].start = (int32_t)i; sy[ns].len = (int32_t)(j - i); sy[ns].id = id; sy[ns].fixed = 0; ns++;
        } else {
            int all = 1;
            for (k = i; k < j; k++) if (v->byte_token[(uint8_t)norm[k]] < 0) all = 0;
            if (all) {
                for (k = i; k < j; k++) {
                    sy[ns].start = (int32_t)k; sy[ns].len = 1; sy[ns].id = v->byte_token[(uint8_t)norm[k]];
                    sy[ns].fixed = 1; ns++;
                }
            } else if (v->unk_id >= 0 && v->unk_id < v->n_tokens) {
                sy[ns].start = (int32_t)i; sy[ns].len = (int32_t)(j - i); sy[ns].id = v->unk_id; sy[ns].fixed = 1; ns++;
            } else {
                i = j; continue;   /* nothing can stand for it: dropped */
            }
        }
        i = j;
    }
    if (st) { if (owned) ropex__free(owned); return st; }
    for (s = 0; s < ns; s++) { sy[s].prev = s - 1; sy[s].next = s + 1 < ns ? s + 1 : -1; }
    for (s = 0; s + 1 < ns; s++) ropex__try_pair(v, norm, sy, s, s + 1, heap, &nh);
    while (nh > 0) {
        ropex__bigram b;
        int32_t l, r;
        ropex__heap_pop(heap, &nh, &b);
        l = b.left; r = b.right;
        /* stale entry: one side merged away or grew since the pair was queued */
        if (sy[l].len == 0 || sy[r].len == 0 || sy[l].len + sy[r].len != b.len || sy[l].next != r) continue;
        sy[l].len += sy[r].len;
        sy[l].id = b.id;
        sy[r].len = 0;
        sy[l].next = sy[r].next;
        if (sy[r].next >= 0) sy[sy[r].next].prev = l;
        ropex__try_pair(v, norm, sy, sy[l].prev, l, heap, &nh);
        ropex__try_pair(v, norm, sy, l, sy[l].next, heap, &nh);
    }
    for (s = ns > 0 ? 0 : -1; s >= 0 && st == ROPEX_OK; s = sy[s].next) st = ropex__emit(ids, max_ids, &count, sy[s].id);
    if (owned) ropex__free(owned);
    if (st) return st;
    *n_ids = count;
    return count > max_ids ? ROPEX_ERR_BUFFER : ROPEX_OK;
}

ROPEX_API int ropex_token_to_piece(const ropex_vocab *v, int prev, int id, char *buf, int cap) {
    const ropex_token *t;
    uint32_t i = 0;
    int n = 0, b;
    if (!v || !v->tokens || id < 0 || id >= v->n_tokens || !buf || cap <= 0) return 0;
    t = &v->tokens[id];
    if (t->type == 3) return 0;   /* control tokens (BOS, EOS) print nothing */
    b = ropex__byte_piece(t->text, t->len);
    if (b >= 0 && v->byte_token[b] == id) { buf[0] = (char)b; return 1; }
    /* llama2.c's rule: after BOS the piece's leading space (the dummy prefix) is not printed */
    if (prev >= 0 && prev == v->bos_id && !v->no_space_prefix) {
        if (t->len >= 1 && t->text[0] == ' ') i = 1;
        else if (v->space_is_u2581 && t->len >= 3 && memcmp(t->text, "\xe2\x96\x81", 3) == 0) i = 3;
    }
    while (i < t->len && n < cap) {
        if (v->space_is_u2581 && t->len - i >= 3 && memcmp(t->text + i, "\xe2\x96\x81", 3) == 0) {
            buf[n++] = ' '; i += 3;
        } else {
            buf[n++] = t->text[i++];
        }
    }
    return n;
}

/* ===================================================================== */
/* >> implementation: sampler                                            */
/* ===================================================================== */
typedef struct ropex__cand { float logit; float p; int32_t id; } ropex__cand;

static uint64_t ropex__splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}
/* xorshift64* (Vigna): the state never becomes 0 when seeded nonzero. */
static uint64_t ropex__rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static double ropex__rng_unit(uint64_t *s) { return (double)(ropex__rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

ROPEX_API void ropex_sampler_init(ropex_sampler *s, float temperature, int top_k, float top_p, uint64_t seed) {
    if (!s) return;
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->rng = ropex__splitmix64(seed);
    if (s->rng == 0) s->rng = 0x9E3779B97F4A7C15ULL;
}

ROPEX_API size_t ropex_sampler_work_bytes(int n_vocab) {
    if (n_vocab <= 0 || (size_t)n_vocab > SIZE_MAX / sizeof(ropex__cand)) return 0;
    return (size_t)n_vocab * sizeof(ropex__cand);
}

/* Higher logit first, lower id on ties: the order greedy decoding uses. */
static int ropex__cand_before(const ropex__cand *a, const ropex__cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}
/* Sift for a heap whose root is the element that comes LAST in cand order. */
static void ropex__cand_sift(ropex__cand *h, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        ropex__cand tmp;
        if (c >= n) return;
        if (c + 1 < n && ropex__cand_before(&h[c], &h[c + 1])) c++;
        if (!ropex__cand_before(&h[i], &h[c])) return;
        tmp = h[i]; h[i] = h[c]; h[c] = tmp; i = c;
    }
}
/* Keeps the k first candidates (in cand order) at the front, sorted. O(n log k). */
static void ropex__cand_topk(ropex__cand *c, int n, int k) {
    int i;
    /* a heap of the k best so far, worst at the root (root = the element that comes last) */
    for (i = k / 2 - 1; i >= 0; i--) ropex__cand_sift(c, k, i);
    for (i = k; i < n; i++) {
        if (ropex__cand_before(&c[i], &c[0])) { ropex__cand tmp = c[0]; c[0] = c[i]; c[i] = tmp; ropex__cand_sift(c, k, 0); }
    }
    for (i = k - 1; i > 0; i--) { ropex__cand tmp = c[0]; c[0] = c[i]; c[i] = tmp; ropex__cand_sift(c, i, 0); }
}

static float ropex__clean_logit(float x) { return x == x ? x : -INFINITY; }

ROPEX_API int ropex_sample(ropex_sampler *s, const float *logits, int n_vocab, void *work) {
    int i, n, best = 0, k;
    float mx, inv_t;
    double sum = 0.0, r, acc;
    ropex__cand *c;
    void *owned = NULL;
    if (!s || !logits || n_vocab <= 0) return -1;
    mx = ropex__clean_logit(logits[0]);
    for (i = 1; i < n_vocab; i++) { float l = ropex__clean_logit(logits[i]); if (l > mx) { mx = l; best = i; } }
    if (!(s->temperature > 0.0f) || s->top_k == 1 || mx == -INFINITY || mx == INFINITY) return best;
    if (!work) {
        owned = ropex__malloc(ropex_sampler_work_bytes(n_vocab));
        if (!owned) return -1;
        work = owned;
    }
    c = (ropex__cand *)work;
    inv_t = 1.0f / s->temperature;
    for (i = 0; i < n_vocab; i++) {
        c[i].logit = ropex__clean_logit(logits[i]);
        c[i].id = i;
        c[i].p = (float)exp((double)((c[i].logit - mx) * inv_t));
        sum += (double)c[i].p;
    }
    n = n_vocab;
    k = s->top_k > 0 && s->top_k < n_vocab ? s->top_k : 0;
    if (k) {
        ropex__cand_topk(c, n, k);
        n = k;
    } else if (s->top_p > 0.0f && s->top_p < 1.0f) {
        /* llama2.c's shortcut: a token below (1-p)/(n-1) of the mass can never be in the nucleus */
        double thr = n_vocab > 1 ? (1.0 - (double)s->top_p) / (double)(n_vocab - 1) * sum : 0.0;
        int m = 0;
        for (i = 0; i < n_vocab; i++) if ((double)c[i].p >= thr || c[i].id == best) c[m++] = c[i];
        ropex__cand_topk(c, m, m);
        n = m;
    }
    if (k || (s->top_p > 0.0f && s->top_p < 1.0f)) {
        double tot = 0.0;
        for (i = 0; i < n; i++) tot += (double)c[i].p;
        if (s->top_p > 0.0f && s->top_p < 1.0f) {
            /* the nucleus is a share of the whole distribution (or of the top-k when both are on);
               the shortcut above dropped only tokens that cannot be in it */
            double lim = (double)s->top_p * (k ? tot : sum);
            acc = 0.0;
            for (i = 0; i < n; i++) { acc += (double)c[i].p; if (acc >= lim) { n = i + 1; break; } }
            tot = 0.0;
            for (i = 0; i < n; i++) tot += (double)c[i].p;
        }
        sum = tot;
    }
    r = ropex__rng_unit(&s->rng) * sum;
    acc = 0.0;
    best = c[n - 1].id;
    for (i = 0; i < n; i++) { acc += (double)c[i].p; if (r < acc) { best = c[i].id; break; } }
    if (owned) ropex__free(owned);
    return best;
}

/* ===================================================================== */
/* >> implementation: context and forward pass                            */
/* ===================================================================== */
#define ROPEX__CTX_ALIGN 64
#define ROPEX__CTX_MAX_BATCH 4096

/* a + b with overflow detection; *ok is cleared on overflow. */
static size_t ropex__ctx_add(size_t a, size_t b, int *ok) {
    if (a > (size_t)-1 - b) { *ok = 0; return 0; }
    return a + b;
}
static size_t ropex__ctx_mul(size_t a, size_t b, int *ok) {
    if (a != 0 && b > (size_t)-1 / a) { *ok = 0; return 0; }
    return a * b;
}
/* Size of one 64-byte aligned piece of n floats. */
static size_t ropex__ctx_piece(size_t n_floats, int *ok) {
    size_t b = ropex__ctx_mul(n_floats, sizeof(float), ok);
    b = ropex__ctx_add(b, ROPEX__CTX_ALIGN - 1, ok);
    return b & ~(size_t)(ROPEX__CTX_ALIGN - 1);
}

/* A weight tensor must be present, of a known type, and exactly rows x cols. */
static int ropex__ctx_tensor_ok(const ropex_tensor *t, int64_t cols, int64_t rows) {
    return t->data != NULL && t->cols == cols && t->rows == rows &&
           ropex_row_bytes(t->type, (size_t)cols) != 0;
}

/* The model must be loaded and its tensors must match its hyperparameters: the forward pass
   indexes them without further checks. */
static ropex_status ropex__ctx_check_model(const ropex_model *m) {
    const ropex_hparams *hp;
    int l;
    int64_t qd, kvd;
    if (!m) return ROPEX_ERR_ARG;
    hp = &m->hp;
    if (hp->dim <= 0 || hp->hidden_dim <= 0 || hp->n_layers <= 0 || hp->n_layers > ROPEX_MAX_LAYERS ||
        hp->n_heads <= 0 || hp->n_kv_heads <= 0 || hp->n_heads % hp->n_kv_heads != 0 ||
        hp->head_dim <= 0 || hp->vocab_size <= 0 || !(hp->rms_eps >= 0.0f))
        return ROPEX_ERR_ARG;
    qd = (int64_t)hp->n_heads * hp->head_dim;
    kvd = (int64_t)hp->n_kv_heads * hp->head_dim;
    if (!ropex__ctx_tensor_ok(&m->tok_embd, hp->dim, hp->vocab_size) ||
        !ropex__ctx_tensor_ok(&m->output_norm, hp->dim, 1) ||
        !ropex__ctx_tensor_ok(&m->output, hp->dim, hp->vocab_size))
        return ROPEX_ERR_FORMAT;
    for (l = 0; l < hp->n_layers; l++) {
        const ropex_layer_weights *w = &m->layers[l];
        if (!ropex__ctx_tensor_ok(&w->attn_norm, hp->dim, 1) || !ropex__ctx_tensor_ok(&w->ffn_norm, hp->dim, 1) ||
            !ropex__ctx_tensor_ok(&w->wq, hp->dim, qd) || !ropex__ctx_tensor_ok(&w->wk, hp->dim, kvd) ||
            !ropex__ctx_tensor_ok(&w->wv, hp->dim, kvd) || !ropex__ctx_tensor_ok(&w->wo, qd, hp->dim) ||
            !ropex__ctx_tensor_ok(&w->w_gate, hp->dim, hp->hidden_dim) ||
            !ropex__ctx_tensor_ok(&w->w_up, hp->dim, hp->hidden_dim) ||
            !ropex__ctx_tensor_ok(&w->w_down, hp->hidden_dim, hp->dim))
            return ROPEX_ERR_FORMAT;
    }
    return ROPEX_OK;
}

/* A user RoPE config inherits what only the model knows: its trained context and pre-training base. */
static void ropex__ctx_rope_defaults(const ropex_model *m, ropex_rope_config *r) {
    if (r->train_ctx == 0) r->train_ctx = m->hp.rope.train_ctx;
    if (r->train_ctx == 0) r->train_ctx = m->hp.file_ctx;
    if (r->train_base == 0.0) {
        r->train_base = m->hp.rope.train_base != 0.0 ? m->hp.rope.train_base : m->hp.rope.base;
        if (r->train_base == 0.0) r->train_base = 10000.0;
    }
}

ROPEX_API ropex_status ropex_ctx_resolve_config(const ropex_model *m, const ropex_ctx_config *cfg,
                                                ropex_ctx_config *out) {
    ropex_ctx_config r;
    ropex_status st = ropex__ctx_check_model(m);
    int train;
    if (st != ROPEX_OK) return st;
    if (!out) return ROPEX_ERR_ARG;
    memset(&r, 0, sizeof(r));
    if (cfg) r = *cfg;
    if (r.rope.head_dim == 0) {
        r.rope = m->hp.rope;
        if (r.rope.head_dim == 0) r.rope.head_dim = m->hp.head_dim;
    }
    if (r.rope.head_dim != m->hp.head_dim) return ROPEX_ERR_ARG;
    ropex__ctx_rope_defaults(m, &r.rope);
    if (ropex_rope_validate(&r.rope, NULL) != ROPEX_OK) return ROPEX_ERR_ARG;
    if (r.kv_size == 0) {
        /* The longer of the trained and the file's context: GGUF files converted by llama.cpp's
           llama2.c tool say 128 whatever the model was trained at. */
        train = r.rope.train_ctx > m->hp.file_ctx ? r.rope.train_ctx : m->hp.file_ctx;
        r.kv_size = train > 0 ? train : 512;
    }
    if (r.kv_size < 1 || r.n_sink < 0 || r.n_sink >= r.kv_size) return ROPEX_ERR_ARG;
    if (r.kv_type != ROPEX_F32 && r.kv_type != ROPEX_F16 && r.kv_type != ROPEX_Q8_0) return ROPEX_ERR_ARG;
    if (r.positions != ROPEX_POS_TEXT && r.positions != ROPEX_POS_CACHE) return ROPEX_ERR_ARG;
    if (r.max_batch == 0) r.max_batch = 64;
    if (r.max_batch < 1 || r.max_batch > ROPEX__CTX_MAX_BATCH) return ROPEX_ERR_ARG;
    *out = r;
    return ROPEX_OK;
}

static void ropex__ctx_kv_config(const ropex_model *m, const ropex_ctx_config *r, ropex_kv_config *kc) {
    memset(kc, 0, sizeof(*kc));
    kc->n_layers = m->hp.n_layers;
    kc->n_kv_heads = m->hp.n_kv_heads;
    kc->head_dim = m->hp.head_dim;
    kc->capacity = r->kv_size;
    kc->n_sink = r->n_sink;
    kc->k_type = r->kv_type;
    kc->v_type = r->kv_type;
    kc->positions = r->positions;
}

/* Largest matmul scratch over every weight the forward pass multiplies, for n vectors. */
static size_t ropex__ctx_work_bytes(const ropex_model *m, size_t n) {
    size_t best = 0, b;
    int l, i;
    b = ropex_matmul_work_bytes(m->output.type, (size_t)m->output.cols, n);
    if (b > best) best = b;
    for (l = 0; l < m->hp.n_layers; l++) {
        const ropex_layer_weights *w = &m->layers[l];
        const ropex_tensor *ts[7];
        ts[0] = &w->wq; ts[1] = &w->wk; ts[2] = &w->wv; ts[3] = &w->wo;
        ts[4] = &w->w_gate; ts[5] = &w->w_up; ts[6] = &w->w_down;
        for (i = 0; i < 7; i++) {
            b = ropex_matmul_work_bytes(ts[i]->type, (size_t)ts[i]->cols, n);
            if (b > best) best = b;
        }
    }
    return best;
}

/* Layout of the context memory: offsets of each piece from the 64-byte aligned base.
   Returns the total (including slack for aligning an unaligned caller buffer), 0 on error. */
typedef struct ropex__ctx_layout {
    size_t x, xb, xb2, q, k, v, att, hb, hb2, logits, normw, work, kv, total;
    size_t work_bytes, kv_bytes;
} ropex__ctx_layout;

static size_t ropex__ctx_plan(const ropex_model *m, const ropex_ctx_config *r, ropex__ctx_layout *L) {
    ropex_kv_config kc;
    int ok = 1;
    size_t B = (size_t)r->max_batch, off = 0;
    size_t dim = (size_t)m->hp.dim, hid = (size_t)m->hp.hidden_dim;
    size_t qd = (size_t)m->hp.n_heads * (size_t)m->hp.head_dim;
    size_t kvd = (size_t)m->hp.n_kv_heads * (size_t)m->hp.head_dim;
    size_t p_dim = ropex__ctx_piece(ropex__ctx_mul(B, dim, &ok), &ok);
    size_t p_qd = ropex__ctx_piece(ropex__ctx_mul(B, qd, &ok), &ok);
    size_t p_kvd = ropex__ctx_piece(ropex__ctx_mul(B, kvd, &ok), &ok);
    size_t p_hid = ropex__ctx_piece(ropex__ctx_mul(B, hid, &ok), &ok);
    ropex__ctx_kv_config(m, r, &kc);
    L->kv_bytes = ropex_kv_bytes(&kc);
    if (L->kv_bytes == 0) return 0;
    L->work_bytes = ropex__ctx_work_bytes(m, B);
    L->x = off;      off = ropex__ctx_add(off, p_dim, &ok);
    L->xb = off;     off = ropex__ctx_add(off, p_dim, &ok);
    L->xb2 = off;    off = ropex__ctx_add(off, p_dim, &ok);
    L->q = off;      off = ropex__ctx_add(off, p_qd, &ok);
    L->att = off;    off = ropex__ctx_add(off, p_qd, &ok);
    L->k = off;      off = ropex__ctx_add(off, p_kvd, &ok);
    L->v = off;      off = ropex__ctx_add(off, p_kvd, &ok);
    L->hb = off;     off = ropex__ctx_add(off, p_hid, &ok);
    L->hb2 = off;    off = ropex__ctx_add(off, p_hid, &ok);
    L->logits = off; off = ropex__ctx_add(off, ropex__ctx_piece((size_t)m->hp.vocab_size, &ok), &ok);
    L->normw = off;  off = ropex__ctx_add(off, ropex__ctx_piece(dim, &ok), &ok);
    L->work = off;
    off = ropex__ctx_add(off, ropex__ctx_add(L->work_bytes, ROPEX__CTX_ALIGN - 1, &ok) & ~(size_t)(ROPEX__CTX_ALIGN - 1), &ok);
    L->kv = off;
    off = ropex__ctx_add(off, ropex__ctx_add(L->kv_bytes, ROPEX__CTX_ALIGN - 1, &ok) & ~(size_t)(ROPEX__CTX_ALIGN - 1), &ok);
    L->total = ropex__ctx_add(off, ROPEX__CTX_ALIGN - 1, &ok);   /* slack to align the caller's base */
    return ok ? L->total : 0;
}

ROPEX_API size_t ropex_ctx_bytes(const ropex_model *m, const ropex_ctx_config *cfg) {
    ropex_ctx_config r;
    ropex__ctx_layout L;
    if (ropex_ctx_resolve_config(m, cfg, &r) != ROPEX_OK) return 0;
    return ropex__ctx_plan(m, &r, &L);
}

ROPEX_API ropex_status ropex_ctx_init(ropex_ctx *c, const ropex_model *m, const ropex_ctx_config *cfg,
                                      void *mem, size_t bytes) {
    ropex_ctx_config r;
    ropex__ctx_layout L;
    ropex_kv_config kc;
    ropex_status st;
    unsigned char *base;
    size_t pad;
    if (!c) return ROPEX_ERR_ARG;
    st = ropex_ctx_resolve_config(m, cfg, &r);
    if (st != ROPEX_OK) return st;
    if (ropex__ctx_plan(m, &r, &L) == 0) return ROPEX_ERR_ARG;
    if (!mem) return ROPEX_ERR_ARG;
    pad = (size_t)((ROPEX__CTX_ALIGN - ((uintptr_t)mem & (ROPEX__CTX_ALIGN - 1))) & (ROPEX__CTX_ALIGN - 1));
    if (bytes < L.total - (ROPEX__CTX_ALIGN - 1) + pad) return ROPEX_ERR_BUFFER;
    base = (unsigned char *)mem + pad;
    memset(c, 0, sizeof(*c));
    c->model = m;
    c->cfg = r;
    c->max_batch = r.max_batch;
    /* Never more new tokens in one attention call than the ring can hold. */
    c->chunk = r.max_batch < r.kv_size - r.n_sink ? r.max_batch : r.kv_size - r.n_sink;
    c->x = (float *)(void *)(base + L.x);
    c->xb = (float *)(void *)(base + L.xb);
    c->xb2 = (float *)(void *)(base + L.xb2);
    c->q = (float *)(void *)(base + L.q);
    c->att_out = (float *)(void *)(base + L.att);
    c->k = (float *)(void *)(base + L.k);
    c->v = (float *)(void *)(base + L.v);
    c->hb = (float *)(void *)(base + L.hb);
    c->hb2 = (float *)(void *)(base + L.hb2);
    c->logits = (float *)(void *)(base + L.logits);
    c->normw = (float *)(void *)(base + L.normw);
    c->work = L.work_bytes ? (void *)(base + L.work) : NULL;
    c->work_bytes = L.work_bytes;
    c->mem = mem;
    c->mem_owned = 0;
    c->mem_bytes = L.total - (ROPEX__CTX_ALIGN - 1) + pad;
    c->kv_bytes = L.kv_bytes;
    memset(c->logits, 0, sizeof(float) * (size_t)m->hp.vocab_size);
    ropex__ctx_kv_config(m, &r, &kc);
    st = ropex_kv_init(&c->kv, &kc, &r.rope, base + L.kv, L.kv_bytes);
    if (st != ROPEX_OK) { memset(c, 0, sizeof(*c)); return st; }
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_ctx_create(ropex_ctx *c, const ropex_model *m, const ropex_ctx_config *cfg) {
    size_t n;
    void *mem;
    ropex_status st;
    if (!c) return ROPEX_ERR_ARG;
    memset(c, 0, sizeof(*c));
    {
        ropex_ctx_config r;
        st = ropex_ctx_resolve_config(m, cfg, &r);
        if (st != ROPEX_OK) return st;
    }
    n = ropex_ctx_bytes(m, cfg);
    if (n == 0) return ROPEX_ERR_ARG;
    mem = ropex__malloc(n);
    if (!mem) return ROPEX_ERR_NOMEM;
    st = ropex_ctx_init(c, m, cfg, mem, n);
    if (st != ROPEX_OK) { ropex__free(mem); return st; }
    c->mem_owned = 1;
    return ROPEX_OK;
}

ROPEX_API void ropex_ctx_free(ropex_ctx *c) {
    if (!c) return;
    if (c->mem_owned) ropex__free(c->mem);
    memset(c, 0, sizeof(*c));
}

ROPEX_API int64_t ropex_ctx_n_past(const ropex_ctx *c) { return c && c->model ? c->kv.n_past : 0; }

ROPEX_API ropex_status ropex_ctx_set_rope(ropex_ctx *c, const ropex_rope_config *rope) {
    ropex_rope_config r;
    ropex_status st;
    if (!c || !c->model || !rope) return ROPEX_ERR_ARG;
    r = *rope;
    if (r.head_dim != c->model->hp.head_dim) return ROPEX_ERR_ARG;
    ropex__ctx_rope_defaults(c->model, &r);
    if (ropex_rope_validate(&r, NULL) != ROPEX_OK) return ROPEX_ERR_ARG;
    st = ropex_kv_set_rope(&c->kv, &r);
    if (st == ROPEX_OK) c->cfg.rope = r;
    return st;
}

ROPEX_API void ropex_ctx_reset(ropex_ctx *c) {
    if (c && c->model) ropex_kv_reset(&c->kv);
}

/* out[i] = w * x[i] / sqrt(mean(x[i]^2) + eps) for n rows of d; the sum of squares in double
   so the result does not depend on the summation order's rounding. */
static void ropex__ctx_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
    int i, j;
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * (size_t)d;
        float *oi = out + (size_t)i * (size_t)d;
        double ss = 0.0;
        float s;
        for (j = 0; j < d; j++) ss += (double)xi[j] * (double)xi[j];
        s = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        for (j = 0; j < d; j++) oi[j] = w[j] * (s * xi[j]);
    }
}

static ropex_status ropex__ctx_matmul(ropex_ctx *c, const ropex_tensor *t, const float *x, int n, float *y,
                                      ropex_threads *th) {
    if (n == 1)
        return ropex_matvec(t->type, t->data, (size_t)t->rows, (size_t)t->cols, x, y, c->work, th);
    return ropex_matmul(t->type, t->data, (size_t)t->rows, (size_t)t->cols, x, (size_t)n, y, c->work, th);
}

/* y_a = A x, y_b = B x and, when C is given, y_c = C x: one dispatch to the pool (same results as
   three ropex__ctx_matmul calls; x quantized once when the weights share a base type). */
static ropex_status ropex__ctx_matmul3(ropex_ctx *c, const ropex_tensor *A, const ropex_tensor *B, const ropex_tensor *C,
                                       const float *x, int n, float *ya, float *yb, float *yc, ropex_threads *th) {
    ropex_type t[3];
    const void *w[3];
    size_t rows[3];
    float *y[3];
    t[0] = A->type; t[1] = B->type; w[0] = A->data; w[1] = B->data;
    rows[0] = (size_t)A->rows; rows[1] = (size_t)B->rows; y[0] = ya; y[1] = yb;
    if (C) { t[2] = C->type; w[2] = C->data; rows[2] = (size_t)C->rows; y[2] = yc; }
    else { t[2] = t[0]; w[2] = NULL; rows[2] = 0; y[2] = NULL; }
    if (A->cols != B->cols || (C && C->cols != A->cols)) return ROPEX_ERR_ARG;
    return ropex__matmul_group(t, w, rows, (size_t)A->cols, x, (size_t)n, y, C ? 3 : 2, c->work, th, 0);
}

/* SwiGLU of one token's row: g[j] = silu(g[j]) * u[j] = g / (1 + exp(-g)) * u. AVX2 evaluates exp
   eight lanes at a time (ropex__exp8, ~1 ulp); the row's last n % 8 values and other builds use
   expf. Column j always takes the same path, so no result depends on how tokens are chunked. */
static void ropex__swiglu_row(float *g, const float *u, size_t n) {
    size_t j = 0;
#if defined(ROPEX__ATT_AVX2)
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 x = _mm256_loadu_ps(g + j);
        __m256 e = ropex__exp8(_mm256_sub_ps(zero, x));
        _mm256_storeu_ps(g + j, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + j)));
    }
#endif
    for (; j < n; j++) g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
}

/* One chunk of nt tokens through every layer; leaves the final hidden states in c->x. */
static ropex_status ropex__ctx_layers(ropex_ctx *c, const int32_t *tok, int nt, ropex_threads *th) {
    const ropex_model *m = c->model;
    const ropex_hparams *hp = &m->hp;
    size_t dim = (size_t)hp->dim, hid = (size_t)hp->hidden_dim;
    size_t erow = ropex_row_bytes(m->tok_embd.type, dim);
    ropex_status st;
    size_t i, n = (size_t)nt;
    int l;
    for (i = 0; i < n; i++) {
        st = ropex_dequantize(m->tok_embd.type, (const unsigned char *)m->tok_embd.data + (size_t)tok[i] * erow,
                              c->x + i * dim, dim);
        if (st != ROPEX_OK) return st;
    }
    for (l = 0; l < hp->n_layers; l++) {
        const ropex_layer_weights *w = &m->layers[l];
        if ((st = ropex_dequantize(w->attn_norm.type, w->attn_norm.data, c->normw, dim)) != ROPEX_OK) return st;
        ropex__ctx_rmsnorm(c->xb, c->x, c->normw, nt, hp->dim, hp->rms_eps);
        if ((st = ropex__ctx_matmul3(c, &w->wq, &w->wk, &w->wv, c->xb, nt, c->q, c->k, c->v, th)) != ROPEX_OK) return st;
        st = ropex_attention(&c->kv, l, hp->n_heads, c->q, c->k, c->v, nt, c->att_out, th);
        if (st != ROPEX_OK) return st;
        if ((st = ropex__ctx_matmul(c, &w->wo, c->att_out, nt, c->xb2, th)) != ROPEX_OK) return st;
        for (i = 0; i < n * dim; i++) c->x[i] += c->xb2[i];

        if ((st = ropex_dequantize(w->ffn_norm.type, w->ffn_norm.data, c->normw, dim)) != ROPEX_OK) return st;
        ropex__ctx_rmsnorm(c->xb, c->x, c->normw, nt, hp->dim, hp->rms_eps);
        if ((st = ropex__ctx_matmul3(c, &w->w_gate, &w->w_up, NULL, c->xb, nt, c->hb, c->hb2, NULL, th)) != ROPEX_OK)
            return st;
        for (i = 0; i < n; i++) ropex__swiglu_row(c->hb + i * hid, c->hb2 + i * hid, hid);
        if ((st = ropex__ctx_matmul(c, &w->w_down, c->hb, nt, c->xb2, th)) != ROPEX_OK) return st;
        for (i = 0; i < n * dim; i++) c->x[i] += c->xb2[i];
    }
    return ROPEX_OK;
}

ROPEX_API ropex_status ropex_eval(ropex_ctx *c, const int32_t *tokens, int n, float *logits_all, ropex_threads *th) {
    const ropex_model *m;
    size_t dim, vocab;
    ropex_status st;
    int s, i;
    if (!c || !c->model || n < 0 || (n > 0 && !tokens)) return ROPEX_ERR_ARG;
    if (n == 0) return ROPEX_OK;
    m = c->model;
    dim = (size_t)m->hp.dim;
    vocab = (size_t)m->hp.vocab_size;
    /* Reject bad ids before any state changes, so an error leaves the context as it was. */
    for (i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.vocab_size) return ROPEX_ERR_ARG;
    for (s = 0; s < n; s += c->chunk) {
        int nt = n - s < c->chunk ? n - s : c->chunk;
        int last = s + nt == n;
        st = ropex__ctx_layers(c, tokens + s, nt, th);
        if (st != ROPEX_OK) return st;
        st = ropex_kv_advance(&c->kv, nt);
        if (st != ROPEX_OK) return st;
        if (!logits_all && !last) continue;
        if ((st = ropex_dequantize(m->output_norm.type, m->output_norm.data, c->normw, dim)) != ROPEX_OK) return st;
        if (logits_all) {
            float *out = logits_all + (size_t)s * vocab;
            ropex__ctx_rmsnorm(c->xb, c->x, c->normw, nt, m->hp.dim, m->hp.rms_eps);
            if ((st = ropex__ctx_matmul(c, &m->output, c->xb, nt, out, th)) != ROPEX_OK) return st;
            if (last) memcpy(c->logits, out + (size_t)(nt - 1) * vocab, vocab * sizeof(float));
        } else {
            ropex__ctx_rmsnorm(c->xb, c->x + (size_t)(nt - 1) * dim, c->normw, 1, m->hp.dim, m->hp.rms_eps);
            if ((st = ropex__ctx_matmul(c, &m->output, c->xb, 1, c->logits, th)) != ROPEX_OK) return st;
        }
    }
    return ROPEX_OK;
}
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
