#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a consumer's .cu that calls the quantizers (bench/compile_time/consumer.cu: the README's
# quantize snippet) costs to compile, in the three build modes, side by side in one run:
#   header-only, full kernel set | header-only, one format (AGOQ_FORMATS=int8) | compiled mode
#   (AGOQ_COMPILED_KERNELS: agoq::kernels holds the launchers; the file compiles host stubs)
# and, given an older source tree, its header-only full set as the "before" row.
# Usage: bench/compile_time/run.sh [OLD_TREE]     (nvcc on PATH; -O3, sm_90 as the CI build)
set -euo pipefail
cd "$(dirname "$0")/../.."
src=bench/compile_time/consumer.cu
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
flags=(-std=c++17 -O3 -arch=sm_90 -c "$src" -o "$work/out.o")
row() { # row NAME INCLUDE_DIR EXTRA_FLAGS...
  local name=$1 inc=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$work/t" nvcc -I"$inc" "$@" "${flags[@]}"
  read -r secs kib < "$work/t"
  printf "| %-46s | %7.1f s | %5d MiB |\n" "$name" "$secs" $((kib / 1024))
}
echo "nvcc $(nvcc --version | grep -o 'release [0-9.]*'), $(nproc) cores, $(date -u +%F)"
echo "| consumer file (README quantize snippet, sm_90, -O3) | compile time | peak memory |"
echo "|---|---|---|"
if [ $# -ge 1 ]; then row "before: header-only, all formats ($1)" "$1/include"; fi
row "header-only, all formats" include
row "header-only, AGOQ_FORMATS=int8" include -DAGOQ_KERNEL_FORMATS=0x1000
row "header-only, int8, nearest_even only" include -DAGOQ_KERNEL_FORMATS=0x1000 -DAGOQ_KERNEL_ROUNDINGS=1
row "compiled mode (links agoq::kernels)" include -DAGOQ_COMPILED_KERNELS=1
