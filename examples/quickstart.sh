#!/usr/bin/env bash
# MoleBlend end to end on the bundled sample data, on a CPU:
#   1. set up the Python environment (scripts/setup_env.sh; only the first time),
#   2. prepare shards of the samples in examples/data/: 300 QM9 molecules with their DFT
#      geometries, 300 ESOL molecules with RDKit conformers,
#   3. pretrain moleblend_tiny with MoleBlend (blend-then-predict + noisy node) on the QM9
#      sample for 400 updates,
#   4. fine-tune it on ESOL solubility (2D input, scaffold split, best epoch chosen on the
#      valid split),
#   5. score that checkpoint on the ESOL test split and print its RMSE (log mol/L).
#
#   usage: bash examples/quickstart.sh
#
# Outputs go to $QUICKSTART_DIR (default runs/quickstart); a rerun starts afresh.
# The sample is tiny and the model too: the number shows the pipeline works, it is not a
# result (the paper's ESOL RMSE, 0.831, comes from full pretraining on PCQM4Mv2 and the
# whole data set; see examples/pretrain and examples/finetune).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${QUICKSTART_DIR:-$repo/runs/quickstart}
# One thread per process. On a 2-core machine shared with other work, torch's default (one
# thread per core) made this script 6x slower (543 s against 93 s, threads waiting on each
# other); the tiny model's small matrices gain nothing from a second thread.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
started=$SECONDS

eval "$(bash scripts/setup_env.sh --print-activate)"
mkdir -p "$out"
rm -rf "$out/pretrain" "$out/finetune"  # fairseq would resume from an earlier run's checkpoint_last.pt

echo "== preparing shards in $out"
python -m data_prep qm9 --input examples/data/qm9/qm9.csv --output "$out/qm9" \
    --valid-size 30 --test-size 30 --overwrite --quiet
python -m data_prep moleculenet --dataset esol --input examples/data/esol/esol.csv --output "$out/esol" \
    --conformers 1 --overwrite --quiet

# --required-batch-size-multiple 1: fairseq's default of 8 drops the molecules left over
# after the last full multiple of 8 in every split (e.g. 6 of a 30-molecule test split).
# --num-workers 0: batches of a few small molecules are made faster in the training
# process than a worker process started for every (15-update) epoch would deliver them.
common=(--user-dir moleblend_plugin --arch moleblend_tiny --cpu --num-workers 0
        --required-batch-size-multiple 1 --optimizer fused_adam --adam-betas "(0.9,0.999)"
        --no-epoch-checkpoints --log-format simple --seed 1)

echo "== pretraining moleblend_tiny on the QM9 sample (400 updates)"
fairseq-train "$out/qm9" "${common[@]}" \
    --task moleblend_pretrain --criterion moleblend_pretrain --pretrain-mode moleblend --blend-ratio 2:2:6 \
    --batch-size 16 --lr 5e-4 --lr-scheduler cosine --warmup-updates 40 --max-update 400 \
    --validate-interval 1000 --save-interval 1000 --log-interval 100 \
    --save-dir "$out/pretrain" > "$out/pretrain.log" 2>&1 \
    || { tail -n 30 "$out/pretrain.log"; exit 1; }
grep -E "\| valid on" "$out/pretrain.log" | tail -n 1

echo "== fine-tuning on the ESOL sample (40 epochs)"
fairseq-train "$out/esol" "${common[@]}" \
    --task moleblend_finetune --criterion moleblend_finetune --input-modality 2d \
    --finetune-from-model "$out/pretrain/checkpoint_last.pt" \
    --batch-size 16 --lr 5e-4 --lr-scheduler polynomial_decay --warmup-updates 60 --total-num-update 600 \
    --max-epoch 40 --best-checkpoint-metric rmse --log-interval 100 \
    --save-dir "$out/finetune" > "$out/finetune.log" 2>&1 \
    || { tail -n 30 "$out/finetune.log"; exit 1; }
grep -E "\| valid on" "$out/finetune.log" | tail -n 1

echo "== scoring the best checkpoint (chosen on valid) on the ESOL test split"
python -m moleblend_plugin.evaluate "$out/finetune/checkpoint_best.pt" --data "$out/esol" --split test \
    --output "$out/test_scores.json" --quiet > /dev/null
python - "$out/test_scores.json" <<'EOF'
import json, sys
scores = json.load(open(sys.argv[1]))
m = scores["metrics"]
print(f"ESOL sample, test split ({scores['targets'][0]['labels']} molecules): "
      f"RMSE {m['rmse']:.3f}  MAE {m['mae']:.3f}  log(mol/L)")
EOF
echo "done in $((SECONDS - started)) s; logs, checkpoints and test_scores.json in $out"
