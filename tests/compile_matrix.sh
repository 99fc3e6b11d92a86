#!/bin/sh
# The warning wall (make test-cxx): ropex.h compiled as C99/C11 and C++11/C++17, header-only and
# implementation TUs, ROPEX_STATIC, repeated includes and every configuration macro, with -Wall
# -Wextra -pedantic -Werror, by the given compilers and clang/clang++ when installed.
# Usage: sh tests/compile_matrix.sh [CC] [CXX]     (run from anywhere; prints one line per check)
set -u
CC=${1:-cc}
CXX=${2:-c++}
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
# Scratch outside the repository: `make clean` elsewhere must not pull files from under a run.
D=$(mktemp -d "${TMPDIR:-/tmp}/ropex-matrix.XXXXXX") || exit 2
trap 'rm -rf "$D"' EXIT
W="-Wall -Wextra -pedantic -Werror"
# -O2 enables the flow-based warnings (maybe-uninitialized, array-bounds, format-truncation); it is
# used for the implementation builds that differ in code generation (language, SIMD, the NO_
# macros together). The checks that only change which declarations and branches the compiler sees
# (header only, includes, single macros, allocator) use -O0, 4x cheaper; not -fsyntax-only, which
# skips the unused-static-function warnings (emitted only when code is generated).
O2="-O2 -c"
FE="-O0 -c"
# x86-64: compile the AVX2+FMA+F16C path too (compile only: the CPU need not have it).
case $(uname -m) in x86_64|amd64) SIMD="-mavx2 -mfma -mf16c" ;; *) SIMD="" ;; esac

# ---- translation units ------------------------------------------------------------------
tu() { # name body (written as .c and .cpp)
    printf '%s\n' "$2" > $D/$1.c
    cp $D/$1.c $D/$1.cpp
}
tu impl '#define ROPEX_IMPLEMENTATION
#include "ropex.h"'
tu header '#include "ropex.h"
int ropex_matrix_user(void);
int ropex_matrix_user(void) { return ropex_status_str(ROPEX_OK) != 0 && ropex_version() != 0; }'
tu twice '#define ROPEX_IMPLEMENTATION
#include "ropex.h"
#include "ropex.h"'
tu header_then_impl '#include "ropex.h"
#define ROPEX_IMPLEMENTATION
#include "ropex.h"
#include "ropex.h"'
tu static '#define ROPEX_STATIC
#define ROPEX_IMPLEMENTATION
#include "ropex.h"
int ropex_matrix_static_user(void);
int ropex_matrix_static_user(void) { return ropex_status_str(ROPEX_OK) != 0; }'
tu static2 '#define ROPEX_STATIC
#define ROPEX_IMPLEMENTATION
#include "ropex.h"
int ropex_matrix_static_user(void);
int main(void) { return ropex_matrix_static_user() && ropex_version() != 0 ? 0 : 1; }'
tu allocator '#include <stdlib.h>
static size_t ropex_matrix_allocs;
static void *ropex_matrix_malloc(size_t n) { ropex_matrix_allocs++; return malloc(n); }
static void ropex_matrix_free(void *p) { free(p); }
#define ROPEX_MALLOC(n) ropex_matrix_malloc(n)
#define ROPEX_FREE(p) ropex_matrix_free(p)
#define ROPEX_IMPLEMENTATION
#include "ropex.h"
size_t ropex_matrix_count(void);
size_t ropex_matrix_count(void) { return ropex_matrix_allocs; }'
tu only_malloc '#include <stdlib.h>
#define ROPEX_MALLOC(n) malloc(n)
#define ROPEX_IMPLEMENTATION
#include "ropex.h"'
tu only_free '#include <stdlib.h>
#define ROPEX_FREE(p) free(p)
#define ROPEX_IMPLEMENTATION
#include "ropex.h"'

# ---- runners ------------------------------------------------------------------------------
# Each group (one compiler) has its own scratch files and verdict list, so groups may run in parallel.
G=main
ok()  { echo "ok $1" >> $D/$G.res; printf 'ok   %-58s %s\n' "$1" "${2:-}"; }
bad() { echo "FAIL $1" >> $D/$G.res; printf 'FAIL %s\n' "$1"; sed -n '1,12p' $D/$G.log; }

