/* Minimal Cortex-M start-up for the MPS2 boards under qemu-system-arm (-semihosting -kernel).
   qemu loads the ELF segments directly, so .data needs no copy from flash; .bss is cleared here.
   Output and the exit status travel over semihosting (newlib's rdimon library). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __bss_start__, __bss_end__, __stack_top;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Reset_Handler(void) {
    uint32_t *p;
    for (p = &__bss_start__; p < &__bss_end__; p++) *p = 0;
#if defined(__ARM_FP)
    /* CPACR: full access to CP10/CP11, or the first float instruction faults (UsageFault). */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    initialise_monitor_handles();
    exit(main());
}

/* Any fault (hard, memory, bus, usage): status 99 so the runner can tell a crash from a failed test. */
static void Fault_Handler(void) { exit(99); }
static void Default_Handler(void) { exit(98); }

typedef void (*ropex__vector)(void);
__attribute__((section(".isr_vector"), used))
const ropex__vector ropex__vectors[16] = {
    (ropex__vector)(uintptr_t)&__stack_top, /* initial SP */
    Reset_Handler,
    Default_Handler,   /* NMI */
    Fault_Handler,     /* HardFault */
    Fault_Handler,     /* MemManage */
    Fault_Handler,     /* BusFault */
    Fault_Handler,     /* UsageFault */
    0, 0, 0, 0,
    Default_Handler,   /* SVCall */
    Default_Handler,   /* DebugMon */
    0,
    Default_Handler,   /* PendSV */
    Default_Handler    /* SysTick */
};
