#!/usr/bin/env bash
# The CPU fine-tuning runs behind docs/results.md: moleblend_small, from scratch and from the
# QM9 pretraining run of docs/pretraining.md, 3 seeds, short fixed budgets (no sweep: one
# learning rate for all, chosen before any run; the best epoch is picked on valid).
#
#   usage: bash examples/finetune/cpu_results.sh QUEUE
#   QUEUE: moleculenet | lipophilicity | hiv | qm9 | qm9-hydrogens (from scratch only: heavy atoms
#          vs all atoms, built/qm9 and built/qm9-hydrogens)
#
#   BUILT       prepared datasets (default built: built as in docs/data.md)
#   PRETRAINED  pretraining checkpoint (default runs/pretrain_small/checkpoints/checkpoint_best.pt)
#   RUNS        output folder (default runs/results)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
BUILT=${BUILT:-built}
PRETRAINED=${PRETRAINED:-runs/pretrain_small/checkpoints/checkpoint_best.pt}
RUNS=${RUNS:-runs/results}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
eval "$(bash scripts/setup_env.sh --print-activate)"

seeds() {  # dataset, target, epochs, batch, [more run_seeds.py flags]
  local name=$1 target=$2 epochs=$3 batch=$4; shift 4
  python examples/finetune/run_seeds.py "$BUILT/$name" --run-dir "$RUNS/$name" --pretrained "$PRETRAINED" \
      --targets "$target" --arch moleblend_small --cpu --lr 2e-4 --batch-size "$batch" --max-epoch "$epochs" \
      --extra-args="--lr-scheduler fixed --warmup-updates 20 --clip-norm 5 --dropout 0.1" "$@"
}

case ${1:?QUEUE: moleculenet, lipophilicity, hiv, qm9 or qm9-hydrogens} in
  moleculenet)
    seeds bbbp p_np 6 32 --input-modality 2d
    seeds bace Class 5 32 --input-modality 2d
    seeds clintox CT_TOX 5 32 --input-modality 2d
    seeds esol "measured log solubility in mols per litre" 6 32 --input-modality 2d --metric rmse
    seeds freesolv expt 6 32 --input-modality 2d --metric rmse
    ;;
  lipophilicity)
    seeds lipophilicity exp 3 32 --input-modality 2d --metric rmse
    ;;
  hiv)  # 41k molecules: a fraction of an epoch per run (--max-update), validated every 100 updates
    seeds hiv HIV_active 1 64 --input-modality 2d \
        --extra-args="--lr-scheduler fixed --warmup-updates 20 --clip-norm 5 --dropout 0.1 --max-update 150 --validate-interval-updates 75"
    ;;
  qm9)  # gap, HOMO and LUMO predicted jointly (one model per input, not one per target), 1 seed
    for modality in 3d 2d+3d; do
      python examples/finetune/run_seeds.py "$BUILT/qm9" --run-dir "$RUNS/qm9_${modality/+/_}" --pretrained "$PRETRAINED" \
          --targets gap,homo,lumo --arch moleblend_small --cpu --input-modality "$modality" --seeds 1 \
          --lr 2e-4 --batch-size 64 --max-epoch 1 --metric mae \
          --extra-args="--lr-scheduler fixed --warmup-updates 20 --clip-norm 5 --regression-loss l1 --max-update 400 --validate-interval-updates 200 --max-valid-steps 40"
    done
    ;;
  qm9-hydrogens)  # the qm9 queue's 2d+3d budget from scratch, on heavy-atom and all-atom graphs
    for name in qm9 qm9-hydrogens; do
      python examples/finetune/run_seeds.py "$BUILT/$name" --run-dir "$RUNS/${name}_2d_3d" \
          --targets gap,homo,lumo --arch moleblend_small --cpu --input-modality 2d+3d --seeds 1 \
          --lr 2e-4 --batch-size 64 --max-epoch 1 --metric mae \
          --extra-args="--lr-scheduler fixed --warmup-updates 20 --clip-norm 5 --regression-loss l1 --max-update 400 --validate-interval-updates 200 --max-valid-steps 40"
    done
    ;;
  *) echo "unknown queue $1" >&2; exit 2 ;;
esac