# check label compiler std tu extra-flags...: must compile cleanly (OPT: $O2 or $FE)
check() {
    label=$1 cc=$2 std=$3 src=$4; shift 4
    if $cc $std $W $OPT "$@" -I"$ROOT" $D/$src -o $D/$G.o > $D/$G.log 2>&1; then ok "$label"; else bad "$label"; fi
}
# must_fail label compiler std tu pattern: must NOT compile, and the message must mention the pattern
must_fail() {
    label=$1 cc=$2 std=$3 src=$4 pat=$5
    if $cc $std $W -I"$ROOT" -fsyntax-only $D/$src > $D/$G.log 2>&1; then
        echo "(compiled, but it must be rejected)" >> $D/$G.log; bad "$label"
    elif grep -Eq "$pat" $D/$G.log; then ok "$label" "(rejected as it must be)"
    else bad "$label"; fi
}
# ROPEX_STATIC: every API function becomes static; a TU that uses few of them would warn
# "defined but not used" under -Wall. stb-style answer: the check is strict, and passes with a note
# if only -Wno-unused-function is needed (users then add that flag, as with the stb libraries).
check_static() {
    label=$1 cc=$2 std=$3 src=$4; shift 4
    if $cc $std $W $OPT "$@" -I"$ROOT" $D/$src -o $D/$G.o > $D/$G.log 2>&1; then ok "$label"
    elif $cc $std $W -Wno-unused-function $OPT "$@" -I"$ROOT" $D/$src -o $D/$G.o > $D/$G.log 2>&1; then
        ok "$label" "(needs -Wno-unused-function)"
    else bad "$label"; fi
}
# Two TUs with ROPEX_STATIC linked into one program: private copies, no duplicate symbols.
check_static_link() {
    label=$1 cc=$2 std=$3 ext=$4
    if $cc $std -O0 -w -I"$ROOT" -c $D/static.$ext -o $D/$G.s1.o > $D/$G.log 2>&1 &&
       $cc $std -O0 -w -I"$ROOT" -c $D/static2.$ext -o $D/$G.s2.o >> $D/$G.log 2>&1 &&
       $cc $D/$G.s1.o $D/$G.s2.o -o $D/$G.static_link -lm -pthread >> $D/$G.log 2>&1; then ok "$label"; else bad "$label"; fi
}

c_checks() { # compiler
    c=$1; n=$(basename "$c")
    echo "== C: $c ($($c --version 2>/dev/null | head -n 1))"
    OPT=$O2
    check "$n c99 implementation ($SIMD)"       "$c" -std=c99 impl.c $SIMD
    check "$n c11 implementation ($SIMD)"       "$c" -std=c11 impl.c $SIMD
    check "$n c99 implementation, scalar flags" "$c" -std=c99 impl.c
    check "$n c99 ROPEX_NO_SIMD"                "$c" -std=c99 impl.c $SIMD -DROPEX_NO_SIMD
    check "$n c99 NO_THREADS+NO_STDIO+NO_MALLOC" "$c" -std=c99 impl.c $SIMD -DROPEX_NO_THREADS -DROPEX_NO_STDIO -DROPEX_NO_MALLOC
    OPT=$FE
    check "$n c99 header only"                  "$c" -std=c99 header.c
    check "$n c99 implementation included twice" "$c" -std=c99 twice.c $SIMD
    check "$n c99 header, then implementation"  "$c" -std=c99 header_then_impl.c $SIMD
    check_static "$n c99 ROPEX_STATIC"          "$c" -std=c99 static.c $SIMD
    check "$n c99 ROPEX_NO_THREADS"             "$c" -std=c99 impl.c $SIMD -DROPEX_NO_THREADS
    check "$n c99 ROPEX_NO_STDIO"               "$c" -std=c99 impl.c $SIMD -DROPEX_NO_STDIO
    check "$n c99 ROPEX_NO_MALLOC"              "$c" -std=c99 impl.c $SIMD -DROPEX_NO_MALLOC
    check "$n c99 all four NO_ macros"          "$c" -std=c99 impl.c $SIMD -DROPEX_NO_THREADS -DROPEX_NO_STDIO -DROPEX_NO_MALLOC -DROPEX_NO_SIMD
    check "$n c99 ROPEX_MALLOC+ROPEX_FREE"      "$c" -std=c99 allocator.c $SIMD
    must_fail "$n only ROPEX_MALLOC must fail"  "$c" -std=c99 only_malloc.c 'error.*ROPEX_(MALLOC|FREE)'
    must_fail "$n only ROPEX_FREE must fail"    "$c" -std=c99 only_free.c 'error.*ROPEX_(MALLOC|FREE)'
}
cxx_checks() { # compiler
    c=$1; n=$(basename "$c")
    echo "== C++: $c ($($c --version 2>/dev/null | head -n 1))"
    OPT=$O2
    check "$n c++11 implementation ($SIMD)"     "$c" -std=c++11 impl.cpp $SIMD
    check "$n c++17 implementation ($SIMD)"     "$c" -std=c++17 impl.cpp $SIMD
    check "$n c++11 NO_THREADS+NO_STDIO+NO_MALLOC+NO_SIMD" "$c" -std=c++11 impl.cpp -DROPEX_NO_THREADS -DROPEX_NO_STDIO -DROPEX_NO_MALLOC -DROPEX_NO_SIMD
    OPT=$FE
    check "$n c++11 header only"                "$c" -std=c++11 header.cpp
    check "$n c++11 header, then implementation" "$c" -std=c++11 header_then_impl.cpp $SIMD
    check_static "$n c++11 ROPEX_STATIC"        "$c" -std=c++11 static.cpp $SIMD
    check "$n c++11 ROPEX_MALLOC+ROPEX_FREE"    "$c" -std=c++11 allocator.cpp $SIMD
    must_fail "$n c++ only ROPEX_MALLOC must fail" "$c" -std=c++11 only_malloc.cpp 'error.*ROPEX_(MALLOC|FREE)'
}

