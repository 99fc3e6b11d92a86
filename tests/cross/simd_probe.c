/* Prints the SIMD path the library compiled for this target (tests/cross/cross.sh compares it with
   the path the target's flags promise). */
#include <stdio.h>
#include <string.h>
#include "../../ropex.h"

int main(int argc, char **argv) {
    const char *got = ropex_simd_name();
    printf("simd: %s\n", got);
    return (argc > 1 && strcmp(argv[1], got) != 0) ? 1 : 0;
}
