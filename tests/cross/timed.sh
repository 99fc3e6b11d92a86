#!/bin/sh
# Runner wrapper for tests/run.sh under qemu: timeout SECONDS runner... program
# Runs the program with a time limit and reports its wall time (sizes the cross-target workloads).
limit=$1; shift
for last in "$@"; do :; done
s=$(date +%s)
timeout "$limit" "$@"; rc=$?
e=$(( $(date +%s) - s ))
[ $rc -ne 124 ] || echo "$(basename "$last"): killed after the ${limit} s limit"
echo "  ($(basename "$last"): ${e} s under $1)"
exit $rc