have() { command -v "$1" >/dev/null 2>&1; }
same() { # two compiler commands that are the same program?
    a=$(command -v "$1" 2>/dev/null) b=$(command -v "$2" 2>/dev/null)
    [ -n "$a" ] && [ -n "$b" ] && [ "$(readlink -f "$a")" = "$(readlink -f "$b")" ]
}

# Groups: one per compiler; run JOBS at a time (MATRIX_JOBS, else the core count when CI is set, else 1).
JOBS=${MATRIX_JOBS:-}
if [ -z "$JOBS" ]; then
    if [ -n "${CI:-}" ]; then JOBS=$(nproc 2>/dev/null || echo 1); else JOBS=1; fi
fi
group_cc() {
    if have "$CC"; then
        c_checks "$CC"
        check_static_link "$(basename "$CC") two ROPEX_STATIC TUs link" "$CC" -std=c99 c
    else
        echo "FAIL C compiler '$CC' not found"; echo "FAIL C compiler '$CC' not found" >> $D/$G.res
    fi
}
group_clang() {
    if have clang && ! same clang "$CC" && ! "$CC" --version 2>/dev/null | grep -q clang; then c_checks clang
    elif ! have clang; then echo "skip: clang not installed"; fi
}
group_cxx() {
    if have "$CXX"; then
        cxx_checks "$CXX"
        check_static_link "$(basename "$CXX") two ROPEX_STATIC TUs link" "$CXX" -std=c++11 cpp
    else
        echo "skip: no C++ compiler '$CXX' (C++ checks not run)"
    fi
}
group_clangxx() {
    if have clang++ && ! same clang++ "$CXX" && ! "$CXX" --version 2>/dev/null | grep -q clang; then cxx_checks clang++
    elif ! have clang++; then echo "skip: clang++ not installed"; fi
}
GROUPS_ALL="cc clang cxx clangxx"
for G in $GROUPS_ALL; do rm -f $D/$G.res $D/$G.out; : > $D/$G.res; done
if [ "$JOBS" -le 1 ]; then
    for G in $GROUPS_ALL; do group_$G; done
else
    set -- $GROUPS_ALL
    while [ $# -gt 0 ]; do
        wave=""; k=0
        while [ $# -gt 0 ] && [ $k -lt "$JOBS" ]; do wave="$wave $1"; shift; k=$((k + 1)); done
        for G in $wave; do group_$G > $D/$G.out 2>&1 & done
        wait
        for G in $wave; do cat $D/$G.out; done
    done
fi
pass=$(cat $D/*.res | grep -c '^ok ')
fail=$(cat $D/*.res | grep -c '^FAIL ')
if [ "$fail" -gt 0 ]; then echo "failing:"; cat $D/*.res | sed -n 's/^FAIL /  /p'; fi
echo "compile matrix: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
