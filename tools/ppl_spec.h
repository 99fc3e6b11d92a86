/* ropex-ppl settings: the `--compare` spec syntax, shared by tools/ropex-ppl.c and tests/test_ppl.c
   (so the reference test checks exactly the configurations the tool runs).

   A spec is one or more terms joined by '+'; each term modifies the configuration given by the
   command-line RoPE/KV options, left to right:

     plain | none          plain RoPE: the model's base, no scaling, no truncation, no log-n, full cache
     base:B                runtime base B (the pre-training base stays the model's, for the critical dim)
     linear:S              position interpolation by S
     ntk:A                 static NTK, alpha A (base * A^(d/(d-2)))
     dynamic[:S]           Hugging Face continuous dynamic NTK, factor S (default 1)
     dynamic-qwen          Qwen discrete dynamic NTK (alpha 1, 3, 7, 15, ...)
     yarn:S                YaRN, factor S (Hugging Face v5: beta 32/1, truncate, mscale 0.1 ln S + 1)
     llama3:S              Llama 3.1 band-wise scaling, factor S (low 1, high 4)
     giraffe:power=P[,trunc=T][,s=S]   Giraffe power basis / truncated basis (+ linear S)
     truncate-clamp | clamp   pairs beyond the critical dimension use position min(p, train_ctx-1)
     truncate-zero | zero     pairs beyond the critical dimension are zeroed in q and k
     logn[:L]              log-n query scaling, q *= max(1, ln(p+1)/ln(L)), L default train_ctx
     stream:kv=C[,sinks=S][,pos=cache|text]   ring KV cache of C tokens (sinks included),
                           S attention sinks (default 4), positions cache slots (default) or text
     kv-type:f32|f16|q8_0  KV storage type
     train:N               trained context N for this setting (L0 of YaRN/dynamic, clamp, log-n)

   Examples: "plain"  "ntk:4+logn"  "yarn:4"  "stream:sinks=4,kv=256,pos=text"  "base:40000+truncate-clamp".
   Without a stream term the cache holds every scored token (kv_size = N). */
#ifndef ROPEX_PPL_SPEC_H
#define ROPEX_PPL_SPEC_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* A parsed setting: the context config to run, plus what the plot needs. */
typedef struct ppl_setting {
    char spec[160];
    ropex_ctx_config cfg;
    int ring;               /* 1 = a stream term set a ring smaller than the scored length */
} ppl_setting;

/* Parses a number that must be entirely consumed; 0 on success. */
static int ppl_num(const char *s, size_t len, double *out)
{
    char buf[64];
    char *end;
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    *out = strtod(buf, &end);
    if (end != buf + len || !(*out == *out) || fabs(*out) > 1e300) return -1;
    return 0;
}

