#!/usr/bin/env bash
# Fine-tuning on a CPU: a small model on a small prepared dataset, e.g. the bundled ESOL sample,
# from a pretraining checkpoint (examples/pretrain/cpu_sample.sh) or from scratch.
#
#   python -m data_prep moleculenet --dataset esol --input examples/data/esol/esol.csv --output runs/esol-sample
#   DATA=runs/esol-sample PRETRAINED=runs/pretrain_cpu/checkpoint_last.pt bash examples/finetune/cpu_sample.sh
#   python -m moleblend_plugin.evaluate runs/finetune_cpu/checkpoint_best.pt --data runs/esol-sample --split test
#
# The task type comes from the manifest: regression keeps the best valid RMSE, classification
# the best valid ROC-AUC. ARCH must be the pretraining run's.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

DATA=${DATA:?set DATA to a prepared dataset folder}
PRETRAINED=${PRETRAINED:-}
SAVE_DIR=${SAVE_DIR:-runs/finetune_cpu}
ARCH=${ARCH:-moleblend_tiny}
TARGETS=${TARGETS:-}                   # comma-separated manifest targets (default: all)
INPUT_MODALITY=${INPUT_MODALITY:-2d}
BATCH=${BATCH:-16}
LR=${LR:-5e-4}
MAX_EPOCH=${MAX_EPOCH:-40}
SEED=${SEED:-1}
NUM_WORKERS=${NUM_WORKERS:-0}                # worker processes restart every epoch: small data is faster without
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

task_type=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['targets'][0]['task_type'])" "$DATA/manifest.json")
if [[ $task_type == classification ]]; then
  select=(--best-checkpoint-metric auc --maximize-best-checkpoint-metric)
else
  select=(--best-checkpoint-metric rmse)
fi
init=()
[[ -n $PRETRAINED ]] && init=(--finetune-from-model "$PRETRAINED")
targets=()
[[ -n $TARGETS ]] && targets=(--targets "$TARGETS")

cd "$repo"
set -x
fairseq-train "$DATA" --user-dir moleblend_plugin --cpu "${init[@]}" \
    --task moleblend_finetune --criterion moleblend_finetune "${targets[@]}" \
    --arch "$ARCH" --input-modality "$INPUT_MODALITY" --seed "$SEED" \
    --optimizer fused_adam --adam-betas "(0.9,0.999)" --lr "$LR" --max-epoch "$MAX_EPOCH" \
    --batch-size "$BATCH" --required-batch-size-multiple 1 --num-workers "$NUM_WORKERS" --find-unused-parameters \
    "${select[@]}" --save-dir "$SAVE_DIR" --no-epoch-checkpoints --log-format simple --log-interval 50 \
    --tensorboard-logdir "$SAVE_DIR/tensorboard"
