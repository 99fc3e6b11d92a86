#!/bin/sh
# Runs the test programs given as arguments, then prints one total line.
# Usage: tests/run.sh [--runner "qemu-..."] prog...
runner=""
if [ "${1:-}" = "--runner" ]; then runner=$2; shift 2; fi
pass=0; fail=0; bad=""
for p in "$@"; do
  out=$($runner "$p" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v '^ok ' | tail -n 40
  line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  np=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p'); nf=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p')
  [ -n "$np" ] || np=0; [ -n "$nf" ] || nf=0
  if [ $rc -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; echo "$p: exit status $rc"; fi
  pass=$((pass + np)); fail=$((fail + nf))
  [ "$nf" -eq 0 ] || bad="$bad $p"
done
[ -z "$bad" ] || echo "failing:$bad"
echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
