#!/bin/sh
# Builds the libFuzzer targets (clang) and runs each for $1 seconds (default 30).
# Usage (from anywhere): sh tests/fuzz.sh [seconds]. Skips with a message without clang/libFuzzer.
set -u
T=${1:-30}
cd "$(dirname "$0")/.." || exit 1
CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then echo "fuzz: skipped ($CC not found)"; exit 0; fi
mkdir -p build/fuzz
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > build/fuzz/probe.c
if ! "$CC" -fsanitize=fuzzer build/fuzz/probe.c -o build/fuzz/probe >/dev/null 2>&1; then
  echo "fuzz: skipped ($CC has no libFuzzer: -fsanitize=fuzzer failed)"; exit 0
fi
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
status=0
for t in gguf tokenizer; do
  echo "fuzz: building tests/fuzz_$t"
  "$CC" $FLAGS tests/fuzz_$t.c -o tests/fuzz_$t -lm -pthread || { echo "fuzz: build of fuzz_$t failed"; exit 1; }
done
# Seeds: the real GGUF files (whole, and the header region alone), text from the eval prefix.
mkdir -p build/fuzz/gguf_corpus build/fuzz/gguf_seed build/fuzz/tok_corpus build/fuzz/tok_seed
cp tests/data/stories260K-q8_0.gguf build/fuzz/gguf_seed/q8_0.gguf
head -c 16384 tests/data/stories260K-f32.gguf > build/fuzz/gguf_seed/f32_head.gguf
i=0
for off in 0 5000 20000 60000 100000; do
  for sel in 0 1 2; do
    { printf "\\$(printf '%03o' $sel)"; dd if=tests/data/tinystories_val_head.txt bs=1 skip=$off count=300 2>/dev/null; } > build/fuzz/tok_seed/s$i
    i=$((i + 1))
  done
done
run() {
  name=$1; shift
  echo "fuzz: $name for ${T}s"
  if ./tests/$name -max_total_time="$T" -print_final_stats=1 -artifact_prefix=build/fuzz/$name- "$@" \
       > build/fuzz/$name.log 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' build/fuzz/$name.log
  else
    tail -n 40 build/fuzz/$name.log; echo "fuzz: $name FAILED (input saved as build/fuzz/$name-crash-*)"; status=1
  fi
}
run fuzz_gguf -max_len=400000 -rss_limit_mb=2048 build/fuzz/gguf_corpus build/fuzz/gguf_seed
run fuzz_tokenizer -max_len=4096 build/fuzz/tok_corpus build/fuzz/tok_seed
[ $status -eq 0 ] && echo "fuzz: ok"
exit $status
