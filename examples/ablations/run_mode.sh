#!/usr/bin/env bash
# Every row of one mode and input (by default the MoleculeNet ones): run_row.py for each
# dataset and seed, in turn, on one thread (two modes side by side on a 2-core machine
# finish sooner than one on two threads).
# A failed row is reported and the others go on; the exit status counts the failures.
#
#   usage: bash examples/ablations/run_mode.sh MODE [RATIO] [INPUT] [RUN_ROW_FLAGS...]
#   MODE: moleblend, blend, noisy_node, mask_spd, mask_edge, mask_3d or scratch
#   RATIO: SPD:edge:3D of moleblend / blend ("" or 2:2:6 by default)
#   INPUT: 2d (default) or 2d+predicted3d; with DATASETS=qm9, 3d or 2d+3d
#   RUN_ROW_FLAGS: passed on to each run_row.py (e.g. --dry-run, --arch, --pretrain-updates)
#   environment: RUN_DIR (default runs/ablations), MOLEBLEND_DATA (datasets folder),
#                DATASETS (default: the six MoleculeNet sets), SEEDS (default 1 2 3),
#                THREADS (default 1)
set -uo pipefail
mode=${1:?usage: run_mode.sh MODE [RATIO] [INPUT]}
ratio=${2:-}
input=${3:-2d}
shift $(($# < 3 ? $# : 3))
here=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
ratio_args=()
[ -n "$ratio" ] && ratio_args=(--blend-ratio "$ratio")
failed=0
for dataset in ${DATASETS:-bbbp bace clintox esol freesolv lipophilicity}; do
  for seed in ${SEEDS:-1 2 3}; do
    echo "=== $(date -u +%FT%TZ) $mode ${ratio:-} $dataset $input seed $seed"
    if ! python "$here/run_row.py" --mode "$mode" "${ratio_args[@]}" --dataset "$dataset" --input "$input" \
        --seed "$seed" --run-dir "${RUN_DIR:-runs/ablations}" "$@"; then
      echo "=== FAILED: $mode ${ratio:-} $dataset $input seed $seed"
      failed=$((failed + 1))
    fi
  done
done
echo "=== $(date -u +%FT%TZ) $mode ${ratio:-} $input: done, $failed failed"
exit "$failed"
