# ropex: `make run` (the main job on the bundled model), `make test` (the test suite).
# Needs only a C compiler and make. Other targets: bench, test-cxx, test-asan, fuzz, test-cross, results.

CC      ?= cc
CXX     ?= c++
OPT     ?= -O2
STRICT  := -std=c99 -Wall -Wextra -pedantic -Werror
# Compile-time SIMD choice: AVX2+FMA+F16C when this x86-64 host has them (ROPEX_NO_SIMD=1 forces scalar).
ifeq ($(ROPEX_NO_SIMD),1)
SIMD    := -DROPEX_NO_SIMD
else
SIMD    := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo && echo -mavx2 -mfma -mf16c)
endif
CFLAGS  ?= $(OPT) $(SIMD)
LDLIBS  := -lm -pthread
HDR     := ropex.h

TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TEST_BIN  := $(TEST_SRC:.c=)
TOOLS     := tools/ropex-scale tools/ropex-bench tools/ropex-ppl tools/ropex-convert
EXAMPLES  := examples/generate examples/minimal
PROGRAMS  := $(foreach p,$(TOOLS) $(EXAMPLES),$(if $(wildcard $(p).c),$(p)))

.PHONY: all run test test-c test-asan test-cxx bench fuzz test-cross results clean
all: $(PROGRAMS)

# ---- programs: each is one translation unit that includes the implementation ----
tools/ropex-bench: tools/ropex-bench.c tools/bench_attn.c tools/bench_model.c tools/bench.h $(HDR)
	$(CC) $(STRICT) $(CFLAGS) tools/ropex-bench.c tools/bench_attn.c tools/bench_model.c -o $@ $(LDLIBS)
tools/%: tools/%.c $(HDR)
	$(CC) $(STRICT) $(CFLAGS) $< -o $@ $(LDLIBS)
examples/%: examples/%.c $(HDR)
	$(CC) $(STRICT) $(CFLAGS) $< -o $@ $(LDLIBS)

# headers shared by the command-line programs
tools/ropex-ppl tools/ropex-scale examples/generate: tools/rope_opts.h
tools/ropex-ppl tests/test_ppl: tools/ppl_spec.h

# ---- run: the main job on the bundled default model ----
run: examples/generate
	./examples/generate

# ---- tests ----
build/impl.o: tests/impl.c $(HDR)
	@mkdir -p build
	$(CC) $(STRICT) $(CFLAGS) -c tests/impl.c -o $@
tests/test_%: tests/test_%.c build/impl.o tests/test_util.h $(HDR)
	$(CC) $(STRICT) $(CFLAGS) $< build/impl.o -o $@ $(LDLIBS)

test: test-c test-asan

test-c: $(TEST_BIN) $(PROGRAMS)
	@sh tests/run.sh $(TEST_BIN)

# One run under AddressSanitizer + UndefinedBehaviorSanitizer (skipped if the compiler lacks them).
ASAN := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-asan:
	@mkdir -p build/asan
	@if echo 'int main(void){return 0;}' | $(CC) $(ASAN) -x c - -o build/asan/probe 2>/dev/null; then \
	  set -e; $(CC) $(STRICT) $(ASAN) $(SIMD) -c tests/impl.c -o build/asan/impl.o; \
	  bins=""; for s in $(TEST_SRC); do b=build/asan/$$(basename $$s .c); \
	    $(CC) $(STRICT) $(ASAN) $(SIMD) $$s build/asan/impl.o -o $$b $(LDLIBS); bins="$$bins $$b"; done; \
	  echo "== under ASan+UBSan"; ROPEX_TEST_QUICK=1 sh tests/run.sh $$bins; \
	else echo "test-asan: skipped (compiler has no -fsanitize=address,undefined)"; fi

# C++11 and configuration-matrix compile checks (warning wall).
test-cxx:
	@sh tests/compile_matrix.sh "$(CC)" "$(CXX)"

bench: tools/ropex-bench
	./tools/ropex-bench

# libFuzzer targets (clang), each run for a bounded time.
FUZZ_TIME ?= 30
fuzz:
	@sh tests/fuzz.sh $(FUZZ_TIME)

-include tests/cross.mk

clean:
	rm -rf build build-cross $(TEST_BIN) $(PROGRAMS) tests/fuzz_gguf tests/fuzz_tokenizer

# Perplexity-by-position results for the README (results/); see tools/results.sh.
results: $(PROGRAMS)
	sh tools/results.sh
