/* Footprint probe for the size report: a firmware that references only the kernel API (quant,
   matmul, rope, kv cache, attention), linked with --gc-sections. Its text minus that of an empty
   main (KERNELS_BASELINE) is what the kernels cost in flash. Never run. */
#include "ropex.h"

#ifdef KERNELS_BASELINE
int main(void) { return 0; }
#else
typedef void (*ropex__any_fn)(void);
volatile ropex__any_fn ropex__keep[] = {
    (ropex__any_fn)ropex_fp32_to_fp16, (ropex__any_fn)ropex_fp16_to_fp32,
    (ropex__any_fn)ropex_quantize, (ropex__any_fn)ropex_dequantize, (ropex__any_fn)ropex_row_bytes,
    (ropex__any_fn)ropex_matmul_work_bytes, (ropex__any_fn)ropex_matvec, (ropex__any_fn)ropex_matmul,
    (ropex__any_fn)ropex_rope_table_init, (ropex__any_fn)ropex_rope_apply_q, (ropex__any_fn)ropex_rope_apply_k,
    (ropex__any_fn)ropex_rope_rerotate, (ropex__any_fn)ropex_kv_bytes, (ropex__any_fn)ropex_kv_init,
    (ropex__any_fn)ropex_kv_set_rope, (ropex__any_fn)ropex_attention, (ropex__any_fn)ropex_kv_advance
};
int main(void) { return ropex__keep[0] == 0; }
#endif
