#!/bin/sh
# Cross-target checks behind `make test-cross` (see tests/cross.mk and ../shared TARGETS notes):
#   Linux targets: every tests/test_*.c (+ tests/impl.c) built with the strict flags for the target
#   and run under qemu-user with ROPEX_TEST_QUICK=1 through tests/run.sh;
#   Cortex-M4: the library compiled with ROPEX_NO_THREADS ROPEX_NO_STDIO ROPEX_NO_MALLOC (size printed),
#   tests/mcu_main.c and examples/firmware.c linked and run on qemu-system-arm -M mps2-an386.
# Usage: sh tests/cross/cross.sh [all | linux | mcu | TARGET...]
#   TARGET: a64-dotprod a64-neon armhf-pi2 s390x-be m4-lib m4-test m4-firmware (all), riscv64 (on request)
# Environment: CROSS_OUT (build dir, default build-cross), CROSS_TIMEOUT (seconds per target, 600),
#   CROSS_PROG_TIMEOUT (seconds per test program, 300), CROSS_JOBS (targets at once; default
#   1, or the core count when CI is set).
set -u
cd "$(dirname "$0")/../.." || exit 2
OUT=${CROSS_OUT:-build-cross}
TIMEOUT=${CROSS_TIMEOUT:-600}
PTIMEOUT=${CROSS_PROG_TIMEOUT:-300}
STRICT="-std=c99 -Wall -Wextra -pedantic -Werror -O2"
NOSYS="-DROPEX_NO_THREADS -DROPEX_NO_STDIO -DROPEX_NO_MALLOC"
M4="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
M4LIB="-std=c99 -pedantic -Os -ffunction-sections -fdata-sections -Wall -Wextra"
NE=arm-none-eabi-gcc
unset QEMU_CPU   # an empty QEMU_CPU is an error for qemu-user; a set one would override -cpu

t_all=$(date +%s)
R=$OUT/results; mkdir -p "$R"
# Each target leaves its verdict in $R/<target> (targets may run in parallel subshells).
ok()      { echo pass > "$R/$1"; echo "== PASS $1 ($(( $(date +%s) - t0 ))s)"; }
bad()     { echo "fail: $2" > "$R/$1"; echo "== FAIL $1: $2 ($(( $(date +%s) - t0 ))s)"; }
skipped() { echo "skip: $2" > "$R/$1"; echo "== SKIP $1: $2"; }
have()    { command -v "$1" >/dev/null 2>&1; }
# Runs a compile; on failure shows the first lines of its messages (all of them stay in $OUT/build-<target>.log).
quiet() {
    q=${QLOG:-$OUT/build.log}; mkdir -p "$OUT"
    if "$@" > "$q" 2>&1; then cat "$q"; return 0; fi
    echo "build failed: $*"; grep -v '^collect2:' "$q" | sed 's|^/usr/lib/gcc[^ ]*/ld: ||' | head -n 15
    return 1
}

