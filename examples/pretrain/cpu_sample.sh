#!/usr/bin/env bash
# Pretraining on a CPU: a small model on a small prepared dataset, e.g. the bundled QM9 sample.
#
#   python -m data_prep qm9 --input examples/data/qm9/qm9.csv --output runs/qm9-sample --valid-size 30 --test-size 30
#   DATA=runs/qm9-sample bash examples/pretrain/cpu_sample.sh
#
# Defaults: moleblend_tiny, 2000 updates of 16 molecules, lr 5e-4 with 5% warmup and
# cosine decay (a short run needs a larger rate than the paper's 1e-5 for 1M updates).
# Metrics go to the log and to TensorBoard ($SAVE_DIR/tensorboard). Rerunning resumes
# from $SAVE_DIR/checkpoint_last.pt.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

DATA=${DATA:?set DATA to a prepared dataset folder}
SAVE_DIR=${SAVE_DIR:-runs/pretrain_cpu}
ARCH=${ARCH:-moleblend_tiny}
MODE=${MODE:-moleblend}
BATCH=${BATCH:-16}
LR=${LR:-5e-4}
MAX_UPDATE=${MAX_UPDATE:-2000}
WARMUP=${WARMUP:-$(( MAX_UPDATE / 20 ))}
NUM_WORKERS=${NUM_WORKERS:-0}                # worker processes restart every epoch: small data is faster without
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

unused=()
case $MODE in moleblend|blend) ;; *) unused=(--find-unused-parameters) ;; esac

cd "$repo"
set -x
fairseq-train "$DATA" --user-dir moleblend_plugin --cpu \
    --task moleblend_pretrain --criterion moleblend_pretrain --arch "$ARCH" --pretrain-mode "$MODE" \
    --optimizer fused_adam --adam-betas "(0.9,0.999)" --weight-decay 0.0 \
    --lr "$LR" --lr-scheduler cosine --warmup-updates "$WARMUP" --max-update "$MAX_UPDATE" \
    --batch-size "$BATCH" --required-batch-size-multiple 1 --num-workers "$NUM_WORKERS" "${unused[@]}" \
    --save-dir "$SAVE_DIR" --no-epoch-checkpoints --log-format simple --log-interval 50 \
    --tensorboard-logdir "$SAVE_DIR/tensorboard"
