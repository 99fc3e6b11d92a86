/* Attention benchmark cases (placeholder until the attention module lands). */
#include "bench.h"
void bench_attention(const bench_env *env) { (void)env; }
