#!/usr/bin/env bash
# The GPU self-check (benchmarks/gpu_check.py says what it checks): environment, pytest --device cuda over the tests
# that build models on the device, one SFT and one GRPO step with float32 master weights, cross-device CMAP, and
# gpu.py's figures. Always writes one JSON (--out, default gpu-check.json), with an error entry per failed part;
# exit 0 only when every part passed. No network needed.
#   bash benchmarks/gpu-check.sh --out gpu-check.json   # on a GPU machine, under 8 minutes
#   bash benchmarks/gpu-check.sh --tiny                 # every part on CPU at tiny sizes, about a minute
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$root/src:$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/benchmarks/gpu_check.py" "$@"
