# Cross-target checks, included by the Makefile. Needs the packages .ci/run installs
# (cross gcc for aarch64/armhf/s390x, qemu-user-static, arm-none-eabi + newlib, qemu-system-arm).
#   make test-cross                 every target below
#   make test-cross-linux           aarch64 (+dotprod, and plain NEON on cortex-a72), armhf (Pi 2/3), s390x, riscv64 if installed
#   make test-cross-mcu             Cortex-M4: library size, tests/mcu_main.c and examples/firmware.c on mps2-an386
#   make test-cross CROSS_TARGETS="a64-neon m4-test"   a subset
# Outputs go to build-cross/ (git-ignored); tests run from the repository root with ROPEX_TEST_QUICK=1.
CROSS_TARGETS ?= all
.PHONY: test-cross test-cross-linux test-cross-mcu
test-cross:
	@sh tests/cross/cross.sh $(CROSS_TARGETS)
test-cross-linux:
	@sh tests/cross/cross.sh linux
test-cross-mcu:
	@sh tests/cross/cross.sh mcu
