#!/usr/bin/env bash
# The GPU checks in one run on a CUDA machine: the GPU tests, then the GPU rows of the benches.
#
#   bash bench/gpu.sh [PART] [LOG_DIR]   # from the repository root, clapper importable (pip install -e .)
#
# PART: engine (the GPU tests, bench/throughput.py and bench/e2e.py: at most 540 s), others (train_data and
# serve: at most 240 s) or all (the default). Each step has its own time limit (seconds, written beside it) and
# the run goes on past a failed step; every step's output is also written to LOG_DIR/<step>.log (default
# bench/out/gpu).
set -uo pipefail
part=${1:-all}
logs=${2:-bench/out/gpu}
case $part in engine|others|all) ;; *) echo "bench/gpu.sh: PART is engine, others or all, not '$part'" >&2; exit 2;; esac
mkdir -p "$logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
step() {
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*"
  local t0=$SECONDS
  timeout "$limit" "$@" > >(tee "$logs/$name.log") 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python - <<'PY'
import torch, transformers, av
print(f"torch {torch.__version__}, transformers {transformers.__version__}, PyAV {av.__version__}, "
      f"{torch.cuda.get_device_name()}")
PY
if [[ $part != others ]]; then
  step gpu-tests 120 python -m pytest -q -p no:cacheprovider tests/gpu tests/engine
  step throughput 200 python bench/throughput.py --device cuda --dtype bf16 --models demo,real --batch-sizes 1,16 \
    --real-videos 48
  step e2e 220 python bench/e2e.py --skip-cpu --skip-4bit --frames 96 --new-tokens 64 --repeats 3
fi
if [[ $part != engine ]]; then
  step train-data 150 python bench/train_data.py --device cuda --workers 8 --videos 200 --steps 30 --skip-rss
  step serve 90 python bench/serve.py
fi
