#!/usr/bin/env bash
# MoleBlend pretraining on PCQM4Mv2 with the paper's hyperparameters (appendix C.2, Table 8):
# moleblend_base (12 layers, hidden 768, 32 heads, 128 Gaussian kernels), Adam (0.9, 0.999),
# weight decay 0, peak lr 1e-5, 100k warmup updates, then cosine decay to 0 at 1M updates,
# global batch 4096 molecules, blend ratio SPD:Edge:3D = 2:2:6.
#
#   usage: DATA=/data/pcqm4mv2 SAVE_DIR=checkpoints/pcqm4mv2 GPUS=8 bash examples/pretrain/pcqm4mv2_moleblend.sh
#
# DATA is a prepared dataset (PCQM4Mv2 in the OGB raw layout, see docs/data.md):
#   python -m data_prep pcqm4mv2 --input RAW_DIR --output $DATA --workers 32
# On one machine this starts one process per GPU (fairseq spawns them). Several machines:
# examples/slurm/pretrain_pcqm4mv2.sbatch, and docs/cluster.md. Rerunning the command
# resumes from $SAVE_DIR/checkpoint_last.pt.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

DATA=${DATA:?set DATA to the prepared PCQM4Mv2 folder}
SAVE_DIR=${SAVE_DIR:-checkpoints/pcqm4mv2_moleblend}
ARCH=${ARCH:-moleblend_base}
MODE=${MODE:-moleblend}                # --pretrain-mode; blend, noisy_node, mask_* for the ablations
BLEND_RATIO=${BLEND_RATIO:-2:2:6}
GPUS=${GPUS:-8}                        # data-parallel processes in all (GPUs on all nodes)
GLOBAL_BATCH=${GLOBAL_BATCH:-4096}     # molecules per update, all GPUs together (paper: 4096)
BATCH_PER_GPU=${BATCH_PER_GPU:-256}    # molecules per GPU per forward pass (what fits in memory)
LR=${LR:-1e-5}
WARMUP=${WARMUP:-100000}
MAX_UPDATE=${MAX_UPDATE:-1000000}
PRECISION=${PRECISION:-}               # e.g. --fp16; the default is float32
NUM_WORKERS=${NUM_WORKERS:-8}
EXTRA_ARGS=${EXTRA_ARGS:-}

# global batch = update-freq x GPUs x batch per GPU
if (( GLOBAL_BATCH % (GPUS * BATCH_PER_GPU) != 0 )); then
  echo "GLOBAL_BATCH ($GLOBAL_BATCH) is not a multiple of GPUS x BATCH_PER_GPU ($GPUS x $BATCH_PER_GPU)" >&2
  exit 2
fi
UPDATE_FREQ=$(( GLOBAL_BATCH / (GPUS * BATCH_PER_GPU) ))

# The single-modality ablations leave encoders without gradient; DDP must be told.
unused=()
case $MODE in moleblend|blend) ;; *) unused=(--find-unused-parameters) ;; esac

cd "$repo"
set -x
fairseq-train "$DATA" --user-dir moleblend_plugin \
    --task moleblend_pretrain --criterion moleblend_pretrain \
    --arch "$ARCH" --pretrain-mode "$MODE" --blend-ratio "$BLEND_RATIO" \
    --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-8 --weight-decay 0.0 \
    --lr "$LR" --lr-scheduler cosine --warmup-updates "$WARMUP" \
    --max-update "$MAX_UPDATE" \
    --batch-size "$BATCH_PER_GPU" --update-freq "$UPDATE_FREQ" --required-batch-size-multiple 1 \
    --distributed-world-size "$GPUS" --ddp-backend pytorch_ddp "${unused[@]}" \
    --num-workers "$NUM_WORKERS" $PRECISION \
    --save-dir "$SAVE_DIR" --save-interval-updates 5000 --keep-interval-updates 3 --no-epoch-checkpoints \
    --validate-interval-updates 5000 --log-format simple --log-interval 100 \
    --tensorboard-logdir "$SAVE_DIR/tensorboard" $EXTRA_ARGS
