#!/usr/bin/env bash
# One JSON with the numbers a GPU machine is lent for (benchmarks/gpu.py says what is measured):
# heads attribution / exact / CMAP at the Qwen2.5-3B shape (random init, bf16), one SFT step and one GRPO step
# (group 64, vLLM when installed), tokens/s and peak memory of each.
#   bash benchmarks/gpu.sh           # on a GPU machine, under 8 minutes
#   bash benchmarks/gpu.sh --tiny    # on CPU in seconds: the same code at a tiny shape
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
export TOKENIZERS_PARALLELISM=false
exec "$python" "$root/benchmarks/gpu.py" "$@"
