#!/usr/bin/env bash
# One-call GPU benchmark of Qwen2.5-VL-3B (random weights, real widths, real image sizes), <= 8 min on one H100:
#   SFT samples/s + MFU (baseline, batched vision attention, 2x micro-batch; bench_sft_throughput.py) and
#   point-cloud queries/s + MFU against the official settings (bench_point_cloud.py), JSON with device and
#   versions in benchmarks/results/gpu_*.json (dry run: dryrun_cpu_*.json), copied to $OUT when set.
# First, here: bash benchmarks/gpu/prepare.sh. Then the device tool's run, from the repository root:
#   command: bash benchmarks/gpu/run.sh      carry: ["benchmarks/gpu/carry"]
# CPU dry run (2 layers of width 64, small images, a few steps): DRY=1 bash benchmarks/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
C=benchmarks/gpu/carry
test -d $C/whl || { echo "run benchmarks/gpu/prepare.sh first" >&2; exit 2; }
if ! python3 -c "import trl, datasets, evaluate, plyfile" 2>/dev/null; then
  TAG=$(python3 -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
  WHEELS=$(ls $C/whl/*.whl | grep -vE -- '-py3[0-9]+-none' || true; ls $C/whl/*-$TAG-none-any.whl 2>/dev/null || true)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/depthlm-site $WHEELS
  export PYTHONPATH=/tmp/depthlm-site
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} HF_HUB_OFFLINE=1 HF_HOME=/tmp/depthlm-hf TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 DEPTHLM_IBIMS=$PWD/$C/ibims1
python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__,
  'trl', trl.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
if [ -n "${DRY:-}" ]; then
  SFT="--shrink --steps 1 --rounds 1 --micro_batch 2"; PC="--shrink --rounds 1 --batch_size 4 --official_queries 3"
  N=dryrun_cpu
else
  SFT="--steps 3 --rounds 2 --micro_batch 8 --workers 6"; PC="--rounds 2 --batch_size 64 --official_queries 6"
  N=gpu
fi
status=0
timeout 330 python3 benchmarks/bench_sft_throughput.py --model qwen2.5-vl-3b $SFT --name ${N}_sft_qwen2.5-vl-3b \
  --dataset $C/ibims1/ibims1_val.jsonl:$C/ibims1 --rows_per_image 4 || status=$?
timeout 120 python3 benchmarks/bench_point_cloud.py --model qwen2.5-vl-3b $PC --name ${N}_point_cloud_qwen2.5-vl-3b \
 || status=$?
if [ -n "${OUT:-}" ]; then cp benchmarks/results/${N}_*.json "$OUT"/ 2>/dev/null || true; fi
exit $status
