/* The one translation unit holding the implementation for the tests; the test
   programs include only the declarations, as a user's second file would. */
#define ROPEX_IMPLEMENTATION
#include "../ropex.h"
#include "../ropex.h" /* a repeated include must be harmless */