# Rebuild only what changed: outputs are stale when older than any input or built with other flags.
stale() { # out inputs...
    o=$1; shift
    [ -f "$o" ] || return 0
    for i in "$@"; do [ "$o" -nt "$i" ] || return 0; done
    return 1
}
# Stale against the headers the compiler reported (-MMD) as well: tests include tools/ headers too.
stale_dep() { # out: needs out.d written by -MMD -MF out.d
    [ -f "$1" ] && [ -f "$1.d" ] || return 0
    # shellcheck disable=SC2046
    stale "$1" $(sed -e 's/^[^:]*://' -e 's/\\$//' "$1.d")
}
flagdir() { # dir "flags": empty the dir when the flags changed
    mkdir -p "$1"
    if [ ! -f "$1/.flags" ] || [ "$(cat "$1/.flags")" != "$2" ]; then
        rm -f "$1"/*; printf '%s' "$2" > "$1/.flags"
    fi
}

# ---------------------------------------------------------------- Linux targets under qemu-user
linux_target() { # name cc "flags" "runner" expected-simd required(1/0)
    name=$1 cc=$2 flags=$3 runner=$4 simd=$5 required=$6
    t0=$(date +%s)
    echo "== cross $name: $cc $flags  |  $runner"
    if ! have "$cc" || ! have "${runner%% *}"; then
        if [ "$required" = 1 ]; then bad "$name" "$cc or ${runner%% *} not installed (.ci/run installs them)"
        else skipped "$name" "$cc not installed (optional)"; fi
        return
    fi
    d=$OUT/$name
    flagdir "$d" "$cc $STRICT $flags"
    if stale "$d/impl.o" tests/impl.c ropex.h; then
        if ! quiet $cc $STRICT $flags -c tests/impl.c -o "$d/impl.o"; then
            rm -f "$d/impl.o"; bad "$name" "tests/impl.c does not compile"; return
        fi
    fi
    bins=""; berr=""
    for s in tests/test_*.c; do
        [ -f "$s" ] || continue
        b=$d/$(basename "$s" .c)
        if stale_dep "$b" || stale "$b" "$d/impl.o"; then
            if ! quiet $cc $STRICT $flags -MMD -MF "$b.d" "$s" "$d/impl.o" -o "$b" -pthread -lm; then
                rm -f "$b"; berr="$berr $(basename "$s")"; continue
            fi
        fi
        bins="$bins $b"
    done
    res=0
    if stale "$d/simd_probe" tests/cross/simd_probe.c "$d/impl.o"; then
        quiet $cc $STRICT $flags tests/cross/simd_probe.c "$d/impl.o" -o "$d/simd_probe" -pthread -lm || rm -f "$d/simd_probe"
    fi
    if [ -f "$d/simd_probe" ]; then
        got=$(timeout 60 $runner "$d/simd_probe" 2>&1 | sed -n 's/^simd: //p')
        if [ "$got" = "$simd" ]; then echo "simd path: $got"
        else echo "simd path: '$got', expected '$simd'"; res=1; fi
    else
        echo "simd probe does not build"; res=1
    fi
    if [ -n "$bins" ]; then
        # shellcheck disable=SC2086
        ROPEX_TEST_QUICK=1 timeout "$TIMEOUT" sh tests/run.sh --runner "sh tests/cross/timed.sh $PTIMEOUT $runner" $bins || res=1
    else
        echo "no test programs built"
    fi
    if [ -n "$berr" ]; then bad "$name" "build failed:$berr"
    elif [ $res -ne 0 ]; then bad "$name" "tests failed (see above)"
    else ok "$name"; fi
}

# ---------------------------------------------------------------- Cortex-M4
M4OUT=$OUT/m4
qemu_m4() { # elf: runs it on the MPS2 AN386 board (Cortex-M4), prints a readable cause on failure
    timeout 120 qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel "$1" </dev/null
    rc=$?
    case $rc in
        0) ;;
        99) echo "$1: hard fault (status 99)" ;;
        98) echo "$1: unexpected exception (status 98)" ;;
        124) echo "$1: timeout after 120 s" ;;
        *) echo "$1: exit status $rc" ;;
    esac
    return $rc
}

m4_lib() {
    t0=$(date +%s)
    echo "== cross m4-lib: $NE $M4 $M4LIB -Werror $NOSYS -c tests/impl.c"
    if ! have $NE; then bad m4-lib "$NE not installed (.ci/run installs it)"; return; fi
    flagdir "$M4OUT" "$M4 $M4LIB $NOSYS"
    if stale "$M4OUT/ropex_m4.o" tests/impl.c ropex.h; then
        if ! quiet $NE $M4 $M4LIB -Werror $NOSYS -c tests/impl.c -o "$M4OUT/ropex_m4.o"; then
            rm -f "$M4OUT/ropex_m4.o"; bad m4-lib "ropex.h does not compile for Cortex-M4 with $NOSYS"; return
        fi
    fi
    # -Wdouble-promotion is a report: on fpv4-sp every double operation is a software call.
    n=$($NE $M4 $M4LIB $NOSYS -Wdouble-promotion -fsyntax-only tests/impl.c 2>&1 | tee "$M4OUT/double-promotion.txt" | grep -c 'Wdouble-promotion')
    echo "-Wdouble-promotion: $n warning(s)$( [ "$n" -gt 0 ] && echo " (first ones below; all in $M4OUT/double-promotion.txt)")"
    [ "$n" -gt 0 ] && grep 'Wdouble-promotion' "$M4OUT/double-promotion.txt" | head -n 5
    echo "size of the whole library object (every function; the linker keeps only what is used):"
    arm-none-eabi-size "$M4OUT/ropex_m4.o"
    echo "libc/libm/libgcc symbols it needs: $(arm-none-eabi-nm -u "$M4OUT/ropex_m4.o" | awk '$2 !~ /^ropex_/ {print $2}' | tr '\n' ' ')"
    # What the kernels alone cost in flash: a firmware referencing only the kernel API minus an empty one.
    if quiet m4_link "$M4OUT/kernels_only.elf" -std=c99 $NOSYS tests/cross/kernels_only.c "$M4OUT/ropex_m4.o" &&
       quiet m4_link "$M4OUT/baseline.elf" -std=c99 -DKERNELS_BASELINE tests/cross/kernels_only.c; then
        k=$(arm-none-eabi-size "$M4OUT/kernels_only.elf" | awk 'NR == 2 {print $1 + $2}')
        b=$(arm-none-eabi-size "$M4OUT/baseline.elf" | awk 'NR == 2 {print $1 + $2}')
        echo "kernels linked alone (quant, matvec/matmul, rope, kv, attention; with the libm/libgcc they pull): $((k - b)) bytes of flash"
    fi
    missing=$(arm-none-eabi-nm -u "$M4OUT/ropex_m4.o" | awk '$2 ~ /^ropex_/ {print $2}' | tr '\n' ' ')
    if [ -n "$missing" ]; then bad m4-lib "library functions declared but not compiled under $NOSYS: $missing"; return; fi
    ok m4-lib
}

m4_link() { # elf sources... (links with startup.c and the semihosting newlib)
    elf=$1; shift
    $NE $M4 -Os -Wall -Wextra -Werror -ffunction-sections -fdata-sections \
        --specs=nano.specs --specs=rdimon.specs -u _printf_float -nostartfiles -T tests/cross/mps2.ld -Wl,--gc-sections \
        -I. tests/cross/startup.c "$@" -o "$elf" -lm
}

m4_test() {
    t0=$(date +%s)
    echo "== cross m4-test: tests/mcu_main.c + the library object, on qemu-system-arm -M mps2-an386"
    if [ ! -f "$M4OUT/ropex_m4.o" ]; then bad m4-test "no library object (m4-lib failed)"; return; fi
    if ! have qemu-system-arm; then bad m4-test "qemu-system-arm not installed"; return; fi
    if stale "$M4OUT/mcu_test.elf" tests/mcu_main.c tests/test_util.h "$M4OUT/ropex_m4.o" tests/cross/startup.c tests/cross/mps2.ld; then
        if ! quiet m4_link "$M4OUT/mcu_test.elf" -std=c99 $NOSYS tests/mcu_main.c "$M4OUT/ropex_m4.o"; then
            rm -f "$M4OUT/mcu_test.elf"; bad m4-test "tests/mcu_main.c does not link"; return
        fi
    fi
    arm-none-eabi-size "$M4OUT/mcu_test.elf" | tail -n 1 | awk '{print "mcu_test.elf: text " $1 " data " $2 " bss " $3 " (includes printf and libm)"}'
    if qemu_m4 "$M4OUT/mcu_test.elf" > "$M4OUT/mcu_test.log" 2>&1; then
        tail -n 1 "$M4OUT/mcu_test.log"; ok m4-test
    else
        grep -v '^ok ' "$M4OUT/mcu_test.log" | tail -n 30; bad m4-test "tests/mcu_main.c failed on Cortex-M4"
    fi
}

m4_firmware() {
    t0=$(date +%s)
    f=examples/firmware.c
    echo "== cross m4-firmware: $f on qemu-system-arm -M mps2-an386"
    if [ ! -f $f ]; then skipped m4-firmware "$f does not exist yet"; return; fi
    if ! have $NE || ! have qemu-system-arm; then bad m4-firmware "$NE or qemu-system-arm not installed"; return; fi
    mkdir -p "$M4OUT"
    # The example is meant to be its own program: it includes the implementation and sets the
    # configuration macros itself; otherwise link it with the library object built above.
    defs=""; for m in ROPEX_NO_THREADS ROPEX_NO_STDIO ROPEX_NO_MALLOC; do
        grep -q "define[ 	]*$m" $f || defs="$defs -D$m"; done
    grep -q ROPEX_FIRMWARE_PRINT $f && defs="$defs -DROPEX_FIRMWARE_PRINT"   # its semihosting output
    if grep -q 'define[ 	]*ROPEX_IMPLEMENTATION' $f; then lib=""; else lib=$M4OUT/ropex_m4.o; fi
    # shellcheck disable=SC2086
    if ! quiet m4_link "$M4OUT/firmware.elf" -std=c99 -pedantic $defs -Iexamples $f $lib; then
        rm -f "$M4OUT/firmware.elf"; bad m4-firmware "$f does not build for Cortex-M4"; return
    fi
    arm-none-eabi-size "$M4OUT/firmware.elf" | tail -n 1 | awk '{print "firmware.elf: text " $1 " data " $2 " bss " $3}'
    if qemu_m4 "$M4OUT/firmware.elf" > "$M4OUT/firmware.log" 2>&1; then
        tail -n 8 "$M4OUT/firmware.log"; ok m4-firmware
    else
        tail -n 30 "$M4OUT/firmware.log"; bad m4-firmware "$f failed on Cortex-M4"
    fi
}

# ---------------------------------------------------------------- dispatch
A64=aarch64-linux-gnu-gcc; A32=arm-linux-gnueabihf-gcc
run_one() {
    QLOG=$OUT/build-$1.log
    case $1 in
        a64-dotprod) linux_target a64-dotprod $A64 "-march=armv8.2-a+dotprod -static" "qemu-aarch64-static" neon-dotprod 1 ;;
        a64-neon)    linux_target a64-neon $A64 "-mcpu=cortex-a72 -static" "qemu-aarch64-static -cpu cortex-a72" neon 1 ;;
        armhf-pi2)   linux_target armhf-pi2 $A32 "-mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -static" "qemu-arm-static -cpu cortex-a7" neon 1 ;;
        s390x-be)    linux_target s390x-be s390x-linux-gnu-gcc "-static" "qemu-s390x-static" scalar 1 ;;
        riscv64)     linux_target riscv64 riscv64-linux-gnu-gcc "-static" "qemu-riscv64-static" scalar 0 ;;
        m4-lib)      m4_lib ;;
        m4-test)     m4_test ;;
        m4-firmware) m4_firmware ;;
        *) t0=$(date +%s); bad "$1" "unknown target (known: $LINUX riscv64 $MCU)" ;;
    esac
}
# riscv64 (scalar, little-endian) adds little over s390x: only when asked for by name.
LINUX="a64-dotprod a64-neon armhf-pi2 s390x-be"
MCU="m4-lib m4-test m4-firmware"
[ $# -gt 0 ] || set -- all
targets=""
for a in "$@"; do
    case $a in
        all) targets="$targets $LINUX $MCU" ;;
        linux) targets="$targets $LINUX" ;;
        mcu) targets="$targets $MCU" ;;
        *) targets="$targets $a" ;;
    esac
done
# Parallel jobs: CROSS_JOBS, else the core count under CI (CI=true), else 1 (a shared machine).
JOBS=${CROSS_JOBS:-}
if [ -z "$JOBS" ]; then
    if [ -n "${CI:-}" ]; then JOBS=$(nproc 2>/dev/null || echo 1); else JOBS=1; fi
fi
for t in $targets; do rm -f "$R/$t"; done
if [ "$JOBS" -le 1 ]; then
    for t in $targets; do run_one "$t"; done
else
    # JOBS workers take work units from one queue (a unit is claimed by creating its directory,
    # which is atomic). The Cortex-M targets form one unit (seconds; m4-test needs m4-lib's object);
    # s390x (scalar, the slowest under qemu) goes first so the others fill in around it.
    echo "running $JOBS targets at a time; logs in $OUT/logs"
    mkdir -p "$OUT/logs"; rm -rf "$OUT/claim"; mkdir -p "$OUT/claim"
    units=""; mcu_unit=""
    case " $targets " in *" s390x-be "*) units="s390x-be" ;; esac
    for t in $targets; do
        case " $MCU " in *" $t "*) mcu_unit="$mcu_unit+$t"; continue ;; esac
        [ "$t" = s390x-be ] || units="$units $t"
    done
    [ -z "$mcu_unit" ] || units="$units ${mcu_unit#+}"
    w=0; pids=""
    while [ $w -lt "$JOBS" ]; do
        (
            for u in $units; do
                mkdir "$OUT/claim/$u" 2>/dev/null || continue
                for t in $(echo "$u" | tr '+' ' '); do run_one "$t" > "$OUT/logs/$t.log" 2>&1; done
            done
        ) &
        pids="$pids $!"; w=$((w + 1))
    done
    for p in $pids; do wait "$p"; done
    for t in $targets; do cat "$OUT/logs/$t.log" 2>/dev/null; done
fi
pass=0; fail=0; skip=0; failed=""
for t in $targets; do
    v=$(cat "$R/$t" 2>/dev/null || echo "fail: no result")
    case $v in
        pass) pass=$((pass + 1)) ;;
        skip*) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)); failed="$failed $t" ;;
    esac
done
echo "test-cross: $pass passed, $fail failed, $skip skipped$( [ -n "$failed" ] && echo " (failed:$failed)") in $(( $(date +%s) - t_all ))s"
[ "$fail" -eq 0 ]
