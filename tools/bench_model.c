/* End-to-end model benchmark cases (placeholder until the runner lands). */
#include "bench.h"
void bench_model(const bench_env *env) { (void)env; }
