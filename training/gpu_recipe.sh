#!/usr/bin/env bash
# The GPU recipe on a bare GPU box (python3 with torch, transformers, tokenizers, safetensors, numpy,
# scikit-learn): what trained docs/model-cards/teacher.json and models/student. Prepare its inputs where
# the corpus packages are installed with `make travel` (.yuqing/travel: the corpora in one file and the
# packed 4-bit base, about 28 MB), copy the repository there, then run: bash training/gpu_recipe.sh OUT
# OUT receives recipe.json (cards, leave-one-out scores, bench), the log, and the students as tar parts.
set -euo pipefail
out=${1:?usage: gpu_recipe.sh OUT [recipe options]}
shift
mkdir -p "$out"
export YUQING_CORPORA_FILE=.yuqing/travel/corpora.jsonl.gz HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.csv" || true
work=$(mktemp -d)
status=0
python3 -m training.recipe --packed .yuqing/travel/packed --work "$work/work" --out "$work/out" "$@" \
  2>&1 | grep --line-buffered -v -E 'it/s\]|s/it\]' | tee "$out/log.txt" || status=$?
cp "$work/out/recipe.json" "$out/" 2>/dev/null || true
# Transfers take files of at most 16 MiB: the student folders travel back as parts of one tar.
(cd "$work/out" && tar cf - --exclude=checkpoints --exclude=teacher_logits.safetensors student-l* 2>/dev/null) \
  | split -b 15m - "$out/students.tar."
exit $status