static int ppl_int(const char *s, size_t len, int lo, int hi, int *out)
{
    double v;
    if (ppl_num(s, len, &v) != 0 || v != floor(v) || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int ppl_is(const char *name, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(name, word, len) == 0;
}

/* Looks up key=value in a comma list "k=v,k=v"; returns the value pointer and length, or NULL. */
static const char *ppl_kv(const char *args, size_t alen, const char *key, size_t *vlen)
{
    size_t i = 0, klen = strlen(key);
    while (i < alen) {
        size_t j = i, eq;
        while (j < alen && args[j] != ',') j++;
        eq = i;
        while (eq < j && args[eq] != '=') eq++;
        if (eq < j && eq - i == klen && memcmp(args + i, key, klen) == 0) {
            *vlen = j - eq - 1;
            return args + eq + 1;
        }
        i = j + 1;
    }
    return NULL;
}

/* Every key in a comma list must be one of `keys` (space separated); returns the bad key or NULL. */
static int ppl_keys_ok(const char *args, size_t alen, const char *keys, char *bad, size_t badcap)
{
    size_t i = 0;
    while (i < alen) {
        size_t j = i, eq;
        const char *k = keys;
        int found = 0;
        while (j < alen && args[j] != ',') j++;
        eq = i;
        while (eq < j && args[eq] != '=') eq++;
        while (*k) {
            size_t n = 0;
            while (k[n] && k[n] != ' ') n++;
            if (n == eq - i && memcmp(k, args + i, n) == 0 && eq < j) found = 1;
            k += n;
            while (*k == ' ') k++;
        }
        if (!found) {
            size_t n = j - i < badcap - 1 ? j - i : badcap - 1;
            memcpy(bad, args + i, n);
            bad[n] = 0;
            return 0;
        }
        i = j + 1;
    }
    return 1;
}

/* Formats an error message; messages are truncated to the caller's buffer on purpose. */
static void ppl_errf(char *err, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Applies one spec to `base` (the command-line config; its rope holds the model's settings plus
   command-line options, train_base set). model_base is the model's own RoPE base; n_tokens the
   scored length (the cache size of settings without a ring). Returns 0, or -1 with a message. */
static int ppl_apply_spec(const char *spec, const ropex_ctx_config *base, double model_base, int n_tokens,
                          ppl_setting *out, char *err, size_t errcap)
{
    const char *p = spec;
    ropex_ctx_config c = *base;
    const char *msg = NULL;
    memset(out, 0, sizeof *out);
    if (strlen(spec) >= sizeof out->spec) { ppl_errf(err, errcap, "spec too long: %.200s", spec); return -1; }
    strcpy(out->spec, spec);
    if (!*p) { ppl_errf(err, errcap, "empty spec"); return -1; }
    while (*p) {
        const char *end = strchr(p, '+'), *colon, *args = "";
        size_t tlen, nlen, alen = 0;
        double v = 0;
        char bad[64];
        if (!end) end = p + strlen(p);
        tlen = (size_t)(end - p);
        colon = (const char *)memchr(p, ':', tlen);
        nlen = colon ? (size_t)(colon - p) : tlen;
        if (colon) { args = colon + 1; alen = (size_t)(end - args); }
#define PPL_BAD(what) do { ppl_errf(err, errcap, "bad term '%.*s' in spec '%.200s': %s", (int)tlen, p, spec, what); \
                           return -1; } while (0)
#define PPL_NOARGS() do { if (colon) PPL_BAD("takes no argument"); } while (0)
#define PPL_FACTOR(lo) do { if (!colon || ppl_num(args, alen, &v) != 0 || !(v >= (lo)) || v > 1e9) \
                              PPL_BAD("needs a number >= " #lo); } while (0)
        if (ppl_is(p, nlen, "plain") || ppl_is(p, nlen, "none")) {
            PPL_NOARGS();
            c.rope.scaling = ROPEX_SCALE_NONE;
            c.rope.factor = 0;
            c.rope.base = model_base;
            c.rope.truncate = ROPEX_TRUNC_NONE;
            c.rope.logn = 0;
            c.rope.logn_ctx = 0;
            c.kv_size = n_tokens;
            c.n_sink = 0;
            c.positions = ROPEX_POS_TEXT;
            out->ring = 0;
        } else if (ppl_is(p, nlen, "base")) {
            PPL_FACTOR(1e-9);
            c.rope.base = v;
        } else if (ppl_is(p, nlen, "linear")) {
            PPL_FACTOR(1);
            c.rope.scaling = ROPEX_SCALE_LINEAR; c.rope.factor = v;
        } else if (ppl_is(p, nlen, "ntk")) {
            PPL_FACTOR(1);
            c.rope.scaling = ROPEX_SCALE_NTK; c.rope.factor = v;
        } else if (ppl_is(p, nlen, "dynamic")) {
            v = 1;
            if (colon) PPL_FACTOR(1);
            c.rope.scaling = ROPEX_SCALE_DYNAMIC; c.rope.factor = v;
        } else if (ppl_is(p, nlen, "dynamic-qwen")) {
            PPL_NOARGS();
            c.rope.scaling = ROPEX_SCALE_DYNAMIC_QWEN; c.rope.factor = 0;
        } else if (ppl_is(p, nlen, "yarn")) {
            PPL_FACTOR(1);
            c.rope.scaling = ROPEX_SCALE_YARN; c.rope.factor = v;
        } else if (ppl_is(p, nlen, "llama3")) {
            PPL_FACTOR(1);
            c.rope.scaling = ROPEX_SCALE_LLAMA3; c.rope.factor = v;
        } else if (ppl_is(p, nlen, "giraffe")) {
            const char *s;
            size_t sl;
            int t;
            if (!colon || !ppl_keys_ok(args, alen, "power trunc s", bad, sizeof bad)) PPL_BAD("keys: power, trunc, s");
            c.rope.scaling = ROPEX_SCALE_GIRAFFE;
            c.rope.factor = 0; c.rope.giraffe_power = 0; c.rope.giraffe_truncate = 0;
            if ((s = ppl_kv(args, alen, "power", &sl)) != NULL) {
                if (ppl_num(s, sl, &v) != 0 || !(v >= 0) || v > 100) PPL_BAD("power must be >= 0");
                c.rope.giraffe_power = v;
            }
            if ((s = ppl_kv(args, alen, "trunc", &sl)) != NULL) {
                if (ppl_int(s, sl, 1, 1 << 30, &t) != 0) PPL_BAD("trunc must be a length >= 1");
                c.rope.giraffe_truncate = t;
            }
            if ((s = ppl_kv(args, alen, "s", &sl)) != NULL) {
                if (ppl_num(s, sl, &v) != 0 || !(v >= 1) || v > 1e9) PPL_BAD("s must be >= 1");
                c.rope.factor = v;
            }
        } else if (ppl_is(p, nlen, "truncate-clamp") || ppl_is(p, nlen, "clamp")) {
            PPL_NOARGS();
            c.rope.truncate = ROPEX_TRUNC_CLAMP;
        } else if (ppl_is(p, nlen, "truncate-zero") || ppl_is(p, nlen, "zero")) {
            PPL_NOARGS();
            c.rope.truncate = ROPEX_TRUNC_ZERO;
        } else if (ppl_is(p, nlen, "logn")) {
            int l = 0;
            if (colon && ppl_int(args, alen, 2, 1 << 30, &l) != 0) PPL_BAD("length must be an integer >= 2");
            c.rope.logn = 1; c.rope.logn_ctx = l;
        } else if (ppl_is(p, nlen, "stream")) {
            const char *s;
            size_t sl;
            int kv = 0, sinks = 4;
            if (!colon || !ppl_keys_ok(args, alen, "kv sinks pos", bad, sizeof bad)) PPL_BAD("keys: kv, sinks, pos");
            s = ppl_kv(args, alen, "kv", &sl);
            if (!s || ppl_int(s, sl, 1, 1 << 30, &kv) != 0) PPL_BAD("needs kv=C (cache tokens, sinks included)");
            if ((s = ppl_kv(args, alen, "sinks", &sl)) != NULL && ppl_int(s, sl, 0, 1 << 30, &sinks) != 0)
                PPL_BAD("sinks must be an integer >= 0");
            if (sinks >= kv) PPL_BAD("sinks must be below kv");
            c.positions = ROPEX_POS_CACHE;
            if ((s = ppl_kv(args, alen, "pos", &sl)) != NULL) {
                if (sl == 4 && memcmp(s, "text", 4) == 0) c.positions = ROPEX_POS_TEXT;
                else if (!(sl == 5 && memcmp(s, "cache", 5) == 0)) PPL_BAD("pos must be cache or text");
            }
            c.kv_size = kv;
            c.n_sink = sinks;
            out->ring = kv < n_tokens;
        } else if (ppl_is(p, nlen, "kv-type")) {
            if (ppl_is(args, alen, "f32")) c.kv_type = ROPEX_F32;
            else if (ppl_is(args, alen, "f16")) c.kv_type = ROPEX_F16;
            else if (ppl_is(args, alen, "q8_0")) c.kv_type = ROPEX_Q8_0;
            else PPL_BAD("f32, f16 or q8_0");
        } else if (ppl_is(p, nlen, "train")) {
            int t;
            if (!colon || ppl_int(args, alen, 2, 1 << 30, &t) != 0) PPL_BAD("needs a length >= 2");
            c.rope.train_ctx = t;
        } else {
            PPL_BAD("unknown term (see the spec syntax in --help)");
        }
#undef PPL_BAD
#undef PPL_NOARGS
#undef PPL_FACTOR
        p = *end ? end + 1 : end;
        if (*end && !*p) { ppl_errf(err, errcap, "spec '%.200s' ends with '+'", spec); return -1; }
    }
    if (ropex_rope_validate(&c.rope, &msg) != ROPEX_OK) {
        ppl_errf(err, errcap, "spec '%.200s': %s", spec, msg ? msg : "invalid RoPE configuration");
        return -1;
    }
    out->cfg = c;
    return 0;
}

/* Rotated dims of a config (0 = head_dim). */
static int ppl_rot_dims(const ropex_rope_config *r)
{
    return r->rot_dims > 0 ? r->rot_dims : r->head_dim;
}

/* The runtime base a setting runs all pairs at, when it is a pure base change (plain, base:B, NTK),
   else 0: the scaling laws speak of a model (tuned) at one base, so only those get a limit marker. */
static double ppl_effective_base(const ropex_ctx_config *c)
{
    const ropex_rope_config *r = &c->rope;
    double b = r->base > 0 ? r->base : 10000.0;
    int d = ppl_rot_dims(r);
    if (r->truncate != ROPEX_TRUNC_NONE) return 0;
    if (c->positions == ROPEX_POS_CACHE && c->kv_size > 0 && r->train_ctx > 0 && c->kv_size <= r->train_ctx)
        return 0; /* cache positions never leave the trained window */
    if (r->scaling == ROPEX_SCALE_NONE) return b;
    if (r->scaling == ROPEX_SCALE_NTK && d > 2) return b * pow(r->factor > 0 ? r->factor : 1.0, (double)d / (d - 2));
    return 0;
}
#endif
