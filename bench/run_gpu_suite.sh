#!/usr/bin/env bash
# The GPU lane, as run on an H200 machine through the device tool: build, GPU tests (a skip is a
# failure), compute-sanitizer on a subset, the quantizer benchmark and the torch.compile baseline.
# Logs go to $OUT (or ./gpu-logs).
# Usage: bench/run_gpu_suite.sh [tests|gtests|bench|torch|plot|grad|sanitize|profile|compare|multi|all]...
#   tests: every ctest test (needs the full build); gtests: only the GPU test binaries;
#   compare: the quantizer benchmark of AGOQ_BASELINE (an older source tree, built here) and of
#   this tree, interleaved, at 256 MiB and 1 GiB (compare.txt);
#   bench: the quantizer benchmark; torch: the torch.compile baseline; plot: both in JSON
#   (quantize.json, torch_compile.json) and docs/quantizers.png from them (bench/plot_quantizers.py,
#   written to $OUT/quantizers.png; copy it to docs/); grad: the gradient-buffer
#   benchmark; sanitize: compute-sanitizer memcheck, racecheck and synccheck on a subset of the
#   GPU tests; profile: Nsight Compute on the main quantizer kernels at 256 MiB; multi (for 2+
#   GPUs): the all-reduce's NCCL transfers alone (--transfers), every algorithm next to NCCL from
#   1 MiB to 1 GiB, fp32 gradients, the demo and every example (one process, then one per GPU).
# AGOQ_BUILD_TARGETS (default: all) limits the build; AGOQ_BENCH_FILTER (a Google Benchmark regex)
# and AGOQ_TORCH_MIB (sizes) narrow the benchmarks.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 # NVLink multicast stays off on shared machines
out=${OUT:-gpu-logs}
mkdir -p "$out"
what=" ${*:-all} "
want() { [[ $what == *" $1 "* || (${2:-} == all && $what == *" all "*) ]]; } # want STAGE [all]
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  > "$out/configure.log" 2>&1 || { cat "$out/configure.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" ${AGOQ_BUILD_TARGETS:+--target $AGOQ_BUILD_TARGETS} > "$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
rc=0
if want tests all; then
  AGOQ_REQUIRE_GPU=1 ctest --test-dir build-gpu -j8 --output-on-failure > "$out/ctest.log" 2>&1 || rc=1
  tail -15 "$out/ctest.log"
fi
if want gtests; then
  AGOQ_REQUIRE_GPU=1 build-gpu/tests/agoq_gpu_tests > "$out/gtests.log" 2>&1 || rc=1
  if [ -x build-gpu/tests/agoq_kernel_set_tests ]; then
    AGOQ_REQUIRE_GPU=1 build-gpu/tests/agoq_kernel_set_tests >> "$out/gtests.log" 2>&1 || rc=1
  fi
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]" "$out/gtests.log" | tail -8
  grep -E "^\[  FAILED  \]" "$out/gtests.log" | head -20
fi
if want compare; then # the quantizer benchmark of AGOQ_BASELINE (a source tree) next to this one
  base=${AGOQ_BASELINE:?compare needs AGOQ_BASELINE=<an older agoq source tree>}
  cmake -S "$base" -B "$base/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/compare-build.log" 2>&1 &&
    cmake --build "$base/build-gpu" -j"$(nproc)" --target agoq_quantize_bench >> "$out/compare-build.log" 2>&1 || {
    tail -20 "$out/compare-build.log"; exit 1; }
  for i in 1 2; do # interleaved, twice: base, this, base, this
    for b in "$base/build-gpu/bench/agoq_quantize_bench" build-gpu/bench/agoq_quantize_bench; do
      echo "== $b (round $i)" >> "$out/compare.txt"
      "$b" --benchmark_counters_tabular=true --benchmark_filter='/(268435456|1073741824)(/|$)' \
        >> "$out/compare.txt" 2>&1 || rc=1
    done
  done
  grep -E "^==|^bm_" "$out/compare.txt" | awk '{print $1, $NF}' | head -120
fi
if want sanitize all; then
  for tool in memcheck racecheck synccheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/agoq_gpu_tests \
      --gtest_filter='*int8_b128_bf16*:*int4_asym_b32_f16*:*fp8_e4m3_b256_f32*:*fp4_e2m1_b64_bf16*:*int5_b128_f32*:quantize_gpu.*:CommKernels.*:launcher_args.*' \
      > "$out/sanitize-$tool.log" 2>&1 || rc=1
    tail -4 "$out/sanitize-$tool.log"
  done
