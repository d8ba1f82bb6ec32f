#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The issue-20 evidence on a GPU machine without network, in stages that each fit a 10-minute
# command (run them in order on one machine; later stages reuse the installed package):
#
#   bash python/examples/run_gpu.sh build test        # pip install (nvcc, sm_90) + pytest
#   bash python/examples/run_gpu.sh train bf16        # ~2-4 min each on an H200 (see train_llama.py)
#   bash python/examples/run_gpu.sh train agoq
#   bash python/examples/run_gpu.sh train int4-all plot
#   bash python/examples/run_gpu.sh smoke             # 20 steps of each mode, 2 layers: seconds
#
# Results go to python/results/ (git-ignored, so it survives between commands on one machine)
# and, when $OUT is set (the device runner's output folder), are copied there after every stage.
# Environment: PYTHON (default python3), MAX_MINUTES (per training run, default 5),
# TRAIN_ARGS (extra train_llama.py options, e.g. "--micro-batch 8").
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
RES=python/results
MAX_MINUTES=${MAX_MINUTES:-5}
mkdir -p "$RES"
# NVLink multicast stays off on shared machines (KINDS.md); harmless elsewhere
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

copy_out() { if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/results" && cp -r "$RES"/. "$OUT/results/"; fi; }
trap copy_out EXIT

status=0
while [ $# -gt 0 ]; do
  stage=$1; shift
  case "$stage" in
    build)
      echo "== build: pip install --no-build-isolation ./python ($(date -u +%T))"
      start=$(date +%s)
      if ! $PY -m pip install --no-build-isolation --no-deps -v ./python > "$RES/build.log" 2>&1; then
        tail -60 "$RES/build.log"; echo "BUILD FAILED"; exit 1
      fi
      echo "built in $(( $(date +%s) - start )) s"; grep -E "agoq_torch:|CUDA architectures" "$RES/build.log" | head
      $PY -c "import agoq; print('agoq', agoq.__version__, 'cuda', agoq.with_cuda, 'nccl', agoq.has_nccl())"
      ;;
    test)
      echo "== test ($(date -u +%T))"
      AGOQ_REQUIRE_GPU=1 $PY -m pytest -q -rs -p no:cacheprovider python/tests 2>&1 | tee "$RES/pytest.log" | tail -40
      rc=${PIPESTATUS[0]}
      [ "$rc" -eq 0 ] || status=1
      ;;
    train)
      mode=$1; shift
      echo "== train $mode ($(date -u +%T))"
      # shellcheck disable=SC2086
      $PY python/examples/train_llama.py --mode "$mode" --max-minutes "$MAX_MINUTES" \
        --out "$RES/train_$mode.json" ${TRAIN_ARGS:-} 2>&1 | tee "$RES/train_$mode.log" | \
        grep --line-buffered -vE "^step [0-9]+/[0-9]+ "
      rc=${PIPESTATUS[0]}
      grep -E "^step [0-9]+/" "$RES/train_$mode.log" | awk 'NR % 20 == 1' ; grep -E "^step [0-9]+/" "$RES/train_$mode.log" | tail -2
      [ "$rc" -eq 0 ] || status=1
      ;;
    smoke)
      for mode in bf16 agoq int4-all; do
        $PY python/examples/train_llama.py --mode "$mode" --steps 20 --layers 2 --eval-every 10 \
          --out "$RES/smoke_$mode.json" 2>&1 | tail -4 || status=1
      done
      $PY python/examples/plot_training.py "$RES"/smoke_{bf16,agoq,int4-all}.json --out "$RES/smoke.png" || status=1
      ;;
    plot)
      echo "== plot ($(date -u +%T))"
      $PY python/examples/plot_training.py "$RES"/train_{bf16,agoq,int4-all}.json \
        --out "$RES/training.png" | tee "$RES/summary.md" || status=1
      ;;
    *) echo "unknown stage '$stage' (build, test, train <mode>, smoke, plot)"; exit 2 ;;
  esac
done
exit $status
