#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer harness of a build for a fixed time, starting from the checked-in seed
# corpus (tests/fuzz/corpus/<harness>/, read only: new inputs go to a scratch folder).
#   usage: tests/fuzz/run_fuzzers.sh <build dir> [seconds per harness, default 60] [harness...]
# A harness that finds a crash (an ASan/UBSan report or a broken invariant) fails the run; its
# input is kept under <build dir>/fuzz-artifacts/ and printed in base64 with the command that
# replays it. Ends with "fuzz: N passed, M failed".
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run_fuzzers.sh <build dir> [seconds] [harness...]}"
secs="${2:-60}"
shift $(($# >= 2 ? 2 : $#))
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(policy_text quantize decode allreduce)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
artifacts="$build/fuzz-artifacts"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"

passed=0
failed=0
for h in "${harnesses[@]}"; do
  bin="$build/tests/fuzz/agoq_fuzz_$h"
  if [ ! -x "$bin" ]; then
    echo "fuzz $h: $bin not built (a compiler without -fsanitize=fuzzer?)"
    failed=$((failed + 1))
    continue
  fi
  dict=()
  [ -f "$here/$h.dict" ] && dict=("-dict=$here/$h.dict")
  mkdir -p "$scratch/$h"
  rm -f "$artifacts/$h"-* # inputs a previous run left
  log="$artifacts/$h.log"
  start=$(date +%s)
  "$bin" -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$h-" "${dict[@]}" "$scratch/$h" "$here/corpus/$h" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz $h: passed, ${runs:-?} inputs in ${took} s"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "fuzz $h: FAILED (exit $rc after ${took} s); the report:"
    grep -m1 -A40 -E "agoq fuzz invariant|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error" "$log" | head -60
    for crash in "$artifacts/$h"-*; do
      [ -f "$crash" ] || continue
      echo "fuzz $h: input $crash (base64):"
      base64 -w0 "$crash"
      echo
      echo "fuzz $h: replay with: $bin $crash"
    done
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
