#!/usr/bin/env bash
# Fill benchmarks/gpu/carry/ (git-ignored) with what the GPU machine lacks, before `run.sh` is sent there:
#   whl/     wheels of trl, datasets, evaluate, plyfile and their missing needs (dill, multiprocess), no deps,
#            for Python 3.12 (the machine's) and 3.11 (this machine's, for the CPU dry run): about 2 MB
#   ibims1/  the first 8 iBims-1 images and their jsonl lines (about 4 MB), from ../shared/data/ibims1
# DeepSpeed is not carried: the one-GPU runs do not use it (it ships no wheel, only a source archive).
#   bash benchmarks/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")"
SHARED=${DEPTHLM_SHARED_DATA:-$(cd ../../.. && pwd)/shared/data}
rm -rf carry && mkdir -p carry/whl carry/ibims1/rgb
get() { python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$1" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d carry/whl "${@:2}"; }
get 3.12 trl==1.16.0 datasets==5.2.0 evaluate==0.4.6 plyfile==1.1.5 'dill>=0.3,<0.4.2' 'multiprocess<0.70.20'
get 3.11 'multiprocess<0.70.20'
head -n 8 "$SHARED/ibims1/ibims1_val.jsonl" > carry/ibims1/ibims1_val.jsonl
for image in $(python3 -c "import json; [print(json.loads(l)['image']) for l in open('carry/ibims1/ibims1_val.jsonl')]"); do
  cp "$SHARED/ibims1/$image" "carry/ibims1/$image"
done
du -sh carry