fi
if want bench all; then
  build-gpu/bench/agoq_quantize_bench --benchmark_counters_tabular=true \
    --benchmark_filter="${AGOQ_BENCH_FILTER:-.}" \
    > "$out/quantize_bench.txt" 2> "$out/quantize_bench.err" || rc=1
  cat "$out/quantize_bench.txt"
fi
if want torch all; then
  PYTHONUNBUFFERED=1 python3 bench/torch_compile_quant.py --mib ${AGOQ_TORCH_MIB:-256 1024} > "$out/torch_compile.txt" 2>&1 || rc=1
  cat "$out/torch_compile.txt"
fi
if want plot; then
  build-gpu/bench/agoq_quantize_bench --benchmark_format=json > "$out/quantize.json" 2> "$out/quantize_bench.err" || rc=1
  PYTHONUNBUFFERED=1 python3 bench/torch_compile_quant.py --mib ${AGOQ_TORCH_MIB:-256 1024} \
    --json "$out/torch_compile.json" > "$out/torch_compile.txt" 2>&1 || rc=1
  python3 bench/plot_quantizers.py "$out/quantize.json" --torch "$out/torch_compile.json" \
    -o "$out/quantizers.png" || rc=1
fi
if want grad all; then
  build-gpu/bench/agoq_grad_buffer_bench --benchmark_counters_tabular=true \
    --benchmark_filter="${AGOQ_GRAD_FILTER:-.}" > "$out/grad_buffer_bench.txt" 2>&1 || rc=1
  cat "$out/grad_buffer_bench.txt"
fi
if want profile; then # one launch of each main kernel, 256 MiB of bf16, boost clocks
  for b in ${AGOQ_PROFILE_KERNELS:-quantize/int8_b128 quantize/fp8_e4m3_b128 dequantize/int8_b128 accumulate_requantize/int8_b128}; do
    n=ncu-${b//\//-}
    ncu --clock-control none --launch-skip 3 --launch-count 1 --section SpeedOfLight \
      --section Occupancy --section ComputeWorkloadAnalysis --section InstructionStats \
      --section WarpStateStats --section MemoryWorkloadAnalysis --section SourceCounters \
      -o "$out/$n" build-gpu/bench/agoq_quantize_bench --benchmark_filter="bm_$b/268435456" \
      --benchmark_min_time=0.01s > "$out/$n.log" 2>&1 || rc=1
    ncu -i "$out/$n.ncu-rep" --print-details all > "$out/$n.txt" 2>&1
    # executed instructions and stall samples per SASS line, for the hot-loop analysis
    ncu -i "$out/$n.ncu-rep" --page source --print-source sass --csv > "$out/$n-sass.csv" 2>&1
    echo "== ncu $b"
    grep -E "Duration|Compute \(SM\) Th|DRAM Th|Executed Ipc A|Issue Slots Busy|Achieved Occ|Warp Cycles Per Issued|Executed Instructions  |Stall" "$out/$n.txt" | head -40
  done
fi
if want multi; then # every GPU of the machine; the targets are stated for 4
  ar=build-gpu/bench/agoq_allreduce_bench
  n=$(nvidia-smi -L | wc -l)
  $ar --transfers --min-bytes 16M --max-bytes 1G --iters 8 > "$out/ar-transfers.txt" 2>&1 || rc=1
  $ar --algo all --min-bytes 1M --max-bytes 1G --iters 10 > "$out/ar-all.txt" 2>&1 || rc=1
  $ar --algo auto --type f32 --min-bytes 16M --max-bytes 1G > "$out/ar-f32.txt" 2>&1 || rc=1
  cat "$out/ar-transfers.txt" "$out/ar-all.txt" "$out/ar-f32.txt"
  for e in demo quantize_tensor plan allreduce training_step grad_buffer; do
    build-gpu/examples/agoq-$e > "$out/example-$e.txt" 2>&1 || rc=1
    echo "== agoq-$e"; tail -12 "$out/example-$e.txt"
  done
  rm -f /tmp/agoq.id
  pids=()
  for r in $(seq 0 $((n - 1))); do
    build-gpu/examples/agoq-allreduce --multi-process --rank "$r" --world "$n" \
      --id-file /tmp/agoq.id > "$out/example-allreduce-mp-$r.txt" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  echo "== agoq-allreduce --multi-process"; tail -6 "$out/example-allreduce-mp-0.txt"
fi
exit $rc
